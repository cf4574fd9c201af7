"""`npu-tui fix` on real models from the corpus whose all-int8 output SQNR is low, against a naive
baseline run in the same script: exclude weights one by one, in order of their single-weight
exclusion gain (from one sensitivity sweep), until the target holds.

The search must meet the target whenever the baseline does, with no more extra bytes, and take at
most 3x one sensitivity sweep. Data: 4 seeded random samples per model (benchmarks/realmodels.py).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import onnx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from realmodels import CORPUS, extract, write_config, write_data  # noqa: E402

CASES = [("ocr_rec_v4", 25.0), ("orientation", 15.0), ("silero_vad_v6", 20.0), ("ocr_cls_v2", 30.0)]
SAMPLES = 4


def naive(project, evaluator, target, settings, found) -> tuple[bool, int, int, int]:
    """(met, NPU bytes, exclusions, evaluations)."""
    from npu_tui.core.quant import edits

    plans = project.compile(settings).plans
    order = sorted((s for s in found if plans[s.weight].quantized), key=lambda s: -(s.exclude_gain_db if s.exclude_gain_db is not None else 1e9))
    state, evaluations = settings, 0
    for count, item in enumerate([None, *order]):
        if item is not None:
            state = edits.exclude(project.inventory, state, item.weight)
        compilation = project.compile(state)
        evaluations += 1
        if target.met(evaluator.evaluate(compilation)):
            return True, compilation.npu_bytes, count, evaluations
    return False, project.compile(state).npu_bytes, len(order), evaluations


def main() -> None:
    from npu_tui.core.config.project import open_project
    from npu_tui.core.sim.eval_data import load_npz, model_inputs
    from npu_tui.core.sim.evaluate import Evaluator
    from npu_tui.core.triage.fix import Search, Target

    print(f"{'model':14} {'target':>12} {'start':>9} | {'naive: met':>10} {'extra B':>9} {'evals':>6} | "
          f"{'fix: met':>8} {'extra B':>9} {'changes':>7} {'evals':>6} {'seconds':>8} | {'sweep s':>7} {'fix/sweep':>9}")
    for name, floor in CASES:
        model = next(m for m in CORPUS if m.name == name)
        path = extract(model)
        config = write_config(path.parent, model, "config.yaml", True)
        data_path = write_data(path.parent, onnx.load(str(path)), model, SAMPLES)
        project = open_project(config)
        data = load_npz(data_path, model_inputs(project.inventory.model, project.config.input_shapes))
        target = Target("min_sqnr", floor)
        settings = project.config.settings
        evaluator = Evaluator(project.compiler, data, project.config.output_names)
        start = evaluator.evaluate(project.compile(settings))
        began = time.perf_counter()
        found = evaluator.sensitivity(settings)
        sweep = time.perf_counter() - began
        base_bytes = project.compile(settings).npu_bytes
        n_met, n_bytes, _, n_evals = naive(project, evaluator, target, settings, found)
        fresh = Evaluator(project.compiler, data, project.config.output_names)
        fresh.evaluate(project.compile(settings))
        result = Search(project, fresh, target).run(settings)
        ratio = result.seconds / sweep
        print(
            f"{name:14} {'>= ' + format(floor, 'g') + ' dB':>12} {start.output_sqnr_db:7.1f}dB | {str(n_met):>10} {n_bytes - base_bytes:>9,} {n_evals:>6} | "
            f"{str(result.met):>8} {result.after[1] - base_bytes:>9,} {len(result.changes):>7} {result.evaluations:>6} {result.seconds:>8.1f} | "
            f"{sweep:>7.1f} {ratio:>8.1f}x",
            flush=True,
        )
        if n_met and (not result.met or result.after[1] > n_bytes):
            print("   ^ the search did worse than the baseline")


if __name__ == "__main__":
    main()
