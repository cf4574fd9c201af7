"""The main screen: the weight tree, the Weight / Table / Layers tabs and the model summary, with
the keys that edit and test the selected weight. Its state is what is on screen (the selection, the
run in progress); the settings live in the app's Workbench, shared with the fix screen."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, cast

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.reactive import var
from textual.screen import Screen
from textual.widgets import Footer, Header, Input, TabbedContent, TabPane, Tree
from textual.worker import Worker, get_current_worker

from ..core.errors import UserError
from ..core.text import printable
from ..core.workbench import Cancelled, Histogram, Workbench, histogram
from .confirm_screens import ConfirmScreen, ConflictScreen
from .details import WeightDetails
from .filter_box import FilterBox
from .fix_screen import FixScreen
from .histogram_view import BINS, HistogramView
from .layer_view import LayerTable, LayerView
from .messages import EvaluationDone, LayersDone, RunFinished, RunMessage, SweepProgress
from .min_max_screen import MinMaxScreen
from .summary import ModelSummary
from .switches_screen import SwitchesScreen
from .warnings_screen import WarningsScreen
from .weight_table import WeightTable
from .weight_tree import WeightTree

if TYPE_CHECKING:
    from ..core.workbench import FixResult
    from .app import NpuTuiApp

PROGRESS_INTERVAL = 0.2
FIRST_NUMBERS_WAIT = 1.0


class WorkbenchScreen(Screen[None]):
    BINDINGS = [
        # the footer lists the focused screen's keys first (the app's ? again, to come first), and at 80
        # columns only nine fit: help, the test-save-undo loop, the views, fix, filter and quit are shown;
        # x, m, w, r, g and the rest are in the help (?), which names the command palette (ctrl+p) too
        Binding("question_mark", "app.help", "Help", key_display="?", id="workbench-help", tooltip="this help"),
        Binding(
            "ctrl+r",
            "evaluate",
            "Re-test",
            id="recompile",
            priority=True,
            tooltip="recompile and re-test on the data: model numbers, layers, then the sensitivity (background; Esc stops)",
        ),
        Binding(
            "ctrl+s",
            "save",
            "Save",
            id="save",
            priority=True,
            tooltip="save config.yaml (shows the diff first; keeps comments and a .bak)",
        ),
        Binding("u", "undo", "Undo", id="undo", tooltip="undo the last change"),
        Binding(
            "x",
            "toggle_exclude",
            "Exclude",
            show=False,
            id="toggle-exclude",
            tooltip="exclude the weight (EXCLUDE_COMPRESS_OPS: it stays fp16), or include it again",
        ),
        Binding(
            "m",
            "min_max",
            "Min/max",
            show=False,
            id="set-min-max",
            tooltip="set its WEIGHT_MIN_MAX range: typed, or a candidate ranked by the model metric, each with its clipped share",
        ),
        Binding(
            "t",
            "toggle_tab",
            "Table",
            id="toggle-table",
            tooltip="switch between the selected weight and the table of all weights",
        ),
        Binding(
            "d",
            "layers",
            "Layers",
            id="layer-view",
            tooltip="the layer view: error per layer along the network; again on a weight jumps to its layer",
        ),
        Binding(
            "F",
            "fix",
            "Fix",
            id="fix",
            tooltip="find the cheapest config that meets a target (accuracy drop, agreement or SQNR), live; accept as one undoable step",
        ),
        # a priority binding runs as the app reads the key, before it routes the keys that came with it (a
        # paste, an SSH packet): the focus is in the box by then, so "/td" sent at once is the filter's "td"
        Binding("slash", "filter", "Filter", key_display="/", id="filter", priority=True, tooltip="filter the weights by name"),
        Binding("q", "app.quit", "Quit", id="workbench-quit", tooltip="quit (asks first when there are unsaved changes)"),
        Binding(
            "w",
            "worst",
            "Worst",
            show=False,
            id="worst",
            tooltip="jump to the worst weight by the current numbers: lowest alone SQNR (after a test), else lowest own SQNR; none once the NPU model is not below float",
        ),
        Binding(
            "r", "reset_weight", "Reset", show=False, id="reset-weight", tooltip="reset the weight: automatic range, not excluded"
        ),
        Binding("g", "switches", "Switches", show=False, id="global-switches", tooltip="COMPRESS, CONV2D_COMPRESS and FUSE_BN"),
        Binding(
            "escape",
            "escape",
            "Cancel",
            show=False,
            id="escape",
            tooltip="cancel the running test, clear the filter, or go back from the Table or Layers to the weight",
        ),
        Binding("ctrl+y", "redo", "Redo", show=False, id="redo", priority=True, tooltip="redo"),
        Binding(
            "L",
            "histogram_log",
            "Log/linear",
            show=False,
            id="histogram-log",
            tooltip="histogram: log or linear counts (log shows long tails)",
        ),
        Binding(
            "o",
            "sort",
            "Sort",
            show=False,
            id="sort",
            tooltip="sort the table in view: weights by SQNR, alone, tail ratio, size; layers by graph order, accumulated, isolated",
        ),
        Binding(
            "R",
            "reload",
            "Reload",
            show=False,
            id="reload",
            tooltip="read config.yaml (and the data) from disk again, e.g. after adding INPUT_OPS; asks first when there are unsaved changes",
        ),
        Binding(
            "n", "next_match", "Next match", show=False, id="next-match", tooltip="the next weight the filter matches (after /)"
        ),
        Binding(
            "N",
            "previous_match",
            "Previous match",
            show=False,
            id="previous-match",
            tooltip="the previous weight the filter matches",
        ),
        Binding(
            "y",
            "copy_name",
            "Copy name",
            show=False,
            id="copy-name",
            tooltip="copy the selected weight's full name to the clipboard (OSC 52: works over SSH)",
        ),
        Binding(
            "P",
            "fix_pin",
            "Pin",
            show=False,
            id="fix-pin",
            tooltip="pin the selected weight: the fix search never changes it (again: unpin)",
        ),
        Binding(
            "W",
            "warnings",
            "Warnings",
            show=False,
            id="warnings",
            tooltip="the model's warnings, whole: what the chip computes otherwise than float, what gxnpuc will refuse",
        ),
        Binding(
            "B",
            "fix_forbid",
            "No exclude",
            show=False,
            id="fix-forbid",
            tooltip="the fix search may not exclude the selected weight (again: it may)",
        ),
    ]

    # What the screen shows besides the workbench: the weight in the Weight tab, the run in the summary,
    # the filter's text (the tree holds the weights it matches), and `revision`, the count of the workbench's
    # changes: every edit, undo, accepted fix, test, reload and save adds one. Setting one redraws what
    # shows it, once (always: the workbench under it may have changed meanwhile); no path redraws by hand.
    selected: var[str | None] = var(None, init=False, always_update=True)
    running: var[str | None] = var(None, init=False, always_update=True)
    name_filter: var[str] = var("", init=False, always_update=True)
    revision: var[int] = var(0, init=False)

    def __init__(self) -> None:
        super().__init__()
        self.evaluation_worker: Worker[None] | None = None
        self.histograms: dict[tuple[str, bool], Histogram] = {}
        self.table_drawn: tuple[str, int, str | None] | None = None  # (tab, revision, selection) the open table shows

    @property
    def npu(self) -> NpuTuiApp:
        return cast("NpuTuiApp", self.app)

    @property
    def workbench(self) -> Workbench:
        return self.npu.workbench

    # -- layout

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="main"):
            with Vertical(id="left"):
                yield FilterBox(self.filter_done, self.action_escape, placeholder="filter weights (Esc clears)", id="filter")
                yield WeightTree(id="weights")
            with TabbedContent(id="right"):
                with TabPane("Weight", id="tab-weight"):
                    yield HistogramView(id="histogram")
                    with VerticalScroll(id="details-panel", can_focus=True):
                        yield WeightDetails(id="details")
                with TabPane("Table", id="tab-table"):
                    yield WeightTable(id="table")
                with TabPane("Layers", id="tab-layers"):
                    yield LayerView(id="layers")
        yield ModelSummary(id="summary")
        yield Footer(compact=True, show_command_palette=False)  # at 80 columns the nine keys fit only so

    def on_mount(self) -> None:
        self._show_workbench()
        for _, warning in self.workbench.project.warnings:
            self.notify(warning, severity="warning", timeout=6)
        if self.workbench.evaluator is not None:
            self.call_after_refresh(self.action_evaluate)  # the first screen before onnxruntime loads

    def _show_workbench(self) -> None:
        """The tree of every weight for the app's workbench, the selection on it: at start and after R."""
        workbench = self.workbench
        self.app.sub_title = printable(str(workbench.project.config.path))
        if self.selected not in workbench.compilation.results:  # another model since
            self.selected = None
        self.name_filter = ""
        self.query_one(WeightTree).focus()
        self.revision += 1

    def watch_selected(self) -> None:
        self.refresh_selected()

    def watch_running(self) -> None:
        self.show_summary()

    def watch_name_filter(self) -> None:
        """The tree holds the weights the filter matches, its cursor on the selected one: when the filter
        hides that, on the first match, which becomes the selection (x, m, r act on what the cursor shows)."""
        workbench = self.workbench
        names = workbench.matching(self.name_filter)
        tree = self.query_one(WeightTree)
        tree.build(
            workbench.compilation,
            names,
            workbench.sensitivity,
            frozenset(workbench.fix_notes),
            workbench.sensitivity_stale,
            workbench.alarms,
        )
        if names and self.selected not in names:
            self.selected = names[0]
        if self.selected is not None:
            tree.select_weight(self.selected)

    def watch_revision(self) -> None:
        """The workbench changed: the tree's labels, the selected weight, the open table and the summary."""
        workbench = self.workbench
        self.query_one(WeightTree).relabel(
            workbench.compilation,
            workbench.sensitivity,
            frozenset(workbench.fix_notes),
            workbench.sensitivity_stale,
            workbench.alarms,
        )
        self.refresh_selected()
        self.refill_table()
        self.show_summary()

    def show_summary(self) -> None:
        self.query_one(ModelSummary).show(self.workbench, self.running)

    def refresh_selected(self) -> None:
        if self.selected is None:
            return
        result = self.workbench.result(self.selected)
        key = (self.selected, result.plan.fused)
        if key not in self.histograms:
            reference, _ = self.workbench.project.compiler.reference(result.weight, result.plan.fused)
            self.histograms[key] = histogram(reference, BINS)
        self.query_one(HistogramView).show(result, self.histograms[key])
        self.query_one(WeightDetails).show(
            result,
            self.workbench.sensitivity.get(self.selected),
            self.workbench.stale,
            self.workbench.sweep_complete or self.workbench.evaluator is None,  # without data nothing is missing
            self._fix_note(self.selected),
            self.workbench.alarms,
            self.workbench.project.compiler.fp16_cost_bytes(result.weight, result.plan),
            tuple(self.workbench.weight_warnings(self.selected)),
        )

    def _fix_note(self, name: str) -> str | None:
        notes = [self.workbench.fix_notes[name]] if name in self.workbench.fix_notes else []
        notes += ["pinned for fix"] if name in self.workbench.fix_pinned else []
        notes += ["fix may not exclude it"] if name in self.workbench.fix_forbidden else []
        return "; ".join(notes) or None

    def refill_table(self) -> None:
        """The tables are filled when shown: 2,000 rows need not follow every keystroke. A table that
        shows this revision and selection already is left alone (its cursor where the user put it)."""
        active = self.query_one(TabbedContent).active
        drawn = (active, self.revision, self.selected)
        if drawn == self.table_drawn:
            return
        self.table_drawn = drawn
        if active == "tab-table":
            workbench = self.workbench
            self.query_one(WeightTable).fill(
                workbench.compilation, workbench.sensitivity, workbench.sensitivity_stale, workbench.alarms, self.selected
            )
        elif active == "tab-layers":
            workbench = self.workbench
            samples = workbench.evaluator.data.samples if workbench.evaluator is not None else 0
            self.query_one(LayerView).show(
                workbench.layers, workbench.layers_stale, workbench.layer_samples, samples, workbench.alarms
            )

    @on(TabbedContent.TabActivated)
    def tab_shown(self) -> None:
        """However a tab came to the front (t, d, Esc, a click), its table shows the numbers of now."""
        self.refill_table()

    # -- selection

    @on(Tree.NodeHighlighted)
    def tree_moved(self, event: Tree.NodeHighlighted) -> None:
        if event.node.data is not None and event.node.data != self.selected:
            self.selected = event.node.data

    @on(WeightTable.RowHighlighted, "#table")
    def table_moved(self) -> None:
        """The table's cursor is the selection while the table is in front: x, m, r act on its row.
        The row is read now, not from the event: a refill posts one for the row it passes through."""
        if self.query_one(TabbedContent).active != "tab-table":
            return
        name = self.query_one(WeightTable).selected_weight()
        if name is not None and name != self.selected:
            self.selected = name
            self.query_one(WeightTree).select_weight(name)

    @on(WeightTable.RowSelected)
    def table_selected(self, event: WeightTable.RowSelected) -> None:
        self.selected = event.row_key.value
        if self.selected is not None:
            self.query_one(WeightTree).select_weight(self.selected)
        self.query_one(TabbedContent).active = "tab-weight"
        self.query_one(WeightTree).focus()  # never leave the focus on a hidden table

    # -- edits

    def _need_weight(self) -> str | None:
        if self.selected is None:
            self.notify("select a weight first", severity="warning")
        return self.selected

    def _edit(self, change: Callable[..., object], *args: object) -> None:
        """Apply one workbench change (this weight's numbers now, the model's stale until ctrl+r); a change
        the model cannot take is a notification, not a crash."""
        try:
            change(*args)
        except UserError as exc:
            self.notify(str(exc), severity="error", timeout=8)
            return
        self.revision += 1

    def action_toggle_exclude(self) -> None:
        if (name := self._need_weight()) is not None:
            self._edit(self.workbench.toggle_exclude, name)

    def action_reset_weight(self) -> None:
        if (name := self._need_weight()) is not None:
            self._edit(self.workbench.reset_weight, name)

    def action_min_max(self) -> None:
        name = self._need_weight()
        if name is None:
            return

        def apply(chosen: tuple[float, float] | None) -> None:
            if chosen is not None:
                self._edit(self.workbench.set_range, name, *chosen)
            else:
                self.refresh_selected()  # the histogram showed the dialog's candidates

        try:
            self.workbench.check_rangeable(name)
        except UserError as exc:  # a weight no range can quantize (NaN or Inf)
            self.notify(str(exc), severity="error", timeout=8)
            return
        self.app.push_screen(MinMaxScreen(self.workbench, name), apply)

    def action_switches(self) -> None:
        def apply(chosen: dict[str, bool] | None) -> None:
            if chosen:
                self.histograms.clear()
                self._edit(self.workbench.set_switches, chosen)

        self.app.push_screen(SwitchesScreen(self.workbench.settings), apply)

    def action_undo(self) -> None:
        if self.workbench.undo_stack:
            self._edit(self.workbench.undo)
        else:
            self.notify("nothing to undo", timeout=2)

    def action_redo(self) -> None:
        if self.workbench.redo_stack:
            self._edit(self.workbench.redo)
        else:
            self.notify("nothing to redo", timeout=2)

    # -- evaluation in a worker

    def action_evaluate(self) -> None:
        if self.workbench.evaluator is None:
            why = self.workbench.evaluation_error or "no evaluation data: start with --data NPZ"
            self.notify(why, severity="warning", timeout=10)
            return
        self.running = "evaluating..."
        self.evaluation_worker = self.evaluate_in_background()  # exclusive: a running one is cancelled

    @work(thread=True, exclusive=True, group="evaluate")
    def evaluate_in_background(self) -> None:
        """Model numbers first, then the sweep; each step posts a message, the UI thread draws it."""
        worker = get_current_worker()
        workbench = self.workbench  # R may put another in its place while this one finishes its step
        started = time.monotonic()
        shown_at = [0.0]

        def progress(done: int, total: int) -> None:
            now = time.monotonic()
            if now - shown_at[0] >= PROGRESS_INTERVAL or done == total:
                shown_at[0] = now
                left = (now - started) / done * (total - done) if done else 0.0
                self.post_message(SweepProgress(worker, done, total, left))

        def evaluated() -> None:
            shown = threading.Event()
            self.post_message(EvaluationDone(worker, shown))
            shown.wait(FIRST_NUMBERS_WAIT)  # the layers hold the GIL: let the model numbers reach the screen first

        def layers_done() -> None:
            nonlocal started
            self.post_message(LayersDone(worker))
            started = time.monotonic()

        try:
            workbench.retest(lambda: worker.is_cancelled, evaluated, layers_done, progress)
        except Cancelled:
            self.post_message(RunFinished(worker, "sensitivity stopped: weights not measured show no output SQNR", "warning"))
            return
        except Exception:  # a user's error or a bug: the workbench kept its text; neither takes the screen down
            self.post_message(RunFinished(worker, workbench.evaluation_error, "error"))
            return
        self.post_message(RunFinished(worker, None, None))

    def _current(self, message: RunMessage) -> bool:
        """Messages of a worker that a newer one replaced are dropped: it must not touch the new run.
        So are those that arrive while the app closes."""
        return message.worker is self.evaluation_worker and bool(self.app.screen_stack) and self.app.is_running

    def on_evaluation_done(self, message: EvaluationDone) -> None:
        """The model-level numbers are in; the sensitivity sweep goes on."""
        if self._current(message):
            self.running = "sensitivity..."
            self.revision += 1
            evaluation = self.workbench.evaluation
            if evaluation is not None and evaluation.simulation_note:  # the summary says "fast"; this says why
                self.npu.notify(
                    f"model numbers from the fast simulation, not exact: {evaluation.simulation_note}", severity="warning"
                )
        self.call_after_refresh(message.shown.set)

    def on_layers_done(self, message: LayersDone) -> None:
        if self._current(message):
            self.revision += 1

    def on_sweep_progress(self, message: SweepProgress) -> None:
        if self._current(message):
            self.running = f"sensitivity {message.done}/{message.total}, {message.seconds_left:.0f} s left (Esc stops)"

    def on_run_finished(self, message: RunFinished) -> None:
        if not self._current(message):
            return
        self.running = None
        self.evaluation_worker = None
        if message.text:
            self.npu.notify(message.text, severity=message.severity or "information")
        self.revision += 1

    # -- filter, tabs, escape

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """In the filter box / is a letter of a name (TF scopes), not the filter key: the priority binding
        steps aside there (and leaves the footer)."""
        return not (action == "filter" and self.focused is not None and self.focused.id == "filter")

    def action_filter(self) -> None:
        """The box shown and focused now, not after a refresh (`focus` waits for one): the app forwards
        the next key to whatever is focused when it reads it."""
        box = self.query_one("#filter", Input)
        box.disabled = False
        box.add_class("shown")
        self.set_focus(box)

    @on(Input.Changed, "#filter")
    def filter_changed(self, event: Input.Changed) -> None:
        if event.value != self.name_filter:  # not the echo of a box Esc or R cleared
            self.name_filter = event.value

    def filter_done(self) -> None:
        """Enter in the box: the tree has the focus now, for the keys sent with the Enter (FilterBox)."""
        self.set_focus(self.query_one(WeightTree))

    def action_escape(self) -> None:
        if self.evaluation_worker is not None and not self.evaluation_worker.is_cancelled:
            self.evaluation_worker.cancel()
            self.running = "stopping..."
            return
        box = self.query_one("#filter", Input)
        if box.has_class("shown"):
            box.value = ""
            box.remove_class("shown")
            box.disabled = True  # a hidden box must never take keys
            self.name_filter = ""
            self.set_focus(self.query_one(WeightTree))  # now: Esc in the box comes as a priority key (FilterBox)
            return
        tabs = self.query_one(TabbedContent)
        if tabs.active != "tab-weight":  # back from the Table or the Layers, to the selected weight
            tabs.active = "tab-weight"
            self.query_one(WeightTree).focus()
            self.refresh_selected()

    def action_layers(self) -> None:
        tabs = self.query_one(TabbedContent)
        view = self.query_one(LayerView)
        if tabs.active != "tab-layers":
            tabs.active = "tab-layers"
            self.refill_table()  # now, before the jump to the weight's layer
        if self.workbench.layers is None:
            self.notify("no layer numbers yet: they come with the test (ctrl+r)", timeout=3)
        elif self.selected is not None and not view.show_weight(self.selected):
            self.notify("the selected weight is read inside a subgraph: its layer is the node holding it", timeout=3)
        self.query_one(LayerTable).focus()

    @on(LayerTable.WeightChosen)
    def layer_weight_chosen(self, event: LayerTable.WeightChosen) -> None:
        self.selected = event.weight
        self.query_one(WeightTree).select_weight(event.weight)
        self.query_one(TabbedContent).active = "tab-weight"
        self.query_one(WeightTree).focus()

    def action_fix(self) -> None:
        def accepted(result: FixResult | None) -> None:
            if result is None:
                return
            self._edit(self.workbench.accept_fix, result)
            names = ", ".join(printable(c.weight or "the switches") for c in result.changes)
            self.notify(f"fix applied ({names}); u undoes it; ctrl+s saves", timeout=8)
            self.action_evaluate()  # its numbers, not the old config's, decide the marks

        self.app.push_screen(FixScreen(self.workbench), accepted)

    def _toggle_mark(self, toggle: Callable[[str], bool], word: str) -> None:
        if (name := self._need_weight()) is None:
            return
        marked = toggle(name)
        self.notify(f"{name}: {word if marked else 'no longer ' + word} for the fix search", timeout=3)
        self.revision += 1

    def action_fix_pin(self) -> None:
        self._toggle_mark(self.workbench.toggle_pin, "pinned")

    def action_fix_forbid(self) -> None:
        self._toggle_mark(self.workbench.toggle_forbid, "never excluded")

    def _step_match(self, step: int) -> None:
        text = self.name_filter
        names = self.workbench.matching(text)
        if not text or not names:
            self.notify("no filter: / filters the weights by name, then n and N step through them", timeout=3)
            return
        here = names.index(self.selected) if self.selected in names else -1
        self.selected = names[(here + step) % len(names)]
        self.query_one(WeightTree).select_weight(self.selected)

    def action_next_match(self) -> None:
        self._step_match(1)

    def action_previous_match(self) -> None:
        self._step_match(-1)

    def action_copy_name(self) -> None:
        if (name := self._need_weight()) is None:
            return
        self.app.copy_to_clipboard(name)
        self.notify(f"copied {name} to the clipboard", timeout=2)

    def action_worst(self) -> None:
        worst = self.workbench.worst_weight()
        if worst is None:
            ev = self.workbench.evaluation
            if not self.workbench.alarms and ev is not None and ev.accuracy_npu is not None and ev.accuracy_float is not None:
                why = f"no weight hurts: NPU accuracy {ev.accuracy_npu:.2%} is not below float {ev.accuracy_float:.2%}"
            else:
                why = "no weight is quantized under these settings"
            self.notify(why, timeout=3)
            return
        self.selected = worst
        self.query_one(TabbedContent).active = "tab-weight"
        self.query_one(WeightTree).select_weight(self.selected)
        self.query_one(WeightTree).focus()

    def action_warnings(self) -> None:
        chip, refused = self.workbench.chip_warnings, self.workbench.project.model_warnings
        if not chip and not refused:
            self.notify(
                "no warnings: nothing in this graph the chip computes otherwise than float, nothing gxnpuc refuses", timeout=3
            )
            return
        self.app.push_screen(WarningsScreen(chip, refused))

    def action_histogram_log(self) -> None:
        view = self.query_one(HistogramView)
        view.action_toggle_log()
        self.notify("histogram: " + ("log10 counts" if view.log_counts else "linear counts"), timeout=2)

    def action_sort(self) -> None:
        active = self.query_one(TabbedContent).active
        if active == "tab-table":
            self.query_one(WeightTable).action_cycle_sort()
        elif active == "tab-layers":
            self.query_one(LayerTable).action_cycle_sort()
        else:
            self.notify("o sorts the Table (t) or the Layers (d)", timeout=2)

    def action_toggle_tab(self) -> None:
        tabs = self.query_one(TabbedContent)
        tabs.active = "tab-table" if tabs.active == "tab-weight" else "tab-weight"
        if tabs.active == "tab-table":
            self.refill_table()  # now, before the keys that follow move its cursor
            self.query_one(WeightTable).focus()
        else:
            self.query_one(WeightTree).focus()

    # -- reload, save, help, quit

    def action_reload(self) -> None:
        if not self.workbench.dirty:
            self._reload()
            return
        question = "Unsaved changes. Drop them and reload config.yaml from disk?"
        self.app.push_screen(ConfirmScreen(question), lambda yes: self._reload() if yes else None)

    def _reload(self) -> None:
        """A config that no longer loads leaves the workbench as it was, with the reason."""
        try:
            workbench = self.npu.reopen()
        except UserError as exc:
            self.notify(f"not reloaded: {exc}", severity="error", timeout=10)
            return
        if self.evaluation_worker is not None:
            self.evaluation_worker.cancel()
            self.evaluation_worker, self.running = None, None
        self.npu.workbench = workbench
        self.histograms.clear()
        box = self.query_one("#filter", Input)
        box.value, box.disabled = "", True
        box.remove_class("shown")
        self._show_workbench()
        self.notify(f"reloaded {workbench.project.config.path}", timeout=3)
        if workbench.evaluator is not None:
            self.action_evaluate()

    def action_save(self) -> None:
        try:
            changed = self.workbench.changed_on_disk()
        except (UserError, OSError) as exc:
            self.notify(str(exc), severity="error")
            return
        if changed:

            def chosen(choice: str | None) -> None:
                if choice is not None:
                    self._save(overwrite=choice == "overwrite")

            self.app.push_screen(ConflictScreen(str(self.workbench.project.config.path)), chosen)
            return
        self._save(overwrite=False)

    def _save(self, overwrite: bool) -> None:
        try:
            diff = self.workbench.diff(overwrite)
        except (UserError, OSError) as exc:
            self.notify(str(exc), severity="error")
            return
        if not diff:
            self.notify("nothing to save: the file already says this", timeout=3)
            return

        def write(yes: bool | None) -> None:
            if not yes:
                return
            try:
                backup = self.workbench.save(overwrite)
            except UserError as exc:
                self.notify(str(exc), severity="error")
                return
            self.notify(f"saved {self.workbench.project.config.path} (previous kept as {backup.name})")
            self.revision += 1

        self.app.push_screen(ConfirmScreen(f"Write these changes to {self.workbench.project.config.path}?", diff), write)
