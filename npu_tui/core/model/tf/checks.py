""" "gxnpuc will refuse this model": what gxnpuc 1.5.8 refuses (or miscompiles) in a GRUS graph, found before
anything runs and listed whole, each problem naming its node.

The op list and most limits are parsed from the GRUS table of `gxnpuc -L` (grus_ops.txt, a verbatim copy
of that table; a test checks it against the vendor's output): the ops, the pooling window range, the
Conv2D/DepthwiseConv2dNative kernel and stride limits, the MatMul padded-size bound. Encoded by hand,
because the table says them in words: "window H and W not both 1", "window equals stride", "VALID only"
(for depthwise and cin=1 Conv2D), "NHWC only", "weight fixed at compile time", "Transpose must be 2-D or
act as one", "SquaredDifference inputs of one shape", Space/BatchToSpaceND only as a dilated conv.
From the fixture and the C model study, not the table: Softmax is refused (tf.nn.softmax: write
exp(x)/sum(exp(x))), and a Split on the last axis of a rank >= 2 tensor whose leading dims are not all 1
is miscompiled.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...errors import ModelError
from ...text import printable
from .analysis import Analysis, analyse
from .graphdef import read_graphdef
from .nodes import TfNode, build_graph, tensor_label
from .ops import Unsupported, window

TABLE = Path(__file__).with_name("grus_ops.txt")
TILE = 32
ALWAYS_ALLOWED = frozenset({"Placeholder", "Const"})
HINTS = {
    "Softmax": "gxnpuc refuses tf.nn.softmax; write tf.exp(x) / tf.reduce_sum(tf.exp(x), axis, keepdims=True)",
    "Maximum": "GRUS has no Maximum; Relu/Relu6 are the clamps it runs",
}


def not_grus(op: str) -> str:
    """The words for an op outside the GRUS list (the ONNX reader's checks say it the same way)."""
    return f"{op} is not an op GRUS runs; {HINTS.get(op, 'it is not in the GRUS op list of gxnpuc -L')}"


def last_axis_split(shape: tuple[int, ...] | list[int], axis: int) -> str | None:
    """What gxnpuc does to a Split of `axis` (normalised) of a tensor of `shape`, when it miscompiles it."""
    if len(shape) >= 2 and axis == len(shape) - 1 and any(d != 1 for d in shape[:-1]):
        return f"a split of the last axis of shape {list(shape)}: gxnpuc miscompiles it unless the leading dimensions are all 1"
    return None


def refusal(path: object, found: list[str]) -> str:
    """The one line of a refused model: its first problem, and how many more `compile --check` lists."""
    more = f" (and {len(found) - 1} more: `npu-tui compile --check` lists them)" if len(found) > 1 else ""
    return f"{path}: gxnpuc will refuse this model: {found[0]}{more}"


def parse_table(text: str) -> dict[str, str]:
    """op -> its NOTE text (continuation lines joined), from `gxnpuc -L`'s box table."""
    notes: dict[str, str] = {}
    current = None
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")] if line.startswith("|") else []
        if len(cells) != 2 or cells[0].endswith("_OPS"):
            continue
        op, note = cells
        if op:
            current = op
            notes[op] = note
        elif current is not None:
            notes[current] = f"{notes[current]}；{note}" if notes[current] else note
    return notes


@dataclass(frozen=True)
class Limits:
    """The numbers the GRUS table states, read from its words."""

    pool_window: tuple[int, int]
    conv_cin1_area: int
    conv_cin1_side: int
    conv_cin1_stride: int
    conv_side: int
    conv_stride: int
    depthwise_area: int
    depthwise_side: int
    depthwise_stride: int
    matmul_padded: int


def _number(pattern: str, text: str) -> int:
    found = re.search(pattern, text)
    if found is None:
        raise RuntimeError(f"grus_ops.txt: no {pattern!r} in {text!r}")  # the shipped table, not user input
    return int(found.group(1))


def parse_limits(notes: dict[str, str]) -> Limits:
    pool = re.search(r"池化窗口H和W范围必须是(\d+)-(\d+)", notes["AvgPool"])
    assert pool is not None
    conv = notes["Conv2D"]
    cin1 = conv[conv.index("input channel为1时") : conv.index("input channel不为1时")]
    other = conv[conv.index("input channel不为1时") :]
    dw = notes["DepthwiseConv2dNative"]
    return Limits(
        pool_window=(int(pool.group(1)), int(pool.group(2))),
        conv_cin1_area=_number(r"H\*W<=(\d+)", cin1),
        conv_cin1_side=_number(r"[^*]H<=(\d+)", cin1),
        conv_cin1_stride=_number(r"stride<=(\d+)", cin1),
        conv_side=_number(r"H<=(\d+)", other),
        conv_stride=_number(r"stride<=(\d+)", other),
        depthwise_area=_number(r"H\*W<=(\d+)", dw),
        depthwise_side=_number(r"[^*]H<=(\d+)", dw),
        depthwise_stride=_number(r"stride<=(\d+)", dw),
        matmul_padded=_number(r"小于(\d+)", notes["MatMul"]),
    )


NOTES = parse_table(TABLE.read_text(encoding="utf-8"))
GRUS_OPS = frozenset(NOTES)
LIMITS = parse_limits(NOTES)


def _padded(rows: int, cols: int) -> int:
    return -(-rows // TILE) * TILE * (-(-cols // TILE) * TILE)


class _Checker:
    def __init__(self, analysis: Analysis) -> None:
        self.a = analysis
        self.problems: list[str] = []

    def say(self, node: TfNode, message: str) -> None:
        self.problems.append(f"node {printable(node.name)!r} ({node.op}): {message}")

    def run(self) -> list[str]:
        evaluation = dict(self.a.problems)
        for name in self.a.order:
            node = self.a.graph.nodes[name]
            if node.op not in GRUS_OPS and node.op not in ALWAYS_ALLOWED:
                self.say(node, not_grus(node.op))
                continue
            if name in evaluation:
                self.say(node, evaluation[name])
                continue
            check = getattr(self, f"check_{node.op}", None)
            if check is not None:
                try:
                    check(node)
                except Unsupported as exc:
                    self.say(node, str(exc))
        return self.problems

    def shape(self, node: TfNode, index: int) -> tuple[int, ...]:
        shape = self.a.shape(node.inputs[index])
        if shape is None:
            raise Unsupported(f"the shape of its input {printable(tensor_label(node.inputs[index]))!r} is unknown")
        return shape

    def constant(self, node: TfNode, index: int, what: str) -> np.ndarray:
        value = self.a.constant(node.inputs[index])
        if value is None:
            raise Unsupported(
                f"its {what} ({printable(tensor_label(node.inputs[index]))!r}) must be fixed at compile time (a constant)"
            )
        return value

    def nhwc(self, node: TfNode) -> None:
        if node.attrs.get("data_format", "NHWC") != "NHWC":
            raise Unsupported(f"data_format {node.attrs['data_format']}; GRUS takes NHWC only")

    def check_Conv2D(self, node: TfNode) -> None:
        self.nhwc(node)
        kernel = self.constant(node, 1, "kernel")
        kh, kw, cin = kernel.shape[:3]
        sh, sw = window(node, "strides")
        lim = LIMITS
        if cin == 1:
            if node.attrs.get("padding") != "VALID" and not self._in_dilation(node):
                self.say(node, f"input channel 1 with padding {node.attrs.get('padding')}; gxnpuc takes VALID only there")
            if kh * kw > lim.conv_cin1_area or kh > lim.conv_cin1_side or kw > lim.conv_cin1_side:
                self.say(
                    node,
                    f"kernel {kh}x{kw} with input channel 1; the limit is H*W <= {lim.conv_cin1_area}, H and W <= {lim.conv_cin1_side}",
                )
            if max(sh, sw) > lim.conv_cin1_stride:
                self.say(node, f"stride {sh}x{sw} with input channel 1; the limit is {lim.conv_cin1_stride}")
        else:
            if kh > lim.conv_side or kw > lim.conv_side:
                self.say(node, f"kernel {kh}x{kw}; the limit is H and W <= {lim.conv_side}")
            if max(sh, sw) > lim.conv_stride:
                self.say(node, f"stride {sh}x{sw}; the limit is {lim.conv_stride}")

    def check_DepthwiseConv2dNative(self, node: TfNode) -> None:
        self.nhwc(node)
        kh, kw = self.constant(node, 1, "kernel").shape[:2]
        sh, sw = window(node, "strides")
        lim = LIMITS
        if node.attrs.get("padding") != "VALID" and not self._in_dilation(node):
            self.say(
                node,
                f"padding {node.attrs.get('padding')}; gxnpuc takes depthwise convolutions with VALID only (pad with Pad first)",
            )
        if kh * kw > lim.depthwise_area or kh > lim.depthwise_side or kw > lim.depthwise_side:
            self.say(node, f"kernel {kh}x{kw}; the limit is H*W <= {lim.depthwise_area}, H and W <= {lim.depthwise_side}")
        if max(sh, sw) > lim.depthwise_stride:
            self.say(node, f"stride {sh}x{sw}; the limit is {lim.depthwise_stride}")

    def _in_dilation(self, node: TfNode) -> bool:
        return self.a.graph.nodes[node.inputs[0][0]].op == "SpaceToBatchND"

    def check_MaxPool(self, node: TfNode) -> None:
        self.nhwc(node)
        kernel, stride = window(node, "ksize"), window(node, "strides")
        low, high = LIMITS.pool_window
        if not all(low <= k <= high for k in kernel):
            self.say(node, f"window {kernel[0]}x{kernel[1]}; H and W must be {low}-{high}")
        if kernel == (1, 1):
            self.say(node, "window 1x1; H and W may not both be 1")
        if kernel != stride:
            self.say(
                node,
                f"window {kernel[0]}x{kernel[1]} with stride {stride[0]}x{stride[1]}; gxnpuc needs the window equal to the stride",
            )

    check_AvgPool = check_MaxPool

    def check_MatMul(self, node: TfNode) -> None:
        weight = self.constant(node, 1, "weight (second input)")
        rows, cols = weight.shape[-2:]
        padded = _padded(int(rows), int(cols))
        if padded >= LIMITS.matmul_padded:
            self.say(
                node,
                f"weight [{rows}, {cols}] pads to {padded:,} elements; gxnpuc 1.5.8 takes fewer than {LIMITS.matmul_padded:,}",
            )

    check_BatchMatMulV2 = check_MatMul

    def check_Transpose(self, node: TfNode) -> None:
        shape = self.shape(node, 0)
        perm = [int(p) for p in self.constant(node, 1, "perm").reshape(-1)]
        kept = [p for p in perm if shape[p] != 1]
        order = sorted(kept)
        ranked = [order.index(p) for p in kept]
        n = len(ranked)
        if not any(ranked == list(range(k, n)) + list(range(k)) for k in range(max(n, 1))):
            self.say(
                node,
                f"perm {perm} on shape {list(shape)} is not a 2-D transpose; gxnpuc takes only those (or ones that act as one)",
            )

    def check_Split(self, node: TfNode) -> None:
        shape = self.shape(node, 1)
        axis = int(self.constant(node, 0, "split axis").reshape(-1)[0]) % max(len(shape), 1)
        problem = last_axis_split(shape, axis)
        if problem is not None:
            self.say(node, problem)

    def check_SquaredDifference(self, node: TfNode) -> None:
        a, b = self.shape(node, 0), self.shape(node, 1)
        if a != b:
            self.say(node, f"inputs of shapes {list(a)} and {list(b)}; gxnpuc needs both of one shape")

    def check_Pow(self, node: TfNode) -> None:
        self.constant(node, 1, "exponent")

    def check_Reshape(self, node: TfNode) -> None:
        self.constant(node, 1, "shape")

    def check_ExpandDims(self, node: TfNode) -> None:
        self.constant(node, 1, "axis")

    def check_Mean(self, node: TfNode) -> None:
        self.constant(node, 1, "reduction axes")

    check_Sum = check_Mean

    def check_BatchToSpaceND(self, node: TfNode) -> None:
        before = self.a.graph.nodes[node.inputs[0][0]]
        if before.op not in ("Conv2D", "DepthwiseConv2dNative") or self.a.graph.nodes[before.inputs[0][0]].op != "SpaceToBatchND":
            self.say(
                node,
                "gxnpuc takes BatchToSpaceND only as the end of a dilated convolution (SpaceToBatchND -> Conv2D -> BatchToSpaceND)",
            )

    def check_SpaceToBatchND(self, node: TfNode) -> None:
        users = self.a.graph.consumers[node.name]
        if (
            len(users) != 1
            or users[0].op not in ("Conv2D", "DepthwiseConv2dNative")
            or not any(c.op == "BatchToSpaceND" for c in self.a.graph.consumers[users[0].name])
        ):
            self.say(
                node,
                "gxnpuc takes SpaceToBatchND only as the start of a dilated convolution (SpaceToBatchND -> Conv2D -> BatchToSpaceND)",
            )


def problems(analysis: Analysis) -> list[str]:
    """Every reason gxnpuc would refuse the graph, in graph order ([] when there is none)."""
    return _Checker(analysis).run()


def check_pb(path: Path, input_shapes: dict[str, list[int]], output_names: list[str] | None) -> list[str]:
    """The whole list of problems of a frozen .pb under the config's INPUT_OPS and OUTPUT_OPS."""
    return problems(analyse(build_graph(read_graphdef(path), path), input_shapes, output_names))


def refuse(analysis: Analysis) -> None:
    found = problems(analysis)
    if found:
        raise ModelError(refusal(analysis.graph.path, found))
