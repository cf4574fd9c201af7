"""Compile a model under Settings: fuse, quantize and measure every weight, redoing only what changed.

Results are cached per (weight, quantized, reason, range, fusion), so the workbench can flip one switch and
recompile in the time it takes to quantize the weights that switch touches. The reason is part of the
key: an excluded weight and one its switch keeps fp16 hold the same numbers but show different states.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field, replace

import numpy as np

from npu_tui.core.quant import batchnorm, memory
from npu_tui.core.quant.gxnpuc import GxnpucQuant
from npu_tui.core.quant.gxnpuc import quantize as gxnpuc_quantize
from npu_tui.core.quant.layout import padded_size

from ..errors import ModelError
from ..model.inventory import BnSite, Inventory, Weight
from .fp16 import FP16_MAX, FP16_MIN_NORMAL, compiler_fp16
from .fusion import fuse_bn
from .metrics import ErrorMetrics, error_metrics, tail_ratio
from .plan import WeightPlan, plan_weights
from .quantize import QuantParams, auto_range, params_of, to_fp16
from .settings import Settings

RESULTS_KEPT_PER_WEIGHT = 4
OVERFLOW_MESSAGE = "{name}: values beyond ±" + f"{FP16_MAX:g}" + " do not fit fp16 (the NPU reads inf or NaN)"


@dataclass(frozen=True)
class CompileWarning:
    """Something the user should see; `weight` is None for model-wide warnings."""

    code: str
    weight: str | None
    message: str


@dataclass(frozen=True)
class WeightResult:
    """One weight as the NPU will hold it, and how far that is from float."""

    weight: Weight
    plan: WeightPlan
    range: tuple[float, float]
    extent: tuple[float, float]
    params: QuantParams | None
    simulated: np.ndarray
    fused_bias: np.ndarray | None
    errors: ErrorMetrics
    tail_ratio: float | None
    quant: GxnpucQuant | None = None  # the codes and their count, when quantized
    bias_held: np.ndarray | None = None  # FUSE_BIASADD: the bias as the chip holds it (its codes' values, or fp16)
    warnings: tuple[CompileWarning, ...] = ()

    @property
    def weight_memory_bytes(self) -> int:
        """What the weight takes in the chip's weight memory (Mem6), compressed or fp16 (quant/memory.py)."""
        if self.quant is not None:
            return memory.compressed_bytes(self.quant.padded, self.quant.codes_stored)
        return fp16_weight_bytes(self.weight)


def _bias_entry(result: WeightResult) -> str:
    """The name the weight's bias is counted under in the stored constants."""
    bn = result.weight.bn
    if result.plan.fused and bn is not None:
        return bn.bias or f"{result.weight.name}:fused_bias"
    return str(result.weight.bias)


def fp16_weight_bytes(weight: Weight) -> int:
    """The weight stored fp16: every padded element of its tiles; a depthwise kernel unpadded."""
    if weight.group > 1:
        return memory.fp16_bytes(weight.size)
    return memory.fp16_matrix_bytes(weight.matrix)


@dataclass
class Compilation:
    """Everything a compile produced; the sizes follow SPEC section 7."""

    settings: Settings
    plans: dict[str, WeightPlan]
    results: dict[str, WeightResult]
    fp16_bytes: int
    npu_bytes: int
    warnings: list[CompileWarning] = field(default_factory=list)


