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


def tensor_range(w: np.ndarray) -> tuple[float, float]:
    """min(0, tensor min) and max(0, tensor max): 0 is always inside the automatic range."""
    if w.size == 0:
        return 0.0, 0.0
    return float(min(F32(0), w.min())), float(max(F32(0), w.max()))


def quant_params(lo: float, hi: float) -> QuantParams | None:
    """Scale, zero point and nudged range; None when lo == hi (nothing to scale: stored exactly)."""
    lo32, hi32 = F32(lo), F32(hi)
    if not lo32 < hi32:
        return None
    scale = F32((hi32 - lo32) / F32(QUANT_MAX))
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


def quantize(w: np.ndarray, p: QuantParams) -> np.ndarray:
    """q = floor((clip(w, nudged_min, nudged_max) - nudged_min) / scale + 0.5) as uint8."""
    buf = np.clip(w.astype(F32, copy=False), F32(p.nudged_min), F32(p.nudged_max))
    np.subtract(buf, F32(p.nudged_min), out=buf)
    np.divide(buf, F32(p.scale), out=buf)
    np.add(buf, F32(0.5), out=buf)
    np.floor(buf, out=buf)
    np.minimum(buf, F32(QUANT_MAX), out=buf)
    return buf.astype(np.uint8)


def dequantize(q: np.ndarray, p: QuantParams) -> np.ndarray:
    """fp16(q * fp16(scale) + fp16(nudged_min)): the value the NPU computes with."""
    buf = q.astype(F32)
    np.multiply(buf, p.stored_scale, out=buf)
    np.add(buf, p.stored_bias, out=buf)
    return buf.astype(np.float16)


def simulate(w: np.ndarray, p: QuantParams | None) -> np.ndarray:
    """The fp16 values the NPU holds for `w`: dequantized, or `w` itself when there is no scale."""
    if p is None:
        return w.astype(np.float16)
    return dequantize(quantize(w, p), p)
