"""The model-level numbers: accuracy (or output SQNR), top-1 agreement and sizes, marked when stale;
and, on a line of its own, the model's warnings (what the chip computes otherwise, what gxnpuc refuses)."""

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
    warnings: tuple[str, ...] = ()


def model_warnings(workbench: Workbench) -> list[str]:
    """What the summary counts and W lists: the chip's warnings, then what gxnpuc will refuse of an ONNX model."""
    return workbench.chip_warnings + workbench.project.model_warnings


class ModelSummary(Widget):
    """Redrawn in place on each change: its size is fixed in CSS (a third line, `warned`, only for a model
    with warnings), so no relayout of the screen; no line wraps onto the next."""

    PANEL = "Summary (bottom lines)"  # as the help names it: what the screen shows, not the class
    HELP = (
        "Model-level numbers from the last evaluation (ctrl+r re-runs it), and the sizes of the current config. "
        "A model the chip computes otherwise than float (a scalar-first Sub/Div, a Pow of a value that can be negative), "
        "or that gxnpuc will refuse (an ONNX Softmax), gets a third line: the count and the first warning; W lists them all."
    )

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
            tuple(printable(w) for w in model_warnings(workbench)),
        )
        self.set_class(bool(self.shown.warnings), "warned")

    def render(self) -> Text:
        """The numbers' line may wrap (an error's hint is read whole); the lines under it are cut to the width."""
        shown = self.shown
        if shown is None:
            return Text()
        text = _numbers_line(shown)
        width = self.content_size.width
        for line in (_sizes_line(shown), _warnings_line(shown)):
            if line is not None:
                if width:
                    line.truncate(width, overflow="ellipsis")
                text.append("\n")
                text.append_text(line)
        return text


def _numbers_line(shown: Shown) -> Text:
    text = Text()
    ev = shown.evaluation
    if shown.error:
        text.append("error: ", style="bold red")
        text.append(printable(shown.error)[:200] + "  (M: messages)")
    elif ev is None:
        text.append("no evaluation yet" if shown.has_data else "no evaluation data", style="dim")
    else:
        if ev.accuracy_float is not None and ev.accuracy_npu is not None:
            lost = ev.accuracy_float - ev.accuracy_npu > 0.01 and not shown.stale  # more than a point: ! says it without colour
            text.append(f"accuracy float {ev.accuracy_float:.2%} NPU ")
            text.append(f"{ev.accuracy_npu:.2%}" + ("!" if lost else ""), style="bold red" if lost else "green")
        else:
            sqnr = ev.worst_output_sqnr_db
            text.append("worst output " if len(ev.outputs) > 1 else "output ")
            text.append_text(rated(db(sqnr), sqnr, not shown.stale))
        if ev.top1_agreement is not None:
            text.append(f"  top-1 agreement {ev.top1_agreement:.1%}")  # with the float model: not accuracy
        if not shown.stale:  # exact: the chip's arithmetic; fast: onnxruntime (the README); stale: the hint needs the room
            text.append(f"  {ev.simulation}", style="dim")
    if shown.stale and ev is not None:
        text.append("  (stale: ctrl+r)", style="yellow")
    return text


def _sizes_line(shown: Shown) -> Text:
    ratio = shown.npu_bytes / shown.fp16_bytes if shown.fp16_bytes else 1.0
    text = Text(f"NPU {shown.npu_bytes:,} B of fp16 {shown.fp16_bytes:,} B ({ratio:.1%})")
    if shown.dirty:
        text.append("  unsaved", style="yellow")
    if shown.running:
        text.append(f"  {shown.running}", style="cyan")
    return text


def _warnings_line(shown: Shown) -> Text | None:
    """The count and the key first: a cut takes the end of the first warning, never the way to read it."""
    if not shown.warnings:
        return None
    count = len(shown.warnings)
    text = Text(f"{count} warning{'s' if count > 1 else ''} (W): ", style="bold yellow")
    text.append(shown.warnings[0])
    return text
