"""The `m` dialog: type a range, or pick the bulk or MSE-optimal one, and see its SQNR before applying."""

from __future__ import annotations

import math

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static

from ..core.workbench import RangeSuggestion, Workbench
from .labels import db, plain


def parse_range(text: str) -> tuple[float, float] | str:
    """'lo, hi' -> (lo, hi), or a message saying what is wrong."""
    parts = [p for p in text.replace("[", " ").replace("]", " ").replace(",", " ").split() if p]
    if len(parts) != 2:
        return "type two numbers: min, max"
    try:
        lo, hi = float(parts[0]), float(parts[1])
    except ValueError:
        return f"not a number: {parts[0] if not _is_number(parts[0]) else parts[1]}"
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return "the bounds must be finite"
    if not lo < hi:
        return f"min {lo:g} is not less than max {hi:g}"
    return lo, hi


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


class MinMaxScreen(ModalScreen[tuple[float, float] | None]):
    BINDINGS = [Binding("escape", "cancel", "Cancel", id="minmax-cancel")]
    HELP = "Type min, max (Enter applies) or pick a suggested range. The SQNR each range gives is shown first."
    DEFAULT_CSS = """
    MinMaxScreen { align: center middle; }
    MinMaxScreen > Vertical { width: 70; height: auto; border: thick $accent; padding: 0 1; background: $surface; }
    MinMaxScreen Button { width: 100%; }
    MinMaxScreen #minmax-preview { height: 2; }
    """

    def __init__(self, workbench: Workbench, name: str) -> None:
        super().__init__()
        self.workbench = workbench
        self.weight = name
        self.suggestions: list[RangeSuggestion] = workbench.range_suggestions(name)

    def compose(self) -> ComposeResult:
        result = self.workbench.result(self.weight)
        lo, hi = result.range
        with Vertical():
            title = Text("WEIGHT_MIN_MAX for ")
            title.append_text(plain(self.weight))
            yield Label(title)
            yield Static(f"now [{lo:.6g}, {hi:.6g}], SQNR {db(result.errors.sqnr_db)}. Tab reaches the suggestions.")
            yield Input(value=f"{lo:.6g}, {hi:.6g}", placeholder="min, max", id="minmax-input")
            yield Static("", id="minmax-preview")
            for i, s in enumerate(self.suggestions):
                yield Button(f"{s.label}: [{s.range[0]:.4g}, {s.range[1]:.4g}] gives {db(s.sqnr_db)}", id=f"suggest-{i}", compact=True)

    def on_mount(self) -> None:
        self.query_one(Input).focus()
        self._preview(self.query_one(Input).value)

    def on_input_changed(self, event: Input.Changed) -> None:
        self._preview(event.value)

    def _preview(self, text: str) -> None:
        parsed = parse_range(text)
        preview = self.query_one("#minmax-preview", Static)
        if isinstance(parsed, str):
            preview.update(Text(parsed, style="red"))
            return
        sqnr = self.workbench.sqnr_with_range(self.weight, parsed)
        note = "" if parsed[0] <= 0 <= parsed[1] else "  (no 0 inside: the nudge will shift it)"
        preview.update(Text(f"would give SQNR {db(sqnr)}{note}. Enter applies, Esc cancels."))

    def on_input_submitted(self, event: Input.Submitted) -> None:
        parsed = parse_range(event.value)
        if isinstance(parsed, str):
            self.notify(parsed, severity="error")
            return
        self.dismiss(parsed)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        index = int((event.button.id or "suggest-0").rsplit("-", 1)[1])
        chosen = self.suggestions[index].range
        self.query_one(Input).value = f"{chosen[0]:.6g}, {chosen[1]:.6g}"
        self.query_one(Input).focus()

    def action_cancel(self) -> None:
        self.dismiss(None)
