"""The layer view on a model with 500 nodes: what the per-layer numbers cost against one plain
evaluation, side by side in one run, and how long the view takes to open once they are computed.

Model: 250 blocks of MatMul (64x64 weight) + Relu, 500 nodes, 64 samples.
- plain evaluation: `Evaluator.evaluate` after a settings change (sessions built, weights rebound);
- layer numbers: `LayerAnalysis.layers` after the same change (the NPU run with every layer exposed
  plus the run of the isolated copies; the float layers are computed once and kept while all of them
  fit in KEPT_BYTES, else run again). Target 2x.
- view: key `d` to the first frame rendered with the 500 layers in the table. Target 100 ms.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from onnx import helper, numpy_helper

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench_tui import Frames, save_chain  # noqa: E402

BLOCKS, WIDTH, SAMPLES, REPEATS = 250, 64, 64, 5


def build(folder: Path) -> Path:
    rng = np.random.default_rng(0)
    nodes, inits, current = [], [], "x"
    for i in range(BLOCKS):
        inits.append(
            numpy_helper.from_array(rng.normal(0, 1.4 / np.sqrt(WIDTH), (WIDTH, WIDTH)).astype(np.float32), f"block{i}.weight")
        )
        nodes.append(helper.make_node("MatMul", [current, f"block{i}.weight"], [f"m{i}"], name=f"block{i}.fc"))
        nodes.append(helper.make_node("Relu", [f"m{i}"], [f"r{i}"], name=f"block{i}.relu"))
        current = f"r{i}"
    return save_chain(folder, nodes, inits, current, WIDTH, SAMPLES, rng)


def costs(config: Path, title: str = "") -> None:
    from npu_tui.core.config.project import open_project
    from npu_tui.core.sim.analysis import Analysis
    from npu_tui.core.sim.eval_data import load_npz, model_inputs
    from npu_tui.core.sim.evaluate import Evaluator

    project = open_project(config)
    data = load_npz(config.parent / "eval.npz", model_inputs(project.inventory.model, project.config.input_shapes))
    analysis = Analysis(Evaluator(project.compiler, data, project.config.output_names))
    base = project.config.settings
    names = [w.name for w in project.inventory.weights]
    start = time.perf_counter()
    analysis.evaluate(project.compile(base))
    analysis.layer_analysis().layers(project.compile(base), True)
    first = time.perf_counter() - start
    plain, layers = [], []
    for i in range(REPEATS):
        compilation = project.compile(replace(base, exclude=(names[i],)))
        start = time.perf_counter()
        analysis.evaluate(compilation)
        plain.append(time.perf_counter() - start)
        start = time.perf_counter()
        found = analysis.layer_analysis().layers(compilation, True)
        layers.append(time.perf_counter() - start)
    p, la = statistics.median(plain), statistics.median(layers)
    analysed = analysis.layer_analysis().samples
    print(
        f"{title or '500-node model'} ({len(found)} layers), {data.samples} samples (layers on {analysed}), median of {REPEATS} settings changes"
    )
    print(f"  plain evaluation                 : {p * 1000:7.1f} ms")
    print(f"  layer numbers (accum + isolated) : {la * 1000:7.1f} ms  ({la / p:.2f}x, target <= 2x)")
    print(f"  first time, sessions and float layers included: {first * 1000:.0f} ms")


async def view(config: Path) -> None:
    from npu_tui.core.config.project import open_project
    from npu_tui.core.sim.eval_data import load_npz, model_inputs
    from npu_tui.core.workbench import Workbench
    from npu_tui.tui.app import NpuTuiApp
    from npu_tui.tui.layer_view import LayerTable

    project = open_project(config)
    data = load_npz(config.parent / "eval.npz", model_inputs(project.inventory.model))
    app = NpuTuiApp(Workbench(project, data))
    frames = Frames(app)
    opened = []
    async with app.run_test(size=(80, 24)) as pilot:
        while app.workbench.layers is None:
            await asyncio.sleep(0.05)
        await pilot.press("escape")  # stop the sweep: measure on an idle workbench
        await app.workers.wait_for_complete()
        for _ in range(REPEATS):
            start = time.perf_counter()
            await pilot.press("d")
            await pilot.pause()
            drawn = [t for t in frames.after(start)]
            assert app.main(LayerTable).row_count == 2 * BLOCKS
            opened.append(drawn[0] if drawn else float("nan"))
            await pilot.press("t")  # away, so that the next d opens the view again
            await pilot.pause()
    print(f"  open the layer view (d, to the first frame): {statistics.median(opened):.0f} ms (target <= 100 ms)")


CORPUS_CASES = ("ocr_cls_v2", "ocr_rec_v4")  # with --corpus: needs `make realmodels`' downloads
CORPUS_SAMPLES = 16


def corpus() -> None:
    import onnx
    from realmodels import CORPUS, extract, write_config, write_data

    for name in CORPUS_CASES:
        model = next(m for m in CORPUS if m.name == name)
        path = extract(model)
        config = write_config(path.parent, model, "config.yaml", True)
        write_data(path.parent, onnx.load(str(path)), model, CORPUS_SAMPLES)
        costs(config, name)


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as folder:
        config = build(Path(folder))
        costs(config)
        asyncio.run(view(config))
    if "--corpus" in sys.argv:
        corpus()
