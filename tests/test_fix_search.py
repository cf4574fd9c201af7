"""The fix search's economy: what it never evaluates, checked against the states it visited."""

from __future__ import annotations

from npu_tui.core.fix import Search, Target


def test_no_action_dearer_than_the_budget_is_run(kws):
    project, evaluator = kws
    start = project.config.settings
    # a range costs a few hundred bytes (clipping the tail makes more codes differ from the zero point:
    # 530 for tdnn1.affine's), excluding tdnn1.affine 5,564
    budget = project.compile(start).npu_bytes + 1000
    search = Search(project, evaluator, Target("max_drop", 1.0), budget=budget)
    result = search.run(start)
    rows = len(result.localization)
    after_localization = result.visits[1 + rows :]
    assert after_localization, "the search evaluated weight actions"
    assert all(visit.bytes <= budget for visit in after_localization)
    assert result.met and result.after[1] <= budget  # the free range of tdnn1.affine still does it
    assert [c.action for c in result.changes] == ["range"]


def test_a_range_search_that_cannot_help_stops_after_three_tries(kws):
    """With tdnn1.affine excluded, clipping `tdnn2.affine` beats no clip share's metric: three coarse
    tries, not the full grid and the golden-section steps (14 evaluations)."""
    from npu_tui.core import edits

    project, evaluator = kws
    start = edits.exclude(project.inventory, project.config.settings, "tdnn1.affine")
    search = Search(project, evaluator, Target("max_drop", 1.0))
    search.evaluate(start)
    before = search.evaluations
    assert search.best_range(start, "tdnn2.affine") is not None
    assert search.evaluations - before == 3
    search.evaluate(start)
    before = search.evaluations
    search.best_range(start, "output")  # here a clip share helps: the search refines it
    assert search.evaluations - before > 3
