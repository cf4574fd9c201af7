"""Find every weight of a model (SPEC section 3) and pull all float constants out as numpy arrays.

The ModelProto left behind is a skeleton: its float constants hold no data, so a 100 MB model is held
once (as arrays) and the skeleton can be cheaply rebuilt into a simulation model or an evaluation graph.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import numpy_helper

from npu_tui.core.model.onnx_layout import tf_matrix

from ..errors import ModelError
from ..kinds import Origin, Reason, WeightKind
from .graph import NodeRef, constant_value, iter_graphs, iter_nodes, node_label, reads, subgraphs
from .onnx_file import LoadedModel, open_unsized_dims
from .tf.metadata import is_tensorflow, never_compressed, stored_ints, tf_aliases, tf_shapes

FLOAT_TYPES = frozenset({onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.DOUBLE, onnx.TensorProto.BFLOAT16})
WEIGHT_INPUTS: dict[str, tuple[tuple[int, WeightKind], ...]] = {
    "MatMul": ((1, WeightKind.FC),),
    "Gemm": ((1, WeightKind.FC),),
    "LSTM": ((1, WeightKind.FC), (2, WeightKind.FC)),
    "GRU": ((1, WeightKind.FC), (2, WeightKind.FC)),
    "RNN": ((1, WeightKind.FC), (2, WeightKind.FC)),
    "Conv": ((1, WeightKind.CONV),),
    "ConvTranspose": ((1, WeightKind.CONV),),
}
PASS_THROUGH = frozenset({"Identity", "Cast", "Transpose", "Reshape", "Unsqueeze", "Squeeze"})
NOT_FOLDABLE = frozenset({"RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike", "Multinomial"})


@dataclass
class Constant:
    """A constant tensor: an initializer (node is None) or the value of a Constant node."""

    name: str
    tensor: onnx.TensorProto
    graph: onnx.GraphProto
    node: onnx.NodeProto | None

    @property
    def is_float(self) -> bool:
        return self.tensor.data_type in FLOAT_TYPES


@dataclass(frozen=True)
class BnSite:
    """A Conv whose only consumer is a BatchNormalization that FUSE_BN can fold into it."""

    conv: onnx.NodeProto
    bn: onnx.NodeProto
    graph: onnx.GraphProto
    bias: str | None
    scale: str
    offset: str
    mean: str
    var: str
    epsilon: float

    @property
    def labels(self) -> tuple[str, str]:
        return node_label(self.conv), node_label(self.bn)


@dataclass(frozen=True)
class Fold:
    """A weight computed from constants alone, and the nodes and constants that compute it."""

    nodes: tuple[NodeRef, ...]
    sources: tuple[str, ...]


@dataclass
class Weight:
    """One quantizable weight, listed once however many nodes consume it."""

    name: str
    kind: WeightKind
    nodes: list[str]
    op_types: list[str]
    shape: tuple[int, ...]
    origin: Origin
    scope: str = ""
    folded_from: tuple[str, ...] = ()
    bn: BnSite | None = None
    group: int = 1  # a Conv's group attribute: > 1 is depthwise (or grouped), never compressed
    transposed: bool = False  # Gemm's transB: the weight is [out, in]
    matrix: tuple[int, int, int] = (1, 1, 1)  # (taps, in, out) in gxnpuc's TF layout: what sets its padding
    bias: str | None = None  # the constant added right after its one consumer: what FUSE_BIASADD folds into it
    tf_shape: tuple[int, ...] | None = None  # a TensorFlow model's weight: its TF shape, as `gxnpuc -w` prints it
    tf_names: tuple[str, ...] = ()  # and the TF nodes it is read through (its Const, /read, an ExpandDims)

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    @property
    def never_compressed(self) -> Reason | None:
        """gxnpuc stores depthwise kernels and Conv2D kernels with one input channel fp16, whatever the config."""
        if self.kind != WeightKind.CONV:
            return None
        if self.group > 1:
            return Reason.DEPTHWISE_NEVER_COMPRESSED
        if self.matrix[1] == 1:
            return Reason.ONE_INPUT_CHANNEL_NEVER_COMPRESSED
        return None

    @property
    def shown_shape(self) -> tuple[int, ...]:
        """The shape the vendor's tools show: TF's for a .pb ([kh, kw, cin, cout]), else the array's."""
        return self.tf_shape if self.tf_shape is not None else self.shape


