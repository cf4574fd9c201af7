"""The sensitivity sweep: per weight, the model with only that weight quantized, and the current
config with only that weight excluded.

A what-if run changes one weight, so everything before the weight's first reader is the same in every
run: the graph is cut there (at most MAX_CUTS cuts), the activations at a cut are computed once per
side, and each what-if run starts from them. Cuts are visited in graph order and only the cut in use
and the next one are held, so memory stays at a few cuts' activations whatever the number of weights.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np
import onnx

from ..errors import ModelError
from ..kinds import Reason
from ..model.graph import reads
from ..model.inventory import Weight
from ..numbers import db_gain
from ..quant.compiler import Compiler, WeightResult
from ..quant.plan import WeightPlan, plan_weights
from ..quant.settings import Settings
from .runtime import BoundSession
from .simulation import elem_types, feed_name, fused_bias_name, held_bias_name, weight_feeds
from .suffix import GraphIndex, extract_suffix

if TYPE_CHECKING:
    from onnxruntime import InferenceSession

    from .evaluate import Evaluation, Evaluator, NpuGraph

MAX_CUTS = 16
SIDES = ("only", "current")


class Cancelled(Exception):
    """The caller stopped the sweep; `partial` holds the weights measured before it stopped."""

    def __init__(self, partial: list[Sensitivity] | None = None) -> None:
        super().__init__("cancelled")
        self.partial = partial or []


@dataclass(frozen=True)
class Sensitivity:
    weight: str
    alone_sqnr_db: float | None
    accuracy: float | None
    exclude_gain_db: float | None
    fp16_cost_bytes: int


@dataclass
class CutPlan:
    """Where a graph is cut: each cut's graph-node index and the tensors alive there, in order, and
    the cut each fed tensor's what-if runs start from (None: from the inputs)."""

    cuts: list[tuple[int, frozenset[str]]]
    cut_of: dict[str, int | None]
    types: dict[str, int]


def plan_cuts(model: onnx.ModelProto, feeds: frozenset[str], limit: int = MAX_CUTS) -> CutPlan:
    index = GraphIndex(model.graph)
    fed = {i.name for i in model.graph.input}
    types = elem_types(model)
    starts = {}
    for name in feeds:
        first = index.first_read.get(name, index.first_read.get(feed_name(name)))
        if first is not None:
            starts[name] = first
    chosen = sorted(set(starts.values()))
    if len(chosen) > limit:
        chosen = sorted({chosen[round(i * (len(chosen) - 1) / (limit - 1))] for i in range(limit)})
    static = _static_tensors(model.graph)
    cuts = []
    for at in chosen:
        alive = frozenset(index.live_at(at) - feeds - fed - static)
        if alive and all(types.get(t) for t in alive):  # none alive: the graph's own session runs from the inputs
            cuts.append((at, alive))
    cut_of = {name: max((k for k, (at, _) in enumerate(cuts) if at <= start), default=None) for name, start in starts.items()}
    return CutPlan(cuts, cut_of, types)


def _static_tensors(graph: onnx.GraphProto) -> set[str]:
    """Tensors computed from constants alone (exporters put hundreds of Constant nodes first): a
    suffix recomputes them, which onnxruntime folds away, instead of taking each as an input."""
    static = {t.name for t in graph.initializer}
    for node in graph.node:
        inputs = reads(node)
        if all(i in static for i in inputs) and not node.op_type.startswith("Random"):
            static.update(o for o in node.output if o)
    return static - {i.name for i in graph.input}


class CutSessions:
    """Lean sessions per cut, built once per NPU graph structure and kept for later sweeps.

    `suffix(k)` runs from cut k's tensors to the model's outputs: every what-if run of the weights
    first read at cut k. `segment(k)` runs from cut k (k = -1: the inputs) to the tensors of cut k+1
    that are not alive at cut k yet: it moves a side's activations one cut on, no further.
    """

    def __init__(self, evaluator: Evaluator, graph: NpuGraph) -> None:
        self.evaluator = evaluator
        self.graph = graph
        self.plan = plan_cuts(graph.model, graph.feeds)
        self.suffixes: dict[int, InferenceSession] = {}
        self.segments: dict[int, InferenceSession] = {}

    def tensors(self, k: int) -> frozenset[str]:
        return self.plan.cuts[k][1] if k >= 0 else frozenset()

    def new_at(self, k: int) -> list[str]:
        """Cut k's tensors that cut k-1 does not hold: what segment(k-1) computes."""
        return sorted(self.tensors(k) - self.tensors(k - 1))

    def suffix(self, k: int) -> InferenceSession:
        with self.evaluator.lock:  # two sweeps (the workbench's, a fix search's) build each session once
            if k not in self.suffixes:
                model = extract_suffix(self.graph.model, set(self.tensors(k)), self.plan.types)
                self.suffixes[k] = self.evaluator.session(model, lean=True)
            return self.suffixes[k]

    def segment(self, k: int) -> InferenceSession:
        with self.evaluator.lock:
            if k not in self.segments:
                model = extract_suffix(
                    self.graph.model, set(self.tensors(k)), self.plan.types, self.new_at(k + 1), only_extra=True
                )
                self.segments[k] = self.evaluator.session(model, lean=True)
            return self.segments[k]


