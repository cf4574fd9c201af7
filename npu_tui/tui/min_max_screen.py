"""The `m` dialog: type a range, or pick the bulk or MSE-optimal one, and see its SQNR before applying.

Moving onto a suggestion copies it into the box (its SQNR shows at once); Enter applies what the box
holds or the suggestion under the cursor, which a `>` marks (it must show without colour)."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label, OptionList, Static

from ..core.errors import UserError
from ..core.settings import range_problem
from ..core.workbench import RangeSuggestion, Workbench
from .labels import db, plain


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


class MinMaxScreen(ModalScreen[tuple[float, float] | None]):
    BINDINGS = [
        Binding("escape", "cancel", "Cancel", id="minmax-cancel"),
        Binding("down", "suggestions", "Suggestions", show=False, id="minmax-suggestions"),
    ]
    HELP = (
        "Type min, max and press Enter to apply, or go Down to the suggested ranges: moving onto one "
        "previews it, Enter applies it. The SQNR each range gives is shown before anything is applied."
    )
    DEFAULT_CSS = """
    MinMaxScreen { align: center middle; }
    MinMaxScreen > Vertical { width: 70; height: auto; border: thick $accent; padding: 0 1; background: $surface; }
    MinMaxScreen OptionList { height: auto; max-height: 6; }
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
            yield Static(f"now [{lo:.6g}, {hi:.6g}], SQNR {db(result.errors.sqnr_db)}. Down: suggested ranges.")
            yield Input(value=f"{lo:.6g}, {hi:.6g}", placeholder="min, max", id="minmax-input")
            yield Static("", id="minmax-preview")
            yield OptionList(*[self._prompt(i, False) for i in range(len(self.suggestions))], id="minmax-suggestions", compact=True)

    def _prompt(self, index: int, marked: bool) -> Text:
        s = self.suggestions[index]
        return Text(f"{'>' if marked else ' '} {s.label}: [{s.range[0]:.4g}, {s.range[1]:.4g}] gives {db(s.sqnr_db)}")

    def action_suggestions(self) -> None:
        options = self.query_one(OptionList)
        if options.option_count:
            options.focus()
            self._pick(options.highlighted or 0)

    def _pick(self, index: int) -> None:
        options = self.query_one(OptionList)
        options.highlighted = index
        for other in range(options.option_count):
            options.replace_option_prompt_at_index(other, self._prompt(other, other == index))
        chosen = self.suggestions[index].range
        self.query_one(Input).value = f"{chosen[0]:.6g}, {chosen[1]:.6g}"

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
        try:
            sqnr = self.workbench.sqnr_with_range(self.weight, parsed)
        except UserError as exc:
            preview.update(Text(str(exc), style="red"))
            return
        note = "" if parsed[0] <= 0 <= parsed[1] else "  (no 0 inside: the nudge will shift it)"
        preview.update(Text(f"would give SQNR {db(sqnr)}{note}. Enter applies, Esc cancels."))

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
        self.dismiss(self.suggestions[event.option_index].range)

    def action_cancel(self) -> None:
        self.dismiss(None)
