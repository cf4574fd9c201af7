"""`npu-tui simulate` through a subprocess: what the chip returns per sample, and the float model's."""

import json

import numpy as np
import onnxruntime as ort
from clirun import npu_tui
from conftest import SAMPLES

KWS = SAMPLES / "kws_tdnn"


def test_simulate_writes_the_npu_outputs_and_the_float_ones(tmp_path):
    npu, flt = tmp_path / "npu.npz", tmp_path / "float.npz"
    result = npu_tui("simulate", str(KWS / "config.yaml"), "--samples", "16", "--out", str(npu))
    assert result.returncode == 0, result.stderr
    assert "16 samples" in result.stderr
    assert npu_tui("simulate", str(KWS / "config.yaml"), "--samples", "16", "--out", str(flt), "--float").returncode == 0
    chip, ref = np.load(npu)["logits"], np.load(flt)["logits"]
    assert chip.shape == ref.shape == (16, 10) and chip.dtype == np.float32
    assert np.array_equal(chip.astype(np.float16).astype(np.float32), chip)  # fp16 results widened, as the board prints
    features = np.load(KWS / "eval.npz")["features"][:16]
    session = ort.InferenceSession(str(KWS / "model.onnx"))
    np.testing.assert_allclose(ref, session.run(["logits"], {"features": features})[0], rtol=1e-5, atol=1e-5)
    sqnr = 10 * np.log10((ref**2).sum() / ((ref - chip) ** 2).sum())
    evaluated = json.loads(npu_tui("eval", str(KWS / "config.yaml"), "--samples", "16", "--json").stdout)["output_sqnr_db"]
    assert abs(sqnr - evaluated) < 1e-6 and sqnr < 0  # eval's number is this one (exact); tdnn1.affine's int8 loss dominates
    assert not np.array_equal(chip, ref)


def test_simulate_needs_a_writable_out(tmp_path):
    result = npu_tui(
        "simulate", str(KWS / "config.yaml"), "--samples", "2", "--out", str(tmp_path / "no" / "such" / "dir" / "x.npz")
    )
    assert result.returncode == 2 and result.stderr.startswith("error: --out") and "Traceback" not in result.stderr
