"""Run the float model and the NPU simulation on the same data and compare them (SPEC sections 6-7).

Sessions are built once per graph structure (FUSE_BN choices, fp16 activations, exposed layers).
Every weight, wherever the model keeps it (initializer, Constant node, folded tensor, subgraph),
enters the NPU session as an fp16 input, so no recompile and no what-if run rebuilds anything.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import numpy as np
import onnx

from ..errors import InternalError, ModelError, UserError
from ..model.graph import node_label
from ..numbers import worst_first
from ..quant.compiler import Compilation, Compiler
from ..text import one_line
from .eval_data import EvalData
from .npu.chip import ChipOutputs, chip_outputs
from .npu.cost import exact_seconds
from .npu.kernels import widen
from .npu.surprises import graph_surprises
from .runtime import Batches, BoundSession, SessionFactory
from .simulation import (
    HALF_SUFFIX,
    build_simulation,
    elem_types,
    held_constants,
    npu_values,
    reference_model,
    structure,
    weight_feeds,
)

if TYPE_CHECKING:
    from onnxruntime import InferenceSession

STACKED_BYTES = 32 << 20
LARGE_TENSOR = 1 << 16
EXACT_SECONDS = 2.0  # an exact run estimated longer than this (core/sim/npu/cost.py) falls back to the fast one
EXACT, FAST = "exact", "fast"


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
class Layer:
    """One node's error: along the NPU graph so far (accumulated) and from its own weight (isolated)."""

    index: int
    node: str
    op_type: str
    output: str
    accumulated: Comparison
    isolated: Comparison | None
    weight: str | None
    drop_db: float
    marked: bool = False  # among the MARKED_DROPS layers whose accumulated SQNR drops most


@dataclass
class Evaluation:
    samples: int
    accuracy_float: float | None
    accuracy_npu: float | None
    top1_agreement: float | None
    outputs: list[OutputMetrics]
    layers: list[Layer] | None = None
    layer_samples: int | None = None  # the first samples the layer numbers are measured on
    classifier: str | None = None
    fp16_issue: str | None = None
    range_trouble: bool = False  # an output not finite, or all zero where the float one is not
    simulation: str = FAST  # "exact": the chip's own arithmetic (core/sim/npu); "fast": onnxruntime, fp16 per node
    simulation_note: str | None = None  # why an exact evaluation asked for is fast
    chip_warnings: list[str] = field(default_factory=list)  # what the chip computes otherwise than the float model

    @property
    def worst(self) -> OutputMetrics | None:
        """The output with the lowest SQNR: the model is only as good as its worst output."""
        return min(self.outputs, key=lambda o: worst_first(o.comparison.sqnr_db)) if self.outputs else None

    @property
    def worst_output_sqnr_db(self) -> float | None:
        """The worst output's SQNR: the number sensitivity ranks by and `--min-sqnr` checks."""
        worst = self.worst
        return worst.comparison.sqnr_db if worst is not None else None


def compare(reference: np.ndarray, actual: np.ndarray) -> Comparison:
    """SQNR over all samples, mean per-sample cosine, and the largest absolute error."""
    return compare_many([(reference, actual)])[0]


_FIELDS = ("ee", "ff", "nn", "fn", "peaks")


@dataclass(frozen=True)
class RowSums:
    """What a comparison is made of, per (tensor, row): see `_row_sums`."""

    ee: np.ndarray
    ff: np.ndarray
    nn: np.ndarray
    fn: np.ndarray
    peaks: np.ndarray  # per tensor


def compare_many(pairs: list[tuple[np.ndarray, np.ndarray]]) -> list[Comparison]:
    """`compare` for many tensors at once. Small tensors of one shape are stacked and measured in
    float64 together (500 small layers cost a few numpy calls); a large tensor is measured on its own
    in float32, the dB it reports off by well under 0.001 dB, at a quarter of the memory traffic: a
    sweep compares a large output once per what-if run, the layer view every layer."""
    found: list[Comparison | None] = [None] * len(pairs)
    for members, sums in _grouped_sums(pairs, lambda reference: reference.shape[0] if reference.shape else 1):
        for index, comparison in zip(members, _comparisons(sums)):
            found[index] = comparison
    return [c for c in found if c is not None]


