"""Yes/no dialogs: saving (after showing the diff) and quitting with unsaved changes."""

from __future__ import annotations

from rich.syntax import Syntax
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Label, Static

from ..core.text import printable


class ConfirmScreen(ModalScreen[bool]):
    BINDINGS = [
        Binding("y", "answer(True)", "Yes", id="confirm-yes"),
        Binding("n", "answer(False)", "No", id="confirm-no"),
        Binding("escape", "answer(False)", "No", show=False, id="confirm-escape"),
    ]

    def __init__(self, question: str, diff: str | None = None, quitting: bool = False) -> None:
        super().__init__()
        self.question = printable(question)  # it names the config's path
        self.diff = None if diff is None else "\n".join(printable(line) for line in diff.splitlines())  # and the model's names
        self.quitting = quitting

    def compose(self) -> ComposeResult:
        with Vertical():
            if self.diff is not None:
                with VerticalScroll():
                    body = Syntax(self.diff, "diff", theme="ansi_dark", word_wrap=True) if self.diff else Text("no change")
                    yield Static(body)
            yield Label(Text(f"{self.question}  [y]es / [n]o"))

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)


class ConflictScreen(ModalScreen[str | None]):
    """config.yaml changed on disk since it was loaded: keep those changes under ours, overwrite them,
    or cancel. Never a silent revert."""

    BINDINGS = [
        Binding("k", "answer('keep')", "Keep theirs too", id="conflict-keep"),
        Binding("o", "answer('overwrite')", "Overwrite", id="conflict-overwrite"),
        Binding("c", "answer(None)", "Cancel", id="conflict-cancel"),
        Binding("escape", "answer(None)", "Cancel", show=False, id="conflict-escape"),
    ]

    def __init__(self, path: str) -> None:
        super().__init__()
        self.path = printable(path)  # the config path, spelled out

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(Text(f"{self.path} changed on disk since it was loaded."))
            yield Label(Text("[k] keep those changes and write ours on top"))
            yield Label(Text("[o] overwrite them with the file as loaded plus ours"))
            yield Label(Text("[c] cancel"))

    def action_answer(self, choice: str | None) -> None:
        self.dismiss(choice)
