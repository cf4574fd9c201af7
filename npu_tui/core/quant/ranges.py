"""WEIGHT_MIN_MAX candidates for one weight: the bulk (central 99.9%), the MSE-optimal clipping of
the automatic range, and a clip by value share, which the fix search moves along with the model-level
metric (a weight's own SQNR can prefer the full range where accuracy needs the bulk's)."""

from __future__ import annotations

import numpy as np

from .metrics import error_metrics
from .quantize import quant_params, simulate

BULK_PERCENT = 99.9
MSE_GRID = 64
MSE_SAMPLE = 1 << 18
QUANTILE_SAMPLE = 1 << 20


def bulk_range(w: np.ndarray) -> tuple[float, float]:
    tail = (100 - BULK_PERCENT) / 2
    flat = w.reshape(-1)
    return float(np.percentile(flat, tail)), float(np.percentile(flat, 100 - tail))


def clip_range(w: np.ndarray, share: float) -> tuple[float, float]:
    """The range leaving `share` of the values outside, half at each end, with 0 kept inside (a range
    without 0 would be shifted by the nudge)."""
    return clip_ranges(w, (share,))[0]


def clip_ranges(w: np.ndarray, shares: tuple[float, ...]) -> list[tuple[float, float]]:
    """`clip_range` for several shares from one partition of the values (each the same numbers)."""
    flat = w.reshape(-1)
    sample = flat[:: max(1, flat.size // QUANTILE_SAMPLE)]
    ends = np.quantile(sample, [q for share in shares for q in (share / 2, 1 - share / 2)])
    return [(min(float(lo), 0.0), max(float(hi), 0.0)) for lo, hi in zip(ends[::2], ends[1::2])]


def mse_optimal_range(w: np.ndarray) -> tuple[float, float]:
    """The clipping of the automatic range that minimizes the quantization MSE, on a sample."""
    flat = w.reshape(-1)
    sample = flat[:: max(1, flat.size // MSE_SAMPLE)]
    lo, hi = min(0.0, float(sample.min())), max(0.0, float(sample.max()))
    best, best_err = (lo, hi), np.inf
    for fraction in np.linspace(1.0 / MSE_GRID, 1.0, MSE_GRID):
        trial = (lo * fraction, hi * fraction)
        params = quant_params(*trial)
        if params is None:
            continue
        err = error_metrics(sample, simulate(sample, params)).mse
        if err < best_err:
            best, best_err = trial, err
    return float(best[0]), float(best[1])
