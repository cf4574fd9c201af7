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

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from ..errors import ModelError
from .fp16 import as_fp16, bits_of, cvt, cvt_value, f32, h, round_fp16
from .layout import padded_size, to_tiles
from .metrics import CHUNK, ErrorSums

QUANT_MAX = 255
# For every fp16 t, floor(fp16(t + 0.5)) == floor(t + 0.5 + 2**-12) (t + 0.5 is exact in float32): the
# rounding can only carry t = 0.5 - 2**-12 up to 1.0 (a tie between 1 - 2**-11 and 1.0, to even), and the
# 2**-12 does exactly that and nothing else, since elsewhere t + 0.5 is a multiple of t's own fp16 step.
HALF_UP = np.float32(0.5 + 2.0**-12)
CRASH_HINT = "gxnpuc 1.5.8 crashes on this: exclude it or give it a WEIGHT_MIN_MAX range"


class RangeCrash(ModelError):
    """A weight gxnpuc 1.5.8 cannot quantize (its fp16 scale is 0, or not finite): it dies with an OverflowError."""


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
        """fp16 (q * scale) + offset: what the chip computes with for each code (a 256-entry table)."""
        return self.table[codes]

    @property
    def table(self) -> np.ndarray:
        steps = h(np.arange(QUANT_MAX + 1, dtype=np.float32) * f32(self.scale))
        return h(f32(steps) + f32(self.offset))

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
    codes: np.ndarray  # uint8, the weight's own shape
    dequantized: np.ndarray  # float16, the weight's own shape
    errors: ErrorSums  # of dequantized against the weight, summed while the codes were made
    bias_codes: np.ndarray | None  # FUSE_BIASADD: the bias's codes and values, else None
    bias_dequantized: np.ndarray | None
    padding: int  # zero-padding elements of the block
    padding_code: int  # the code a padding zero gets (the zero point unless the range excludes 0)
    codes_stored: int  # codes gxnpuc writes: one per padded element whose code is not the zero point
    clipped: int  # weight elements outside the raw range [mn, mx]
    saturated: int  # weight elements outside the range, or more than half a step beyond the grid: stuck at its ends

    @property
    def padded(self) -> int:
        return self.codes.size + (0 if self.bias_codes is None else self.bias_codes.size) + self.padding

    def tile_codes(self) -> np.ndarray:
        """Every padded element's code in tile order (the weight in TF layout: taps x [in, out])."""
        return to_tiles(self.codes, self.bias_codes, fill=self.padding_code)

    def mask(self) -> np.ndarray:
        """1 where a code is stored, per padded element in tile order (what decoded.npz calls mask)."""
        return (self.tile_codes() != np.uint8(self.params.zero_point)).astype(np.uint8)


def grid_params(mn: float, mx: float, name: str = "weight") -> GridParams:
    """Scale, zero point and offset of a range; RangeCrash where gxnpuc's scale is 0."""
    lo, hi = f32(as_fp16(cvt(np.float32(mn)))), f32(as_fp16(cvt(np.float32(mx))))
    scale = h(f32(h(hi - lo)) / np.float32(QUANT_MAX))
    if not np.isfinite(scale):
        raise RangeCrash(f"{name}: quantization range [{mn:g}, {mx:g}] is beyond fp16 (±65504); {CRASH_HINT}")
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


def block_range(extent: tuple[float, float], padded: bool, weight_range: tuple[float, float] | None) -> tuple[float, float]:
    """WEIGHT_MIN_MAX when given, else the min and max of the block, whose padding zeros count."""
    if weight_range is not None:
        return float(weight_range[0]), float(weight_range[1])
    lo, hi = extent
    return (min(lo, 0.0), max(hi, 0.0)) if padded else (lo, hi)


def quantize_values(values: np.ndarray, mn: float, mx: float, params: GridParams) -> np.ndarray:
    """The uint8 code of every value, elementwise (float32 in, fp16 arithmetic throughout)."""
    flat = np.asarray(values, dtype=np.float32).reshape(-1)
    codes = np.empty(flat.size, dtype=np.uint8)
    with np.errstate(over="ignore", invalid="ignore"):  # a subnormal scale sends far codes to inf: clamped to 255
        for _ in _coded_chunks(flat, mn, mx, params, codes):
            pass
    return codes.reshape(np.shape(values))


