"""TensorFlow's semantics of the GRUS ops in numpy, for two jobs before any ONNX is built: the values of
the tensors gxnpuc folds into constants (weights read through Identity, ExpandDims of a kernel, ...) and
the static shape of every other tensor (a placeholder's values are zeros of its INPUT_OPS shape; convolution
and pooling only report their output shape, since their values are never folded)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from .graphdef import DT_FLOAT, DTYPES, MAX_ELEMENTS
from .nodes import TfNode

SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946


class Unsupported(Exception):
    """An op, or an attribute value, that npu-tui does not convert (the message says which)."""


def bounded(shape: tuple[int, ...] | list[int]) -> tuple[int, ...]:
    """A shape about to be allocated, refused when it is beyond any GX8002 tensor."""
    count = math.prod(int(d) for d in shape)
    if count > MAX_ELEMENTS:
        raise Unsupported(f"its output {list(shape)} would hold {count:,} elements; that is not a GX8002 tensor")
    return tuple(int(d) for d in shape)


def window(node: TfNode, key: str, default: int = 1) -> tuple[int, int]:
    """(h, w) of an NHWC 4-vector attribute (strides, ksize, dilations)."""
    values = node.attrs.get(key) or [default] * 4
    if len(values) != 4:
        raise Unsupported(f"{key} {values} is not 4 values")
    return int(values[1]), int(values[2])


def same_pads(size: int, kernel: int, stride: int, dilation: int) -> tuple[int, int]:
    """TensorFlow's SAME padding: the output is ceil(size / stride); the odd pixel goes after."""
    out = -(-size // stride)
    total = max((out - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


def spatial_pads(
    node: TfNode, size: tuple[int, int], kernel: tuple[int, int], stride: tuple[int, int], dilation: tuple[int, int]
) -> list[tuple[int, int]]:
    padding = node.attrs.get("padding", "VALID")
    if padding == "SAME":
        return [same_pads(size[i], kernel[i], stride[i], dilation[i]) for i in range(2)]
    if padding == "VALID":
        return [(0, 0), (0, 0)]
    if padding == "EXPLICIT":
        flat = [int(v) for v in node.attrs.get("explicit_paddings", [])]
        if len(flat) != 8:
            raise Unsupported(f"explicit_paddings {flat} is not 8 values")
        return [(flat[2], flat[3]), (flat[4], flat[5])]
    raise Unsupported(f"padding {padding!r}")


def window_output(size: int, kernel: int, stride: int, dilation: int, pads: tuple[int, int]) -> int:
    out = (size + pads[0] + pads[1] - (kernel - 1) * dilation - 1) // stride + 1
    if out < 1:
        raise Unsupported(f"a window of {kernel} (dilation {dilation}) does not fit an input of {size} with padding {list(pads)}")
    return out


def _nhwc(node: TfNode, x: np.ndarray) -> None:
    if node.attrs.get("data_format", "NHWC") != "NHWC":
        raise Unsupported(f"data_format {node.attrs['data_format']} (GRUS takes NHWC only)")
    if x.ndim != 4:
        raise Unsupported(f"input of rank {x.ndim}; it needs rank 4 (NHWC)")


def conv_shape(node: TfNode, x: np.ndarray, k: np.ndarray, depthwise: bool) -> list[np.ndarray]:
    _nhwc(node, x)
    if k.ndim != 4 or k.shape[2] != x.shape[3]:
        raise Unsupported(f"kernel {list(k.shape)} does not match input channels {x.shape[3]}")
    stride, dilation = window(node, "strides"), window(node, "dilations")
    kernel = (k.shape[0], k.shape[1])
    pads = spatial_pads(node, (x.shape[1], x.shape[2]), kernel, stride, dilation)
    h, w = (window_output(x.shape[1 + i], kernel[i], stride[i], dilation[i], pads[i]) for i in range(2))
    channels = k.shape[2] * k.shape[3] if depthwise else k.shape[3]
    return [np.zeros(bounded((x.shape[0], h, w, channels)), np.float32)]


def pool_shape(node: TfNode, x: np.ndarray) -> list[np.ndarray]:
    _nhwc(node, x)
    kernel, stride = window(node, "ksize"), window(node, "strides")
    pads = spatial_pads(node, (x.shape[1], x.shape[2]), kernel, stride, (1, 1))
    h, w = (window_output(x.shape[1 + i], kernel[i], stride[i], 1, pads[i]) for i in range(2))
    return [np.zeros(bounded((x.shape[0], h, w, x.shape[3])), np.float32)]


def batch_norm(node: TfNode, ins: list[np.ndarray]) -> list[np.ndarray]:
    x, scale, offset, mean, var = ins[:5]
    if node.attrs.get("is_training", False):
        raise Unsupported("is_training true (a frozen inference graph has false)")
    _nhwc(node, x)
    factor = scale / np.sqrt(var + np.float32(node.attrs.get("epsilon", 1e-4)))
    y = ((x - mean) * factor + offset).astype(np.float32)
    outputs = 6 if node.op == "FusedBatchNormV3" else 5
    return [y, mean, var, mean, var, var][:outputs]


def axis_of(value: np.ndarray, rank: int) -> int:
    axis = int(np.asarray(value).reshape(-1)[0])
    if not -rank <= axis < max(rank, 1):
        raise Unsupported(f"axis {axis} is outside a tensor of rank {rank}")
    return axis % max(rank, 1)


def reduce_axes(value: np.ndarray, rank: int) -> tuple[int, ...]:
    axes = np.asarray(value).reshape(-1)
    return tuple(sorted({axis_of(a, rank) for a in axes}))


def split(node: TfNode, ins: list[np.ndarray]) -> list[np.ndarray]:
    if node.op == "Split":
        axis_value, x = ins
        count = int(node.attrs.get("num_split", 1))
        axis = axis_of(axis_value, x.ndim)
        if count < 1 or x.shape[axis] % count:
            raise Unsupported(f"num_split {count} does not divide dimension {x.shape[axis]}")
        return list(np.split(x, count, axis=axis))
    x, sizes_value, axis_value = ins
    axis = axis_of(axis_value, x.ndim)
    sizes = [int(s) for s in np.asarray(sizes_value).reshape(-1)]
    if sizes.count(-1) > 1:
        raise Unsupported(f"size_splits {sizes} has more than one -1")
    if -1 in sizes:
        sizes[sizes.index(-1)] = x.shape[axis] - sum(s for s in sizes if s != -1)
    if sum(sizes) != x.shape[axis] or min(sizes, default=0) < 0:
        raise Unsupported(f"size_splits {sizes} do not add up to dimension {x.shape[axis]}")
    return list(np.split(x, np.cumsum(sizes)[:-1], axis=axis))


def strided_index(node: TfNode, rank: int, begin: np.ndarray, end: np.ndarray, strides: np.ndarray) -> tuple:
    """StridedSlice's masks turned into a numpy index: the same selection, in TF's own terms."""
    begin, end, strides = (np.asarray(v).reshape(-1).astype(np.int64) for v in (begin, end, strides))
    if not len(begin) == len(end) == len(strides):
        raise Unsupported("begin, end and strides differ in length")
    masks = {
        key: int(node.attrs.get(key, 0))
        for key in ("begin_mask", "end_mask", "ellipsis_mask", "new_axis_mask", "shrink_axis_mask")
    }
    if bin(masks["ellipsis_mask"]).count("1") > 1:
        raise Unsupported("more than one ellipsis")
    index: list = []
    for i in range(len(begin)):
        bit = 1 << i
        if masks["ellipsis_mask"] & bit:
            index.append(Ellipsis)
        elif masks["new_axis_mask"] & bit:
            index.append(None)
        elif masks["shrink_axis_mask"] & bit:
            if strides[i] == 0:
                raise Unsupported("stride 0")
            index.append(int(begin[i]))
        else:
            if strides[i] == 0:
                raise Unsupported("stride 0")
            start = None if masks["begin_mask"] & bit else int(begin[i])
            stop = None if masks["end_mask"] & bit else int(end[i])
            index.append(slice(start, stop, int(strides[i])))
    return tuple(index)


def _strided_slice(node: TfNode, ins: list[np.ndarray]) -> list[np.ndarray]:
    x = ins[0]
    try:
        return [np.asarray(x[strided_index(node, x.ndim, *ins[1:4])])]
    except IndexError as exc:
        raise Unsupported(f"the slice does not fit shape {list(x.shape)} ({exc})") from None


def _slice(node: TfNode, ins: list[np.ndarray]) -> list[np.ndarray]:
    x, begin, size = ins[0], np.asarray(ins[1]).reshape(-1), np.asarray(ins[2]).reshape(-1)
    if len(begin) != x.ndim or len(size) != x.ndim:
        raise Unsupported(f"begin {begin.tolist()} / size {size.tolist()} do not match rank {x.ndim}")
    index = []
    for d in range(x.ndim):
        b, s = int(begin[d]), int(size[d])
        stop = x.shape[d] if s == -1 else b + s
        if not 0 <= b <= stop <= x.shape[d]:
            raise Unsupported(f"begin {begin.tolist()} size {size.tolist()} fall outside shape {list(x.shape)}")
        index.append(slice(b, stop))
    return [x[tuple(index)]]


def _reshape(node: TfNode, ins: list[np.ndarray]) -> list[np.ndarray]:
    shape = [int(d) for d in np.asarray(ins[1]).reshape(-1)]
    try:
        return [ins[0].reshape(shape)]
    except ValueError:
        raise Unsupported(f"shape {list(ins[0].shape)} cannot be reshaped to {shape}") from None


def _squeeze(node: TfNode, ins: list[np.ndarray]) -> list[np.ndarray]:
    x = ins[0]
    dims = node.attrs.get("squeeze_dims") or node.attrs.get("axis") or []
    axes = tuple(axis_of(d, x.ndim) for d in dims) if dims else tuple(i for i, d in enumerate(x.shape) if d == 1)
    if any(x.shape[a] != 1 for a in axes):
        raise Unsupported(f"squeeze_dims {list(dims)} name a dimension of shape {list(x.shape)} that is not 1")
    return [np.squeeze(x, axis=axes)]


def _expand_dims(node: TfNode, ins: list[np.ndarray]) -> list[np.ndarray]:
    x = ins[0]
    axis = int(np.asarray(ins[1]).reshape(-1)[0])
    if not -x.ndim - 1 <= axis <= x.ndim:
        raise Unsupported(f"axis {axis} outside rank {x.ndim} + 1")
    return [np.expand_dims(x, axis % (x.ndim + 1))]


def _concat(node: TfNode, ins: list[np.ndarray]) -> list[np.ndarray]:
    values, axis_value = (ins[:-1], ins[-1]) if node.op == "ConcatV2" else (ins[1:], ins[0])
    try:
        return [np.concatenate(values, axis=axis_of(axis_value, values[0].ndim))]
    except ValueError as exc:
        raise Unsupported(f"inputs of shapes {[list(v.shape) for v in values]} cannot be concatenated ({exc})") from None


def _pack(node: TfNode, ins: list[np.ndarray]) -> list[np.ndarray]:
    axis = int(node.attrs.get("axis", 0))
    rank = ins[0].ndim + 1
    if not -rank <= axis < rank:
        raise Unsupported(f"axis {axis} outside rank {rank}")
    try:
        return [np.stack(ins, axis=axis % rank)]
    except ValueError:
        raise Unsupported(f"inputs of shapes {[list(v.shape) for v in ins]} cannot be stacked") from None


def _pad(node: TfNode, ins: list[np.ndarray]) -> list[np.ndarray]:
    pads = np.asarray(ins[1]).astype(np.int64)
    if pads.shape != (ins[0].ndim, 2) or (pads < 0).any():
        raise Unsupported(f"paddings {pads.tolist()} are not [rank, 2] of sizes >= 0")
    bounded([d + int(pads[i].sum()) for i, d in enumerate(ins[0].shape)])
    return [np.pad(ins[0], pads.tolist())]


def _transpose(node: TfNode, ins: list[np.ndarray]) -> list[np.ndarray]:
    perm = [int(p) for p in np.asarray(ins[1]).reshape(-1)]
    if sorted(perm) != list(range(ins[0].ndim)):
        raise Unsupported(f"perm {perm} is not a permutation of rank {ins[0].ndim}")
    return [np.transpose(ins[0], perm)]


def _matmul(node: TfNode, ins: list[np.ndarray]) -> list[np.ndarray]:
    a, b = ins
    if node.op == "MatMul":
        a = a.T if node.attrs.get("transpose_a") else a
        b = b.T if node.attrs.get("transpose_b") else b
    else:
        a = np.swapaxes(a, -1, -2) if node.attrs.get("adj_x") else a
        b = np.swapaxes(b, -1, -2) if node.attrs.get("adj_y") else b
    if a.ndim < 2 or b.ndim < 2 or a.shape[-1] != b.shape[-2]:
        raise Unsupported(f"shapes {list(a.shape)} and {list(b.shape)} do not multiply")
    return [np.matmul(a, b)]


def _reduce(function: Callable) -> Callable:
    def run(node: TfNode, ins: list[np.ndarray]) -> list[np.ndarray]:
        keep = bool(node.attrs.get("keep_dims", False))
        return [np.asarray(function(ins[0], axis=reduce_axes(ins[1], ins[0].ndim), keepdims=keep), dtype=ins[0].dtype)]

    return run


def _binary(function: Callable) -> Callable:
    def run(node: TfNode, ins: list[np.ndarray]) -> list[np.ndarray]:
        try:
            with np.errstate(all="ignore"):
                return [np.asarray(function(ins[0], ins[1])).astype(np.result_type(ins[0], ins[1]), copy=False)]
        except ValueError:
            raise Unsupported(f"shapes {list(ins[0].shape)} and {list(ins[1].shape)} do not broadcast") from None

    return run


def _unary(function: Callable) -> Callable:
    def run(node: TfNode, ins: list[np.ndarray]) -> list[np.ndarray]:
        with np.errstate(all="ignore"):
            return [np.asarray(function(ins[0])).astype(ins[0].dtype, copy=False)]

    return run


def _selu(x: np.ndarray) -> np.ndarray:
    return SELU_SCALE * np.where(x > 0, x, SELU_ALPHA * (np.exp(np.minimum(x, 0)) - 1))


def _space_to_batch(node: TfNode, ins: list[np.ndarray]) -> list[np.ndarray]:
    x, block, pads = ins[0], np.asarray(ins[1]).reshape(-1), np.asarray(ins[2]).reshape(-1, 2)
    if x.ndim != 4 or len(block) != 2 or pads.shape != (2, 2):
        raise Unsupported("only a 2-D block of an NHWC tensor")
    padded = [x.shape[1 + i] + int(pads[i].sum()) for i in range(2)]
    if any(padded[i] % int(block[i]) for i in range(2)):
        raise Unsupported(f"padded size {padded} is not a multiple of block {block.tolist()}")
    n = x.shape[0] * int(np.prod(block))
    return [np.zeros(bounded((n, padded[0] // int(block[0]), padded[1] // int(block[1]), x.shape[3])), x.dtype)]


def _batch_to_space(node: TfNode, ins: list[np.ndarray]) -> list[np.ndarray]:
    x, block, crops = ins[0], np.asarray(ins[1]).reshape(-1), np.asarray(ins[2]).reshape(-1, 2)
    if x.ndim != 4 or len(block) != 2 or crops.shape != (2, 2):
        raise Unsupported("only a 2-D block of an NHWC tensor")
    size = int(np.prod(block))
    if x.shape[0] % size:
        raise Unsupported(f"batch {x.shape[0]} is not a multiple of block {block.tolist()}")
    h, w = (x.shape[1 + i] * int(block[i]) - int(crops[i].sum()) for i in range(2))
    return [np.zeros(bounded((x.shape[0] // size, h, w, x.shape[3])), x.dtype)]


UNARY: dict[str, Callable[..., Any]] = {
    "Abs": np.abs,
    "Neg": np.negative,
    "Exp": np.exp,
    "Log": np.log,
    "Sqrt": np.sqrt,
    "Rsqrt": lambda x: 1 / np.sqrt(x),
    "Reciprocal": lambda x: 1 / x,
    "Square": np.square,
    "Relu": lambda x: np.maximum(x, 0),
    "Relu6": lambda x: np.clip(x, 0, 6),
    "Sigmoid": lambda x: 1 / (1 + np.exp(-x)),
    "Tanh": np.tanh,
    "Selu": _selu,
    "Identity": lambda x: x,
    "StopGradient": lambda x: x,
}
BINARY: dict[str, Callable[..., Any]] = {
    "Add": np.add,
    "AddV2": np.add,
    "Sub": np.subtract,
    "Mul": np.multiply,
    "RealDiv": np.divide,
    "Div": np.divide,
    "Pow": np.power,
    "SquaredDifference": lambda a, b: np.square(a - b),
    "Maximum": np.maximum,
    "Minimum": np.minimum,
}

OPS: dict[str, Callable[[TfNode, list[np.ndarray]], list[np.ndarray]]] = {
    **{op: _unary(f) for op, f in UNARY.items()},
    **{op: _binary(f) for op, f in BINARY.items()},
    "BiasAdd": _binary(np.add),
    "MatMul": _matmul,
    "BatchMatMulV2": _matmul,
    "BatchMatMul": _matmul,
    "Conv2D": lambda node, ins: conv_shape(node, ins[0], ins[1], depthwise=False),
    "DepthwiseConv2dNative": lambda node, ins: conv_shape(node, ins[0], ins[1], depthwise=True),
    "MaxPool": lambda node, ins: pool_shape(node, ins[0]),
    "AvgPool": lambda node, ins: pool_shape(node, ins[0]),
    "FusedBatchNorm": batch_norm,
    "FusedBatchNormV2": batch_norm,
    "FusedBatchNormV3": batch_norm,
    "Mean": _reduce(np.mean),
    "Sum": _reduce(np.sum),
    "ConcatV2": _concat,
    "Concat": _concat,
    "Reshape": _reshape,
    "Squeeze": _squeeze,
    "ExpandDims": _expand_dims,
    "Slice": _slice,
    "StridedSlice": _strided_slice,
    "Pack": _pack,
    "Pad": _pad,
    "Transpose": _transpose,
    "Split": split,
    "SplitV": split,
    "Shape": lambda node, ins: [np.asarray(ins[0].shape, dtype=np.int64 if node.attrs.get("out_type") == 9 else np.int32)],
    "Cast": lambda node, ins: [ins[0].astype(_cast_type(node))],
    "SpaceToBatchND": _space_to_batch,
    "BatchToSpaceND": _batch_to_space,
    # constant-only arithmetic that TF's fold_constants evaluates, so gxnpuc never sees it as an op
    "Fill": lambda node, ins: [np.full(bounded(np.asarray(ins[0]).reshape(-1).tolist()), ins[1])],
    "ZerosLike": lambda node, ins: [np.zeros_like(ins[0])],
    "OnesLike": lambda node, ins: [np.ones_like(ins[0])],
    "Range": lambda node, ins: [_range(*ins)],
    "Size": lambda node, ins: [np.asarray(ins[0].size, dtype=np.int64 if node.attrs.get("out_type") == 9 else np.int32)],
    "Rank": lambda node, ins: [np.asarray(ins[0].ndim, dtype=np.int32)],
    "Tile": lambda node, ins: [_tile(ins[0], [int(m) for m in np.asarray(ins[1]).reshape(-1)])],
    "Prod": _reduce(np.prod),
    "Max": _reduce(np.max),
    "Min": _reduce(np.min),
}
NOT_FOLDED = frozenset({"Conv2D", "DepthwiseConv2dNative", "MaxPool", "AvgPool", "SpaceToBatchND", "BatchToSpaceND"})


def _range(start: np.ndarray, limit: np.ndarray, delta: np.ndarray) -> np.ndarray:
    first, last, step = (np.asarray(v).reshape(-1)[0].item() for v in (start, limit, delta))
    if step == 0:
        raise Unsupported("Range with delta 0")
    bounded([max(math.ceil((last - first) / step), 0)])
    return np.arange(first, last, step).astype(np.result_type(start, limit, delta))


def _tile(x: np.ndarray, multiples: list[int]) -> np.ndarray:
    if len(multiples) != x.ndim or min(multiples, default=0) < 0:
        raise Unsupported(f"multiples {multiples} do not fit rank {x.ndim}")
    bounded([d * m for d, m in zip(x.shape, multiples)])
    return np.tile(x, multiples)


def _cast_type(node: TfNode) -> np.dtype:
    dtype = int(node.attrs.get("DstT", DT_FLOAT))
    if dtype not in DTYPES:
        raise Unsupported(f"a cast to DataType {dtype}")
    return DTYPES[dtype][0]
