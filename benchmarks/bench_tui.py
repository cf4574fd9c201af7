"""Key press to repaint in the workbench on a synthetic model with 2,000 weights, at 80x24, headless.

A key is pressed and the time of the first frame the app renders after it is taken: key press to
repaint. Measured for moving the selection (j), toggling a weight (x, after a complete sweep, so that
every toggle relabels all 2,000 leaves stale or current), and recompiling and
re-testing it (ctrl+r until the model-level numbers are shown; the sensitivity sweep of all 2,000
weights goes on in the background worker and is timed once to its end). The histogram is drawn a
moment after the cursor stops, in a later frame: "histogram drawn" times the last frame of a move.
Baseline, in the same run: a bare Textual app with a 2,000-leaf Tree, moving its cursor and
relabelling one leaf.
"""

from __future__ import annotations

import asyncio
import statistics
import subprocess
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


def save_chain(folder: Path, nodes: list, inits: list, output: str, width: int, samples: int, rng: np.random.Generator) -> Path:
    """A chain model with one input `x` [n, width], its eval.npz and an all-quantized config."""
    graph = helper.make_graph(
        nodes,
        folder.name,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", width])],
        [helper.make_tensor_value_info(output, TensorProto.FLOAT, ["n", width])],
        inits,
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(folder / "model.onnx"))
    np.savez(folder / "eval.npz", x=rng.normal(size=(samples, width)).astype(np.float32))
    config = folder / "config.yaml"
    config.write_text("CORENAME: GRUS\nONNX_FILE: model.onnx\nCOMPRESS: true\nCONV2D_COMPRESS: true\n")
    return config


def build(folder: Path) -> Path:
    rng = np.random.default_rng(0)
    nodes, inits, current = [], [], "x"
    for i in range(WEIGHTS):
        name = f"block{i // 50}/layer{i % 50}.weight"
        inits.append(numpy_helper.from_array((rng.normal(0, 1 / np.sqrt(WIDTH), (WIDTH, WIDTH))).astype(np.float32), name))
        nodes.append(helper.make_node("MatMul", [current, name], [f"h{i}"], name=f"block{i // 50}/layer{i % 50}"))
        current = f"h{i}"
    return save_chain(folder, nodes, inits, current, WIDTH, SAMPLES, rng)


class BareTree(App[None]):
    def compose(self) -> ComposeResult:
        tree: Tree[str] = Tree("weights")
        for i in range(WEIGHTS):
            tree.root.add_leaf(Text(f"q block{i // 50}/layer{i % 50}.weight 42.0"), data=str(i))
        tree.root.expand()
        yield tree


class Frames:
    """Times of the frames the app renders for its terminal (headless: rendered, then not written)."""

    def __init__(self, app: App) -> None:
        self.times: list[float] = []
        original = app._display

        def display(screen, renderable) -> None:
            if renderable is not None:
                self.times.append(time.perf_counter())
            original(screen, renderable)

        app._display = display

    def after(self, start: float) -> list[float]:
        return [(t - start) * 1000 for t in self.times if t > start]


async def timed(pilot, key: str, frames: Frames, last: bool = False) -> float:
    """Milliseconds from the key press to the first frame written after it (or the last one)."""
    start = time.perf_counter()
    await pilot.press(key)
    await pilot.pause(0.15 if last else 0)
    written = frames.after(start)
    return (written[-1] if last else written[0]) if written else float("nan")


async def until_evaluated(pilot) -> None:
    """Until the model numbers are in (the first test starts only after the first frame)."""
    while pilot.app.main_screen.running == "evaluating..." or pilot.app.workbench.evaluation is None:
        await asyncio.sleep(0.005)
    await pilot.pause()


async def until_frame_after(frames: Frames, moment: float) -> float:
    """The time of the first frame rendered after `moment`."""
    while not any(t > moment for t in frames.times):
        await asyncio.sleep(0.002)
    return next(t for t in frames.times if t > moment)


async def measure_bare() -> dict[str, list[float]]:
    app = BareTree()
    async with app.run_test(size=(80, 24)) as pilot:
        frames = Frames(app)
        tree = app.query_one(Tree)
        tree.focus()
        await pilot.pause()
        moves = [await timed(pilot, "down", frames) for _ in range(PRESSES)]
        relabels = []
        for i in range(PRESSES):
            start = time.perf_counter()
            tree.cursor_node.set_label(Text(f"{'xq'[i % 2]} block0/layer{i}.weight 73.8"))
            await pilot.pause()
            written = frames.after(start)
            relabels.append(written[0] if written else float("nan"))
    return {"move": moves, "toggle": relabels}


