"""Run the float model and the NPU simulation on the same data and compare them (SPEC sections 6-7).

Sessions are built once per graph structure (FUSE_BN choices, fp16 activations, exposed layers);
weights enter the NPU session as fp16 inputs, so a recompile re-runs without rebuilding anything.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
import onnx

from .compiler import Compilation, Compiler
from .errors import UserError
from .eval_data import EvalData
from .graph import node_label
from .plan import EXCLUDED, plan_weights
from .settings import Settings
from .simulation import build_simulation, elem_types, feed_name, npu_values, reference_model


class Cancelled(Exception):
    """The caller asked a long evaluation to stop."""


@dataclass(frozen=True)
class Comparison:
    """How close the NPU's tensor is to the float one; sqnr_db is None when they are equal."""

    sqnr_db: float | None
    cosine: float
    max_abs_err: float


@dataclass(frozen=True)
class OutputMetrics:
    name: str
    comparison: Comparison


@dataclass(frozen=True)
class LayerDrift:
    node: str
    op_type: str
    output: str
    comparison: Comparison


@dataclass
class Evaluation:
    samples: int
    accuracy_float: float | None
    accuracy_npu: float | None
    top1_agreement: float | None
    outputs: list[OutputMetrics]
    layers: list[LayerDrift] | None = None

    @property
    def output_sqnr_db(self) -> float | None:
        """The first (classifier) output's SQNR: the number sensitivity ranks by."""
        return self.outputs[0].comparison.sqnr_db if self.outputs else None


@dataclass(frozen=True)
class Sensitivity:
    weight: str
    output_sqnr_db: float | None
    accuracy: float | None
    exclude_gain_db: float | None
    fp16_cost_bytes: int


def compare(reference: np.ndarray, actual: np.ndarray) -> Comparison:
    """SQNR over all samples, mean per-sample cosine, and the largest absolute error."""
    f = reference.reshape(len(reference), -1).astype(np.float64) if reference.ndim else reference.reshape(1, 1)
    n = actual.reshape(f.shape).astype(np.float64)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        err = f - n
        noise = float(np.sum(err * err))
        signal = float(np.sum(f * f))
        if noise == 0.0:
            sqnr = None
        elif not math.isfinite(noise):
            sqnr = -math.inf
        else:
            sqnr = 10.0 * math.log10(signal / noise) if signal > 0 else -math.inf
        norms = np.linalg.norm(f, axis=1) * np.linalg.norm(n, axis=1)
        dots = np.sum(f * n, axis=1)
        both_zero = (np.linalg.norm(f, axis=1) == 0) & (np.linalg.norm(n, axis=1) == 0)
        cos = np.where(both_zero, 1.0, np.where(norms > 0, dots / np.where(norms > 0, norms, 1), 0.0))
        max_abs = float(np.max(np.abs(err))) if err.size else 0.0
    return Comparison(sqnr, float(np.nan_to_num(cos, nan=0.0).mean()), max_abs)


