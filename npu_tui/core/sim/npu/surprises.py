"""What the chip computes otherwise than the float model, by the graph alone: the one place that says
which Sub/Div gxnpuc compiles with its operands swapped (the interpreter executes the swap; compile and
eval warn from here without running anything)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import numpy_helper

from ...text import printable

SWAPPED_OPS = {"Sub": "-", "Div": "/"}
CONSTANT_KEEPING = frozenset(
    {
        "Transpose",
        "Reshape",
        "Flatten",
        "Squeeze",
        "Unsqueeze",
        "Concat",
        "Split",
        "Slice",
        "Gather",
        "Pad",
        "Identity",
        "Add",
        "Sub",
        "Mul",
        "Div",
    }
)  # ops whose outputs are constants when all their inputs are (the interpreter folds them)


@dataclass(frozen=True)
class Diagnostic:
    """Something the chip computes differently from the float model, named by node."""

    node: str
    kind: str  # "scalar_first", "pow_negative_base", "chain_overflow" or "input_overflow"
    message: str


def swaps(node: onnx.NodeProto) -> bool:
    """Whether gxnpuc lowers this node to a tensor_scalar command (the TensorFlow Sub/RealDiv, or an ONNX
    Sub/Div), rather than an op it builds itself with the right order (Rsqrt, Reciprocal...)."""
    return node.op_type in SWAPPED_OPS and node.doc_string in ("", "tf:Sub", "tf:RealDiv", "tf:Div")


def node_label(node: onnx.NodeProto) -> str:
    return printable(node.name or (node.output[0] if node.output else node.op_type))


def scalar_first_diagnostic(node: onnx.NodeProto, constant: float) -> Diagnostic:
    """`c - x` or `c / x` with a one-element constant c: compiled, and computed, as `x - c` or `x / c`."""
    symbol = SWAPPED_OPS[node.op_type]
    label = node_label(node)
    return Diagnostic(
        label,
        "scalar_first",
        f"{node.op_type} {label!r}: c {symbol} x with the scalar constant c = {constant:g} first; "
        f"gxnpuc compiles it as x {symbol} c, and the chip computes that",
    )


def graph_surprises(model: onnx.ModelProto, arrays: Mapping[str, np.ndarray] | None = None) -> list[Diagnostic]:
    """What the chip computes otherwise, seen in the graph alone: every main-graph Sub/Div whose first operand
    is a one-element constant (an initializer or a Constant node) and whose second varies per sample, and
    every Pow of a value that varies, in graph order. `arrays`: constants' values by name, for a
    model skeleton whose tensors hold no data (the inventory's)."""
    arrays = arrays or {}
    graph = model.graph
    values = {t.name: t for t in graph.initializer}
    constant = set(values)
    found = []
    for node in graph.node:
        if node.op_type == "Constant":
            constant.update(node.output)
            if node.attribute and node.attribute[0].type == onnx.AttributeProto.TENSOR:
                values[node.output[0]] = node.attribute[0].t
            continue
        inputs = [i for i in node.input if i]
        if node.op_type == "Shape" or (node.op_type in CONSTANT_KEEPING and inputs and all(i in constant for i in inputs)):
            constant.update(node.output)
            continue
        if node.op_type == "Pow" and len(node.input) == 2 and node.input[0] not in constant:
            found.append(_pow_diagnostic(node, values, arrays))
        if swaps(node) and len(node.input) == 2 and node.input[0] in values and node.input[1] not in constant:
            name = node.input[0]
            first = np.asarray(arrays[name]) if name in arrays else numpy_helper.to_array(values[name])
            if first.size == 1:
                found.append(scalar_first_diagnostic(node, float(np.asarray(first, dtype=np.float64).reshape(-1)[0])))
    return found


def _pow_diagnostic(node: onnx.NodeProto, values: Mapping[str, onnx.TensorProto], arrays: Mapping[str, np.ndarray]) -> Diagnostic:
    """The chip's pow is exp(ln(x) * c): NaN wherever x < 0, where the float model's x^c is defined for an
    integer c (a LayerNorm's Pow(x - mean, 2))."""
    label = node_label(node)
    name = node.input[1]
    exponent = ""
    if name in arrays or name in values:
        value = np.asarray(arrays[name]) if name in arrays else numpy_helper.to_array(values[name])
        if value.size == 1:
            exponent = f" = {float(np.asarray(value, dtype=np.float64).reshape(-1)[0]):g}"
    return Diagnostic(
        label,
        "pow_negative_base",
        f"Pow {label!r}: the chip computes x^c as exp(ln(x) * c) (c{exponent}), which is NaN wherever x < 0; "
        "for c = 2 write x * x",
    )
