"""What `eval` prints: a table a person reads (worst first) or one JSON document."""

from __future__ import annotations

from typing import Any

from .numbers import db_text, finite_or_none, optional_text, worst_first
from .sim.evaluate import EXACT, FAST, Comparison, Evaluation
from .sim.sensitivity import Sensitivity
from .text import NameCutter, printable, shorten_middle

NAME_MIN = 30  # the name column never gets narrower, however narrow the terminal
OUTPUT_NUMBERS = 31  # the cells after an output's name: " sqnr_db cosine max_abs_err"
SENSITIVITY_NUMBERS = 41  # the cells after a weight's name: " alone accuracy excl_gain fp16_cost B"


def evaluation_json(evaluation: Evaluation, sensitivity: list[Sensitivity] | None) -> dict[str, Any]:
    worst = evaluation.worst
    document: dict[str, Any] = {
        "samples": evaluation.samples,
        "simulation": evaluation.simulation,
        "simulation_note": evaluation.simulation_note,
        "chip_warnings": evaluation.chip_warnings,
        "worst_output": worst.name if worst is not None else None,
        "output_sqnr_db": finite_or_none(evaluation.worst_output_sqnr_db),
        "classifier_output": evaluation.classifier,
        "fp16_issue": evaluation.fp16_issue,
        "accuracy_float": evaluation.accuracy_float,
        "accuracy_npu": evaluation.accuracy_npu,
        "top1_agreement": evaluation.top1_agreement,
        "outputs": [
            {
                "name": o.name,
                "output_sqnr_db": finite_or_none(o.comparison.sqnr_db),
                "cosine": finite_or_none(o.comparison.cosine),
                "max_abs_err": finite_or_none(o.comparison.max_abs_err),
            }
            for o in evaluation.outputs
        ],
    }
    if evaluation.layers is not None:
        document["layer_samples"] = evaluation.layer_samples
        document["layers_simulation"] = FAST
        document["layers"] = [
            {
                "index": layer.index,
                "node": layer.node,
                "op_type": layer.op_type,
                "output": layer.output,
                "weight": layer.weight,
                **_comparison_json(layer.accumulated, "sqnr_db"),
                "drop_db": finite_or_none(layer.drop_db),
                "marked": layer.marked,
                "isolated": _comparison_json(layer.isolated, "sqnr_db") if layer.isolated is not None else None,
            }
            for layer in evaluation.layers
        ]
    if sensitivity is not None:
        document["sensitivity_simulation"] = FAST
        document["sensitivity"] = [
            {
                "weight": s.weight,
                "alone_sqnr_db": finite_or_none(s.alone_sqnr_db),
                "accuracy": s.accuracy,
                "exclude_gain_db": finite_or_none(s.exclude_gain_db),
                "fp16_cost_bytes": s.fp16_cost_bytes,
            }
            for s in sensitivity
        ]
    return document


def _comparison_json(c: Comparison, sqnr_key: str) -> dict[str, Any]:
    return {sqnr_key: finite_or_none(c.sqnr_db), "cosine": finite_or_none(c.cosine), "max_abs_err": finite_or_none(c.max_abs_err)}


def _db(value: float | None) -> str:
    return db_text(value, digits=2, unit="")


def simulation_words(evaluation: Evaluation) -> str:
    """Which simulation the model-level numbers come from, in words."""
    if evaluation.simulation == EXACT:
        return "exact (the chip's own fp16 arithmetic, bit for bit)"
    if evaluation.simulation_note:
        return f"fast (onnxruntime), not exact: {evaluation.simulation_note}"
    return "fast (onnxruntime, each node rounded to fp16)"


def _pct(value: float | None) -> str:
    return optional_text(value, ".2%")


def _comparison(c: Comparison) -> str:
    return f"{_db(c.sqnr_db):>9} {c.cosine:8.4f} {c.max_abs_err:12.5g}"


def _name_column(names: list[str], width: int, numbers: int) -> tuple[int, NameCutter]:
    """The name column's width: what the terminal leaves after the numbers, at least NAME_MIN, at most
    the longest name; and the cutter that keeps the names told apart when they must be cut."""
    longest = max((len(n) for n in names), default=0)
    return max(NAME_MIN, min(longest, width - numbers)), NameCutter(names)


