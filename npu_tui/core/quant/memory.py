"""Bytes in the chip's weight memory, as gxnpuc 1.5.8 reports them in `Mem6(weights)`.

The rule, found on every compiled run of the fixture (../shared/gxnpuc: Mem6 against the graph's
weights, the config and the decoded model.h):
- a compressed MatMul/Conv2D weight: one mask bit per padded element (ceil(padded / 8) bytes) plus
  one byte per code that is not the zero point, the whole rounded up to an even byte count; a weight
  shared by several ops is stored once; with FUSE_BIASADD its bias is inside it (one more padded row)
  and takes no bytes of its own;
- an fp16 MatMul/Conv2D weight: 2 bytes per PADDED element (the same 32x32 tiles);
- a depthwise kernel: 2 bytes per element, unpadded (it is never compressed);
- a bias: 2 bytes per element, unpadded;
- a BatchNorm that is not folded (FusedBatchNormV2/V3 always, V1 without FUSE_BN): 2 vectors of C
  (its multiplier and its addend), 4 * C bytes whatever its 4 parameters were; a folded one leaves its
  fused bias, C values, 2 * C bytes, in place of the conv's bias;
- every other constant the graph still reads after constant folding (a forget bias, and in TensorFlow
  also the scalar axis of a Split/ConcatV2 or ExpandDims): 2 bytes per element.
Scale and offset live in the command word, not here.
"""

from __future__ import annotations

from .layout import padded_size

FP16_BYTES = 2
BN_STORED_VECTORS = 2


def compressed_bytes(padded: int, codes_stored: int) -> int:
    """Mask bits for every padded element, then the stored codes; even-aligned."""
    raw = -(-padded // 8) + codes_stored
    return raw + (raw & 1)


def fp16_matrix_bytes(shape: tuple[int, ...]) -> int:
    """An fp16 MatMul/Conv2D weight: every padded element of its tiles."""
    return FP16_BYTES * padded_size(shape)


def fp16_bytes(size: int) -> int:
    """A depthwise kernel, a bias or any other constant: unpadded fp16."""
    return FP16_BYTES * size


def batchnorm_bytes(channels: int) -> int:
    """A BatchNorm run as its own op: multiplier and addend per channel."""
    return FP16_BYTES * BN_STORED_VECTORS * channels
