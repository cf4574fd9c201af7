"""`npu-tui eval` through a subprocess: the JSON document, the table, and bad data."""

import json
import os
import threading

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
        "npu_tui_version",
        "config",
        "model",
        "data",
        "samples",
        "worst_output",
        "output_sqnr_db",
        "classifier_output",
        "fp16_issue",
        "accuracy_float",
        "accuracy_npu",
        "top1_agreement",
        "outputs",
        "layer_samples",
        "layers",
        "sensitivity",
        "simulation",
        "simulation_note",
        "chip_warnings",
        "warnings",
        "layers_simulation",
        "sensitivity_simulation",
    }
    assert (doc["simulation"], doc["layers_simulation"], doc["sensitivity_simulation"]) == ("exact", "fast", "fast")
    assert doc["layer_samples"] == 597  # the kws layers of all samples fit the memory budget
    assert doc["worst_output"] == "logits" and doc["classifier_output"] == "logits" and doc["fp16_issue"] is None
    assert doc["samples"] == 597
    assert doc["accuracy_float"] - doc["accuracy_npu"] >= 0.05
    assert set(doc["outputs"][0]) == {"name", "output_sqnr_db", "cosine", "max_abs_err"}
    first = doc["layers"][0]
    assert set(first) == {
        "index",
        "node",
        "op_type",
        "output",
        "weight",
        "sqnr_db",
        "cosine",
        "max_abs_err",
        "drop_db",
        "marked",
        "isolated",
    }
    assert first["weight"] == "tdnn1.affine" and set(first["isolated"]) == {"sqnr_db", "cosine", "max_abs_err"}
    assert doc["layers"][1]["isolated"] is None  # a Relu reads no weight
    assert set(doc["sensitivity"][0]) == {"weight", "alone_sqnr_db", "accuracy", "exclude_gain_db", "fp16_cost_bytes"}
    worst = min(doc["sensitivity"], key=lambda s: s["alone_sqnr_db"])
    assert worst["weight"] == "tdnn1.affine"


def test_random_inputs_have_null_accuracy(tmp_path):
    import shutil
    from pathlib import Path

    for name in ("config.yaml", "model.onnx"):  # no eval.npz beside the config: random inputs
        shutil.copy(Path(KWS).parent / name, tmp_path / name)
    doc = json.loads(npu_tui("eval", str(tmp_path / "config.yaml"), "--samples", "8", "--seed", "3", "--json").stdout)
    assert doc["samples"] == 8 and doc["accuracy_float"] is None and doc["accuracy_npu"] is None
    assert doc["data"] == {"random": {"seed": 3, "samples": 8}, "samples": 8}
    assert "layers" not in doc and "sensitivity" not in doc


def test_eval_uses_the_data_beside_the_config():
    doc = json.loads(npu_tui("eval", KWS, "--samples", "8", "--json").stdout)
    assert doc["data"]["file"].endswith("eval.npz") and doc["accuracy_float"] is not None


def test_table_lists_the_most_sensitive_weight_first():
    result = npu_tui("eval", KWS, "--data", KWS_DATA, "--sensitivity")
    lines = result.stdout.splitlines()
    assert lines[0] == f"data: {KWS_DATA} (597 samples)"
    assert lines[1].startswith("accuracy: float 97.32%, NPU 28.81% (68.51 points below float)")
    header = next(i for i, line in enumerate(lines) if line.startswith("weight (most sensitive first)"))
    assert lines[header + 1].startswith("tdnn1.affine ")


def bad_npz(tmp_path, **arrays):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    return str(path)


