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


CHUNK = 1 << 16  # elements per pass: the error, its square and its sum stay in cache


@dataclass(frozen=True)
class ErrorSums:
    """What the metrics need of an error, summed chunk by chunk (the quantizer sums as it makes the codes)."""

    noise: float  # sum of squared errors
    signal: float  # sum of squared float values
    max_abs_err: float

    @classmethod
    def of_chunk(cls, w: np.ndarray, simulated: np.ndarray) -> ErrorSums:
        """One chunk of float32 values and the float32 values the NPU holds for them."""
        err = np.subtract(w, simulated)
        with np.errstate(over="ignore", invalid="ignore"):  # a weight beyond fp16 becomes inf: reported, not raised
            return cls(float(np.dot(err, err)), float(np.dot(w, w)), float(np.abs(err).max()) if err.size else 0.0)

    @classmethod
    def total(cls, parts: list[ErrorSums]) -> ErrorSums:
        return cls(sum(p.noise for p in parts), sum(p.signal for p in parts), max((p.max_abs_err for p in parts), default=0.0))

    def metrics(self, size: int, clipped: int = 0) -> ErrorMetrics:
        """The metrics of `size` elements of which `clipped` saturated."""
        if self.noise == 0.0 or self.signal == 0.0:
            sqnr: float | None = None
        elif not math.isfinite(self.noise) or not math.isfinite(self.signal):
            sqnr = -math.inf if not math.isfinite(self.noise) else math.inf
        else:
            sqnr = 10.0 * math.log10(self.signal / self.noise)
        size = max(size, 1)
        return ErrorMetrics(sqnr, self.noise / size, self.max_abs_err, clipped / size)


def error_metrics(w: np.ndarray, simulated: np.ndarray, clipped: int = 0) -> ErrorMetrics:
    """Compare the float weight with what the NPU holds; `clipped` counts saturated elements."""
    flat = np.asarray(w, dtype=np.float32).reshape(-1)
    held = simulated.reshape(-1)
    parts = [
        ErrorSums.of_chunk(flat[start : start + CHUNK], held[start : start + CHUNK].astype(np.float32))
        for start in range(0, flat.size, CHUNK)
    ]
    return ErrorSums.total(parts).metrics(flat.size, clipped)


TAIL_PERCENTILE = 99.9
SAMPLE_SIZE = 65_536


def tail_ratio(w: np.ndarray, extent: tuple[float, float] | None = None) -> float | None:
    """max|w| / 99.9th percentile of |w| (linear interpolation, as numpy); None when that percentile is 0
    or the weight holds Inf or NaN (no tail to measure). `extent` is w's (min, max) when the caller
    knows it."""
    if w.size == 0:
        return None
    flat = w.reshape(-1)
    lo, hi = extent if extent is not None else (float(flat.min()), float(flat.max()))
    if not np.isfinite(lo + hi):
        return None
    p999 = _upper_percentile(flat, TAIL_PERCENTILE)
    if p999 == 0.0:
        return None
    return max(-lo, hi) / p999


def _upper_percentile(values: np.ndarray, percent: float) -> float:
    """An exact high percentile of |values| that looks only at the top of the data.

    A strided sample gives a threshold a little below the percentile; if enough values pass it, only
    those are partitioned (|values| is never made whole). Otherwise (a misleading sample) all are.
    """
    n = values.size
    position = percent / 100 * (n - 1)
    k = int(np.floor(position))
    top = None
    if n > 4 * SAMPLE_SIZE:
        sample = np.abs(values[:: n // SAMPLE_SIZE])
        threshold = np.partition(sample, int(0.995 * (sample.size - 1)))[int(0.995 * (sample.size - 1))]
        candidates = values[(values >= threshold) | (values <= -threshold)]
        if candidates.size >= n - k:
            top = np.abs(candidates)
    if top is None:
        top = np.abs(values)
    k -= n - top.size
    ranks = [k, k + 1] if k + 1 < top.size else [k]
    part = np.partition(top, ranks)
    low = float(part[k])
    high = float(part[ranks[-1]])
    return low + (position - np.floor(position)) * (high - low)