def _grouped_sums(
    pairs: list[tuple[np.ndarray, np.ndarray]], rows_of: Callable[[np.ndarray], int]
) -> Iterator[tuple[list[int], RowSums]]:
    """The row sums of `pairs` (`rows_of` a tensor's rows), by group: a tensor of LARGE_TENSOR values
    or more alone in float32, smaller ones of one shape stacked in float64 (the copies within
    STACKED_BYTES); with the indices of each group's pairs."""
    groups: dict[tuple, list[int]] = {}
    for index, (reference, _) in enumerate(pairs):
        if reference.size >= LARGE_TENSOR:
            groups[("large", index)] = [index]
            continue
        group = groups.setdefault(reference.shape, [])
        if len(group) * reference.size * 8 > STACKED_BYTES:  # a new stack: float64 copies stay bounded
            groups[reference.shape + (index,)] = group[:]
            group.clear()
        group.append(index)
    for members in groups.values():
        rows = rows_of(pairs[members[0]][0])
        if len(members) == 1 and pairs[members[0]][0].size >= LARGE_TENSOR:
            yield members, _large_sums(pairs[members[0]][0], pairs[members[0]][1], rows)
        else:
            f = _wide(np.stack([pairs[i][0].reshape(rows, -1) for i in members])).astype(np.float64, copy=False)
            n = _wide(np.stack([pairs[i][1].reshape(rows, -1) for i in members])).astype(np.float64, copy=False)
            yield members, _row_sums(f, n)


def _large_sums(reference: np.ndarray, actual: np.ndarray, rows: int) -> RowSums:
    """A large tensor's row sums in float32, its arrays viewed, not copied."""
    f = _wide(reference.reshape(1, rows, -1)).astype(np.float32, copy=False)
    n = _wide(actual.reshape(1, rows, -1)).astype(np.float32, copy=False)
    return _row_sums(f, n)


def _wide(values: np.ndarray) -> np.ndarray:
    """fp16 values (the NPU's layers) widened to float32 by onnxruntime's Cast (numpy converts fp16 in
    software, 15-20x slower); any other array as it is."""
    return widen(values) if values.dtype == np.float16 else values


def _row_sums(f: np.ndarray, n: np.ndarray) -> RowSums:
    """Per (tensor, row) of two (tensors, rows, values) stacks: the sums of err², f², n² and f·n (in
    float64, each summed in the stacks' dtype), and per tensor the largest absolute error. A row's
    sums depend on that row alone, so a tensor's rows summed run by run are its rows summed at once."""
    with np.errstate(over="ignore", invalid="ignore"):
        err = f - n
        ee = np.einsum("lij,lij->li", err, err).astype(np.float64)
        ff = np.einsum("lij,lij->li", f, f).astype(np.float64)
        nn = np.einsum("lij,lij->li", n, n).astype(np.float64)
        fn = np.einsum("lij,lij->li", f, n).astype(np.float64)
        flat = err.reshape(len(err), -1)
        peaks = np.maximum(flat.max(axis=1), -flat.min(axis=1)) if err.size else np.zeros(len(err))
    return RowSums(ee, ff, nn, fn, peaks)


def _comparisons(sums: RowSums) -> list[Comparison]:
    """One Comparison per tensor of the row sums: SQNR over all rows, mean row cosine, largest error."""
    ee, ff, nn, fn = sums.ee, sums.ff, sums.nn, sums.fn
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        norms = np.sqrt(ff) * np.sqrt(nn)
        cos = np.where((ff == 0) & (nn == 0), 1.0, np.where(norms > 0, fn / np.where(norms > 0, norms, 1), 0.0))
        cosines = np.clip(np.nan_to_num(cos, nan=0.0), -1.0, 1.0).mean(axis=1)
        noise, signal = ee.sum(axis=1), ff.sum(axis=1)
        ratio = np.where(noise > 0, signal / np.where(noise > 0, noise, 1), 1.0)
        sqnr = np.where(signal > 0, 10.0 * np.log10(np.where(ratio > 0, ratio, 1)), -np.inf)
    found = []
    for k in range(len(ee)):
        if noise[k] == 0.0:
            value: float | None = None
        elif not math.isfinite(noise[k]) or ratio[k] == 0:
            value = -math.inf
        else:
            value = float(sqnr[k])
        peak = float(sums.peaks[k])
        found.append(Comparison(value, float(cosines[k]), peak if math.isfinite(peak) else math.inf))
    return found


