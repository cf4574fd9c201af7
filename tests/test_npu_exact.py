"""The exact NPU simulation against the vendor's C model: the 16 compiled cases of ../shared/gxnpuc/cmodel,
bit for bit (the fp32 output words, sign of zero included; FP16_OUT_OPS as raw fp16 bits)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import yaml
from onnx import numpy_helper

from npu_tui.core.model.tf.to_onnx import read_pb
from npu_tui.core.quant.gxnpuc import quantize
from npu_tui.core.sim.npu.interpreter import run_exact, simulate_exact

CMODEL = Path(__file__).resolve().parents[2] / "shared" / "gxnpuc" / "cmodel"
CASES = sorted(p.name for p in CMODEL.iterdir() if (p / "cmodel_out.npy").is_file()) if CMODEL.is_dir() else []
pytestmark = pytest.mark.skipif(not CASES, reason=f"the C model cases are not at {CMODEL}")


def npu_model(case: Path, config: dict) -> onnx.ModelProto:
    """The case's graph with its weights as the NPU holds them: MatMul weights (COMPRESS) and Conv2D
    weights with cin > 1 (CONV2D_COMPRESS) quantized as gxnpuc does and dequantized as the chip does;
    every other constant stays float32, which the simulation converts as the compiler does."""
    model = read_pb(case / "model.pb", config["INPUT_OPS"], config["OUTPUT_OPS"], bool(config.get("FUSE_BN", False)))
    inits = {t.name: t for t in model.graph.initializer}
    for node in model.graph.node:
        if len(node.input) < 2 or node.input[1] not in inits:
            continue
        tensor = inits[node.input[1]]
        w = numpy_helper.to_array(tensor)
        if node.op_type == "MatMul" and config.get("COMPRESS"):
            held = quantize(w).dequantized
        elif node.op_type == "Conv" and config.get("CONV2D_COMPRESS") and w.shape[1] > 1:
            held = np.transpose(quantize(np.transpose(w, (2, 3, 1, 0))).dequantized, (3, 2, 0, 1))  # TF layout: HWIO
        else:
            continue
        tensor.CopyFrom(numpy_helper.from_array(held.astype(np.float16), tensor.name))
    return model


def fed_as_the_c_model_was(x: np.ndarray) -> np.ndarray:
    """IEEE round-to-nearest-even to fp16, every NaN as 0x7e00 (cmodel/README.md)."""
    half = x.astype(np.float16)
    half[np.isnan(half)] = np.float16(np.nan)
    return half


def run_case(name: str) -> tuple[np.ndarray, np.ndarray, dict]:
    case = CMODEL / name
    meta = json.loads((case / "meta.json").read_text())
    config = yaml.safe_load((case / "config.yaml").read_text())
    fp16_out = set(config.get("FP16_OUT_OPS") or [])
    x = np.load(case / "inputs.npy")
    feeds = {
        f["name"]: fed_as_the_c_model_was(x[:, f["offset"] : f["offset"] + f["size"]]).reshape(len(x), *f["shape"])
        for f in meta["inputs"]
    }
    names = [f["name"] for f in meta["outputs"]]
    out = simulate_exact(npu_model(case, config), feeds, names, fp16_outputs=sorted(fp16_out))
    if fp16_out:
        got = np.concatenate([out[n].reshape(len(x), -1).view(np.uint16) for n in names], axis=1)
        want = np.load(case / "cmodel_out_f16bits.npy")
    else:
        got = np.concatenate([out[n].reshape(len(x), -1).view(np.uint32) for n in names], axis=1)
        want = np.load(case / "cmodel_out.npy").view(np.uint32)
    return got, want, meta


@pytest.mark.parametrize("name", CASES)
def test_every_output_word_equals_the_c_models(name):
    got, want, meta = run_case(name)
    assert got.shape == want.shape
    wrong = got != want
    fields = [f["name"] for f in meta["outputs"] for _ in range(f["size"])]
    where = sorted({fields[i] for i in np.nonzero(wrong)[1]})
    assert not wrong.any(), f"{name}: {int(wrong.sum())} of {want.size} output words differ (in {where})"


def test_the_gru_cell_is_wrong_on_the_chip_and_the_simulation_says_why():
    case = CMODEL / "gru"
    config = yaml.safe_load((case / "config.yaml").read_text())
    x = np.load(case / "inputs.npy")
    feeds = {
        "input": fed_as_the_c_model_was(x[:, :8]).reshape(-1, 1, 8),
        "state_h": fed_as_the_c_model_was(x[:, 8:]).reshape(-1, 1, 8),
    }
    run = run_exact(npu_model(case, config), feeds, ["output"])
    assert [(d.node, d.kind) for d in run.diagnostics] == [("gru/sub", "scalar_first")]
    float_out = np.load(case / "float_out.npy")
    chip = run.values["output"].reshape(len(x), -1).astype(np.float32)
    assert np.abs(chip - float_out).max() > 1  # u - 1 instead of 1 - u: far from TensorFlow's answer


def exact_and_fast(sample: str, count: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """A sample's logits by the exact simulation and by today's fast one (float32 ops, fp16 per node)."""
    import onnxruntime as ort

    from npu_tui.core.config.project import open_project
    from npu_tui.core.sim.eval_data import load_npz, model_inputs
    from npu_tui.core.sim.npu.interpreter import samples_first, with_held_weights
    from npu_tui.core.sim.simulation import build_simulation, npu_values

    root = Path(__file__).resolve().parents[1] / "sample_models" / sample
    project = open_project(root / "config.yaml")
    data = load_npz(root / "eval.npz", model_inputs(project.inventory.model, project.config.input_shapes)).head(count)
    compilation = project.compile(project.config.settings)
    ((name, x),) = data.inputs.items()
    session = ort.InferenceSession(build_simulation(project.compiler, compilation).to_proto().SerializeToString())
    fast = np.concatenate([session.run(["logits"], {name: x[i]})[0] for i in range(count)])
    held = with_held_weights(build_simulation(project.compiler, compilation, False).to_proto(), npu_values(compilation))
    return samples_first(simulate_exact(held, data.inputs, ["logits"])["logits"]), fast


@pytest.mark.parametrize("sample", ["kws_tdnn", "cnn_bn"])
def test_the_onnx_samples_run_exactly_and_differ_from_the_fast_path_by_the_arithmetic_alone(sample):
    exact, fast = exact_and_fast(sample)
    assert exact.shape == fast.shape and np.isfinite(exact).all()
    sqnr = 10 * np.log10((fast.astype(np.float64) ** 2).sum() / ((fast.astype(np.float64) - exact) ** 2).sum())
    identical = np.mean(exact.astype(np.float16).view(np.uint16) == fast.astype(np.float16).view(np.uint16))
    assert 45 < sqnr < 75 and identical < 0.5  # fp16 chains and tables: tens of dB below, few outputs bit-equal


def test_fc_ovf_names_the_matmul_whose_chain_overflows():
    case = CMODEL / "fc_ovf"
    config = yaml.safe_load((case / "config.yaml").read_text())
    x = fed_as_the_c_model_was(np.load(case / "inputs.npy"))
    run = run_exact(npu_model(case, config), {"input": x.reshape(len(x), 1, -1)}, config["OUTPUT_OPS"])
    matmuls = [n.name for n in npu_model(case, config).graph.node if n.op_type == "MatMul"]
    assert [(d.node, d.kind) for d in run.diagnostics] == [(matmuls[0], "chain_overflow")]
    assert not np.isfinite(run.values[config["OUTPUT_OPS"][0]]).all()


# Cases whose weights the compile pipeline already holds as gxnpuc does on this branch (fp16 weights or
# none); with the gxnpuc quantizer in the compile (branch quant) every case but act_sweep (NaN inputs,
# which eval data refuses) is exact this way as well.
PIPELINE_CASES = ["dw_s2", "ew_binary", "ew_const", "ew_unary", "fc_odd", "fc_ovf", "pool", "softmax_manual"]


@pytest.mark.parametrize("name", [c for c in PIPELINE_CASES if c in CASES])
def test_the_vendor_config_through_the_whole_pipeline_gives_the_c_models_words(name, tmp_path):
    """What `npu-tui simulate` runs: the config read, the .pb converted, the weights compiled, the chip's
    outputs (chip_outputs) in the first-axis-samples layout."""
    from npu_tui.core.config.project import open_project
    from npu_tui.core.sim.eval_data import load_npz, model_inputs
    from npu_tui.core.sim.npu.chip import chip_outputs
    from npu_tui.core.sim.simulation import build_simulation, npu_values

    case = CMODEL / name
    meta = json.loads((case / "meta.json").read_text())
    x = np.load(case / "inputs.npy")
    np.savez(
        tmp_path / "data.npz",
        **{f["name"]: x[:, f["offset"] : f["offset"] + f["size"]].reshape(len(x), *f["shape"]) for f in meta["inputs"]},
    )
    project = open_project(case / "config.yaml")
    data = load_npz(tmp_path / "data.npz", model_inputs(project.inventory.model, project.config.input_shapes))
    compilation = project.compile(project.config.settings)
    sim = build_simulation(project.compiler, compilation, fp16_activations=False).to_proto()
    names = [f["name"] for f in meta["outputs"]]
    chip = chip_outputs(sim, npu_values(compilation), data.inputs, names, project.config.data).arrays
    fp16 = "FP16_OUT_OPS" in project.config.data
    got = np.concatenate([chip[n].reshape(len(x), -1).view(np.uint16 if fp16 else np.uint32) for n in names], axis=1)
    want = np.load(case / "cmodel_out_f16bits.npy") if fp16 else np.load(case / "cmodel_out.npy").view(np.uint32)
    assert np.array_equal(got, want), f"{name}: {int((got != want).sum())} of {want.size} words differ"
