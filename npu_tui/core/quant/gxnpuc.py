"""The weight quantizer of gxnpuc 1.5.8, bit for bit (SPEC section 5, checked against the fixture).

Per weight ("block"): the range is WEIGHT_MIN_MAX or the min and max of the weight laid out in padded
tiles (the padding zeros count, 0 is not added otherwise); every step after that is binary16
arithmetic on values passed through the compiler's own converter `cvt` (fp16.py):
    scale       (cvt(mx) - cvt(mn)) / 255
    zero_point  0 - cvt(mn) / scale, clamped to [0, 255], rounded half up
    offset      (0 - zero_point) * scale          (the stored nudged_min)
    q           clamp(floor((cvt(clip(w, mn, mx)) - offset) / scale + 0.5), 0, 255)
    value       (q * scale) + offset              (what the chip computes with)
The clip is to the raw range while the grid is the nudged one: a range that excludes 0 saturates one end.
A scale of 0 (mn == mx, an all-zero or constant weight) makes gxnpuc crash with an OverflowError.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import ModelError
from .fp16 import as_fp16, bits_of, cvt, f32, h
from .layout import from_tiles, to_tiles

QUANT_MAX = 255
CRASH_HINT = "gxnpuc 1.5.8 crashes on this: exclude it or give it a WEIGHT_MIN_MAX range"


class RangeCrash(ModelError):
    """A weight gxnpuc 1.5.8 cannot quantize (its scale is 0): it dies with an OverflowError."""


@dataclass(frozen=True)
class GridParams:
    """The stored parameters of one block: fp16 scale and offset, and the zero point."""

    scale: np.float16
    offset: np.float16
    zero_point: int

    @property
    def scale_fp16_bits(self) -> int:
        return int(bits_of(self.scale))

    @property
    def offset_fp16_bits(self) -> int:
        return int(bits_of(self.offset))

    def value(self, codes: np.ndarray) -> np.ndarray:
        """fp16 (q * scale) + offset: what the chip computes with for each code."""
        step = h(f32(codes) * f32(self.scale))
        return h(f32(step) + f32(self.offset))

    @property
    def grid(self) -> tuple[float, float]:
        """The values of codes 0 and 255: the nudged range."""
        ends = self.value(np.array([0, QUANT_MAX], dtype=np.uint8))
        return float(ends[0]), float(ends[1])


@dataclass(frozen=True)
class GxnpucQuant:
    """One weight as gxnpuc 1.5.8 stores it, and the values the chip computes with."""

    range: tuple[float, float]
    params: GridParams
    tile_codes: np.ndarray  # uint8, tile order, every padded element (the mask's zeros hold the zero point)
    codes: np.ndarray  # uint8, the weight's own shape
    dequantized: np.ndarray  # float16, the weight's own shape
    bias_codes: np.ndarray | None  # FUSE_BIASADD: the bias's codes and values, else None
    bias_dequantized: np.ndarray | None
    clipped: int  # weight elements outside the raw range [mn, mx]
    saturated: int  # weight elements beyond the grid or the range: they all land on code 0 or 255

    @property
    def codes_stored(self) -> int:
        """Codes gxnpuc writes: one per padded element whose code is not the zero point."""
        return int(np.count_nonzero(self.tile_codes != np.uint8(self.params.zero_point)))

    @property
    def mask(self) -> np.ndarray:
        """1 where a code is stored, per padded element in tile order (what decoded.npz calls mask)."""
        return (self.tile_codes != np.uint8(self.params.zero_point)).astype(np.uint8)


def grid_params(mn: float, mx: float, name: str = "weight") -> GridParams:
    """Scale, zero point and offset of a range; RangeCrash where gxnpuc's scale is 0."""
    lo, hi = f32(as_fp16(cvt(np.float32(mn)))), f32(as_fp16(cvt(np.float32(mx))))
    scale = h(f32(h(hi - lo)) / np.float32(QUANT_MAX))
    if not scale > 0:
        raise RangeCrash(f"{name}: quantization range [{mn:g}, {mx:g}] has no step; {CRASH_HINT}")
    zp_from_min = f32(h(np.float32(0) - f32(h(lo / f32(scale)))))
    if zp_from_min < 0:
        zero_point = 0
    elif zp_from_min > QUANT_MAX:
        zero_point = QUANT_MAX
    else:
        zero_point = int(np.floor(f32(h(zp_from_min + np.float32(0.5)))))
    offset = h(np.float32(0 - zero_point) * f32(scale))
    return GridParams(np.float16(scale), np.float16(offset), zero_point)


def block_range(tiles: np.ndarray, weight_range: tuple[float, float] | None) -> tuple[float, float]:
    """WEIGHT_MIN_MAX when given, else the min and max of the padded block."""
    if weight_range is not None:
        return float(weight_range[0]), float(weight_range[1])
    return float(tiles.min()), float(tiles.max())


def quantize_tiles(tiles: np.ndarray, mn: float, mx: float, params: GridParams) -> np.ndarray:
    """The uint8 codes of a block in tile order (float32 in, fp16 arithmetic throughout)."""
    clipped = np.clip(tiles, np.float32(mn), np.float32(mx))
    buf = f32(as_fp16(cvt(clipped)))
    buf -= f32(params.offset)
    buf = f32(h(buf))
    buf /= f32(params.scale)
    buf = f32(h(buf))
    buf += np.float32(0.5)
    buf = f32(h(buf))
    np.floor(buf, out=buf)
    np.clip(buf, 0, QUANT_MAX, out=buf)
    return buf.astype(np.uint8)


def quantize(
    w: np.ndarray,
    weight_range: tuple[float, float] | None = None,
    bias: np.ndarray | None = None,
    name: str = "weight",
) -> GxnpucQuant:
    """Quantize one weight (already FUSE_BN-folded, TF layout: taps x [in, out]) as gxnpuc does.

    `bias` is the FUSE_BIASADD bias that joins the block as one more padded row.
    """
    w32 = np.ascontiguousarray(w, dtype=np.float32)
    b32 = None if bias is None else np.ascontiguousarray(bias, dtype=np.float32)
    tiles = to_tiles(w32, b32)
    mn, mx = block_range(tiles, weight_range)
    params = grid_params(mn, mx, name)
    tile_codes = quantize_tiles(tiles, mn, mx, params)
    codes, bias_codes = from_tiles(tile_codes, w32.shape, b32 is not None)
    lo, hi = params.grid
    saturated = int(np.count_nonzero(w32 < max(mn, lo)) + np.count_nonzero(w32 > min(mx, hi)))
    clipped = int(np.count_nonzero(w32 < np.float32(mn)) + np.count_nonzero(w32 > np.float32(mx)))
    return GxnpucQuant(
        range=(mn, mx),
        params=params,
        tile_codes=tile_codes,
        codes=codes,
        dequantized=params.value(codes),
        bias_codes=bias_codes,
        bias_dequantized=None if bias_codes is None else params.value(bias_codes),
        clipped=clipped,
        saturated=saturated,
    )