class RunByRun:
    """`compare_many` for tensors whose values arrive run by run (Batches' runs), the same numbers
    without holding the runs: a large tensor's runs are reduced to their row sums as they come
    (LARGE_TENSOR is judged on the size so far, and the runs held until then are reduced when it is
    reached); a small one's runs are kept (under LARGE_TENSOR values each) and compared at the end."""

    def __init__(self, batches: Batches) -> None:
        self.batches = batches
        self._held: dict[str, tuple[list[np.ndarray], list[np.ndarray]]] = {}
        self._sums: dict[str, list[RowSums]] = {}
        self._sizes: dict[str, int] = {}

    def add(self, name: str, reference: np.ndarray, actual: np.ndarray) -> None:
        """One run's values of the tensor `name`, float and compared."""
        self._sizes[name] = self._sizes.get(name, 0) + reference.size
        if name not in self._sums:
            held = self._held.setdefault(name, ([], []))
            held[0].append(reference)
            held[1].append(actual)
            if self._sizes[name] < LARGE_TENSOR:
                return
            del self._held[name]
            self._sums[name] = []
            for f, n in zip(*held):
                self._reduce(name, f, n)
            return
        self._reduce(name, reference, actual)

    def _reduce(self, name: str, reference: np.ndarray, actual: np.ndarray) -> None:
        if reference.size:  # an empty run adds no row (a joined tensor would not have it)
            self._sums[name].append(_large_sums(reference, actual, self.batches.rows(reference)))

    def comparisons(self, names: list[str]) -> list[Comparison]:
        """The comparison of each named tensor over every run added: one _comparisons call for all
        the tensors of as many rows (each row's numbers are its own, whatever it is stacked with)."""
        groups = [([n], _joined(self._sums[n])) for n in names if n in self._sums]
        groups += self._small_groups([n for n in names if n in self._held])
        by_rows: dict[int, list[tuple[list[str], RowSums]]] = {}
        for group in groups:
            by_rows.setdefault(group[1].ee.shape[1], []).append(group)
        found: dict[str, Comparison] = {}
        for same in by_rows.values():
            stacked = RowSums(*(np.concatenate([getattr(sums, f) for _, sums in same]) for f in _FIELDS))
            found.update(zip([n for members, _ in same for n in members], _comparisons(stacked)))
        return [found[n] for n in names]

    def _small_groups(self, small: list[str]) -> list[tuple[list[str], RowSums]]:
        """The held tensors' row sums, run by run in compare_many's stacks: where every run stacks
        them alike (the usual case) each stack's runs are joined, else each tensor's."""
        if not small:
            return []
        held = self._held
        runs = [
            list(_grouped_sums([(held[n][0][r], held[n][1][r]) for n in small], self.batches.rows))
            for r in range(len(held[small[0]][0]))
        ]
        layout = [members for members, _ in runs[0]]
        if all([members for members, _ in run] == layout for run in runs):
            return [([small[i] for i in members], _joined([run[g][1] for run in runs])) for g, members in enumerate(layout)]
        each: dict[int, list[RowSums]] = {}
        for run in runs:
            for members, sums in run:
                for k, index in enumerate(members):
                    each.setdefault(index, []).append(RowSums(*(getattr(sums, f)[k : k + 1] for f in _FIELDS)))
        return [([name], _joined(each[i])) for i, name in enumerate(small)]


def _joined(runs: list[RowSums]) -> RowSums:
    """Row sums over runs (of the same tensors), as if measured at once: rows are summed on their own."""
    if len(runs) == 1:
        return runs[0]
    ee, ff, nn, fn = (np.concatenate([getattr(r, f) for r in runs], axis=1) for f in ("ee", "ff", "nn", "fn"))
    return RowSums(ee, ff, nn, fn, np.maximum.reduce([r.peaks for r in runs]))


@dataclass
class NpuGraph:
    """One NPU simulation graph as a bound session; `feeds` are the tensors fed as fp16 inputs."""

    bound: BoundSession
    feeds: frozenset[str]
    names: list[str]
    model: onnx.ModelProto
    layers: dict[str, str] = field(default_factory=dict)  # with every layer exposed: layer -> the output holding it


