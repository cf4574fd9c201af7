"""Which data a config is evaluated on, and opening a workbench from a config: one rule for the CLI
commands, the workbench's start and its reload (R), so they never disagree about the data."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .config.project import Project, open_project
from .errors import UserError
from .sim.eval_data import EvalData, load_npz, model_inputs, random_data
from .workbench import Workbench

RANDOM_SAMPLES = 64


@dataclass(frozen=True)
class DataChoice:
    """What the user asked for: --data, --samples, --seed."""

    path: Path | None = None
    samples: int | None = None
    seed: int = 0


def project_data(project: Project, choice: DataChoice) -> EvalData:
    """--data, else eval.npz beside the config, else seeded random inputs of the model's shapes."""
    inputs = model_inputs(project.inventory.model, project.config.input_shapes)
    source = choice.path or project.config.path.parent / "eval.npz"
    if choice.path is not None or source.is_file():
        return load_npz(source, inputs, choice.samples)
    return random_data(inputs, choice.samples or RANDOM_SAMPLES, choice.seed)


def open_workbench(config: Path, choice: DataChoice) -> Workbench:
    """The project and its data; data that cannot be made (a dynamic input without INPUT_OPS) leaves
    a workbench without evaluation whose summary says why, unless the user named the data file."""
    project = open_project(config)
    data: EvalData | None = None
    problem: str | None = None
    try:
        data = project_data(project, choice)
    except UserError as exc:
        if choice.path is not None:
            raise
        problem = f"no evaluation: {exc}"
    workbench = Workbench(project, data)
    workbench.evaluation_error = problem
    return workbench
