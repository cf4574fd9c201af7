"""The NPU simulation model (SPEC section 6): every weight replaced in place by the value the NPU
computes with, BatchNorm folded where FUSE_BN says so and held as the NPU's multiplier and addend where it
is not (unfolded_bn.py), and activations rounded to fp16 after each node."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx.helper import tensor_dtype_to_np_dtype

from ..errors import InternalError, ModelError
from ..kinds import Origin
from ..model.graph import constant_value, iter_graphs, iter_nodes, node_label, subgraphs
from ..model.inventory import FLOAT_TYPES, BnSite, Inventory
from ..model.onnx_writer import write_model
from ..quant.compiler import Compilation, Compiler, WeightResult
from .unfolded_bn import hold_batchnorms

ROUNDED_SUFFIX = "__npu_f32"
HALF_SUFFIX = "__npu_f16"
FEED_SUFFIX = "__npu_feed"
CAST_OPSET = 6


def feed_name(tensor: str) -> str:
    """The fp16 graph input through which `to_proto(feeds=...)` lets a caller swap a tensor's values."""
    return tensor + FEED_SUFFIX


@dataclass
class SimModel:
    """A simulation graph; the data of its main-graph float initializers lives in `arrays`."""

    model: onnx.ModelProto
    arrays: dict[str, np.ndarray]

    def save(self, path: str | Path) -> None:
        write_model(self.model, self.arrays, path)

    def weights_as_inputs(self, min_elements: int) -> onnx.ModelProto:
        """The graph with every main-graph constant of `min_elements` or more read from a graph input of
        its type and shape, the smaller ones filled in: what a check of ops, types and shapes needs."""
        model = onnx.ModelProto()
        model.CopyFrom(self.model)
        graph = model.graph
        declared = {i.name for i in graph.input}
        kept = []
        for tensor in graph.initializer:
            values = self.arrays.get(tensor.name)
            if values is not None and values.size >= min_elements:
                if tensor.name not in declared:
                    graph.input.append(onnx.helper.make_tensor_value_info(tensor.name, tensor.data_type, list(tensor.dims)))
                continue
            if values is not None:
                _fill(tensor, values)
            kept.append(tensor)
        del graph.initializer[:]
        graph.initializer.extend(kept)
        return model

    def to_proto(self, feeds: frozenset[str] = frozenset()) -> onnx.ModelProto:
        """A self-contained ModelProto in which each constant named in `feeds` (an initializer or a
        Constant node, in the main graph or a subgraph) is read instead from an fp16 graph input
        (see `feed_name`), cast in the graph that used it: new weights need no new session."""
        model = onnx.ModelProto()
        model.CopyFrom(self.model)
        found: set[str] = set()
        for g, _ in iter_graphs(model.graph):
            casts, kept = [], []
            for tensor in g.initializer:
                if tensor.name in feeds:
                    casts.append(_feed_cast(model.graph, tensor.name, tensor.data_type, tensor.dims))
                    found.add(tensor.name)
                    continue
                if g is model.graph and tensor.name in self.arrays:
                    _fill(tensor, self.arrays[tensor.name])
                kept.append(tensor)
            nodes, replaced = [], False
            for node in g.node:
                value = constant_value(node)
                if value is not None and node.output[0] in feeds:
                    nodes.append(_feed_cast(model.graph, node.output[0], value.data_type, value.dims))
                    found.add(node.output[0])
                    replaced = True
                    continue
                nodes.append(node)
            if casts or replaced:
                del g.initializer[:]
                g.initializer.extend(kept)
                del g.node[:]
                g.node.extend(casts + nodes)
        missing = feeds - found
        if missing:
            raise InternalError(f"the simulation graph has no constant named {sorted(missing)[0]!r} to feed")
        return model


