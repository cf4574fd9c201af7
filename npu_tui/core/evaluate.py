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

from .compiler import Compilation, Compiler, WeightResult
from .errors import UserError
from .eval_data import EvalData
from .graph import node_label
from .plan import EXCLUDED, plan_weights
from .settings import Settings
from .simulation import build_simulation, elem_types, feed_name, fused_bias_name, npu_values, reference_model
from .suffix import GraphIndex, extract_suffix


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

    def _run(
        self, session, names: list[str], extra: dict[str, np.ndarray], per_sample: dict[str, np.ndarray] | None = None
    ) -> dict[str, np.ndarray]:
        """Run over all samples, in batches when the model fixes its batch size.

        `per_sample` arrays (samples first) are sliced with the batch; `extra` is fed whole.
        """
        step = self.batch or max(self.data.samples, 1)
        wanted = {i.name for i in session.get_inputs()}
        sliced = {k: v for k, v in {**self.data.inputs, **(per_sample or {})}.items() if k in wanted}
        extra = {k: v for k, v in extra.items() if k in wanted}
        parts: list[list[np.ndarray]] = [[] for _ in names]
        for start in range(0, self.data.samples, step):
            feeds = {k: v[start : start + step] for k, v in sliced.items()}
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

    def _npu_entry(self, compilation: Compilation, fp16_activations: bool, layers: bool) -> tuple:
        """(session, fed weight names, output names, model) for the compilation's graph structure."""
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
                entry = (self._session(model), feeds, names, model)
                self._sessions[key] = entry
        return entry

    def run_npu(self, compilation: Compilation, fp16_activations: bool = True, layers: bool = False) -> dict[str, np.ndarray]:
        session, feeds, names, _ = self._npu_entry(compilation, fp16_activations, layers)
        return self._run(session, names, _weight_feeds(compilation, feeds))

    # -- metrics

    def evaluate(self, compilation: Compilation, fp16_activations: bool = True, layers: bool = False) -> Evaluation:
        return self._measure(self.run_npu(compilation, fp16_activations, layers), layers)

    def _measure(self, npu: dict[str, np.ndarray], layers: bool = False) -> Evaluation:
        reference = self.reference(layers)
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
        """Per weight: the model with only it quantized, and the current config with only it excluded.

        Each run starts at the weight's first reader, from activations computed once for each side.
        """
        inventory = self.compiler.inventory
        fp16 = settings.fp16_activations
        base = plan_weights(inventory, settings)
        nothing = {n: replace(p, quantized=False, reason=EXCLUDED) for n, p in base.items()}
        current_compilation = self.compiler.compile_plans(settings, base)
        nothing_compilation = self.compiler.compile_plans(settings, nothing)
        _, feeds, names, model = self._npu_entry(current_compilation, fp16, False)
        cuts = _SuffixRuns(self, model, feeds, names, [w.name for w in inventory.weights])
        starts = {"only": cuts.upstream(nothing_compilation), "current": cuts.upstream(current_compilation)}
        nothing_feeds = _weight_feeds(nothing_compilation, feeds)
        current_feeds = _weight_feeds(current_compilation, feeds)
        current = self._measure(cuts.run("current", current_feeds, None, starts["current"]))
        total = sum(2 if base[w.name].quantized else 1 for w in inventory.weights)
        done = 0
        found = []
        all_fed = all(w.name in feeds for w in inventory.weights)

        def variant(weight, plan, plans, side) -> Evaluation:
            if not all_fed:  # a weight held in a Constant node or a subgraph is baked into the session
                return self.evaluate(self.compiler.compile_plans(settings, {**plans, weight.name: plan}), fp16)
            swaps = _swaps(self.compiler.result(weight, plan), feeds)
            weight_feeds = nothing_feeds if side == "only" else current_feeds
            return self._measure(cuts.run(side, weight_feeds, weight.name, starts[side], swaps))

        for weight in inventory.weights:
            _check(cancel)
            quantized = replace(base[weight.name], quantized=True, reason=None)
            only = variant(weight, quantized, nothing, "only")
            done += 1
            gain = 0.0
            if base[weight.name].quantized:
                _check(cancel)
                kept = replace(base[weight.name], quantized=False, reason=EXCLUDED)
                excluded = variant(weight, kept, base, "current")
                gain = _difference(excluded.output_sqnr_db, current.output_sqnr_db)
                done += 1
            found.append(Sensitivity(weight.name, only.output_sqnr_db, only.accuracy_npu, gain, weight.size - 4))
            if progress is not None:
                progress(done, total)
        return found


