"""A parsed GraphDef as a graph: nodes by name in file order, data inputs as (node, output) pairs,
attributes as Python values. Control inputs (^name) only order execution and are dropped."""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...errors import ModelError
from ...text import printable

Tensor = tuple[str, int]  # (producing node, output index)


def tensor_label(tensor: Tensor) -> str:
    """TensorFlow's own spelling: 'name' for output 0, 'name:1' for the others."""
    return tensor[0] if tensor[1] == 0 else f"{tensor[0]}:{tensor[1]}"


@dataclass
class TfNode:
    name: str
    op: str
    inputs: list[Tensor]
    attrs: dict[str, Any]
    index: int
    proto: Any = field(repr=False)


@dataclass
class TfGraph:
    path: Path
    nodes: dict[str, TfNode]
    consumers: dict[str, list[TfNode]]


def attr_value(value: Any) -> Any:
    """An AttrValue as a plain value: bytes as str, lists as lists, a shape as a list (None if unknown)."""
    kind = value.WhichOneof("value")
    if kind == "s":
        return value.s.decode("utf-8", "replace")
    if kind in ("i", "f", "b", "type", "placeholder"):
        return getattr(value, kind)
    if kind == "shape":
        return None if value.shape.unknown_rank else [int(d.size) for d in value.shape.dim]
    if kind == "tensor":
        return value.tensor
    if kind == "list":
        items = value.list
        for name in ("i", "f", "s", "b", "type"):
            if len(getattr(items, name)):
                values = list(getattr(items, name))
                return [v.decode("utf-8", "replace") for v in values] if name == "s" else values
        return []
    return None


def parse_input(text: str) -> Tensor | None:
    if text.startswith("^"):
        return None
    name, sep, index = text.rpartition(":")
    if sep and index.isdigit():
        return name, int(index)
    return text, 0


def build_graph(graph_def: Any, path: Path) -> TfGraph:
    nodes: dict[str, TfNode] = {}
    for index, proto in enumerate(graph_def.node):
        inputs = [t for t in (parse_input(i) for i in proto.input) if t is not None]
        attrs = {key: attr_value(value) for key, value in proto.attr.items()}
        nodes[proto.name] = TfNode(proto.name, proto.op, inputs, attrs, index, proto)
    consumers: dict[str, list[TfNode]] = {name: [] for name in nodes}
    for node in nodes.values():
        for producer, _ in node.inputs:
            if producer not in nodes:
                raise ModelError(
                    f"{path}: node {printable(node.name)!r} ({node.op}) reads {printable(producer)!r}, which is not a node of the graph"
                )
            consumers[producer].append(node)
    return TfGraph(path, nodes, consumers)


def topological(graph: TfGraph) -> list[str]:
    """Every node after the nodes it reads, ties in file order; nodes on a cycle are left out."""
    waiting = {name: len({p for p, _ in node.inputs}) for name, node in graph.nodes.items()}
    ready = [(node.index, name) for name, node in graph.nodes.items() if waiting[name] == 0]
    heapq.heapify(ready)
    order: list[str] = []
    while ready:
        _, name = heapq.heappop(ready)
        order.append(name)
        for consumer in {c.name: c for c in graph.consumers[name]}.values():
            waiting[consumer.name] -= 1
            if waiting[consumer.name] == 0:
                heapq.heappush(ready, (consumer.index, consumer.name))
    return order
