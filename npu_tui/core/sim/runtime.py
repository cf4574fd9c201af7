"""onnxruntime plumbing: sessions built (and counted) in one place, samples grouped into runs, and
IOBindings whose weight inputs stay bound so a what-if run rebinds only what it swaps.

onnxruntime is imported only when a session is built: `npu-tui compile` never pays for it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np
import onnx

from .eval_data import EvalData

if TYPE_CHECKING:
    from onnxruntime import InferenceSession

BATCH_SAMPLES = 32
# How long a session's idle intra-op workers spin for the next job before they sleep. A sweep holds a
# session per cut and each has its own workers: with onnxruntime's default, the workers of the last
# few sessions spun on the cores the next one needed (bench_sweep's second sweep 2.3-2.7 s, now 1.4 s;
# fix's exact runs slowed by a third). Consecutive runs of one session follow within this time.
SPIN_MICROSECONDS = 200


class SessionFactory:
    """Builds every onnxruntime session of an evaluator; `built` counts them, so tests can prove that
    a settings change or a what-if run builds none."""

    def __init__(self) -> None:
        self.built = 0

    def build(self, model: onnx.ModelProto | str, lean: bool = False) -> InferenceSession:
        """A CPU session whose idle workers spin only briefly (SPIN_MICROSECONDS). `lean` sessions give
        their working memory back after each run: a sweep holds one per cut and must not keep an arena
        for each."""
        import onnxruntime as ort

        ort.set_default_logger_severity(3)  # errors reach the user as our one-line messages, not ORT's log
        options = ort.SessionOptions()
        options.log_severity_level = 3
        options.add_session_config_entry("session.intra_op.spin_duration_us", str(SPIN_MICROSECONDS))
        if lean:
            options.enable_cpu_mem_arena = False
            options.enable_mem_pattern = False
        source = model if isinstance(model, str) else model.SerializeToString()
        session = ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])
        self.built += 1
        return session


@dataclass(frozen=True)
class Batches:
    """How samples go through a session: several per run along a free first axis, else one by one.

    Arrays are held as (N, *S), S one inference's shape. Batched runs need every input's S to start
    with 1 on an axis the model leaves open; they feed (B, *S[1:]) and give outputs (B, ...).
    """

    samples: int
    batched: bool
    size: int

    @classmethod
    def plan(cls, data: EvalData, open_first_axis: set[str], size: int = BATCH_SAMPLES) -> Batches:
        batched = bool(data.inputs) and all(
            name in open_first_axis and array.ndim >= 2 and array.shape[1] == 1 for name, array in data.inputs.items()
        )
        return cls(data.samples, batched, max(1, size) if batched else 1)

    def first(self, count: int) -> Batches:
        """The same plan over the first `count` samples only."""
        return replace(self, samples=max(1, min(count, self.samples)))

    def slices(self) -> list[slice]:
        return [slice(start, min(start + self.size, self.samples)) for start in range(0, self.samples, self.size)]

    def feed(self, array: np.ndarray, part: slice) -> np.ndarray:
        """The model's input for one run, from an (N, *S) array."""
        if self.batched:
            return array[part].reshape(-1, *array.shape[2:])
        return array[part.start : part.start + 1].reshape(array.shape[1:])  # 0-d stays an array

    def rows(self, part: np.ndarray) -> int:
        """How many rows (along the samples axis) of the joined (N, ...) array one run's output makes."""
        if self.batched:
            return part.shape[0] if part.ndim else 1
        return 1

    def join(self, parts: list[np.ndarray]) -> np.ndarray:
        """Outputs of every run as (N, ...): a per-run batch axis of 1 becomes the samples axis."""
        if self.batched:
            return np.concatenate(parts) if len(parts) > 1 else parts[0]
        if all(p.ndim >= 1 and p.shape[0] == 1 for p in parts):
            return np.concatenate(parts)
        return np.stack(parts)


class BoundSession:
    """A session with an IOBinding: `fixed` inputs (weights) are bound once; each run binds its
    per-run inputs and, for a what-if, the swapped weights, which are bound back afterwards. A session
    made with `bind=False` feeds its fixed inputs to each run instead (see `run`)."""

    def __init__(self, session: InferenceSession, outputs: list[str], fixed: dict[str, np.ndarray], bind: bool = True) -> None:
        self.session = session
        self.outputs = outputs
        self.input_names = [i.name for i in session.get_inputs()]
        self.binding = session.io_binding()
        self.lean = not session.get_session_options().enable_cpu_mem_arena
        self.bind = bind  # False: fixed inputs fed to each run, outputs not copied (see `run`)
        self.fixed = {n: _contiguous(fixed[n]) for n in self.input_names if n in fixed}
        for name, value in self.fixed.items():
            self.binding.bind_cpu_input(name, value)

    def update_fixed(self, values: dict[str, np.ndarray]) -> None:
        """New values for fixed inputs; only those that are other arrays than the bound ones are
        bound again (the compiler hands back the same array for a weight that did not change)."""
        for name, value in values.items():
            old = self.fixed.get(name)
            if old is not None and not same_array(value, old):
                self.fixed[name] = _contiguous(value)
                self.binding.bind_cpu_input(name, self.fixed[name])

    def run(self, feeds: dict[str, np.ndarray], swaps: dict[str, np.ndarray] | None = None) -> list[np.ndarray]:
        """The outputs of one run. A lean session with no fixed inputs (the float model's layers), or a
        session made with `bind=False` (the NPU model's layers and the isolated copies), runs without
        the binding, its fixed inputs fed with the run: its outputs are onnxruntime's own buffers,
        where the binding's are copies, which held every layer twice at once (330 MB for one sample of
        PP-OCRv4 det, 1x3x320x320). Otherwise an arena session's outputs are copied: its own would keep
        its arena's blocks taken while a caller holds them (the layer analysis lets each run's go
        before the next run)."""
        wanted = set(self.input_names)
        if (self.lean and not self.fixed) or not self.bind:
            given = {**self.fixed, **{n: v for n, v in (swaps or {}).items() if n in self.fixed}, **feeds}
            return self.session.run(self.outputs, {n: _contiguous(v) for n, v in given.items() if n in wanted})
        held = [_contiguous(v) for v in feeds.values()]  # alive until the run is over
        for name, value in zip(feeds, held):
            if name in wanted:
                self.binding.bind_cpu_input(name, value)
        swapped = {n: _contiguous(v) for n, v in (swaps or {}).items() if n in self.fixed}
        for name, value in swapped.items():
            self.binding.bind_cpu_input(name, value)
        self.binding.clear_binding_outputs()  # a run's outputs take the shape of its batch
        for name in self.outputs:
            self.binding.bind_output(name)
        try:
            self.session.run_with_iobinding(self.binding)
            return self.binding.copy_outputs_to_cpu()
        finally:
            for name in swapped:
                self.binding.bind_cpu_input(name, self.fixed[name])


def same_array(now: np.ndarray | None, then: np.ndarray | None) -> bool:
    """The same array, or a view of it (the compiler hands back the same array for an unchanged
    weight; binding may have made a contiguous copy's base of it), or both absent."""
    if now is None or then is None:
        return now is then
    return now is then or now.base is then


def _contiguous(array: np.ndarray) -> np.ndarray:
    """C-contiguous without numpy's promotion of a 0-d array to 1-d."""
    return np.require(array, requirements="C")
