"""The `?` screen: every key, what each panel shows, and the status marks."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from .labels import LEGEND


class HelpScreen(ModalScreen[None]):
    BINDINGS = [
        Binding("escape", "close", "Close", id="help-close"),
        Binding("question_mark", "close", "Close", show=False, id="help-close-again"),
        Binding("q", "close", "Close", show=False, id="help-close-q"),
    ]

    def __init__(self, keys: list[tuple[str, str]], panels: list[tuple[str, str]], numbers: list[tuple[str, str]]) -> None:
        super().__init__()
        self.keys = keys
        self.panels = panels
        self.numbers = numbers

    def compose(self) -> ComposeResult:
        table = Table.grid(padding=(0, 2))
        table.add_column(style="bold cyan", no_wrap=True)
        table.add_column()
        for key, what in self.keys:
            table.add_row(key, what)
        panels, numbers = _grid(self.panels), _grid(self.numbers)
        with VerticalScroll():
            yield Static(Text("Keys (also in the command palette, ctrl+p)", style="bold underline"))
            yield Static(table)
            yield Static(Text("\nPanels", style="bold underline"))
            yield Static(panels)
            yield Static(Text("\nNumbers", style="bold underline"))
            yield Static(numbers)
            yield Static(Text("\nMarks: " + LEGEND))
            yield Static(Text("\nEsc closes this help.", style="dim"))

    def action_close(self) -> None:
        self.dismiss(None)


def _grid(rows: list[tuple[str, str]]) -> Table:
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold", no_wrap=True)
    table.add_column()
    for name, what in rows:
        table.add_row(Text(name), Text(what))
    return table
