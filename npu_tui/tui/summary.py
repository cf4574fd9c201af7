"""The model-level numbers: accuracy (or output SQNR), top-1 agreement and sizes, marked when stale."""

from __future__ import annotations

from rich.text import Text
from textual.widget import Widget

from ..core.text import printable
from ..core.workbench import Workbench
from .labels import db, rated


class ModelSummary(Widget):
    """Redrawn in place on each change: its size is fixed in CSS, so no relayout of the screen."""

    PANEL = "Summary (bottom lines)"  # as the help names it: what the screen shows, not the class
    HELP = "Model-level numbers from the last evaluation (ctrl+r re-runs it), and the sizes of the current config."

    def show(self, workbench: Workbench, running: str | None = None) -> None:
        c = workbench.compilation
        text = Text()
        ev = workbench.evaluation
        if workbench.evaluation_error:
            text.append("error: ", style="bold red")
            text.append(printable(workbench.evaluation_error)[:200] + "  (M: messages)")
        elif ev is None:
            text.append("no evaluation yet" if workbench.evaluator is not None else "no evaluation data", style="dim")
        else:
            if ev.accuracy_float is not None and ev.accuracy_npu is not None:
                lost = (
                    ev.accuracy_float - ev.accuracy_npu > 0.01 and not workbench.stale
                )  # more than a point: ! says it without colour
                text.append(f"accuracy float {ev.accuracy_float:.2%} NPU ")
                text.append(f"{ev.accuracy_npu:.2%}" + ("!" if lost else ""), style="bold red" if lost else "green")
            else:
                sqnr = ev.worst_output_sqnr_db
                text.append("worst output " if len(ev.outputs) > 1 else "output ")
                text.append_text(rated(db(sqnr), sqnr, not workbench.stale))
            if ev.top1_agreement is not None:
                text.append(f"  top-1 agreement {ev.top1_agreement:.1%}")  # with the float model: not accuracy
            text.append(f"  {ev.simulation}", style="dim")  # exact: the chip's arithmetic; fast: onnxruntime (the README)
        if workbench.stale and ev is not None:
            text.append("  (stale: ctrl+r)", style="yellow")
        ratio = c.npu_bytes / c.fp16_bytes if c.fp16_bytes else 1.0
        text.append(f"\nNPU {c.npu_bytes:,} B of fp16 {c.fp16_bytes:,} B ({ratio:.1%})")
        if workbench.dirty:
            text.append("  unsaved", style="yellow")
        if running:
            text.append(f"  {running}", style="cyan")
        self._text = text
        self.refresh()

    def render(self) -> Text:
        return getattr(self, "_text", Text())
