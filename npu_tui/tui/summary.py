"""The model-level numbers: accuracy (or output SQNR), top-1 agreement and sizes, marked when stale."""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget

from ..core.text import printable
from ..core.workbench import Evaluation, Workbench
from .labels import db, rated


@dataclass(frozen=True)
class Shown:
    """The summary's state: the last evaluation and whether it is stale (or the run's failure), the
    config's sizes, whether it is unsaved, and the run in progress."""

    evaluation: Evaluation | None
    stale: bool
    error: str | None
    has_data: bool
    npu_bytes: int
    fp16_bytes: int
    dirty: bool
    running: str | None


class ModelSummary(Widget):
    """Redrawn in place on each change: its size is fixed in CSS, so no relayout of the screen."""

    PANEL = "Summary (bottom lines)"  # as the help names it: what the screen shows, not the class
    HELP = "Model-level numbers from the last evaluation (ctrl+r re-runs it), and the sizes of the current config."

    # What it shows, set by show() and drawn by render(): always redrawn, the evaluation is never compared.
    shown: reactive[Shown | None] = reactive(None, always_update=True)

    def show(self, workbench: Workbench, running: str | None = None) -> None:
        c = workbench.compilation
        self.shown = Shown(
            workbench.evaluation,
            workbench.stale,
            workbench.evaluation_error,
            workbench.evaluator is not None,
            c.npu_bytes,
            c.fp16_bytes,
            workbench.dirty,
            running,
        )

    def render(self) -> Text:
        shown = self.shown
        text = Text()
        if shown is None:
            return text
        ev = shown.evaluation
        if shown.error:
            text.append("error: ", style="bold red")
            text.append(printable(shown.error)[:200] + "  (M: messages)")
        elif ev is None:
            text.append("no evaluation yet" if shown.has_data else "no evaluation data", style="dim")
        else:
            if ev.accuracy_float is not None and ev.accuracy_npu is not None:
                lost = (
                    ev.accuracy_float - ev.accuracy_npu > 0.01 and not shown.stale
                )  # more than a point: ! says it without colour
                text.append(f"accuracy float {ev.accuracy_float:.2%} NPU ")
                text.append(f"{ev.accuracy_npu:.2%}" + ("!" if lost else ""), style="bold red" if lost else "green")
            else:
                sqnr = ev.worst_output_sqnr_db
                text.append("worst output " if len(ev.outputs) > 1 else "output ")
                text.append_text(rated(db(sqnr), sqnr, not shown.stale))
            if ev.top1_agreement is not None:
                text.append(f"  top-1 agreement {ev.top1_agreement:.1%}")  # with the float model: not accuracy
            text.append(f"  {ev.simulation}", style="dim")  # exact: the chip's arithmetic; fast: onnxruntime (the README)
        if shown.stale and ev is not None:
            text.append("  (stale: ctrl+r)", style="yellow")
        ratio = shown.npu_bytes / shown.fp16_bytes if shown.fp16_bytes else 1.0
        text.append(f"\nNPU {shown.npu_bytes:,} B of fp16 {shown.fp16_bytes:,} B ({ratio:.1%})")
        if shown.dirty:
            text.append("  unsaved", style="yellow")
        if shown.running:
            text.append(f"  {shown.running}", style="cyan")
        return text
