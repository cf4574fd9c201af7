"""A written simulation model is checked before anyone is told it is there: onnx.checker, then one
load by onnxruntime where it is installed. A refusal is npu-tui's bug when the user's own model
passes the same check, and only worth a warning when it does not.

Both checks first run on the graph with its large weights turned into graph inputs of the same type
and shape: that is what they judge (ops, types, shapes), and it costs milliseconds where the file,
reread, costs a parse and a copy of every weight (0.3 s on 100 MB). Only a graph that fails that way
is checked again as written, so a constant an op needs in place can never cause a false alarm.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path

import onnx

from ..errors import InternalError
from ..text import one_line
from .runtime import SessionFactory
from .simulation import SimModel

WEIGHT_INPUT_ELEMENTS = 4096  # constants from this size on are checked as graph inputs; smaller ones keep their values


def check_simulation(sim: SimModel, written: Path, original: Path) -> list[str]:
    """Warnings for checks the original model fails too; raises InternalError (and removes the
    file) when only the simulation fails."""
    warnings = []
    weightless = sim.weights_as_inputs(WEIGHT_INPUT_ELEMENTS)
    checks: list[tuple[str, Callable[[onnx.ModelProto | Path], str | None]]] = [("onnx.checker", _checker)]
    if importlib.util.find_spec("onnxruntime") is not None:
        checks.append(("onnxruntime", _runtime))
    for name, check in checks:
        if check(weightless) is None:
            continue
        problem = check(written)
        if problem is None:
            continue
        if check(original) is None:
            written.unlink(missing_ok=True)
            raise InternalError(
                f"--sim {written}: {name} refuses the simulation npu-tui built, though it accepts the model: {problem}"
            )
        warnings.append(f"--sim {written}: {name} refuses the model as given, and so the simulation: {problem}")
    return warnings


def _checker(model: onnx.ModelProto | Path) -> str | None:
    try:
        onnx.checker.check_model(model if isinstance(model, onnx.ModelProto) else str(model))
    except Exception as exc:  # noqa: BLE001 - the checker raises several classes
        return one_line(str(exc))
    return None


def _runtime(model: onnx.ModelProto | Path) -> str | None:
    try:
        SessionFactory().build(model if isinstance(model, onnx.ModelProto) else str(model))
    except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own classes
        return one_line(str(exc))
    return None
