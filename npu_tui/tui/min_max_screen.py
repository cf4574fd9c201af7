"""The `m` dialog: type a range, or pick a candidate, and see what it would give before applying.

Candidates (the automatic range, the bulk, the MSE-optimal one, clips by value share) are ranked by the
model metric, not by the weight's own SQNR, which can point the wrong way (kws: the full range has the
best own SQNR and the worst accuracy). Every number is computed in a worker thread (Workbench.preview_range
and range_candidates run the model), so the dialog opens at once and typing never waits. The dialog sits
at the bottom of the screen: the weight's histogram stays in view. Moving onto a candidate copies it into
the box; Enter applies what the box holds or the candidate under the cursor, which a `>` marks (it must
show without colour)."""

from __future__ import annotations

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.message import Message
from textual.screen import ModalScreen
from textual.timer import Timer
from textual.widgets import Input, Label, OptionList, Static
from textual.worker import Worker, get_current_worker

from ..core.errors import UserError
from ..core.numbers import optional_text
from ..core.workbench import Cancelled, RangePreview, Workbench, range_problem
from .histogram_view import HistogramView
from .labels import db, plain

TYPING_PAUSE = 0.15  # seconds without a key before a typed range is computed


def parse_range(text: str) -> tuple[float, float] | str:
    """'lo, hi' -> (lo, hi), or a message saying what is wrong: the config's own check (range_problem)."""
    parts = [p for p in text.replace("[", " ").replace("]", " ").replace(",", " ").split() if p]
    if len(parts) != 2:
        return "type two numbers: min, max"
    try:
        lo, hi = float(parts[0]), float(parts[1])
    except ValueError:
        return f"not a number: {parts[0] if not _is_number(parts[0]) else parts[1]}"
    problem = range_problem(lo, hi)
    return (lo, hi) if problem is None else problem


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


class Previewed(Message):
    """A worker's answer for the typed range: the preview, or what is wrong."""

    def __init__(self, worker: Worker, preview: RangePreview | None, error: str | None) -> None:
        super().__init__()
        self.worker, self.preview, self.error = worker, preview, error


class Ranked(Message):
    def __init__(self, worker: Worker, candidates: list[RangePreview] | None, error: str | None) -> None:
        super().__init__()
        self.worker, self.candidates, self.error = worker, candidates, error