class Compiler:
    """Holds one model's inventory and the caches that make recompiling cheap."""

    def __init__(self, inventory: Inventory) -> None:
        self.inventory = inventory
        self._references: dict[tuple[str, bool], tuple[np.ndarray, np.ndarray | None]] = {}
        self._tails: dict[tuple[str, bool], float | None] = {}
        self._extents: dict[tuple[str, bool], tuple[float, float]] = {}
        self._results: dict[str, OrderedDict[tuple, WeightResult]] = {}
        self._fp16: dict[str, np.ndarray] = {}
        self._constant_warning_list: list[CompileWarning] | None = None
        self._lock = threading.RLock()  # the workbench compiles on its UI thread and in a worker

    def compile(self, settings: Settings) -> Compilation:
        return self.compile_plans(settings, plan_weights(self.inventory, settings))

    def compile_plans(self, settings: Settings, plans: dict[str, WeightPlan]) -> Compilation:
        """Compile with a decision per weight given directly (what-if runs such as sensitivity)."""
        results = {w.name: self.result(w, plans[w.name]) for w in self.inventory.weights}
        fp16_bytes, npu_bytes = self._sizes(results)
        warnings = [w for r in results.values() for w in r.warnings]
        folded = {
            name for r in results.values() if r.plan.fused and r.weight.bn is not None for name in _bn_constants(r.weight.bn)
        }
        warnings += [w for w in self._constant_warnings(set(results)) if w.weight not in folded]  # never stored
        return Compilation(settings, plans, results, fp16_bytes, npu_bytes, warnings)

    def reference(self, weight: Weight, fused: bool) -> tuple[np.ndarray, np.ndarray | None]:
        """The float weight that gets quantized (BN folded in when fused), and its fused bias."""
        key = (weight.name, fused)
        if key not in self._references:
            arrays = self.inventory.arrays
            w = arrays[weight.name]
            bias = None
            if fused and weight.bn is not None:
                bn = weight.bn
                conv_bias = arrays[bn.bias] if bn.bias else None
                w, bias = fuse_bn(w, conv_bias, arrays[bn.scale], arrays[bn.offset], arrays[bn.mean], arrays[bn.var], bn.epsilon)
            self._references[key] = (w, bias)
        return self._references[key]

    def result(self, weight: Weight, plan: WeightPlan) -> WeightResult:
        """The weight under `plan`, from the cache when nothing it depends on changed."""
        with self._lock:
            return self._result(weight, plan)

    def _result(self, weight: Weight, plan: WeightPlan) -> WeightResult:
        key = (plan.quantized, plan.reason, plan.range, plan.fused, plan.fuse_bias)
        cached = self._results.setdefault(weight.name, OrderedDict())
        if key in cached:
            cached.move_to_end(key)
            return cached[key]
        w, bias = self.reference(weight, plan.fused)
        lo, hi = self.extent(weight, plan.fused, w)
        quant, params = None, None
        rng = auto_range(lo, hi, padded_size(weight.matrix) > weight.size)
        if plan.quantized:
            where = f"{self.inventory.path}: weight {weight.name!r}"
            joined = self._fused_bias_values(weight, plan, bias)
            quant = gxnpuc_quantize(w, plan.range, joined, name=where, matrix=weight.matrix, extent=(lo, hi))
            rng = quant.range
            params = params_of(*rng, quant.params)
            simulated = quant.dequantized
        else:
            simulated = to_fp16(w)
        bias_held = self._bias_held(weight, plan, bias, quant)
        result = WeightResult(
            weight=weight,
            plan=plan,
            range=rng,
            extent=(lo, hi),
            params=params,
            simulated=simulated,
            fused_bias=to_fp16(bias) if bias is not None else None,
            errors=quant.errors.metrics(w.size, quant.saturated) if quant else error_metrics(w, simulated),
            tail_ratio=self.tail(weight, plan.fused, w),
            quant=quant,
            bias_held=bias_held,
        )
        result = replace(result, warnings=tuple(_weight_warnings(result, w)))
        cached[key] = result
        while len(cached) > RESULTS_KEPT_PER_WEIGHT:
            cached.popitem(last=False)
        return result

    def _fused_bias_values(self, weight: Weight, plan: WeightPlan, bn_bias: np.ndarray | None) -> np.ndarray | None:
        """The bias FUSE_BIASADD puts into the weight's block: the fused BatchNorm's, else its own."""
        if not plan.fuse_bias or weight.bias is None:
            return None
        return bn_bias if bn_bias is not None else self.inventory.arrays[weight.bias]

    def _bias_held(
        self, weight: Weight, plan: WeightPlan, bn_bias: np.ndarray | None, quant: GxnpucQuant | None
    ) -> np.ndarray | None:
        """With FUSE_BIASADD, the bias in its own tensor's shape: dequantized from its codes when the weight
        is quantized, stored fp16 when not (so the set of biases held never depends on a weight's switch)."""
        values = self._fused_bias_values(weight, plan, bn_bias)
        if values is None:
            return None
        held = quant.bias_dequantized if quant is not None and quant.bias_dequantized is not None else to_fp16(values)
        return held.reshape(values.shape)

    def fp16_cost_bytes(self, weight: Weight, plan: WeightPlan) -> int:
        """The bytes keeping the weight fp16 costs over compressing it (with its plan's range and fusion);
        0 for a weight gxnpuc never compresses or cannot quantize."""
        if weight.never_compressed is not None:
            return 0
        try:
            compressed = self.result(weight, replace(plan, quantized=True, reason=None))
        except ModelError:
            return 0
        return fp16_weight_bytes(weight) - compressed.weight_memory_bytes

    def extent(self, weight: Weight, fused: bool, w: np.ndarray) -> tuple[float, float]:
        """The weight's smallest and largest value (NaN or Inf show up here too)."""
        key = (weight.name, fused)
        if key not in self._extents:
            self._extents[key] = (float(w.min()), float(w.max())) if w.size else (0.0, 0.0)
        return self._extents[key]

    def finite(self, weight: Weight, fused: bool) -> bool:
        """Whether the weight (BN folded in when fused) holds only finite values: only then can it be quantized."""
        lo, hi = self.extent(weight, fused, self.reference(weight, fused)[0])
        return bool(np.isfinite(lo) and np.isfinite(hi))

    def tail(self, weight: Weight, fused: bool, w: np.ndarray) -> float | None:
        key = (weight.name, fused)
        if key not in self._tails:
            self._tails[key] = tail_ratio(w, self.extent(weight, fused, w))
        return self._tails[key]

    def fp16(self, name: str) -> np.ndarray:
        """A constant that is not a weight, as the NPU stores it: rounded to fp16."""
        if name not in self._fp16:
            self._fp16[name] = to_fp16(self.inventory.arrays[name])
        return self._fp16[name]

    def _sizes(self, results: dict[str, WeightResult]) -> tuple[int, int]:
        """(fp16_weight_memory_bytes, weight_memory_bytes): every weight as it is stored, plus the
        constants the NPU keeps fp16 (biases, BN multiplier and addend, a fused bias)."""
        stored = dict(self.inventory.stored)
        for result in results.values():
            bn = result.weight.bn
            if result.plan.fused and bn is not None:
                for name in _bn_constants(bn):
                    stored.pop(name, None)
                if bn.bias is None and result.fused_bias is not None:
                    stored[f"{result.weight.name}:fused_bias"] = result.fused_bias.size
        for name, result in results.items():
            stored.pop(name, None)
            if result.quant is not None and result.quant.bias_codes is not None:  # FUSE_BIASADD: inside the block
                stored.pop(_bias_entry(result), None)
        constants = memory.fp16_bytes(sum(stored.values()) + sum(self.inventory.stored_ints.values()))
        fp16_bytes = constants + sum(fp16_weight_bytes(r.weight) for r in results.values())
        return fp16_bytes, constants + sum(r.weight_memory_bytes for r in results.values())

    def _constant_warnings(self, weights: set[str]) -> list[CompileWarning]:
        if self._constant_warning_list is not None:
            return self._constant_warning_list
        held = batchnorm.stored_values(self.inventory)
        warnings = _batchnorm_warnings(held)
        for name in self.inventory.stored:
            if name in weights or name in held:
                continue
            values, original = self.fp16(name), self.inventory.arrays[name]
            if not np.isfinite(values).all() and np.isfinite(original).all():
                warnings.append(CompileWarning("fp16_overflow", name, OVERFLOW_MESSAGE.format(name=name)))
            if original.dtype.kind == "f" and original.size:
                lost = _all_flushed(name, float(np.max(np.abs(original))) if np.isfinite(original).all() else 0.0)
                warnings += [lost] if lost else []
        self._constant_warning_list = warnings
        return warnings


