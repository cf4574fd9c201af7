"""`npu-tui eval` through a subprocess: the JSON document, the table, and bad data."""

import json

import numpy as np
import pytest

from clirun import npu_tui
from conftest import SAMPLES

KWS = str(SAMPLES / "kws_tdnn" / "config.yaml")
KWS_DATA = str(SAMPLES / "kws_tdnn" / "eval.npz")


def test_json_with_layers_and_sensitivity():
    result = npu_tui("eval", KWS, "--data", KWS_DATA, "--layers", "--sensitivity", "--json")
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert set(doc) == {
        "samples", "worst_output", "output_sqnr_db", "classifier_output", "fp16_issue", "accuracy_float",
        "accuracy_npu", "top1_agreement", "outputs", "layers", "sensitivity",
    }
    assert doc["worst_output"] == "logits" and doc["classifier_output"] == "logits" and doc["fp16_issue"] is None
    assert doc["samples"] == 597
    assert doc["accuracy_float"] - doc["accuracy_npu"] >= 0.05
    assert set(doc["outputs"][0]) == {"name", "output_sqnr_db", "cosine", "max_abs_err"}
    assert set(doc["layers"][0]) == {"node", "op_type", "output", "sqnr_db", "cosine", "max_abs_err"}
    assert set(doc["sensitivity"][0]) == {"weight", "output_sqnr_db", "accuracy", "exclude_gain_db", "fp16_cost_bytes"}
    worst = min(doc["sensitivity"], key=lambda s: s["output_sqnr_db"])
    assert worst["weight"] == "tdnn1.affine"


def test_random_inputs_have_null_accuracy():
    doc = json.loads(npu_tui("eval", KWS, "--samples", "8", "--seed", "3", "--json").stdout)
    assert doc["samples"] == 8 and doc["accuracy_float"] is None and doc["accuracy_npu"] is None
    assert "layers" not in doc and "sensitivity" not in doc


def test_table_lists_the_most_sensitive_weight_first():
    result = npu_tui("eval", KWS, "--data", KWS_DATA, "--sensitivity")
    lines = result.stdout.splitlines()
    assert lines[0] == f"data: {KWS_DATA} (597 samples)"
    assert lines[1].startswith("accuracy: float 97.32%, NPU 15.91% (81.41 points below float)")
    header = next(i for i, line in enumerate(lines) if line.startswith("weight (most sensitive first)"))
    assert lines[header + 1].startswith("tdnn1.affine ")


def bad_npz(tmp_path, **arrays):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    return str(path)


@pytest.mark.parametrize(
    "make, expected",
    [
        (lambda p: bad_npz(p, other=np.zeros((4, 8, 8), np.float32)), "no array named 'features' for model input 'features' (the file holds other)"),
        (lambda p: bad_npz(p, features=np.zeros((4, 8, 7), np.float32)), "array 'features' has shape [4, 8, 7]; the model wants ['N', 1, 8, 8] or ['N', 8, 8]"),
        (lambda p: bad_npz(p, features=np.zeros((4, 8, 8), np.bool_)), "array 'features' is bool; the model input is float32"),
        (lambda p: bad_npz(p, features=np.zeros((4, 8, 8), np.float32), labels=np.zeros(3, np.int64)), "3 labels for 4 samples"),
        (lambda p: (p / "x.npz").write_text("not a zip") and str(p / "x.npz"), "not an .npz file"),
        (lambda p: str(p / "missing.npz"), "missing.npz: data file not found"),
    ],
    ids=["missing_input", "wrong_shape", "wrong_dtype", "label_count", "not_npz", "missing_file"],
)
def test_bad_data_is_one_error_line(tmp_path, make, expected):
    result = npu_tui("eval", KWS, "--data", make(tmp_path))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], result.stderr