class MinMaxScreen(ModalScreen[tuple[float, float] | None]):
    BINDINGS = [
        Binding("escape", "cancel", "Cancel", id="minmax-cancel"),
        Binding("down", "suggestions", "Candidates", show=False, id="minmax-suggestions"),
    ]
    HELP = (
        "Type min, max and press Enter to apply, or go Down to the candidate ranges, best model metric first "
        "(accuracy with labels, else the worst output's SQNR): moving onto one previews it, Enter applies it. "
        "Each range shows the share of values it clips and the weight's own SQNR; nothing is applied before Enter."
    )

    def __init__(self, workbench: Workbench, name: str) -> None:
        super().__init__()
        self.workbench = workbench
        self.weight = name
        self.candidates: list[RangePreview] = []
        self.preview_worker: Worker | None = None
        self.rank_worker: Worker | None = None
        self._typing: Timer | None = None

    def compose(self) -> ComposeResult:
        result = self.workbench.result(self.weight)
        lo, hi = result.range
        with Vertical():
            title = Text("WEIGHT_MIN_MAX for ")
            title.append_text(plain(self.weight))
            title.append(f": now [{lo:.6g}, {hi:.6g}], own SQNR {db(result.errors.sqnr_db)}")
            yield Label(title)
            yield Input(value=f"{lo:.6g}, {hi:.6g}", placeholder="min, max", id="minmax-input", compact=True)
            yield Static("", id="minmax-preview")
            yield Static(
                Text(f"candidates by {self.workbench.metric_label}: ranking... (Enter applies, Esc cancels)", style="dim"),
                id="minmax-ranking",
            )
            yield OptionList(id="minmax-suggestions", compact=True)

    def on_mount(self) -> None:
        self.query_one(Input).focus()
        self._compute(self.query_one(Input).value)
        self.rank_worker = self.rank()

    # -- the candidates, ranked in a worker

    @work(thread=True, exclusive=True, group="minmax-rank")
    def rank(self) -> None:
        worker = get_current_worker()
        try:
            found = self.workbench.range_candidates(self.weight, stop=lambda: worker.is_cancelled)
        except Cancelled:
            return
        except UserError as exc:
            self.post_message(Ranked(worker, None, str(exc)))
            return
        self.post_message(Ranked(worker, found, None))

    def on_ranked(self, message: Ranked) -> None:
        if message.worker is not self.rank_worker:
            return
        self.rank_worker = None
        heading = self.query_one("#minmax-ranking", Static)
        if message.candidates is None:
            heading.update(Text(message.error or "no candidates", style="red"))
            return
        self.candidates = message.candidates
        heading.update(
            Text(f"candidates by {self.workbench.metric_label}, best first (Down; Enter applies, Esc cancels):", style="dim")
        )
        options = self.query_one(OptionList)
        options.set_options(self._prompt(i, False) for i in range(len(self.candidates)))

    def _prompt(self, index: int, marked: bool) -> Text:
        c = self.candidates[index]
        return Text(
            f"{'>' if marked else ' '} {self._metric(c.metric):>9}  clips {c.clipped:6.2%}  own {db(c.sqnr_db):>9}  "
            f"[{c.range[0]:.4g}, {c.range[1]:.4g}] {c.label}"
        )

    def _metric(self, value: float | None) -> str:
        if self.workbench.metric_label == "accuracy":
            return optional_text(value, ".2%")
        return db(value)

    def action_suggestions(self) -> None:
        options = self.query_one(OptionList)
        if options.option_count:
            options.focus()
            self._pick(options.highlighted or 0)

    def _pick(self, index: int) -> None:
        if self._typing is not None:
            self._typing.stop()
        self.preview_worker = None  # a typed range still computing is no longer what the box shows: its answer is dropped
        options = self.query_one(OptionList)
        options.highlighted = index
        for other in range(options.option_count):
            options.replace_option_prompt_at_index(other, self._prompt(other, other == index))
        chosen = self.candidates[index]
        self.query_one(Input).value = f"{chosen.range[0]:.6g}, {chosen.range[1]:.6g}"
        self._show(chosen)

    # -- the typed range, computed in a worker once typing pauses

    def on_input_changed(self, event: Input.Changed) -> None:
        if self.query_one(OptionList).has_focus:
            return  # a candidate was copied into the box: its numbers are already shown
        if self._typing is not None:
            self._typing.stop()
        self._typing = self.set_timer(TYPING_PAUSE, lambda: self._compute(event.value))

    def _compute(self, text: str) -> None:
        parsed = parse_range(text)
        preview = self.query_one("#minmax-preview", Static)
        if isinstance(parsed, str):
            self.preview_worker = None
            preview.update(Text(parsed, style="red"))
            return
        preview.update(Text("computing...", style="dim"))
        self.preview_worker = self.preview(parsed)

    @work(thread=True, exclusive=True, group="minmax-preview")
    def preview(self, rng: tuple[float, float]) -> None:
        worker = get_current_worker()
        try:
            found = self.workbench.preview_range(self.weight, rng)
        except UserError as exc:
            self.post_message(Previewed(worker, None, str(exc)))
            return
        self.post_message(Previewed(worker, found, None))

    def on_previewed(self, message: Previewed) -> None:
        if message.worker is not self.preview_worker:
            return
        self.preview_worker = None
        if message.preview is None:
            self.query_one("#minmax-preview", Static).update(Text(message.error or "", style="red"))
            return
        self._show(message.preview)

    def _show(self, c: RangePreview) -> None:
        """The numbers in the dialog, the saturation in the histogram above it."""
        if c.result is not None:
            self.app.screen_stack[0].query_one(HistogramView).preview(c.result)
        note = "" if c.range[0] <= 0 <= c.range[1] else " (no 0 inside: the nudge shifts it)"
        self.query_one("#minmax-preview", Static).update(
            Text(
                f"would give {self.workbench.metric_label} {self._metric(c.metric)}, clips {c.clipped:.2%}, "
                f"own SQNR {db(c.sqnr_db)}{note}"
            )
        )

    # -- answers

    def on_input_submitted(self, event: Input.Submitted) -> None:
        parsed = parse_range(event.value)
        if isinstance(parsed, str):
            self.notify(parsed, severity="error")
            return
        self.dismiss(parsed)

    def on_option_list_option_highlighted(self, event: OptionList.OptionHighlighted) -> None:
        if event.option_list.has_focus:  # not the list's own first highlight when the dialog opens
            self._pick(event.option_index)

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(self.candidates[event.option_index].range)

    def action_cancel(self) -> None:
        self.dismiss(None)
