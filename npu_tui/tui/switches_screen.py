"""The `g` dialog: the global switches COMPRESS, CONV2D_COMPRESS and FUSE_BN."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Checkbox, Label

from ..core.workbench import SWITCH_FIELDS, Settings

MEANING = {
    "COMPRESS": "int8 fully-connected weights",
    "CONV2D_COMPRESS": "int8 convolution weights",
    "FUSE_BN": "fold BatchNorm into convolutions",
}
SWITCH_LABELS = {attr: f"{key}: {MEANING[key]}" for key, attr in SWITCH_FIELDS.items()}


def switch_label(key: str, on: bool, focused: bool) -> Text:
    """The state in words and the focus as `>`: without colour the checkbox's own mark and its
    highlight look the same on and off, focused or not."""
    return Text(f"{'>' if focused else ' '} {'on ' if on else 'off'}  {SWITCH_LABELS[key]}")


class SwitchesScreen(ModalScreen[dict[str, bool] | None]):
    BINDINGS = [
        Binding("escape", "cancel", "Cancel", id="switches-cancel"),
        Binding("enter", "apply", "Apply", id="switches-apply", priority=True),
        Binding("down", "app.focus_next", "Next switch", show=False, id="switches-down"),
        Binding("up", "app.focus_previous", "Previous switch", show=False, id="switches-up"),
    ]
    HELP = "Up/Down or Tab move, Space toggles the focused switch, Enter applies all, Esc cancels."

    def __init__(self, settings: Settings) -> None:
        super().__init__()
        self.settings = settings

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label("Global switches")
            yield Label("Up/Down move, Space toggles, Enter applies, Esc cancels")
            for key in SWITCH_LABELS:
                on = getattr(self.settings, key)
                yield Checkbox(switch_label(key, on, False), on, id=f"switch-{key}", compact=True)

    def on_mount(self) -> None:
        self.query(Checkbox).first().focus()

    def _relabel(self) -> None:
        for box in self.query(Checkbox):
            box.label = switch_label((box.id or "").removeprefix("switch-"), box.value, box.has_focus)

    def on_descendant_focus(self) -> None:
        self._relabel()

    def on_checkbox_changed(self) -> None:
        self._relabel()

    def action_apply(self) -> None:
        self.dismiss({key: self.query_one(f"#switch-{key}", Checkbox).value for key in SWITCH_LABELS})

    def action_cancel(self) -> None:
        self.dismiss(None)
