"""The `g` dialog: the global switches COMPRESS, CONV2D_COMPRESS and FUSE_BN."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Checkbox, Label

from ..core.settings import Settings

SWITCH_LABELS = {
    "compress": "COMPRESS: quantize fully-connected weights",
    "conv2d_compress": "CONV2D_COMPRESS: quantize convolution weights",
    "fuse_bn": "FUSE_BN: fold BatchNorm into convolutions first",
}


class SwitchesScreen(ModalScreen[dict[str, bool] | None]):
    BINDINGS = [
        Binding("escape", "cancel", "Cancel", id="switches-cancel"),
        Binding("enter", "apply", "Apply", id="switches-apply", priority=True),
    ]
    HELP = "Space toggles the focused switch, Tab moves, Enter applies all, Esc cancels."
    DEFAULT_CSS = """
    SwitchesScreen { align: center middle; }
    SwitchesScreen > Vertical { width: 60; height: auto; border: thick $accent; padding: 0 1; background: $surface; }
    """

    def __init__(self, settings: Settings) -> None:
        super().__init__()
        self.settings = settings

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label("Global switches (space toggles, Enter applies, Esc cancels)")
            for key, label in SWITCH_LABELS.items():
                yield Checkbox(label, getattr(self.settings, key), id=f"switch-{key}")

    def on_mount(self) -> None:
        self.query(Checkbox).first().focus()

    def action_apply(self) -> None:
        self.dismiss({key: self.query_one(f"#switch-{key}", Checkbox).value for key in SWITCH_LABELS})

    def action_cancel(self) -> None:
        self.dismiss(None)
