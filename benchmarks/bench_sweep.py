"""Sensitivity sweep on real models, side by side with bare onnxruntime in the same run.

Speed: the sweep on PP-OCRv4 rec (weights in Constant nodes, 1x3x48x320, 4 samples) against a bare
script that makes L+1 float forward passes over the same samples (L = number of weights). Target 1.5x.
Memory: peak RSS of `npu-tui eval --sensitivity` on PP-OCRv4 det (1x3x320x320, 4 samples), and of
`npu-tui eval --layers` on PP-OCRv4 rec (1x3x48x320, 4 samples), each against a bare script running
the float model over the same samples. Target 4x.

Needs the corpus of benchmarks/realmodels.py (downloaded on first use).
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from realmodels import CORPUS, PEAK_WRAPPER, extract, write_config  # noqa: E402

SAMPLES = 4
REPEATS = 3
BARE_FLOAT = """
import sys, numpy as np, onnxruntime as ort
session = ort.InferenceSession(sys.argv[1], providers=["CPUExecutionProvider"])
data = np.load(sys.argv[2])
feeds = {i.name: data[i.name].reshape(-1, *data[i.name].shape[2:]) for i in session.get_inputs()}
session.run(None, feeds)
hwm = next(l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM'))
print(hwm)
"""


def model(name: str):
    return next(m for m in CORPUS if m.name == name)


def prepare(name: str) -> tuple[Path, Path]:
    entry = model(name)
    path = extract(entry)
    config = write_config(path.parent, entry, "config.yaml", True)
    shape = entry.input_ops["x"]
    data = path.parent / "bench.npz"
    np.savez(data, x=np.random.default_rng(0).uniform(-1, 1, (SAMPLES, *shape)).astype(np.float32))
    return config, data


def speed() -> None:
    import onnxruntime as ort

    from npu_tui.core.config.project import open_project
    from npu_tui.core.sim.analysis import Analysis
    from npu_tui.core.sim.eval_data import load_npz, model_inputs
    from npu_tui.core.sim.evaluate import Evaluator

    config, data_path = prepare("ocr_rec_v4")
    project = open_project(config)
    weights = len(project.inventory.weights)
    data = load_npz(data_path, model_inputs(project.inventory.model, project.config.input_shapes))
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(str(project.inventory.path), options, providers=["CPUExecutionProvider"])
    batch = {"x": data.inputs["x"].reshape(-1, *data.inputs["x"].shape[2:])}
    singles = [{"x": data.inputs["x"][i]} for i in range(SAMPLES)]
    bare, bare_batched, cold, warm = [], [], [], []
    for _ in range(REPEATS):
        start = time.perf_counter()
        for _ in range(weights + 1):
            for single in singles:
                session.run(None, single)
        bare.append(time.perf_counter() - start)
        start = time.perf_counter()
        for _ in range(weights + 1):
            session.run(None, batch)
        bare_batched.append(time.perf_counter() - start)
        analysis = Analysis(Evaluator(project.compiler, data, project.config.output_names))
        analysis.evaluate(project.compile())  # the model numbers come first, as in the workbench
        start = time.perf_counter()
        analysis.sensitivity(project.config.settings)
        cold.append(time.perf_counter() - start)
        start = time.perf_counter()
        analysis.sensitivity(project.config.settings)
        warm.append(time.perf_counter() - start)
    b, bb, c, w = (statistics.median(v) for v in (bare, bare_batched, cold, warm))
    print(f"sweep speed, PP-OCRv4 rec 1x3x48x320, {SAMPLES} samples, {weights} weights in Constant nodes (median of {REPEATS})")
    print(f"  bare onnxruntime, {weights + 1} passes of each 1x3x48x320 sample : {b:6.2f} s")
    print(f"  bare onnxruntime, {weights + 1} passes of the 4 samples batched  : {bb:6.2f} s")
    print(
        f"  npu-tui sweep, first (builds cut sessions)              : {c:6.2f} s  ({c / b:.2f}x per-sample, {c / bb:.2f}x batched; target <= 1.5x)"
    )
    print(
        f"  npu-tui sweep, again (sessions kept)                    : {w:6.2f} s  ({w / b:.2f}x per-sample, {w / bb:.2f}x batched)"
    )


def bare_kb(config: Path, data: Path) -> int:
    """Peak RSS of the bare float run of the config's model over the data."""
    model_path = config.parent / "model.onnx"
    found = subprocess.run(
        [sys.executable, "-c", BARE_FLOAT, str(model_path), str(data)], capture_output=True, text=True, check=True
    )
    return int(found.stdout)


def ours_kb(*args: str) -> int:
    """Peak RSS of an npu-tui command."""
    result = subprocess.run([sys.executable, "-c", PEAK_WRAPPER, *args], capture_output=True, text=True, check=True)
    return next(int(line.split()[1]) for line in result.stderr.splitlines() if line.startswith("PEAK_KB"))


MEMORY_CASES = [  # (corpus model, eval's flag, what the line says)
    ("ocr_det_v4", "--sensitivity", "sweep memory, PP-OCRv4 det 1x3x320x320"),
    ("ocr_rec_v4", "--layers", "layer memory, PP-OCRv4 rec 1x3x48x320"),
]


def memory() -> None:
    for name, flag, title in MEMORY_CASES:
        config, data = prepare(name)
        bare = bare_kb(config, data)
        ours = ours_kb("eval", str(config), "--data", str(data), flag, "--json")
        note = " (layers on the first: 192 MB of float layers)" if flag == "--layers" else ""
        print(f"{title}, {SAMPLES} samples{note}")
        print(f"  bare onnxruntime float run     : {bare / 1024:7.0f} MB peak RSS")
        print(f"  npu-tui eval {flag:17} : {ours / 1024:7.0f} MB peak RSS  ({ours / bare:.2f}x, target <= 4x)")


if __name__ == "__main__":
    speed()
    memory()
