"""What `compile` prints: the vendor's `-w` lines, the JSON document and the human summary."""

from __future__ import annotations

import zipfile
from typing import IO, Any

import numpy as np

from .config.project import Project
from .kinds import WeightKind
from .quant.compiler import Compilation, WeightResult
from .sim.npu.surprises import graph_surprises
from .text import printable


def weight_lines(compilation: Compilation) -> list[str]:
    """The vendor's `-w` format: `NAME: [d0, d1, ...]` per quantized weight, in model order; for a
    TensorFlow model whose BatchNorms FUSE_BN folds, first gxnpuc's FUSED_BN_OPS block naming them."""
    results = list(compilation.results.values())
    folded = [
        r.weight.bn.labels[1] for r in results if r.plan.fused and r.weight.bn is not None and r.weight.tf_shape is not None
    ]
    lines = ["FUSED_BN_OPS:", *(printable(name) for name in folded), "-" * 40] if folded else []
    return lines + [
        f"{printable(r.weight.name)}: [{', '.join(str(d) for d in r.weight.shown_shape)}]" for r in results if r.plan.quantized
    ]


def weight_record(result: WeightResult) -> dict[str, Any]:
    weight, params, errors = result.weight, result.params, result.errors
    return {
        "name": weight.name,
        "kind": weight.kind,
        "nodes": list(weight.nodes),
        "op_types": list(weight.op_types),
        "shape": list(weight.shape),
        "gxnpuc_shape": list(weight.shown_shape),
        "tf_names": list(weight.tf_names),
        "size": weight.size,
        "origin": weight.origin,
        "folded_from": list(weight.folded_from),
        "quantized": result.plan.quantized,
        "reason": result.plan.reason,
        "fused_bn": result.plan.fused,
        "min": result.range[0],
        "max": result.range[1],
        "nudged_min": params.nudged_min if params else None,
        "nudged_max": params.nudged_max if params else None,
        "scale": params.scale if params else None,
        "zero_point": params.zero_point if params else None,
        "scale_fp16_bits": params.scale_fp16_bits if params else None,
        "offset_fp16_bits": params.offset_fp16_bits if params else None,
        "codes_stored": result.quant.codes_stored if result.quant else None,
        "weight_memory_bytes": result.weight_memory_bytes,
        "sqnr_db": errors.sqnr_db,
        "mse": errors.mse,
        "max_abs_err": errors.max_abs_err,
        "clipped_fraction": errors.clipped_fraction,
        "tail_ratio": result.tail_ratio,
    }


def write_codes(handle: IO[bytes], compilation: Compilation) -> None:
    """An .npz of the uint8 codes of every quantized weight in the weight's own shape, keyed by its name
    (written entry by entry, as np.savez does, so that no weight name can clash with an argument)."""
    with zipfile.ZipFile(handle, "w", zipfile.ZIP_DEFLATED) as archive:
        for result in compilation.results.values():
            if result.quant is not None:
                with archive.open(f"{result.weight.name}.npy", "w", force_zip64=True) as entry:
                    np.lib.format.write_array(entry, result.quant.codes)


def compilation_json(project: Project, compilation: Compilation) -> dict[str, Any]:
    return {
        "model": str(project.config.model_path),
        "config": str(project.config.path),
        "weights": [weight_record(r) for r in compilation.results.values()],
        "weight_memory_bytes": compilation.npu_bytes,
        "fp16_weight_memory_bytes": compilation.fp16_bytes,
        "warnings": [{"code": w.code, "weight": w.weight, "message": w.message} for w in compilation.warnings]
        + [
            {"code": "scalar_first", "weight": None, "message": d.message}
            for d in graph_surprises(project.inventory.model, project.inventory.arrays)
        ],
    }


def summary_lines(project: Project, compilation: Compilation) -> list[str]:
    """A few lines a person reads: what got quantized, what it saves, what to look at."""
    lines = [f"model: {printable(str(project.config.model_path))} ({project.config.corename})"]
    for kind, label in ((WeightKind.FC, "fully-connected"), (WeightKind.CONV, "convolution")):
        results = [r for r in compilation.results.values() if r.weight.kind == kind]
        if not results:
            continue
        done = [r for r in results if r.plan.quantized]
        lines.append(f"{label} weights quantized: {len(done)} of {len(results)}{_reasons(results)}")
    ratio = compilation.npu_bytes / compilation.fp16_bytes if compilation.fp16_bytes else 1.0
    lines.append(
        f"NPU weight memory (Mem6): {compilation.npu_bytes:,} bytes; all fp16 it would be {compilation.fp16_bytes:,} ({ratio:.1%})"
    )
    worst = sorted(
        (r for r in compilation.results.values() if r.plan.quantized and r.errors.sqnr_db is not None),
        key=lambda r: r.errors.sqnr_db or 0.0,
    )[:3]
    if worst:
        lines.append("lowest SQNR: " + ", ".join(f"{printable(r.weight.name)} {r.errors.sqnr_db:.1f} dB" for r in worst))
    lines.extend(f"warning: {printable(w.message)}" for w in compilation.warnings)
    lines.extend(f"warning: {printable(d.message)}" for d in graph_surprises(project.inventory.model, project.inventory.arrays))
    return lines


def _reasons(results: list[WeightResult]) -> str:
    counts: dict[str, int] = {}
    for r in results:
        if r.plan.reason:
            counts[r.plan.reason] = counts.get(r.plan.reason, 0) + 1
    return "" if not counts else " (" + ", ".join(f"{n} {reason}" for reason, n in counts.items()) + ")"