def _feed_cast(main: onnx.GraphProto, name: str, data_type: int, dims: list[int]) -> onnx.NodeProto:
    """Declare the fp16 main-graph input that feeds `name`, and the Cast that gives it its type back;
    a subgraph reads that input from the outer scope."""
    source = feed_name(name)
    main.input.append(onnx.helper.make_tensor_value_info(source, onnx.TensorProto.FLOAT16, list(dims)))
    return onnx.helper.make_node("Cast", [source], [name], to=data_type, name=source)


def build_simulation(compiler: Compiler, compilation: Compilation, fp16_activations: bool = True) -> SimModel:
    """Apply one compilation to a copy of the model skeleton."""
    inventory = compiler.inventory
    _require_cast_opset(inventory)
    model = onnx.ModelProto()
    model.CopyFrom(inventory.model)
    twin_node = {id(a.node): b.node for a, b in zip(iter_nodes(inventory.model.graph), iter_nodes(model.graph))}
    twin_graph = {id(a): b for (a, _), (b, _) in zip(iter_graphs(inventory.model.graph), iter_graphs(model.graph))}
    values = npu_values(compilation)
    removed: set[int] = set()
    for name, result in compilation.results.items():
        weight = result.weight
        if result.plan.fused and weight.bn is not None:
            bn = weight.bn
            conv, norm = twin_node[id(bn.conv)], twin_node[id(bn.bn)]
            bias = fused_bias_name(bn)
            while len(conv.input) < 3:
                conv.input.append("")
            conv.input[2] = bias
            conv.output[0] = norm.output[0]
            removed.add(id(norm))
            if bn.bias is None and result.fused_bias is not None:
                twin_graph[id(bn.graph)].initializer.append(_empty_tensor(bias, result.fused_bias.shape))
        if weight.origin == Origin.FOLDED:
            fold = inventory.folds[name]
            producer = next(r for r in fold.nodes if name in r.node.output)
            removed.add(id(twin_node[id(producer.node)]))
            twin_graph[id(producer.graph)].initializer.append(_empty_tensor(name, result.simulated.shape))
            _prune_dead(model.graph, {id(twin_node[id(r.node)]) for r in fold.nodes}, removed)
    _remove_nodes(model.graph, removed)
    values.update(hold_batchnorms(inventory, model))
    arrays = _place_values(compiler, model, values)
    if fp16_activations:
        _round_activations(model)
    return SimModel(model, arrays)


def _require_cast_opset(inventory: Inventory) -> None:
    """The simulation inserts Cast nodes (fp16 weights in, activations rounded), whose `to` is a number
    from opset 6 on and a string before; onnxruntime runs no Cast older than opset 6."""
    version = next((o.version for o in inventory.model.opset_import if o.domain in ("", "ai.onnx")), None)
    if version is not None and version < CAST_OPSET:
        raise ModelError(
            f"{inventory.path}: the model is ONNX opset {version}; the NPU simulation needs opset {CAST_OPSET} or later: "
            "convert it with onnx.version_converter.convert_version(model, 13) and point ONNX_FILE at the result"
        )


def fused_bias_name(bn: BnSite) -> str:
    """A fused convolution keeps its bias's name; one without a bias gets a new one."""
    return bn.bias or f"{node_label(bn.conv)}.fused_bias"


def npu_values(compilation: Compilation) -> dict[str, np.ndarray]:
    """What each weight, and each fused bias, holds on the NPU, by tensor name."""
    values: dict[str, np.ndarray] = {}
    for name, result in compilation.results.items():
        values[name] = result.simulated
        if result.plan.fused and result.weight.bn is not None and result.fused_bias is not None:
            values[fused_bias_name(result.weight.bn)] = result.fused_bias
        if result.bias_held is not None:
            values[held_bias_name(result)] = result.bias_held
    return values


def held_constants(sim: SimModel, compilation: Compilation) -> dict[str, np.ndarray]:
    """Every constant the chip holds, as its fp16, by name: what the exact run takes bit for bit. Its
    graph's float32 copies, converted again, would lose a value in the converter's odd band
    [2**-15, 2**-14) (flushed to 0)."""
    return {**npu_values(compilation), **sim.arrays}


