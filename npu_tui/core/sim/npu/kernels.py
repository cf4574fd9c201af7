"""The fp16 conversions and roundings of the exact simulation, run by onnxruntime: its Cast between
float32 and float16 is the F16C instruction (IEEE round-to-nearest-even, subnormals kept), 15-20x
faster than numpy's conversion, which is done in software one element at a time.

Each kernel is a tiny graph built once per process, with graph optimizations off so that
onnxruntime keeps every operation and rounding as written (no fused multiply-add, no Cast pair
removed). onnxruntime is imported when the first kernel is built, never at import time."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

import numpy as np
import onnx

if TYPE_CHECKING:
    from onnxruntime import InferenceSession

F16 = np.float16
F32 = np.float32

_BUILT: dict[str, InferenceSession] = {}
_LOCK = threading.Lock()
HALF, FLOAT = "half", "float"  # the element types of a kernel graph
_TYPES = {HALF: onnx.TensorProto.FLOAT16, FLOAT: onnx.TensorProto.FLOAT}


def _cast(source: str, target: str, to: str) -> onnx.NodeProto:
    return onnx.helper.make_node("Cast", [source], [target], to=_TYPES[to])


def _graph(name: str) -> tuple[list[onnx.NodeProto], list[tuple[str, str]], str]:
    """(nodes, typed inputs, output type) of a kernel; its output is always called "y"."""
    helper = onnx.helper
    if name == "narrow":  # float32 -> float16, rounded
        return [_cast("x", "y", HALF)], [("x", FLOAT)], HALF
    if name == "widen":  # float16 -> float32, exact
        return [_cast("x", "y", FLOAT)], [("x", HALF)], FLOAT
    if name == "step":  # one link of a dot product's chain: y = h(p + h(x * w)), float32 copies of fp16 values
        return _link("p", "x", "w", "y"), [("p", FLOAT), ("x", FLOAT), ("w", FLOAT)], FLOAT
    if name == "sum":  # y = h(a + b) on float32 copies of fp16 values
        return _rounded_add("a", "b", "y"), [("a", FLOAT), ("b", FLOAT)], FLOAT
    if name.startswith("chains "):
        words = name.split()
        return _chains_graph(int(words[1]), int(words[2]), after=words[3:] == ["after"])
    op = name.removesuffix("16")  # "Add16": y = h(a op b) on fp16 operands, broadcast as numpy does
    nodes = [
        _cast("a", "a32", FLOAT),
        _cast("b", "b32", FLOAT),
        helper.make_node(op, ["a32", "b32"], ["r"]),
        _cast("r", "y", HALF),
    ]
    return nodes, [("a", HALF), ("b", HALF)], HALF


def _rounded_add(a: str, b: str, out: str) -> list[onnx.NodeProto]:
    """out = h(a + b), float32 in and out."""
    return [
        onnx.helper.make_node("Add", [a, b], [out + "_sum"]),
        _cast(out + "_sum", out + "_16", HALF),
        _cast(out + "_16", out, FLOAT),
    ]


def _link(p: str, x: str, w: str, out: str) -> list[onnx.NodeProto]:
    """out = h(p + h(x * w)), float32 in and out."""
    product = [onnx.helper.make_node("Mul", [x, w], [out + "_xw"]), _cast(out + "_xw", out + "_xw16", HALF)]
    return [*product, _cast(out + "_xw16", out + "_hxw", FLOAT), *_rounded_add(p, out + "_hxw", out)]


def _parts(source: str, count: int, axis: int, prefix: str) -> tuple[list[onnx.NodeProto], list[str]]:
    """Split `source` into `count` parts of 1 along `axis`."""
    names = [f"{prefix}{i}" for i in range(count)]
    if count == 1:
        return [onnx.helper.make_node("Identity", [source], names)], names
    return [onnx.helper.make_node("Split", [source], names, axis=axis)], names


def _chains_graph(length: int, chains: int, after: bool) -> tuple[list[onnx.NodeProto], list[tuple[str, str]], str]:
    """A chunk of M = `chains` dot-product chains of L = `length` terms in one call: x[L, M, 1, r],
    w[L, M, N, 1] and the partial sums' start p[1, M, N, r]; P = h(P + h(x_k * w_k)) for k in order,
    then y = the chains added in order, acc = P_0, acc = h(P_m + acc), as [1, 1, N, r]; `after`: the
    chains continue a running sum, input acc[1, 1, N, r], and acc = h(P_0 + acc) comes first. One call
    instead of L + M - 1: a small layer's steps cost less than the calls that ran them."""
    terms, x = _parts("x", length, 0, "x")
    weights, w = _parts("w", length, 0, "w")
    nodes = [*terms, *weights]
    p = "p"
    for k in range(length):
        nodes += _link(p, x[k], w[k], f"p{k}")
        p = f"p{k}"
    split, partial = _parts(p, chains, 1, "c")
    nodes += split
    acc = "acc" if after else partial[0]
    for m in range(0 if after else 1, chains):
        nodes += _rounded_add(partial[m], acc, f"acc{m}")
        acc = f"acc{m}"
    nodes.append(onnx.helper.make_node("Identity", [acc], ["y"]))
    inputs = [("x", FLOAT), ("w", FLOAT), ("p", FLOAT)] + ([("acc", FLOAT)] if after else [])
    return nodes, inputs, FLOAT


def session(name: str) -> InferenceSession:
    """The session of a kernel: "narrow", "widen", "step", "sum", "Add16"/"Sub16"/"Mul16"/"Div16", or
    "chains L M" / "chains L M after" (one per chain shape a model has)."""
    with _LOCK:
        session = _BUILT.get(name)
        if session is None:
            session = _BUILT[name] = _build(name)
        return session


def _build(name: str) -> InferenceSession:
    import onnxruntime as ort

    helper = onnx.helper
    nodes, inputs, output = _graph(name)
    graph = helper.make_graph(
        nodes,
        "npu_tui_" + name.replace(" ", "_"),
        [helper.make_tensor_value_info(n, _TYPES[t], None) for n, t in inputs],
        [helper.make_tensor_value_info("y", _TYPES[output], None)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.log_severity_level = 3
    options.intra_op_num_threads = 1  # a call is a few passes over ~512 KB: a second thread only waits for it
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def run(name: str, **inputs: np.ndarray) -> np.ndarray:
    return session(name).run(None, inputs)[0]


def narrow(values: np.ndarray) -> np.ndarray:
    """float32 values rounded to fp16 (RNE, subnormals kept, beyond 65504 to inf)."""
    return run("narrow", x=np.asarray(values, dtype=F32))


def widen(values: np.ndarray) -> np.ndarray:
    """fp16 values as float32, exactly."""
    return run("widen", x=np.asarray(values, dtype=F16))


def binary(op: str, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """h(a op b) of two fp16 operands (op: Add, Sub, Mul or Div), broadcast as numpy does."""
    return run(op + "16", a=np.asarray(a, dtype=F16), b=np.asarray(b, dtype=F16))
