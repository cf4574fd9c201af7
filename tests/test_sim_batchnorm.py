"""A BatchNormalization left unfolded (FUSE_BN off, or EXCLUDE_FUSE_BN_OPS) runs on the NPU as op_bn: a
multiplier s = gamma / sqrt(var + eps) and an addend t = beta - mean * s, each stored fp16 by gxnpuc's converter
(NPU_ARITHMETIC.md section 3). The fast simulation must hold those two, not the four parameters each through
fp16: a running variance of 65536 or more is 0x7fff (NaN) in fp16 while s is an ordinary number."""

import re
from pathlib import Path

import gxnpuc_fixture as fx
import numpy as np
import onnx
import onnxruntime as ort
import pytest
from modelkit import make_model, tensor, value
from onnx import helper, numpy_helper

from npu_tui.core.config.project import open_project
from npu_tui.core.model.inventory import build_inventory
from npu_tui.core.quant.compiler import Compiler
from npu_tui.core.quant.fp16 import compiler_fp16
from npu_tui.core.quant.settings import Settings
from npu_tui.core.sim.npu.chip import chip_outputs
from npu_tui.core.sim.simulation import build_simulation, npu_values

EPSILON = 1e-3
HUGE_VAR = np.array([1e6, 4e7, 2.0, 3e5], np.float32)  # fp16: 0x7fff, 0x7fff, 2, 0x7fff
TINY_VAR = np.array([1e-12, 3e-9, 0.5, 1e-10], np.float32)  # fp16: 0, 0, 0.5, 0 (eps keeps s finite)


def conv_bn(var: np.ndarray, mean_scale: float) -> onnx.ModelProto:
    """x[1,3,5,5] -> Conv 3x3 (4 channels, bias) -> BatchNormalization(var) -> y; a mean of the size the
    variance suggests, so the BN's output is of order 1 as in a trained network."""
    rng = np.random.default_rng(7)
    inits = [
        tensor("conv.weight", rng.normal(0, 0.3, (4, 3, 3, 3)).astype(np.float32)),
        tensor("conv.bias", rng.normal(0, 0.1, 4).astype(np.float32)),
        tensor("bn.scale", rng.uniform(0.5, 1.5, 4).astype(np.float32)),
        tensor("bn.bias", rng.normal(0, 0.3, 4).astype(np.float32)),
        tensor("bn.mean", (rng.normal(0, 1, 4) * mean_scale).astype(np.float32)),
        tensor("bn.var", var),
    ]
    nodes = [
        helper.make_node("Conv", ["x", "conv.weight", "conv.bias"], ["c"], name="conv", pads=[1, 1, 1, 1]),
        helper.make_node(
            "BatchNormalization", ["c", "bn.scale", "bn.bias", "bn.mean", "bn.var"], ["y"], name="bn", epsilon=EPSILON
        ),
    ]
    return make_model(nodes, [value("x", [1, 3, 5, 5])], [value("y", [1, 4, 5, 5])], inits)


def compiler_of(model: onnx.ModelProto) -> Compiler:
    """A compiler for a copy of `model` (the inventory keeps the graph without its data)."""
    return Compiler(build_inventory(onnx.ModelProto.FromString(model.SerializeToString())))


def ort_run(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x})[0]


def sqnr_db(reference: np.ndarray, actual: np.ndarray) -> float:
    noise = np.sum((reference - actual).astype(np.float64) ** 2)
    return float(10 * np.log10(np.sum(reference.astype(np.float64) ** 2) / noise)) if noise else np.inf


