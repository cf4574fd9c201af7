"""What gxnpuc refuses or miscompiles in an ONNX model, in the TensorFlow reader's words (tf/checks.py):
Softmax, and a Split on the last axis of a rank >= 2 tensor whose leading dimensions are not all 1.
The rest of the GRUS op list is not checked here: ONNX ops are not gxnpuc's input, only their kind is.
gxnpuc never reads the ONNX file itself: the user debugs its quantization here before converting it to
the TensorFlow graph gxnpuc compiles, so these are warnings about that graph, not refusals (`compile
--check` still lists them all and fails)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import onnx

from ..text import printable
from .tf.checks import last_axis_split, not_grus

REFUSED_OPS = ("Softmax",)


def onnx_problems(model: onnx.ModelProto, input_shapes: Mapping[str, Sequence[int]] | None = None) -> list[str]:
    """Every such problem of the main graph, in graph order, each naming its node. Shapes are one
    inference's: INPUT_OPS where given, an open first axis taken as 1 (the chip runs one at a time)."""
    return [problem for _, problem in _found(model, input_shapes)]


def onnx_warnings(path: Path, model: onnx.ModelProto, input_shapes: Mapping[str, Sequence[int]] | None = None) -> list[str]:
    """One line per kind of problem (the op it concerns), its first node named and the others counted."""
    kinds: dict[str, list[str]] = {}
    for op, problem in _found(model, input_shapes):
        kinds.setdefault(op, []).append(problem)
    return [
        f"{path}: gxnpuc will refuse this model once it is a TensorFlow graph: {found[0]}"
        + (f" (and {len(found) - 1} more: `npu-tui compile --check` lists them)" if len(found) > 1 else "")
        for found in kinds.values()
    ]


def _found(model: onnx.ModelProto, input_shapes: Mapping[str, Sequence[int]] | None) -> list[tuple[str, str]]:
    """(op type, problem) for every problem, in graph order."""
    found: list[tuple[str, str]] = []
    shapes = _shapes(model, input_shapes or {}) if any(n.op_type == "Split" for n in model.graph.node) else {}
    for node in model.graph.node:
        label = f"node {printable(node.name or (node.output[0] if node.output else node.op_type))!r} ({printable(node.op_type)})"
        if node.op_type in REFUSED_OPS:
            found.append((node.op_type, f"{label}: {not_grus(node.op_type)}"))
        elif node.op_type == "Split" and node.input and node.input[0] in shapes:
            shape = shapes[node.input[0]]
            axis = next((onnx.helper.get_attribute_value(a) for a in node.attribute if a.name == "axis"), 0)
            problem = last_axis_split(shape, int(axis) % max(len(shape), 1))
            if problem is not None:
                found.append((node.op_type, f"{label}: {problem}"))
    return found


def _shapes(model: onnx.ModelProto, input_shapes: Mapping[str, Sequence[int]]) -> dict[str, tuple[int, ...]]:
    """Every main-graph tensor whose shape inference tells all dimensions."""
    sized = onnx.ModelProto()
    sized.CopyFrom(model)
    for info in sized.graph.input:
        dims = info.type.tensor_type.shape.dim
        if info.name in input_shapes:
            del dims[:]
            for n in input_shapes[info.name]:
                dims.add().dim_value = int(n)
        elif dims and not dims[0].HasField("dim_value"):
            dims[0].Clear()
            dims[0].dim_value = 1
    try:
        inferred = onnx.shape_inference.infer_shapes(sized)
    except Exception:  # noqa: BLE001 - onnx raises its own classes; without shapes nothing is said
        return {}
    found = {}
    for info in list(inferred.graph.value_info) + list(inferred.graph.input):
        dims = info.type.tensor_type.shape.dim
        if dims and all(d.HasField("dim_value") for d in dims):
            found[info.name] = tuple(d.dim_value for d in dims)
    return found