class Evaluator:
    """Float reference computed once; NPU runs reuse one session per graph structure."""

    def __init__(
        self, compiler: Compiler, data: EvalData, output_names: list[str] | None = None, fp16_outputs: Sequence[str] = ()
    ) -> None:
        self.compiler = compiler
        self.fp16_outputs = tuple(fp16_outputs)  # FP16_OUT_OPS: the chip returns their raw fp16
        self.data = data
        graph = compiler.inventory.model.graph
        known = [o.name for o in graph.output]
        wanted = [n for n in (output_names or []) if n in known]
        self.outputs = wanted or known
        self.sessions = SessionFactory()
        self.batches = Batches.plan(data, _open_first_axis(graph))
        self._graphs: dict[tuple, NpuGraph] = {}
        self._float: dict[str, np.ndarray] | None = None
        self._layer_names: list[tuple[str, str, str]] | None = None
        self._user_model_runs: bool | None = None
        self._exact_refusal: dict[tuple, str | None] = {}
        self._graph_warnings: list[str] | None = None
        self.lock = threading.RLock()

    # -- sessions and runs

    def session(self, model: onnx.ModelProto, lean: bool = False) -> InferenceSession:
        """A session for a graph npu-tui built. When onnxruntime refuses it, it is npu-tui's bug if
        the user's own model runs, and the user's problem if it does not."""
        try:
            return self.sessions.build(model, lean)
        except Exception as exc:  # onnxruntime raises its own classes for graphs it cannot run
            message = one_line(str(exc))
        path = self.compiler.inventory.path
        if self.user_model_runs():
            raise InternalError(f"{path}: onnxruntime rejects a graph npu-tui built from the model: {message}")
        raise UserError(f"{path}: onnxruntime cannot run the model as given: {message}")

    def user_model_runs(self) -> bool:
        """Whether onnxruntime accepts the user's model file itself (checked once, only after a failure)."""
        if self._user_model_runs is None:
            try:
                self.sessions.build(str(self.compiler.inventory.path))
                self._user_model_runs = True
            except Exception:  # noqa: BLE001 - any refusal means the model is the problem
                self._user_model_runs = False
        return self._user_model_runs

    def run(
        self,
        bound: BoundSession,
        swaps: dict[str, np.ndarray] | None = None,
        states: list[dict[str, np.ndarray]] | None = None,
        batches: Batches | None = None,
    ) -> dict[str, np.ndarray]:
        """Every sample (of `batches`, else all) through `bound`, each output joined as (N, ...)."""
        parts = self.run_parts(bound, swaps, states, batches)
        return {n: self.batches.join([p[n] for p in parts]) for n in bound.outputs}

    def run_parts(
        self,
        bound: BoundSession,
        swaps: dict[str, np.ndarray] | None = None,
        states: list[dict[str, np.ndarray]] | None = None,
        batches: Batches | None = None,
    ) -> list[dict[str, np.ndarray]]:
        """Every sample (of `batches`, else all) through `bound`, run by run, each run's outputs
        kept apart; `states` are per-run tensors fed besides the data (activations at a cut)."""
        return list(self.each_part(bound, swaps, states, batches))

    def each_part(
        self,
        bound: BoundSession,
        swaps: dict[str, np.ndarray] | None = None,
        states: list[dict[str, np.ndarray]] | None = None,
        batches: Batches | None = None,
    ) -> Iterator[dict[str, np.ndarray]]:
        """`run_parts` one run at a time: a caller that reduces each run's outputs holds one run's.
        The lock is held per run (a binding is one run's state), so a sweep lets other evaluations in
        between."""
        for index, part in enumerate((batches or self.batches).slices()):
            yield self.run_slice(bound, part, states[index] if states is not None else None, swaps)

    def run_slice(
        self,
        bound: BoundSession,
        part: slice,
        state: dict[str, np.ndarray] | None = None,
        swaps: dict[str, np.ndarray] | None = None,
    ) -> dict[str, np.ndarray]:
        """One run: the samples of `part` (one of Batches.slices) through `bound`, `state` fed besides."""
        feeds = {name: self.batches.feed(array, part) for name, array in self.data.inputs.items()}
        if state is not None:
            feeds.update(state)
        try:
            with self.lock:
                values = bound.run(feeds, swaps)
        except Exception as exc:  # onnxruntime's own classes
            raise self._run_failure(exc) from None
        return dict(zip(bound.outputs, values))

    def _run_failure(self, exc: Exception) -> Exception:
        message = one_line(str(exc))
        if self._float is not None:
            return InternalError(f"onnxruntime failed on a graph npu-tui built, though the float model ran: {message}")
        return UserError(f"onnxruntime failed on the evaluation data: {message}")

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

    @staticmethod
    def _expose(model: onnx.ModelProto, names: list[str], half: bool) -> dict[str, str]:
        """Each named tensor the model makes as an output; with `half`, its fp16 value where
        activations are rounded through fp16 (the same numbers in half the bytes, widened by
        onnxruntime's Cast when compared); layer -> output name."""
        present = {o for n in model.graph.node for o in n.output}
        exposed = {}
        for name in names:
            if half and name + HALF_SUFFIX in present:
                exposed[name] = name + HALF_SUFFIX
                model.graph.output.append(onnx.helper.make_tensor_value_info(name + HALF_SUFFIX, onnx.TensorProto.FLOAT16, None))
            elif name in present:
                exposed[name] = name
                model.graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
        return exposed

    def reference(self) -> dict[str, np.ndarray]:
        """The float model's outputs, computed once (every layer's values live in the layer analysis)."""
        with self.lock:
            if self._float is None:
                model = reference_model(self.compiler.inventory)
                names = list(self.outputs)
                session = self.session(model)
                values = self.run(BoundSession(session, names, {}))
                if self.batches.batched and not self._batch_preserved(values):
                    self.batches = replace(self.batches, batched=False, size=1)
                    values = self.run(BoundSession(session, names, {}))
                self._float = values
            return self._float

    def _batch_preserved(self, values: dict[str, np.ndarray]) -> bool:
        """Whether every output kept one row per sample when samples ran together."""
        return all(v.ndim >= 1 and v.shape[0] == self.data.samples for v in values.values())

    def npu_graph(self, compilation: Compilation, fp16_activations: bool, layers: bool = False, half: bool = False) -> NpuGraph:
        """The bound NPU session for the compilation's graph structure, built the first time; with
        `layers`, every layer exposed (as its fp16 values with `half`, see `_expose`)."""
        key = (structure(compilation), fp16_activations, layers, half)
        self.reference()  # the float model first: it decides the batching, and whose fault a failure is
        with self.lock:
            entry = self._graphs.get(key)
            if entry is None:
                sim = build_simulation(self.compiler, compilation, fp16_activations)
                values = npu_values(compilation)
                model = sim.to_proto(frozenset(values))
                names = list(self.outputs)
                exposed = self._expose(model, [out for _, _, out in self.layer_names()], half) if layers else {}
                names += exposed.values()
                # with every layer exposed: unbound, so a run's layers are held once (no copies), in the arena
                bound = BoundSession(self.session(model), names, weight_feeds(compilation), bind=not layers)
                layer_outputs = {n: n for n in self.outputs} | exposed if layers else {}
                entry = NpuGraph(bound, frozenset(values), names, model, layer_outputs)
                self._graphs[key] = entry
        return entry

    def run_npu(self, compilation: Compilation, fp16_activations: bool = True) -> dict[str, np.ndarray]:
        graph = self.npu_graph(compilation, fp16_activations)
        with self.lock:
            graph.bound.update_fixed(weight_feeds(compilation))
            return self.run(graph.bound)

    # -- metrics

    def evaluate(self, compilation: Compilation, fp16_activations: bool = True, exact: bool = False) -> Evaluation:
        """The model-level numbers: from the exact simulation with `exact` (unless it cannot run or
        would take longer than EXACT_SECONDS: then the fast one, and `simulation_note` says why), else
        from the fast one (what the sweep and the fix search's inner runs use)."""
        chip, note = self.run_exact(compilation) if exact and fp16_activations else (None, None)
        if exact and not fp16_activations:
            note = "activations kept in fp32 (--no-fp16-activations), as the chip never keeps them"
        reference = self.reference()
        npu = self._shaped(chip.arrays, reference) if chip is not None else None
        if chip is not None and npu is None:
            chip, note = None, "the exact outputs do not match the float model's shapes"
        if npu is None:
            npu = self.run_npu(compilation, fp16_activations)
        evaluation = self.measure(npu)
        evaluation.simulation, evaluation.simulation_note = (EXACT if chip is not None else FAST), note
        if self._graph_warnings is None:  # from the graph alone: once, what compile says too
            inventory = self.compiler.inventory
            self._graph_warnings = [d.message for d in graph_surprises(inventory.model, inventory.arrays)]
        found = [d.message for d in chip.diagnostics if d.kind == "scalar_first"] if chip is not None else []
        evaluation.chip_warnings = self._graph_warnings + [m for m in dict.fromkeys(found) if m not in self._graph_warnings]
        evaluation.range_trouble = _range_trouble(reference, npu, self.outputs)
        overflow = (
            next((d.message for d in chip.diagnostics if d.kind in ("chain_overflow", "input_overflow")), None) if chip else None
        )
        if overflow is not None:  # the chip says which chain overflowed; Analysis diagnoses the rest
            evaluation.fp16_issue = f"fp16 overflow on the chip: {overflow}"
        return evaluation

    def exact_refusal(self, compilation: Compilation) -> str | None:
        """Why the exact simulation will not run this compilation's graph (an op or a form the
        interpreter does not run, or a run estimated beyond EXACT_SECONDS), or None; estimated once per
        graph structure. Asked before an exact evaluation, it lets a caller holding the fast numbers
        of the same compilation use them instead of running the fast simulation again."""
        key = structure(compilation)
        if key not in self._exact_refusal:
            model = build_simulation(self.compiler, compilation, fp16_activations=False).to_proto()
            self._estimate(key, model)
        return self._exact_refusal[key]

    def _estimate(self, key: tuple, model: onnx.ModelProto) -> None:
        with self.lock:
            if key not in self._exact_refusal:
                seconds = exact_seconds(model, self.data.inputs)
                self._exact_refusal[key] = (
                    f"an exact run would take about {seconds:.1f} s here (over {EXACT_SECONDS:g} s)"
                    if seconds > EXACT_SECONDS
                    else None
                )

    def run_exact(self, compilation: Compilation) -> tuple[ChipOutputs | None, str | None]:
        """What the chip returns for every sample (core/sim/npu), or None and why not: an op or a form
        the exact interpreter does not run, or a run estimated beyond EXACT_SECONDS."""
        key = structure(compilation)
        if self._exact_refusal.get(key) is not None:  # known before anything is built
            return None, self._exact_refusal[key]
        sim = build_simulation(self.compiler, compilation, fp16_activations=False)
        model = sim.to_proto()  # its constants: this compile's
        self._estimate(key, model)
        refusal = self._exact_refusal[key]
        if refusal is not None:
            return None, refusal
        config = {"FUSE_BIASADD": compilation.settings.fuse_biasadd, "FP16_OUT_OPS": list(self.fp16_outputs)}
        try:
            chip = chip_outputs(model, held_constants(sim, compilation), self.data.inputs, self.outputs, config)
        except ModelError as exc:
            with self.lock:
                self._exact_refusal[key] = f"the exact simulation cannot run this model: {one_line(str(exc))}"
            return None, self._exact_refusal[key]
        return chip, None

    @staticmethod
    def _shaped(arrays: dict[str, np.ndarray], reference: dict[str, np.ndarray]) -> dict[str, np.ndarray] | None:
        """The exact outputs in the float model's shapes (the same elements), as float32; None if not."""
        found = {}
        for name, ref in reference.items():
            value = arrays.get(name)
            if value is None or value.size != ref.size:
                return None
            found[name] = np.asarray(value, dtype=np.float32).reshape(ref.shape)
        return found

    def measure(self, npu: dict[str, np.ndarray]) -> Evaluation:
        reference = self.reference()
        outputs = [OutputMetrics(n, compare(reference[n], npu[n])) for n in self.outputs]
        classifier = next((n for n in self.outputs if reference[n].ndim == 2 and reference[n].shape[1] > 1), None)
        agreement = acc_float = acc_npu = None
        if classifier is not None:
            ref_top, npu_top = reference[classifier].argmax(axis=1), npu[classifier].argmax(axis=1)
            agreement = float(np.mean(ref_top == npu_top))
            if self.data.labels is not None:
                acc_float = float(np.mean(ref_top == self.data.labels))
                acc_npu = float(np.mean(npu_top == self.data.labels))
        return Evaluation(self.data.samples, acc_float, acc_npu, agreement, outputs, classifier=classifier)


def _open_first_axis(graph: onnx.GraphProto) -> set[str]:
    """Inputs whose first axis the model leaves open (symbolic, -1, 0)."""
    found = set()
    for info in graph.input:
        dims = info.type.tensor_type.shape.dim
        if dims and not (dims[0].HasField("dim_value") and dims[0].dim_value > 0):
            found.add(info.name)
    return found


def _range_trouble(reference: dict[str, np.ndarray], npu: dict[str, np.ndarray], outputs: list[str]) -> bool:
    """An NPU output that is not finite, or all zero where the float one is not."""
    for name in outputs:
        got = npu[name]
        if got.dtype.kind != "f":
            continue
        if not np.isfinite(got).all() or (not got.any() and reference[name].any()):
            return True
    return False
