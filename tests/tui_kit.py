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
    from npu_tui.core.eval_data import load_npz, model_inputs
    from npu_tui.core.project import open_project
    from npu_tui.core.workbench import Workbench
    from npu_tui.tui.app import NpuTuiApp

    project = open_project(config)
    data = None
    if with_data:
        data = load_npz(config.parent / "eval.npz", model_inputs(project.inventory.model, project.config.input_shapes))
    return NpuTuiApp(Workbench(project, data))