def evaluation_lines(evaluation: Evaluation, sensitivity: list[Sensitivity] | None, source: str, width: int = 80) -> list[str]:
    """`width`: the terminal's columns (COLUMNS): the name columns take what the numbers leave."""
    lines = [f"data: {printable(source)} ({evaluation.samples} samples)"]
    if evaluation.accuracy_float is not None and evaluation.accuracy_npu is not None:
        delta = (evaluation.accuracy_npu - evaluation.accuracy_float) * 100
        versus = "same as float" if delta == 0 else f"{abs(delta):.2f} points {'below' if delta < 0 else 'above'} float"
        lines.append(f"accuracy: float {_pct(evaluation.accuracy_float)}, NPU {_pct(evaluation.accuracy_npu)} ({versus})")
    if evaluation.top1_agreement is not None:
        lines.append(f"top-1 agreement: {_pct(evaluation.top1_agreement)} (output {printable(evaluation.classifier or '')})")
    worst = evaluation.worst
    if worst is not None:
        lines.append(f"worst output: {printable(worst.name)}, SQNR {_db(worst.comparison.sqnr_db)} dB")
    lines.append(f"simulation: {printable(simulation_words(evaluation))}")
    if evaluation.fp16_issue:
        lines.append(f"warning: {printable(evaluation.fp16_issue)}")
    lines.extend(f"warning: {printable(w)}" for w in evaluation.chip_warnings)
    lines.append("")
    outputs = [printable(o.name) for o in evaluation.outputs]
    room, cut = _name_column(outputs, width, OUTPUT_NUMBERS)
    lines.append(f"{'output':{room}} {'sqnr_db':>9} {'cosine':>8} {'max_abs_err':>12}")
    for name, o in zip(outputs, evaluation.outputs):
        lines.append(f"{cut(name, room):{room}} {_comparison(o.comparison)}")
    if evaluation.layers is not None:
        lines.append("")
        if evaluation.layer_samples is not None and evaluation.layer_samples < evaluation.samples:
            lines.append(
                f"layers measured on the first {evaluation.layer_samples} of {evaluation.samples} samples (as many as fit the layer budget)"
            )
        lines.append(
            "layers (fast simulation) in graph order: accumulated = the NPU up to here; isolated = this layer alone, float inputs in;"
        )
        lines.append("drop = how far below its inputs' SQNR a layer falls (exact input = 100 dB); v marks the largest drops")
        lines.append(f"  {'#':>4} {'layer':28} {'op':12} {'accum_db':>9} {'drop_db':>8} {'isol_db':>8}  weight")
        for layer in evaluation.layers:
            drop = f"{layer.drop_db:+.2f}"
            isolated = "-" if layer.isolated is None else _db(layer.isolated.sqnr_db)
            lines.append(
                f"{'v' if layer.marked else ' '} {layer.index:>4} {shorten_middle(printable(layer.node), 28):28} {layer.op_type[:12]:12} "
                f"{_db(layer.accumulated.sqnr_db):>9} {drop:>8} {isolated:>8}  {printable(layer.weight or '')}"
            )
    if sensitivity is not None:
        lines.append("")
        lines.append("sensitivity (fast simulation): each weight alone, and the gain of excluding it")
        weights = {s.weight: printable(s.weight) for s in sensitivity}
        room, cut = _name_column(list(weights.values()), width, SENSITIVITY_NUMBERS)
        lines.append(
            f"{'weight (most sensitive first)':{room}} {'alone dB':>9} {'accuracy':>9} {'excl_gain':>9} {'fp16_cost':>10}"
        )
        for s in sorted(sensitivity, key=lambda s: worst_first(s.alone_sqnr_db)):
            gain = "-" if s.exclude_gain_db is None else f"{s.exclude_gain_db:+.2f}"
            lines.append(
                f"{cut(weights[s.weight], room):{room}} {_db(s.alone_sqnr_db):>9} {_pct(s.accuracy):>9} {gain:>9} {s.fp16_cost_bytes:>8} B"
            )
    return lines
