"""What the chip returns for a compiled model: the exact interpreter with the config's output rules,
in the layout the rest of npu-tui uses (samples first, one inference's batch axis of 1 folded in)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import onnx

from .arith import fp32_output
from .interpreter import Diagnostic, run_exact, samples_first, with_held_weights


@dataclass
class ChipOutputs:
    """Per output name: float32 (the format op), or float16 for FP16_OUT_OPS; and the diagnoses."""

    arrays: dict[str, np.ndarray]
    diagnostics: list[Diagnostic]


def chip_outputs(
    model: onnx.ModelProto,
    held: Mapping[str, np.ndarray],
    feeds: Mapping[str, np.ndarray],
    output_names: Sequence[str],
    config: Mapping[str, object],
    vendor_inputs: bool = False,
) -> ChipOutputs:
    """Run `model` (the simulation graph without fp16 casts) with the weights the NPU holds (`held`, by
    initializer name), FUSE_BIASADD and FP16_OUT_OPS as `config` (config.yaml's keys) sets them; inputs
    to fp16 by IEEE rounding, or as the SDK's test_mnist.c converts them (`vendor_inputs`)."""
    fp16_names = set(config.get("FP16_OUT_OPS") or [])  # type: ignore[call-overload]
    run = run_exact(
        with_held_weights(model, dict(held)),
        dict(feeds),
        output_names,
        fuse_biasadd=config.get("FUSE_BIASADD") is True,
        vendor_inputs=vendor_inputs,
    )
    arrays = {name: samples_first(value if name in fp16_names else fp32_output(value)) for name, value in run.values.items()}
    return ChipOutputs(arrays, run.diagnostics)
