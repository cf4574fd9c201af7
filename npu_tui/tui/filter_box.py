"""The weight-name filter box. Its Enter and Esc act as the app reads them (priority bindings): the
focus is back on the tree before the app routes the keys that came in the same burst (a paste, an SSH
packet), so "/td", Enter, x sent at once excludes the match instead of typing "x" into the filter. The
letters sent before an Esc may still wait in the box's queue then: a closed box drops them."""

from __future__ import annotations

from collections.abc import Callable

from textual import events
from textual.binding import Binding
from textual.widgets import Input


class FilterBox(Input):
    BINDINGS = [
        Binding(
            "enter", "done", "Done", show=False, priority=True, id="filter-done", tooltip="back to the tree, the filter kept"
        ),
        Binding("escape", "clear", "Clear", show=False, priority=True, id="filter-clear", tooltip="clear the filter"),
    ]

    def __init__(self, on_done: Callable[[], None], on_clear: Callable[[], None], placeholder: str, id: str) -> None:
        super().__init__(placeholder=placeholder, id=id, disabled=True)  # enabled while shown: a hidden box takes no keys
        self.on_done = on_done
        self.on_clear = on_clear

    def action_done(self) -> None:
        self.on_done()

    def action_clear(self) -> None:
        self.on_clear()

    async def _on_key(self, event: events.Key) -> None:
        if self.disabled:  # closed by an Esc read after this key was queued: it goes with the filter
            event.prevent_default()  # Input's own handler does not type it
            event.stop()
