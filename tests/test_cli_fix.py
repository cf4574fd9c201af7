"""`npu-tui fix` on the samples, checked by evaluating the config it returns with `eval` (not with the
search code), and the target flags of `eval`."""

from __future__ import annotations

import json

import pytest
from clirun import npu_tui
from tui_kit import copy_sample


@pytest.mark.parametrize("sample", ["kws_tdnn", "cnn_bn"])
def test_fix_finds_the_cheapest_config_that_eval_confirms(tmp_path, sample):
    config = copy_sample(sample, tmp_path)
    original = config.read_text()
    result = npu_tui("fix", str(config), "--max-drop", "1", "--json", "--write")
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["met"] and len(doc["changes"]) == 1
    assert doc["npu_tui_version"] and doc["data"]["samples"] == 597
    assert set(doc["settings"]) == {
        "COMPRESS",
        "CONV2D_COMPRESS",
        "FUSE_BN",
        "EXCLUDE_COMPRESS_OPS",
        "EXCLUDE_CONV2D_COMPRESS_OPS",
        "EXCLUDE_FUSE_BN_OPS",
        "WEIGHT_MIN_MAX",
    }
    assert (tmp_path / "config.yaml.bak").read_text() == original
    checked = npu_tui("eval", str(config), "--max-drop", "1", "--json")
    assert checked.returncode == 0, checked.stderr
    evaluated = json.loads(checked.stdout)
    assert evaluated["target"]["met"] and (evaluated["accuracy_float"] - evaluated["accuracy_npu"]) * 100 <= 1
    compiled = json.loads(npu_tui("compile", str(config), "--json").stdout)
    assert compiled["weight_memory_bytes"] == doc["after"]["npu_bytes"]
    change = doc["changes"][0]
    if sample == "kws_tdnn":  # the range (+558 bytes: more codes differ from the zero point), not the 5,564-byte exclusion
        assert change["action"] == "range" and change["weight"] == "tdnn1.affine" and change["bytes"] == 14844
        assert list(doc["settings"]["WEIGHT_MIN_MAX"]) == ["tdnn1.affine"] and not doc["settings"]["EXCLUDE_COMPRESS_OPS"]
    else:  # conv1's BN kept unfolded (+102 bytes), cheaper than FUSE_BN false (8,994: conv2's BN unfolded too)
        assert change["action"] == "keep_bn" and change["weight"] == "conv1.weight"
        assert doc["before"]["npu_bytes"] == 8826 and change["bytes"] == doc["after"]["npu_bytes"] == 8928
        assert doc["settings"]["FUSE_BN"] is True and doc["settings"]["EXCLUDE_FUSE_BN_OPS"] == ["conv1.weight"]
        assert not doc["settings"]["EXCLUDE_COMPRESS_OPS"] and not doc["settings"]["WEIGHT_MIN_MAX"]


def test_fix_text_output_and_a_target_that_cannot_be_met(tmp_path):
    config = copy_sample("kws_tdnn", tmp_path)
    result = npu_tui("fix", str(config), "--max-drop", "1")
    assert result.returncode == 0
    assert "localization" in result.stdout and "1. WEIGHT_MIN_MAX       tdnn1.affine [" in result.stdout
    assert "(not written: add --write to save it)" in result.stdout
    assert not (tmp_path / "config.yaml.bak").exists()
    impossible = npu_tui("fix", str(config), "--min-sqnr", "300", "--budget", "15000", "--json")
    assert impossible.returncode == 3
    doc = json.loads(impossible.stdout)
    assert doc["met"] is False and doc["after"]["npu_bytes"] <= 15000
    assert doc["why"].startswith("not even nothing quantized (COMPRESS and CONV2D_COMPRESS false) meets it")
    within = npu_tui("fix", str(config), "--max-drop", "1", "--budget", "12000", "--json")  # below every config's bytes
    assert within.returncode == 3
    assert (
        json.loads(within.stdout)["why"]
        == "no config within --budget 12,000 B meets it; the cheapest the search found that does costs 22,570 B"
    )


def test_eval_targets_exit_3_when_missed(tmp_path):
    config = copy_sample("kws_tdnn", tmp_path)
    missed = npu_tui("eval", str(config), "--max-drop", "1")
    assert missed.returncode == 3 and "MISSED (drop 68.51 points)" in missed.stdout
    met = npu_tui("eval", str(config), "--min-sqnr", "-10")
    assert met.returncode == 0 and "target worst output SQNR at least -10 dB: met" in met.stdout


@pytest.mark.parametrize(
    "args, expected",
    [
        (["fix", "{config}"], "one of the arguments --max-drop --min-agreement --min-sqnr is required"),
        (["eval", "{config}", "--seed", "-1"], "-1 is negative"),
        (["eval", "{config}", "--samples", "0"], "0 is not a positive number"),
        (["fix", "{config}", "--max-drop", "nan"], "nan is not a finite number"),
    ],
)
def test_bad_arguments_exit_2(tmp_path, args, expected):
    config = copy_sample("kws_tdnn", tmp_path)
    result = npu_tui(*[a.format(config=config) for a in args])
    assert result.returncode == 2 and expected in result.stderr


def test_json_errors_are_json_documents(tmp_path):
    result = npu_tui("eval", str(tmp_path / "missing.yaml"), "--json")
    assert result.returncode == 2 and result.stderr.startswith("error: ")
    doc = json.loads(result.stdout)
    assert "config file not found" in doc["error"] and doc["npu_tui_version"]


