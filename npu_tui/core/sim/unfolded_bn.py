"""A BatchNormalization the NPU runs as its own op (op_bn, NPU_ARITHMETIC.md section 3), as the simulation
graph holds it. gxnpuc stores a multiplier s = gamma / sqrt(var + eps) and an addend t = beta - mean * s per
channel, each through its fp16 converter (float32 math), never the four parameters: a running variance of
65536 or more, 0x7fff in fp16, costs the chip nothing. The graph holds s in the scale's place and t in the
bias's, mean 0, variance 1 and epsilon 0: onnxruntime computes x * s + t, and the exact interpreter, which
computes s and t from whatever parameters it reads, gets s and t back."""

from __future__ import annotations

from collections import Counter

import numpy as np
import onnx

from ..model.graph import iter_graphs, iter_nodes
from ..model.inventory import Inventory
from .npu.weights import bn_scale_shift

HELD_SUFFIX = "__npu_bn"
DEFAULT_EPSILON = 1e-5  # ONNX's default for the attribute


def hold_batchnorms(inventory: Inventory, model: onnx.ModelProto) -> dict[str, np.ndarray]:
    """Put every BatchNormalization of `model` whose parameters are float constants of one shape into the
    NPU's form; return the fp16 values its parameters' tensors must hold, by name. A parameter tensor that
    anything else reads too (another BN with other statistics, another node, a graph output) keeps its own
    values for those readers: this BN reads a new tensor."""
    readers = Counter(name for ref in iter_nodes(model.graph) for name in ref.node.input)
    readers.update(o.name for g, _ in iter_graphs(model.graph) for o in g.output)
    taken = set(readers) | {t.name for g, _ in iter_graphs(model.graph) for t in g.initializer}
    placed: dict[str, np.ndarray] = {}
    for ref in iter_nodes(model.graph):
        node = ref.node
        params = list(node.input[1:5])
        if node.op_type != "BatchNormalization" or not _held_form_applies(inventory, node, params):
            continue
        gamma, beta, mean, var = (inventory.arrays[p] for p in params)
        s, t = bn_scale_shift(gamma, beta, mean, var, _epsilon(node))
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


def _held_form_applies(inventory: Inventory, node: onnx.NodeProto, params: list[str]) -> bool:
    """Inference form (one output) with four float constants of one shape: what gxnpuc turns into op_bn."""
    if len(params) != 4 or len([o for o in node.output if o]) != 1:
        return False
    constants = [inventory.constants.get(p) for p in params]
    if not all(c is not None and c.is_float and p in inventory.arrays for c, p in zip(constants, params)):
        return False
    return len({inventory.arrays[p].shape for p in params}) == 1


def _epsilon(node: onnx.NodeProto) -> float:
    return next((float(a.f) for a in node.attribute if a.name == "epsilon"), DEFAULT_EPSILON)


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
