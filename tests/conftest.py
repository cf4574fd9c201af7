import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import pytest

SAMPLES = Path(__file__).resolve().parent.parent / "sample_models"


def open_sample(name: str):
    from npu_tui.core.config.project import open_project
    from npu_tui.core.sim.analysis import Analysis
    from npu_tui.core.sim.eval_data import load_npz, model_inputs
    from npu_tui.core.sim.evaluate import Evaluator

    project = open_project(SAMPLES / name / "config.yaml")
    data = load_npz(SAMPLES / name / "eval.npz", model_inputs(project.inventory.model, project.config.input_shapes))
    return project, Analysis(Evaluator(project.compiler, data, project.config.output_names))


@pytest.fixture(scope="module")
def kws():
    return open_sample("kws_tdnn")


@pytest.fixture(scope="module")
def cnn():
    return open_sample("cnn_bn")
