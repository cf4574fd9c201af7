"""The workbench's state without any UI: the settings being edited, undo and redo, the current
compilation, the last evaluation and whether it is stale, and saving. The TUI drives this object."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import NamedTuple

from .config.project import Project
from .config.writer import check_writable, config_diff, read_config_text, render_config, save_config
from .errors import ConfigError, ModelError, UserError
from .numbers import worst_first
from .quant import edits
from .quant.compiler import Compilation, WeightResult
from .quant.histogram import Histogram, histogram
from .quant.plan import NameWarning, check_names
from .quant.ranges import bulk_range, clip_range, mse_optimal_range
from .quant.settings import RANGES_KEY, SWITCH_FIELDS, Settings, range_problem
from .safe_files import atomic_write
from .sim.analysis import Analysis
from .sim.eval_data import EvalData
from .sim.evaluate import Evaluation, Evaluator, Layer
from .sim.npu.surprises import graph_surprises
from .sim.sensitivity import Cancelled, Sensitivity
from .triage.fix import FixResult, Search, Target, Visit
from .triage.report import ACTION_SHORT, switch_words
from .triage.targets import target_problem

# The core's public face: what the TUI may use besides the vocabulary of the bottom floor (errors, text,
# kinds, numbers) and `opening`; tests/test_layering.py holds the TUI to it.
__all__ = [
    "ACTION_SHORT",
    "SWITCH_FIELDS",
    "Cancelled",
    "Compilation",
    "Evaluation",
    "FixResult",
    "Histogram",
    "Layer",
    "RangePreview",
    "Search",
    "Sensitivity",
    "Settings",
    "Target",
    "Visit",
    "WeightResult",
    "Workbench",
    "histogram",
    "range_problem",
    "switch_words",
    "target_problem",
]


@dataclass(frozen=True)
class RangePreview:
    """One WEIGHT_MIN_MAX range for one weight, as it would be: `metric` is Workbench.metric_label's
    number (None: exact, or no accuracy to measure)."""

    label: str
    range: tuple[float, float]
    sqnr_db: float | None
    clipped: float
    metric: float | None
    result: WeightResult | None = field(default=None, compare=False, repr=False)  # the weight as it would be


CANDIDATE_SHARES = (0.001, 0.005, 0.02, 0.05, 0.1, 0.2)  # the value shares the `m` dialog tries clipping


class Marked(NamedTuple):
    """One step of the undo history: the settings and the fix search's pins and forbids."""

    settings: Settings
    pinned: frozenset[str]
    forbidden: frozenset[str]


