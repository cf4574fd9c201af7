"""Run an ONNX graph with the GRUS NPU's arithmetic (NPU_ARITHMETIC.md), node by node, all samples at
once. Every tensor carries a leading samples axis in front of its ONNX shape; constants do not.

Constants: float16 initializers are taken bit for bit (the weights as the NPU holds them, e.g.
dequantized int8); float32 ones are converted as gxnpuc stores them (its own converter). Inputs are
converted with IEEE round-to-nearest-even (numpy), as the SDK's C model cases were fed, or with the
vendor's converter (`vendor_inputs`); float16 inputs are taken bit for bit. A node's doc_string
`tf:<op>` (the TensorFlow reader's) says which TensorFlow op it was: only a BiasAdd fuses into the
MatMul/Conv before it under FUSE_BIASADD."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import numpy_helper

from ...errors import ModelError
from ...quant.batchnorm import multiplier_addend
from ...quant.fp16 import compiler_fp16
from ...text import printable
from . import arith, tables
from .surprises import SWAPPED_OPS, Diagnostic, scalar_first_diagnostic, swaps

F16 = np.float16
SELU_ALPHA = 1.6732632423543772
SELU_GAMMA = 1.0507009873554805
LINEAR_OPS = ("MatMul", "Gemm", "Conv")
INF_BITS = 0x7C00  # +inf in fp16; above it, NaN


@dataclass
class ExactRun:
    """The fp16 value of every requested tensor ([samples, *ONNX shape]) and what went wrong where."""

    values: dict[str, np.ndarray]
    diagnostics: list[Diagnostic] = field(default_factory=list)


def simulate_exact(
    model: onnx.ModelProto,
    feeds: dict[str, np.ndarray],
    output_names: Sequence[str],
    *,
    fuse_biasadd: bool = False,
    fp16_outputs: Sequence[str] = (),
    vendor_inputs: bool = False,
) -> dict[str, np.ndarray]:
    """What the NPU returns per output, first axis = samples: float32 through the format op (subnormals
    to 0, NaN to inf), or the raw fp16 for names in `fp16_outputs` (FP16_OUT_OPS)."""
    run = run_exact(model, feeds, output_names, fuse_biasadd=fuse_biasadd, vendor_inputs=vendor_inputs)
    return {name: run.values[name] if name in fp16_outputs else arith.fp32_output(run.values[name]) for name in output_names}


def run_exact(
    model: onnx.ModelProto,
    feeds: dict[str, np.ndarray],
    output_names: Sequence[str],
    *,
    fuse_biasadd: bool = False,
    vendor_inputs: bool = False,
) -> ExactRun:
    """The fp16 outputs and the diagnostics: scalar-first Sub/Div nodes (what the chip computes
    instead) and the first MatMul/Conv whose fp16 chain overflows."""
    return _Interpreter(model, fuse_biasadd).run(feeds, output_names, vendor_inputs)


@dataclass
class _Tensor:
    """A value that varies per sample: fp16, axis 0 = samples."""

    data: np.ndarray

    @property
    def rank(self) -> int:
        return self.data.ndim - 1


Value = _Tensor | np.ndarray  # a tensor, or a constant (any dtype, its ONNX shape)


def _npu_constant(value: np.ndarray) -> np.ndarray:
    """A constant as the NPU holds it."""
    if value.dtype == F16:
        return value
    return compiler_fp16(np.asarray(value, dtype=np.float32))


def _axis(axis: int, rank: int) -> int:
    if not -rank <= axis < rank:
        raise ModelError(f"axis {axis} is out of range for a rank-{rank} tensor")
    return axis % rank


class _Interpreter:
    def __init__(self, model: onnx.ModelProto, fuse_biasadd: bool) -> None:
        self.graph = model.graph
        self.fuse_biasadd = fuse_biasadd
        self.values: dict[str, Value] = {t.name: numpy_helper.to_array(t) for t in self.graph.initializer}
        self.consumers: dict[str, list[onnx.NodeProto]] = {}
        for node in self.graph.node:
            for name in node.input:
                self.consumers.setdefault(name, []).append(node)
        self.fused: set[int] = set()  # ids of BiasAdd nodes folded into the linear node before them
        self.diagnostics: list[Diagnostic] = []
        self.overflow_seen = False

    def run(self, feeds: dict[str, np.ndarray], output_names: Sequence[str], vendor_inputs: bool) -> ExactRun:
        self._refuse_unknown_ops()
        for spec in self.graph.input:
            if spec.name in self.values:
                continue
            if spec.name not in feeds:
                raise ModelError(f"no data for model input {printable(spec.name)!r}")
            array = np.asarray(feeds[spec.name])
            if array.dtype == F16:
                self.values[spec.name] = _Tensor(array)
            elif array.dtype.kind == "f":
                wide = array.astype(np.float32)
                converted = compiler_fp16(wide) if vendor_inputs else arith.h(wide)
                self._check_input_range(spec.name, wide, converted)
                self.values[spec.name] = _Tensor(converted)
            else:
                self.values[spec.name] = _Tensor(array)
        for node in self.graph.node:
            if id(node) in self.fused:  # its bias is in the chain already: it passes its data input on
                self.values[node.output[0]] = self._input(node, 0)
                continue
            self._node(node)
        out: dict[str, np.ndarray] = {}
        for name in output_names:
            value = self.values.get(name)
            if value is None:
                raise ModelError(f"the model has no tensor named {printable(name)!r}")
            out[name] = value.data if isinstance(value, _Tensor) else _npu_constant(value)
        return ExactRun(out, self.diagnostics)

    def _check_input_range(self, name: str, wide: np.ndarray, converted: np.ndarray) -> None:
        lost = int(np.count_nonzero(np.isfinite(wide) & ~np.isfinite(converted)))
        if lost:
            self.diagnostics.append(
                Diagnostic(
                    printable(name),
                    "input_overflow",
                    f"input {printable(name)!r}: {lost} values beyond the fp16 range (|x| > 65504) reach the NPU as inf or NaN",
                )
            )

    # --- plumbing -------------------------------------------------------------------------------
    def _input(self, node: onnx.NodeProto, index: int) -> Value:
        name = node.input[index]
        if name not in self.values:
            raise ModelError(f"node {printable(node.name or node.op_type)!r} reads {printable(name)!r}, which nothing computes")
        return self.values[name]

    def _optional(self, node: onnx.NodeProto, index: int) -> Value | None:
        if index >= len(node.input) or not node.input[index]:
            return None
        return self._input(node, index)

    def _const(self, node: onnx.NodeProto, index: int, what: str) -> np.ndarray:
        value = self._input(node, index)
        if isinstance(value, _Tensor):
            raise ModelError(f"node {printable(node.name or node.op_type)!r}: its {what} must be a constant on the NPU")
        return value

    def _tensor(self, node: onnx.NodeProto, index: int) -> _Tensor:
        value = self._input(node, index)
        if isinstance(value, _Tensor):
            return value
        raise ModelError(f"node {printable(node.name or node.op_type)!r}: input {index} is a constant where the NPU wants data")

    def _set(self, node: onnx.NodeProto, *results: Value) -> None:
        for name, result in zip(node.output, results):
            self.values[name] = result

    def _label(self, node: onnx.NodeProto) -> str:
        return printable(node.name or (node.output[0] if node.output else node.op_type))

    def _refuse_unknown_ops(self) -> None:
        """An op the NPU does not run is refused before anything runs: found at its turn, it would come
        after seconds of fp16 arithmetic on every node before it."""
        for node in self.graph.node:
            if node.op_type != "Constant" and node.op_type not in MOVEMENT and not hasattr(self, "_op_" + node.op_type):
                raise ModelError(f"node {self._label(node)!r}: {printable(node.op_type)} is not an op the GRUS NPU runs")

    def _node(self, node: onnx.NodeProto) -> None:
        if node.op_type == "Constant":
            self._set(node, numpy_helper.to_array(node.attribute[0].t))
            return
        inputs = [self._optional(node, i) for i in range(len(node.input))]
        if node.op_type in MOVEMENT:
            lead = int(any(isinstance(v, _Tensor) for v in inputs))
            self._set(node, *_movement(node, inputs, lead))
            return
        getattr(self, "_op_" + node.op_type)(node)  # every op has its handler: _refuse_unknown_ops

    # --- linear layers --------------------------------------------------------------------------
    def _bias_after(self, node: onnx.NodeProto) -> tuple[onnx.NodeProto, np.ndarray] | None:
        """The BiasAdd (TensorFlow's, by doc_string) that is the single consumer of this node, directly
        or through the one Transpose that takes a converted NHWC layer's output back to NHWC."""
        users = self.consumers.get(node.output[0], [])
        if len(users) == 1 and users[0].op_type == "Transpose":
            users = self.consumers.get(users[0].output[0], [])
        if len(users) != 1 or users[0].op_type != "Add" or users[0].doc_string != "tf:BiasAdd":
            return None
        add = users[0]
        bias = self.values.get(add.input[1])
        if bias is None or isinstance(bias, _Tensor) or np.ndim(bias) < 1 or np.size(bias) != np.shape(bias)[-1]:
            return None
        return add, _npu_constant(np.asarray(bias).reshape(-1))

    @staticmethod
    def _finish_linear(result: np.ndarray, bias: np.ndarray | None, first: bool) -> np.ndarray:
        """Add a bias that did not start the chain (a separate op_tensor_vector add, channels last)."""
        if bias is not None and not first:
            result = arith.add(result, bias)
        return result

    def _linear_bias(
        self, node: onnx.NodeProto, own_bias: np.ndarray | None, always_first: bool
    ) -> tuple[np.ndarray | None, bool, onnx.NodeProto | None]:
        """The bias the layer adds and whether it starts the chain: its own (Gemm C, Conv B) or a
        following BiasAdd; first under FUSE_BIASADD, and always for depthwise."""
        follow = self._bias_after(node) if own_bias is None else None
        if follow is not None:
            return follow[1], always_first or self.fuse_biasadd, follow[0]
        return own_bias, always_first or self.fuse_biasadd, None

    def _check_overflow(self, node: onnx.NodeProto, x: np.ndarray, result: np.ndarray) -> None:
        if self.overflow_seen or not _finite(x).all():
            return
        bad = int(result.size - np.count_nonzero(_finite(result)))
        if not bad:
            return
        self.overflow_seen = True
        self.diagnostics.append(
            Diagnostic(
                self._label(node),
                "chain_overflow",
                f"{node.op_type} {self._label(node)!r}: the fp16 accumulation overflows in {bad} of {result.size} outputs "
                "(no wider accumulator on the NPU; the float model does not overflow here)",
            )
        )

    def _store_linear(self, node: onnx.NodeProto, result: np.ndarray, fused_add: onnx.NodeProto | None) -> None:
        if fused_add is not None:
            self.fused.add(id(fused_add))
        self.values[node.output[0]] = _Tensor(result)

    def _op_MatMul(self, node: onnx.NodeProto) -> None:
        x = self._tensor(node, 0)
        w = _npu_constant(self._const(node, 1, "weight"))
        if w.ndim != 2:
            raise ModelError(
                f"node {self._label(node)!r}: MatMul weight of shape {list(w.shape)}; the NPU multiplies by a 2-D weight"
            )
        self._matmul(node, x.data, w, None)

    def _op_Gemm(self, node: onnx.NodeProto) -> None:
        attrs = _attributes(node)
        if attrs.get("alpha", 1.0) != 1.0 or attrs.get("beta", 1.0) != 1.0 or attrs.get("transA", 0):
            raise ModelError(f"node {self._label(node)!r}: Gemm with alpha, beta or transA the NPU does not run")
        w = _npu_constant(self._const(node, 1, "weight"))
        if attrs.get("transB", 0):
            w = w.T
        own = self._optional(node, 2)
        if isinstance(own, _Tensor):
            raise ModelError(f"node {self._label(node)!r}: Gemm bias must be a constant")
        bias = None if own is None else np.broadcast_to(_npu_constant(own).reshape(-1), (w.shape[1],))
        self._matmul(node, self._tensor(node, 0).data, w, bias)

    def _matmul(self, node: onnx.NodeProto, x: np.ndarray, w: np.ndarray, own_bias: np.ndarray | None) -> None:
        bias, first, fused_add = self._linear_bias(node, own_bias, always_first=False)
        result = arith.matmul(x, w, bias if first else None)
        self._check_overflow(node, x, result)
        result = self._finish_linear(result, bias, first)
        self._store_linear(node, result, fused_add)

    def _op_Conv(self, node: onnx.NodeProto) -> None:
        attrs = _attributes(node)
        x = self._tensor(node, 0).data
        w = _npu_constant(self._const(node, 1, "weight"))
        spatial = w.ndim - 2
        if spatial not in (1, 2) or x.ndim != w.ndim + 1:
            raise ModelError(f"node {self._label(node)!r}: Conv of rank {w.ndim}; the NPU runs 1-D and 2-D convolutions")
        if spatial == 1:
            x, w = x[..., None, :], w[:, :, None, :]
        samples, batch, cin, height, width = x.shape
        kh, kw = w.shape[2:]
        strides = tuple(attrs.get("strides", [1] * spatial))
        sh, sw = (1, strides[0]) if spatial == 1 else strides
        dilations = tuple(attrs.get("dilations", [1] * spatial))
        dh, dw = (1, dilations[0]) if spatial == 1 else dilations
        pads = _conv_pads(attrs, spatial, (height, width), (dh * (kh - 1) + 1, dw * (kw - 1) + 1), (sh, sw))
        group = int(attrs.get("group", 1))
        cout = w.shape[0]
        own = self._optional(node, 2)
        if isinstance(own, _Tensor):
            raise ModelError(f"node {self._label(node)!r}: Conv bias must be a constant")
        depthwise = group > 1 and group == cin and cout == cin
        bias, first, fused_add = self._linear_bias(
            node, None if own is None else _npu_constant(own).reshape(-1), always_first=depthwise
        )
        nhwc = np.transpose(x.reshape(samples * batch, cin, height, width), (0, 2, 3, 1))
        kernel = np.transpose(w, (2, 3, 1, 0))  # kh, kw, cin/group, cout
        start = bias if first else None
        if depthwise:
            out = arith.depthwise2d(nhwc, kernel[:, :, 0, :], (sh, sw), pads, start, (dh, dw))
        else:
            per_in, per_out = cin // group, cout // group
            parts = [
                arith.conv2d(
                    nhwc[..., g * per_in : (g + 1) * per_in],
                    kernel[:, :, :, g * per_out : (g + 1) * per_out],
                    (sh, sw),
                    pads,
                    None if start is None else start[g * per_out : (g + 1) * per_out],
                    (dh, dw),
                )
                for g in range(group)
            ]
            out = parts[0] if group == 1 else np.concatenate(parts, axis=-1)
        self._check_overflow(node, x, out)
        out = self._finish_linear(out, bias, first)
        result = np.transpose(out, (0, 3, 1, 2)).reshape(samples, batch, cout, out.shape[1], out.shape[2])
        if spatial == 1:
            result = result[..., 0, :]
        self._store_linear(node, result, fused_add)

    # --- element-wise ---------------------------------------------------------------------------
    def _binary(self, node: onnx.NodeProto, op: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> None:
        a, b = self._input(node, 0), self._input(node, 1)
        if not isinstance(a, _Tensor) and not isinstance(b, _Tensor):
            with np.errstate(all="ignore"):
                self._set(node, op(np.asarray(a, np.float32), np.asarray(b, np.float32)).astype(np.float32))
            return
        if node.op_type in SWAPPED_OPS and not isinstance(a, _Tensor) and np.size(a) == 1 and swaps(node):
            self.diagnostics.append(scalar_first_diagnostic(node, _scalar(a)))
            a, b = b, a
        x, y = _aligned(a, b)
        self._set(node, _Tensor(op(x, y)))

    def _op_Add(self, node: onnx.NodeProto) -> None:
        self._binary(node, arith.add)

    def _op_Sub(self, node: onnx.NodeProto) -> None:
        self._binary(node, arith.sub)

    def _op_Mul(self, node: onnx.NodeProto) -> None:
        self._binary(node, arith.mul)

    def _op_Div(self, node: onnx.NodeProto) -> None:
        self._binary(node, arith.div)

    def _unary(self, node: onnx.NodeProto, op: Callable[[np.ndarray], np.ndarray]) -> None:
        self._set(node, _Tensor(op(self._tensor(node, 0).data)))

    def _op_Relu(self, node: onnx.NodeProto) -> None:
        self._unary(node, _relu)

    def _op_Clip(self, node: onnx.NodeProto) -> None:
        attrs = _attributes(node)
        low = attrs.get("min") if len(node.input) < 2 or not node.input[1] else _scalar(self._const(node, 1, "minimum"))
        high = attrs.get("max") if len(node.input) < 3 or not node.input[2] else _scalar(self._const(node, 2, "maximum"))
        if low != 0 or high != 6:
            raise ModelError(f"node {self._label(node)!r}: Clip({low}, {high}); the NPU clips only as Relu6 = Clip(0, 6)")
        self._unary(node, lambda x: _relu(x, cap=F16(6)))

    def _op_Sigmoid(self, node: onnx.NodeProto) -> None:
        self._unary(node, sigmoid)

    def _op_Tanh(self, node: onnx.NodeProto) -> None:
        self._unary(node, tanh)

    def _op_Selu(self, node: onnx.NodeProto) -> None:
        attrs = _attributes(node)
        self._unary(node, lambda x: selu(x, float(attrs.get("alpha", SELU_ALPHA)), float(attrs.get("gamma", SELU_GAMMA))))

    def _op_Exp(self, node: onnx.NodeProto) -> None:
        self._unary(node, tables.exp)

    def _op_Log(self, node: onnx.NodeProto) -> None:
        self._unary(node, tables.ln)

    def _op_Sqrt(self, node: onnx.NodeProto) -> None:
        self._unary(node, sqrt)

    def _op_Abs(self, node: onnx.NodeProto) -> None:
        self._unary(node, absolute)

    def _op_Neg(self, node: onnx.NodeProto) -> None:
        self._unary(node, lambda x: arith.sub(F16(0), x))

    def _op_Reciprocal(self, node: onnx.NodeProto) -> None:
        self._unary(node, lambda x: arith.div(F16(1), x))

    def _op_Pow(self, node: onnx.NodeProto) -> None:
        exponent = self._const(node, 1, "exponent")
        if np.size(exponent) != 1:
            raise ModelError(f"node {self._label(node)!r}: Pow by a tensor; the NPU raises to a scalar constant")
        c = _npu_constant(np.asarray(exponent).reshape(1))[0]
        self._unary(node, lambda x: power(x, c))  # through the tables: pow(x < 0, 2) is NaN on the chip

    def _op_Identity(self, node: onnx.NodeProto) -> None:
        self._set(node, self._input(node, 0))

    def _op_BatchNormalization(self, node: onnx.NodeProto) -> None:
        x = self._tensor(node, 0).data
        gamma, beta, mean, var = (self._const(node, i, "parameter") for i in range(1, 5))
        scale, shift = multiplier_addend(gamma, beta, mean, var, float(_attributes(node).get("epsilon", 1e-5)))
        shape = (1, 1, -1) + (1,) * (x.ndim - 3)
        self._set(node, _Tensor(arith.add(arith.mul(x, scale.reshape(shape)), shift.reshape(shape))))

    # --- reductions and pooling -----------------------------------------------------------------
    def _reduce(self, node: onnx.NodeProto, mean: bool) -> None:
        x = self._tensor(node, 0)
        attrs = _attributes(node)
        axes_value = attrs.get("axes")
        if axes_value is None and len(node.input) > 1 and node.input[1]:
            axes_value = self._const(node, 1, "axes").tolist()
        axes = (
            tuple(range(1, x.data.ndim)) if axes_value is None else tuple(sorted(_axis(int(a), x.rank) + 1 for a in axes_value))
        )
        summed = arith.reduce_sum(x.data, axes)
        if mean:
            count = int(np.prod([x.data.shape[a] for a in axes]))
            summed = arith.div(summed, compiler_fp16(np.float32(count)))
        if not attrs.get("keepdims", 1):
            summed = summed.reshape(tuple(n for a, n in enumerate(summed.shape) if a not in axes))
        self._set(node, _Tensor(summed))

    def _op_ReduceMean(self, node: onnx.NodeProto) -> None:
        self._reduce(node, mean=True)

    def _op_ReduceSum(self, node: onnx.NodeProto) -> None:
        self._reduce(node, mean=False)

    def _op_GlobalAveragePool(self, node: onnx.NodeProto) -> None:
        x = self._tensor(node, 0).data
        axes = tuple(range(3, x.ndim))
        count = int(np.prod([x.shape[a] for a in axes]))
        self._set(node, _Tensor(arith.div(arith.reduce_sum(x, axes), compiler_fp16(np.float32(count)))))

    def _pool(self, node: onnx.NodeProto, maximum: bool) -> None:
        attrs = _attributes(node)
        x = self._tensor(node, 0).data
        kernel = list(attrs["kernel_shape"])
        strides = list(attrs.get("strides", [1] * len(kernel)))
        if any(attrs.get("pads", [0])) or attrs.get("auto_pad", b"NOTSET") not in (b"NOTSET", b"VALID", "NOTSET", "VALID"):
            raise ModelError(f"node {self._label(node)!r}: padded pooling; the GRUS NPU pools without padding")
        if len(kernel) == 1:
            x, kernel, strides = x[..., None, :], [1, *kernel], [1, *strides]
        samples, batch, channels, height, width = x.shape
        nhwc = np.transpose(x.reshape(samples * batch, channels, height, width), (0, 2, 3, 1))
        kh, kw = kernel
        if maximum:
            out = arith.max_pool(nhwc, (kh, kw), (strides[0], strides[1]))
        else:
            out = arith.avg_pool(nhwc, (kh, kw), (strides[0], strides[1]), compiler_fp16(np.float32(kh * kw)))
        result = np.transpose(out, (0, 3, 1, 2)).reshape(samples, batch, channels, out.shape[1], out.shape[2])
        self._set(node, _Tensor(result[..., 0, :] if len(attrs["kernel_shape"]) == 1 else result))

    def _op_MaxPool(self, node: onnx.NodeProto) -> None:
        self._pool(node, maximum=True)

    def _op_AveragePool(self, node: onnx.NodeProto) -> None:
        self._pool(node, maximum=False)


# --- the nonlinearities, as op_active and op_tensor_scalar build them from the tables ---------------
def _relu(x: np.ndarray, cap: np.floating | None = None) -> np.ndarray:
    """x > 0 ? (cap ? min(x, cap) : x) : +0, so NaN -> 0. Read from the fp16 bits, where a positive
    number's order is its bits' order (numpy compares fp16 through a software conversion)."""
    bits = np.asarray(x, dtype=F16).view(np.int16)
    kept = bits if cap is None else np.minimum(bits, np.asarray(cap, F16).view(np.int16))
    return np.where((bits > 0) & (bits <= INF_BITS), kept, 0).astype(np.int16).view(F16)


def _finite(x: np.ndarray) -> np.ndarray:
    """Which fp16 values are finite: exponent field below 31."""
    return (np.asarray(x, dtype=F16).view(np.uint16) & INF_BITS) != INF_BITS


def sigmoid(x: np.ndarray) -> np.ndarray:
    """e = EXP(0 - x); y = h(1 / h(1 + e))."""
    return arith.div(F16(1), arith.add(F16(1), tables.exp(arith.sub(F16(0), x))))


def tanh(x: np.ndarray) -> np.ndarray:
    """p = EXP(x), n = EXP(0 - x); y = h(h(p - n) / h(p + n)): 0 for |x| <= 3.4e-4."""
    p, n = tables.exp(x), tables.exp(arith.sub(F16(0), x))
    return arith.div(arith.sub(p, n), arith.add(p, n))


def selu(x: np.ndarray, alpha: float, gamma: float) -> np.ndarray:
    """x > 0 ? h(x * h(gamma)) : h(h(EXP(x) * h(gamma*alpha)) - h(gamma*alpha))."""
    scale = compiler_fp16(np.float32(gamma))
    negative_scale = compiler_fp16(np.float32(gamma * alpha))
    return np.where(x > 0, arith.mul(x, scale), arith.add(arith.mul(tables.exp(x), negative_scale), -negative_scale)).astype(F16)


def power(x: np.ndarray, exponent: np.floating) -> np.ndarray:
    """EXP(h(LN(x) * c))."""
    return tables.exp(arith.mul(tables.ln(x), np.asarray(exponent, F16)))


def sqrt(x: np.ndarray) -> np.ndarray:
    """pow(x, 0.5): not correctly rounded (up to 8 ulp)."""
    return power(x, F16(0.5))


def absolute(x: np.ndarray) -> np.ndarray:
    """Abs as gxnpuc lowers it, sqrt(x * x): inf for |x| >= 256, 0 below ~2.4e-4."""
    return sqrt(arith.mul(x, x))


def _aligned(a: Value, b: Value) -> tuple[np.ndarray, np.ndarray]:
    """Both operands as fp16 arrays that broadcast with ONNX's rules behind the samples axis."""
    ra = a.rank if isinstance(a, _Tensor) else np.ndim(a)
    rb = b.rank if isinstance(b, _Tensor) else np.ndim(b)
    rank = max(ra, rb)

    def lift(v: Value, r: int) -> np.ndarray:
        if isinstance(v, _Tensor):
            data = v.data
            return data.reshape(data.shape[:1] + (1,) * (rank - r) + data.shape[1:])
        const = _npu_constant(np.asarray(v))
        return const.reshape((1,) * (rank + 1 - const.ndim) + const.shape)

    return lift(a, ra), lift(b, rb)


def _scalar(value: np.ndarray) -> float:
    return float(np.asarray(value).reshape(-1)[0])


def _attributes(node: onnx.NodeProto) -> dict:
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def _conv_pads(
    attrs: dict, spatial: int, size: tuple[int, int], kernel: tuple[int, int], strides: tuple[int, int]
) -> tuple[int, int, int, int]:
    """top, left, bottom, right; SAME puts the smaller half first (TensorFlow, SAME_UPPER)."""
    auto = attrs.get("auto_pad", b"NOTSET")
    auto = auto.decode() if isinstance(auto, bytes) else auto
    if auto in ("SAME_UPPER", "SAME_LOWER"):
        pads = []
        for n, k, s in zip(size, kernel, strides):
            total = max((-(-n // s) - 1) * s + k - n, 0)
            small = total // 2
            pads.append((small, total - small) if auto == "SAME_UPPER" else (total - small, small))
        return pads[0][0], pads[1][0], pads[0][1], pads[1][1]
    given = list(attrs.get("pads", [0] * (2 * spatial)))
    if spatial == 1:
        return 0, given[0], 0, given[1]
    return given[0], given[1], given[2], given[3]


# --- data movement: exact, on tensors (lead = 1, the samples axis) and on constants (lead = 0) -------
def _movement(node: onnx.NodeProto, inputs: list[Value | None], lead: int) -> list[Value]:
    arrays = [None if v is None else (v.data if isinstance(v, _Tensor) else np.asarray(v)) for v in inputs]
    data = arrays[0]
    if data is None:
        raise ModelError(f"node {printable(node.name or node.op_type)!r} has no input")
    if lead and any(isinstance(v, _Tensor) for v in inputs[1:]) and node.op_type != "Concat":
        raise ModelError(f"node {printable(node.name or node.op_type)!r}: its shape arguments must be constants")
    if lead and node.op_type == "Concat":
        samples = next(v.data.shape[0] for v in inputs if isinstance(v, _Tensor))
        arrays = [
            v.data if isinstance(v, _Tensor) else np.broadcast_to(_npu_constant(v), (samples, *np.shape(v)))
            for v in inputs
            if v is not None
        ]
    rank = data.ndim - lead
    moving = _Moving(node, arrays, data, _attributes(node), lead, rank)
    found = _reshaped(moving)
    if found is None:
        found = _cut(moving)
    if found is not None:
        return found
    raise ModelError(f"node {printable(node.name or node.op_type)!r}: {printable(node.op_type)} is not an op the GRUS NPU runs")


@dataclass
class _Moving:
    """One data-movement node's inputs, for the helpers that move them."""

    node: onnx.NodeProto
    arrays: list[np.ndarray | None]
    data: np.ndarray
    attrs: dict
    lead: int
    rank: int

    def wrap(self, a: np.ndarray) -> Value:
        return _Tensor(a) if self.lead else a

    def arg(self, index: int, name: str) -> list[int] | None:
        """An integer argument from the attribute `name`, else from input `index` (newer opsets)."""
        if name in self.attrs:
            return [int(v) for v in self.attrs[name]]
        if index < len(self.arrays) and self.arrays[index] is not None:
            return [int(v) for v in np.asarray(self.arrays[index]).reshape(-1)]
        return None


def _reshaped(m: _Moving) -> list[Value] | None:
    """Shape, Transpose, Reshape, Flatten, Squeeze, Unsqueeze; None for another op."""
    data, attrs, lead, rank, op = m.data, m.attrs, m.lead, m.rank, m.node.op_type
    wrap, arg = m.wrap, m.arg
    if op == "Shape":
        return [np.array(data.shape[lead:], dtype=np.int64)]
    if op == "Transpose":
        perm = arg(99, "perm") or list(range(rank))[::-1]
        return [wrap(np.transpose(data, list(range(lead)) + [p + lead for p in perm]))]
    if op == "Reshape":
        target = arg(1, "shape") or []
        shape = [data.shape[lead + i] if t == 0 and not attrs.get("allowzero", 0) else t for i, t in enumerate(target)]
        return [wrap(data.reshape(data.shape[:lead] + tuple(shape)))]
    if op == "Flatten":
        axis = _axis(int(attrs.get("axis", 1)), rank + 1) if rank else 0
        dims = data.shape[lead:]
        return [wrap(data.reshape(data.shape[:lead] + (int(np.prod(dims[:axis])), int(np.prod(dims[axis:])))))]
    if op == "Squeeze":
        axes = arg(1, "axes")
        chosen = [i for i, n in enumerate(data.shape[lead:]) if n == 1] if axes is None else [_axis(a, rank) for a in axes]
        return [wrap(np.squeeze(data, axis=tuple(a + lead for a in chosen)))]
    if op == "Unsqueeze":
        added = arg(1, "axes") or []
        out = data
        for a in sorted(_axis(a, rank + len(added)) for a in added):
            out = np.expand_dims(out, a + lead)
        return [wrap(out)]
    return None


def _cut(m: _Moving) -> list[Value] | None:
    """Concat, Split, Slice, Gather, Pad; None for another op."""
    node, arrays, data, attrs, lead, rank, op = m.node, m.arrays, m.data, m.attrs, m.lead, m.rank, m.node.op_type
    wrap, arg = m.wrap, m.arg
    if op == "Concat":
        axis = _axis(int(attrs["axis"]), rank) + lead
        return [wrap(np.concatenate([a for a in arrays if a is not None], axis=axis))]
    if op == "Split":
        axis = _axis(int(attrs.get("axis", 0)), rank)
        if lead and rank >= 2 and axis == rank - 1 and math.prod(data.shape[1:-1]) > 1:
            raise ModelError(
                f"node {printable(node.name or node.op_type)!r}: a Split on the last axis of a {list(data.shape[1:])} tensor; "
                "gxnpuc 1.5.8 miscompiles it (its copy overwrites other buffers): split another axis or reshape first"
            )
        sizes = arg(1, "split")
        if sizes is None:
            count = int(attrs.get("num_outputs", len(node.output)))
            sizes = [-(-data.shape[axis + lead] // count)] * count
        edges = np.cumsum(sizes)[:-1]
        return [wrap(part) for part in np.split(data, edges, axis=axis + lead)]
    if op == "Slice":
        starts, ends = arg(1, "starts") or [], arg(2, "ends") or []
        axes = arg(3, "axes") or list(range(len(starts)))
        steps = arg(4, "steps") or [1] * len(starts)
        index = [slice(None)] * data.ndim
        for s, e, a, st in zip(starts, ends, axes, steps):
            index[_axis(a, rank) + lead] = slice(s, e, st)
        return [wrap(data[tuple(index)])]
    if op == "Gather":
        indices = np.asarray(arrays[1]).astype(np.int64)
        return [wrap(np.take(data, indices, axis=_axis(int(attrs.get("axis", 0)), rank) + lead))]
    if op == "Pad":
        pads = arg(1, "pads") or []
        mode = attrs.get("mode", b"constant")
        if mode not in (b"constant", "constant"):
            raise ModelError(f"node {printable(node.name or node.op_type)!r}: Pad mode {mode!r}; the NPU pads with zeros")
        fill = arrays[2] if len(arrays) > 2 and arrays[2] is not None else np.zeros(())
        if float(np.asarray(fill).reshape(-1)[0] if np.size(fill) else 0) != 0:
            raise ModelError(f"node {printable(node.name or node.op_type)!r}: Pad with a non-zero value; the NPU pads with zeros")
        half = len(pads) // 2
        widths = [(0, 0)] * lead + [(pads[i], pads[i + half]) for i in range(half)]
        return [wrap(np.pad(data, widths))]
    return None


MOVEMENT = {"Shape", "Transpose", "Reshape", "Flatten", "Squeeze", "Unsqueeze", "Concat", "Split", "Slice", "Gather", "Pad"}


def with_held_weights(model: onnx.ModelProto, held: dict[str, np.ndarray]) -> onnx.ModelProto:
    """A copy of `model` whose initializers named in `held` are float16: the values the NPU holds
    (dequantized int8 or converted fp16), which the interpreter then takes bit for bit."""
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    for tensor in copy.graph.initializer:
        if tensor.name in held:
            tensor.CopyFrom(
                numpy_helper.from_array(np.asarray(held[tensor.name]).astype(F16).reshape(tuple(tensor.dims)), tensor.name)
            )
    return copy


def samples_first(value: np.ndarray) -> np.ndarray:
    """[samples, 1, ...] (one inference's batch axis of 1) as [samples, ...], as the float model's
    outputs are joined; other shapes as they are."""
    return value.reshape(value.shape[0], *value.shape[2:]) if value.ndim >= 2 and value.shape[1] == 1 else value
