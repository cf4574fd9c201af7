"""What a model's numbers are built from, cached per evaluator: the per-layer analysis, the sweep's
per-cut sessions, and the fp16 diagnosis that reads every layer's float values.

The evaluator below only runs sessions and measures; this module sits above it, the layer analysis and
the sweep, so that none of them imports another in a circle. The CLI, the workbench and the fix search
ask an `Analysis` for evaluations, layers and sensitivities.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import onnx

from ..model.graph import node_label
from ..quant.compiler import Compilation
from ..quant.fp16 import FP16_MAX, FP16_SMALLEST_SUBNORMAL
from ..quant.settings import Settings
from .evaluate import Evaluation, Evaluator, NpuGraph
from .layers import LayerAnalysis
from .sensitivity import CutSessions, Sensitivity, sweep
from .simulation import elem_types

ZERO_SENSITIVE = {"Log": (0,), "Reciprocal": (0,), "Div": (1,), "Pow": (0,), "Sqrt": (0,)}  # input positions


class Analysis:
    """One evaluator with the analyses built on it, each built the first time it is asked for."""

    def __init__(self, evaluator: Evaluator) -> None:
        self.evaluator = evaluator
        self._layers: LayerAnalysis | None = None
        self._cuts: dict[int, tuple[NpuGraph, CutSessions]] = {}  # by the graph's id; the graph kept alive

    def layer_analysis(self) -> LayerAnalysis:
        """Per-layer error, its float values computed the first time they are asked for."""
        with self.evaluator.lock:  # a fix search measures its start exactly on a thread of its own
            if self._layers is None:
                self._layers = LayerAnalysis(self.evaluator)
        return self._layers

    def cut_sessions(self, graph: NpuGraph) -> CutSessions:
        """The sweep's per-cut sessions of an NPU graph, planned the first time a sweep needs them."""
        with self.evaluator.lock:
            entry = self._cuts.get(id(graph))
            if entry is None:
                entry = (graph, CutSessions(self.evaluator, graph))
                self._cuts[id(graph)] = entry
            return entry[1]

    def evaluate(
        self, compilation: Compilation, fp16_activations: bool = True, layers: bool = False, exact: bool = False
    ) -> Evaluation:
        """The evaluator's numbers (from the chip's arithmetic with `exact`), with the layers when asked
        (always the fast simulation) and, when an output is not finite or lost to zero and the chip has
        not said why, what in fp16 caused it."""
        evaluation = self.evaluator.evaluate(compilation, fp16_activations, exact=exact)
        if layers:
            analysis = self.layer_analysis()
            evaluation.layers = analysis.layers(compilation, fp16_activations)
            evaluation.layer_samples = analysis.samples
        if evaluation.range_trouble and evaluation.fp16_issue is None:
            culprit = self.fp16_culprit() if fp16_activations else None
            for code, what in (("fp16_overflow", "overflow"), ("fp16_underflow", "underflow")):
                constants = [w.message for w in compilation.warnings if w.code == code]
                if culprit is None and constants:
                    culprit = f"fp16 {what} in a constant: {constants[0]}"
            evaluation.fp16_issue = culprit
        return evaluation

    def sensitivity(
        self,
        settings: Settings,
        progress: Callable[[int, int], None] | None = None,
        stop: Callable[[], bool] | None = None,
        gains_only: bool = False,
    ) -> list[Sensitivity]:
        """Per weight: the model with only it quantized, and the current config with only it excluded
        (with `gains_only`, the second alone: half the runs, for a ranking). Cancelled carries the
        weights measured so far."""
        return sweep(self.evaluator, self.cut_sessions, settings, progress, stop, gains_only)

    def fp16_culprit(self) -> str | None:
        """The first node whose float output fp16 cannot hold on this data: finite values beyond
        ±65504 (inf on the NPU; an infinity the float model makes itself, such as a Pad's -inf, is
        no overflow), values all below 2^-24 (flushed to 0), or values fp16 flushes to 0 where a Log,
        Div, Pow, Sqrt or Reciprocal reads them (log(0) = -inf: an epsilon lost in fp16)."""
        model = self.evaluator.compiler.inventory.model
        readers = _zero_sensitive_readers(model.graph)
        types = elem_types(model)
        produced = [
            (node_label(node), node.op_type, out)
            for node in model.graph.node
            if node.op_type != "Constant"
            for out in node.output
            if out and types.get(out) == onnx.TensorProto.FLOAT
        ]  # the model's outputs too: a last node can overflow
        peaks, tinies = self._float_extremes({out for _, _, out in produced}, set(readers))
        for node, op, out in produced:
            if out not in peaks:
                continue
            peak = peaks[out]
            if peak > FP16_MAX:
                return f"fp16 overflow: node {node!r} ({op}) reaches {peak:.4g}, beyond ±{FP16_MAX:g}, on this data"
            if 0 < peak < FP16_SMALLEST_SUBNORMAL:
                return f"fp16 underflow: node {node!r} ({op}) output is at most {peak:.3g}, which fp16 flushes to 0"
            reader = readers.get(out)
            if reader is not None:
                tiny = tinies[out]
                if math.isfinite(tiny):
                    return (
                        f"fp16 underflow: node {node!r} ({op}) makes values down to {tiny:.3g}, which fp16 flushes to 0, "
                        f"and node {reader[0]!r} ({reader[1]}) reads them"
                    )
        return None

    def _float_extremes(self, names: set[str], read: set[str]) -> tuple[dict[str, float], dict[str, float]]:
        """Over the layer samples, run by run and none kept: each named tensor's largest finite
        magnitude, and for those in `read` the smallest nonzero magnitude fp16 flushes to 0 (inf:
        none); a tensor with no value in any run (empty, or not computed) is in neither."""
        peaks: dict[str, float] = {}
        tinies: dict[str, float] = {}
        for part in self.layer_analysis().each_float_part():
            for name in names:
                values = part.get(name)
                if values is None or not values.size:
                    continue
                peaks[name] = max(peaks.get(name, 0.0), _finite_peak(values))
                if name in read:
                    tinies[name] = min(tinies.get(name, math.inf), _smallest_flushed(values))
        return peaks, tinies


def _zero_sensitive_readers(graph: onnx.GraphProto) -> dict[str, tuple[str, str]]:
    """Tensor -> (node, op) of the first node that a 0 in it sends to inf or NaN (log, a divisor, a
    root, a power's base), in graph order."""
    found: dict[str, tuple[str, str]] = {}
    for node in graph.node:
        for index in ZERO_SENSITIVE.get(node.op_type, ()):
            if index < len(node.input) and node.input[index]:
                found.setdefault(node.input[index], (node_label(node), node.op_type))
    return found


def _finite_peak(values: np.ndarray) -> float:
    """The largest finite magnitude: an infinity the float model makes is not one fp16 makes."""
    magnitude = np.abs(values)
    finite = magnitude[np.isfinite(magnitude)]
    return float(finite.max()) if finite.size else 0.0


def _smallest_flushed(values: np.ndarray) -> float:
    """The smallest nonzero magnitude that fp16 rounds to 0, or inf when there is none."""
    magnitude = np.abs(values)
    with np.errstate(over="ignore"):
        flushed = (magnitude > 0) & (magnitude.astype(np.float16) == 0)
    return float(magnitude[flushed].min()) if flushed.any() else math.inf
