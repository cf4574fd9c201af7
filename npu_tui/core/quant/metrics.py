"""Data-free metrics of one weight (SPEC section 7): how far the NPU's values are from the float ones."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ErrorMetrics:
    """sqnr_db is None for an exact tensor (no error) and for an all-zero one (no signal)."""

    sqnr_db: float | None
    mse: float
    max_abs_err: float
    clipped_fraction: float


def error_metrics(w: np.ndarray, simulated: np.ndarray, clipped: int = 0) -> ErrorMetrics:
    """Compare the float weight with what the NPU holds; `clipped` counts saturated elements."""
    flat = w.reshape(-1)
    err = simulated.reshape(-1).astype(np.float32)
    np.subtract(flat, err, out=err)
    with np.errstate(over="ignore", invalid="ignore"):  # a weight beyond fp16 becomes inf: reported, not raised
        noise = float(np.dot(err, err))
        signal = float(np.dot(flat, flat))
        max_abs = float(np.abs(err).max()) if err.size else 0.0
    size = max(flat.size, 1)
    if noise == 0.0 or signal == 0.0:
        sqnr: float | None = None
    elif not math.isfinite(noise) or not math.isfinite(signal):
        sqnr = -math.inf if not math.isfinite(noise) else math.inf
    else:
        sqnr = 10.0 * math.log10(signal / noise)
    return ErrorMetrics(sqnr, noise / size, max_abs, clipped / size)


TAIL_PERCENTILE = 99.9
SAMPLE_SIZE = 65_536


def tail_ratio(w: np.ndarray) -> float | None:
    """max|w| / 99.9th percentile of |w| (linear interpolation, as numpy); None when that percentile is 0
    or not finite (a weight holding Inf or NaN has no tail to measure)."""
    if w.size == 0:
        return None
    magnitude = np.abs(w.reshape(-1))
    p999 = _upper_percentile(magnitude, TAIL_PERCENTILE)
    if p999 == 0.0 or not np.isfinite(p999):
        return None
    return float(magnitude.max()) / p999


def _upper_percentile(values: np.ndarray, percent: float) -> float:
    """An exact high percentile that partitions only the top of the data.

    A strided sample gives a threshold a little below the percentile; if enough values pass it, only
    those are partitioned. Otherwise (a misleading sample) the whole array is.
    """
    n = values.size
    position = percent / 100 * (n - 1)
    k = int(np.floor(position))
    top = values
    if n > 4 * SAMPLE_SIZE:
        sample = values[:: n // SAMPLE_SIZE]
        threshold = np.partition(sample, int(0.995 * (sample.size - 1)))[int(0.995 * (sample.size - 1))]
        candidates = values[values >= threshold]
        if candidates.size >= n - k:
            top = candidates
    k -= n - top.size
    ranks = [k, k + 1] if k + 1 < top.size else [k]
    part = np.partition(top, ranks)
    low = float(part[k])
    high = float(part[ranks[-1]])
    return low + (position - np.floor(position)) * (high - low)
