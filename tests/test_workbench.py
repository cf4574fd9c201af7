"""The workbench state without a screen: edits, undo/redo, staleness, range suggestions, saving."""

import pytest
from tui_kit import TDNN1, TDNN2, copy_sample, warned_tf_sample

from npu_tui.core.config.project import open_project
from npu_tui.core.errors import ModelError
from npu_tui.core.sim.eval_data import load_npz, model_inputs
from npu_tui.core.workbench import Cancelled, Workbench


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


def test_pins_and_forbids_are_undone_with_the_edits_around_them(bench):
    bench.toggle_exclude("tdnn1.affine")
    assert bench.toggle_pin("tdnn2.affine") and bench.toggle_forbid("prefinal-l")
    assert bench.fix_pinned == {"tdnn2.affine"} and bench.fix_forbidden == {"prefinal-l"}
    assert bench.undo() and bench.fix_forbidden == frozenset() and bench.fix_pinned == {"tdnn2.affine"}
    assert bench.undo() and bench.fix_pinned == frozenset() and bench.settings.exclude == ("tdnn1.affine",)
    assert bench.redo() and bench.fix_pinned == {"tdnn2.affine"}
    assert not bench.toggle_pin("tdnn2.affine") and bench.fix_pinned == frozenset() and not bench.redo_stack


def test_the_filter_matches_any_case_in_model_order(bench):
    names = [w.name for w in bench.project.inventory.weights]
    assert bench.matching("") == names
    assert bench.matching("TDNN1") == [n for n in names if "tdnn1" in n] and bench.matching("TDNN1")
    assert bench.matching("no such weight") == []


def test_an_accepted_fix_is_one_undo_step_and_notes_what_it_did(bench):
    from npu_tui.core.kinds import FixAction, TargetKind
    from npu_tui.core.quant import edits
    from npu_tui.core.triage.fix import Change, FixResult, Target

    inventory, start = bench.project.inventory, bench.settings
    fixed = edits.set_range(inventory, edits.exclude(inventory, start, "tdnn1.affine"), "prefinal-l", -0.4, 0.4)
    changes = [
        Change(FixAction.EXCLUDE, "tdnn1.affine", None, 1.0, 100, fixed),
        Change(FixAction.RANGE, "prefinal-l", (-0.4, 0.4), 0.5, 90, fixed),
    ]
    result = FixResult(True, Target(TargetKind.MAX_DROP, 1.0), (5.0, 80), (0.5, 90), [], changes, fixed, 3, 0.1, [])
    bench.accept_fix(result)
    assert bench.settings == fixed and bench.fix_notes == {
        "tdnn1.affine": "exclude by fix",
        "prefinal-l": "range [-0.4, 0.4] by fix",
    }
    assert bench.undo() and bench.settings == start and not bench.undo()


def test_a_weight_excluded_by_its_node_name_is_included_again(bench):
    from dataclasses import replace

    bench.apply(replace(bench.settings, exclude=("tdnn1",)))
    assert bench.result("tdnn1.affine").plan.reason == "excluded"
    bench.toggle_exclude("tdnn1.affine")
    assert bench.settings.exclude == () and bench.result("tdnn1.affine").plan.quantized


def test_range_candidates_are_ranked_by_the_model_metric_with_their_clipped_share(bench):
    """The README's kws case: the weight's own SQNR prefers the full range, accuracy a clipped one."""
    found = bench.range_candidates("tdnn1.affine")
    assert bench.metric_label == "accuracy"
    auto = next(c for c in found if c.label == "automatic")
    assert auto.clipped == bench.result("tdnn1.affine").errors.clipped_fraction  # the nudge's half step only
    assert auto.metric == pytest.approx(0.2881, abs=1e-4)
    best = found[0]
    assert best.metric > auto.metric and best.sqnr_db < auto.sqnr_db  # own SQNR points the wrong way here
    assert [c.metric for c in found] == sorted((c.metric for c in found), reverse=True)
    assert 0 < best.clipped < 1 and {"bulk 99.9%", "MSE-optimal"} <= {c.label for c in found}
    assert bench.settings.weight_min_max == {}  # asking changes nothing
    bench.set_range("tdnn1.affine", *best.range)
    assert bench.evaluate().accuracy_npu == best.metric  # the same number the evaluator gives once applied
    assert bench.result("tdnn1.affine").errors.clipped_fraction == best.clipped


def test_a_previewed_range_is_checked_as_the_config_checks_it(bench):
    from npu_tui.core.errors import ConfigError

    typed = bench.preview_range("prefinal-l", (-0.4, 0.4))
    assert typed.metric is not None and typed.clipped > 0
    with pytest.raises(ConfigError, match=r"bound -100000 is beyond fp16 \(±65504\); the NPU stores"):
        bench.preview_range("prefinal-l", (-100000.0, 100000.0))
    with pytest.raises(ConfigError, match="beyond fp16"):
        bench.set_range("prefinal-l", -100000.0, 100000.0)
    assert bench.settings.weight_min_max == {}


