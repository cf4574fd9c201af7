"""What `fix` reports: the text a person reads and the JSON fields of the search's result, and the
short forms the fix screen shows at 80 columns. The CLI and the screen say a target and its numbers
the same way because both take them from here."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..kinds import FixAction, TargetKind
from ..text import printable
from .fix import Change, FixResult, Target, switch_words

__all__ = [
    "ACTION_SHORT",
    "ACTION_TEXT",
    "fix_json",
    "fix_lines",
    "switch_words",
    "target_text",
]

ACTION_TEXT = {
    FixAction.EXCLUDE: "exclude (fp16)",
    FixAction.RANGE: "WEIGHT_MIN_MAX",
    FixAction.KEEP_BN: "keep its BN unfolded",
    FixAction.SWITCHES: "switches",
}
ACTION_SHORT = {
    FixAction.EXCLUDE: "exclude",
    FixAction.RANGE: "range",
    FixAction.KEEP_BN: "keep BN",
    FixAction.SWITCHES: "switches",
}


def target_text(target: Target) -> str:
    return {
        TargetKind.MAX_DROP: f"accuracy at most {target.value:g} points below float",
        TargetKind.MIN_AGREEMENT: f"top-1 agreement at least {target.value:g}%",
        TargetKind.MIN_SQNR: f"worst output SQNR at least {target.value:g} dB",
    }[target.kind]


def fix_json(result: FixResult) -> dict[str, Any]:
    """The search's part of `fix --json` (the CLI adds what it ran on and whether it wrote)."""
    target = result.target
    return {
        "met": result.met,
        "target": {"kind": target.kind, "value": target.value},
        "simulation": result.simulation,
        "simulation_note": result.simulation_note,
        "search_simulation": "fast",
        "before": {"metric": result.before[0], "npu_bytes": result.before[1]},
        "after": {"metric": result.after[0], "npu_bytes": result.after[1]},
        "localization": [{**row, "metric": row["metric"]} for row in result.localization],
        "changes": [
            {
                "action": c.action,
                "weight": c.weight,
                "range": list(c.range) if c.range else None,
                "saturated": c.saturated,
                "metric": c.metric,
                "bytes": c.bytes,
            }
            for c in result.changes
        ],
    }


def fix_lines(result: FixResult, diff: str, written: tuple[Path, Path] | None) -> list[str]:
    """The text report; `written` is (the config, its backup) when the config was saved."""
    target = result.target
    note = f" ({result.simulation_note})" if result.simulation_note else ""
    lines = [f"target: {target_text(target)}", "", "localization (the vendor's loop, measured with the fast simulation):"]
    lines.append(f"  {'COMPRESS':9} {'CONV2D':7} {'FUSE_BN':8} {'metric':>22} {'NPU bytes':>10}")
    for row in result.localization:
        lines.append(
            f"  {str(row['COMPRESS']).lower():9} {str(row['CONV2D_COMPRESS']).lower():7} {str(row['FUSE_BN']).lower():8} "
            f"{target.text(row['metric']) if row['measured'] else 'not run':>22} {row['npu_bytes']:>10,}"
            f"{'  meets the target' if row['met'] else '' if row['measured'] else '  (dearer than a row that meets)'}"
        )
    lines.append("")
    if result.changes:
        lines.append("changes, in the order accepted:")
        lines += [_change_line(number, change, target) for number, change in enumerate(result.changes, start=1)]
    else:
        lines.append("no change" + (": the config already meets the target" if result.met else " found that helps"))
    (before, before_bytes), (after, after_bytes) = result.before, result.after
    lines.append("")
    lines.append(f"before and after from the {result.simulation} simulation{note}; the search itself ranks with the fast one")
    lines.append(f"before: {target.text(before)}, {before_bytes:,} B on the NPU")
    lines.append(f"after:  {target.text(after)}, {after_bytes:,} B on the NPU ({after_bytes - before_bytes:+,} B)")
    if result.paths:
        lines.append("paths (per-weight changes from each start):")
        for path in result.paths:
            lines.append(
                f"  from {printable(path.start)}: {target.text(path.start_metric)}, {path.start_bytes:,} B -> "
                f"{target.text(path.end_metric)}, {path.end_bytes:,} B{' meets' if path.met else ''}"
            )
    lines.append(f"target {'met' if result.met else 'NOT met'}; {result.evaluations} evaluations in {result.seconds:.1f} s")
    if result.why:
        lines.append(f"why: {printable(result.why)}")
    if diff:
        lines += ["", "config diff:", *[printable(line) for line in diff.splitlines()]]
    if written is not None:
        lines.append(f"written to {printable(str(written[0]))} (previous kept as {printable(written[1].name)})")
    elif diff:
        lines.append("(not written: the search was stopped)" if result.stopped else "(not written: add --write to save it)")
    return lines


def _change_line(number: int, change: Change, target: Target) -> str:
    rng = f" [{change.range[0]:.6g}, {change.range[1]:.6g}]" if change.range else ""
    weight = (
        printable(change.weight)
        if change.weight
        else (
            f"COMPRESS {str(change.settings.compress).lower()}, CONV2D_COMPRESS {str(change.settings.conv2d_compress).lower()}, "
            f"FUSE_BN {str(change.settings.fuse_bn).lower()}"
        )
    )
    saturated = f" ({change.saturated:.2%} saturate)" if change.saturated else ""
    return (
        f"  {number}. {ACTION_TEXT[change.action]:20} {weight}{rng}{saturated}: {target.text(change.metric)}, {change.bytes:,} B"
    )
