"""The fix screen (F): give a target, watch the search try configs (metric against NPU bytes, the
target as a line), stop it when you like, and accept its result as one undoable step."""

from __future__ import annotations

import math

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Footer, Input, Label, Static
from textual.worker import Worker, get_current_worker
from textual_plotext import PlotextPlot

from ..core.errors import UserError
from ..core.kinds import TargetKind
from ..core.text import printable, shorten_middle
from ..core.workbench import (
    ACTION_SHORT,
    FixResult,
    Search,
    Target,
    Visit,
    Workbench,
    switch_words,
    target_problem,
)

KINDS = {"drop": TargetKind.MAX_DROP, "agree": TargetKind.MIN_AGREEMENT, "sqnr": TargetKind.MIN_SQNR}
UNITS = {
    TargetKind.MAX_DROP: "points of accuracy lost",
    TargetKind.MIN_AGREEMENT: "% top-1 agreement",
    TargetKind.MIN_SQNR: "dB worst output SQNR",
}


def parse_target(text: str, has_labels: bool) -> Target | str:
    """'1' (accuracy drop, with labels), 'drop 1', 'agree 99' or 'sqnr 30'; or what is wrong."""
    words = text.lower().split()
    if len(words) == 1:
        words = ["drop" if has_labels else "sqnr", words[0]]
    if len(words) != 2 or words[0] not in KINDS:
        return "type a number, or drop N, agree N or sqnr N"
    try:
        value = float(words[1])
    except ValueError:
        return f"not a number: {printable(words[1])}"
    problem = target_problem(KINDS[words[0]], value)
    return Target(KINDS[words[0]], value) if problem is None else problem


class FixPlot(PlotextPlot, can_focus=True):
    PANEL = "Fix screen (F): plot"  # as the help names it: what the screen shows, not the class
    HELP = (
        "Every config the search tried: its metric against its bytes; S marks the switch rows the paths "
        "start from, the line is the target. Exact and diverged outputs have no point."
    )

    def draw(self, visits: list[Visit], target: Target | None) -> None:
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        points = [v for v in visits if v.metric is not None and math.isfinite(v.metric)]
        if points:
            rows = [v for v in points if v.row]
            met = [v for v in points if v.met and not v.row]
            missed = [v for v in points if not v.met and not v.row]
            if missed:
                plt.scatter([v.bytes for v in missed], [v.metric for v in missed], marker="x", label="misses")
            if met:
                plt.scatter([v.bytes for v in met], [v.metric for v in met], marker="o", label="meets")
            if rows:
                plt.scatter([v.bytes for v in rows], [v.metric for v in rows], marker="S", label="switch rows")
            if target is not None and math.isfinite(target.value):
                plt.hline(target.value, "red")
        plt.xlabel("NPU bytes")
        plt.title(f"{UNITS[target.kind]} against NPU bytes" if target else "metric against NPU bytes")
        self.refresh()


class FixVisited(Message):
    def __init__(self, worker: Worker, visit: Visit) -> None:
        super().__init__()
        self.worker, self.visit = worker, visit


class FixSweeping(Message):
    def __init__(self, worker: Worker, start: str, done: int, total: int) -> None:
        super().__init__()
        self.worker, self.start, self.done, self.total = worker, start, done, total


class FixFinished(Message):
    def __init__(self, worker: Worker, result: FixResult | None, error: str | None) -> None:
        super().__init__()
        self.worker, self.result, self.error = worker, result, error