def _quantizable(compiler: Compiler, weight: Weight, plan: WeightPlan) -> bool:
    """Whether gxnpuc could quantize the weight at all: what it never compresses (depthwise, one input
    channel) and what it would crash on (no step) have no "alone" number to measure."""
    if weight.never_compressed is not None:
        return False
    try:
        compiler.result(weight, replace(plan, quantized=True, reason=None))
    except ModelError:
        return False
    return True


def sweep(
    evaluator: Evaluator,
    cut_sessions: Callable[[NpuGraph], CutSessions],
    settings: Settings,
    progress: Callable[[int, int], None] | None = None,
    stop: Callable[[], bool] | None = None,
    gains_only: bool = False,
) -> list[Sensitivity]:
    """Raises Cancelled with the weights measured so far when `stop()` turns true or on Ctrl-C;
    `cut_sessions` gives the graph's per-cut sessions (kept by the caller, built once per graph).
    `stop` is asked between two runs, and a run is one pass over one batch of samples. The evaluator's
    lock is held per run, not per sweep: an evaluation (a fix search, the workbench) asked for
    meanwhile runs between two of the sweep's runs instead of after the whole sweep. Every what-if
    run binds all the weights it uses, so the state others leave in a shared binding does not matter.
    With `gains_only` only the "current" side runs (a ranking by exclusion gain: alone_sqnr_db and
    accuracy are None)."""
    sides = ("current",) if gains_only else SIDES
    compiler = evaluator.compiler
    inventory = compiler.inventory
    base = plan_weights(inventory, settings)
    nothing = {n: replace(p, quantized=False, reason=Reason.EXCLUDED) for n, p in base.items()}
    compilations = {"current": compiler.compile_plans(settings, base), "only": compiler.compile_plans(settings, nothing)}
    graph = evaluator.npu_graph(compilations["current"], settings.fp16_activations)
    cuts = cut_sessions(graph)
    side_feeds = {side: weight_feeds(c) for side, c in compilations.items()}
    outputs = list(evaluator.outputs)
    measurable = [w for w in inventory.weights if _quantizable(compiler, w, base[w.name])]
    by_cut = _by_cut(measurable, cuts)
    ticker = _Progress(_runs_in_all(base, measurable, gains_only), progress, stop)
    measured: dict[str, Sensitivity] = {}

    def ordered() -> list[Sensitivity]:
        return [measured[w.name] for w in inventory.weights if w.name in measured]

    def what_if(
        weight: Weight, side: str, bound: BoundSession | None, states: list[dict[str, np.ndarray]] | None, quantized: bool
    ) -> Evaluation | None:
        """The run with `weight` changed; None when it is to be quantized but holds NaN or Inf (the
        config keeps it fp16: the other runs never quantize it, and this one cannot)."""
        ticker.check(ordered)
        plan = replace(base[weight.name], quantized=quantized, reason=None if quantized else Reason.EXCLUDED)
        if quantized and not compiler.finite(weight, plan.fused):
            ticker.step()
            return None
        swaps = _swaps(compiler.result(weight, plan), graph.feeds)
        if bound is None:  # no cut before this weight: from the inputs, every weight fed
            values = evaluator.run(graph.bound, {**side_feeds[side], **swaps})
        else:
            values = _join(evaluator, evaluator.run_parts(bound, swaps, states), outputs)
        found = evaluator.measure(values)
        ticker.step()
        return found

    def measure(
        weights: list[Weight],
        bounds: dict[str, BoundSession | None],
        states: dict[str, list[dict[str, np.ndarray]]] | dict[str, None],
    ) -> None:
        for weight in weights:
            only = None if gains_only else what_if(weight, "only", bounds["only"], states["only"], True)
            gain: float | None = 0.0
            if base[weight.name].quantized:
                excluded = what_if(weight, "current", bounds["current"], states["current"], False)
                gain = db_gain(_sqnr(excluded), current.worst_output_sqnr_db)
            elif base[weight.name].reason == Reason.EXCLUDED:  # what excluding it gained: quantize it back
                included = what_if(weight, "current", bounds["current"], states["current"], True)
                gain = db_gain(current.worst_output_sqnr_db, _sqnr(included))
            cost = compiler.fp16_cost_bytes(weight, base[weight.name])
            if gains_only:
                measured[weight.name] = Sensitivity(weight.name, None, None, gain, cost)
                continue
            accuracy = only.accuracy_npu if only is not None else None
            measured[weight.name] = Sensitivity(weight.name, _sqnr(only), accuracy, gain, cost)

    try:
        current = evaluator.measure(evaluator.run(graph.bound, side_feeds["current"]))
        measure(by_cut.get(None, []), {side: None for side in sides}, {side: None for side in sides})
        runs = len(evaluator.batches.slices())
        states: dict[str, list[dict[str, np.ndarray]]] = {side: [{} for _ in range(runs)] for side in sides}
        for k in range(len(cuts.plan.cuts)):
            new = cuts.new_at(k)
            keep = cuts.tensors(k)
            for side in sides:  # move each side's activations from cut k-1 to cut k; drop the rest
                ticker.check(ordered)
                produced: list[dict[str, np.ndarray]] = [{} for _ in range(runs)]
                if new:
                    stepper = BoundSession(cuts.segment(k - 1), new, side_feeds[side])
                    produced = evaluator.run_parts(stepper, None, states[side])
                states[side] = [
                    {**{t: v for t, v in old.items() if t in keep}, **made} for old, made in zip(states[side], produced)
                ]
            if k in by_cut:
                session = cuts.suffix(k)
                measure(by_cut[k], {side: BoundSession(session, outputs, side_feeds[side]) for side in sides}, states)
    except KeyboardInterrupt:
        raise Cancelled(ordered()) from None
    return ordered()


