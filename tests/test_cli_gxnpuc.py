"""`npu-tui compile` where gxnpuc 1.5.8 behaves in ways a user must be told about (SPEC section 5):
what it never compresses, what it crashes on, the nudge that shifts a one-sign weight, and --codes."""

import json

import numpy as np
import onnx
from clirun import npu_tui
from modelkit import BASE_CONFIG, make_model, tensor, value, write_project
from onnx import helper, numpy_helper


def convs_model():
    """x[1,1,8] -> Conv W[4,1,3] (one input channel) -> depthwise Conv W[4,1,3] (group 4) -> Conv W[4,4,1]."""
    rng = np.random.default_rng(1)
    inits = [
        tensor(n, rng.normal(0, 0.3, s).astype(np.float32))
        for n, s in (("a.w", (4, 1, 3)), ("dw.w", (4, 1, 3)), ("b.w", (4, 4, 1)))
    ]
    nodes = [
        helper.make_node("Conv", ["x", "a.w"], ["a"], name="a", pads=[1, 1]),
        helper.make_node("Conv", ["a", "dw.w"], ["d"], name="dw", pads=[1, 1], group=4),
        helper.make_node("Conv", ["d", "b.w"], ["y"], name="b"),
    ]
    return make_model(nodes, [value("x", [1, 1, 8])], [value("y", [1, 4, 8])], inits)


def test_depthwise_and_one_input_channel_convs_are_never_compressed(tmp_path):
    config = write_project(tmp_path, convs_model(), BASE_CONFIG)
    doc = json.loads(npu_tui("compile", "--json", str(config)).stdout)
    weights = {w["name"]: w for w in doc["weights"]}
    assert weights["a.w"]["reason"] == "one_input_channel_never_compressed"
    assert weights["dw.w"]["reason"] == "depthwise_never_compressed"
    assert weights["b.w"]["quantized"] and weights["b.w"]["reason"] is None
    # fp16: a.w is 3 taps of [1 in, 4 out], each a padded 32x32 tile; the depthwise kernel is stored unpadded
    assert weights["a.w"]["weight_memory_bytes"] == 2 * 3 * 1024
    assert weights["dw.w"]["weight_memory_bytes"] == 2 * 12
    text = npu_tui("compile", "-w", str(config)).stdout
    assert text.splitlines()[0] == "b.w: [4, 4, 1]"
    assert "1 depthwise_never_compressed" in text and "1 one_input_channel_never_compressed" in text


def fc_model(w: np.ndarray):
    return make_model(
        [helper.make_node("MatMul", ["x", "fc.weight"], ["y"], name="fc")],
        [value("x", [1, w.shape[0]])],
        [value("y", [1, w.shape[1]])],
        [tensor("fc.weight", w)],
    )


def test_an_all_zero_weight_under_compression_is_an_error_before_compiling(tmp_path):
    config = write_project(tmp_path, fc_model(np.zeros((16, 8), np.float32)), BASE_CONFIG)
    result = npu_tui("compile", str(config))
    assert result.returncode == 2
    assert "'fc.weight'" in result.stderr
    assert "gxnpuc 1.5.8 crashes on this: exclude it or give it a WEIGHT_MIN_MAX range" in result.stderr
    excluded = write_project(tmp_path, None, BASE_CONFIG + "EXCLUDE_COMPRESS_OPS: [fc.weight]\n")
    assert npu_tui("compile", str(excluded)).returncode == 0
    flat = write_project(tmp_path, None, BASE_CONFIG + "WEIGHT_MIN_MAX:\n  fc.weight: [0.25, 0.25]\n")
    refused = npu_tui("compile", str(flat))
    assert (
        refused.returncode == 2
        and "min 0.25 is not less than max 0.25 (gxnpuc 1.5.8 crashes on an empty range)" in refused.stderr
    )


def test_an_unpadded_one_sign_weight_loses_its_far_end_with_a_warning(tmp_path):
    # SPEC 5's example: 32x32 (no padding) in [0.5, 1.5]; scale fp16(1/255), zero point 0: the grid is [0, 1.0],
    # so the code 255 = 1.0 takes every value from 1.0 - scale/2 = 0.99804 up: i >= 509.5 of 0.5 + i/1023
    w = np.linspace(0.5, 1.5, 1024, dtype=np.float32).reshape(32, 32)
    config = write_project(tmp_path, fc_model(w), BASE_CONFIG)
    doc = json.loads(npu_tui("compile", "--json", str(config)).stdout)
    warning = next(w for w in doc["warnings"] if w["code"] == "nudge_shift")
    assert warning["weight"] == "fc.weight"
    assert "514 of 1,024 values are stuck at 1" in warning["message"]
    fc = doc["weights"][0]
    assert (fc["min"], fc["max"], fc["nudged_max"]) == (0.5, 1.5, 1.0)
    # a padded one (16 x 8) holds the padding's zeros in its range: no shift
    padded = write_project(
        tmp_path / "padded", fc_model(np.linspace(0.5, 1.5, 128, dtype=np.float32).reshape(16, 8)), BASE_CONFIG
    )
    doc = json.loads(npu_tui("compile", "--json", str(padded)).stdout)
    assert doc["weights"][0]["min"] == 0.0 and not [w for w in doc["warnings"] if w["code"] == "nudge_shift"]


