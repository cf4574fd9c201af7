"""One pass over a GraphDef before anything is built: the inputs and outputs the config names, the nodes
the outputs need, gxnpuc's folding, the value of every folded tensor and the static shape of every other.
Both the refusal checks and the ONNX conversion read this."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ...errors import ModelError, closest
from ...text import printable
from .folding import Folding, fold_names
from .graphdef import MAX_ELEMENTS, numpy_dtype, tensor_value
from .nodes import Tensor, TfGraph, TfNode, tensor_label, topological
from .ops import OPS, Unsupported

NO_OUTPUT_OPS = frozenset({"Const", "Placeholder", "NoOp", "Assert", "SaveV2", "RestoreV2"})


@dataclass
class Analysis:
    graph: TfGraph
    inputs: dict[str, list[int]]
    outputs: list[str]
    order: list[str]  # the nodes the outputs need, not folded, not inputs: in execution order
    folding: Folding
    values: dict[Tensor, np.ndarray]  # folded tensors: their values; the others: zeros of their shape
    problems: list[tuple[str, str]] = field(default_factory=list)  # (node, what cannot be converted)

    def shape(self, tensor: Tensor) -> tuple[int, ...] | None:
        value = self.values.get(tensor)
        return None if value is None else tuple(value.shape)

    def constant(self, tensor: Tensor) -> np.ndarray | None:
        """The tensor's value when gxnpuc folds it into a constant, else None."""
        if tensor[0] in self.folding.foldable and tensor in self.values:
            return self.values[tensor]
        return None


def analyse(graph: TfGraph, input_shapes: dict[str, list[int]], output_names: list[str] | None) -> Analysis:
    path = graph.path
    for name in input_shapes:
        if name not in graph.nodes:
            raise ModelError(
                f"{path}: INPUT_OPS names {printable(name)!r}, but the graph has no node of that name{_closest(name, graph)}"
            )
    outputs = list(output_names or [])
    for name in outputs:
        if name not in graph.nodes:
            raise ModelError(
                f"{path}: OUTPUT_OPS names {printable(name)!r}, but the graph has no node of that name{_closest(name, graph)}"
            )
    if not outputs:
        outputs = [n.name for n in graph.nodes.values() if not graph.consumers[n.name] and n.op not in NO_OUTPUT_OPS]
    if not outputs:
        raise ModelError(f"{path}: the graph has no output node; name them in OUTPUT_OPS")
    needed = _needed(graph, outputs, set(input_shapes))
    inputs = _inputs(graph, needed, input_shapes)
    order_all = topological(graph)
    placed = set(order_all)
    unplaced = sorted((n for n in needed if n not in placed), key=lambda n: graph.nodes[n].index)
    if unplaced:
        raise ModelError(
            f"{path}: node {printable(_on_cycle(graph, unplaced[0], placed))!r} lies on a cycle; a frozen graph has none"
        )
    values: dict[Tensor, np.ndarray] = {}
    problems: list[tuple[str, str]] = []
    for name in order_all:  # every node, so that folded tensors outside the outputs' reach are sized too
        if name in inputs:
            values[(name, 0)] = np.zeros(inputs[name], np.float32)
        else:
            _evaluate(graph.nodes[name], graph, values, problems if name in needed else None)
    folding = fold_names(graph, lambda t: int(values[t].nbytes) if t in values else 0)
    order = [n for n in order_all if n in needed and n not in inputs and n not in folding.foldable]
    return Analysis(graph, inputs, outputs, order, folding, values, problems)


def _on_cycle(graph: TfGraph, start: str, placed: set[str]) -> str:
    """A node of the cycle that keeps `start` from running: follow unplaced inputs until one repeats."""
    seen: list[str] = []
    name = start
    while name not in seen:
        seen.append(name)
        name = next(p for p, _ in graph.nodes[name].inputs if p not in placed)
    return name


def _closest(name: str, graph: TfGraph) -> str:
    return closest(name, graph.nodes)


def _needed(graph: TfGraph, outputs: list[str], cut: set[str]) -> set[str]:
    needed: set[str] = set()
    stack = list(outputs)
    while stack:
        name = stack.pop()
        if name in needed:
            continue
        needed.add(name)
        if name not in cut:
            stack.extend(p for p, _ in graph.nodes[name].inputs)
    return needed


def _inputs(graph: TfGraph, needed: set[str], input_shapes: dict[str, list[int]]) -> dict[str, list[int]]:
    """INPUT_OPS shapes, and the declared shape of any other placeholder the outputs read."""
    inputs = {name: list(shape) for name, shape in input_shapes.items() if name in needed}
    for name, given in input_shapes.items():
        _bounded_input(graph, name, given, "INPUT_OPS gives it")
    for name in sorted(needed, key=lambda n: graph.nodes[n].index):
        node = graph.nodes[name]
        if node.op != "Placeholder" or name in inputs:
            continue
        dtype = numpy_dtype(int(node.attrs.get("dtype", 1)), graph.path, name)
        if dtype != np.float32:
            raise ModelError(f"{graph.path}: input {printable(name)!r} is {dtype.name}; GRUS inputs are float32")
        shape = node.attrs.get("shape")
        if shape is None or any(d < 0 for d in shape):
            raise ModelError(
                f"{graph.path}: input {printable(name)!r} has shape {shape if shape is not None else 'unknown'}; "
                f"give its shape in INPUT_OPS ({printable(name)}: [1, ...])"
            )
        inputs[name] = _bounded_input(graph, name, shape, "its Placeholder declares")
    return dict(sorted(inputs.items(), key=lambda item: graph.nodes[item[0]].index))


def _bounded_input(graph: TfGraph, name: str, shape: list[int], source: str) -> list[int]:
    if math.prod(shape) > MAX_ELEMENTS:
        raise ModelError(
            f"{graph.path}: input {printable(name)!r}: {source} the shape {shape}, {math.prod(shape):,} elements; that is not a GX8002 input"
        )
    return shape


def _evaluate(node: TfNode, graph: TfGraph, values: dict[Tensor, np.ndarray], problems: list[tuple[str, str]] | None) -> None:
    try:
        outputs = _outputs(node, graph, values)
    except Unsupported as exc:
        if problems is not None:
            problems.append((node.name, str(exc)))
        return
    if outputs is None:
        return
    for index, value in enumerate(outputs):
        values[(node.name, index)] = value
    for consumer in graph.consumers[node.name]:
        for producer, index in consumer.inputs:
            if producer == node.name and index >= len(outputs):
                raise ModelError(
                    f"{graph.path}: node {printable(consumer.name)!r} reads {printable(tensor_label((producer, index)))!r}, "
                    f"but {node.op} {printable(node.name)!r} has {len(outputs)} output(s)"
                )


def _outputs(node: TfNode, graph: TfGraph, values: dict[Tensor, np.ndarray]) -> list[np.ndarray] | None:
    if node.op == "Const":
        tensor = node.attrs.get("value")
        if tensor is None or isinstance(tensor, (int, float, str, list)):
            raise ModelError(f"{graph.path}: Const {printable(node.name)!r} has no tensor value")
        return [tensor_value(tensor, graph.path, node.name)]
    ins = [values.get(t) for t in node.inputs]
    if any(v is None for v in ins) or node.op not in OPS:
        return None  # an input that could not be evaluated, or an op the checks report
    return OPS[node.op](node, [v for v in ins if v is not None])