@dataclass
class Inventory:
    """The weights of a model, the float values of all its constants, and the data-free skeleton."""

    path: Path
    model: onnx.ModelProto
    weights: list[Weight]
    constants: dict[str, Constant]
    arrays: dict[str, np.ndarray]
    folds: dict[str, Fold]
    node_ops: dict[str, str]
    stored: dict[str, int] = field(default_factory=dict)
    stored_ints: dict[str, int] = field(default_factory=dict)  # int constants gxnpuc stores fp16 too (TF axes)
    tf_aliases: dict[str, str] = field(default_factory=dict)  # TF node name -> gxnpuc's name of its weight
    tensorflow: bool = False  # read from a frozen GraphDef: gxnpuc honours only its `-w` names

    def __post_init__(self) -> None:
        self.by_name = {w.name: w for w in self.weights}
        self.name_owners: dict[str, list[str]] = {}
        self.fuse_owners: dict[str, list[str]] = {}
        for weight in self.weights:
            own = {weight.name} if self.tensorflow else {weight.name, *weight.nodes}
            for name in own:
                self.name_owners.setdefault(name, []).append(weight.name)
            if weight.kind == WeightKind.CONV:
                for name in {*own, *(weight.bn.labels if weight.bn else ())}:
                    self.fuse_owners.setdefault(name, []).append(weight.name)


def build_inventory(model: LoadedModel | onnx.ModelProto) -> Inventory:
    """Find the weights and move every float constant's data out of the model into arrays.

    The model is changed in place: it becomes the skeleton. Pass a copy to keep the original.
    """
    if isinstance(model, onnx.ModelProto):
        open_unsized_dims(model)
        model = LoadedModel(Path("model.onnx"), model)
    return _Finder(model).run()


