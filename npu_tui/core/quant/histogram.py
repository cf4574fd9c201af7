"""Weight histograms: the counts the workbench draws, and the JPEG files `compile -s` writes."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..safe_files import atomic_write
from ..text import MAX_GXNPUC_STEM, file_stem, gxnpuc_stem, printable
from .compiler import Compilation, Compiler, WeightResult

DEFAULT_BINS = 128
INDEX_FILE = "index.json"


@dataclass(frozen=True)
class Histogram:
    counts: np.ndarray
    edges: np.ndarray


def histogram(w: np.ndarray, bins: int = DEFAULT_BINS) -> Histogram:
    """Counts over the weight's own range, so long tails show as sparse bins far from the bulk.
    NaN and Inf values have no place on the axis and are left out."""
    flat = w.reshape(-1)
    if not np.isfinite(flat).all():
        flat = flat[np.isfinite(flat)]
    lo, hi = (float(flat.min()), float(flat.max())) if flat.size else (0.0, 0.0)
    if lo == hi:
        lo, hi = lo - 0.5, hi + 0.5
    counts, edges = np.histogram(flat, bins=bins, range=(lo, hi))
    return Histogram(counts, edges)


def write_jpegs(
    compiler: Compiler, compilation: Compilation, folder: Path, progress: Callable[[int, int], None] | None = None
) -> list[Path]:
    """One JPEG per quantized weight, like the vendor's `npu_jpgs/`, plus an index of file -> weight."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    index: dict[str, str] = {}
    written = []
    quantized = [r for r in compilation.results.values() if r.plan.quantized]
    for number, result in enumerate(quantized, start=1):
        file_name = _file_name(number, result.weight.name, compiler.inventory.tensorflow, index)
        reference, _ = compiler.reference(result.weight, result.plan.fused)
        figure = _figure(plt, result, reference)
        with atomic_write(folder / file_name) as handle:  # a link planted in the folder is replaced, not followed
            figure.savefig(handle, format="jpg", dpi=80)
        plt.close(figure)
        index[file_name] = result.weight.name
        written.append(folder / file_name)
        if progress is not None:
            progress(number, len(quantized))
    with atomic_write(folder / INDEX_FILE, "w", encoding="utf-8") as handle:
        handle.write(json.dumps(index, indent=1) + "\n")
    return written


def _file_name(number: int, name: str, tensorflow: bool, taken: dict[str, str]) -> str:
    """gxnpuc's own file name for a TensorFlow model's weight (what the user's scripts look for), unless two
    weights would share it or it is too long; else the numbered, file-safe one."""
    if tensorflow:
        stem = gxnpuc_stem(name)
        if len(stem) <= MAX_GXNPUC_STEM and f"{stem}.jpg" not in taken and f"{stem}.jpg" != INDEX_FILE:
            return f"{stem}.jpg"
    return f"{number:04d}_{file_stem(name)}.jpg"


def _figure(plt: Any, result: WeightResult, w: np.ndarray) -> Any:  # matplotlib.pyplot and its Figure, imported lazily
    hist = histogram(w)
    params = result.params
    figure, axis = plt.subplots(figsize=(8, 4.5))
    centers = (hist.edges[:-1] + hist.edges[1:]) / 2
    width = hist.edges[1] - hist.edges[0]
    axis.bar(centers, hist.counts, width=width, color="#4477aa", label="float weights")
    axis.set_yscale("log")
    lo, hi = result.range
    axis.axvline(lo, color="#228833", linestyle="--", label=f"range [{lo:.4g}, {hi:.4g}]")
    axis.axvline(hi, color="#228833", linestyle="--")
    if params is not None:
        nlo, nhi = params.nudged_min, params.nudged_max
        axis.axvline(nlo, color="#ee6677", label=f"nudged [{nlo:.4g}, {nhi:.4g}]")
        axis.axvline(nhi, color="#ee6677")
        left, right = hist.edges[0], hist.edges[-1]
        if left < nlo:
            axis.axvspan(left, nlo, color="#ee6677", alpha=0.15, label="clipped")
        if right > nhi:
            axis.axvspan(nhi, right, color="#ee6677", alpha=0.15, label=None if left < nlo else "clipped")
    sqnr = result.errors.sqnr_db
    parts = [f"SQNR {sqnr:.1f} dB" if sqnr is not None else "exact", f"clipped {result.errors.clipped_fraction:.3%}"]
    if result.tail_ratio is not None:
        parts.append(f"tail ratio {result.tail_ratio:.2f}")
    name = printable(result.weight.name).replace("$", r"\$")
    axis.set_title(f"{name}  shape {list(result.weight.shape)}\n" + ", ".join(parts), fontsize=9)
    axis.set_xlabel("weight value")
    axis.set_ylabel("count (log)")
    axis.legend(fontsize=8)
    figure.tight_layout()
    return figure