def structure(compilation: Compilation) -> tuple[frozenset[str], frozenset[str]]:
    """What shapes the simulation graph beyond the values: the weights whose BatchNorm is folded, and
    those whose bias FUSE_BIASADD holds (each a fed tensor)."""
    plans = compilation.plans
    return frozenset(n for n, p in plans.items() if p.fused), frozenset(n for n, p in plans.items() if p.fuse_bias)


def held_bias_name(result: WeightResult) -> str:
    """The tensor FUSE_BIASADD's bias is held in: the fused BatchNorm's bias, else the weight's own bias."""
    bn = result.weight.bn
    if result.plan.fused and bn is not None:
        return fused_bias_name(bn)
    return str(result.weight.bias)


def weight_feeds(compilation: Compilation) -> dict[str, np.ndarray]:
    """Every weight's (and fused bias's) NPU values, keyed by the graph input that feeds it."""
    return {feed_name(n): v for n, v in npu_values(compilation).items()}


def _empty_tensor(name: str, shape: tuple[int, ...]) -> onnx.TensorProto:
    """A float initializer whose data is placed later, with the others."""
    return onnx.TensorProto(name=name, data_type=onnx.TensorProto.FLOAT, dims=shape)


def _remove_nodes(graph: onnx.GraphProto, removed: set[int]) -> None:
    for g, _ in iter_graphs(graph):
        keep = [n for n in g.node if id(n) not in removed]
        if len(keep) != len(g.node):
            del g.node[:]
            g.node.extend(keep)


def _used_names(graph: onnx.GraphProto, removed: set[int]) -> set[str]:
    used: set[str] = set()
    for g, _ in iter_graphs(graph):
        used.update(o.name for o in g.output)
        for node in g.node:
            if id(node) not in removed:
                used.update(node.input)
    return used


def _prune_dead(graph: onnx.GraphProto, candidates: set[int], removed: set[int]) -> None:
    """Remove fold nodes whose outputs nothing reads any more."""
    changed = True
    while changed:
        used = _used_names(graph, removed)
        changed = False
        for ref in iter_nodes(graph):
            key = id(ref.node)
            if key in candidates and key not in removed and not any(o in used for o in ref.node.output):
                removed.add(key)
                changed = True


