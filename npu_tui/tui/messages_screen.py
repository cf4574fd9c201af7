"""The message log (M): every notification of the session, newest last, so an error that flashed by
in a toast can still be read."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

STYLES = {"error": "bold red", "warning": "yellow", "information": ""}


class MessagesScreen(ModalScreen[None]):
    BINDINGS = [
        Binding("escape", "close", "Close", id="messages-close"),
        Binding("M", "close", "Close", show=False, id="messages-close-again"),
    ]
    PANEL = "Messages (M)"  # as the help names it: what the screen shows, not the class
    HELP = "Every message of this session, newest last, with its time; Esc closes."

    def __init__(self, messages: list[tuple[str, str, str]]) -> None:
        super().__init__()
        self.messages = messages

    def compose(self) -> ComposeResult:
        text = Text()
        if not self.messages:
            text.append("no messages yet", style="dim")
        for when, severity, message in self.messages:
            text.append(f"{when} ", style="dim")
            text.append(f"{severity[:5]:5} ", style=STYLES.get(severity, ""))
            text.append(message + "\n")  # already plain: the app's notify spells escapes out
        with VerticalScroll():
            yield Static(Text("Messages (Esc closes)", style="bold underline"))
            yield Static(text)
        self.call_after_refresh(lambda: self.query_one(VerticalScroll).scroll_end(animate=False))

    def action_close(self) -> None:
        self.dismiss(None)
