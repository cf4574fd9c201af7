"""The exact NPU simulation (core/sim/npu) beside the fast one and a bare onnxruntime pass, one run.

Per model, 64 samples: `exact` = simulate_exact on the compiled model (fp16 chains, tables, every
rounding); `fast` = today's simulation graph (float32 ops, fp16 after each node) in onnxruntime;
`bare` = the float model in onnxruntime. Models: the kws_tdnn and cnn_bn samples, the SDK's mnist
(784x10 MatMul, from ../shared/gxnpuc when present) and a synthetic model of 50 weights (25 conv1d,
25 fully-connected). Median of --repeat runs of each, after one untimed run.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SAMPLES = 64
MNIST = ROOT.parent / "shared" / "gxnpuc" / "cmodel" / "mnist"


def fifty_weights(folder: Path) -> Path:
    """25 conv1d (16 channels, 8 frames) and 25 fully-connected layers (128 -> 64 -> ... -> 64)."""
    rng = np.random.default_rng(0)
    nodes, inits, current = [], [], "x"
    for i in range(25):
        inits.append(numpy_helper.from_array(rng.normal(0, 0.2, (16, 16, 3)).astype(np.float32), f"conv{i}.weight"))
        nodes += [
            helper.make_node("Conv", [current, f"conv{i}.weight"], [f"c{i}"], pads=[1, 1]),
            helper.make_node("Relu", [f"c{i}"], [f"cr{i}"]),
        ]
        current = f"cr{i}"
    nodes.append(helper.make_node("Flatten", [current], ["flat"]))
    current, width = "flat", 128
    for i in range(25):
        inits.append(numpy_helper.from_array(rng.normal(0, 0.1, (width, 64)).astype(np.float32), f"fc{i}.weight"))
        nodes += [
            helper.make_node("MatMul", [current, f"fc{i}.weight"], [f"f{i}"]),
            helper.make_node("Relu", [f"f{i}"], [f"fr{i}"]),
        ]
        current, width = f"fr{i}", 64
    nodes.append(helper.make_node("Identity", [current], ["logits"]))
    graph = helper.make_graph(
        nodes,
        "fifty",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 16, 8])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["n", 64])],
        inits,
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(folder / "model.onnx"))
    (folder / "config.yaml").write_text(
        "CORENAME: GRUS\nONNX_FILE: model.onnx\nINPUT_OPS:\n  x: [1, 16, 8]\nOUTPUT_OPS: [logits]\n"
        "COMPRESS: true\nCONV2D_COMPRESS: true\n"
    )
    np.savez(folder / "eval.npz", x=rng.normal(size=(SAMPLES, 16, 8)).astype(np.float32))
    return folder / "config.yaml"


def median_ms(run: Callable[[], object], repeat: int) -> float:
    """After one untimed run: the exact run builds its onnxruntime kernels once per process (a few ms
    per chain shape), a session its arena."""
    run()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def onnx_sample(config: Path, repeat: int) -> tuple[float, float, float]:
    import onnxruntime as ort

    from npu_tui.core.config.project import open_project
    from npu_tui.core.sim.eval_data import load_npz, model_inputs
    from npu_tui.core.sim.npu.interpreter import simulate_exact, with_held_weights
    from npu_tui.core.sim.simulation import build_simulation, npu_values, reference_model

    project = open_project(config)
    data = load_npz(config.parent / "eval.npz", model_inputs(project.inventory.model, project.config.input_shapes)).head(SAMPLES)
    compilation = project.compile(project.config.settings)
    held = with_held_weights(build_simulation(project.compiler, compilation, False).to_proto(), npu_values(compilation))
    names = project.config.output_names or [o.name for o in project.inventory.model.graph.output]
    ((name, x),) = data.inputs.items()
    batch = x.reshape(-1, *x.shape[2:])  # both sample models leave the first axis open
    fast = ort.InferenceSession(
        build_simulation(project.compiler, compilation).to_proto().SerializeToString(), providers=["CPUExecutionProvider"]
    )
    bare = ort.InferenceSession(reference_model(project.inventory).SerializeToString(), providers=["CPUExecutionProvider"])
    return (
        median_ms(lambda: simulate_exact(held, data.inputs, names), repeat),
        median_ms(lambda: fast.run(names, {name: batch}), repeat),
        median_ms(lambda: bare.run(names, {name: batch}), repeat),
    )


def evaluation(config: Path, repeat: int) -> tuple[float, float, float]:
    """What eval and ctrl+r pay: Evaluator.evaluate with exact=True (the simulation graph built, the
    exact run, the comparison) and without (fast), in ms; and the element estimate (cost.py), in ms."""
    from npu_tui.core.config.project import open_project
    from npu_tui.core.opening import DataChoice, project_data
    from npu_tui.core.sim.evaluate import Evaluator
    from npu_tui.core.sim.npu.cost import exact_seconds
    from npu_tui.core.sim.simulation import build_simulation

    project = open_project(config)
    evaluator = Evaluator(project.compiler, project_data(project, DataChoice(None, SAMPLES, 0)), project.config.output_names)
    compilation = project.compile()
    evaluator.evaluate(compilation)  # sessions built once, as in a workbench
    estimate = exact_seconds(build_simulation(project.compiler, compilation, False).to_proto(), evaluator.data.inputs)
    return (
        median_ms(lambda: evaluator.evaluate(compilation, exact=True), repeat),
        median_ms(lambda: evaluator.evaluate(compilation), repeat),
        1000 * estimate,
    )


def mnist(repeat: int) -> tuple[float, float, float] | None:
    if not MNIST.is_dir():
        return None
    import onnxruntime as ort
    import yaml

    from npu_tui.core.model.tf.to_onnx import read_pb
    from npu_tui.core.quant.gxnpuc import quantize
    from npu_tui.core.sim.npu.interpreter import simulate_exact, with_held_weights

    config = yaml.safe_load((MNIST / "config.yaml").read_text())
    model = read_pb(MNIST / "model.pb", config["INPUT_OPS"], config["OUTPUT_OPS"])
    weight = next(t for t in model.graph.initializer if len(t.dims) == 2)
    held = with_held_weights(model, {weight.name: quantize(numpy_helper.to_array(weight)).dequantized})
    x = np.random.default_rng(0).random((SAMPLES, 1, 784), dtype=np.float32)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    names = list(config["OUTPUT_OPS"])
    run_bare = lambda: [session.run(names, {"input_x": x[i]}) for i in range(SAMPLES)]  # noqa: E731 (a fixed batch of 1)
    return median_ms(lambda: simulate_exact(held, {"input_x": x}, names), repeat), float("nan"), median_ms(run_bare, repeat)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    rows: list[tuple[str, tuple[float, float, float]]] = []
    for sample in ("kws_tdnn", "cnn_bn"):
        rows.append((sample, onnx_sample(ROOT / "sample_models" / sample / "config.yaml", args.repeat)))
    found = mnist(args.repeat)
    if found is not None:
        rows.append(("mnist (SDK, TF)", found))
    with tempfile.TemporaryDirectory() as tmp:
        fifty = fifty_weights(Path(tmp))
        rows.append(("50 weights (synthetic)", onnx_sample(fifty, args.repeat)))
        evaluations = [
            (sample, evaluation(ROOT / "sample_models" / sample / "config.yaml", args.repeat))
            for sample in ("kws_tdnn", "cnn_bn")
        ]
        evaluations.append(("50 weights (synthetic)", evaluation(fifty, args.repeat)))
    print(f"{SAMPLES} samples, median of {args.repeat} runs, milliseconds")
    print(f"{'model':24} {'exact':>8} {'fast':>8} {'bare':>8} {'exact/fast':>11} {'exact/bare':>11}")
    for label, (exact, fast, bare) in rows:
        fast_text, ratio = ("-", "-") if fast != fast else (f"{fast:.1f}", f"{exact / fast:.0f}")
        print(f"{label:24} {exact:8.1f} {fast_text:>8} {bare:8.1f} {ratio:>11} {exact / bare:11.0f}")
    print(f"\nEvaluator.evaluate, {SAMPLES} samples, ms: exact=True, fast, and the exact run's estimate by elements")
    for label, (exact, fast, estimate) in evaluations:
        print(f"{label:24} {exact:8.1f} {fast:8.1f} {estimate:8.1f}")


if __name__ == "__main__":
    main()
