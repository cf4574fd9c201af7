"""How long opening a TensorFlow frozen graph takes, converted (first open) and from the cache (second).

    python benchmarks/bench_tf.py [--repeat N]

Graphs: the vendor's mnist example (../shared/gxnpuc/vendor_mnist, when it is there), the kws_tdnn_pb
sample, and a generated 50-weight graph (25 conv1d + 25 fully-connected layers, written here without
TensorFlow). Each figure is the best of N runs of `load_model` (conversion or cache read, plus the checks),
with XDG_CACHE_HOME pointed at a fresh folder for the first open.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from npu_tui.core.model.onnx_file import load_model  # noqa: E402
from npu_tui.core.model.tf.writer import GraphWriter  # noqa: E402

VALID = {"strides": [1, 1, 1, 1], "padding": "VALID", "data_format": "NHWC", "dilations": [1, 1, 1, 1]}


def fifty_weights(path: Path) -> dict[str, list[int]]:
    rng = np.random.default_rng(0)
    g = GraphWriter()
    g.placeholder("x", [1, 40, 32])
    x = "x"
    for i in range(25):
        scope = f"tdnn{i}"
        g.variable(f"{scope}/kernel", rng.normal(size=(3, 32, 32)).astype(np.float32) * 0.1)
        g.const(f"{scope}/conv1d/ExpandDims/dim", np.array(1, np.int32))
        g.node(f"{scope}/conv1d/ExpandDims", "ExpandDims", [x, f"{scope}/conv1d/ExpandDims/dim"], Tdim=3)
        g.const(f"{scope}/conv1d/ExpandDims_1/dim", np.array(0, np.int32))
        g.node(f"{scope}/conv1d/ExpandDims_1", "ExpandDims", [f"{scope}/kernel/read", f"{scope}/conv1d/ExpandDims_1/dim"], Tdim=3)
        g.node(
            f"{scope}/conv1d",
            "Conv2D",
            [f"{scope}/conv1d/ExpandDims", f"{scope}/conv1d/ExpandDims_1"],
            **{**VALID, "padding": "SAME"},
        )
        g.node(f"{scope}/conv1d/Squeeze", "Squeeze", [f"{scope}/conv1d"], squeeze_dims=[1])
        x = g.node(f"{scope}/Relu", "Relu", [f"{scope}/conv1d/Squeeze"])
    g.const("flat/shape", np.array([40, 32], np.int32))
    x = g.node("flat", "Reshape", [x, "flat/shape"], Tshape=3)
    for i in range(25):
        g.variable(f"fc{i}/weights", rng.normal(size=(32, 32)).astype(np.float32) * 0.1)
        g.variable(f"fc{i}/bias", rng.normal(size=(32,)).astype(np.float32) * 0.1)
        mm = g.node(f"fc{i}/MatMul", "MatMul", [x, f"fc{i}/weights/read"], transpose_a=False, transpose_b=False)
        x = g.node(f"fc{i}/Relu", "Relu", [g.node(f"fc{i}/BiasAdd", "BiasAdd", [mm, f"fc{i}/bias/read"])])
    g.node("output", "Identity", [x])
    path.write_bytes(g.serialize())
    return {"x": [1, 40, 32]}


def best(repeat: int, run) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench_tf_"))
    graphs: list[tuple[str, Path, dict[str, list[int]]]] = []
    mnist = ROOT.parent / "shared" / "gxnpuc" / "vendor_mnist" / "generated_pb" / "mnist_with_ckpt.pb"
    if mnist.is_file():
        graphs.append(("vendor mnist", mnist, {"input_x": [1, 784]}))
    graphs.append(("kws_tdnn_pb", ROOT / "sample_models" / "kws_tdnn_pb" / "model.pb", {"features": [1, 8, 8]}))
    graphs.append(("50 weights", work / "fifty.pb", fifty_weights(work / "fifty.pb")))
    print(f"{'graph':<14} {'nodes':>6} {'size':>9} {'convert ms':>11} {'cached ms':>10}")
    for label, pb, shapes in graphs:
        convert, cached, nodes = measure(pb, shapes, work, args.repeat)
        print(f"{label:<14} {nodes:>6} {pb.stat().st_size:>9,} {convert * 1000:>11.1f} {cached * 1000:>10.1f}")


def measure(pb: Path, shapes: dict[str, list[int]], work: Path, repeat: int) -> tuple[float, float, int]:
    """(best first open, best cached open, ONNX nodes): each first open gets a cache folder of its own."""
    counter = iter(range(10_000))

    def cold() -> None:
        os.environ["XDG_CACHE_HOME"] = str(work / f"cold{next(counter)}")
        load_model(pb, shapes)

    convert = best(repeat, cold)
    os.environ["XDG_CACHE_HOME"] = str(work / "warm")
    nodes = len(load_model(pb, shapes).model.graph.node)
    return convert, best(repeat, lambda: load_model(pb, shapes)), nodes


if __name__ == "__main__":
    main()
