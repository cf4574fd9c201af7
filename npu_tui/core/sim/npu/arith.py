"""The GRUS NPU's fp16 arithmetic (NPU_ARITHMETIC.md sections 1-3): every add, sub, mul and div is one
IEEE binary16 rounding (ties to even) of the float32 result, which float32's 24 bits make correctly
rounded; dot products are chains of such roundings with no wider accumulator."""

from __future__ import annotations

import numpy as np

from .kernels import binary, narrow, session, widen

F16 = np.float16
F32 = np.float32
BLOCK = 32  # rows of one mc_matmul tile: the length of one fp16 accumulation chain
CHUNK_ELEMENTS = 1 << 17  # partial sums held at once (512 KB of float32 per array: they stay in the cache)
CALL_CHAINS = 256  # chains one onnxruntime call runs and adds: its graph grows with them (30 ms to build 288)


def h(values: np.ndarray) -> np.ndarray:
    """Round float32 values to fp16 (RNE, subnormals kept): the NPU's float2half."""
    return narrow(values)


def add(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return binary("Add", a, b)


def sub(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return binary("Sub", a, b)


def mul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return binary("Mul", a, b)


def div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return binary("Div", a, b)


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


def _chains(terms: np.ndarray, ws: np.ndarray, start: np.ndarray | None) -> np.ndarray:
    """terms[L, M, R] and ws[M, L, N] (float32 copies of fp16 values) as M independent mc_matmul chains
    per row, P_m = h(P_m + h(x * w)) over their L terms in order (P_0 starts at `start`, the others at 0),
    then summed in order: acc = P_0, acc = h(P_m + acc). Gives acc as [N, R], rows taken in chunks
    that bound the memory; padding terms are x = +0, w = -0, whose product -0 leaves any P as it is."""
    length, chains, rows = terms.shape
    weights = _term_weights(ws)
    out = np.empty((ws.shape[2], rows), dtype=F32)
    chunk = _chunk_rows(chains, ws.shape[2])
    for first in range(0, rows, chunk):
        out[:, first : first + chunk] = _run_chains(terms[:, :, None, first : first + chunk], weights, start)
    return out


def _term_weights(ws: np.ndarray) -> list[np.ndarray]:
    """ws[M, L, N] as [L, m, N, 1] (term k of every chain) for each CALL_CHAINS chains."""
    terms = ws.transpose(1, 0, 2)[..., None]
    return [np.ascontiguousarray(terms[:, first : first + CALL_CHAINS]) for first in range(0, ws.shape[0], CALL_CHAINS)]


def _chunk_rows(chains: int, width: int) -> int:
    """Rows per call: partial sums [M, N, rows] of about CHUNK_ELEMENTS."""
    return max(1, CHUNK_ELEMENTS // max(chains * width, 1))


def _run_chains(part: np.ndarray, weights: list[np.ndarray], start: np.ndarray | None) -> np.ndarray:
    """One chunk, part[L, M, 1, r], as one onnxruntime call per group of chains (`weights`, from
    `_term_weights`): kernel "chains L m" for the first, "chains L m after" continuing the running sum
    for the others; rows last, so each product is a weight times a long row of inputs. Gives [N, r]."""
    length, _, _, rows = part.shape
    acc = np.empty(0, dtype=F32)
    first = 0
    for group in weights:
        count, width = group.shape[1], group.shape[2]
        p = np.zeros((1, count, width, rows), dtype=F32)
        if start is not None and first == 0:
            p[0, 0] = np.broadcast_to(start, (width,))[:, None]
        feeds = {"x": np.ascontiguousarray(part[:, first : first + count]), "w": group, "p": p}
        if first:
            acc = session(f"chains {length} {count} after").run(None, {**feeds, "acc": acc})[0]
        else:
            acc = session(f"chains {length} {count}").run(None, feeds)[0]
        first += count
    return acc[0, 0]


def _row_blocks(samples: int, out_h: int, out_w: int, chunk: int) -> list[tuple[slice, slice]]:
    """A conv's output rows (sample, output row, output column, flattened in that order) in blocks of
    at most `chunk` (or one output row): whole samples while one fits, else output rows of one sample.
    Each block is a contiguous range of the flattened rows and one strided view of each tap."""
    per_sample = out_h * out_w
    if not samples or not per_sample:
        return []
    if per_sample <= chunk:
        step = chunk // per_sample
        return [(slice(s, min(s + step, samples)), slice(0, out_h)) for s in range(0, samples, step)]
    step = max(1, chunk // max(out_w, 1))
    return [(slice(s, s + 1), slice(o, min(o + step, out_h))) for s in range(samples) for o in range(0, out_h, step)]


def _split(x: np.ndarray, axis_length: int, chains: int, step: int, fill: float) -> np.ndarray:
    """The last axis (axis_length) padded with `fill` to chains * step and cut into [chains, step]."""
    pad = chains * step - axis_length
    if pad:
        x = np.pad(x, [(0, 0)] * (x.ndim - 1) + [(0, pad)], constant_values=fill)
    return x.reshape(*x.shape[:-1], chains, step)


def _start(bias_first: np.ndarray | None) -> np.ndarray | None:
    return None if bias_first is None else widen(bias_first)


def matmul(x: np.ndarray, w: np.ndarray, bias_first: np.ndarray | None = None) -> np.ndarray:
    """x[..., K] @ w[K, N] as the NPU computes it: a chain per 32-row block of w (k ascending), the block
    partials added in order, acc = h(P_b + acc); `bias_first` (FUSE_BIASADD) starts block 0's chain."""
    k, n = w.shape
    if k == 0:
        raise ValueError("matmul with K = 0")
    chains, step = _blocked(k)
    lead = x.shape[:-1]
    xs = _split(widen(x).reshape(-1, k), k, chains, step, 0.0)  # [R, M, L]
    ws = _split(widen(w).T, k, chains, step, -0.0).transpose(1, 2, 0)
    return narrow(_chains(xs.transpose(2, 1, 0), ws, _start(bias_first)).T).reshape(*lead, n)


Pair = tuple[int, int]


def taps(
    x: np.ndarray, kernel: Pair, strides: Pair, pads: tuple[int, int, int, int] = (0, 0, 0, 0), dilations: Pair = (1, 1)
) -> list[np.ndarray]:
    """What each kernel tap (row-major) reads of x[S, H, W, C] zero-padded by (top, left, bottom, right):
    one strided view [S, out_h, out_w, C] per tap."""
    top, left, bottom, right = pads
    padded = np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0))) if any(pads) else x
    (kh, kw), (sh, sw), (dh, dw) = kernel, strides, dilations
    out_h = (padded.shape[1] - dh * (kh - 1) - 1) // sh + 1
    out_w = (padded.shape[2] - dw * (kw - 1) - 1) // sw + 1
    return [
        padded[:, i * dh : i * dh + sh * (out_h - 1) + 1 : sh, j * dw : j * dw + sw * (out_w - 1) + 1 : sw, :]
        for i in range(kh)
        for j in range(kw)
    ]


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
    chains, step = _blocked(cin)
    wide = _split(widen(x), cin, chains, step, 0.0).reshape(*x.shape[:3], chains * step)
    views = taps(wide, (kh, kw), strides, pads, dilations)
    samples, out_h, out_w = views[0].shape[:3]
    ws = _split(widen(w).reshape(kh * kw, cin, cout).transpose(0, 2, 1), cin, chains, step, -0.0)
    weights = _term_weights(ws.transpose(0, 2, 3, 1).reshape(kh * kw * chains, step, cout))
    begin = _start(bias_first)
    out = np.empty((cout, samples * out_h * out_w), dtype=F32)
    first = 0
    for rows, lines in _row_blocks(samples, out_h, out_w, _chunk_rows(kh * kw * chains, cout)):
        count = (rows.stop - rows.start) * (lines.stop - lines.start)
        block = np.empty((step, kh * kw * chains, count * out_w), dtype=F32)  # [L, M, r]: term k of chain m
        for tap, view in enumerate(views):
            target = block[:, tap * chains : (tap + 1) * chains].reshape(step, chains, -1, lines.stop - lines.start, out_w)
            target[...] = view[rows, lines].reshape(-1, lines.stop - lines.start, out_w, chains, step).transpose(4, 3, 0, 1, 2)
        out[:, first : first + count * out_w] = _run_chains(block[:, :, None, :], weights, begin)
        first += count * out_w
    return narrow(out.T).reshape(samples, out_h, out_w, cout)


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
    views = taps(widen(x), (kh, kw), strides, pads, dilations)
    ws = widen(w).reshape(kh * kw, channels)
    start = np.zeros(channels, dtype=F32) if bias_first is None else np.broadcast_to(widen(bias_first), (channels,))
    acc = np.broadcast_to(start, views[0].shape).copy()
    step = session("step")
    for view, weight in zip(views, ws):
        acc = step.run(None, {"p": acc, "x": view, "w": weight})[0]
    return narrow(acc)


def reduce_sum(x: np.ndarray, axes: tuple[int, ...]) -> np.ndarray:
    """op_reduce's chain: s = 0; s = h(s + x) over the reduced elements in row-major index order. The
    reduced axes keep size 1."""
    kept = [a for a in range(x.ndim) if a not in axes]
    count = int(np.prod([x.shape[a] for a in axes]))
    moved = np.transpose(widen(x), list(axes) + kept)  # the reduced elements first, in row-major order
    terms = moved.reshape(count, *moved.shape[len(axes) :])
    s = np.zeros(terms.shape[1:], dtype=F32)
    total = session("sum")
    for k in range(count):
        s = total.run(None, {"a": s, "b": terms[k]})[0]
    shape = tuple(1 if a in axes else n for a, n in enumerate(x.shape))
    return narrow(s).reshape(shape)


def reduce_mean(x: np.ndarray, axes: tuple[int, ...], count: np.ndarray) -> np.ndarray:
    """The reduce chain divided by the element count: a real division, y = h(s / h(count))."""
    return div(reduce_sum(x, axes), count)


def max_pool(x: np.ndarray, kernel: tuple[int, int], strides: tuple[int, int]) -> np.ndarray:
    """op_pool max on NHWC: m = -inf; m = max(x, m) over the window row-major (compared as float32
    copies: numpy compares fp16 through a software conversion)."""
    views = taps(widen(x), kernel, strides)
    m = np.full(views[0].shape, -np.inf, dtype=F32)
    for value in views:
        m = maximum(value, m)
    return narrow(m)


def avg_pool(x: np.ndarray, kernel: tuple[int, int], strides: tuple[int, int], count: np.ndarray) -> np.ndarray:
    """op_pool avg on NHWC: s = h(s + x) over the window row-major, then y = h(s / h(kh*kw))."""
    views = taps(widen(x), kernel, strides)
    s = np.zeros(views[0].shape, dtype=F32)
    total = session("sum")
    for value in views:
        s = total.run(None, {"a": s, "b": value})[0]
    return div(narrow(s), count)


def fp32_output(values: np.ndarray) -> np.ndarray:
    """The format op's fp16 -> fp32 (calc_op_format direction 1): exponent field 0 (zeros and
    subnormals) becomes a signed 0, exponent 31 (inf and NaN) a signed inf, the rest widens exactly."""
    bits = np.asarray(values, dtype=F16).view(np.uint16)
    exponent = (bits >> 10) & 0x1F
    negative = (bits & 0x8000) != 0
    wide = bits.view(F16).astype(F32)
    wide = np.where(exponent == 0, np.where(negative, F32(-0.0), F32(0.0)), wide)
    return np.where(exponent == 0x1F, np.where(negative, F32(-np.inf), F32(np.inf)), wide).astype(F32)
