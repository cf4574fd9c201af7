"""The workbench's state without any UI: the settings being edited, undo and redo, the current
compilation, the last evaluation and whether it is stale, and saving. The TUI drives this object."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .config.project import Project
from .config.writer import check_writable, config_diff, read_config_text, render_config, save_config
from .quant import edits
from .quant.compiler import Compilation, WeightResult
from .quant.plan import WeightPlan
from .quant.ranges import bulk_range, mse_optimal_range
from .quant.settings import Settings
from .safe_files import atomic_write
from .sim.eval_data import EvalData
from .sim.evaluate import Evaluation, Evaluator
from .sim.layers import Layer
from .sim.sensitivity import Cancelled, Sensitivity


@dataclass(frozen=True)
class RangeSuggestion:
    label: str
    range: tuple[float, float]
    sqnr_db: float | None


class Workbench:
    def __init__(self, project: Project, data: EvalData | None = None) -> None:
        self.project = project
        self.evaluator = Evaluator(project.compiler, data, project.config.output_names) if data is not None else None
        self.saved = project.config.settings
        self.settings = self.saved
        self.loaded_text = read_config_text(project.config.path)  # what saving compares the disk with
        self.undo_stack: list[Settings] = []
        self.redo_stack: list[Settings] = []
        self.compilation = project.compile(self.settings)
        self.evaluation: Evaluation | None = None
        self.evaluated_settings: Settings | None = None
        self.sensitivity: dict[str, Sensitivity] = {}
        self.sweep_complete = False
        self.sensitivity_settings: Settings | None = None
        self.layers: list[Layer] | None = None
        self.evaluation_error: str | None = None  # the last run's failure, shown until the next run
        self.fix_notes: dict[str, str] = {}  # weight -> what the last accepted fix did to it
        self.fix_pinned: set[str] = set()  # the fix search never changes these
        self.fix_forbidden: set[str] = set()  # nor excludes these
        self.layers_settings: Settings | None = None
        self.layer_samples = 0  # the layer numbers come from the first samples that fit their memory budget

    # -- state

    @property
    def dirty(self) -> bool:
        return self.settings != self.saved

    @property
    def stale(self) -> bool:
        """The model-level numbers belong to other settings than the ones shown."""
        return self.evaluation is None or self.evaluated_settings != self.settings

    def result(self, name: str) -> WeightResult:
        return self.compilation.results[name]

    # -- edits (each recompiles the data-free numbers at once)

    def apply(self, settings: Settings) -> Compilation:
        if settings == self.settings:
            return self.compilation
        compilation = self.project.compile(settings)
        self.undo_stack.append(self.settings)
        self.redo_stack.clear()
        self.settings, self.compilation = settings, compilation
        return compilation

    def toggle_exclude(self, name: str) -> Compilation:
        inventory = self.project.inventory
        if edits.is_excluded(inventory, self.settings, name):
            return self.apply(edits.include(inventory, self.settings, name))
        return self.apply(edits.exclude(inventory, self.settings, name))

    def set_range(self, name: str, lo: float, hi: float) -> Compilation:
        return self.apply(edits.set_range(self.project.inventory, self.settings, name, lo, hi))

    def reset_weight(self, name: str) -> Compilation:
        """Back to the automatic range and not excluded."""
        return self.apply(edits.reset(self.project.inventory, self.settings, name))

    def undo(self) -> bool:
        return self._step(self.undo_stack, self.redo_stack)

    def redo(self) -> bool:
        return self._step(self.redo_stack, self.undo_stack)

    def _step(self, source: list[Settings], target: list[Settings]) -> bool:
        """Move one step through the history; the compile comes first, so a failure changes nothing."""
        if not source:
            return False
        compilation = self.project.compile(source[-1])
        target.append(self.settings)
        self.settings, self.compilation = source.pop(), compilation
        return True

    # -- evaluation (slow: the TUI runs these in a worker)

    def evaluate(self) -> Evaluation | None:
        """Compare float and NPU on the data under the current settings (one run: fast)."""
        if self.evaluator is None:
            return None
        settings, compilation = self.settings, self.compilation
        evaluation = self.evaluator.evaluate(compilation, settings.fp16_activations)
        self.evaluation, self.evaluated_settings = evaluation, settings
        return evaluation

    def analyse_layers(self, stop: Callable[[], bool] | None = None) -> list[Layer] | None:
        """Accumulated and isolated error per layer under the current settings (a few runs)."""
        if self.evaluator is None:
            return None
        settings, compilation = self.settings, self.compilation
        analysis = self.evaluator.layer_analysis()
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
        if self.evaluator is None:
            return
        self.sweep_complete = False
        settings = self.settings
        try:
            found = self.evaluator.sensitivity(settings, progress, stop)
        except Cancelled as stopped:
            self.sensitivity = {s.weight: s for s in stopped.partial}
            self.sensitivity_settings = settings
            raise
        self.sensitivity = {s.weight: s for s in found}
        self.sensitivity_settings = settings
        self.sweep_complete = True

    # -- range suggestions for the min/max dialog

    def range_suggestions(self, name: str) -> list[RangeSuggestion]:
        """The bulk range (central 99.9%) and the MSE-optimal range, each with the SQNR it gives."""
        plan = self.compilation.plans[name]
        w, _ = self.project.compiler.reference(self.project.inventory.by_name[name], plan.fused)
        found = []
        for label, rng in (("bulk 99.9%", bulk_range(w)), ("MSE-optimal", mse_optimal_range(w))):
            if rng[0] < rng[1]:
                found.append(RangeSuggestion(label, rng, self.sqnr_with_range(name, rng)))
        return found

    def sqnr_with_range(self, name: str, rng: tuple[float, float]) -> float | None:
        weight = self.project.inventory.by_name[name]
        plan = self.compilation.plans[name]
        trial = WeightPlan(name, True, None, (float(rng[0]), float(rng[1])), plan.fused, plan.fuse_bias)
        return self.project.compiler.result(weight, trial).errors.sqnr_db

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
