"""The GRUS NPU's fp16 arithmetic (NPU_ARITHMETIC.md sections 1-3): every add, sub, mul and div is one
IEEE binary16 rounding (ties to even) of the float32 result, which float32's 24 bits make correctly
rounded; dot products are chains of such roundings with no wider accumulator."""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import onnx

if TYPE_CHECKING:
    from onnxruntime import InferenceSession

F16 = np.float16
F32 = np.float32
BLOCK = 32  # rows of one mc_matmul tile: the length of one fp16 accumulation chain
CHUNK_ELEMENTS = 1 << 17  # partial sums held at once (512 KB of float32 per array: they stay in the cache)

Function = TypeVar("Function", bound=Callable[..., Any])


def quiet(function: Function) -> Function:
    """Overflow to inf and inf - inf = NaN are what the NPU computes, not warnings."""

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"):
            return function(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


@quiet
def h(values: np.ndarray) -> np.ndarray:
    """Round float32 values to fp16 (RNE, subnormals kept): the NPU's float2half."""
    return np.asarray(values, dtype=F32).astype(F16)


@quiet
def add(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return h(np.add(a, b, dtype=F32))


@quiet
def sub(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return h(np.subtract(a, b, dtype=F32))


@quiet
def mul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return h(np.multiply(a, b, dtype=F32))


@quiet
def div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return h(np.divide(a, b, dtype=F32))


def maximum(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """max(a, b) = a if a > b else b: a NaN in a is dropped, a NaN in b kept (the C model's order)."""
    return np.where(a > b, a, b)


def minimum(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """min(a, b) = b if a > b else a."""
    return np.where(a > b, b, a)


def _blocked(length: int) -> tuple[int, int]:
    """(chains, chain length) of a dot product of `length` terms in 32-row blocks."""
    step = min(BLOCK, max(length, 1))
    return -(-length // step), step


def _chains(xs: np.ndarray, ws: np.ndarray, start: np.ndarray | None) -> np.ndarray:
    """xs[R, M, L] and ws[M, L, N] (float32 copies of fp16 values) as M independent mc_matmul chains,
    P_m = h(P_m + h(x * w)) over their L terms in order (P_0 starts at `start`, the others at 0), then
    summed in order: acc = P_0, acc = h(P_m + acc). Rows are taken in chunks to bound the memory;
    padding terms are x = +0, w = -0, whose product -0 leaves any P as it is. Each step runs as one
    onnxruntime call (`_chain_step`): the same IEEE float32 operations and binary16 roundings as numpy's,
    whose fp16 conversion is done in software and made this loop 10-20x slower."""
    chains, length, width = ws.shape
    out = np.empty((xs.shape[0], width), dtype=F32)
    weights = np.ascontiguousarray(ws.transpose(1, 0, 2))[..., None]  # [L, M, N, 1]: term k of every chain
    chunk = max(1, CHUNK_ELEMENTS // max(chains * width, 1))
    step = _chain_step()
    for first in range(0, xs.shape[0], chunk):
        # rows last ([L, M, 1, r], partial sums [M, N, r]): each product is a weight times a long row of inputs
        terms = np.ascontiguousarray(xs[first : first + chunk].transpose(2, 1, 0))[:, :, None, :]
        p = np.zeros((chains, width, terms.shape[-1]), dtype=F32)
        if start is not None:
            p[0] = np.broadcast_to(start, (width,))[:, None]
        for k in range(length):
            p = step.run(None, {"p": p, "x": terms[k], "w": weights[k]})[0]  # h(P + h(x * w))
        acc = p[0]
        for m in range(1, chains):
            acc = step.run(None, {"p": acc, "x": _ONE, "w": p[m]})[0]  # h(P_m + acc)
        out[first : first + chunk] = acc.T
    return out


_ONE = np.ones((1, 1), dtype=F32)  # x * P_m = P_m and h(P_m) = P_m: the step then adds two fp16 values
_STEP: list[InferenceSession] = []
_STEP_LOCK = threading.Lock()


def _chain_step() -> InferenceSession:
    """One session, built once per process: p' = h(p + h(x * w)), float32 in and out, h a Cast to float16
    and back. Graph optimizations are off so that onnxruntime keeps every operation and rounding as
    written (no fused multiply-add, no Cast pair removed); its Cast is IEEE round-to-nearest-even with
    subnormals, as numpy's astype. One thread: a step is a few cache-sized passes, less work than handing
    it to a pool on a shared machine."""
    with _STEP_LOCK:
        if not _STEP:
            import onnxruntime as ort

            helper, tensor = onnx.helper, onnx.TensorProto
            nodes = [
                helper.make_node("Mul", ["x", "w"], ["xw"]),
                helper.make_node("Cast", ["xw"], ["xw16"], to=tensor.FLOAT16),
                helper.make_node("Cast", ["xw16"], ["hxw"], to=tensor.FLOAT),
                helper.make_node("Add", ["p", "hxw"], ["sum"]),
                helper.make_node("Cast", ["sum"], ["sum16"], to=tensor.FLOAT16),
                helper.make_node("Cast", ["sum16"], ["out"], to=tensor.FLOAT),
            ]
            inputs = [helper.make_tensor_value_info(n, tensor.FLOAT, None) for n in ("p", "x", "w")]
            graph = helper.make_graph(
                nodes, "fp16_chain_step", inputs, [helper.make_tensor_value_info("out", tensor.FLOAT, None)]
            )
            model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
            model.ir_version = 8
            options = ort.SessionOptions()
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
            options.log_severity_level = 3
            options.intra_op_num_threads = 1
            _STEP.append(ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"]))
        return _STEP[0]


def _split(x: np.ndarray, axis_length: int, chains: int, step: int, fill: float) -> np.ndarray:
    """The last axis (axis_length) padded with `fill` to chains * step and cut into [chains, step]."""
    pad = chains * step - axis_length
    widths = [(0, 0)] * (x.ndim - 1) + [(0, pad)]
    return np.pad(x, widths, constant_values=fill).reshape(*x.shape[:-1], chains, step)


def _start(bias_first: np.ndarray | None) -> np.ndarray | None:
    return None if bias_first is None else np.asarray(bias_first, dtype=F16).astype(F32)


@quiet
def matmul(x: np.ndarray, w: np.ndarray, bias_first: np.ndarray | None = None) -> np.ndarray:
    """x[..., K] @ w[K, N] as the NPU computes it: a chain per 32-row block of w (k ascending), the block
    partials added in order, acc = h(P_b + acc); `bias_first` (FUSE_BIASADD) starts block 0's chain."""
    k, n = w.shape
    if k == 0:
        raise ValueError("matmul with K = 0")
    chains, step = _blocked(k)
    lead = x.shape[:-1]
    xs = _split(np.asarray(x, dtype=F16).astype(F32).reshape(-1, k), k, chains, step, 0.0)
    ws = _split(np.asarray(w, dtype=F16).astype(F32).T, k, chains, step, -0.0).transpose(1, 2, 0)
    return _chains(xs, ws, _start(bias_first)).astype(F16).reshape(*lead, n)


Pair = tuple[int, int]


def taps(
    x: np.ndarray, kernel: Pair, strides: Pair, pads: tuple[int, int, int, int] = (0, 0, 0, 0), dilations: Pair = (1, 1)
) -> list[np.ndarray]:
    """What each kernel tap (row-major) reads of x[S, H, W, C] zero-padded by (top, left, bottom, right):
    one strided view [S, out_h, out_w, C] per tap."""
    top, left, bottom, right = pads
    padded = np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)))
    (kh, kw), (sh, sw), (dh, dw) = kernel, strides, dilations
    out_h = (padded.shape[1] - dh * (kh - 1) - 1) // sh + 1
    out_w = (padded.shape[2] - dw * (kw - 1) - 1) // sw + 1
    return [
        padded[:, i * dh : i * dh + sh * (out_h - 1) + 1 : sh, j * dw : j * dw + sw * (out_w - 1) + 1 : sw, :]
        for i in range(kh)
        for j in range(kw)
    ]


@quiet
def conv2d(
    x: np.ndarray,
    w: np.ndarray,
    strides: Pair,
    pads: tuple[int, int, int, int],
    bias_first: np.ndarray | None = None,
    dilations: Pair = (1, 1),
) -> np.ndarray:
    """NHWC convolution of x[S, H, W, Cin] with w[kh, kw, Cin, Cout] as dec_conv2d runs it: taps in
    row-major (kh, kw) order, inside each tap the 32-channel input blocks, each (tap, block) one chain
    started at 0 and added to the running acc; padding taps add nothing (their chain over zero inputs is
    +0, which leaves every acc as it was). `bias_first` starts the first chain. pads = top, left,
    bottom, right. A dilated conv (gxnpuc's SpaceToBatchND form) reads its taps spread out, in the same
    order (not checked against the C model: no case has one)."""
    kh, kw, cin, cout = w.shape
    views = taps(np.asarray(x, dtype=F16).astype(F32), (kh, kw), strides, pads, dilations)
    chains, step = _blocked(cin)
    xs = _split(np.stack(views, axis=3), cin, chains, step, 0.0).reshape(-1, kh * kw * chains, step)
    ws = _split(np.asarray(w, dtype=F16).astype(F32).reshape(kh * kw, cin, cout).transpose(0, 2, 1), cin, chains, step, -0.0)
    ws = ws.transpose(0, 2, 3, 1).reshape(kh * kw * chains, step, cout)
    out = _chains(xs, ws, _start(bias_first))
    return out.astype(F16).reshape(*views[0].shape[:3], cout)


@quiet
def depthwise2d(
    x: np.ndarray,
    w: np.ndarray,
    strides: Pair,
    pads: tuple[int, int, int, int],
    bias_first: np.ndarray | None = None,
    dilations: Pair = (1, 1),
) -> np.ndarray:
    """NHWC depthwise convolution, w[kh, kw, C]: one chain per output over the taps row-major,
    acc = bias (when given) or 0, then acc = h(acc + h(x*w)) (mc_conv2d per channel)."""
    kh, kw, channels = w.shape
    views = taps(np.asarray(x, dtype=F16).astype(F32), (kh, kw), strides, pads, dilations)
    ws = np.asarray(w, dtype=F16).astype(F32).reshape(kh * kw, channels)
    start = 0.0 if bias_first is None else np.asarray(bias_first, dtype=F16).astype(F32)
    acc = np.broadcast_to(np.asarray(start, dtype=F32), views[0].shape).copy()
    for view, weight in zip(views, ws):
        acc = np.add(acc, np.multiply(view, weight, dtype=F32).astype(F16), dtype=F32).astype(F16).astype(F32)
    return acc.astype(F16)


@quiet
def reduce_sum(x: np.ndarray, axes: tuple[int, ...]) -> np.ndarray:
    """op_reduce's chain: s = 0; s = h(s + x) over the reduced elements in row-major index order. The
    reduced axes keep size 1."""
    kept = [a for a in range(x.ndim) if a not in axes]
    moved = np.transpose(np.asarray(x, dtype=F16), kept + list(axes))
    count = int(np.prod([x.shape[a] for a in axes]))
    flat = moved.reshape(*moved.shape[: len(kept)], count).astype(F32)
    s = np.zeros(moved.shape[: len(kept)], dtype=F32)
    for k in range(count):
        s = np.add(s, flat[..., k], dtype=F32).astype(F16).astype(F32)
    shape = tuple(1 if a in axes else n for a, n in enumerate(x.shape))
    return s.astype(F16).reshape(shape)


@quiet
def reduce_mean(x: np.ndarray, axes: tuple[int, ...], count: np.ndarray) -> np.ndarray:
    """The reduce chain divided by the element count: a real division, y = h(s / h(count))."""
    return div(reduce_sum(x, axes), count)


def max_pool(x: np.ndarray, kernel: tuple[int, int], strides: tuple[int, int]) -> np.ndarray:
    """op_pool max on NHWC: m = -inf; m = max(x, m) over the window row-major."""
    views = taps(np.asarray(x, dtype=F16), kernel, strides)
    m = np.full_like(views[0], -np.inf)
    for value in views:
        m = maximum(value, m)
    return m


@quiet
def avg_pool(x: np.ndarray, kernel: tuple[int, int], strides: tuple[int, int], count: np.ndarray) -> np.ndarray:
    """op_pool avg on NHWC: s = h(s + x) over the window row-major, then y = h(s / h(kh*kw))."""
    views = taps(np.asarray(x, dtype=F16), kernel, strides)
    s = np.zeros_like(views[0])
    for value in views:
        s = add(s, value)
    return div(s, count)


def fp32_output(values: np.ndarray) -> np.ndarray:
    """The format op's fp16 -> fp32 (calc_op_format direction 1): exponent field 0 (zeros and
    subnormals) becomes a signed 0, exponent 31 (inf and NaN) a signed inf, the rest widens exactly."""
    bits = np.asarray(values, dtype=F16).view(np.uint16)
    exponent = (bits >> 10) & 0x1F
    negative = (bits & 0x8000) != 0
    wide = bits.view(F16).astype(F32)
    wide = np.where(exponent == 0, np.where(negative, F32(-0.0), F32(0.0)), wide)
    return np.where(exponent == 0x1F, np.where(negative, F32(-np.inf), F32(np.inf)), wide).astype(F32)