async def measure_workbench(config: Path) -> dict[str, list[float]]:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from npu_tui.core.config.project import open_project
    from npu_tui.core.sim.eval_data import load_npz, model_inputs
    from npu_tui.core.workbench import Workbench
    from npu_tui.tui.app import NpuTuiApp

    start = time.perf_counter()
    project = open_project(config)
    data = load_npz(config.parent / "eval.npz", model_inputs(project.inventory.model))
    app = NpuTuiApp(Workbench(project, data))
    frames = Frames(app)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        first_screen = (frames.times[0] - start) * 1000
        await until_evaluated(pilot)
        await pilot.press("escape")  # stop the first sweep: measure the keys on an idle workbench
        while app.main_screen.running is not None:  # a cancelled thread worker ends after its current step
            await asyncio.sleep(0.01)
        moves = [await timed(pilot, "j", frames) for _ in range(PRESSES)]
        drawn = [await timed(pilot, "j", frames, last=True) for _ in range(PRESSES // 4)]
        recompiles = []
        for _ in range(3):
            begin = time.perf_counter()
            press = asyncio.create_task(pilot.press("ctrl+r"))  # press() returns only once the app is idle
            while app.main_screen.running in (None, "evaluating..."):
                await asyncio.sleep(0.002)
            shown = await until_frame_after(frames, time.perf_counter())  # the frame with the model numbers
            recompiles.append((shown - begin) * 1000)
            await press
            await pilot.press("escape")
            while app.main_screen.running is not None:  # a cancelled thread worker ends after its current run
                await asyncio.sleep(0.01)
        begin = time.perf_counter()
        await pilot.press("ctrl+r")
        await until_evaluated(pilot)
        busy_moves = [await timed(pilot, "j", frames) for _ in range(PRESSES)]
        await app.workers.wait_for_complete()
        sweep = (time.perf_counter() - begin) * 1000
        await pilot.pause()
        # after a complete sweep every toggle turns all 2,000 alone numbers stale or current again: the
        # worst case, and the same in every run (after a stopped sweep it depended on where it stopped)
        toggles = [await timed(pilot, "x", frames) for _ in range(PRESSES)]
    return {
        "move": moves,
        "move, histogram drawn": drawn,
        "toggle": toggles,
        "move while the sweep runs": busy_moves,
        "recompile": recompiles,
        "sensitivity sweep (background)": [sweep],
        "first screen": [first_screen],
    }


SAMPLE_START = """
import asyncio, sys, time
from pathlib import Path
from npu_tui.cli import SAMPLE_CONFIG
from npu_tui.core.sim.eval_data import load_npz, model_inputs
from npu_tui.core.config.project import open_project
from npu_tui.core.workbench import Workbench
from npu_tui.tui.app import NpuTuiApp

async def run():
    project = open_project(SAMPLE_CONFIG)
    data = load_npz(SAMPLE_CONFIG.parent / "eval.npz", model_inputs(project.inventory.model, project.config.input_shapes))
    app = NpuTuiApp(Workbench(project, data))
    frames = []
    display = app._display

    def first_frame(screen, renderable):
        if renderable is not None and not frames:
            frames.append(time.time())
        display(screen, renderable)

    app._display = first_frame
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        await app.workers.wait_for_complete()
    print(frames[0])

asyncio.run(run())
"""


def sample_first_screen() -> float:
    """Milliseconds from starting a Python process to the first frame on the kws_tdnn sample."""
    start = time.time()
    out = subprocess.run([sys.executable, "-c", SAMPLE_START], capture_output=True, text=True, check=True).stdout
    return (float(out.split()[0]) - start) * 1000


def main() -> None:
    bare = asyncio.run(measure_bare())
    with tempfile.TemporaryDirectory() as tmp:
        config = build(Path(tmp))
        ours = asyncio.run(measure_workbench(config))
    ours["first screen, kws_tdnn sample, new process"] = [sample_first_screen() for _ in range(3)]
    print(f"{WEIGHTS} weights, 80x24, median milliseconds from key press to repaint")
    print(f"{'action':34} {'npu-tui':>9} {'bare Tree':>10}")
    for action in ours:
        base = f"{statistics.median(bare[action]):10.1f}" if action in bare else f"{'-':>10}"
        print(f"{action:34} {statistics.median(ours[action]):9.1f} {base}")
    print("targets: move and toggle under 50 ms")


if __name__ == "__main__":
    main()