class Evaluator:
    """Float reference computed once; NPU runs reuse one session per graph structure."""

    def __init__(self, compiler: Compiler, data: EvalData, output_names: list[str] | None = None) -> None:
        self.compiler = compiler
        self.data = data
        graph = compiler.inventory.model.graph
        known = [o.name for o in graph.output]
        wanted = [n for n in (output_names or []) if n in known]
        self.outputs = wanted or known
        self.batch = self._fixed_batch(graph)
        self._sessions: dict[tuple, object] = {}
        self._float: dict[bool, dict[str, np.ndarray]] = {}
        self._layer_names: list[tuple[str, str, str]] | None = None
        self._lock = threading.Lock()

    # -- running

    def _fixed_batch(self, graph: onnx.GraphProto) -> int | None:
        for info in graph.input:
            if info.name in self.data.inputs:
                dims = info.type.tensor_type.shape.dim
                if dims and dims[0].HasField("dim_value"):
                    return dims[0].dim_value
        return None

    def _session(self, model: onnx.ModelProto):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.log_severity_level = 3
        try:
            return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own classes for models it cannot run
            raise UserError(f"{self.compiler.inventory.path}: onnxruntime cannot run the model: {exc}") from None

    def _run(self, session, names: list[str], extra: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        step = self.batch or max(self.data.samples, 1)
        parts: list[list[np.ndarray]] = [[] for _ in names]
        for start in range(0, self.data.samples, step):
            feeds = {k: v[start : start + step] for k, v in self.data.inputs.items()}
            feeds.update(extra)
            try:
                values = session.run(names, feeds)
            except Exception as exc:
                raise UserError(f"onnxruntime failed on the evaluation data: {exc}") from None
            for bucket, value in zip(parts, values):
                bucket.append(value)
        return {n: np.concatenate(p) if len(p) > 1 else p[0] for n, p in zip(names, parts)}

    def layer_names(self) -> list[tuple[str, str, str]]:
        """(node, op type, output) for every float tensor a main-graph node produces, in graph order."""
        if self._layer_names is None:
            model = self.compiler.inventory.model
            types = elem_types(model)
            outputs = set(self.outputs)
            self._layer_names = [
                (node_label(node), node.op_type, out)
                for node in model.graph.node
                if node.op_type != "Constant"
                for out in node.output
                if out and out not in outputs and types.get(out) == onnx.TensorProto.FLOAT
            ]
        return self._layer_names

    def _expose(self, model: onnx.ModelProto, names: list[str]) -> None:
        present = {o for n in model.graph.node for o in n.output}
        for name in names:
            if name in present:
                model.graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))

    def reference(self, layers: bool = False) -> dict[str, np.ndarray]:
        """The float model's outputs (and every layer's, when asked), computed once."""
        with self._lock:
            if layers not in self._float:
                model = reference_model(self.compiler.inventory)
                names = list(self.outputs)
                if layers:
                    names += [out for _, _, out in self.layer_names()]
                    self._expose(model, names[len(self.outputs) :])
                self._float[layers] = self._run(self._session(model), names, {})
            return self._float[layers]

    def run_npu(self, compilation: Compilation, fp16_activations: bool = True, layers: bool = False) -> dict[str, np.ndarray]:
        values = npu_values(compilation)
        baked = tuple(
            (name, r.plan) for name, r in compilation.results.items() if r.weight.scope or r.weight.origin == "constant"
        )
        fused = frozenset(n for n, p in compilation.plans.items() if p.fused)
        key = (fused, fp16_activations, layers, baked)
        with self._lock:
            entry = self._sessions.get(key)
            if entry is None:
                sim = build_simulation(self.compiler, compilation, fp16_activations)
                feeds = frozenset(n for n in values if n in sim.arrays)
                model = sim.to_proto(feeds)
                names = list(self.outputs)
                if layers:
                    present = {o for n in model.graph.node for o in n.output}
                    names += [out for _, _, out in self.layer_names() if out in present]
                    self._expose(model, names[len(self.outputs) :])
                entry = (self._session(model), feeds, names)
                self._sessions[key] = entry
        session, feeds, names = entry
        extra = {feed_name(n): values[n] for n in feeds}
        return self._run(session, names, extra)

    # -- metrics

    def evaluate(self, compilation: Compilation, fp16_activations: bool = True, layers: bool = False) -> Evaluation:
        reference = self.reference(layers)
        npu = self.run_npu(compilation, fp16_activations, layers)
        outputs = [OutputMetrics(n, compare(reference[n], npu[n])) for n in self.outputs]
        first_ref, first_npu = reference[self.outputs[0]], npu[self.outputs[0]]
        agreement = float(np.mean(first_ref.argmax(axis=-1) == first_npu.argmax(axis=-1))) if first_ref.ndim >= 2 else None
        acc_float = acc_npu = None
        if self.data.labels is not None and first_ref.ndim == 2:
            acc_float = float(np.mean(first_ref.argmax(axis=1) == self.data.labels))
            acc_npu = float(np.mean(first_npu.argmax(axis=1) == self.data.labels))
        drift = None
        if layers:
            drift = [
                LayerDrift(node, op, out, compare(reference[out], npu[out]))
                for node, op, out in self.layer_names()
                if out in npu
            ]
        return Evaluation(self.data.samples, acc_float, acc_npu, agreement, outputs, drift)

    def sensitivity(
        self,
        settings: Settings,
        progress: Callable[[int, int], None] | None = None,
        cancel: threading.Event | None = None,
    ) -> list[Sensitivity]:
        """Per weight: the model with only it quantized, and the current config with only it excluded."""
        inventory = self.compiler.inventory
        base = plan_weights(inventory, settings)
        current = self.evaluate(self.compiler.compile_plans(settings, base), settings.fp16_activations)
        nothing = {n: replace(p, quantized=False, reason=EXCLUDED) for n, p in base.items()}
        total = sum(2 if base[w.name].quantized else 1 for w in inventory.weights)
        done = 0
        found = []
        for weight in inventory.weights:
            alone = dict(nothing)
            alone[weight.name] = replace(base[weight.name], quantized=True, reason=None)
            only = self.evaluate(self.compiler.compile_plans(settings, alone), settings.fp16_activations)
            done += 1
            gain = 0.0
            if base[weight.name].quantized:
                _check(cancel)
                without = dict(base)
                without[weight.name] = replace(base[weight.name], quantized=False, reason=EXCLUDED)
                excluded = self.evaluate(self.compiler.compile_plans(settings, without), settings.fp16_activations)
                gain = _difference(excluded.output_sqnr_db, current.output_sqnr_db)
                done += 1
            found.append(Sensitivity(weight.name, only.output_sqnr_db, only.accuracy_npu, gain, weight.size - 4))
            if progress is not None:
                progress(done, total)
            _check(cancel)
        return found


def _check(cancel: threading.Event | None) -> None:
    if cancel is not None and cancel.is_set():
        raise Cancelled()


def _difference(a: float | None, b: float | None) -> float | None:
    """a - b in dB, where None means exact (+infinity)."""
    if a is None and b is None:
        return 0.0
    if a is None or b is None:
        return None
    return a - b