class FixScreen(Screen[FixResult | None]):
    BINDINGS = [
        Binding("escape", "stop_or_close", "Stop / back", id="fix-stop"),
        Binding("a", "accept", "Accept", id="fix-accept"),
        Binding("q", "leave", "Back", id="fix-leave"),
    ]
    HELP = (
        "Type a target and Enter: a number is the accuracy points you may lose (with labels), or "
        "'agree 99' / 'sqnr 30'. The plot shows each config tried; Esc stops the search (the best so far "
        "is kept) or goes back; a accepts the result as one undoable step. On the main screen, P pins the "
        "selected weight (the search never changes it) and B keeps it from being excluded."
    )

    def __init__(self, workbench: Workbench) -> None:
        super().__init__()
        self.workbench = workbench
        self.target: Target | None = None
        self.visits: list[Visit] = []
        self.result: FixResult | None = None
        self.search_worker: Worker | None = None
        self.running: Search | None = None

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Input(placeholder="target: accuracy points you may lose (e.g. 1), or agree 99, or sqnr 30", id="fix-target")
            yield Label("", id="fix-status")
            yield FixPlot(id="fix-plot")
            with VerticalScroll(id="fix-scroll"):  # rows, paths and changes can outgrow 80x24
                yield Static("", id="fix-log")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(Input).focus()
        pinned, forbidden = self.workbench.fix_pinned, self.workbench.fix_forbidden
        held = f"pinned: {', '.join(sorted(pinned))}; " if pinned else ""
        held += f"never excluded: {', '.join(sorted(forbidden))}; " if forbidden else ""
        self._status(printable(held) + "Enter starts the search")

    def _status(self, text: str) -> None:
        self.query_one("#fix-status", Label).update(Text(text))

    def on_input_submitted(self, event: Input.Submitted) -> None:
        has_labels = self.workbench.evaluator is not None and self.workbench.evaluator.data.labels is not None
        parsed = parse_target(event.value, has_labels)
        if isinstance(parsed, str):
            self._status(parsed)
            return
        if self.workbench.evaluator is None:
            self._status("no evaluation data: start npu-tui with --data NPZ")
            return
        self.target, self.visits, self.result = parsed, [], None
        self.query_one(FixPlot).draw([], parsed)
        self.query_one("#fix-log", Static).update(Text("searching..."))
        self.query_one(FixPlot).focus()
        self.search_worker = self.search(parsed, frozenset(self.workbench.fix_pinned), frozenset(self.workbench.fix_forbidden))

    @work(thread=True, exclusive=True, group="fix")
    def search(self, target: Target, pinned: frozenset[str], forbidden: frozenset[str]) -> None:
        worker = get_current_worker()
        workbench = self.workbench
        assert workbench.analysis is not None  # the search starts only with data
        try:
            search = Search(
                workbench.project,
                workbench.analysis,
                target,
                pinned=pinned,
                forbidden=forbidden,
                on_visit=lambda visit: self._post(FixVisited(worker, visit)),
                stop=lambda: worker.is_cancelled,
                on_sweep=lambda start, done, total: self._post(FixSweeping(worker, start, done, total)),
            )
            self.running = search  # what it is doing, for the status and the tests
            result = search.run(workbench.settings)
        except UserError as exc:
            self.post_message(FixFinished(worker, None, str(exc)))
            return
        except Exception as exc:  # a bug must not take the workbench down
            self.post_message(FixFinished(worker, None, f"the search failed: {exc!r}"))
            return
        self.post_message(FixFinished(worker, result, None))

    def _post(self, message: Message) -> None:
        self.post_message(message)

    def on_fix_visited(self, message: FixVisited) -> None:
        if message.worker is not self.search_worker:
            return
        self.visits.append(message.visit)
        if len(self.visits) % 4 == 1:  # redraw now and then: hundreds of points come fast
            self.query_one(FixPlot).draw(self.visits, self.target)
        start = f" from {printable(message.visit.start)}" if message.visit.start else ""
        self._status(f"{len(self.visits)} configs tried{start} (Esc stops; the best so far is kept)")

    def on_fix_sweeping(self, message: FixSweeping) -> None:
        if message.worker is not self.search_worker:
            return
        self._status(
            f"ranking the weights from {printable(message.start)}: {message.done}/{message.total} runs (Esc stops; the best so far is kept)"
        )

    def on_fix_finished(self, message: FixFinished) -> None:
        if message.worker is not self.search_worker:
            return
        self.search_worker = None
        if message.error or message.result is None:
            self._status(printable(message.error or "no result"))
            return
        self.result = message.result
        self.query_one(FixPlot).draw(self.visits, self.target)
        result = message.result
        self.query_one("#fix-log", Static).update(self._log(result))
        verdict = "target met" if result.met else "target NOT met"
        stopped = "stopped: best so far, " if result.stopped else ""
        self._status(f"{stopped}{verdict} with {len(result.changes)} change(s): a accepts, Esc goes back")

    def _log(self, result: FixResult) -> Text:
        text = Text()
        target = result.target
        for row in result.localization:
            switches = f"C{int(row['COMPRESS'])} C2D{int(row['CONV2D_COMPRESS'])} BN{int(row['FUSE_BN'])}"
            metric = target.text(row["metric"], short=True) if row["measured"] else "not run"
            text.append(f"{switches}: {metric}, {row['npu_bytes']:,} B{' meets' if row['met'] else ''}\n", style="dim")
        for path in result.paths:
            text.append(
                f"path from {shorten_middle(printable(path.start), 24)}: {target.text(path.start_metric, short=True)} -> "
                f"{target.text(path.end_metric, short=True)}, {path.end_bytes:,} B{' meets' if path.met else ''}\n",
                style="dim",
            )
        for change in result.changes:
            weight = shorten_middle(printable(change.weight or switch_words(change.settings)), 30)
            rng = f" [{change.range[0]:.4g}, {change.range[1]:.4g}]" if change.range else ""
            text.append(
                f"+ {ACTION_SHORT[change.action]} {weight}{rng}: {target.text(change.metric, short=True)}, {change.bytes:,} B\n"
            )
        (before, before_bytes), (after, after_bytes) = result.before, result.after
        text.append(
            f"{target.text(before, short=True)} -> {target.text(after, short=True)} ({result.simulation}), "
            f"{before_bytes:,} -> {after_bytes:,} B; "
            f"{result.evaluations} evaluations, {result.seconds:.1f} s"
        )
        if result.why:
            text.append(f"\nwhy: {printable(result.why)}")
        return text

    def action_stop_or_close(self) -> None:
        if self.search_worker is not None and not self.search_worker.is_cancelled:
            self.search_worker.cancel()
            self._status("stopping: the best so far is kept...")
            return
        self.dismiss(None)

    def action_leave(self) -> None:
        """q leaves this screen, as Esc does once the search stopped: it never quits the app from here."""
        if self.search_worker is not None:
            self.search_worker.cancel()
        self.dismiss(None)

    def action_accept(self) -> None:
        if self.result is None or not self.result.changes:
            self.app.notify("nothing to accept yet: run the search (Enter) and let it finish or stop it", timeout=3)
            return
        self.dismiss(self.result)
