"""Key press to repaint in the workbench on a synthetic model with 2,000 weights, at 80x24, headless.

Measured for moving the selection (j), toggling a weight (x), and recompiling and re-testing it
(ctrl+r until the model-level numbers are shown; the sensitivity sweep of all 2,000 weights goes on
in the background worker and is timed once to its end). Baseline, in the same run: a bare Textual
app with a 2,000-leaf Tree, moving its cursor and relabelling one leaf.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from rich.text import Text
from textual.app import App, ComposeResult
from textual.widgets import Tree

WEIGHTS, WIDTH, SAMPLES, PRESSES = 2000, 8, 32, 40


def build(folder: Path) -> Path:
    rng = np.random.default_rng(0)
    nodes, inits, current = [], [], "x"
    for i in range(WEIGHTS):
        name = f"block{i // 50}/layer{i % 50}.weight"
        inits.append(numpy_helper.from_array((rng.normal(0, 1 / np.sqrt(WIDTH), (WIDTH, WIDTH))).astype(np.float32), name))
        nodes.append(helper.make_node("MatMul", [current, name], [f"h{i}"], name=f"block{i // 50}/layer{i % 50}"))
        current = f"h{i}"
    graph = helper.make_graph(
        nodes, "bench_tui",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", WIDTH])],
        [helper.make_tensor_value_info(current, TensorProto.FLOAT, ["n", WIDTH])],
        inits,
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(folder / "model.onnx"))
    np.savez(folder / "eval.npz", x=rng.normal(size=(SAMPLES, WIDTH)).astype(np.float32))
    config = folder / "config.yaml"
    config.write_text("CORENAME: GRUS\nONNX_FILE: model.onnx\nCOMPRESS: true\nCONV2D_COMPRESS: true\n")
    return config


class Empty(App[None]):
    """The floor: what Pilot's press-and-wait costs on an app that does nothing."""


class BareTree(App[None]):
    def compose(self) -> ComposeResult:
        tree: Tree[str] = Tree("weights")
        for i in range(WEIGHTS):
            tree.root.add_leaf(Text(f"q block{i // 50}/layer{i % 50}.weight 42.0"), data=str(i))
        tree.root.expand()
        yield tree


async def timed(pilot, key: str) -> float:
    start = time.perf_counter()
    await pilot.press(key)
    await pilot.pause()
    return (time.perf_counter() - start) * 1000


async def until_evaluated(pilot) -> None:
    while pilot.app.running == "evaluating...":
        await asyncio.sleep(0.005)
    await pilot.pause()


async def measure_bare() -> dict[str, list[float]]:
    app = BareTree()
    async with app.run_test(size=(80, 24)) as pilot:
        tree = app.query_one(Tree)
        tree.focus()
        await pilot.pause()
        moves = [await timed(pilot, "down") for _ in range(PRESSES)]
        relabels = []
        for i in range(PRESSES):
            start = time.perf_counter()
            tree.root.children[i].set_label(Text(f"x block0/layer{i}.weight 73.8"))
            await pilot.pause()
            relabels.append((time.perf_counter() - start) * 1000)
    async with Empty().run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        floor = [await timed(pilot, "down") for _ in range(PRESSES)]
    return {"move": moves, "toggle": relabels, "floor": floor}


async def measure_workbench(config: Path) -> dict[str, list[float]]:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from npu_tui.core.eval_data import load_npz, model_inputs
    from npu_tui.core.project import open_project
    from npu_tui.core.workbench import Workbench
    from npu_tui.tui.app import NpuTuiApp

    start = time.perf_counter()
    project = open_project(config)
    data = load_npz(config.parent / "eval.npz", model_inputs(project.inventory.model))
    app = NpuTuiApp(Workbench(project, data))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        first_screen = (time.perf_counter() - start) * 1000
        await until_evaluated(pilot)
        await pilot.press("escape")  # stop the first sweep: measure the keys on an idle workbench
        await app.workers.wait_for_complete()
        moves = [await timed(pilot, "j") for _ in range(PRESSES)]
        toggles = [await timed(pilot, "x") for _ in range(PRESSES)]
        recompiles = []
        for _ in range(3):
            begin = time.perf_counter()
            await pilot.press("ctrl+r")
            await until_evaluated(pilot)
            recompiles.append((time.perf_counter() - begin) * 1000)
            await pilot.press("escape")
            await app.workers.wait_for_complete()
        begin = time.perf_counter()
        await pilot.press("ctrl+r")
        await app.workers.wait_for_complete()
        sweep = (time.perf_counter() - begin) * 1000
    return {"move": moves, "toggle": toggles, "recompile": recompiles, "sensitivity sweep (background)": [sweep], "first screen": [first_screen]}


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        config = build(Path(tmp))
        ours = asyncio.run(measure_workbench(config))
    bare = asyncio.run(measure_bare())
    floor = statistics.median(bare["floor"])
    print(f"{WEIGHTS} weights, 80x24, median milliseconds from key press until the app is idle again")
    print(f"Pilot's own press-and-wait on an empty app (the floor, in every figure): {floor:.1f} ms")
    print(f"{'action':34} {'npu-tui':>9} {'- floor':>8} {'bare Tree':>10}")
    for action in ("move", "toggle", "recompile", "sensitivity sweep (background)", "first screen"):
        ours_ms = statistics.median(ours[action])
        net = f"{ours_ms - floor:8.1f}" if action in ("move", "toggle") else f"{'':8}"
        base = f"{statistics.median(bare[action]):10.1f}" if action in bare else f"{'-':>10}"
        print(f"{action:34} {ours_ms:9.1f} {net} {base}")
    print("targets: move and toggle under 50 ms above the floor")


if __name__ == "__main__":
    main()
