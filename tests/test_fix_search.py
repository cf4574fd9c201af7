"""The fix search's economy: what it never evaluates, checked against the states it visited."""

from __future__ import annotations

from npu_tui.core.fix import Search, Target


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
