"""The workbench state without a screen: edits, undo/redo, staleness, range suggestions, saving."""

import pytest
from tui_kit import copy_sample

from npu_tui.core.config.project import open_project
from npu_tui.core.sim.eval_data import load_npz, model_inputs
from npu_tui.core.workbench import Workbench


@pytest.fixture
def bench(tmp_path):
    config = copy_sample("kws_tdnn", tmp_path)
    project = open_project(config)
    return Workbench(project, load_npz(tmp_path / "eval.npz", model_inputs(project.inventory.model, project.config.input_shapes)))


def test_edits_undo_redo_and_staleness(bench):
    assert bench.stale and not bench.dirty
    assert bench.evaluate().accuracy_npu == pytest.approx(0.2881, abs=1e-4)  # tdnn1.affine quantized as gxnpuc does
    assert not bench.stale
    bench.toggle_exclude("tdnn1.affine")
    assert bench.settings.exclude == ("tdnn1.affine",) and bench.dirty and bench.stale
    assert bench.result("tdnn1.affine").plan.reason == "excluded"
    bench.set_range("prefinal-l", -0.4, 0.4)
    assert bench.result("prefinal-l").params.nudged_min == pytest.approx(-0.4, abs=0.004)
    assert bench.undo() and bench.settings.weight_min_max == {}
    assert bench.undo() and not bench.dirty and not bench.undo()
    assert bench.redo() and bench.settings.exclude == ("tdnn1.affine",)
    bench.reset_weight("tdnn1.affine")
    assert bench.settings.exclude == () and not bench.redo_stack


def test_a_weight_excluded_by_its_node_name_is_included_again(bench):
    from dataclasses import replace

    bench.apply(replace(bench.settings, exclude=("tdnn1",)))
    assert bench.result("tdnn1.affine").plan.reason == "excluded"
    bench.toggle_exclude("tdnn1.affine")
    assert bench.settings.exclude == () and bench.result("tdnn1.affine").plan.quantized


def test_range_suggestions_carry_the_sqnr_they_give(bench):
    found = {s.label: s for s in bench.range_suggestions("prefinal-l")}
    assert set(found) == {"bulk 99.9%", "MSE-optimal"}
    auto = bench.result("prefinal-l").errors.sqnr_db
    assert found["MSE-optimal"].sqnr_db >= auto
    lo, hi = found["bulk 99.9%"].range
    assert bench.sqnr_with_range("prefinal-l", (lo, hi)) == found["bulk 99.9%"].sqnr_db
    assert bench.settings.weight_min_max == {}  # asking does not change anything


def test_sweep_and_save(bench, tmp_path):
    bench.sweep()
    assert min(bench.sensitivity.values(), key=lambda s: s.output_sqnr_db).weight == "tdnn1.affine"
    bench.toggle_exclude("tdnn1.affine")
    assert "+EXCLUDE_COMPRESS_OPS: [tdnn1.affine]" in bench.diff()
    bench.save()
    assert not bench.dirty and (tmp_path / "config.yaml.bak").exists()
    assert open_project(tmp_path / "config.yaml").config.settings.exclude == ("tdnn1.affine",)
