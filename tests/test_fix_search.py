"""The fix search's economy: what it never evaluates, checked against the states it visited."""

from __future__ import annotations

from npu_tui.core.triage.fix import Search, Target


def test_no_action_dearer_than_the_budget_is_run(kws):
    project, evaluator = kws
    start = project.config.settings
    budget = project.compile(start).npu_bytes  # ranges are free; any exclusion costs bytes
    search = Search(project, evaluator, Target("max_drop", 1.0), budget=budget)
    result = search.run(start)
    rows = len(result.localization)
    after_localization = result.visits[1 + rows :]
    assert after_localization, "the search evaluated weight actions"
    assert all(visit.bytes <= budget for visit in after_localization)
    assert result.met and result.after[1] <= budget  # the free range of tdnn1.affine still does it
    assert [c.action for c in result.changes] == ["range"]


def test_a_range_search_that_cannot_help_stops_after_three_tries(kws):
    """With tdnn1.affine excluded, clipping `output` beats no clip share's metric: three coarse
    tries, not the full grid and the golden-section steps (14 evaluations)."""
    from npu_tui.core.quant import edits

    project, evaluator = kws
    start = edits.exclude(project.inventory, project.config.settings, "tdnn1.affine")
    search = Search(project, evaluator, Target("max_drop", 1.0))
    search.evaluate(start)
    before = search.evaluations
    assert search.best_range(start, "output") is not None
    assert search.evaluations - before == 3
    search.evaluate(start)
    before = search.evaluations
    search.best_range(start, "prefinal-l")  # here a clip share helps: the search refines it
    assert search.evaluations - before > 3


def test_targets_beyond_what_a_metric_can_reach_are_refused():
    from npu_tui.core.triage.targets import target_problem

    assert target_problem("min_sqnr", 30.0) is None and target_problem("min_agreement", 99.0) is None
    assert target_problem("max_drop", 1.0) is None and target_problem("max_drop", -0.5) is None
    assert "within ±200 dB" in target_problem("min_sqnr", 1e308)
    assert "between 0 and 100" in target_problem("min_agreement", -1e308)
    assert "between -100 and 100 points" in target_problem("max_drop", 101.0)
    assert target_problem("min_sqnr", float("nan")) == "the target must be a finite number"
