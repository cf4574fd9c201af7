"""A written simulation model is checked before anyone is told it is there: onnx.checker, then one
load by onnxruntime where it is installed. A refusal is npu-tui's bug when the user's own model
passes the same check, and only worth a warning when it does not."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import onnx

from ..errors import InternalError
from ..text import one_line
from .runtime import SessionFactory


def check_simulation(written: Path, original: Path) -> list[str]:
    """Warnings for checks the original model fails too; raises InternalError (and removes the
    file) when only the simulation fails."""
    warnings = []
    for name, check in (("onnx.checker", _checker), ("onnxruntime", _runtime)):
        if check is _runtime and importlib.util.find_spec("onnxruntime") is None:
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


def _checker(path: Path) -> str | None:
    try:
        onnx.checker.check_model(str(path))
    except Exception as exc:  # noqa: BLE001 - the checker raises several classes
        return one_line(str(exc))
    return None


def _runtime(path: Path) -> str | None:
    try:
        SessionFactory().build(str(path))
    except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own classes
        return one_line(str(exc))
    return None
