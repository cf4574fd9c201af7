"""Where an ONNX weight's axes go in gxnpuc's TF layout (taps x [in, out], layout.py).

gxnpuc compiles TensorFlow graphs; an ONNX model reaches the same chip through the same layout:
- MatMul B [in, out] is the TF matrix itself (extra leading axes are taps);
- Gemm B is [in, out], or [out, in] with transB;
- Conv W [out, in / group, *kernel] is the HWIO kernel transposed: taps = the kernel positions;
- ConvTranspose W [in, out / group, *kernel]: taps x [in, out / group];
- LSTM/GRU/RNN W and R [directions, gates * hidden, in]: one [in, gates * hidden] matrix per direction.
A Conv with group > 1 is what TF calls depthwise (DepthwiseConv2dNative): gxnpuc stores it fp16,
unpadded, and never compresses it; nor a Conv2D whose kernel has one input channel.
"""

from __future__ import annotations

import math

RNN_OPS = frozenset({"LSTM", "GRU", "RNN"})
CONV_OPS = frozenset({"Conv", "ConvTranspose"})


def tf_matrix(op_type: str, shape: tuple[int, ...], transposed: bool = False) -> tuple[int, int, int]:
    """(taps, in, out) of the weight in TF layout; `transposed` is Gemm's transB."""
    if len(shape) < 2:
        return 1, 1, math.prod(shape)
    if op_type == "Conv":
        return math.prod(shape[2:]), shape[1], shape[0]
    if op_type == "ConvTranspose":
        return math.prod(shape[2:]), shape[0], shape[1]
    if op_type in RNN_OPS or (op_type == "Gemm" and transposed):
        return math.prod(shape[:-2]), shape[-1], shape[-2]
    return math.prod(shape[:-2]), shape[-2], shape[-1]
