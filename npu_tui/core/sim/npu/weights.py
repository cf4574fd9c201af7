"""Constants as the NPU holds them: gxnpuc converts float32 weights, biases, BN parameters and scalar
constants to fp16 with its own converter (NPU_ARITHMETIC.md section 1), which the NPU reads as IEEE."""

from __future__ import annotations

import numpy as np


def compiler_fp16(values: np.ndarray) -> np.ndarray:
    """gxnpuc's float32 -> fp16: truncate then add the first dropped bit (ties away from zero);
    |x| < 2^-15 -> +-0; [2^-15, 2^-14) gets exponent field 0 with the normal encoding's 10 mantissa bits
    (so the NPU reads m * 2^-24); |x| >= 65536, inf and NaN -> 0x7fff / 0xffff."""
    bits = np.asarray(values, dtype=np.float32).reshape(-1).view(np.uint32)
    sign = ((bits >> 16) & 0x8000).astype(np.uint32)
    exponent = ((bits >> 23) & 0xFF).astype(np.int64) - 127
    mantissa = bits & 0x7FFFFF
    field = np.clip(exponent + 15, 0, 31).astype(np.uint32)
    rounded = (field << 10 | mantissa >> 13) + ((mantissa >> 12) & 1)
    half = np.where(exponent < -15, 0, np.where(exponent >= 16, 0x7FFF, rounded)) | sign
    return half.astype(np.uint16).view(np.float16).reshape(np.shape(values))


def bn_scale_shift(
    gamma: np.ndarray, beta: np.ndarray, mean: np.ndarray, variance: np.ndarray, epsilon: float
) -> tuple[np.ndarray, np.ndarray]:
    """op_bn's per-channel s = fp16(gamma / sqrt(var + eps)) and t = fp16(beta - mean * s), float32 math
    with the compiler's converter."""
    f32 = np.float32
    scale = np.asarray(gamma, f32) / np.sqrt(np.asarray(variance, f32) + f32(epsilon))
    shift = np.asarray(beta, f32) - np.asarray(mean, f32) * scale
    return compiler_fp16(scale), compiler_fp16(shift)
