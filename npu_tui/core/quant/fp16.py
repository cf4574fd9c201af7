"""fp16 as gxnpuc 1.5.8 makes it: its own fp32->fp16 converter, and binary16 arithmetic done cheaply.

gxnpuc does not use IEEE conversion. Its converter `cvt` (measured on its output, SPEC section 5):
- rounds to nearest with ties away from zero (IEEE: ties to even);
- turns |x| < 2**-15 into a signed zero (IEEE would keep a subnormal);
- for 2**-15 <= |x| < 2**-14 writes exponent field 0 and the fp32 mantissa's top 10 bits rounded the same
  way (ties away; 0x3ff rounds up into 0x400, the smallest normal), an encoding that an IEEE decoder (the
  chip, numpy) reads as the subnormal mantissa * 2**-24, not as |x|: fc_tiny's -3.1496e-05 is stored 0x8021;
- turns |x| >= 65536, inf and nan into 0x7fff with the sign, a NaN to an IEEE decoder (IEEE: inf or
  nan); 65520 <= |x| < 65536 rounds up to inf, 0x7c00, as in IEEE (gxnpuc/NPU_ARITHMETIC.md section 1,
  checked on the compiler's own converter; SPEC section 5's "|x| >= 65520" folds the two).
This one function stores what gxnpuc stores: the quantizer's inputs, and the uncompressed weights, biases
and constants of the exact NPU simulation (tests/test_gxnpuc_fp16.py checks it on every fp16 MatMul weight
the fixture's model.h files hold).
The arithmetic after it is IEEE binary16: a binary32 +, -, * or / rounded once to binary16 gives exactly
the binary16 result (24 >= 2 * 11 + 2 bits), so every fp16 op here is a float32 op and one astype.
"""

from __future__ import annotations

import numpy as np

FP16_MAX = 65504.0  # the largest finite binary16
FP16_MIN_NORMAL = 2.0**-14
FP16_SMALLEST_SUBNORMAL = 2.0**-24  # below it binary16 holds only 0
CVT_SATURATED = 0x7FFF  # what cvt writes for |x| >= 65536, inf and nan (with the sign bit)

_F32_ABS = np.uint32(0x7FFFFFFF)
_F32_OVERFLOW = np.uint32(0x47800000)  # 65536.0: the fp32 exponent is beyond fp16's
_F32_MIN_NORMAL16 = np.uint32(0x38800000)  # 2**-14
_F32_ZERO_BELOW = np.uint32(0x38000000)  # 2**-15
_REBIAS = np.uint32((127 - 15) << 10)  # fp32 exponent bias -> fp16 exponent bias, in fp16 bit position
_HALF_ULP = np.uint32(1 << 12)  # half of one fp16 mantissa step, in fp32 mantissa bits


def cvt(values: np.ndarray | float) -> np.ndarray:
    """gxnpuc's fp32 -> fp16 conversion: the uint16 bit patterns, same shape as `values`."""
    array = np.asarray(values, dtype=np.float32)
    bits = array.reshape(-1).view(np.uint32)  # 1-D: uint32 wraps silently in arrays, not in scalars
    sign = ((bits >> np.uint32(16)) & np.uint32(0x8000)).astype(np.uint16)
    magnitude = bits & _F32_ABS
    normal = ((magnitude + _HALF_ULP) >> np.uint32(13)) - _REBIAS  # ties away: add half, truncate
    low = ((magnitude & np.uint32(0x7FFFFF)) + _HALF_ULP) >> np.uint32(13)  # exponent field 0, the mantissa rounded
    out = np.where(magnitude >= _F32_MIN_NORMAL16, normal, low)
    out = np.where(magnitude < _F32_ZERO_BELOW, np.uint32(0), out)
    out = np.where(magnitude >= _F32_OVERFLOW, np.uint32(CVT_SATURATED), out)
    return (out.astype(np.uint16) | sign).reshape(array.shape)


_ROUND_AWAY = np.uint32(0xFFFFE000)  # an fp32 pattern cut to fp16's 10 mantissa bits
_ODD_LOW = np.uint32(0x38800000)  # 2**-14: below it cvt flushes or writes its odd encoding
_ODD_SPAN = np.uint32(0x477FF000 - 0x38800000)  # from 2**-14 to 65520 (rounds to inf or beyond) is plain rounding


def cvt_value(values: np.ndarray) -> np.ndarray:
    """The float32 value the chip reads from cvt(values): as_fp16(cvt(values)) widened, computed in the
    fp32 bit domain (rounding ties away is "add half a step, cut"), so no fp16 array is made. The rare
    values outside [2**-14, 65520) go through cvt itself."""
    flat = np.asarray(values, dtype=np.float32).reshape(-1)
    bits = flat.view(np.uint32)
    out = bits + _HALF_ULP
    out &= _ROUND_AWAY
    odd = np.flatnonzero(((bits & _F32_ABS) - _ODD_LOW) >= _ODD_SPAN)  # unsigned: below 2**-14 wraps high
    if odd.size:
        out[odd] = as_fp16(cvt(flat[odd])).astype(np.float32).view(np.uint32)
    return out.view(np.float32).reshape(np.shape(values))


_RNE_HALF = np.uint32(0xFFF)  # half an fp16 step in fp32 mantissa bits, less one: the odd step's bit makes the tie go even


def round_fp16(values: np.ndarray) -> np.ndarray:
    """Round float32 values to binary16 in place, IEEE (ties to even), the result kept as float32: what
    values.astype(float16).astype(float32) gives, five times faster, in the fp32 bit domain. Lanes whose
    result is not a normal fp16 (|x| < 2**-14, or from 65520 on: subnormal, inf) take numpy's cast."""
    bits = values.reshape(-1).view(np.uint32)
    odd = np.flatnonzero(((bits & _F32_ABS) - _ODD_LOW) >= _ODD_SPAN)
    saved = None
    if odd.size:
        with np.errstate(over="ignore", invalid="ignore"):  # overflow to inf is binary16's own answer
            saved = values.reshape(-1)[odd].astype(np.float16).astype(np.float32)
    step = bits >> np.uint32(13)
    step &= np.uint32(1)
    step += _RNE_HALF
    bits += step
    bits &= _ROUND_AWAY
    if saved is not None:
        values.reshape(-1)[odd] = saved
    return values


def compiler_fp16(values: np.ndarray | float) -> np.ndarray:
    """The binary16 values the chip holds for float32 values gxnpuc stores: as_fp16(cvt(values))."""
    return as_fp16(cvt(values))


def as_fp16(bits: np.ndarray) -> np.ndarray:
    """The binary16 values a uint16 bit pattern holds, as an IEEE decoder (the chip) reads them."""
    return np.asarray(bits, dtype=np.uint16).view(np.float16)


def bits_of(values: np.ndarray | np.floating) -> np.ndarray:
    """The uint16 bit patterns of binary16 values."""
    return np.asarray(values, dtype=np.float16).view(np.uint16)


def h(values: np.ndarray | np.floating | float) -> np.ndarray:
    """Round the result of a float32 operation to binary16 (the one rounding of an fp16 op).

    Overflow to inf is what binary16 does; numpy's warning about it is not news here.
    """
    with np.errstate(over="ignore", invalid="ignore"):
        return np.asarray(values, dtype=np.float32).astype(np.float16)


def f32(values: np.ndarray | np.floating | float) -> np.ndarray:
    """binary16 values widened (exactly) to float32, the operands of the next fp16 op."""
    return np.asarray(values).astype(np.float32)
