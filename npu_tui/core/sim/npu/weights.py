"""Constants as the NPU holds them: gxnpuc converts float32 weights, biases, BN parameters and scalar
constants to fp16 with its own converter (NPU_ARITHMETIC.md section 1), which the NPU reads as IEEE."""

from __future__ import annotations

import numpy as np

from ...quant.fp16 import compiler_fp16


def bn_scale_shift(
    gamma: np.ndarray, beta: np.ndarray, mean: np.ndarray, variance: np.ndarray, epsilon: float
) -> tuple[np.ndarray, np.ndarray]:
    """op_bn's per-channel s = fp16(gamma / sqrt(var + eps)) and t = fp16(beta - mean * s), float32 math
    with the compiler's converter."""
    f32 = np.float32
    scale = np.asarray(gamma, f32) / np.sqrt(np.asarray(variance, f32) + f32(epsilon))
    shift = np.asarray(beta, f32) - np.asarray(mean, f32) * scale
    return compiler_fp16(scale), compiler_fp16(shift)
