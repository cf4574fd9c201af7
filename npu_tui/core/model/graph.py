"""Walk an ONNX graph and its subgraphs (If, Loop, Scan) as one flat list of nodes and tensors."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import onnx


@dataclass(frozen=True)
class NodeRef:
    """A node and the graph that holds it; `label` is how users name it."""

    node: onnx.NodeProto
    graph: onnx.GraphProto
    scope: str

    @property
    def label(self) -> str:
        return node_label(self.node)


def node_label(node: onnx.NodeProto) -> str:
    """The node's name, or its first output where the exporter left the name empty."""
    if node.name:
        return node.name
    return node.output[0] if node.output else node.op_type


def subgraphs(node: onnx.NodeProto) -> Iterator[tuple[str, onnx.GraphProto]]:
    for attr in node.attribute:
        if attr.type == onnx.AttributeProto.GRAPH:
            yield attr.name, attr.g
        elif attr.type == onnx.AttributeProto.GRAPHS:
            for i, graph in enumerate(attr.graphs):
                yield f"{attr.name}[{i}]", graph


def iter_graphs(graph: onnx.GraphProto, scope: str = "") -> Iterator[tuple[onnx.GraphProto, str]]:
    """The graph, then every subgraph below it, each with a readable scope path."""
    yield graph, scope
    for node in graph.node:
        for attr_name, sub in subgraphs(node):
            yield from iter_graphs(sub, f"{scope}{node_label(node)}/{attr_name}/")


def iter_nodes(graph: onnx.GraphProto) -> Iterator[NodeRef]:
    for g, scope in iter_graphs(graph):
        for node in g.node:
            yield NodeRef(node, g, scope)


def constant_value(node: onnx.NodeProto) -> onnx.TensorProto | None:
    """The tensor a Constant node holds in its `value` attribute, if that is how it holds it."""
    if node.op_type != "Constant":
        return None
    for attr in node.attribute:
        if attr.name == "value" and attr.type == onnx.AttributeProto.TENSOR:
            return attr.t
    return None


def iter_tensors(graph: onnx.GraphProto) -> Iterator[tuple[onnx.TensorProto, str]]:
    """Every constant tensor of the model: initializers, Constant values and tensor attributes."""
    for g, scope in iter_graphs(graph):
        for tensor in g.initializer:
            yield tensor, scope
        for node in g.node:
            for attr in node.attribute:
                if attr.type == onnx.AttributeProto.TENSOR:
                    yield attr.t, scope
                elif attr.type == onnx.AttributeProto.TENSORS:
                    for tensor in attr.tensors:
                        yield tensor, scope


def reads(node: onnx.NodeProto) -> list[str]:
    """The tensors a node reads: its inputs, and the outer-scope names its subgraphs read."""
    names = [i for i in node.input if i]
    for _, graph in subgraphs(node):
        local = {t.name for t in graph.initializer} | {i.name for i in graph.input}
        local |= {o for n in graph.node for o in n.output}
        names += [i for n in graph.node for i in reads(n) if i not in local]
    return names
