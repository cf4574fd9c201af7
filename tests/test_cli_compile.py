"""`npu-tui compile` through a subprocess: the vendor's -w lines, JSON, --sim, -s and the summary."""

import json
import subprocess
import sys

import numpy as np
import onnxruntime as ort
from clirun import npu_tui
from modelkit import BASE_CONFIG, conv_bn_fc, make_model, tensor, value, write_project
from onnx import helper

JSON_WEIGHT_KEYS = {
    "name",
    "kind",
    "nodes",
    "op_types",
    "shape",
    "quantized",
    "reason",
    "min",
    "max",
    "nudged_min",
    "nudged_max",
    "scale",
    "zero_point",
    "sqnr_db",
    "mse",
    "max_abs_err",
    "clipped_fraction",
    "tail_ratio",
    "scale_fp16_bits",
    "offset_fp16_bits",
    "codes_stored",
    "weight_memory_bytes",
}


def project(tmp_path, extra=""):
    return write_project(tmp_path, conv_bn_fc(np.random.default_rng(0)), BASE_CONFIG + extra)


def test_w_prints_the_vendor_lines_then_the_summary(tmp_path):
    result = npu_tui("compile", "-w", str(project(tmp_path)))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[:2] == ["conv1.weight: [4, 3, 3]", "fc.weight: [24, 5]"]
    assert lines[2].startswith("model: ")
    assert "fully-connected weights quantized: 1 of 1" in result.stdout


def test_w_leaves_out_weights_that_stay_fp16(tmp_path):
    config = project(tmp_path, "EXCLUDE_COMPRESS_OPS: [fc]\n")
    result = npu_tui("compile", "-w", str(config))
    assert result.stdout.splitlines()[0] == "conv1.weight: [4, 3, 3]"
    assert "fc.weight: [" not in result.stdout
    assert "fully-connected weights quantized: 0 of 1 (1 excluded)" in result.stdout


def test_json_document(tmp_path):
    config = project(tmp_path, "FUSE_BN: true\nWEIGHT_MIN_MAX:\n  fc.weight: [0.1, 0.5]\n")
    result = npu_tui("compile", "--json", str(config))
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert set(doc) == {
        "npu_tui_version",
        "model",
        "config",
        "weights",
        "weight_memory_bytes",
        "fp16_weight_memory_bytes",
        "warnings",
    }
    weights = {w["name"]: w for w in doc["weights"]}
    assert all(JSON_WEIGHT_KEYS <= set(w) for w in weights.values())
    fc = weights["fc.weight"]
    assert fc["min"] == 0.1 and fc["max"] == 0.5
    # gxnpuc's grid for [0.1, 0.5]: zero point 0, 255 steps of fp16(0.4/255) = 0x166C end at 0.39990234375
    assert fc["nudged_min"] == 0.0 and fc["nudged_max"] == 0.39990234375
    assert (fc["scale_fp16_bits"], fc["offset_fp16_bits"]) == (0x166C, 0)
    assert fc["zero_point"] == 0 and fc["clipped_fraction"] > 0.3
    conv = weights["conv1.weight"]
    assert conv["op_types"] == ["Conv"]
    # weight memory as gxnpuc lays it out: conv1d [4, 3, 3] is 3 taps of [3 in, 4 out], each padded to a
    # 32x32 tile (3,072 elements); fc [24, 5] one tile (1,024); the conv bias (the fused BN's) 4 values
    assert doc["fp16_weight_memory_bytes"] == 2 * 3072 + 2 * 1024 + 2 * 4
    # compressed: a mask bit per padded element plus a byte per stored code. [0.1, 0.5] excludes 0, so
    # even the fc's padding zeros clip to 0.1 and take a code that is not the zero point: all 1,024 stored
    assert fc["codes_stored"] == 1024 and fc["weight_memory_bytes"] == 1024 // 8 + 1024
    assert 0 < conv["codes_stored"] <= 36
    assert conv["weight_memory_bytes"] == 3072 // 8 + conv["codes_stored"] + conv["codes_stored"] % 2
    assert doc["weight_memory_bytes"] == fc["weight_memory_bytes"] + conv["weight_memory_bytes"] + 2 * 4
    codes = {(w["code"], w["weight"]) for w in doc["warnings"]}
    assert ("nudge_shift", "fc.weight") in codes and ("saturation", "fc.weight") in codes


def test_reason_says_why_a_weight_stays_fp16(tmp_path):
    text = BASE_CONFIG.replace("COMPRESS: true\nCONV2D_COMPRESS: true", "COMPRESS: false\nCONV2D_COMPRESS: false")
    config = write_project(tmp_path, conv_bn_fc(np.random.default_rng(0)), text)
    doc = json.loads(npu_tui("compile", "--json", str(config)).stdout)
    assert {w["name"]: w["reason"] for w in doc["weights"]} == {
        "conv1.weight": "conv2d_compress_off",
        "fc.weight": "compress_off",
    }
    assert doc["weight_memory_bytes"] == doc["fp16_weight_memory_bytes"]


