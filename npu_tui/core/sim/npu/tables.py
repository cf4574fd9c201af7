"""The NPU's exp and ln: 65,536-entry fp16 tables indexed by the input's bits (fp16_exp / fp16_ln in the
C model). exp ships as data read from the C model; ln is rebuilt here by the rule it follows."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import numpy as np

EXP_TABLE_FILE = Path(__file__).with_name("exp_table.npy")
LN2_HALF = 1420  # fp16(ln 2) = 1420 * 2^-11 = 0.693359375
LN_STEP = 2048  # the mantissa table's fixed point: ln(m) truncated to multiples of 2^-11
NEGATIVE_NAN = 0xFE00  # what x86 arithmetic returns for log(x < 0): the sign bit set


@cache
def exp_table() -> np.ndarray:
    """EXP as uint16 bits per input bits: the C model's table (faithful, 78 % correctly rounded,
    65504 for x >= 11.09). Read off act_sweep's 65,536 inputs; its outputs below 2^-14, which the
    fp32 output flushes, and its NaN inputs other than 0x7e00 are not observable there and hold the
    correctly rounded value and the NaN itself (tools/make_exp_table.py)."""
    table = np.load(EXP_TABLE_FILE)
    table.setflags(write=False)
    return table


@cache
def ln_table() -> np.ndarray:
    """LN as uint16 bits per input bits, built as the vendor did: x = m * 2^e with m in [1, 2),
    ln x = e * fp16(ln 2) + floor(ln(m) * 2048) / 2048, rounded to fp16 with ties away from zero (the
    compiler's converter). Reproduces every Log, Sqrt, Rsqrt, Pow and Abs output of the C model in
    ew_unary. ln(+-0) = -inf, ln(x < 0) = NaN, ln(+inf) = +inf, a NaN stays itself."""
    bits = np.arange(65536, dtype=np.uint32).astype(np.uint16)
    x = bits.view(np.float16).astype(np.float64)
    table = np.full(65536, NEGATIVE_NAN, dtype=np.uint16)
    positive = np.isfinite(x) & (x > 0)
    mantissa, exponent = np.frexp(x[positive])
    steps = exponent.astype(np.int64) - 1
    table_entry = np.floor(np.log(mantissa * 2.0) * LN_STEP)
    value = (steps * LN2_HALF + table_entry) / LN_STEP
    table[positive] = _round_half_away(value).view(np.uint16)
    table[x == 0] = 0xFC00
    table[bits == 0x7C00] = 0x7C00
    nan = np.isnan(x)
    table[nan] = bits[nan] | 0x0200
    table.setflags(write=False)
    return table


def _round_half_away(value: np.ndarray) -> np.ndarray:
    """Exact float64 values to fp16, ties away from zero (normal range; these values need no more)."""
    magnitude = np.abs(value)
    _, exponent = np.frexp(magnitude)
    ulp = np.exp2(np.maximum(exponent.astype(np.float64) - 11, -24))
    rounded = np.floor(magnitude / ulp + 0.5) * ulp
    return np.copysign(rounded, value).astype(np.float16)


def lookup(table: np.ndarray, x: np.ndarray) -> np.ndarray:
    """The table's fp16 value for each fp16 input."""
    return table[np.asarray(x, dtype=np.float16).view(np.uint16)].view(np.float16)


def exp(x: np.ndarray) -> np.ndarray:
    return lookup(exp_table(), x)


def ln(x: np.ndarray) -> np.ndarray:
    return lookup(ln_table(), x)
