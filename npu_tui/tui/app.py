"""The npu-tui workbench app: pick a weight, fix it with a key, see its numbers at once, re-evaluate
in the background, save a config.yaml the vendor compiler accepts. The screens hold their own keys."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from functools import partial
from pathlib import Path
from typing import Any

from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.notifications import SeverityLevel
from textual.screen import Screen

from ..core.opening import DataChoice, open_workbench
from ..core.text import one_line, printable
from ..core.workbench import Workbench
from .confirm_screens import ConfirmScreen
from .details import NUMBERS, WeightDetails
from .fix_screen import FixPlot
from .help_screen import HelpScreen
from .histogram_view import HistogramView
from .layer_view import LayerChart, LayerTable
from .messages_screen import MessagesScreen
from .summary import ModelSummary
from .warnings_screen import WarningsScreen
from .weight_table import WeightTable
from .weight_tree import WeightTree
from .workbench_screen import WorkbenchScreen


class NpuTuiApp(App[None]):
    """The keys that work on every screen (help, quit, messages), the notifications, and what a crash
    leaves behind; the workbench itself is WorkbenchScreen, the default screen."""

    TITLE = "npu-tui"
    CSS_PATH = "npu_tui.tcss"  # every screen's and widget's style, in one file beside this one
    BINDINGS = [
        Binding("question_mark", "help", "Help", key_display="?", id="help", tooltip="this help"),
        Binding("q", "quit", "Quit", id="quit", tooltip="quit (asks first when there are unsaved changes)"),
        Binding(
            "M",
            "messages",
            "Messages",
            show=False,
            id="messages",
            tooltip="every message of this session (errors stay readable after their toast is gone)",
        ),
    ]

    def __init__(self, workbench: Workbench, debug: bool = False, reopen: Callable[[], Workbench] | None = None) -> None:
        """`reopen` reads the config and its data again (R); by default the same config with the
        data beside it."""
        super().__init__()
        self.workbench = workbench
        self.reopen = reopen or partial(open_workbench, workbench.project.config.path, DataChoice())
        self.show_tracebacks = debug
        self.messages: list[tuple[str, str, str]] = []  # (time, severity, text) of every notification
        self.crash: str | None = None
        self.recovered: Path | None = None

    def get_default_screen(self) -> WorkbenchScreen:
        return WorkbenchScreen()

    @property
    def main_screen(self) -> WorkbenchScreen:
        """The workbench, under whatever dialog is on top."""
        screen = self.screen_stack[0]
        assert isinstance(screen, WorkbenchScreen)
        return screen

    def main(self, *query: Any) -> Any:  # query_one's own overloads
        """A widget of the main screen, whichever screen is on top: a dialog or the help screen may be
        open when the evaluation worker's messages arrive."""
        return self.screen_stack[0].query_one(*query)

    def action_messages(self) -> None:
        self.push_screen(MessagesScreen(list(self.messages)))

    def action_help(self) -> None:
        keys = [("arrows, j/k", "move"), ("h/l", "fold / unfold a group")]
        keys += [(b.key_display or b.key, b.tooltip or b.description) for b in self.keys()]
        panels = [
            (w.PANEL, w.HELP)
            for w in (
                WeightTree,
                HistogramView,
                WeightDetails,
                WeightTable,
                LayerChart,
                LayerTable,
                FixPlot,
                ModelSummary,
                MessagesScreen,
                WarningsScreen,
            )
        ]
        self.push_screen(HelpScreen(keys, panels, NUMBERS))

    async def action_quit(self) -> None:
        """Every way out (q, ctrl+q, the palette's Quit) asks first when there are unsaved changes."""
        if not self.workbench.dirty:
            self.exit()
            return
        if isinstance(self.screen, ConfirmScreen) and self.screen.quitting:
            return  # already asking
        self.push_screen(
            ConfirmScreen("There are unsaved changes. Quit anyway?", quitting=True), lambda yes: self.exit() if yes else None
        )

    def action_help_quit(self) -> None:
        """ctrl+c: Textual's own hint carries markup; this one is plain."""
        self.notify("Press q or ctrl+q to quit (it asks first when there are unsaved changes)", title="Do you want to quit?")

    def _handle_exception(self, error: Exception) -> None:
        """A bug escaped: keep the user's unsaved settings beside the config, then exit with status 1
        and one short message (Textual's own report would print every local, weight arrays included)."""
        try:
            self.recovered = self.workbench.write_recovery()
        except Exception:  # noqa: BLE001 - a failure here must not hide the first one
            self.recovered = None
        self.crash = f"internal error: {printable(one_line(repr(error)))}"
        super()._handle_exception(error)

    def _fatal_error(self) -> None:
        if self.show_tracebacks:
            super()._fatal_error()
            return
        self.bell()
        self._close_messages_no_wait()

    def notify(
        self,
        message: str,
        *,
        title: str = "",
        severity: SeverityLevel = "information",
        timeout: float | None = None,
        markup: bool = False,
    ) -> None:
        """Messages carry names from the model and the config: always plain text, escapes spelled out."""
        self.messages.append((time.strftime("%H:%M:%S"), str(severity), printable(message)))
        super().notify(printable(message), title=printable(title), severity=severity, timeout=timeout, markup=False)

    def keys(self) -> list[Binding]:
        """Every key of the app and of the workbench screen (all declared as Binding, each with an id):
        the help and the command palette list them."""
        own = [b for b in (*self.BINDINGS, *WorkbenchScreen.BINDINGS) if isinstance(b, Binding)]
        return [b for b in own if not b.action.startswith("app.")]  # the footer's copies of the app's keys

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        """The app's keys everywhere; the workbench's when the palette is opened on the workbench, run
        by that screen."""
        yield from super().get_system_commands(screen)
        owners: list[tuple[App | Screen, list]] = [(self, list(self.BINDINGS))]
        if isinstance(screen, WorkbenchScreen):
            owners.append((screen, list(WorkbenchScreen.BINDINGS)))
        for owner, bindings in owners:
            for binding in bindings:
                if (
                    isinstance(binding, Binding)
                    and binding.id
                    and binding.id != "escape"
                    and not binding.action.startswith("app.")
                ):
                    help_text = f"{binding.tooltip or binding.description} ({binding.key_display or binding.key})"
                    yield SystemCommand(binding.description, help_text, partial(owner.run_action, binding.action))