def test_sim_model_runs_and_never_touches_output_file(tmp_path):
    config = project(tmp_path)
    result = npu_tui("compile", "--sim", str(tmp_path / "sim.onnx"), str(config))
    assert result.returncode == 0, result.stderr
    assert not (tmp_path / "model.h").exists()
    session = ort.InferenceSession(str(tmp_path / "sim.onnx"), providers=["CPUExecutionProvider"])
    y = session.run(None, {"x": np.ones((1, 3, 6), np.float32)})[0]
    assert y.shape == (1, 5)
    refused = npu_tui("compile", "--sim", str(tmp_path / "model.h"), str(config))
    assert refused.returncode == 2 and "OUTPUT_FILE" in refused.stderr
    assert not (tmp_path / "model.h").exists()


def test_save_histograms_writes_one_jpeg_per_quantized_weight(tmp_path):
    config = project(tmp_path)
    result = npu_tui("compile", "-s", str(config), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    files = sorted(p.name for p in (tmp_path / "npu_jpgs").iterdir())
    assert files == ["0001_conv1.weight.jpg", "0002_fc.weight.jpg", "index.json"]
    assert (tmp_path / "npu_jpgs" / "0001_conv1.weight.jpg").read_bytes()[:2] == b"\xff\xd8"
    index = json.loads((tmp_path / "npu_jpgs" / "index.json").read_text())
    assert index == {"0001_conv1.weight.jpg": "conv1.weight", "0002_fc.weight.jpg": "fc.weight"}


def test_hostile_weight_names_are_printed_literally_and_filed_safely(tmp_path):
    name = "../[bold red]evil[/]\x1b[2J.weight"
    model = make_model(
        [helper.make_node("MatMul", ["x", name], ["y"], name="fc")],
        [value("x", [1, 3])],
        [value("y", [1, 2])],
        [tensor(name, np.random.default_rng(0).normal(size=(3, 2)).astype(np.float32))],
    )
    config = write_project(tmp_path, model, BASE_CONFIG)
    result = npu_tui("compile", "-w", "-s", "--hist-dir", str(tmp_path / "h"), str(config))
    assert result.returncode == 0, result.stderr
    assert "\x1b" not in result.stdout
    assert result.stdout.splitlines()[0] == "../[bold red]evil[/]\\x1b[2J.weight: [3, 2]"
    files = sorted(p.name for p in (tmp_path / "h").iterdir())
    assert files == ["0001_bold_red_evil_2J.weight.jpg", "index.json"]
    assert json.loads((tmp_path / "h" / "index.json").read_text()) == {"0001_bold_red_evil_2J.weight.jpg": name}


def test_unknown_keys_warn_and_compile_goes_on(tmp_path):
    result = npu_tui("compile", str(project(tmp_path, "MY_NOTE: keep me\n")))
    assert result.returncode == 0
    assert "config.yaml:7: unknown key MY_NOTE is kept as it is" in result.stderr


def test_core_and_cli_import_no_ui_or_runtime():
    code = (
        "import sys, npu_tui.core, npu_tui.cli\n"
        "import npu_tui.core.config.project, npu_tui.core.sim.simulation, npu_tui.core.report, npu_tui.core.quant.histogram\n"
        "bad = [m for m in ('textual', 'rich', 'onnxruntime', 'matplotlib') if m in sys.modules]\n"
        "print(','.join(bad))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ""


def test_a_hostile_model_path_is_printed_literally(tmp_path):
    model = make_model(
        [helper.make_node("MatMul", ["x", "fc.weight"], ["y"], name="fc")],
        [value("x", [1, 3])],
        [value("y", [1, 2])],
        [tensor("fc.weight", np.random.default_rng(0).normal(size=(3, 2)).astype(np.float32))],
    )
    model_name = "m\x1b]0;pwned\x07.onnx"  # a file name that would retitle the terminal
    config = write_project(
        tmp_path, model, BASE_CONFIG.replace("ONNX_FILE: model.onnx", 'ONNX_FILE: "m\\e]0;pwned\\a.onnx"'), model_name
    )
    result = npu_tui("compile", str(config))
    assert result.returncode == 0, result.stderr
    assert "\x1b" not in result.stdout + result.stderr and "\x07" not in result.stdout + result.stderr
    assert "m\\x1b]0;pwned\\x07.onnx" in result.stdout.splitlines()[0]


def test_no_fp16_overflow_warning_for_a_batchnorm_that_fuse_bn_folds_away(tmp_path):
    model = conv_bn_fc(np.random.default_rng(0))
    # the chip runs an unfolded BN as a multiplier gamma / sqrt(var + eps) held in the scale's place (the
    # variance itself is not stored): a gamma of 1e5 over a variance of 1 is beyond fp16's 65504 there;
    # folded, it only scales conv1's third filter (0.3 -> 3e4) and is not stored at all
    for name, values in (("bn1.scale", [1.0, 0.5, 1e5, 1.2]), ("bn1.var", [1.0, 0.5, 1.0, 2.0])):
        next(t for t in model.graph.initializer if t.name == name).CopyFrom(tensor(name, np.array(values, np.float32)))
    for fuse, warned in (("true", False), ("false", True)):
        config = write_project(tmp_path / fuse, model, BASE_CONFIG + f"FUSE_BN: {fuse}\n")
        result = npu_tui("compile", "--json", str(config))
        assert result.returncode == 0, result.stderr
        overflowing = [w["weight"] for w in json.loads(result.stdout)["warnings"] if w["code"] == "fp16_overflow"]
        assert overflowing == (["bn1.scale"] if warned else []), fuse
