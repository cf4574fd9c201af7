"""The workbench state without a screen: edits, undo/redo, staleness, range suggestions, saving."""

import pytest

from npu_tui.core.eval_data import load_npz, model_inputs
from npu_tui.core.project import open_project
from npu_tui.core.workbench import Workbench
from tui_kit import copy_sample


@pytest.fixture
def bench(tmp_path):
    config = copy_sample("kws_tdnn", tmp_path)
    project = open_project(config)
    return Workbench(project, load_npz(tmp_path / "eval.npz", model_inputs(project.inventory.model, project.config.input_shapes)))


def test_edits_undo_redo_and_staleness(bench):
    assert bench.stale and not bench.dirty
    assert bench.evaluate().accuracy_npu == pytest.approx(0.1591, abs=1e-4)
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


def test_why_a_weight_is_fp16_survives_the_compile_cache(bench):
    """Excluded, then kept fp16 by its switch: the same fp16 numbers, but a different state on screen."""
    from dataclasses import replace

    from npu_tui.core.kinds import Reason

    bench.toggle_exclude("tdnn1.affine")
    assert bench.result("tdnn1.affine").plan.reason == Reason.EXCLUDED
    bench.apply(replace(bench.settings, conv2d_compress=False))
    assert bench.result("tdnn1.affine").plan.reason == Reason.CONV2D_COMPRESS_OFF
    bench.apply(replace(bench.settings, conv2d_compress=True))
    assert bench.result("tdnn1.affine").plan.reason == Reason.EXCLUDED
    bench.apply(replace(bench.settings, compress=False))
    assert bench.result("prefinal-l").plan.reason == Reason.COMPRESS_OFF
    bench.apply(replace(bench.settings, compress=True, exclude=("prefinal-l",)))
    assert bench.result("prefinal-l").plan.reason == Reason.EXCLUDED


def test_alarms_come_from_the_current_numbers(bench):
    """Low SQNRs alarm while the NPU model loses accuracy; once a config beats float they hurt nothing,
    and stale numbers never decide either way."""
    bench.evaluate()
    bench.sweep()
    assert bench.alarms and bench.worst_weight() == "tdnn1.affine"
    bench.set_range("tdnn1.affine", -9.957, 4.954)  # the range the fix search finds for a 1-point drop
    assert bench.stale and bench.alarms  # no current model numbers: the data-free SQNRs still alarm
    assert bench.worst_weight() == "tdnn1.affine"  # by its own SQNR now: the alone numbers are stale
    evaluation = bench.evaluate()
    assert evaluation.accuracy_npu > evaluation.accuracy_float
    assert not bench.alarms and bench.worst_weight() is None
    bench.undo()
    assert bench.alarms
