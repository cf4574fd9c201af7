"""A TensorFlow frozen GraphDef as an onnx.ModelProto, so the whole ONNX pipeline (inventory, quantizer,
simulation, sweep, fix) runs on it unchanged.

- Tensors keep TensorFlow's NHWC layout; Conv2D, DepthwiseConv2dNative, MaxPool, AvgPool and
  FusedBatchNorm run in ONNX's NCHW between two Transposes (exact: a transpose only moves values).
- Every folded tensor is an initializer named as gxnpuc names it (`fc/weights/read/_1__cf__1`). MatMul
  weights keep TF's [in, out]; convolution kernels are stored OIHW for ONNX's Conv and their TF shape
  ([kh, kw, cin, cout], conv1d [1, k, cin, cout]) is recorded in the model's metadata_props
  (TF_SHAPES_KEY), with the TF names a user may write for each weight (TF_ALIASES_KEY).
- Each ONNX node that computes a TF node is named as that node and says `tf:<Op>` in its doc_string;
  helper nodes (layout transposes, the halves of SquaredDifference) are named `<tf name>:<role>` and say
  `tf:<Op>:<role>`. A name with ':' cannot be a TF node name, so they never collide.
- A FusedBatchNorm (V1) right after a Conv2D (or Conv2D + BiasAdd) is a BatchNormalization directly after
  the Conv, which the pipeline's FUSE_BN folds (the BiasAdd becomes the Conv's bias); V2/V3, which
  gxnpuc 1.5.8 never folds, are separated from the Conv by the layout transposes, so nothing folds them.
  `fuse_bn=True` folds the V1 sites here instead, in float32 as TF's fold_old_batch_norms does
  (kernel * gamma / sqrt(var + eps), keeping the kernel's name; bias `<conv>_bn_offset`).
- Dilated convolutions exported as SpaceToBatchND -> Conv -> BatchToSpaceND become one dilated Conv.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from ...errors import ModelError
from ...text import printable
from .analysis import Analysis, analyse
from .checks import refuse
from .graphdef import read_graphdef
from .metadata import SOURCE_KEY, TENSORFLOW, TF_ALIASES_KEY, TF_NEVER_COMPRESSED_KEY, TF_SHAPES_KEY, TF_STORED_INTS_KEY
from .nodes import Tensor, TfNode, build_graph, tensor_label
from .ops import SELU_ALPHA, SELU_SCALE, Unsupported, axis_of, reduce_axes, spatial_pads, strided_index, window

OPSET = 17
TO_NCHW, TO_NHWC = [0, 3, 1, 2], [0, 2, 3, 1]
UNARY = {
    "Abs": "Abs",
    "Neg": "Neg",
    "Exp": "Exp",
    "Log": "Log",
    "Sqrt": "Sqrt",
    "Reciprocal": "Reciprocal",
    "Relu": "Relu",
    "Sigmoid": "Sigmoid",
    "Tanh": "Tanh",
    "Identity": "Identity",
    "StopGradient": "Identity",
}
BINARY = {
    "Add": "Add",
    "AddV2": "Add",
    "BiasAdd": "Add",
    "Sub": "Sub",
    "Mul": "Mul",
    "RealDiv": "Div",
    "Div": "Div",
    "Pow": "Pow",
    "Maximum": "Max",
    "Minimum": "Min",
}
V1_BN = "FusedBatchNorm"
BATCH_NORMS = frozenset({"FusedBatchNorm", "FusedBatchNormV2", "FusedBatchNormV3"})
ONNX_TYPES = {
    np.dtype(np.float32): TensorProto.FLOAT,
    np.dtype(np.int64): TensorProto.INT64,
    np.dtype(np.int32): TensorProto.INT32,
}


def read_pb(
    path: str | Path, input_shapes: dict[str, list[int]], output_names: list[str] | None = None, fuse_bn: bool = False
) -> onnx.ModelProto:
    """Read a frozen .pb, refuse what gxnpuc refuses (ModelError naming the node), and convert it."""
    path = Path(path)
    graph = build_graph(read_graphdef(path), path)
    analysis = analyse(graph, input_shapes, output_names)
    refuse(analysis)
    return convert(analysis, fuse_bn)


def convert(analysis: Analysis, fuse_bn: bool = False) -> onnx.ModelProto:
    return _Emitter(analysis, fuse_bn).run()


@dataclass(frozen=True)
class _BnSite:
    """A V1 FusedBatchNorm that gxnpuc folds into the Conv2D before it (through an optional BiasAdd)."""

    conv: str
    bias_add: str | None
    bn: str


class _Emitter:
    def __init__(self, analysis: Analysis, fuse_bn: bool) -> None:
        self.a = analysis
        self.graph = analysis.graph
        self.path = analysis.graph.path
        self.fuse_bn = fuse_bn
        self.nodes: list[onnx.NodeProto] = []
        self.inits: dict[str, TensorProto] = {}
        self.init_layout: dict[str, str] = {}
        self.tf_shapes: dict[str, list[int]] = {}
        self.never_compressed: list[str] = []
        self.renamed: dict[Tensor, str] = {}  # a TF tensor computed under another name (fused sites)
        self.done: set[str] = set()
        self.bn_sites = self._bn_sites()

    # ------------------------------------------------------------------ model

    def run(self) -> onnx.ModelProto:
        for name in self.a.order:
            if name in self.done:
                continue
            node = self.graph.nodes[name]
            try:
                self.emit(node)
            except Unsupported as exc:
                raise ModelError(f"{self.path}: node {printable(name)!r} ({node.op}): {exc}") from None
        inputs = [helper.make_tensor_value_info(name, TensorProto.FLOAT, shape) for name, shape in self.a.inputs.items()]
        outputs = []
        for name in self.a.outputs:
            source = self.tensor((name, 0))
            if source != name:
                self.add("Identity", [source], [name], f"{name}:output", "Identity:output")
            shape = self.a.shape((name, 0))
            outputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, list(shape) if shape is not None else None))
        graph = helper.make_graph(self.nodes, "tensorflow", inputs, outputs, initializer=list(self.inits.values()))
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="npu-tui tf reader")
        model.ir_version = 8
        helper.set_model_props(
            model,
            {
                SOURCE_KEY: TENSORFLOW,
                TF_SHAPES_KEY: json.dumps(self.tf_shapes),
                TF_ALIASES_KEY: json.dumps(self.a.folding.aliases),
                TF_NEVER_COMPRESSED_KEY: json.dumps(self.never_compressed),
                TF_STORED_INTS_KEY: json.dumps(self._stored_ints()),
            },
        )
        return model

    def _stored_ints(self) -> dict[str, int]:
        """Each int tensor where folding meets a node that runs, with its element count: gxnpuc stores
        it (its axis or dim) in weight memory even where the reader makes it an attribute."""
        running = set(self.a.order)
        used = {t for name in running for t in self.graph.nodes[name].inputs}
        stored = {}
        for tensor in self.a.folding.boundary:
            value = self.a.constant(tensor) if tensor in used else None
            if value is not None and value.dtype.kind != "f":
                stored[self.a.folding.name_of(tensor)] = int(value.size)
        return stored

    def add(self, op_type: str, inputs: list[str], outputs: list[str], name: str, tf_op: str, **attrs: Any) -> None:
        node = helper.make_node(op_type, inputs, outputs, name=name, **attrs)
        node.doc_string = f"tf:{tf_op}"
        self.nodes.append(node)

    def tensor(self, tensor: Tensor) -> str:
        """The ONNX name of a TF tensor; a folded one becomes its initializer, in TF layout."""
        if tensor in self.renamed:
            return self.renamed[tensor]
        value = self.a.constant(tensor)
        if value is None:
            return tensor_label(tensor)
        name = self.a.folding.name_of(tensor)
        self.initializer(name, value, "tf")
        if value.dtype.kind == "f":
            self.tf_shapes.setdefault(name, [int(d) for d in value.shape])
        return name

    def initializer(self, name: str, value: np.ndarray, layout: str) -> None:
        if name in self.inits:
            if self.init_layout[name] != layout:
                raise Unsupported(f"constant {printable(name)!r} is read both as a convolution kernel and as a plain tensor")
            return
        array = np.ascontiguousarray(value.astype(np.float32) if value.dtype.kind == "f" else value.astype(np.int64))
        self.inits[name] = numpy_helper.from_array(array, name)
        self.init_layout[name] = layout

    def ints(self, name: str, values: list[int] | np.ndarray) -> str:
        self.initializer(name, np.asarray(values, dtype=np.int64).reshape(-1), "int")
        return name

    def scalar(self, name: str, value: float) -> str:
        self.initializer(name, np.asarray(value, dtype=np.float32), "scalar")
        return name

    def const_input(self, node: TfNode, index: int, what: str) -> np.ndarray:
        return self._constant(node.inputs[index], what)

    def out_shape(self, node: TfNode, index: int = 0) -> list[int]:
        shape = self.a.shape((node.name, index))
        if shape is None:
            raise Unsupported("its output shape is unknown")
        return list(shape)

    # ------------------------------------------------------------------ ops

    def emit(self, node: TfNode) -> None:
        if not (self.elementwise(node) or self.structured(node) or self.layout(node)):
            raise Unsupported(f"{node.op} is not an op npu-tui converts")

    def elementwise(self, node: TfNode) -> bool:
        """An op value by value (one ONNX node, or two for the ops ONNX lacks); False for any other."""
        op, name, ins = node.op, node.name, node.inputs
        if op in UNARY:
            self.add(UNARY[op], [self.tensor(ins[0])], [name], name, op)
        elif op in BINARY:
            self.add(BINARY[op], [self.tensor(ins[0]), self.tensor(ins[1])], [name], name, op)
        elif op == "Relu6":
            self.add(
                "Clip", [self.tensor(ins[0]), self.scalar(f"{name}:min", 0.0), self.scalar(f"{name}:max", 6.0)], [name], name, op
            )
        elif op == "Selu":
            self.add("Selu", [self.tensor(ins[0])], [name], name, op, alpha=SELU_ALPHA, gamma=SELU_SCALE)
        elif op == "Rsqrt":
            self.add("Sqrt", [self.tensor(ins[0])], [f"{name}:sqrt"], f"{name}:sqrt", f"{op}:sqrt")
            self.add("Reciprocal", [f"{name}:sqrt"], [name], name, op)
        elif op == "Square":
            x = self.tensor(ins[0])
            self.add("Mul", [x, x], [name], name, op)
        elif op == "SquaredDifference":
            self.add("Sub", [self.tensor(ins[0]), self.tensor(ins[1])], [f"{name}:diff"], f"{name}:diff", f"{op}:diff")
            self.add("Mul", [f"{name}:diff", f"{name}:diff"], [name], name, op)
        else:
            return False
        return True

    def structured(self, node: TfNode) -> bool:
        """An op with weights or windows (MatMul, Conv, pooling, BatchNorm, a reduction, ...); False for any other."""
        op, name, ins = node.op, node.name, node.inputs
        if op in ("MatMul", "BatchMatMulV2", "BatchMatMul"):
            self.matmul(node)
        elif op in ("Conv2D", "DepthwiseConv2dNative"):
            self.conv(node, self.tensor(ins[0]), name)
        elif op in ("MaxPool", "AvgPool"):
            self.pool(node)
        elif op in BATCH_NORMS:
            self.batch_norm(node)
        elif op in ("Mean", "Sum"):
            self.reduce(node)
        else:
            return False
        return True

    def layout(self, node: TfNode) -> bool:
        """An op that moves or casts values (Concat, Reshape, Pad, Transpose, Cast); False for any other."""
        op, name, ins = node.op, node.name, node.inputs
        if op in ("ConcatV2", "Concat"):
            values = ins[:-1] if op == "ConcatV2" else ins[1:]
            axis_tensor = ins[-1] if op == "ConcatV2" else ins[0]
            rank = len(self.out_shape(node))
            axis = int(np.asarray(self._constant(axis_tensor, "axis")).reshape(-1)[0]) % rank
            self.add("Concat", [self.tensor(t) for t in values], [name], name, op, axis=axis)
        elif op in ("Reshape", "Squeeze", "ExpandDims"):
            self.add("Reshape", [self.tensor(ins[0]), self.ints(f"{name}:shape", self.out_shape(node))], [name], name, op)
        elif op == "Slice":
            self.slice(node)
        elif op == "StridedSlice":
            self.strided_slice(node)
        elif op == "Pack":
            self.pack(node)
        elif op == "Pad":
            pads = self.const_input(node, 1, "paddings").astype(np.int64)
            self.add(
                "Pad",
                [self.tensor(ins[0]), self.ints(f"{name}:pads", np.concatenate([pads[:, 0], pads[:, 1]]))],
                [name],
                name,
                op,
            )
        elif op == "Transpose":
            perm = [int(p) for p in self.const_input(node, 1, "perm").reshape(-1)]
            self.add("Transpose", [self.tensor(ins[0])], [name], name, op, perm=perm)
        elif op in ("Split", "SplitV"):
            self.split(node)
        elif op == "SpaceToBatchND":
            self.dilated_conv(node)
        elif op == "Cast":
            to = self.a.values[(name, 0)].dtype
            self.add("Cast", [self.tensor(ins[0])], [name], name, op, to=ONNX_TYPES.get(to, TensorProto.FLOAT))
        else:
            return False
        return True

    def _constant(self, tensor: Tensor, what: str) -> np.ndarray:
        value = self.a.constant(tensor)
        if value is None:
            raise Unsupported(f"its {what} is not a constant")
        return value

    def matmul(self, node: TfNode) -> None:
        a, b = (self.tensor(t) for t in node.inputs[:2])
        flags = ("transpose_a", "transpose_b") if node.op == "MatMul" else ("adj_x", "adj_y")
        for flag, role, index in ((flags[0], "a", 0), (flags[1], "b", 1)):
            if node.attrs.get(flag):
                rank = len(self.a.shape(node.inputs[index]) or ())
                perm = list(range(rank - 2)) + [rank - 1, rank - 2]
                source = a if index == 0 else b
                self.add("Transpose", [source], [f"{node.name}:{role}T"], f"{node.name}:{role}T", f"{node.op}:{flag}", perm=perm)
                if index == 0:
                    a = f"{node.name}:aT"
                else:
                    b = f"{node.name}:bT"
        self.add("MatMul", [a, b], [node.name], node.name, node.op)

    def kernel(self, node: TfNode) -> tuple[str, np.ndarray]:
        """The kernel's initializer, OIHW for ONNX's Conv, named as gxnpuc names it."""
        tensor = node.inputs[1]
        value = self._constant(tensor, "kernel (gxnpuc needs it fixed at compile time)")
        name = self.a.folding.name_of(tensor)
        self.tf_shapes[name] = [int(d) for d in value.shape]
        if (node.op == "DepthwiseConv2dNative" or value.shape[2] == 1) and name not in self.never_compressed:
            self.never_compressed.append(name)
        return name, value

    def oihw(self, node: TfNode, value: np.ndarray) -> np.ndarray:
        kh, kw, cin, cout = value.shape
        if node.op == "DepthwiseConv2dNative":
            return value.transpose(2, 3, 0, 1).reshape(cin * cout, 1, kh, kw)
        return value.transpose(3, 2, 0, 1)

    def conv(
        self, node: TfNode, x: str, out: str, pads: list[tuple[int, int]] | None = None, dilations: tuple[int, int] | None = None
    ) -> None:
        name = node.name
        kernel_name, value = self.kernel(node)
        x_shape = self.a.shape(node.inputs[0])
        assert x_shape is not None
        stride = window(node, "strides")
        dilation = dilations or window(node, "dilations")
        if pads is None:
            pads = spatial_pads(node, (x_shape[1], x_shape[2]), (value.shape[0], value.shape[1]), stride, dilation)
        site = self.bn_sites.get(name)
        weights = self.oihw(node, value)
        conv_inputs = [f"{name}:nchw", kernel_name]
        tail = f"{name}:conv"
        if site is not None and self.fuse_bn:
            weights, bias = self.folded_bn(site, value)
            bias_name = f"{name}_bn_offset"
            self.initializer(bias_name, bias, "tf")
            conv_inputs.append(bias_name)
        elif site is not None and site.bias_add is not None:
            conv_inputs.append(self.tensor(self.graph.nodes[site.bias_add].inputs[1]))
        self.initializer(kernel_name, weights, "oihw")
        self.add("Transpose", [x], [f"{name}:nchw"], f"{name}:nchw", f"{node.op}:nchw", perm=TO_NCHW)
        group = value.shape[2] if node.op == "DepthwiseConv2dNative" else 1
        self.add(
            "Conv",
            conv_inputs,
            [tail],
            name,
            node.op,
            kernel_shape=[int(value.shape[0]), int(value.shape[1])],
            strides=list(stride),
            dilations=list(dilation),
            pads=[pads[0][0], pads[1][0], pads[0][1], pads[1][1]],
            group=int(group),
        )
        if site is not None:
            last = site.bn
            if not self.fuse_bn:
                bn = self.graph.nodes[site.bn]
                params = [self.tensor(t) for t in bn.inputs[1:5]]
                self.add(
                    "BatchNormalization",
                    [tail, *params],
                    [f"{site.bn}:nchw"],
                    site.bn,
                    bn.op,
                    epsilon=float(bn.attrs.get("epsilon", 1e-4)),
                )
                tail = f"{site.bn}:nchw"
            self.done.update(n for n in (site.bias_add, site.bn) if n)
            self.renamed[(site.bn, 0)] = last
            out = last
        self.add("Transpose", [tail], [out], f"{out}:nhwc", f"{node.op}:nhwc", perm=TO_NHWC)

    def folded_bn(self, site: _BnSite, kernel: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """fold_old_batch_norms' float32 arithmetic: scale = (1 / sqrt(var + eps)) * gamma, the kernel times
        scale per output channel, offset = -mean * scale + beta (a BiasAdd's bias first joins the mean)."""
        bn = self.graph.nodes[site.bn]
        gamma, beta, mean, var = (self._constant(t, "BatchNorm parameter").astype(np.float32) for t in bn.inputs[1:5])
        scale = (np.float32(1) / np.sqrt(var + np.float32(bn.attrs.get("epsilon", 1e-4)))) * gamma
        shift = mean
        if site.bias_add is not None:
            shift = mean - self._constant(self.graph.nodes[site.bias_add].inputs[1], "bias").astype(np.float32)
        fused = kernel.astype(np.float32) * scale
        return fused.transpose(3, 2, 0, 1), (-shift * scale + beta).astype(np.float32)

    def _bn_sites(self) -> dict[str, _BnSite]:
        sites: dict[str, _BnSite] = {}
        order = set(self.a.order)
        outputs = set(self.a.outputs)
        for name in self.a.order:
            node = self.graph.nodes[name]
            if node.op != V1_BN or node.inputs[0][1] != 0:
                continue
            if any(self.a.constant(t) is None for t in node.inputs[1:5]) or (name, 0) not in self.a.values:
                continue
            if any(t[0] == name and t[1] > 0 for c in self.graph.consumers[name] for t in c.inputs):
                continue
            before = self.graph.nodes[node.inputs[0][0]]
            bias_add = None
            if (
                before.op == "BiasAdd"
                and self._only_consumer(before.name, name, outputs)
                and self.a.constant(before.inputs[1]) is not None
            ):
                bias_add = before.name
                before = self.graph.nodes[before.inputs[0][0]]
            if before.op == "Conv2D" and before.name in order and self._only_consumer(before.name, bias_add or name, outputs):
                if self.a.constant(before.inputs[1]) is not None:
                    sites[before.name] = _BnSite(before.name, bias_add, name)
        return sites

    def _only_consumer(self, producer: str, consumer: str, outputs: set[str]) -> bool:
        users = {c.name for c in self.graph.consumers[producer]}
        return users == {consumer} and producer not in outputs

    def pool(self, node: TfNode) -> None:
        name = node.name
        x_shape = self.a.shape(node.inputs[0])
        assert x_shape is not None
        kernel, stride = window(node, "ksize"), window(node, "strides")
        pads = spatial_pads(node, (x_shape[1], x_shape[2]), kernel, stride, (1, 1))
        self.add("Transpose", [self.tensor(node.inputs[0])], [f"{name}:nchw"], f"{name}:nchw", f"{node.op}:nchw", perm=TO_NCHW)
        attrs: dict[str, Any] = {
            "kernel_shape": list(kernel),
            "strides": list(stride),
            "pads": [pads[0][0], pads[1][0], pads[0][1], pads[1][1]],
        }
        if node.op == "AvgPool":
            attrs["count_include_pad"] = 0
        self.add("MaxPool" if node.op == "MaxPool" else "AveragePool", [f"{name}:nchw"], [f"{name}:pool"], name, node.op, **attrs)
        self.add("Transpose", [f"{name}:pool"], [name], f"{name}:nhwc", f"{node.op}:nhwc", perm=TO_NHWC)

    def batch_norm(self, node: TfNode) -> None:
        name = node.name
        if any(t[0] == name and t[1] > 0 for c in self.graph.consumers[name] for t in c.inputs):
            raise Unsupported("its batch statistics outputs are read; a frozen inference graph reads only its output 0")
        params = [self.tensor(t) for t in node.inputs[1:5]]
        self.add("Transpose", [self.tensor(node.inputs[0])], [f"{name}:nchw"], f"{name}:nchw", f"{node.op}:nchw", perm=TO_NCHW)
        epsilon = float(node.attrs.get("epsilon", 1e-4))
        self.add("BatchNormalization", [f"{name}:nchw", *params], [f"{name}:bn"], name, node.op, epsilon=epsilon)
        self.add("Transpose", [f"{name}:bn"], [name], f"{name}:nhwc", f"{node.op}:nhwc", perm=TO_NHWC)

    def reduce(self, node: TfNode) -> None:
        x_shape = self.a.shape(node.inputs[0]) or ()
        axes = list(reduce_axes(self._constant(node.inputs[1], "reduction axes"), len(x_shape)))
        keep = int(bool(node.attrs.get("keep_dims", False)))
        x = self.tensor(node.inputs[0])
        if not axes:
            self.add("Identity", [x], [node.name], node.name, node.op)
        elif node.op == "Mean":
            self.add("ReduceMean", [x], [node.name], node.name, node.op, axes=axes, keepdims=keep)
        else:
            self.add("ReduceSum", [x, self.ints(f"{node.name}:axes", axes)], [node.name], node.name, node.op, keepdims=keep)

    def slice(self, node: TfNode) -> None:
        x_shape = self.a.shape(node.inputs[0]) or ()
        begin = self.const_input(node, 1, "begin").reshape(-1).astype(np.int64)
        size = self.const_input(node, 2, "size").reshape(-1).astype(np.int64)
        ends = np.where(size == -1, np.asarray(x_shape, dtype=np.int64), begin + size)
        name = node.name
        inputs = [
            self.tensor(node.inputs[0]),
            self.ints(f"{name}:starts", begin),
            self.ints(f"{name}:ends", ends),
            self.ints(f"{name}:axes", list(range(len(begin)))),
        ]
        self.add("Slice", inputs, [name], name, node.op)

    def strided_slice(self, node: TfNode) -> None:
        """Any StridedSlice as one Gather of the flattened input: the indices are the selection itself,
        computed by numpy with TF's masks, so new axes, shrunk axes and negative strides all hold."""
        x_shape = self.a.shape(node.inputs[0])
        assert x_shape is not None
        spec = [self.const_input(node, i, what) for i, what in ((1, "begin"), (2, "end"), (3, "strides"))]
        positions = np.arange(int(np.prod(x_shape)), dtype=np.int64).reshape(x_shape)
        indices = np.asarray(positions[strided_index(node, len(x_shape), *spec)], dtype=np.int64)
        name = node.name
        self.add(
            "Reshape",
            [self.tensor(node.inputs[0]), self.ints(f"{name}:flat_shape", [-1])],
            [f"{name}:flat"],
            f"{name}:flat",
            f"{node.op}:flat",
        )
        self.initializer(f"{name}:indices", indices, "int")
        self.add("Gather", [f"{name}:flat", f"{name}:indices"], [name], name, node.op, axis=0)

    def pack(self, node: TfNode) -> None:
        shape = self.out_shape(node)
        axis = int(node.attrs.get("axis", 0)) % len(shape)
        piece = shape[:axis] + [1] + shape[axis + 1 :]
        parts = []
        for i, tensor in enumerate(node.inputs):
            part = f"{node.name}:{i}"
            self.add("Reshape", [self.tensor(tensor), self.ints(f"{node.name}:piece", piece)], [part], part, f"{node.op}:expand")
            parts.append(part)
        self.add("Concat", parts, [node.name], node.name, node.op, axis=axis)

    def split(self, node: TfNode) -> None:
        value_index = 1 if node.op == "Split" else 0
        x_shape = self.a.shape(node.inputs[value_index])
        assert x_shape is not None
        axis_tensor = node.inputs[0] if node.op == "Split" else node.inputs[2]
        axis = axis_of(self._constant(axis_tensor, "split axis"), len(x_shape))
        count = len([k for k in self.a.values if k[0] == node.name])
        sizes = [self.out_shape(node, i)[axis] for i in range(count)]
        outputs = [tensor_label((node.name, i)) for i in range(count)]
        self.add(
            "Split",
            [self.tensor(node.inputs[value_index]), self.ints(f"{node.name}:sizes", sizes)],
            outputs,
            node.name,
            node.op,
            axis=axis,
        )

    def dilated_conv(self, node: TfNode) -> None:
        """SpaceToBatchND -> Conv2D/Depthwise (VALID, stride 1) -> BatchToSpaceND is TF's spelling of a
        dilated convolution: one Conv with dilation = block, padding = paddings minus crops."""
        conv = self._sole_consumer(node)
        if conv is None or conv.op not in ("Conv2D", "DepthwiseConv2dNative") or conv.inputs[0] != (node.name, 0):
            raise Unsupported(
                "gxnpuc takes SpaceToBatchND only as the start of a dilated convolution (SpaceToBatchND -> Conv2D -> BatchToSpaceND)"
            )
        back = self._sole_consumer(conv)
        if (
            back is None
            or back.op != "BatchToSpaceND"
            or conv.attrs.get("padding") != "VALID"
            or window(conv, "strides") != (1, 1)
        ):
            raise Unsupported(
                "gxnpuc takes SpaceToBatchND only as the start of a dilated convolution (a VALID stride-1 conv, then BatchToSpaceND)"
            )
        block = self._constant(node.inputs[1], "block_shape").reshape(-1).astype(int)
        paddings = self._constant(node.inputs[2], "paddings").reshape(2, 2).astype(int)
        crops = self._constant(back.inputs[2], "crops").reshape(2, 2).astype(int)
        if not np.array_equal(self._constant(back.inputs[1], "block_shape").reshape(-1), block):
            raise Unsupported("SpaceToBatchND and BatchToSpaceND use different blocks")
        pads = [(int(paddings[i, 0] - crops[i, 0]), int(paddings[i, 1] - crops[i, 1])) for i in range(2)]
        if min(p for pair in pads for p in pair) < 0:
            raise Unsupported(f"crops {crops.tolist()} exceed paddings {paddings.tolist()}")
        original_input = conv.inputs[0]
        conv.inputs[0] = node.inputs[0]
        try:
            self.conv(conv, self.tensor(node.inputs[0]), back.name, pads, (int(block[0]), int(block[1])))
        finally:
            conv.inputs[0] = original_input
        self.done.update({conv.name, back.name})

    def _sole_consumer(self, node: TfNode) -> TfNode | None:
        users = {c.name: c for c in self.graph.consumers[node.name]}
        return next(iter(users.values())) if len(users) == 1 else None