def the_three(model: onnx.ModelProto, settings: Settings, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Float (onnxruntime on the model), fast (onnxruntime on the simulation graph), exact (the chip's arithmetic)."""
    compiler = compiler_of(model)
    compilation = compiler.compile(settings)
    fast = ort_run(build_simulation(compiler, compilation).to_proto(), x)
    plain = build_simulation(compiler, compilation, fp16_activations=False).to_proto()
    exact = chip_outputs(plain, npu_values(compilation), {"x": x[None]}, ["y"], {}).arrays["y"].reshape(fast.shape)
    return ort_run(model, x), fast, exact


@pytest.mark.parametrize("var, mean_scale", [(HUGE_VAR, 300.0), (TINY_VAR, 1e-4)], ids=["var_1e6", "var_tiny"])
@pytest.mark.parametrize(
    "settings", [Settings(), Settings(fuse_bn=True, exclude_fuse_bn=("bn",))], ids=["fuse_bn_off", "excluded"]
)
def test_the_fast_batchnorm_is_finite_and_close_to_the_chip_and_to_float(var, mean_scale, settings):
    model = conv_bn(var, mean_scale)
    x = np.random.default_rng(8).normal(size=(1, 3, 5, 5)).astype(np.float32)
    reference, fast, exact = the_three(model, settings, x)
    assert np.isfinite(exact).all() and np.isfinite(fast).all()
    assert sqnr_db(exact, fast) > 50  # the same two stored numbers; fp32 against fp16 intermediates only
    assert sqnr_db(reference, fast) > 40 and sqnr_db(reference, exact) > 40


def bn_alone(gamma: np.ndarray, beta: np.ndarray, mean: np.ndarray, var: np.ndarray) -> onnx.ModelProto:
    """x[1,C,2,3] -> BatchNormalization -> y: nothing to fold it into, so every setting keeps it."""
    shape = [1, gamma.size, 2, 3]
    inits = [tensor("g", gamma), tensor("b", beta), tensor("m", mean), tensor("v", var)]
    node = helper.make_node("BatchNormalization", ["x", "g", "b", "m", "v"], ["y"], name="bn", epsilon=EPSILON)
    return make_model([node], [value("x", shape)], [value("y", shape)], inits)


def test_the_fast_batchnorm_is_fp16_s_and_t_computed_by_hand():
    rng = np.random.default_rng(9)
    gamma = rng.uniform(0.3, 3, 6).astype(np.float32)
    beta = rng.normal(0, 2, 6).astype(np.float32)
    mean = rng.normal(0, 5, 6).astype(np.float32)
    var = np.array([0.37, 1.9, 7e4, 1e6, 3.3e-3, 123.4], np.float32)
    model = bn_alone(gamma, beta, mean, var)
    x = rng.normal(0, 3, (1, 6, 2, 3)).astype(np.float16).astype(np.float32)  # as the NPU reads it
    compiler = compiler_of(model)
    fast = ort_run(build_simulation(compiler, compiler.compile(Settings())).to_proto(), x)
    s = compiler_fp16(gamma / np.sqrt(var + np.float32(EPSILON))).astype(np.float32).reshape(1, 6, 1, 1)
    t = compiler_fp16(beta - mean * (gamma / np.sqrt(var + np.float32(EPSILON)))).astype(np.float32).reshape(1, 6, 1, 1)
    by_hand = (x * s + t).astype(np.float16).astype(np.float32)  # x * s is exact in fp32 (11 x 11 bits)
    np.testing.assert_array_equal(fast, by_hand)
    four_roundings = [compiler_fp16(p).astype(np.float32) for p in (gamma, beta, mean, var)]
    s_old = four_roundings[0] / np.sqrt(four_roundings[3] + np.float32(EPSILON))
    assert not np.isfinite(s_old).all()  # what the fast path held before: var 7e4 and 1e6 are 0x7fff (NaN) in fp16


def overflow_warnings(gamma: list[float], var: list[float]) -> list[str]:
    beta, mean = np.zeros(len(gamma), np.float32), np.ones(len(gamma), np.float32)
    model = bn_alone(np.array(gamma, np.float32), beta, mean, np.array(var, np.float32))
    warnings = compiler_of(model).compile(Settings()).warnings
    return [w.message for w in warnings if w.code == "fp16_overflow"]


def test_fp16_overflow_is_about_the_multiplier_and_addend_the_chip_stores():
    assert overflow_warnings([1.0, 2.0], [1e6, 7e4]) == []  # the variances are never stored
    assert overflow_warnings([1e5, 2.0], [1e6, 1.0]) == []  # s = 100: fine, though gamma is beyond fp16
    assert overflow_warnings([1.0, 2.0], [1.0, 1e-12]) == []  # s = 2 / sqrt(1e-12 + 1e-3) = 63.2
    assert overflow_warnings([1.0, 1e5], [1.0, 1.0]) == [
        "g: the BatchNormalization's multiplier stored in its place reaches 99950, beyond ±65504 (the NPU reads inf or NaN)",
        "b: the BatchNormalization's addend stored in its place reaches 99950, beyond ±65504 (the NPU reads inf or NaN)",
    ]  # s = 1e5 / sqrt(1 + 1e-3) is not, nor t = 0 - 1 * s


def test_the_simulation_graph_holds_s_and_t_in_the_parameters_places():
    """Names and places stay (SPEC section 6): scale holds s, bias t, mean 0, variance 1, epsilon 0."""
    gamma, beta = np.array([2.0, 0.5], np.float32), np.array([0.25, -1.0], np.float32)
    mean, var = np.array([1.0, -3.0], np.float32), np.array([4.0 - EPSILON, 1e6], np.float32)
    compiler = compiler_of(bn_alone(gamma, beta, mean, var))
    sim = build_simulation(compiler, compiler.compile(Settings()), fp16_activations=False).to_proto()
    held = {t.name: numpy_helper.to_array(t) for t in sim.graph.initializer}
    s = gamma / np.sqrt(var + np.float32(EPSILON))
    np.testing.assert_array_equal(held["g"], compiler_fp16(s).astype(np.float32))
    np.testing.assert_array_equal(held["b"], compiler_fp16(beta - mean * s).astype(np.float32))
    assert held["m"].tolist() == [0, 0] and held["v"].tolist() == [1, 1]
    (bn,) = sim.graph.node
    epsilon = next(helper.get_attribute_value(a) for a in bn.attribute if a.name == "epsilon")
    assert bn.input[1:] == ["g", "b", "m", "v"] and epsilon == 0.0
    assert held["g"][0] == 1.0 and held["b"][0] == -0.75  # s = 2 / sqrt(4) and t = 0.25 - 1 * 1


def test_a_parameter_another_batchnorm_shares_gets_a_tensor_of_its_own():
    """Two BatchNormalizations reading one gamma, each with its own variance: two multipliers."""
    shape = [1, 2, 1, 3]
    inits = [
        tensor("g", np.array([1.0, 2.0], np.float32)),
        tensor("b", np.zeros(2, np.float32)),
        tensor("m", np.zeros(2, np.float32)),
        tensor("v1", np.array([4.0, 4.0], np.float32)),
        tensor("v2", np.array([16.0, 16.0], np.float32)),
    ]
    nodes = [
        helper.make_node("BatchNormalization", ["x", "g", "b", "m", "v1"], ["h"], name="bn1", epsilon=0.0),
        helper.make_node("BatchNormalization", ["h", "g", "b", "m", "v2"], ["y"], name="bn2", epsilon=0.0),
    ]
    model = make_model(nodes, [value("x", shape)], [value("y", shape)], inits)
    compiler = compiler_of(model)
    sim = build_simulation(compiler, compiler.compile(Settings())).to_proto()
    x = np.arange(6, dtype=np.float32).reshape(shape)
    np.testing.assert_array_equal(ort_run(sim, x), ort_run(model, x))  # x * g / 2 * g / 4: exact in fp16
    onnx.checker.check_model(sim)


def _weight_words(model_h: Path) -> np.ndarray:
    body = re.search(r"weight_content\[\d+\][^{]*\{(.*?)\};", model_h.read_text(), re.S)
    assert body, model_h
    return np.array([int(b, 16) for b in re.findall(r"0x[0-9a-fA-F]{2}", body.group(1))], np.uint8).view("<u2")


@pytest.mark.skipif(not fx.available(), reason="../shared/gxnpuc (the vendor compiler's outputs) is not beside the repo")
def test_the_simulation_holds_the_multiplier_and_addend_gxnpuc_stored():
    """Every fixture run that kept its BatchNorm (V2/V3 always, V1 without FUSE_BN): model.h's weight memory
    ends with the fp16 words of s then t; the simulation graph holds exactly those in the BN's scale and bias."""
    checked = 0
    for run in fx.runs():
        if not run.ok or "_bn" not in run.graph or "FUSED_BN_OPS" in run.stdout:
            continue
        project = open_project(run.path / "config.yaml")
        sim = build_simulation(project.compiler, project.compile(project.config.settings), fp16_activations=False).to_proto()
        (bn,) = [n for n in sim.graph.node if n.op_type == "BatchNormalization"]
        held = {t.name: numpy_helper.to_array(t) for t in sim.graph.initializer}
        s, t = (held[name].astype(np.float16).view(np.uint16) for name in bn.input[1:3])
        words = _weight_words(run.path / "model.h")
        assert words[-2 * s.size :].tolist() == s.tolist() + t.tolist(), run.path
        checked += 1
    assert checked >= 60
