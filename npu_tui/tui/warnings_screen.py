"""The model's warnings (W), each whole: what the chip computes otherwise than the float model (compile
and eval print the same lines) and what gxnpuc will refuse of an ONNX model. The summary shows only the
count and the first one, cut to its line."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from ..core.text import printable

SECTIONS = (
    "The chip computes these otherwise than the float model (the exact simulation does as the chip does):",
    "gxnpuc will refuse these once the model is a TensorFlow graph:",
)


class WarningsScreen(ModalScreen[None]):
    BINDINGS = [
        Binding("escape", "close", "Close", id="warnings-close"),
        Binding("W", "close", "Close", show=False, id="warnings-close-again"),
    ]
    PANEL = "Warnings (W)"  # as the help names it: what the screen shows, not the class
    HELP = "The model's warnings, each whole: what the chip computes otherwise than float, what gxnpuc will refuse; Esc closes."

    def __init__(self, chip: list[str], refused: list[str]) -> None:
        super().__init__()
        self.sections = [(title, found) for title, found in zip(SECTIONS, (chip, refused)) if found]

    def compose(self) -> ComposeResult:
        with VerticalScroll():
            yield Static(Text("Warnings (Esc closes)", style="bold underline"))
            for title, found in self.sections:
                yield Static(Text(title, style="bold"))
                for warning in found:  # a hanging bullet: where one warning ends and the next begins shows without colour
                    with Horizontal(classes="warning"):
                        yield Static("-", classes="bullet")
                        yield Static(Text(printable(warning)), classes="warning-text")  # plain text: never markup

    def action_close(self) -> None:
        self.dismiss(None)