def _batchnorm_warnings(held: dict[str, list[tuple[str, np.ndarray]]]) -> list[CompileWarning]:
    """An unfolded BatchNormalization's multiplier or addend that fp16 cannot hold, under the scale's or the
    bias's name (where gxnpuc stores it); its variance is never stored, so it never overflows."""
    warnings = []
    for name, stored in held.items():
        for what, values in stored:
            finite = values[np.isfinite(values)]
            peak = float(np.max(np.abs(finite))) if finite.size else 0.0
            if not np.isfinite(compiler_fp16(values)).all():
                shown = f"{peak:.6g}" if finite.size == values.size else "inf or NaN"
                message = f"{name}: the BatchNormalization's {what} stored in its place reaches {shown}, beyond ±{FP16_MAX:g} (the NPU reads inf or NaN)"
                warnings.append(CompileWarning("fp16_overflow", name, message))
            lost = _all_flushed(name, peak)
            warnings += [lost] if lost else []
    return warnings


def _all_flushed(name: str, peak: float) -> CompileWarning | None:
    """A constant whose every nonzero value fp16 rounds to 0 (an epsilon of 1e-10) is lost on the NPU."""
    if 0 < peak < FP16_MIN_NORMAL and np.float16(peak) == 0:
        return CompileWarning("fp16_underflow", name, f"{name}: its values (at most {peak:.3g}) all become 0 in fp16")
    return None


