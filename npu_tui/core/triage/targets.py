"""What a fix target may ask for: a number its metric can reach. A target beyond that (agreement
below 0 %, an SQNR of 1e308 dB) can never mean anything, and plotting it against the configs tried
overflows; it is refused with a message instead."""

from __future__ import annotations

import math

from ..kinds import TargetKind
from ..numbers import EXACT_DB

BOUNDS = {
    TargetKind.MAX_DROP: (-100.0, 100.0, "an accuracy drop lies between -100 and 100 points"),
    TargetKind.MIN_AGREEMENT: (0.0, 100.0, "top-1 agreement lies between 0 and 100 %"),
    TargetKind.MIN_SQNR: (-EXACT_DB, EXACT_DB, f"an SQNR target lies within ±{EXACT_DB:g} dB (exact counts as {EXACT_DB:g})"),
}


def target_problem(kind: TargetKind, value: float) -> str | None:
    """What is wrong with a target of `kind` (max_drop, min_agreement, min_sqnr) and `value`, or None."""
    if not math.isfinite(value):
        return "the target must be a finite number"
    lo, hi, meaning = BOUNDS[kind]
    if not lo <= value <= hi:
        return f"{value:g} is out of reach: {meaning}"  # one status line at 80 columns
    return None
