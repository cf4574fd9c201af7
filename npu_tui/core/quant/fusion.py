"""FUSE_BN (SPEC section 4): fold a BatchNormalization into the Conv before it."""

from __future__ import annotations

import numpy as np


def fuse_bn(
    w: np.ndarray,
    bias: np.ndarray | None,
    scale: np.ndarray,
    offset: np.ndarray,
    mean: np.ndarray,
    var: np.ndarray,
    epsilon: float,
) -> tuple[np.ndarray, np.ndarray]:
    """W'[k] = W[k]*g[k]/sqrt(v[k]+e) and b'[k] = (bias[k]-m[k])*g[k]/sqrt(v[k]+e) + b[k]."""
    factor = (scale.astype(np.float64) / np.sqrt(var.astype(np.float64) + epsilon)).astype(np.float32)
    fused_w = w * factor.reshape((-1,) + (1,) * (w.ndim - 1))
    base = bias if bias is not None else np.zeros_like(mean, dtype=np.float32)
    fused_b = ((base - mean) * factor + offset).astype(np.float32)
    return fused_w.astype(np.float32, copy=False), fused_b
