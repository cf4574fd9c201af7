"""Numbers that may not exist, one way everywhere.

An SQNR of an exact comparison is None (there is no error to divide by), and so is one that does not
exist (a diverged, non-finite output). Sorting puts the worst first and exact last; arithmetic on levels
counts exact as EXACT_DB, the most a comparison of fp16 values can show; text says "exact"; JSON says null.
"""

from __future__ import annotations

import math

EXACT_DB = 100.0  # what exact counts as; beyond what fp16 values can show, and the bound of an SQNR target


def finite_or_none(value: float | None) -> float | None:
    """JSON has no infinity nor NaN: a number that does not exist is null."""
    if value is None or not math.isfinite(value):
        return None
    return float(value)


def worst_first(value: float | None) -> float:
    """Sort key for an SQNR, worst (lowest) first; exact (None) last."""
    return math.inf if value is None else value


def db_level(value: float | None) -> float:
    """An SQNR for arithmetic and plots: exact counts as EXACT_DB, and nothing is above it."""
    return EXACT_DB if value is None else min(value, EXACT_DB)


def db_clamped(value: float | None) -> float:
    """An SQNR (or a score in dB or points) held within ±EXACT_DB for plots and scores: exact is
    EXACT_DB, a diverged one (NaN) -EXACT_DB, so every state still orders and differences stay finite."""
    if value is None:
        return EXACT_DB
    if math.isnan(value):
        return -EXACT_DB
    return max(min(value, EXACT_DB), -EXACT_DB)


def db_gain(after: float | None, before: float | None) -> float | None:
    """after - before in dB where None means exact (+infinity): 0 when both are exact, None (unbounded)
    when only one is."""
    if after is None and before is None:
        return 0.0
    if after is None or before is None:
        return None
    return after - before


def db_text(value: float | None, digits: int = 1, unit: str = " dB") -> str:
    """'exact' for an exact comparison, else the number with its unit."""
    return "exact" if value is None else f"{value:.{digits}f}{unit}"


def optional_text(value: float | None, spec: str) -> str:
    """'-' where a number was not measured (no labels, no test yet), else the number formatted by `spec`."""
    return "-" if value is None else format(value, spec)