def test_codes_are_written_per_weight_in_its_own_shape(tmp_path):
    w = np.linspace(-1.0, 1.0, 40, dtype=np.float32).reshape(5, 8)
    config = write_project(tmp_path, fc_model(w), BASE_CONFIG)
    result = npu_tui("compile", "--json", "--codes", str(tmp_path / "codes.npz"), str(config))
    assert result.returncode == 0, result.stderr
    with np.load(tmp_path / "codes.npz") as saved:
        codes = saved["fc.weight"]
    assert codes.dtype == np.uint8 and codes.shape == (5, 8)
    fc = json.loads(result.stdout)["weights"][0]
    # [-1, 1] with the padding: scale fp16(2/255), zero point 128; -1 is code 0, 1 is code 255, 0 is not in w
    assert fc["zero_point"] == 128 and codes[0, 0] == 0 and codes[-1, -1] == 255
    assert fc["codes_stored"] == int(np.count_nonzero(codes != 128))
    assert fc["weight_memory_bytes"] == 1024 // 8 + fc["codes_stored"] + fc["codes_stored"] % 2
    refused = npu_tui("compile", "--codes", str(config), str(config))
    assert refused.returncode == 2 and "--codes" in refused.stderr and config.read_text() == BASE_CONFIG


def test_fuse_biasadd_puts_the_bias_into_the_block(tmp_path):
    """The bias joins the range and is one more padded row of codes, taking no fp16 bytes of its own."""
    rng = np.random.default_rng(4)
    w = rng.normal(0, 0.1, (16, 8)).astype(np.float32)
    model = make_model(
        [
            helper.make_node("MatMul", ["x", "fc.weight"], ["h"], name="fc"),
            helper.make_node("Add", ["h", "fc.bias"], ["y"], name="fc.add"),
        ],
        [value("x", [1, 16])],
        [value("y", [1, 8])],
        [tensor("fc.weight", w), tensor("fc.bias", np.full(8, 2.0, np.float32))],
    )
    plain = json.loads(npu_tui("compile", "--json", str(write_project(tmp_path / "plain", model, BASE_CONFIG))).stdout)
    config = write_project(tmp_path / "fused", model, BASE_CONFIG + "FUSE_BIASADD: true\n")
    result = npu_tui("compile", "--json", str(config))
    assert result.returncode == 0
    fused = json.loads(result.stdout)
    # alone the weight's range is its own (with the padding's 0); with the bias it reaches 2.0
    assert plain["weights"][0]["max"] < 1.0 and fused["weights"][0]["max"] == 2.0
    # 33 rows of 32: the mask covers 1,056 elements, and the 8 bias values are stored codes, not 16 fp16 bytes
    fc = fused["weights"][0]
    assert fc["weight_memory_bytes"] == 1056 // 8 + fc["codes_stored"] + fc["codes_stored"] % 2
    assert fused["weight_memory_bytes"] == fc["weight_memory_bytes"]
    assert plain["weight_memory_bytes"] == plain["weights"][0]["weight_memory_bytes"] + 2 * 8
    # the simulation holds the bias as its codes give it: 2.0 is the range's top, code 255, the grid's end
    assert npu_tui("compile", "--sim", str(tmp_path / "sim.onnx"), str(config)).returncode == 0
    sim = {t.name: numpy_helper.to_array(t) for t in onnx.load(str(tmp_path / "sim.onnx")).graph.initializer}
    assert sim["fc.bias"].astype(np.float32).tolist() == [fc["nudged_max"]] * 8 and fc["nudged_max"] != 2.0
    np.savez(tmp_path / "fused" / "eval.npz", x=rng.normal(0, 1, (6, 16)).astype(np.float32))
    evaluated = npu_tui("eval", "--sensitivity", "--layers", "--json", str(config))
    assert evaluated.returncode == 0, evaluated.stderr
