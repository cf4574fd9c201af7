"""Run only the end of a graph: the tensors alive at a cut are fed instead of recomputed.

A sensitivity sweep changes one weight at a time; everything before that weight's first consumer is
the same in every run, so it is computed once and each run starts at the cut.
"""

from __future__ import annotations

import onnx

from ..model.graph import reads


class GraphIndex:
    """Who produces and who reads each tensor of a main graph, indexed once."""

    def __init__(self, graph: onnx.GraphProto) -> None:
        self.graph = graph
        initializers = {t.name for t in graph.initializer}
        self.produced_at: dict[str, int] = {i.name: -1 for i in graph.input if i.name not in initializers}
        self.first_read: dict[str, int] = {}
        self.last_read: dict[str, int] = {}
        end = len(graph.node)
        for index, node in enumerate(graph.node):
            for name in reads(node):
                self.first_read.setdefault(name, index)
                self.last_read[name] = index
            for out in node.output:
                if out:
                    self.produced_at[out] = index
        for out in graph.output:
            self.last_read[out.name] = end

    def live_at(self, index: int) -> set[str]:
        """Tensors computed before node `index` (or fed) and still read from it on."""
        return {t for t, p in self.produced_at.items() if p < index <= self.last_read.get(t, -1)}


def extract_suffix(
    model: onnx.ModelProto,
    cut: set[str],
    types: dict[str, int],
    extra_outputs: list[str] | None = None,
    only_extra: bool = False,
) -> onnx.ModelProto:
    """The part of `model` that computes its outputs (and `extra_outputs`; with `only_extra`, those
    alone) from the tensors in `cut` and its other inputs."""
    graph = model.graph
    extra = [onnx.helper.make_tensor_value_info(name, types[name], None) for name in extra_outputs or []]
    outputs = [] if only_extra else list(graph.output)
    needed = ({o.name for o in outputs} | {o.name for o in extra}) - cut  # a cut tensor is fed, never recomputed
    keep = []
    for node in reversed(graph.node):
        if any(o in needed for o in node.output if o):
            keep.append(node)
            needed.update(i for i in reads(node) if i not in cut)
    keep.reverse()
    read = {name for n in keep for name in reads(n)} | {o.name for o in outputs} | {o.name for o in extra}
    inputs = [i for i in graph.input if i.name in read and i.name not in cut]
    inputs += [onnx.helper.make_tensor_value_info(name, types[name], None) for name in sorted(cut) if name in read]
    suffix = onnx.helper.make_graph(keep, graph.name, inputs, outputs + extra, [t for t in graph.initializer if t.name in read])
    out = onnx.helper.make_model(suffix, opset_imports=list(model.opset_import), ir_version=model.ir_version)
    out.functions.extend(model.functions)
    return out