def _by_cut(weights: list[Weight], cuts: CutSessions) -> dict[int | None, list[Weight]]:
    """The weights grouped by the cut the sweep runs them from (None: from the inputs)."""
    found: dict[int | None, list[Weight]] = {}
    for weight in weights:
        found.setdefault(cuts.plan.cut_of.get(weight.name), []).append(weight)
    return found


def _runs_in_all(base: dict[str, WeightPlan], measurable: list[Weight], gains_only: bool) -> int:
    """The sweep's what-if runs: a quantized or excluded weight's "current" side, and every weight's
    "only" side unless `gains_only`."""
    current = sum(1 for w in measurable if base[w.name].quantized or base[w.name].reason == Reason.EXCLUDED)
    return current if gains_only else current + len(measurable)


class _Progress:
    """Counts runs, reports them, and stops the sweep between two runs when asked."""

    def __init__(self, total: int, report: Callable[[int, int], None] | None, stop: Callable[[], bool] | None) -> None:
        self.total, self.report, self.stop, self.done = total, report, stop, 0

    def check(self, partial: Callable[[], list[Sensitivity]]) -> None:
        if self.stop is not None and self.stop():
            raise Cancelled(partial())

    def step(self) -> None:
        self.done += 1
        if self.report is not None:
            self.report(self.done, self.total)


def _join(evaluator: Evaluator, parts: list[dict[str, np.ndarray]], names: list[str]) -> dict[str, np.ndarray]:
    return {n: evaluator.batches.join([p[n] for p in parts]) for n in names}


def _swaps(result: WeightResult, feeds: frozenset[str]) -> dict[str, np.ndarray]:
    """The feeds one what-if run changes: the weight, its fused bias, its FUSE_BIASADD bias."""
    changed = {feed_name(result.weight.name): result.simulated}
    bn = result.weight.bn
    if result.plan.fused and bn is not None and result.fused_bias is not None and fused_bias_name(bn) in feeds:
        changed[feed_name(fused_bias_name(bn))] = result.fused_bias
    if result.bias_held is not None and held_bias_name(result) in feeds:
        changed[feed_name(held_bias_name(result))] = result.bias_held
    return changed


def _sqnr(evaluation: Evaluation | None) -> float | None:
    """The worst output's SQNR; a weight that cannot be quantized (None) ruins the output: -inf."""
    return -math.inf if evaluation is None else evaluation.worst_output_sqnr_db
