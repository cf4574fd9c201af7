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
    # cnn_bn meets it as shipped: its FUSE_BN-blown conv1 is depthwise, which gxnpuc never compresses
    assert doc["met"] and len(doc["changes"]) == (1 if sample == "kws_tdnn" else 0)
    assert doc["npu_tui_version"] and doc["data"]["samples"] == 597
    assert set(doc["settings"]) == {
        "COMPRESS", "CONV2D_COMPRESS", "FUSE_BN", "EXCLUDE_COMPRESS_OPS", "EXCLUDE_CONV2D_COMPRESS_OPS",
        "EXCLUDE_FUSE_BN_OPS", "WEIGHT_MIN_MAX",
    }
    if sample == "kws_tdnn":
        assert (tmp_path / "config.yaml.bak").read_text() == original
    checked = npu_tui("eval", str(config), "--max-drop", "1", "--json")
    assert checked.returncode == 0, checked.stderr
    evaluated = json.loads(checked.stdout)
    assert evaluated["target"]["met"] and (evaluated["accuracy_float"] - evaluated["accuracy_npu"]) * 100 <= 1
    compiled = json.loads(npu_tui("compile", str(config), "--json").stdout)
    assert compiled["weight_memory_bytes"] == doc["after"]["npu_bytes"]
    if sample == "kws_tdnn":  # the range (+530 bytes: more codes differ from the zero point), not the 5,564-byte exclusion
        change = doc["changes"][0]
        assert change["action"] == "range" and change["weight"] == "tdnn1.affine" and change["bytes"] == 14816
        assert list(doc["settings"]["WEIGHT_MIN_MAX"]) == ["tdnn1.affine"] and not doc["settings"]["EXCLUDE_COMPRESS_OPS"]
    else:  # nothing to change: the shipped config's own bytes
        assert doc["after"]["npu_bytes"] == doc["before"]["npu_bytes"] == 7888


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