def test_sweep_and_save(bench, tmp_path):
    bench.sweep()
    assert min(bench.sensitivity.values(), key=lambda s: s.alone_sqnr_db).weight == "tdnn1.affine"
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
    bench.set_range("tdnn1.affine", -7.01247, 3.9344)  # the clip-20% candidate of the m dialog: float's accuracy
    assert bench.stale and bench.alarms  # no current model numbers: the data-free SQNRs still alarm
    assert bench.worst_weight() == "tdnn1.affine"  # by its own SQNR now: the alone numbers are stale
    evaluation = bench.evaluate()
    assert evaluation.accuracy_npu >= evaluation.accuracy_float
    assert not bench.alarms and bench.worst_weight() is None
    bench.undo()
    assert bench.alarms


def test_the_retest_calls_back_after_each_stage_in_order(bench):
    seen = []
    bench.evaluation_error = "an old failure"
    bench.retest(
        lambda: False,
        lambda: seen.append(("evaluation", bench.evaluation is not None, bench.layers)),
        lambda: seen.append(("layers", bench.layers is not None, bool(bench.sensitivity))),
        lambda done, total: seen.append(("progress", done, total)),
    )
    quantized = {name for name, r in bench.compilation.results.items() if r.plan.quantized}
    assert seen[:2] == [("evaluation", True, None), ("layers", True, False)]
    assert {s[0] for s in seen[2:]} == {"progress"} and seen[-1][1] == seen[-1][2] and set(bench.sensitivity) == quantized
    assert bench.evaluation_error is None and bench.sweep_complete and not bench.stale and not bench.layers_stale


def test_a_retest_stopped_after_the_model_numbers_runs_no_layers(bench):
    seen: list[str] = []
    with pytest.raises(Cancelled):
        bench.retest(lambda: bool(seen), lambda: seen.append("evaluation"), lambda: seen.append("layers"), lambda d, t: None)
    assert seen == ["evaluation"] and bench.layers is None and not bench.stale


def test_a_failing_retest_keeps_its_words_until_the_next_run(bench, monkeypatch):
    def refuse(*args, **kwargs):
        raise ModelError("model.onnx: input 'x' wants shape (1, 8)")

    monkeypatch.setattr(bench.analysis, "evaluate", refuse)
    with pytest.raises(ModelError):
        bench.retest(lambda: False, lambda: None, lambda: None, lambda d, t: None)
    assert bench.evaluation_error == "model.onnx: input 'x' wants shape (1, 8)"


def test_the_switches_set_only_what_the_dialog_chose(bench):
    before = bench.settings
    bench.set_switches({"fuse_bn": not before.fuse_bn})
    assert bench.settings.fuse_bn != before.fuse_bn and bench.settings.compress == before.compress
    assert bench.undo() and bench.settings == before


def test_chip_warnings_come_from_the_graph_then_from_the_last_test(tmp_path):
    """Without data the graph's (as compile prints them); a test adds only what it found besides, once."""
    from modelkit import chip_warning_model

    from npu_tui.core.workbench import Evaluation

    bench = Workbench(open_project(chip_warning_model(tmp_path)))
    graph = bench.chip_warnings
    assert [w.split(" ", 2)[:2] for w in graph] == [["Sub", "'[bold]gate[/bold]':"], ["Pow", "'square':"]]
    bench.evaluation = Evaluation(1, None, None, None, [], chip_warnings=[graph[0], "Div 'd': found by the run"])
    bench.evaluation.fp16_issue = "fp16 overflow on the chip: MatMul 'fc': the fp16 accumulation overflows"
    assert bench.chip_warnings == [*graph, "Div 'd': found by the run", bench.evaluation.fp16_issue]


def test_a_weights_warnings_are_the_lines_compile_prints_for_it(tmp_path):
    """What `npu-tui compile` warns of, weight by weight, under the settings of now."""
    from clirun import npu_tui

    config = warned_tf_sample(tmp_path)
    printed = [line.removeprefix("warning: ") for line in npu_tui("compile", str(config)).stderr.splitlines()]
    printed += [line.removeprefix("warning: ") for line in npu_tui("compile", str(config)).stdout.splitlines()]
    bench = Workbench(open_project(config))
    tdnn2 = bench.weight_warnings(TDNN2)
    assert [w.split(": ", 1)[0] for w in tdnn2] == [TDNN2, TDNN2]
    assert "does not contain 0; the nudge shifts the grid to [0, 0.399902]" in tdnn2[0] and "saturate" in tdnn2[1]
    assert all(w in printed for w in tdnn2)
    (ignored,) = bench.weight_warnings(TDNN1)
    assert (
        ignored
        == f"EXCLUDE_COMPRESS_OPS: gxnpuc 1.5.8 ignores 'tdnn1.affine/conv1d' silently (it matches only -w names): write {TDNN1!r}"
    )
    assert any(line.endswith(ignored) for line in printed)  # compile says where: "config.yaml:13: " first
    assert bench.weight_warnings("prefinal-l/kernel/read/_3__cf__3") == []
    bench.reset_weight(TDNN2)  # its automatic range holds 0: nothing stuck, nothing saturates
    assert bench.weight_warnings(TDNN2) == [] and bench.weight_warnings(TDNN1) == [ignored]
    bench.undo()
    assert bench.weight_warnings(TDNN2) == tdnn2
