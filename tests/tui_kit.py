"""A workbench on a private copy of a sample, so tests can save without touching the repository; and
the waits a TUI test needs, each with a deadline and a message saying what it waited for."""

from __future__ import annotations

import asyncio
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path

from conftest import SAMPLES

DEADLINE = 120.0  # seconds: far beyond any run on a loaded machine; only a hang ever reaches it


def copy_sample(name: str, folder: Path) -> Path:
    for item in (SAMPLES / name).iterdir():
        shutil.copy(item, folder / item.name)
    return folder / "config.yaml"


def make_app(config: Path, with_data: bool = True):
    from npu_tui.core.config.project import open_project
    from npu_tui.core.sim.eval_data import load_npz, model_inputs
    from npu_tui.core.workbench import Workbench
    from npu_tui.tui.app import NpuTuiApp

    project = open_project(config)
    data = None
    if with_data:
        data = load_npz(config.parent / "eval.npz", model_inputs(project.inventory.model, project.config.input_shapes))
    return NpuTuiApp(Workbench(project, data))


TDNN1, TDNN2 = "tdnn1.affine/conv1d/ExpandDims_1/_5__cf__5", "tdnn2.affine/conv1d/ExpandDims_1/_7__cf__7"
WARNED_CONFIG = f"EXCLUDE_COMPRESS_OPS: [tdnn1.affine/conv1d]\nWEIGHT_MIN_MAX:\n  {TDNN2}: [0.1, 0.5]\n"


def warned_tf_sample(folder: Path) -> Path:
    """The TF sample with a range that excludes 0 on tdnn2 (values stuck, saturation) and, meant for
    tdnn1, a node name gxnpuc ignores: a warning of each kind, each about one weight."""
    config = copy_sample("kws_tdnn_pb", folder)
    config.write_text(config.read_text() + WARNED_CONFIG)
    return config


async def until(pilot, condition: Callable[[], object], limit: float = DEADLINE, message: Callable[[], str] = lambda: "") -> None:
    """Until `condition` holds, letting the app run; past `limit` seconds the test fails saying so.
    The limit is a deadline against hangs, not a speed requirement."""
    end = time.monotonic() + limit
    while not condition() and time.monotonic() < end:
        await asyncio.sleep(0.02)
    assert condition(), f"still waiting after {limit:g} s: {message() or 'the condition'}"


BURST_KEYS = {"/": "slash", "\r": "enter", "\x1b": "escape"}


def burst(pilot, text: str) -> None:
    """Every key of `text` queued at once, as a terminal hands the app a paste or an SSH packet of
    keystrokes: no key waits for the one before to be handled (Pilot.press waits for idle after each)."""
    from textual import events

    for char in text:
        key = BURST_KEYS.get(char, char)
        pilot.app.post_message(events.Key(key, char if char.isprintable() else None))


def _first_test_done(app) -> bool:
    workbench = app.workbench
    started = workbench.evaluator is None or workbench.evaluation is not None or workbench.evaluation_error is not None
    return started and app.main_screen.running is None


async def settle(pilot, limit: float = DEADLINE) -> None:
    """Until the test in progress, or the first one, has finished (the app starts the first test after
    its first frame, so the worker registry alone can still be empty at this point), then until every
    worker has ended and the messages they posted are handled."""
    app = pilot.app
    await until(
        pilot,
        lambda: _first_test_done(app),
        limit,
        lambda: f"the workbench's test to finish (running: {app.main_screen.running!r})",
    )
    await asyncio.wait_for(app.workers.wait_for_complete(), limit)
    await pilot.pause()


class Gate:
    """Holds the evaluator's runs made by one worker (by its method name) after its first `free` runs,
    until the test lets them go: the test decides the order of events (Esc while run N is under way),
    never the machine's speed. A held run that nobody lets go fails after the deadline instead of hanging."""

    def __init__(self, monkeypatch, worker: str, free: int, deadline: float = DEADLINE) -> None:
        from npu_tui.core.sim.evaluate import Evaluator

        self.worker, self.free, self.deadline = worker, free, deadline
        self.calls: dict[int, int] = {}
        self.waiting: dict[int, threading.Event] = {}
        self.opened = threading.Event()
        self.lock = threading.Lock()
        measure = Evaluator.measure

        def gated(evaluator, *args, **kwargs):
            self._turn()
            return measure(evaluator, *args, **kwargs)

        monkeypatch.setattr(Evaluator, "measure", gated)

    def _turn(self) -> None:
        from textual.worker import NoActiveWorker, get_current_worker

        try:
            worker = get_current_worker()
        except NoActiveWorker:
            return
        if worker.name != self.worker or self.opened.is_set():
            return
        with self.lock:
            count = self.calls[id(worker)] = self.calls.get(id(worker), 0) + 1
            if count <= self.free:
                return
            event = self.waiting[id(worker)] = threading.Event()
        if not event.wait(self.deadline):
            raise AssertionError(f"run {count} of worker {self.worker} was held {self.deadline:g} s and never let go")

    @property
    def held(self) -> int:
        """How many workers wait at the gate now."""
        with self.lock:
            return sum(not e.is_set() for e in self.waiting.values())

    def release_held(self) -> None:
        """Let the runs waiting now go on; later runs past `free` are held again."""
        with self.lock:
            for event in self.waiting.values():
                event.set()

    def open(self) -> None:
        """Let every run through from now on."""
        self.opened.set()
        self.release_held()
