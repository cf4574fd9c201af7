"""A workbench on a private copy of a sample, so tests can save without touching the repository."""

from __future__ import annotations

import shutil
from pathlib import Path

from conftest import SAMPLES


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


async def settle(pilot, poll: float = 0.02) -> None:
    """Until the test in progress, or the first one, has finished: the app starts the first test
    after its first frame, so the worker registry alone can still be empty at this point."""
    app = pilot.app
    workbench = app.workbench
    while app.main_screen.running is not None or (
        workbench.evaluator is not None and workbench.evaluation is None and workbench.evaluation_error is None
    ):
        await pilot.pause(poll)
        workbench = app.workbench
    await app.workers.wait_for_complete()
    await pilot.pause()