class _Finder:
    def __init__(self, loaded: LoadedModel) -> None:
        self.loaded = loaded
        self.model = loaded.model
        self.path = loaded.path
        self.constants: dict[str, Constant] = {}
        self.producers: dict[str, NodeRef] = {}
        self.consumers: dict[str, list[NodeRef]] = {}
        self.graph_outputs: set[str] = set()
        self.foldable: dict[str, bool] = {}
        self._visiting: set[str] = set()
        for graph, _ in iter_graphs(self.model.graph):
            for tensor in graph.initializer:
                self.constants[tensor.name] = Constant(tensor.name, tensor, graph, None)
            self.graph_outputs.update(o.name for o in graph.output)
        self.nodes = list(iter_nodes(self.model.graph))
        for ref in self.nodes:
            value = constant_value(ref.node)
            if value is not None and ref.node.output:
                self.constants[ref.node.output[0]] = Constant(ref.node.output[0], value, ref.graph, ref.node)
            for out in ref.node.output:
                if out:
                    self.producers[out] = ref
            for name in reads(ref.node):
                self.consumers.setdefault(name, []).append(ref)

    def run(self) -> Inventory:
        weights: dict[str, Weight] = {}
        folds: dict[str, Fold] = {}
        fp16_only = never_compressed(self.model)
        for ref in self.nodes:
            for index, kind in WEIGHT_INPUTS.get(ref.node.op_type, ()):
                if index >= len(ref.node.input) or not ref.node.input[index]:
                    continue
                tensor = ref.node.input[index]
                found = self.trace(tensor)
                if found is None:
                    continue
                name, origin = found
                if name in fp16_only:
                    continue
                if name in weights:
                    weight = weights[name]
                    if ref.label not in weight.nodes:
                        weight.nodes.append(ref.label)
                        weight.op_types.append(ref.node.op_type)
                    continue
                weight = Weight(name, kind, [ref.label], [ref.node.op_type], (), origin, ref.scope)
                weight.group = _int_attribute(ref.node, "group", 1)
                weight.transposed = ref.node.op_type == "Gemm" and _int_attribute(ref.node, "transB", 0) == 1
                if origin == Origin.FOLDED:
                    folds[name] = self.fold_plan(name)
                    weight.folded_from = folds[name].sources
                weights[name] = weight
        arrays = self.extract_arrays(folds, weights)
        shapes = tf_shapes(self.model)
        aliases = tf_aliases(self.model)
        for weight in weights.values():
            weight.tf_names = tuple(sorted(n for n, owner in aliases.items() if owner == weight.name))
            weight.shape = tuple(int(d) for d in arrays[weight.name].shape)
            weight.matrix = tf_matrix(weight.op_types[0], weight.shape, weight.transposed)
            weight.bn = self.bn_site(weight)
            weight.bias = self.bias_of(weight)
            weight.tf_shape = shapes.get(weight.name)
        node_ops = {ref.label: ref.node.op_type for ref in self.nodes}
        inventory = Inventory(
            self.path,
            self.model,
            list(weights.values()),
            self.constants,
            arrays,
            folds,
            node_ops,
            tf_aliases=aliases,
            tensorflow=is_tensorflow(self.model),
        )
        inventory.stored = self.stored_sizes(folds, arrays)
        if inventory.tensorflow:  # the reader's own helpers (a ':' in the name) are no TF constant gxnpuc stores
            inventory.stored = {n: size for n, size in inventory.stored.items() if ":" not in n}
            inventory.stored_ints = stored_ints(self.model)
        return inventory

    def trace(self, tensor: str) -> tuple[str, Origin] | None:
        """The constant a weight input comes from, through pass-through ops, or a foldable tensor."""
        current = tensor
        seen: set[str] = set()
        while current not in seen:  # a cycle of pass-through nodes (an invalid graph) ends the walk
            seen.add(current)
            const = self.constants.get(current)
            if const is not None:
                if not const.is_float:
                    return None
                return current, Origin.INITIALIZER if const.node is None else Origin.CONSTANT
            producer = self.producers.get(current)
            if producer is None or producer.node.op_type not in PASS_THROUGH:
                break
            current = producer.node.input[0]
        if self.is_foldable(tensor):
            return tensor, Origin.FOLDED
        return None

    def is_foldable(self, tensor: str) -> bool:
        """Computed from constants alone. Iterative, so a chain of 100,000 nodes needs no recursion;
        a cycle counts as not foldable."""
        stack = [tensor]
        while stack:
            name = stack[-1]
            if name in self.foldable:
                stack.pop()
                continue
            if name in self.constants:
                self.foldable[name] = True
                stack.pop()
                continue
            producer = self.producers.get(name)
            if producer is None or producer.node.op_type in NOT_FOLDABLE or any(True for _ in subgraphs(producer.node)):
                self.foldable[name] = False
                stack.pop()
                continue
            pending = [i for i in producer.node.input if i and i not in self.foldable]
            if pending and name not in self._visiting:
                self._visiting.add(name)
                stack.extend(pending)
                continue
            self._visiting.discard(name)
            self.foldable[name] = all(self.foldable.get(i, False) for i in producer.node.input if i)
            stack.pop()
        return self.foldable[tensor]

    def fold_plan(self, tensor: str) -> Fold:
        nodes: dict[int, NodeRef] = {}
        sources: list[str] = []
        stack = [tensor]
        seen: set[str] = set()
        while stack:
            name = stack.pop()
            if name in seen or not name:
                continue
            seen.add(name)
            if name in self.constants:
                if self.constants[name].is_float and name not in sources:
                    sources.append(name)
                continue
            ref = self.producers[name]
            nodes[id(ref.node)] = ref
            stack.extend(ref.node.input)
        order = {id(ref.node): i for i, ref in enumerate(self.nodes)}
        ordered = sorted(nodes.values(), key=lambda r: order[id(r.node)])
        return Fold(tuple(ordered), tuple(sorted(sources, key=lambda s: list(self.constants).index(s))))

    def extract_arrays(self, folds: dict[str, Fold], weights: dict[str, Weight]) -> dict[str, np.ndarray]:
        arrays: dict[str, np.ndarray] = {}
        dtypes: dict[str, np.dtype] = {}
        for name, const in self.constants.items():
            if not const.is_float:
                if const.node is None and name in self.loaded.data:
                    _restore_data(const.tensor, self.loaded.read(const.tensor))
                continue
            array = self.loaded.read(const.tensor)
            dtypes[name] = array.dtype
            arrays[name] = np.ascontiguousarray(array, dtype=np.float32)
            for field_name in ("raw_data", "float_data", "double_data", "int32_data"):
                const.tensor.ClearField(field_name)
        for name, fold in folds.items():
            arrays[name] = self.evaluate_fold(name, fold, arrays, dtypes)
        return arrays

    def evaluate_fold(self, name: str, fold: Fold, arrays: dict, dtypes: dict) -> np.ndarray:
        from onnx.reference import ReferenceEvaluator

        used = sorted({i for ref in fold.nodes for i in ref.node.input if i in self.constants})
        inits = [
            numpy_helper.from_array(arrays[c].astype(dtypes[c]), c) if c in arrays else _renamed(self.constants[c].tensor, c)
            for c in used
        ]
        output = onnx.helper.make_tensor_value_info(name, onnx.TensorProto.UNDEFINED, None)
        graph = onnx.helper.make_graph([ref.node for ref in fold.nodes], "fold", [], [output], initializer=inits)
        model = onnx.helper.make_model(graph, opset_imports=list(self.model.opset_import))
        try:
            outputs: Any = ReferenceEvaluator(model).run(None, {})  # a list of arrays (its stubs say a dict)
            value = outputs[0]
        except Exception as exc:
            raise ModelError(f"{self.path}: weight {name!r} is computed from constants but cannot be folded: {exc}") from None
        return np.ascontiguousarray(np.asarray(value), dtype=np.float32)

    def bias_of(self, weight: Weight) -> str | None:
        """The bias gxnpuc's FUSE_BIASADD would fold into the weight: a Conv's or Gemm's C input, or the
        constant of the one Add after the weight's one consumer (through layout Transposes), one value
        per output channel and read by nothing else."""
        users = self.consumers.get(weight.name, [])
        if len(users) != 1 or weight.kind not in (WeightKind.CONV, WeightKind.FC):
            return None
        node = users[0].node
        if node.op_type in ("Conv", "Gemm") and len(node.input) > 2 and node.input[2]:
            return self._bias_constant(node.input[2], weight)
        if node.op_type not in ("MatMul", "Conv") or not node.output:
            return None
        out = node.output[0]
        after = self.consumers.get(out, [])
        while len(after) == 1 and after[0].node.op_type == "Transpose" and out not in self.graph_outputs:
            out = after[0].node.output[0]
            after = self.consumers.get(out, [])
        if len(after) != 1 or after[0].node.op_type != "Add" or out in self.graph_outputs or len(after[0].node.input) != 2:
            return None
        other = next((i for i in after[0].node.input if i != out), None)
        return self._bias_constant(other, weight) if other else None

    def _bias_constant(self, name: str, weight: Weight) -> str | None:
        const = self.constants.get(name)
        if const is None or not const.is_float or len(self.consumers.get(name, [])) != 1:
            return None
        dims = [int(d) for d in const.tensor.dims]
        return name if math.prod(dims) == weight.matrix[2] and sum(d != 1 for d in dims) <= 1 else None

    def bn_site(self, weight: Weight) -> BnSite | None:
        users = self.consumers.get(weight.name, [])
        if weight.kind != WeightKind.CONV or weight.origin == Origin.FOLDED or len(users) != 1:
            return None
        conv = users[0]
        if conv.node.op_type != "Conv" or conv.node.input[1] != weight.name:
            return None
        out = conv.node.output[0]
        after = self.consumers.get(out, [])
        if out in self.graph_outputs or len(after) != 1 or after[0].node.op_type != "BatchNormalization":
            return None
        bn = after[0].node
        if len(bn.input) < 5 or len([o for o in bn.output if o]) != 1 or after[0].graph is not conv.graph:
            return None
        params = list(bn.input[1:5])
        bias = conv.node.input[2] if len(conv.node.input) > 2 and conv.node.input[2] else None
        direct = [p for p in params + ([bias] if bias else []) if p in self.constants and self.constants[p].is_float]
        if len(direct) != len(params) + (1 if bias else 0):
            return None
        epsilon = next((a.f for a in bn.attribute if a.name == "epsilon"), 1e-5)
        scale, offset, mean, var = params
        return BnSite(conv.node, bn, conv.graph, bias, scale, offset, mean, var, float(epsilon))

    def stored_sizes(self, folds: dict[str, Fold], arrays: dict[str, np.ndarray]) -> dict[str, int]:
        """Element counts of the float tensors the NPU stores: fold sources give way to the folded weight, a
        BatchNormalization's mean and variance to the multiplier and addend held in its scale's and bias's place."""
        fold_nodes = {id(ref.node) for fold in folds.values() for ref in fold.nodes}
        stored: dict[str, int] = {}
        for name, const in self.constants.items():
            if not const.is_float:
                continue
            users = self.consumers.get(name, [])
            if not (users and all(id(u.node) in fold_nodes for u in users)):
                stored[name] = int(arrays[name].size)
        for name in folds:
            stored[name] = int(arrays[name].size)
        for ref in self.nodes:  # the NPU runs a BatchNormalization as a multiplier and an addend per channel
            if ref.node.op_type == "BatchNormalization" and len(ref.node.input) >= 5:
                for name in ref.node.input[3:5]:
                    if all(u.node.op_type == "BatchNormalization" for u in self.consumers.get(name, [])):
                        stored.pop(name, None)
        return stored


def _int_attribute(node: onnx.NodeProto, name: str, default: int) -> int:
    return next((int(a.i) for a in node.attribute if a.name == name), default)


def _restore_data(tensor: onnx.TensorProto, array: np.ndarray) -> None:
    """Put a non-float constant's bytes (a shape, axes, indices) back into the skeleton: the
    simulation and every evaluation graph need its values, and it is never large enough to matter."""
    tensor.raw_data = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes()


def _renamed(tensor: onnx.TensorProto, name: str) -> onnx.TensorProto:
    copy = onnx.TensorProto()
    copy.CopyFrom(tensor)
    copy.name = name
    return copy
