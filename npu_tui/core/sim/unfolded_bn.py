"""An unfolded BatchNormalization in the simulation graph, as the NPU holds it (quant/batchnorm.py: a
multiplier s and an addend t, fp16, never the four parameters). The graph holds s in the scale's place and t
in the bias's, mean 0, variance 1 and epsilon 0: onnxruntime computes x * s + t, and the exact interpreter,
which computes s and t from whatever parameters it reads, gets s and t back (the converter leaves a normal
fp16 value or 0 as it is)."""

from __future__ import annotations

from collections import Counter

import numpy as np
import onnx

from ..model.graph import iter_graphs, iter_nodes
from ..model.inventory import Inventory
from ..quant.batchnorm import epsilon_of, multiplier_addend, stored_parameters

HELD_SUFFIX = "__npu_bn"


def hold_batchnorms(inventory: Inventory, model: onnx.ModelProto) -> dict[str, np.ndarray]:
    """Put every BatchNormalization of `model` that gxnpuc turns into op_bn into the NPU's form; return the
    fp16 values its parameters' tensors must hold, by name. A parameter tensor that anything else reads too
    (another BN with other statistics, another node, a graph output) keeps its own values for those readers:
    this BN reads a new tensor."""
    readers = Counter(name for ref in iter_nodes(model.graph) for name in ref.node.input)
    readers.update(o.name for g, _ in iter_graphs(model.graph) for o in g.output)
    taken = set(readers) | {t.name for g, _ in iter_graphs(model.graph) for t in g.initializer}
    placed: dict[str, np.ndarray] = {}
    for ref in iter_nodes(model.graph):
        node = ref.node
        params = stored_parameters(inventory, node)
        if params is None:
            continue
        gamma, beta, mean, var = (inventory.arrays[p] for p in params)
        s, t = multiplier_addend(gamma, beta, mean, var, epsilon_of(node))
        held = (s, t, np.zeros_like(s), np.ones_like(s))
        for index, (name, value) in enumerate(zip(params, held), start=1):
            if readers[name] > 1:
                fresh = _fresh_name(name, taken)
                data_type = inventory.constants[name].tensor.data_type
                ref.graph.initializer.append(onnx.TensorProto(name=fresh, data_type=data_type, dims=value.shape))
                node.input[index] = name = fresh
            placed[name] = value
        _set_epsilon(node, 0.0)
    return placed


def _set_epsilon(node: onnx.NodeProto, value: float) -> None:
    for attribute in node.attribute:
        if attribute.name == "epsilon":
            attribute.f = value
            return
    node.attribute.append(onnx.helper.make_attribute("epsilon", value))


def _fresh_name(name: str, taken: set[str]) -> str:
    """`name` with the suffix, numbered until no tensor of the model has it."""
    count = 0
    fresh = name + HELD_SUFFIX
    while fresh in taken:
        count += 1
        fresh = f"{name}{HELD_SUFFIX}{count}"
    taken.add(fresh)
    return fresh
