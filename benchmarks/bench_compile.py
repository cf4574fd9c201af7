"""`npu-tui compile --json --sim` on a 25M-parameter model, side by side with two baselines run now.

(a) a bare script: onnx.load, then one numpy quantize-dequantize pass per weight, nothing else;
(b) onnxruntime.quantization.quantize_dynamic on the same model.
Each runs as its own process; wall time and peak RSS (from wait4) are the median of --repeat runs.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

BARE_SCRIPT = """
import sys, numpy as np, onnx
from onnx import numpy_helper
model = onnx.load(sys.argv[1])
weights = {n.input[1] for n in model.graph.node if n.op_type in ("MatMul", "Conv")}
for t in model.graph.initializer:
    if t.name not in weights:
        continue
    w = numpy_helper.to_array(t)
    lo, hi = min(0.0, float(w.min())), max(0.0, float(w.max()))
    scale = (hi - lo) / 255
    zp = round(-lo / scale)
    q = np.floor((np.clip(w, -zp * scale, (255 - zp) * scale) + zp * scale) / scale + 0.5)
    deq = (q * scale - zp * scale).astype(np.float16)
"""

DYNAMIC_SCRIPT = """
import sys
from onnxruntime.quantization import QuantType, quantize_dynamic
quantize_dynamic(sys.argv[1], sys.argv[2], weight_type=QuantType.QUInt8)
"""


def build_model(path: Path, seed: int = 0) -> None:
    """8 convolutions 256->256 (3x3) then 4 fully-connected layers: 25.6M parameters."""
    rng = np.random.default_rng(seed)
    nodes, inits = [], []
    current = "x"
    for i in range(8):
        w = rng.normal(0, 0.02, (256, 256, 3, 3)).astype(np.float32)
        inits += [
            numpy_helper.from_array(w, f"conv{i}.weight"),
            numpy_helper.from_array(np.zeros(256, np.float32), f"conv{i}.bias"),
        ]
        nodes.append(
            helper.make_node("Conv", [current, f"conv{i}.weight", f"conv{i}.bias"], [f"c{i}"], name=f"conv{i}", pads=[1, 1, 1, 1])
        )
        nodes.append(helper.make_node("Relu", [f"c{i}"], [f"r{i}"], name=f"relu{i}"))
        current = f"r{i}"
    nodes.append(helper.make_node("Flatten", [current], ["flat"], name="flatten"))
    current, width = "flat", 256 * 4 * 4
    for i, out in enumerate((2048, 2048, 2048, 2048)):
        w = rng.standard_t(4, (width, out)).astype(np.float32) * 0.01
        inits.append(numpy_helper.from_array(w, f"fc{i}.weight"))
        nodes.append(helper.make_node("MatMul", [current, f"fc{i}.weight"], [f"h{i}"], name=f"fc{i}"))
        current, width = f"h{i}", out
    graph = helper.make_graph(
        nodes,
        "bench",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 256, 4, 4])],
        [helper.make_tensor_value_info(current, TensorProto.FLOAT, [1, width])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(model, str(path))


def measure(command: list[str], repeat: int) -> tuple[float, float]:
    """Median wall seconds and median peak RSS in MB of `command`, each run in a fresh process."""
    times, peaks = [], []
    for _ in range(repeat):
        start = time.perf_counter()
        proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        _, status, usage = os.wait4(proc.pid, 0)
        times.append(time.perf_counter() - start)
        if os.waitstatus_to_exitcode(status) != 0:
            raise SystemExit(f"failed: {' '.join(command)}\n{proc.stderr.read().decode()}")
        peaks.append(usage.ru_maxrss / 1024)
    return statistics.median(times), statistics.median(peaks)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--build", metavar="PATH", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.build:
        build_model(Path(args.build))
        return
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        # built in its own process: a child inherits its parent's peak RSS, which would mask the figures
        subprocess.run([sys.executable, __file__, "--build", str(folder / "model.onnx")], check=True)
        params = sum(
            int(np.prod(t.dims)) for t in onnx.load(str(folder / "model.onnx"), load_external_data=False).graph.initializer
        )
        size_mb = (folder / "model.onnx").stat().st_size / 2**20
        (folder / "config.yaml").write_text(
            "CORENAME: GRUS\nONNX_FILE: model.onnx\nCOMPRESS: true\nCONV2D_COMPRESS: true\n", encoding="utf-8"
        )
        py = sys.executable
        rows = [
            (
                "npu-tui compile --json --sim",
                [py, "-m", "npu_tui", "compile", "--json", "--sim", str(folder / "sim.onnx"), str(folder / "config.yaml")],
            ),
            ("(a) bare onnx + numpy pass", [py, "-c", BARE_SCRIPT, str(folder / "model.onnx")]),
            ("(b) ORT quantize_dynamic", [py, "-c", DYNAMIC_SCRIPT, str(folder / "model.onnx"), str(folder / "dyn.onnx")]),
        ]
        results = {label: measure(cmd, args.repeat) for label, cmd in rows}
    print(f"model: {params / 1e6:.1f}M parameters, {size_mb:.0f} MB file; median of {args.repeat} runs")
    print(f"{'command':32} {'seconds':>8} {'peak MB':>8} {'peak/file':>9}")
    for label, (seconds, peak) in results.items():
        print(f"{label:32} {seconds:8.2f} {peak:8.0f} {peak / size_mb:9.2f}")
    ours, bare, dyn = (results[label][0] for label, _ in rows)
    print(f"npu-tui / bare = {ours / bare:.2f}x (target <= 1.5x); npu-tui / quantize_dynamic = {ours / dyn:.2f}x (target < 1x)")


if __name__ == "__main__":
    main()
