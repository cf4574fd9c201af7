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
    noise = float(np.dot(err, err))
    signal = float(np.dot(flat, flat))
    size = max(flat.size, 1)
    max_abs = float(np.abs(err).max()) if err.size else 0.0
    sqnr = None if noise == 0.0 or signal == 0.0 else 10.0 * math.log10(signal / noise)
    return ErrorMetrics(sqnr, noise / size, max_abs, clipped / size)


def count_clipped(w: np.ndarray, lo: float, hi: float) -> int:
    """Elements outside [lo, hi]: they saturate to the nearest bound."""
    return int(np.count_nonzero(w < np.float32(lo)) + np.count_nonzero(w > np.float32(hi)))


def tail_ratio(w: np.ndarray) -> float | None:
    """max|w| / 99.9th percentile of |w|; None when that percentile is 0."""
    if w.size == 0:
        return None
    magnitude = np.abs(w.reshape(-1))
    p999 = float(np.percentile(magnitude, 99.9))
    if p999 == 0.0:
        return None
    return float(magnitude.max()) / p999
