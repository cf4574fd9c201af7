"""gxnpuc's own constant folding, and the names it gives the weights.

gxnpuc runs TensorFlow's graph transform `fold_constants` before it compiles. That pass evaluates every
node computed from constants alone and replaces each tensor where such a subgraph meets the rest of the
graph by a new Const named `<producer>/_<N>__cf__<N>` (Graph::NewName's counter and UniqueConstantId, both
counting from 0 in a fresh process). The tensors are visited sorted by (producer name, output index); a
tensor already produced by a Const is left alone and takes no number; nor does one over 10 MiB
(max_constant_size_in_bytes). So a weight read through `<var>/read` becomes `<var>/read/_N__cf__N`, a
conv1d kernel through ExpandDims becomes `<scope>/conv1d/ExpandDims_1/_N__cf__N`, and a Const fed
straight into its consumer keeps its own name. This reproduces every `-w` line of the fixture
(`fc/weights/read/_1__cf__1` after `fc/bias/read/_0__cf__0`; `conv/kernel/read/_5__cf__5` after the four BN
parameters and the bias; vendor mnist's `Variable/read/_0__cf__0`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from .graphdef import DT_FLOAT
from .nodes import Tensor, TfGraph, tensor_label, topological
from .ops import NOT_FOLDED, OPS

MAX_FOLDED_BYTES = 10 * 1024 * 1024  # ConstantFoldingOptions::max_constant_size_in_bytes default
NEVER_FOLDED = frozenset({"Placeholder", "PlaceholderWithDefault", "PlaceholderV2", "VariableV2", "Variable", "VarHandleOp"})
ALWAYS_FOLDED = frozenset({"Shape", "Size", "Rank"})  # every input shape is static once INPUT_OPS fixes the inputs


@dataclass
class Folding:
    """Which nodes fold away, the tensors that become constants, their gxnpuc names, and the TF names
    a user may write for each of them (the Const, its /read Identity, an ExpandDims)."""

    foldable: set[str]
    boundary: list[Tensor]
    names: dict[Tensor, str]
    aliases: dict[str, str] = field(default_factory=dict)

    def name_of(self, tensor: Tensor) -> str:
        """The name the constant tensor carries after folding: gxnpuc's, or its Const's own."""
        return self.names.get(tensor, tensor_label(tensor))


def foldable_nodes(graph: TfGraph) -> set[str]:
    """Nodes computed from constants alone; a node on a cycle (an invalid graph) never is."""
    foldable: set[str] = set()
    for name in topological(graph):
        node = graph.nodes[name]
        if node.op == "Const" or node.op in ALWAYS_FOLDED:
            foldable.add(name)
        elif node.op in NEVER_FOLDED or node.op in NOT_FOLDED or node.op not in OPS or not node.inputs:
            continue
        elif all(p in foldable for p, _ in node.inputs):
            foldable.add(name)
    return foldable


def fold_names(graph: TfGraph, nbytes: Callable[[Tensor], int]) -> Folding:
    """Number the boundary tensors as fold_constants does; `nbytes` gives a folded tensor's size."""
    foldable = foldable_nodes(graph)
    boundary = sorted({t for node in graph.nodes.values() if node.name not in foldable for t in node.inputs if t[0] in foldable})
    names: dict[Tensor, str] = {}
    for tensor in boundary:
        if graph.nodes[tensor[0]].op == "Const" or nbytes(tensor) > MAX_FOLDED_BYTES:
            continue
        number = len(names)
        names[tensor] = f"{tensor[0]}/_{number}__cf__{number}"
    folding = Folding(foldable, boundary, names)
    folding.aliases = _aliases(graph, folding)
    return folding


def _aliases(graph: TfGraph, folding: Folding) -> dict[str, str]:
    """TF node name -> gxnpuc name, for the float nodes that feed exactly one folded tensor."""
    reached: dict[str, set[str]] = {}
    for tensor in folding.boundary:
        target = folding.name_of(tensor)
        stack, seen = [tensor[0]], set()
        while stack:
            name = stack.pop()
            if name in seen:
                continue
            seen.add(name)
            reached.setdefault(name, set()).add(target)
            stack.extend(p for p, _ in graph.nodes[name].inputs if p in folding.foldable)
    aliases: dict[str, str] = {}
    for name, targets in reached.items():
        node = graph.nodes[name]
        dtype = node.attrs.get("dtype", node.attrs.get("T", DT_FLOAT))
        if len(targets) == 1 and dtype == DT_FLOAT and name not in targets:
            aliases[name] = next(iter(targets))
    return aliases
