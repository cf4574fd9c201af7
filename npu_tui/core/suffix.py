"""Run only the end of a graph: the tensors alive at a cut are fed instead of recomputed.

A sensitivity sweep changes one weight at a time; everything before that weight's first consumer is
the same in every run, so it is computed once and each run starts at the cut.
"""

from __future__ import annotations

import onnx

from .graph import subgraphs


def _reads(node: onnx.NodeProto) -> list[str]:
    names = [i for i in node.input if i]
    for _, graph in subgraphs(node):
        local = {t.name for t in graph.initializer} | {o for n in graph.node for o in n.output}
        names += [i for n in graph.node for i in _reads(n) if i not in local]
    return names


def live_at(graph: onnx.GraphProto, index: int) -> set[str]:
    """Tensors computed before node `index` (or fed) and still read from it on."""
    produced = {i.name for i in graph.input} | {o for n in graph.node[:index] for o in n.output if o}
    produced -= {t.name for t in graph.initializer}
    later = {name for n in graph.node[index:] for name in _reads(n)} | {o.name for o in graph.output}
    return produced & later


def first_reader(graph: onnx.GraphProto, tensor: str) -> int | None:
    """Index of the first main-graph node that reads `tensor`, directly or from a subgraph."""
    return next((i for i, n in enumerate(graph.node) if tensor in _reads(n)), None)


def extract_suffix(model: onnx.ModelProto, cut: set[str], types: dict[str, int]) -> onnx.ModelProto:
    """The part of `model` that computes its outputs from the tensors in `cut` and its other inputs."""
    graph = model.graph
    needed = {o.name for o in graph.output}
    keep = []
    for node in reversed(graph.node):
        if any(o in needed for o in node.output if o):
            keep.append(node)
            needed.update(i for i in _reads(node) if i not in cut)
    keep.reverse()
    read = {name for n in keep for name in _reads(n)} | {o.name for o in graph.output}
    inputs = [i for i in graph.input if i.name in read and i.name not in cut]
    inputs += [onnx.helper.make_tensor_value_info(name, types[name], None) for name in sorted(cut) if name in read]
    suffix = onnx.helper.make_graph(
        keep, graph.name, inputs, list(graph.output), [t for t in graph.initializer if t.name in read]
    )
    out = onnx.helper.make_model(suffix, opset_imports=list(model.opset_import), ir_version=model.ir_version)
    out.functions.extend(model.functions)
    return out