def _place_values(compiler: Compiler, model: onnx.ModelProto, values: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Give every float constant its NPU value; drop constants nothing reads any more."""
    used = _used_names(model.graph, set())
    main_arrays: dict[str, np.ndarray] = {}

    def npu_value(name: str) -> np.ndarray:
        return values[name] if name in values else compiler.fp16(name)

    for g, _ in iter_graphs(model.graph):
        kept = []
        graph_inputs = {i.name for i in g.input}
        for tensor in g.initializer:
            if tensor.data_type not in FLOAT_TYPES:
                kept.append(tensor)
            elif tensor.name in used or tensor.name in graph_inputs:
                kept.append(tensor)
                if g is model.graph:
                    main_arrays[tensor.name] = npu_value(tensor.name)
                else:
                    _fill(tensor, npu_value(tensor.name))
        if len(kept) != len(g.initializer):
            del g.initializer[:]
            g.initializer.extend(kept)
        nodes = []
        for node in g.node:
            value = constant_value(node)
            if value is not None and value.data_type in FLOAT_TYPES:
                if node.output[0] not in used:
                    continue
                _fill(value, npu_value(node.output[0]))
            nodes.append(node)
        if len(nodes) != len(g.node):
            del g.node[:]
            g.node.extend(nodes)
    return main_arrays


def reference_model(inventory: Inventory) -> onnx.ModelProto:
    """The float model as it was, rebuilt from the skeleton and the inventory's arrays."""
    model = onnx.ModelProto()
    model.CopyFrom(inventory.model)
    for g, _ in iter_graphs(model.graph):
        for tensor in g.initializer:
            if tensor.name in inventory.arrays and tensor.data_type in FLOAT_TYPES:
                _fill(tensor, inventory.arrays[tensor.name])
        for node in g.node:
            value = constant_value(node)
            if value is not None and value.data_type in FLOAT_TYPES:
                _fill(value, inventory.arrays[node.output[0]])
    return model


def _fill(tensor: onnx.TensorProto, values: np.ndarray) -> None:
    dtype = np.dtype(tensor_dtype_to_np_dtype(tensor.data_type)).newbyteorder("<")
    for field_name in ("float_data", "double_data", "int32_data"):
        tensor.ClearField(field_name)
    tensor.raw_data = np.ascontiguousarray(values, dtype=dtype).tobytes()


def elem_types(model: onnx.ModelProto) -> dict[str, int]:
    """Element type of every tensor shape inference can type, subgraphs included."""
    inferred = onnx.shape_inference.infer_shapes(model)
    types: dict[str, int] = {}
    for g, _ in iter_graphs(inferred.graph):
        for info in list(g.value_info) + list(g.input) + list(g.output):
            if info.type.HasField("tensor_type"):
                types[info.name] = info.type.tensor_type.elem_type
    return types


# Ops whose float outputs are made of their float inputs' values (moved, selected or compared): fed
# fp16-exact values they give fp16-exact values, so rounding after them would change nothing.
VALUE_PRESERVING = frozenset(
    {
        "Identity",
        "Reshape",
        "Transpose",
        "Squeeze",
        "Unsqueeze",
        "Flatten",
        "Slice",
        "Concat",
        "Split",
        "Gather",
        "GatherElements",
        "GatherND",
        "Expand",
        "Tile",
        "Pad",
        "Relu",
        "MaxPool",
        "GlobalMaxPool",
        "ReduceMax",
        "ReduceMin",
        "Max",
        "Min",
        "Clip",
        "Neg",
        "Abs",
        "Sign",
        "Floor",
        "Ceil",
        "DepthToSpace",
        "SpaceToDepth",
        "Where",
        "Dropout",
        "TopK",
        "ScatterND",
        "ScatterElements",
        "Compress",
        "Trilu",
    }
)
FLOAT_ATTRIBUTES = frozenset({"min", "max", "value"})  # Clip and Pad of old opsets carry float constants


def _round_activations(model: onnx.ModelProto) -> None:
    """After each node, every fp32 output goes through fp16 and back, keeping its name; except after
    a value-preserving op whose float inputs are already fp16 values."""
    types = elem_types(model)
    for g, _ in iter_graphs(model.graph):
        exact = {t.name for t in g.initializer} | {n.output[0] for n in g.node if n.op_type == "Constant"}
        nodes: list[onnx.NodeProto] = []
        for node in g.node:
            nodes.append(node)
            if node.op_type == "Constant" or any(True for _ in subgraphs(node)):
                continue
            floats = [i for i in node.input if i and types.get(i) == onnx.TensorProto.FLOAT]
            if (
                node.op_type in VALUE_PRESERVING
                and all(i in exact for i in floats)
                and not any(a.name in FLOAT_ATTRIBUTES for a in node.attribute)
            ):
                exact.update(node.output)
                continue
            for i, out in enumerate(node.output):
                if not out or types.get(out) != onnx.TensorProto.FLOAT:
                    continue
                raw, half = out + ROUNDED_SUFFIX, out + HALF_SUFFIX
                node.output[i] = raw
                nodes.append(onnx.helper.make_node("Cast", [raw], [half], to=onnx.TensorProto.FLOAT16, name=half))
                nodes.append(onnx.helper.make_node("Cast", [half], [out], to=onnx.TensorProto.FLOAT, name=out + "__npu_round"))
                exact.add(out)
        del g.node[:]
        g.node.extend(nodes)