@pytest.mark.parametrize(
    "make, expected",
    [
        (
            lambda p: bad_npz(p, other=np.zeros((4, 8, 8), np.float32)),
            "no array named 'features' for model input 'features' (the file holds other)",
        ),
        (
            lambda p: bad_npz(p, features=np.zeros((4, 8, 7), np.float32)),
            "array 'features' has shape [4, 8, 7]; the model wants ['N', 1, 8, 8] or ['N', 8, 8]",
        ),
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


class PtyReader(threading.Thread):
    """Drains a pty's leader side until the child closes it, so the child never blocks writing its
    progress there while the test waits on something else; waiters are woken on every chunk."""

    def __init__(self, fd: int) -> None:
        super().__init__(daemon=True)
        self.fd = fd
        self.data = b""
        self.ended = False
        self.changed = threading.Condition()

    def run(self) -> None:
        while True:
            try:
                chunk = os.read(self.fd, 4096)  # blocks until output, or EIO once the child's side is closed
            except OSError:
                chunk = b""
            with self.changed:
                self.data += chunk
                self.ended = not chunk
                self.changed.notify_all()
            if not chunk:
                return

    def wait_for(self, text: bytes, timeout: float) -> bool:
        with self.changed:
            return self.changed.wait_for(lambda: text in self.data or self.ended, timeout) and text in self.data


def test_ctrl_c_during_the_sweep_prints_what_was_measured(tmp_path):
    """stderr is a terminal here, so the sweep shows its progress; Ctrl-C comes once it has. Every wait
    has a deadline (DEADLINE, against a hang only) and nothing depends on how fast the machine is."""
    import pty
    import signal
    import subprocess
    import sys

    from modelkit import BASE_CONFIG, make_model, tensor, value, write_project
    from onnx import helper
    from tui_kit import DEADLINE

    rng = np.random.default_rng(0)
    count = 400
    nodes = [helper.make_node("MatMul", [f"h{i}", f"w{i}"], [f"h{i + 1}"], name=f"fc{i}") for i in range(count)]
    inits = [tensor(f"w{i}", (np.eye(16) + rng.normal(0, 0.01, (16, 16))).astype(np.float32)) for i in range(count)]
    model = make_model(nodes, [value("h0", ["n", 16])], [value(f"h{count}", ["n", 16])], inits)
    config = write_project(tmp_path, model, BASE_CONFIG)
    leader, follower = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "npu_tui", "eval", str(config), "--sensitivity", "--samples", "256"],
        stdout=subprocess.PIPE,
        stderr=follower,
        text=True,
    )
    os.close(follower)
    reader = PtyReader(leader)
    reader.start()
    try:
        assert reader.wait_for(b"sensitivity: 10/", DEADLINE), reader.data.decode(errors="replace")[-500:]
        process.send_signal(signal.SIGINT)
        out, _ = process.communicate(timeout=DEADLINE)
    finally:
        process.kill()  # a no-op once it has exited; never a child left behind by a failed wait
        process.wait(DEADLINE)
    reader.join(DEADLINE)
    os.close(leader)
    seen = reader.data
    assert not reader.is_alive(), "the pty reader did not see the child's end"
    assert process.returncode == 130, seen
    match = [line for line in seen.decode().splitlines() if "interrupted:" in line]
    assert match and "weights measured" in match[0] and f"of {count}" in match[0]
    measured = int(match[0].split("interrupted: ")[1].split()[0])
    assert 0 < measured < count
    assert out.count("\n") > measured  # the report lists them


def _log_of_relu_plus_epsilon():
    """x -> Relu -> + 1e-10 -> Log -> fc: an audio front end's log(power + eps). fp16 flushes the
    epsilon to 0, so on the NPU log(0) = -inf wherever Relu gave 0."""
    from modelkit import make_model, tensor, value
    from onnx import helper

    return make_model(
        [
            helper.make_node("Relu", ["x"], ["power"], name="power"),
            helper.make_node("Add", ["power", "eps"], ["floored"], name="add_eps"),
            helper.make_node("Log", ["floored"], ["logged"], name="log"),
            helper.make_node("MatMul", ["logged", "w"], ["y"], name="fc"),
        ],
        [value("x", [1, 8])],
        [value("y", [1, 3])],
        [
            tensor("eps", np.array(1e-10, np.float32)),
            tensor("w", np.random.default_rng(0).normal(size=(8, 3)).astype(np.float32)),
        ],
    )


def _pad_with_minus_infinity_then_overflow():
    """Pad with -inf on purpose (for a max pool), then a real overflow two Muls later."""
    from modelkit import make_model, tensor, value
    from onnx import helper

    return make_model(
        [
            helper.make_node("Pad", ["x", "pads", "minus_inf"], ["padded"], name="pad", mode="constant"),
            helper.make_node("MaxPool", ["padded"], ["pooled"], name="pool", kernel_shape=[3, 3]),
            helper.make_node("Flatten", ["pooled"], ["flat"], name="flatten"),
            helper.make_node("MatMul", ["flat", "w"], ["h"], name="fc"),
            helper.make_node("Mul", ["h", "k"], ["m1"], name="mul1"),
            helper.make_node("Mul", ["m1", "k"], ["y"], name="mul2"),
        ],
        [value("x", [1, 1, 4, 4])],
        [value("y", [1, 3])],
        [
            tensor("pads", np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64)),
            tensor("minus_inf", np.array(-np.inf, np.float32)),
            tensor("w", np.random.default_rng(0).normal(size=(16, 3)).astype(np.float32)),
            tensor("k", np.array(1000.0, np.float32)),
        ],
    )


def test_fp16_underflow_names_the_epsilon_and_the_node_a_log_reads(tmp_path):
    from modelkit import BASE_CONFIG, write_project

    config = write_project(tmp_path, _log_of_relu_plus_epsilon(), BASE_CONFIG)
    result = npu_tui("eval", str(config), "--json")
    assert result.returncode == 0, result.stderr
    issue = json.loads(result.stdout)["fp16_issue"]
    assert issue.startswith("fp16 underflow: node 'add_eps' (Add) makes values down to 1e-10"), issue
    assert "which fp16 flushes to 0, and node 'log' (Log) reads them" in issue
    assert "warning: eps: its values (at most 1e-10) all become 0 in fp16" in result.stderr


def test_a_minus_infinity_the_float_model_makes_is_not_an_overflow(tmp_path):
    from modelkit import BASE_CONFIG, write_project

    config = write_project(tmp_path, _pad_with_minus_infinity_then_overflow(), BASE_CONFIG)
    result = npu_tui("eval", str(config), "--json")
    assert result.returncode == 0, result.stderr
    issue = json.loads(result.stdout)["fp16_issue"]
    assert issue is not None and issue.startswith("fp16 overflow: node 'mul2' (Mul) reaches "), issue
