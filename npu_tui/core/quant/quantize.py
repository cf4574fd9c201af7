"""The vendor's 8-bit asymmetric per-tensor scheme with FakeQuant nudging (SPEC section 5).

Range arithmetic is float32, as in TensorFlow's FakeQuant, which the vendor scheme follows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

QUANT_MAX = 255
F32 = np.float32


@dataclass(frozen=True)
class QuantParams:
    """The range a weight is quantized over, and where the nudge moved it."""

    min: float
    max: float
    scale: float
    zero_point: int
    nudged_min: float
    nudged_max: float

    @property
    def stored_scale(self) -> np.float32:
        return F32(np.float16(self.scale))

    @property
    def stored_bias(self) -> np.float32:
        return F32(np.float16(self.nudged_min))


def auto_range(lo: float, hi: float) -> tuple[float, float]:
    """min(0, tensor min) and max(0, tensor max): 0 is always inside the automatic range."""
    return min(0.0, float(lo)), max(0.0, float(hi))


def quant_params(lo: float, hi: float) -> QuantParams | None:
    """Scale, zero point and nudged range; None when there is no step (lo == hi): stored exactly."""
    lo32, hi32 = F32(lo), F32(hi)
    if not lo32 < hi32:
        return None
    scale = F32((hi32 - lo32) / F32(QUANT_MAX))
    if scale == 0:  # a range of a few float32 subnormals: no usable step, store as is
        return None
    zp_from_min = F32(0) - lo32 / scale
    if zp_from_min < 0:
        zero_point = 0
    elif zp_from_min > QUANT_MAX:
        zero_point = QUANT_MAX
    else:
        zero_point = int(np.floor(zp_from_min + F32(0.5)))
    nudged_min = F32(F32(0 - zero_point) * scale)
    nudged_max = F32(F32(QUANT_MAX - zero_point) * scale)
    return QuantParams(float(lo32), float(hi32), float(scale), zero_point, float(nudged_min), float(nudged_max))


def _grid(w: np.ndarray, p: QuantParams) -> np.ndarray:
    """floor((clip(w, nudged_min, nudged_max) - nudged_min) / scale + 0.5), as float32 integers 0..255."""
    buf = np.clip(w.astype(F32, copy=False), F32(p.nudged_min), F32(p.nudged_max))
    np.subtract(buf, F32(p.nudged_min), out=buf)
    np.divide(buf, F32(p.scale), out=buf)
    np.add(buf, F32(0.5), out=buf)
    np.floor(buf, out=buf)
    np.minimum(buf, F32(QUANT_MAX), out=buf)
    return buf


def quantize(w: np.ndarray, p: QuantParams) -> np.ndarray:
    """The uint8 codes the NPU stores."""
    return _grid(w, p).astype(np.uint8)


def to_fp16(values: np.ndarray) -> np.ndarray:
    """Round to fp16 as the NPU stores it; beyond ±65504 becomes inf, which the compile reports once
    as an fp16_overflow warning rather than as numpy's RuntimeWarning."""
    with np.errstate(over="ignore", invalid="ignore"):
        return values.astype(np.float16)


def _to_npu(grid: np.ndarray, p: QuantParams) -> np.ndarray:
    with np.errstate(over="ignore", invalid="ignore"):
        np.multiply(grid, p.stored_scale, out=grid)
        np.add(grid, p.stored_bias, out=grid)
    return to_fp16(grid)


def dequantize(q: np.ndarray, p: QuantParams) -> np.ndarray:
    """fp16(q * fp16(scale) + fp16(nudged_min)): the value the NPU computes with."""
    return _to_npu(q.astype(F32), p)


def simulate(w: np.ndarray, p: QuantParams | None) -> np.ndarray:
    """The fp16 values the NPU holds for `w`: dequantized, or `w` itself when there is no scale.

    Same as dequantize(quantize(w, p), p), in one buffer: the codes never leave float32.
    """
    if p is None:
        return to_fp16(w)
    return _to_npu(_grid(w, p), p)