def _bn_constants(bn: BnSite) -> tuple[str, ...]:
    """The BatchNormalization's own constants: folded into the weight, they are not stored."""
    return (bn.scale, bn.offset, bn.mean, bn.var)


def _weight_warnings(result: WeightResult, w: np.ndarray) -> list[CompileWarning]:
    name, plan, params, quant = result.weight.name, result.plan, result.params, result.quant
    warnings = []
    if params is not None and quant is not None:
        lo, hi = result.range
        grid = f"[{params.nudged_min:.6g}, {params.nudged_max:.6g}]"
        if lo > 0 or hi < 0:
            source = (
                f"WEIGHT_MIN_MAX [{lo:g}, {hi:g}]" if plan.range is not None else f"its range [{lo:.6g}, {hi:.6g}] (no padding)"
            )
            end, code = (params.nudged_max, 255) if lo > 0 else (params.nudged_min, 0)
            stuck = int(np.count_nonzero(quant.codes == code))
            warnings.append(
                CompileWarning(
                    "nudge_shift",
                    name,
                    f"{name}: {source} does not contain 0; the nudge shifts the grid to {grid} while values are "
                    f"clipped to [{lo:.6g}, {hi:.6g}]: {stuck:,} of {result.weight.size:,} values are stuck at {end:.6g}",
                )
            )
        if quant.saturated:
            warnings.append(
                CompileWarning(
                    "saturation",
                    name,
                    f"{name}: {quant.saturated:,} of {result.weight.size:,} values ({result.errors.clipped_fraction:.2%}) "
                    f"lie outside {grid} and saturate",
                )
            )
    if params is not None and params.scale < FP16_MIN_NORMAL:
        warnings.append(
            CompileWarning(
                "fp16_scale",
                name,
                f"{name}: scale {params.scale:.3g} is below fp16's normal range; the stored scale loses precision",
            )
        )
    if params is not None:
        overflow = not np.isfinite([params.nudged_min, params.nudged_max]).all()
    elif np.isfinite(result.extent).all():
        peak = max(abs(result.extent[0]), abs(result.extent[1]))
        overflow = not np.isfinite(np.float16(peak))
        lost = _all_flushed(name, peak)
        warnings += [lost] if lost else []
    else:  # NaN or Inf in the float weight itself: only finite values that fp16 makes inf overflow
        overflow = bool((~np.isfinite(result.simulated) & np.isfinite(w)).any())
        warnings.append(
            CompileWarning(
                "non_finite", name, f"{name}: holds NaN or Inf in the model; kept fp16, they stay NaN or Inf on the NPU"
            )
        )
    if result.fused_bias is not None:
        overflow = overflow or not np.isfinite(result.fused_bias).all()
    if overflow:
        warnings.append(CompileWarning("fp16_overflow", name, OVERFLOW_MESSAGE.format(name=name)))
    return warnings