class _SuffixRuns:
    """Sessions that start at a weight's first reader, at most MAX_CUTS of them per sweep."""

    MAX_CUTS = 16

    def __init__(self, evaluator: Evaluator, model: onnx.ModelProto, feeds: frozenset[str], names: list[str], weights: list[str]) -> None:
        self.evaluator, self.model, self.feeds, self.names = evaluator, model, feeds, names
        fed = {i.name for i in model.graph.input}
        types = elem_types(model)
        index = GraphIndex(model.graph)
        starts = {w: index.first_read[w] for w in weights if w in feeds and w in index.first_read}
        chosen = sorted(set(starts.values()))
        if len(chosen) > self.MAX_CUTS:
            chosen = sorted({chosen[round(i * (len(chosen) - 1) / (self.MAX_CUTS - 1))] for i in range(self.MAX_CUTS)})
        cuts = {c: index.live_at(c) - feeds - fed for c in chosen}
        self.cuts = {c: cut for c, cut in cuts.items() if all(types.get(t) for t in cut)}
        usable = sorted(self.cuts)
        self.cut_of = {w: max((c for c in usable if c <= i), default=None) for w, i in starts.items()}
        self.types = types
        self.sessions: dict[int | None, object] = {}
        self.bindings: dict[tuple[int | None, str], tuple[object, dict[str, np.ndarray]]] = {}

    def upstream(self, compilation: Compilation) -> dict[str, np.ndarray]:
        """One full run that keeps every cut's tensors."""
        weight_feeds = _weight_feeds(compilation, self.feeds)
        wanted = sorted(set().union(*self.cuts.values())) if self.cuts else []
        if not wanted:
            return {}
        model = onnx.ModelProto()
        model.CopyFrom(self.model)
        del model.graph.output[:]
        model.graph.output.extend(onnx.helper.make_tensor_value_info(n, self.types[n], None) for n in wanted)
        session = self.evaluator._session(model)
        return self.evaluator._run(session, wanted, weight_feeds)

    def run(
        self,
        side: str,
        weight_feeds: dict[str, np.ndarray],
        weight: str | None,
        start: dict[str, np.ndarray],
        swaps: dict[str, np.ndarray] | None = None,
    ) -> dict[str, np.ndarray]:
        """Outputs with `swaps` fed instead of `weight_feeds`' values, from the cut before `weight`.

        Each (cut, side) keeps an IOBinding with every input bound once; a run rebinds only the swapped
        weight, so thousands of unchanged weights are not fed, checked or copied again.
        """
        cut = self.cut_of.get(weight) if weight is not None else None
        if cut not in self.sessions:
            model = self.model if cut is None else extract_suffix(self.model, self.cuts[cut], self.types)
            self.sessions[cut] = self.evaluator._session(model)
        session = self.sessions[cut]
        per_sample = {t: start[t] for t in self.cuts[cut]} if cut is not None else {}
        if self.evaluator.batch is not None:  # a fixed batch size: plain feeds, one batch at a time
            return self.evaluator._run(session, self.names, {**weight_feeds, **(swaps or {})}, per_sample)
        key = (cut, side)
        if key not in self.bindings:
            self.bindings[key] = self._bind(session, {**self.evaluator.data.inputs, **per_sample, **weight_feeds})
        binding, bound = self.bindings[key]
        swapped = {n: v for n, v in (swaps or {}).items() if n in bound}
        for name, value in swapped.items():
            binding.bind_cpu_input(name, np.ascontiguousarray(value))
        try:
            session.run_with_iobinding(binding)
            values = binding.copy_outputs_to_cpu()
        except Exception as exc:
            raise UserError(f"onnxruntime failed on the evaluation data: {exc}") from None
        finally:
            for name in swapped:
                binding.bind_cpu_input(name, bound[name])
        return dict(zip(self.names, values))

    def _bind(self, session, values: dict[str, np.ndarray]) -> tuple[object, dict[str, np.ndarray]]:
        binding = session.io_binding()
        bound = {}
        for info in session.get_inputs():
            bound[info.name] = np.ascontiguousarray(values[info.name])
            binding.bind_cpu_input(info.name, bound[info.name])
        for name in self.names:
            binding.bind_output(name)
        return binding, bound


def _swaps(result: WeightResult, feeds: frozenset[str]) -> dict[str, np.ndarray]:
    """The feeds one what-if run of a sweep changes: the weight, and its fused bias."""
    changed = {feed_name(result.weight.name): result.simulated}
    if result.plan.fused and result.weight.bn is not None and fused_bias_name(result.weight.bn) in feeds:
        changed[feed_name(fused_bias_name(result.weight.bn))] = result.fused_bias
    return changed


def _weight_feeds(compilation: Compilation, feeds: frozenset[str]) -> dict[str, np.ndarray]:
    values = npu_values(compilation)
    return {feed_name(n): values[n] for n in feeds}


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
