"""`npu-tui eval --sensitivity` against a bare onnxruntime loop, side by side in one run.

The model has 48 quantizable weights (24 convolutions, 24 fully-connected). The bare loop builds one
session of the float model and makes one forward pass per weight plus one over the same inputs: what
any sensitivity sweep must at least do. Each side runs as its own process; median of --repeat runs.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

CONVS, FCS, CHANNELS, FRAMES, WIDTH, SAMPLES = 24, 24, 64, 16, 256, 256

BARE_LOOP = """
import sys, numpy as np, onnxruntime as ort
data = np.load(sys.argv[2])
session = ort.InferenceSession(sys.argv[1], providers=["CPUExecutionProvider"])
for _ in range(int(sys.argv[3]) + 1):
    session.run(None, {"x": data["x"]})
"""


def build(folder: Path) -> None:
    rng = np.random.default_rng(0)
    nodes, inits, current = [], [], "x"
    for i in range(CONVS):
        inits.append(numpy_helper.from_array(rng.normal(0, 0.1, (CHANNELS, CHANNELS, 3)).astype(np.float32), f"conv{i}.weight"))
        nodes += [
            helper.make_node("Conv", [current, f"conv{i}.weight"], [f"c{i}"], name=f"conv{i}", pads=[1, 1]),
            helper.make_node("Relu", [f"c{i}"], [f"cr{i}"], name=f"conv{i}.relu"),
        ]
        current = f"cr{i}"
    nodes.append(helper.make_node("Flatten", [current], ["flat"], name="flatten"))
    current, width = "flat", CHANNELS * FRAMES
    for i in range(FCS):
        inits.append(numpy_helper.from_array(rng.normal(0, 0.05, (width, WIDTH)).astype(np.float32), f"fc{i}.weight"))
        nodes += [
            helper.make_node("MatMul", [current, f"fc{i}.weight"], [f"f{i}"], name=f"fc{i}"),
            helper.make_node("Relu", [f"f{i}"], [f"fr{i}"], name=f"fc{i}.relu"),
        ]
        current, width = f"fr{i}", WIDTH
    graph = helper.make_graph(
        nodes,
        "bench_eval",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", CHANNELS, FRAMES])],
        [helper.make_tensor_value_info(current, TensorProto.FLOAT, ["n", WIDTH])],
        inits,
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(folder / "model.onnx"))
    np.savez(folder / "data.npz", x=rng.normal(size=(SAMPLES, CHANNELS, FRAMES)).astype(np.float32))
    (folder / "config.yaml").write_text("CORENAME: GRUS\nONNX_FILE: model.onnx\nCOMPRESS: true\nCONV2D_COMPRESS: true\n")


def seconds(command: list[str], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        build(folder)
        weights = CONVS + FCS
        ours = seconds(
            [
                sys.executable,
                "-m",
                "npu_tui",
                "eval",
                str(folder / "config.yaml"),
                "--data",
                str(folder / "data.npz"),
                "--sensitivity",
                "--json",
            ],
            args.repeat,
        )
        bare = seconds(
            [sys.executable, "-c", BARE_LOOP, str(folder / "model.onnx"), str(folder / "data.npz"), str(weights)], args.repeat
        )
    print(f"model: {weights} quantizable weights, {SAMPLES} samples; median of {args.repeat} runs")
    print(f"{'command':44} {'seconds':>8}")
    print(f"{'npu-tui eval --sensitivity':44} {ours:8.2f}")
    print(f"{f'bare onnxruntime loop ({weights + 1} passes)':44} {bare:8.2f}")
    print(f"npu-tui / bare = {ours / bare:.2f}x (target <= 2x)")


if __name__ == "__main__":
    main()
