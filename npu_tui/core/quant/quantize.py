"""One weight's quantization as npu-tui shows it: gxnpuc 1.5.8's own (quant/gxnpuc.py, SPEC section 5).

The numbers here (range, nudged range, scale, zero point) are what gxnpuc computes: fp16 scale and
offset, every code computed in binary16 from values passed through the compiler's converter.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from npu_tui.core.quant.fp16 import as_fp16, cvt
from npu_tui.core.quant.gxnpuc import GridParams, RangeCrash, grid_params, quantize_values


@dataclass(frozen=True)
class QuantParams:
    """The range a weight is quantized over (raw: the clip), and the grid the nudge put on it."""

    min: float
    max: float
    scale: float
    zero_point: int
    nudged_min: float
    nudged_max: float
    scale_fp16_bits: int
    offset_fp16_bits: int

    @property
    def grid(self) -> GridParams:
        return GridParams(np.float16(self.scale), np.float16(self.nudged_min), self.zero_point)


def params_of(lo: float, hi: float, grid: GridParams) -> QuantParams:
    bottom, top = grid.grid
    return QuantParams(lo, hi, float(grid.scale), grid.zero_point, bottom, top, grid.scale_fp16_bits, grid.offset_fp16_bits)


def auto_range(lo: float, hi: float, padded: bool = True) -> tuple[float, float]:
    """gxnpuc's automatic range: the min and max of the padded block, so 0 is inside it only when the
    weight has padding (or holds 0); an unpadded one-sign weight keeps its one-sign range."""
    return (min(0.0, float(lo)), max(0.0, float(hi))) if padded else (float(lo), float(hi))


def quant_params(lo: float, hi: float) -> QuantParams | None:
    """Scale, zero point and nudged range of [lo, hi]; None where gxnpuc has no step (it would crash)."""
    if not lo < hi:
        return None
    try:
        return params_of(float(lo), float(hi), grid_params(lo, hi))
    except RangeCrash:
        return None


def quantize(w: np.ndarray, p: QuantParams) -> np.ndarray:
    """The uint8 codes the NPU stores, elementwise in the weight's own shape."""
    return quantize_values(w, p.min, p.max, p.grid)


def dequantize(q: np.ndarray, p: QuantParams) -> np.ndarray:
    """fp16 (q * scale) + offset: the value the NPU computes with."""
    return p.grid.value(q)


def to_fp16(values: np.ndarray) -> np.ndarray:
    """An uncompressed weight or constant as gxnpuc stores it: its converter's fp16 bits, read by the
    NPU as IEEE (beyond ±65504 that is inf or NaN, which the compile reports as fp16_overflow)."""
    return as_fp16(cvt(values))


def simulate(w: np.ndarray, p: QuantParams | None) -> np.ndarray:
    """The fp16 values the NPU holds for `w`: dequantized, or stored fp16 when there is no scale."""
    if p is None:
        return to_fp16(w)
    return dequantize(quantize(w, p), p)
