"""How weights and numbers look on screen: status marks, severity colors, model names as plain text."""

from __future__ import annotations

from collections.abc import Callable

from rich.text import Text

from ..core.kinds import Reason
from ..core.numbers import db_text
from ..core.text import printable, shorten_middle
from ..core.workbench import WeightResult

MARKS = {
    "quantized": ("q", "green"),
    "clipped": ("c", "yellow"),
    "excluded": ("x", "magenta"),
    "fp16": ("-", "dim"),
    "never": ("n", "dim"),
}
STATE_WORDS = {"never": "fp16 always"}  # gxnpuc never compresses it, whatever the config
NEVER_COMPRESSED = (Reason.DEPTHWISE_NEVER_COMPRESSED, Reason.ONE_INPUT_CHANNEL_NEVER_COMPRESSED)
WHY_FP16 = {
    Reason.COMPRESS_OFF: "fp16: COMPRESS is off",
    Reason.CONV2D_COMPRESS_OFF: "fp16: CONV2D_COMPRESS is off",
    Reason.EXCLUDED: "fp16: excluded",
    Reason.DEPTHWISE_NEVER_COMPRESSED: "fp16: depthwise, never compressed",
    Reason.ONE_INPUT_CHANNEL_NEVER_COMPRESSED: "fp16: 1 input channel, never compressed",
}  # each fits under the histogram at 80 columns (40 cells): read whole, never cut
MIN_NAME = 8
TREE_NAME_WIDTH = 48  # without a known width; the full name is in the details and the tooltip
LEGEND = "q quantized   c quantized over a WEIGHT_MIN_MAX range   x excluded   - fp16 (its class is off)   n fp16 always (depthwise or one input channel: gxnpuc never compresses it)   * changed by the last fix   a: alone = output SQNR with only this weight quantized (a~ from other settings: ctrl+r)   ! under 20 dB"


def status(result: WeightResult) -> str:
    plan = result.plan
    if plan.quantized:
        return "clipped" if plan.range is not None else "quantized"
    if plan.reason == Reason.EXCLUDED:
        return "excluded"
    return "never" if plan.reason in NEVER_COMPRESSED else "fp16"


def why_fp16(result: WeightResult) -> str:
    """Why a weight is stored fp16, in words ('' when it is quantized)."""
    reason = result.plan.reason
    return "" if result.plan.quantized or reason is None else WHY_FP16.get(reason, f"fp16: {reason}")


def severity(sqnr_db: float | None, alarms: bool = True) -> str:
    """Red under 20 dB, yellow under 30 dB, green above; exact is green. Without `alarms` (the model
    meets float: Workbench.alarms) nothing is red."""
    if sqnr_db is None or sqnr_db >= 30:
        return "green"
    return "yellow" if sqnr_db >= 20 or not alarms else "bold red"


def alarm(sqnr_db: float | None, alarms: bool = True) -> str:
    """`!` after a number under 20 dB: red says it too, but not under NO_COLOR or 16 colours."""
    return "!" if severity(sqnr_db, alarms) == "bold red" else ""


def rated(text: str, sqnr_db: float | None, alarms: bool = True) -> Text:
    """A number coloured by how bad it is, with `!` when under 20 dB and low numbers are alarms."""
    return Text(text + alarm(sqnr_db, alarms), style=severity(sqnr_db, alarms))


def db(value: float | None) -> str:
    return db_text(value)


def plain(name: str) -> Text:
    """A name from the model, shown literally: no markup, control characters spelled out."""
    return Text(printable(name))


def weight_label(
    result: WeightResult,
    shown_name: str | None = None,
    alone_db: float | None = None,
    evaluated: bool = False,
    fixed: bool = False,
    stale: bool = False,
    width: int | None = None,
    cut: Callable[[str, int], str] = shorten_middle,
    alarms: bool = True,
) -> Text:
    """Mark, the weight's own SQNR, once evaluated `a:` its alone number (the output SQNR with only
    this weight quantized), then the name: numbers first, so a long name is what gets cut at 80
    columns, never a number. `*`: the last accepted fix changed it; `a~`: from other settings.
    `width`: the cells the whole label may take; `cut` shortens the name to fit them (a NameCutter
    keeps what tells the model's names apart). `alarms`: whether under 20 dB gets `!` (Workbench.alarms)."""
    mark, style = MARKS[status(result)]
    label = Text.assemble((mark, style), ("*", "bold") if fixed else " ")
    label.append_text(rated(short_db(result.errors.sqnr_db), result.errors.sqnr_db, alarms))
    if evaluated:
        if stale:  # a mark that survives NO_COLOR, and dimmed
            label.append(" a~" + short_db(alone_db), style="dim")
        else:
            label.append(" a:")
            label.append_text(rated(short_db(alone_db), alone_db, alarms))
    label.append(" ")
    name = printable(shown_name if shown_name is not None else result.weight.name)
    room = TREE_NAME_WIDTH if width is None else max(width - len(label), MIN_NAME)
    label.append(cut(name, room))
    return label


def short_db(value: float | None) -> str:
    return db_text(value, unit="")