@pytest.mark.parametrize(
    "args, expected",
    [
        (("fix", "{config}", "--min-sqnr", "inf", "--json"), "inf is not a finite number"),
        (("fix", "{config}", "--json"), "one of the arguments --max-drop --min-agreement --min-sqnr is required"),
        (("eval", "{config}", "--samples", "0", "--json"), "0 is not a positive number"),
        (("compile", "{config}", "--bogus", "--json"), "unrecognized arguments: --bogus"),
        (("eval", "--json"), "the following arguments are required: config"),
    ],
    ids=["not_finite", "no_target", "zero_samples", "unknown_option", "no_config"],
)
def test_every_json_argument_error_is_a_json_document(tmp_path, args, expected):
    config = copy_sample("kws_tdnn", tmp_path)
    result = npu_tui(*[a.format(config=config) for a in args])
    assert result.returncode == 2 and result.stderr.startswith("error: ") and len(result.stderr.splitlines()) == 1
    doc = json.loads(result.stdout)
    assert expected in doc["error"] and doc["npu_tui_version"]


@pytest.mark.parametrize("how", ["keyboard", "cancelled"])
def test_ctrl_c_in_the_ranking_sweep_prints_the_best_so_far_and_exits_130(tmp_path, monkeypatch, capsys, how):
    """Ctrl-C reaches the search as KeyboardInterrupt in its own runs or as the sweep's Cancelled."""
    from npu_tui import cli
    from npu_tui.core.sim import analysis, sensitivity

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt() if how == "keyboard" else sensitivity.Cancelled()

    monkeypatch.setattr(analysis, "sweep", interrupted)
    config = copy_sample("kws_tdnn", tmp_path)
    original = config.read_text()
    status = cli.main(["fix", str(config), "--max-drop", "1", "--write"])
    out, err = capsys.readouterr()
    assert status == 130, err
    assert "interrupted: the search was stopped" in err and "internal error" not in err
    assert "1. switches" in out and "target met" in out  # the cheapest switch row that meets, found before the sweep
    assert config.read_text() == original and not (tmp_path / "config.yaml.bak").exists()
    assert "(not written: the search was stopped)" in out


def test_a_metric_that_does_not_exist_is_null_in_json_and_none_in_text(tmp_path):
    import numpy as np
    from modelkit import BASE_CONFIG, make_model, tensor, value, write_project
    from onnx import helper

    # the weight's span (58,804) fits fp16, as gxnpuc needs to quantize it; the MatMul's outputs do not
    weight = (np.random.default_rng(0).normal(size=(3, 2)) * 5e4).astype(np.float32)
    model = make_model(
        [helper.make_node("MatMul", ["x", "w"], ["y"], name="fc")],
        [value("x", ["n", 3])],
        [value("y", ["n", 2])],
        [tensor("w", weight)],
    )
    config = write_project(tmp_path, model, BASE_CONFIG)
    evaluated = json.loads(npu_tui("eval", str(config), "--min-sqnr", "10", "--json").stdout)
    assert evaluated["output_sqnr_db"] is None and evaluated["target"]["metric"] is None
    result = npu_tui("fix", str(config), "--min-sqnr", "10", "--json")
    assert result.returncode == 3, result.stderr
    doc = json.loads(result.stdout)
    assert doc["before"]["metric"] is None and doc["after"]["metric"] is None
    assert all(row["metric"] is None for row in doc["localization"]) and "-100" not in result.stdout
    assert doc["why"].startswith("not even nothing quantized")
    text = npu_tui("fix", str(config), "--min-sqnr", "10")
    assert "SQNR none (the NPU output is not finite)" in text.stdout and "-100" not in text.stdout
    assert "why: not even nothing quantized" in text.stdout


def test_a_config_the_fast_simulation_passes_and_the_chip_fails_is_not_met_and_says_so(tmp_path):
    import re

    import numpy as np
    from modelkit import BASE_CONFIG, make_model, tensor, value, write_project
    from onnx import helper

    # 5 - x @ w: gxnpuc compiles a scalar-first Sub as x @ w - 5 (tensor_scalar), the chip computes that
    # (output SQNR -6 dB); the fast simulation computes the float model's order in fp16 and meets 20 dB
    weight = np.random.default_rng(0).normal(size=(3, 4)).astype(np.float32)
    model = make_model(
        [helper.make_node("MatMul", ["x", "w"], ["y"], name="fc"), helper.make_node("Sub", ["five", "y"], ["out"], name="sub")],
        [value("x", ["n", 3])],
        [value("out", ["n", 4])],
        [tensor("w", weight), tensor("five", np.array(5.0, np.float32))],
    )
    config = write_project(tmp_path, model, BASE_CONFIG)
    result = npu_tui("fix", str(config), "--min-sqnr", "20", "--json")
    assert result.returncode == 3, result.stderr
    doc = json.loads(result.stdout)
    assert doc["met"] is False and doc["simulation"] == "exact" and doc["changes"] == []
    assert doc["before"]["metric"] == doc["after"]["metric"] < 0
    fast, exact = re.fullmatch(
        r"the fast simulation the search ran meets it \(SQNR (-?[\d.]+) dB\), the chip's exact arithmetic does not \(SQNR (-?[\d.]+) dB\)",
        doc["why"],
    ).groups()
    assert float(fast) >= 20 and float(exact) == pytest.approx(doc["after"]["metric"], abs=0.005)
    text = npu_tui("fix", str(config), "--min-sqnr", "20")
    assert text.returncode == 3
    assert "target NOT met" in text.stdout and f"why: {doc['why']}" in text.stdout
    assert "before and after from the exact simulation" in text.stdout
