"""Automatic triage: the cheapest config, in NPU bytes, that meets an accuracy target.

1. Localize as the vendor's loop does: COMPRESS and CONV2D_COMPRESS off, fc only, conv only, both,
   and FUSE_BN on and off where the model has BatchNormalization; each with its metric and bytes.
2. Rank the weights by how much excluding each one gains (one sensitivity sweep).
3. Greedy: for the best-ranked weights not yet changed, try their actions: a WEIGHT_MIN_MAX range
   (nearly free: clipping can make a few more codes differ from the zero point; chosen by the model-level metric over a grid of clip shares, then golden-section between the
   best neighbours), keeping their BatchNormalization unfolded, and excluding them. Take the cheapest
   action that meets the target, else the best gain per byte. Repeat from the new state.
4. Prune every change whose removal still meets the target, then swap each exclusion for a range
   (far cheaper than fp16) where that still meets it.
5. The switches of step 1 win instead when one of their rows meets the target for fewer bytes.
Every evaluation goes through the evaluator's no-rebuild path; the search is deterministic.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from . import edits
from .errors import UserError
from .evaluate import Evaluation, Evaluator
from .inventory import Inventory
from .project import Project
from .ranges import clip_range, mse_optimal_range
from .settings import Settings

SHARES = (0.0005, 0.002, 0.006, 0.015, 0.03, 0.06, 0.1, 0.15, 0.22)
COARSE_SHARES = (0.002, 0.03, 0.15)  # a subset of SHARES: tried first
GOLDEN_STEPS = 3
CANDIDATE_WEIGHTS = 3
EXACT_DB = 200.0


@dataclass(frozen=True)
class Target:
    kind: str  # max_drop (points of accuracy), min_agreement (% top-1), min_sqnr (dB, worst output)
    value: float

    def measure(self, evaluation: Evaluation) -> float | None:
        """The number the target is about, in its own unit."""
        if self.kind == "max_drop":
            if evaluation.accuracy_float is None or evaluation.accuracy_npu is None:
                return None
            return (evaluation.accuracy_float - evaluation.accuracy_npu) * 100
        if self.kind == "min_agreement":
            return None if evaluation.top1_agreement is None else evaluation.top1_agreement * 100
        sqnr = evaluation.output_sqnr_db
        return EXACT_DB if sqnr is None else max(sqnr, -EXACT_DB)

    def met(self, evaluation: Evaluation) -> bool:
        value = self.measure(evaluation)
        if value is None:
            return False
        return value <= self.value if self.kind == "max_drop" else value >= self.value

    def score(self, evaluation: Evaluation) -> tuple[float, float]:
        """Higher is better: the target's number (a drop counts negatively), then the worst output's
        SQNR, which breaks the ties of a stepwise accuracy."""
        value = self.measure(evaluation)
        primary = -math.inf if value is None else (-value if self.kind == "max_drop" else value)
        sqnr = evaluation.output_sqnr_db
        return primary, EXACT_DB if sqnr is None else max(sqnr, -EXACT_DB)

    def check(self, evaluation: Evaluation) -> None:
        if self.measure(evaluation) is None:
            need = "labels in the data (an integer class index per sample)" if self.kind == "max_drop" else "a class-score output (2-D)"
            raise UserError(f"--{self.kind.replace('_', '-')} needs {need}; use --min-sqnr for this model")


@dataclass(frozen=True)
class Change:
    action: str  # exclude, range, keep_bn, switches
    weight: str | None
    range: tuple[float, float] | None
    metric: float | None
    bytes: int
    settings: Settings = field(compare=False, repr=False)


@dataclass
class Visit:
    """A state the search evaluated: for the live plot of metric against bytes."""

    metric: float | None
    bytes: int
    met: bool


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


class Search:
    def __init__(
        self,
        project: Project,
        evaluator: Evaluator,
        target: Target,
        budget: int | None = None,
        pinned: frozenset[str] = frozenset(),
        forbidden: frozenset[str] = frozenset(),
        on_visit: Callable[[Visit], None] | None = None,
        stop: Callable[[], bool] | None = None,
    ) -> None:
        self.project, self.evaluator, self.target = project, evaluator, target
        self.budget, self.pinned, self.forbidden = budget, pinned, forbidden
        self.on_visit, self.stop = on_visit, stop
        self.inventory = project.inventory
        self.evaluations = 0
        self.visits: list[Visit] = []
        self._seen: dict[tuple, tuple[Evaluation, int]] = {}
        self._ranges: dict[str, tuple[float, float] | None] = {}
        self.ceiling: int | None = None

    def evaluate(self, settings: Settings) -> tuple[Evaluation, int]:
        """(evaluation, NPU bytes) of a settings state, each state evaluated once."""
        key = settings.key()
        if key not in self._seen:
            if self.stop is not None and self.stop():
                raise StopSearch()
            compilation = self.project.compile(settings)
            evaluation = self.evaluator.evaluate(compilation, settings.fp16_activations)
            self.evaluations += 1
            self._seen[key] = (evaluation, compilation.npu_bytes)
            visit = Visit(self.target.measure(evaluation), compilation.npu_bytes, self.target.met(evaluation))
            self.visits.append(visit)
            if self.on_visit is not None:
                self.on_visit(visit)
        return self._seen[key]

    def affordable(self, npu_bytes: int) -> bool:
        return self.budget is None or npu_bytes <= self.budget

    # -- steps

    def localize(self, start: Settings) -> list[dict]:
        has_bn = any(w.bn is not None for w in self.inventory.weights)
        rows = []
        for compress, conv in ((False, False), (True, False), (False, True), (True, True)):
            for fuse in ((start.fuse_bn, not start.fuse_bn) if has_bn else (start.fuse_bn,)):
                settings = replace(start, compress=compress, conv2d_compress=conv, fuse_bn=fuse)
                evaluation, npu_bytes = self.evaluate(settings)
                rows.append(
                    {"COMPRESS": compress, "CONV2D_COMPRESS": conv, "FUSE_BN": fuse,
                     "metric": self.target.measure(evaluation), "npu_bytes": npu_bytes, "met": self.target.met(evaluation)}
                )
        return rows

    def ranked(self, start: Settings) -> list[str]:
        """Quantized weights, most to gain from excluding first (one sweep)."""
        found = self.evaluator.sensitivity(start, stop=self.stop)
        plans = self.project.compile(start).plans
        gains = {s.weight: (s.exclude_gain_db if s.exclude_gain_db is not None else EXACT_DB) for s in found}
        names = [w.name for w in self.inventory.weights if plans[w.name].quantized and w.name not in self.pinned]
        return sorted(names, key=lambda n: -gains.get(n, 0.0))

    def candidates(self, state: Settings, name: str, with_range: bool = True) -> list[tuple[str, Settings, tuple[float, float] | None]]:
        """The actions for one weight, a range searched with the model-level metric."""
        found: list[tuple[str, Settings, tuple[float, float] | None]] = []
        if name not in self.forbidden:
            found.append(("exclude", edits.exclude(self.inventory, state, name), None))
        if self.project.compile(state).plans[name].fused:
            found.append(("keep_bn", edits.keep_bn(self.inventory, state, name), None))
        best = self._ranges.get(name)
        if best is None and with_range:  # searched once per weight; later rounds try the same range
            best = self._ranges[name] = self.best_range(state, name)
        if best is not None:
            found.append(("range", edits.set_range(self.inventory, state, name, *best), best))
        return found

    def best_range(self, state: Settings, name: str) -> tuple[float, float] | None:
        """The clip share whose range scores best on the model metric: three coarse shares; when one
        beats the state as it is, the whole grid, then golden-section between the best grid point's
        neighbours, the MSE-optimal range competing too."""
        weight = self.inventory.by_name[name]
        w, _ = self.project.compiler.reference(weight, self.project.compile(state).plans[name].fused)

        def scored(rng: tuple[float, float]) -> tuple[tuple[float, float], tuple[float, float]]:
            if not rng[0] < rng[1]:
                return (-math.inf, -math.inf), rng
            return self.target.score(self.evaluate(edits.set_range(self.inventory, state, name, *rng))[0]), rng

        base = self.target.score(self.evaluate(state)[0])
        coarse = {share: scored(clip_range(w, share)) for share in COARSE_SHARES}
        if max(coarse.values(), key=lambda item: item[0])[0] <= base:
            # no clip share beats leaving the weight as it is: the fine grid and the golden-section
            # steps (four times the evaluations) would polish a range no search step would take
            best_coarse = max(coarse.values(), key=lambda item: item[0])
            return best_coarse[1] if math.isfinite(best_coarse[0][0]) else None
        grid = [coarse[share] if share in coarse else scored(clip_range(w, share)) for share in SHARES]
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

    def run(self, start: Settings) -> FixResult:
        """The search; stopped (StopSearch from `stop`), it returns the changes accepted so far."""
        began = time.perf_counter()
        first, first_bytes = self.evaluate(start)
        self.target.check(first)
        self.accepted: tuple[list[Change], Settings] = ([], start)
        localization: list[dict] = []
        try:
            localization = self.localize(start)
            changes, state = self._search(start, first, localization)
        except StopSearch:
            changes, state = self.accepted
        self.stop = None  # the final numbers below are computed even when stopped
        final, final_bytes = self.evaluate(state)
        return FixResult(
            met=self.target.met(final),
            target=self.target,
            before=(self.target.measure(first), first_bytes),
            after=(self.target.measure(final), final_bytes),
            localization=localization,
            changes=changes,
            settings=state,
            evaluations=self.evaluations,
            seconds=time.perf_counter() - began,
            visits=self.visits,
        )

    def _search(self, start: Settings, first: Evaluation, localization: list[dict]) -> tuple[list[Change], Settings]:
        changes: list[Change] = []
        state = start
        if not self.target.met(first):
            meeting_rows = [row for row in localization if row["met"] and self.affordable(row["npu_bytes"])]
            # no weight path costing as much as the cheapest switch row that meets is worth following
            self.ceiling = min((row["npu_bytes"] for row in meeting_rows), default=None)
            changes, state = self.greedy(start, first)
            if meeting_rows:  # the vendor's switches alone, when they are cheaper than the weight changes
                row = min(meeting_rows, key=lambda r: r["npu_bytes"])
                switched = replace(start, compress=row["COMPRESS"], conv2d_compress=row["CONV2D_COMPRESS"], fuse_bn=row["FUSE_BN"])
                evaluation, npu_bytes = self.evaluate(switched)
                reached, reached_bytes = self.evaluate(state)
                if not self.target.met(reached) or npu_bytes < reached_bytes:
                    changes = [Change("switches", None, None, self.target.measure(evaluation), npu_bytes, switched)]
                    state = switched
        return changes, state

    def greedy(self, start: Settings, first: Evaluation) -> tuple[list[Change], Settings]:
        """Weight actions one at a time until the target is met or nothing helps; then prune and swap."""
        order = self.ranked(start)
        changes: list[Change] = []
        state, current = start, first
        while order:
            choice = self.choose(state, current, order)
            if choice is None:
                break
            changes.append(choice)
            state = choice.settings
            self.accepted = (list(changes), state)
            current = self.evaluate(state)[0]
            if choice.weight in order:
                order.remove(choice.weight)
            if self.target.met(current):
                changes, state = self.prune(start, changes)
                return self.swap(start, changes)
        return changes, state

    def choose(self, state: Settings, current: Evaluation, order: list[str]) -> Change | None:
        """Among the best-ranked weights' actions (a searched range for the first only: it costs a
        dozen evaluations), the cheapest that meets the target; else the best gain per extra byte."""
        base_score = self.target.score(current)
        base_bytes = self.evaluate(state)[1]
        options: list[tuple[str, str, Settings, tuple[float, float] | None]] = []
        for rank, name in enumerate(order[:CANDIDATE_WEIGHTS]):
            options += [(action, name, settings, rng) for action, settings, rng in self.candidates(state, name, with_range=rank == 0)]
        meeting: list[tuple[int, list[float], int, Change]] = []
        improving: list[tuple[float, int, int, Change]] = []
        for action, name, settings, rng in options:
            npu_bytes = self.project.compile(settings).npu_bytes  # no model run for what is too dear
            if not self.affordable(npu_bytes) or (self.ceiling is not None and npu_bytes >= self.ceiling):
                continue
            evaluation, _ = self.evaluate(settings)
            change = Change(action, name, rng, self.target.measure(evaluation), npu_bytes, settings)
            score = self.target.score(evaluation)
            if self.target.met(evaluation):
                meeting.append((npu_bytes, [-x for x in score], len(meeting), change))
            if score > base_score:
                gain = score[0] - base_score[0] if score[0] != base_score[0] else (score[1] - base_score[1]) * 1e-3
                per_byte = gain / max(npu_bytes - base_bytes, 1)
                improving.append((-per_byte, npu_bytes, len(improving), change))
        if meeting:
            return min(meeting)[-1]
        if improving:
            return min(improving)[-1]
        return None

    def rebuild(self, start: Settings, changes: list[Change]) -> Settings:
        """The start with these changes applied in order (each change's own edit, replayed)."""
        state = start
        for change in changes:
            state = _replay(self.inventory, state, change)
        return state

    def prune(self, start: Settings, changes: list[Change]) -> tuple[list[Change], Settings]:
        kept = list(changes)
        for change in list(changes):
            trial = [c for c in kept if c is not change]
            settings = self.rebuild(start, trial)
            evaluation, npu_bytes = self.evaluate(settings)
            if self.target.met(evaluation) and self.affordable(npu_bytes):
                kept = trial
        return kept, self.rebuild(start, kept)

    def swap(self, start: Settings, changes: list[Change]) -> tuple[list[Change], Settings]:
        """An exclusion is worth its bytes only if no range (far cheaper) does the job."""
        kept = list(changes)
        for index, change in enumerate(kept):
            if change.action != "exclude" or change.weight is None or change.weight in self.pinned:
                continue
            before = self.rebuild(start, kept[:index] + kept[index + 1 :])
            rng = self.best_range(before, change.weight)
            if rng is None:
                continue
            trial = Change("range", change.weight, rng, None, 0, edits.set_range(self.inventory, before, change.weight, *rng))
            candidate = kept[:index] + [trial] + kept[index + 1 :]
            evaluation, npu_bytes = self.evaluate(self.rebuild(start, candidate))
            if self.target.met(evaluation) and self.affordable(npu_bytes):
                kept[index] = replace(trial, metric=self.target.measure(evaluation), bytes=npu_bytes)
        return kept, self.rebuild(start, kept)


class StopSearch(Exception):
    """The caller stopped the search."""


def _replay(inventory: Inventory, state: Settings, change: Change) -> Settings:
    name = change.weight
    if name is not None and change.action == "exclude":
        return edits.exclude(inventory, state, name)
    if name is not None and change.action == "range" and change.range is not None:
        return edits.set_range(inventory, state, name, *change.range)
    if name is not None and change.action == "keep_bn":
        return edits.keep_bn(inventory, state, name)
    return replace(state, compress=change.settings.compress, conv2d_compress=change.settings.conv2d_compress, fuse_bn=change.settings.fuse_bn)