class Workbench:
    def __init__(self, project: Project, data: EvalData | None = None) -> None:
        self.project = project
        evaluator = (
            Evaluator(project.compiler, data, project.config.output_names, project.fp16_outputs) if data is not None else None
        )
        self.analysis = Analysis(evaluator) if evaluator is not None else None
        self.saved = project.config.settings
        self.settings = self.saved
        self.loaded_text = read_config_text(project.config.path)  # what saving compares the disk with
        self.undo_stack: list[Marked] = []  # what undo goes back to: the settings and the fix search's marks
        self.redo_stack: list[Marked] = []
        self.compilation = project.compile(self.settings)
        self.evaluation: Evaluation | None = None
        self.evaluated_settings: Settings | None = None
        self.sensitivity: dict[str, Sensitivity] = {}
        self.sweep_complete = False
        self.sensitivity_settings: Settings | None = None
        self.layers: list[Layer] | None = None
        self.evaluation_error: str | None = None  # the last run's failure, shown until the next run
        self.fix_notes: dict[str, str] = {}  # weight -> what the last accepted fix did to it
        self.fix_pinned: frozenset[str] = frozenset()  # the fix search never changes these
        self.fix_forbidden: frozenset[str] = frozenset()  # nor excludes these
        self.layers_settings: Settings | None = None
        self.layer_samples = 0  # the layer numbers come from the first samples that fit their memory budget
        self.ignored_names: tuple[Settings, list[NameWarning]] | None = None  # the settings' names gxnpuc ignores
        inventory = project.inventory
        self.graph_chip_warnings = [d.message for d in graph_surprises(inventory.model, inventory.arrays)]  # as compile says them

    # -- state

    @property
    def dirty(self) -> bool:
        return self.settings != self.saved

    @property
    def stale(self) -> bool:
        """The model-level numbers belong to other settings than the ones shown."""
        return self.evaluation is None or self.evaluated_settings != self.settings

    @property
    def alarms(self) -> bool:
        """Whether numbers under 20 dB are alarms (the `!` marks, what `w` jumps to). Not once the current
        evaluation shows the NPU model at least as accurate as float: a low SQNR that costs no accuracy hurts
        nothing. Stale model numbers never decide: without current ones the data-free SQNRs alarm."""
        ev = self.evaluation
        if self.stale or ev is None or ev.accuracy_float is None or ev.accuracy_npu is None:
            return True
        return ev.accuracy_npu < ev.accuracy_float

    @property
    def chip_warnings(self) -> list[str]:
        """What the chip computes otherwise than the float model, as compile and eval warn of it: from the
        graph (a scalar-first Sub/Div, a Pow of a value that can be negative), then what the last test
        found besides (an fp16 overflow on the chip). Plain text; names from the model made printable."""
        found = list(self.graph_chip_warnings)
        ev = self.evaluation
        if ev is not None:
            found += [w for w in ev.chip_warnings if w not in found]
            if ev.fp16_issue and ev.fp16_issue not in found:
                found.append(ev.fp16_issue)
        return found

    def weight_warnings(self, name: str) -> list[str]:
        """What compile warns of for this one weight under the current settings, in its words: its values
        (fp16 overflow or underflow, NaN, a nudge shift with stuck values, saturation, a scale fp16 cannot
        hold), then a config name gxnpuc ignores that was meant for it. Plain text, model names unescaped."""
        found = [w.message for w in self.compilation.warnings if w.weight == name]
        if self.ignored_names is None or self.ignored_names[0] != self.settings:
            self.ignored_names = (self.settings, check_names(self.project.inventory, self.settings))
        return found + [w.message for w in self.ignored_names[1] if w.weight == name]

    def worst_weight(self) -> str | None:
        """The quantized weight that hurts most by the current numbers: the lowest alone SQNR when the sweep
        belongs to these settings, else the lowest own SQNR. None when none is quantized or nothing alarms."""
        results = [r for r in self.compilation.results.values() if r.plan.quantized]
        if not results or not self.alarms:
            return None
        if self.sensitivity and not self.sensitivity_stale:
            alone = self.sensitivity
            return min(
                results, key=lambda r: worst_first(alone[r.weight.name].alone_sqnr_db) if r.weight.name in alone else math.inf
            ).weight.name
        return min(results, key=lambda r: worst_first(r.errors.sqnr_db)).weight.name

    def result(self, name: str) -> WeightResult:
        return self.compilation.results[name]

    def matching(self, text: str) -> list[str]:
        """The weights whose name holds `text` (any case), in the model's order: what the filter shows
        and what n and N step through."""
        wanted = text.lower()
        return [w.name for w in self.project.inventory.weights if wanted in w.name.lower()]

    # -- edits (each recompiles the data-free numbers at once)

    def apply(self, settings: Settings) -> Compilation:
        if settings == self.settings:
            return self.compilation
        compilation = self.project.compile(settings)
        self._remember()
        self.settings, self.compilation = settings, compilation
        return compilation

    def _remember(self) -> None:
        """The state before an edit, for undo; a new edit drops what redo held."""
        self.undo_stack.append(Marked(self.settings, self.fix_pinned, self.fix_forbidden))
        self.redo_stack.clear()

    def toggle_pin(self, name: str) -> bool:
        """Pin `name` for the fix search (it never changes it), or unpin it; undoable. True: now pinned."""
        self._remember()
        self.fix_pinned = self.fix_pinned ^ {name}
        return name in self.fix_pinned

    def toggle_forbid(self, name: str) -> bool:
        """Forbid the fix search to exclude `name`, or allow it again; undoable. True: now forbidden."""
        self._remember()
        self.fix_forbidden = self.fix_forbidden ^ {name}
        return name in self.fix_forbidden

    def accept_fix(self, result: FixResult) -> Compilation:
        """Take a fix search's config (one undo step), noting on each weight it changed what it did."""
        self.fix_notes = {
            c.weight: f"{c.action}{f' [{c.range[0]:.4g}, {c.range[1]:.4g}]' if c.range else ''} by fix"
            for c in result.changes
            if c.weight
        }
        return self.apply(result.settings)

    def set_switches(self, chosen: dict[str, bool]) -> Compilation:
        """The switches dialog's answer (compress, conv2d_compress, fuse_bn; a switch it leaves out keeps its value)."""
        settings = self.settings
        return self.apply(replace(settings, **{key: chosen.get(key, getattr(settings, key)) for key in SWITCH_FIELDS.values()}))

    def toggle_exclude(self, name: str) -> Compilation:
        inventory = self.project.inventory
        if edits.is_excluded(inventory, self.settings, name):
            return self.apply(edits.include(inventory, self.settings, name))
        return self.apply(edits.exclude(inventory, self.settings, name))

    def set_range(self, name: str, lo: float, hi: float) -> Compilation:
        """A range the config would refuse is refused here, with the config's words."""
        problem = range_problem(lo, hi)
        if problem is not None:
            raise ConfigError(f"{RANGES_KEY}[{name!r}]: {problem}")
        return self.apply(edits.set_range(self.project.inventory, self.settings, name, lo, hi))

    def reset_weight(self, name: str) -> Compilation:
        """Back to the automatic range and not excluded."""
        return self.apply(edits.reset(self.project.inventory, self.settings, name))

    def undo(self) -> bool:
        return self._step(self.undo_stack, self.redo_stack)

    def redo(self) -> bool:
        return self._step(self.redo_stack, self.undo_stack)

    def _step(self, source: list[Marked], target: list[Marked]) -> bool:
        """Move one step through the history; the compile comes first, so a failure changes nothing."""
        if not source:
            return False
        compilation = self.project.compile(source[-1].settings)
        target.append(Marked(self.settings, self.fix_pinned, self.fix_forbidden))
        state = source.pop()
        self.settings, self.compilation = state.settings, compilation
        self.fix_pinned, self.fix_forbidden = state.pinned, state.forbidden
        return True

    @property
    def evaluator(self) -> Evaluator | None:
        """The evaluator that runs the data (None without data)."""
        return self.analysis.evaluator if self.analysis is not None else None

    # -- evaluation (slow: the TUI runs these in a worker)

    def evaluate(self) -> Evaluation | None:
        """Compare float and NPU on the data under the current settings: one exact run (the chip's
        arithmetic), or the fast one when exact would take over 2 s (the evaluation says which)."""
        if self.analysis is None:
            return None
        settings, compilation = self.settings, self.compilation
        evaluation = self.analysis.evaluate(compilation, settings.fp16_activations, exact=True)
        self.evaluation, self.evaluated_settings = evaluation, settings
        return evaluation

    def retest(
        self,
        stop: Callable[[], bool],
        on_evaluation: Callable[[], None],
        on_layers: Callable[[], None],
        on_progress: Callable[[int, int], None],
    ) -> None:
        """The re-test after ctrl+r: model numbers, then layer numbers, then the sensitivity sweep, calling
        back after each so the screen shows them as they come; `stop` is asked after the model numbers
        and inside the layers and the sweep. Stopped: raises Cancelled (a stopped sweep keeps what it measured). A failure is
        kept in `evaluation_error` (shown until the next run) and raised."""
        self.evaluation_error = None
        try:
            self.evaluate()
            on_evaluation()
            if stop():
                raise Cancelled()
            self.analyse_layers(stop)
            on_layers()
            self.sweep(stop, on_progress)
        except Cancelled:
            raise
        except UserError as exc:
            self.evaluation_error = str(exc)
            raise
        except Exception as exc:
            self.evaluation_error = f"evaluation failed: {exc!r}"
            raise

    def analyse_layers(self, stop: Callable[[], bool] | None = None) -> list[Layer] | None:
        """Accumulated and isolated error per layer under the current settings (a few runs)."""
        if self.analysis is None:
            return None
        settings, compilation = self.settings, self.compilation
        analysis = self.analysis.layer_analysis()
        self.layers = analysis.layers(compilation, settings.fp16_activations, stop)
        self.layers_settings = settings
        self.layer_samples = analysis.samples
        return self.layers

    @property
    def sensitivity_stale(self) -> bool:
        """The alone numbers shown come from other settings than the current ones (an edit, an undo)."""
        return bool(self.sensitivity) and self.sensitivity_settings != self.settings

    @property
    def layers_stale(self) -> bool:
        return self.layers is None or self.layers_settings != self.settings

    def sweep(self, stop: Callable[[], bool] | None = None, progress: Callable[[int, int], None] | None = None) -> None:
        """Per-weight sensitivity under the current settings (one run per weight, or two: slow).
        A stopped sweep keeps what it measured; `sweep_complete` says whether the rest is missing."""
        if self.analysis is None:
            return
        self.sweep_complete = False
        settings = self.settings
        try:
            found = self.analysis.sensitivity(settings, progress, stop)
        except Cancelled as stopped:
            self.sensitivity = {s.weight: s for s in stopped.partial}
            self.sensitivity_settings = settings
            raise
        self.sensitivity = {s.weight: s for s in found}
        self.sensitivity_settings = settings
        self.sweep_complete = True

    # -- range candidates for the min/max dialog (slow with data: the TUI runs these in a worker)

    @property
    def metric_label(self) -> str:
        """What ranks ranges: NPU accuracy with labels, else the worst output's SQNR; without data the
        weight's own SQNR, the only number left."""
        if self.analysis is None:
            return "own SQNR"
        return "accuracy" if self.analysis.evaluator.data.labels is not None else "output SQNR"

    def preview_range(self, name: str, rng: tuple[float, float], label: str = "typed") -> RangePreview:
        """What `rng` would give `name`, nothing applied: its own SQNR, the share of its values it clips
        and, with data, the model metric from the evaluator's no-rebuild path (only this weight's
        quantization is redone; the session is reused). Refused as the config refuses it."""
        problem = range_problem(*rng)
        if problem is not None:
            raise ConfigError(f"{RANGES_KEY}[{name!r}]: {problem}")
        self.check_rangeable(name)
        settings = edits.set_range(self.project.inventory, self.settings, name, float(rng[0]), float(rng[1]))
        return self._preview(name, settings, label)

    def range_candidates(self, name: str, stop: Callable[[], bool] | None = None) -> list[RangePreview]:
        """The automatic range, the bulk (central 99.9%), the MSE-optimal one and clips by value share,
        each previewed, best model metric first (ties: the weight's own SQNR). `stop` ends it early."""
        plan = self.compilation.plans[name]
        weight = self.project.inventory.by_name[name]
        self.check_rangeable(name)
        w, _ = self.project.compiler.reference(weight, plan.fused)
        ranges = {"bulk 99.9%": bulk_range(w), "MSE-optimal": mse_optimal_range(w)}
        ranges.update({f"clip {share:.1%}": clip_range(w, share) for share in CANDIDATE_SHARES})
        found = [self._preview(name, edits.reset(self.project.inventory, self.settings, name), "automatic")]
        for label, (lo, hi) in ranges.items():
            if stop is not None and stop():
                raise Cancelled()
            if range_problem(lo, hi) is None:
                found.append(self._preview(name, edits.set_range(self.project.inventory, self.settings, name, lo, hi), label))
        return sorted(found, key=lambda c: (worst_first(c.metric), worst_first(c.sqnr_db)), reverse=True)

    def _preview(self, name: str, settings: Settings, label: str) -> RangePreview:
        compilation = self.project.compile(settings)
        result = compilation.results[name]
        metric = result.errors.sqnr_db
        if self.analysis is not None:
            evaluation = self.analysis.evaluate(compilation, settings.fp16_activations)
            metric = (
                evaluation.accuracy_npu if self.analysis.evaluator.data.labels is not None else evaluation.worst_output_sqnr_db
            )
        return RangePreview(label, result.range, result.errors.sqnr_db, result.errors.clipped_fraction, metric, result)

    def check_rangeable(self, name: str) -> None:
        """Refuse a weight no range can quantize (it holds NaN or Inf): cheap, the extent is cached."""
        plan = self.compilation.plans[name]
        weight = self.project.inventory.by_name[name]
        w, _ = self.project.compiler.reference(weight, plan.fused)
        if not all(math.isfinite(bound) for bound in self.project.compiler.extent(weight, plan.fused, w)):
            raise ModelError(
                f"{self.project.inventory.path}: weight {name!r} holds NaN or Inf: no WEIGHT_MIN_MAX range can quantize it; "
                "fix the model or keep the weight fp16"
            )

    # -- saving

    def write_recovery(self) -> Path | None:
        """The unsaved settings, written beside the config (never over it) when the workbench fails."""
        if not self.dirty:
            return None
        path = self.project.config.path
        target = path.with_name(path.name + ".recovered")
        with atomic_write(target, "w", encoding="utf-8") as handle:
            handle.write(render_config(self.loaded_text, self.settings))
        return target

    def changed_on_disk(self) -> bool:
        """Whether someone (an editor, git) changed config.yaml since it was loaded or saved here."""
        return read_config_text(self.project.config.path) != self.loaded_text

    def diff(self, overwrite: bool = False) -> str:
        """What saving would write; refused up front when the config cannot be saved into."""
        check_writable(self.project.config.path)
        return config_diff(self.project.config.path, self.settings, self.loaded_text if overwrite else None)

    def save(self, overwrite: bool = False) -> Path:
        """Write the settings into the file as it is now (keeping edits made on disk meanwhile), or,
        with `overwrite`, into the text as it was loaded (dropping them)."""
        backup = save_config(self.project.config.path, self.settings, self.loaded_text if overwrite else None)
        self.loaded_text = read_config_text(self.project.config.path)
        self.saved = self.settings
        return backup