def _quantize_block(w32: np.ndarray, mn: float, mx: float, params: GridParams) -> tuple[np.ndarray, np.ndarray, ErrorSums]:
    """Codes, the fp16 values they stand for, and the error's sums, in the weight's shape: the table
    lookup and the sums are done on each chunk while it is in cache, for little more than the codes cost."""
    flat = w32.reshape(-1)
    codes = np.empty(flat.size, dtype=np.uint8)
    values = np.empty(flat.size, dtype=np.float16)
    table = params.table
    table32 = table.astype(np.float32)
    parts = []
    with np.errstate(over="ignore", invalid="ignore"):  # as in quantize_values
        for part in _coded_chunks(flat, mn, mx, params, codes):
            np.take(table, codes[part], out=values[part])
            parts.append(ErrorSums.of_chunk(flat[part], table32[codes[part]]))
    return codes.reshape(w32.shape), values.reshape(w32.shape), ErrorSums.total(parts)


def _coded_chunks(flat: np.ndarray, mn: float, mx: float, params: GridParams, codes: np.ndarray) -> Iterator[slice]:
    """Fill `codes` one cache-sized chunk at a time, yielding each chunk once its codes are in: the
    dozen passes of fp16 emulation then cost little more than one."""
    lo, hi = np.float32(mn), np.float32(mx)
    offset, scale = np.float32(params.offset), np.float32(params.scale)
    for start in range(0, flat.size, CHUNK):
        part = slice(start, start + CHUNK)
        _codes_chunk(flat[part], lo, hi, offset, scale, codes[part])
        yield part


def _codes_chunk(
    values: np.ndarray, lo: np.float32, hi: np.float32, offset: np.float32, scale: np.float32, out: np.ndarray
) -> None:
    """clamp(floor((cvt(clip(x)) - offset) / scale + 0.5), 0, 255), each op rounded to fp16, into `out`."""
    buf = cvt_value(np.clip(values, lo, hi))
    buf -= offset
    round_fp16(buf)
    buf /= scale
    round_fp16(buf)
    buf += HALF_UP  # floor(fp16(t + 0.5)) without the rounding pass: see HALF_UP
    np.clip(buf, 0, QUANT_MAX, out=buf)
    np.floor(buf, out=out, casting="unsafe")


def quantize(
    w: np.ndarray,
    weight_range: tuple[float, float] | None = None,
    bias: np.ndarray | None = None,
    name: str = "weight",
    matrix: tuple[int, ...] | None = None,
    extent: tuple[float, float] | None = None,
) -> GxnpucQuant:
    """Quantize one weight (already FUSE_BN-folded) as gxnpuc does.

    `matrix` is the weight's shape in TF layout (taps x [in, out]), which sets the padding; by default
    `w` is in TF layout itself. `bias` is the FUSE_BIASADD bias that joins the block as one more row.
    `extent` is w's (min, max) when the caller knows it: no pass over the weight to find it again.
    """
    w32 = np.asarray(w, dtype=np.float32)
    b32 = None if bias is None else np.asarray(bias, dtype=np.float32).reshape(-1)
    padded = padded_size(matrix if matrix is not None else w32.shape, b32 is not None)
    padding = padded - w32.size - (0 if b32 is None else b32.size)
    if extent is None:
        extent = (float(w32.min()), float(w32.max())) if w32.size else (0.0, 0.0)
    if b32 is not None and b32.size:
        extent = (min(extent[0], float(b32.min())), max(extent[1], float(b32.max())))
    if not np.isfinite(extent[0] + extent[1]):
        raise ModelError(f"{name} holds NaN or Inf; fix the model or exclude the weight")
    mn, mx = block_range(extent, padding > 0, weight_range)
    params = grid_params(mn, mx, name)
    codes, dequantized, errors = _quantize_block(w32, mn, mx, params)
    bias_codes = None if b32 is None else quantize_values(b32, mn, mx, params)
    padding_code = int(quantize_values(np.zeros(1, np.float32), mn, mx, params)[0])
    zp = np.uint8(params.zero_point)
    stored = int(np.count_nonzero(codes != zp)) + (padding if padding_code != params.zero_point else 0)
    if bias_codes is not None:
        stored += int(np.count_nonzero(bias_codes != zp))
    lo, hi = params.grid
    half = float(params.scale) / 2  # within half a step beyond the grid's ends a value still rounds right
    return GxnpucQuant(
        range=(mn, mx),
        params=params,
        codes=codes,
        dequantized=dequantized,
        errors=errors,
        bias_codes=bias_codes,
        bias_dequantized=None if bias_codes is None else params.value(bias_codes),
        padding=padding,
        padding_code=padding_code,
        codes_stored=stored,
        clipped=_outside(w32, mn, mx, extent),
        saturated=_outside(w32, max(mn, lo - half), min(mx, hi + half), extent),
    )


def _outside(w: np.ndarray, lo: float, hi: float, extent: tuple[float, float]) -> int:
    """Elements below lo or above hi; no pass when the extent says there are none."""
    if extent[0] >= lo and extent[1] <= hi:
        return 0
    return int(np.count_nonzero(w < np.float32(lo)) + np.count_nonzero(w > np.float32(hi)))
