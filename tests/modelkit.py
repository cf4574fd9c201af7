"""Small ONNX models built inside the tests, and config files that point at them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17


def tensor(name: str, array: np.ndarray) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(array), name)


def value(name: str, shape: list | None, dtype: int = TensorProto.FLOAT) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, dtype, shape)


def make_model(nodes, inputs, outputs, initializers=(), opset: int = OPSET) -> onnx.ModelProto:
    graph = helper.make_graph(list(nodes), "test", list(inputs), list(outputs), list(initializers))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return model


def conv_bn_fc(rng: np.random.Generator, tiny_var: bool = True) -> onnx.ModelProto:
    """x[1,3,6] -> Conv1d(4) -> BN -> Relu -> Flatten -> MatMul(24x5)."""
    var = np.array([1.0, 0.5, 1e-4 if tiny_var else 1.0, 2.0], np.float32)
    inits = [
        tensor("conv1.weight", rng.normal(0, 0.3, (4, 3, 3)).astype(np.float32)),
        tensor("conv1.bias", rng.normal(0, 0.1, 4).astype(np.float32)),
        tensor("bn1.scale", rng.uniform(0.5, 1.5, 4).astype(np.float32)),
        tensor("bn1.bias", rng.normal(0, 0.1, 4).astype(np.float32)),
        tensor("bn1.mean", rng.normal(0, 0.1, 4).astype(np.float32)),
        tensor("bn1.var", var),
        tensor("fc.weight", rng.normal(0, 0.2, (24, 5)).astype(np.float32)),
    ]
    nodes = [
        helper.make_node("Conv", ["x", "conv1.weight", "conv1.bias"], ["c1"], name="conv1", pads=[1, 1]),
        helper.make_node(
            "BatchNormalization", ["c1", "bn1.scale", "bn1.bias", "bn1.mean", "bn1.var"], ["b1"], name="bn1", epsilon=1e-5
        ),
        helper.make_node("Relu", ["b1"], ["r1"], name="relu1"),
        helper.make_node("Flatten", ["r1"], ["f"], name="flatten"),
        helper.make_node("MatMul", ["f", "fc.weight"], ["y"], name="fc"),
    ]
    return make_model(nodes, [value("x", [1, 3, 6])], [value("y", [1, 5])], inits)


def named_matmul(weight: str, node: str) -> onnx.ModelProto:
    """x[n,3] @ weight -> y: one weight and one node whose names a test chooses (long, hostile)."""
    return make_model(
        [helper.make_node("MatMul", ["x", weight], ["y"], name=node)],
        [value("x", ["n", 3])],
        [value("y", ["n", 2])],
        [tensor(weight, np.random.default_rng(0).normal(size=(3, 2)).astype(np.float32))],
    )


def amplifying_matmul() -> onnx.ModelProto:
    """x[n, 2] @ 60000s then * 1e-3: the fp16 MatMul overflows wherever a row sums past 1.09
    (65504 / 60000) while the float model's output stays small."""
    return make_model(
        [
            helper.make_node("MatMul", ["x", "w"], ["big"], name="amplify"),
            helper.make_node("Mul", ["big", "tiny"], ["y"], name="shrink"),
        ],
        [value("x", ["n", 2])],
        [value("y", ["n", 2])],
        [tensor("w", np.full((2, 2), 60000.0, np.float32)), tensor("tiny", np.array(1e-3, np.float32))],
    )


def write_project(folder: Path, model: onnx.ModelProto | None, config: str, model_name: str = "model.onnx") -> Path:
    """Save the model and a config.yaml beside it; the config text is used as given."""
    folder.mkdir(parents=True, exist_ok=True)
    if model is not None:
        onnx.save(model, str(folder / model_name))
    path = folder / "config.yaml"
    path.write_text(config, encoding="utf-8")
    return path


BASE_CONFIG = """\
# a vendor-style config
CORENAME: GRUS
ONNX_FILE: model.onnx
OUTPUT_FILE: model.h
COMPRESS: true
CONV2D_COMPRESS: true
"""


def bn_hurt_and_fc_outliers() -> onnx.ModelProto:
    """x[1,8,16] scaled to sensor units (channels 4-7 by 1e-2) -> Conv1d(16), a plain group-1 conv whose
    filters 8-15 read only channels 4-7 -> BN -> Relu -> MatMul fc1 (256x32, six outliers at 8) -> MatMul
    fc2 (32x10) -> 16 near-identity 10x10 MatMuls. The BN channels fed by the small inputs have variance
    1e-4, so folding multiplies their filters by about 95 and the other filters drown in the fused
    weight's int8 grid (FUSE_BN hurts; gxnpuc compresses this conv, not a grouped one); fc1's outliers
    leave its bulk two int8 levels and carry signal, so no range rescues it (exclusion does)."""
    rng = np.random.default_rng(1)
    fc1 = rng.normal(0, 0.05, (256, 32)).astype(np.float32)
    fc1[rng.integers(0, 256, 6), rng.integers(0, 32, 6)] = 8.0
    conv = rng.normal(0, 0.3, (16, 8, 3)).astype(np.float32)
    conv[:8, 4:] = conv[8:, :4] = 0.0
    inits = [
        tensor("gain", np.where(np.arange(8) >= 4, 1e-2, 1.0).astype(np.float32).reshape(1, 8, 1)),
        tensor("conv.weight", conv),
        tensor("bn.scale", np.ones(16, np.float32)),
        tensor("bn.bias", np.zeros(16, np.float32)),
        tensor("bn.mean", np.zeros(16, np.float32)),
        tensor("bn.var", np.where(np.arange(16) >= 8, 1e-4, 1.0).astype(np.float32)),
        tensor("fc1.weight", fc1),
        tensor("fc2.weight", rng.normal(0, 0.2, (32, 10)).astype(np.float32)),
    ]
    nodes = [
        helper.make_node("Mul", ["x", "gain"], ["xs"], name="sensor_units"),
        helper.make_node("Conv", ["xs", "conv.weight"], ["c"], name="conv", pads=[1, 1]),
        helper.make_node("BatchNormalization", ["c", "bn.scale", "bn.bias", "bn.mean", "bn.var"], ["b"], name="bn", epsilon=1e-5),
        helper.make_node("Relu", ["b"], ["r"], name="relu"),
        helper.make_node("Flatten", ["r"], ["f"], name="flatten"),
        helper.make_node("MatMul", ["f", "fc1.weight"], ["h"], name="fc1"),
        helper.make_node("MatMul", ["h", "fc2.weight"], ["t0"], name="fc2"),
    ]
    for i in range(TAIL_LAYERS):  # near-identity layers that quantize well: a model of 20-odd weights, as real ones are
        inits.append(tensor(f"tail{i}.weight", (np.eye(10) + rng.normal(0, 1e-3, (10, 10))).astype(np.float32)))
        nodes.append(
            helper.make_node(
                "MatMul", [f"t{i}", f"tail{i}.weight"], [f"t{i + 1}" if i + 1 < TAIL_LAYERS else "y"], name=f"tail{i}"
            )
        )
    return make_model(nodes, [value("x", [1, 8, 16])], [value("y", [1, 10])], inits)


TAIL_LAYERS = 16


def scaled_rows_and_idle_outlier() -> onnx.ModelProto:
    """x[1,64] scaled to sensor units (features 0-31 by 1/60) -> MatMul a (64x64) -> MatMul b (64x128) -> y.
    a's rows 0-31 are 60 times its others, read by the scaled features: every row carries as much
    signal, its int8 grid is set by the large rows and the small ones drown, and no clip share helps
    (uniform values: no tail to cut). b has one outlier (12, its bulk 0.1) in row 0, which reads a
    column of a that is a thousand times smaller: it carries no signal, and a range that clips it
    gives b's bulk its int8 levels back."""
    rng = np.random.default_rng(0)
    a = rng.uniform(-1, 1, (64, 64)).astype(np.float32)
    a[:32] *= 60
    a[:, 0] *= 1e-3
    b = rng.normal(0, 0.1, (64, 128)).astype(np.float32)
    b[0, 5] = 12.0
    gain = np.where(np.arange(64) < 32, 1 / 60, 1.0).astype(np.float32).reshape(1, 64)
    nodes = [
        helper.make_node("Mul", ["x", "gain"], ["xs"], name="sensor_units"),
        helper.make_node("MatMul", ["xs", "a.weight"], ["h"], name="fc_a"),
        helper.make_node("MatMul", ["h", "b.weight"], ["y"], name="fc_b"),
    ]
    inits = [tensor("gain", gain), tensor("a.weight", a), tensor("b.weight", b)]
    return make_model(nodes, [value("x", [1, 64])], [value("y", [1, 128])], inits)


def chip_warning_model(folder: Path, with_softmax: bool = False) -> Path:
    """h = x @ w; y = 1 - h (a scalar-first Sub, named with markup) and h ** 2 (a Pow of a value that can be negative)."""
    nodes = [
        helper.make_node("MatMul", ["x", "fc.weight"], ["h"], name="fc"),
        helper.make_node("Sub", ["one", "h"], ["y"], name="[bold]gate[/bold]"),
        helper.make_node("Pow", ["h", "two"], ["p"], name="square"),
    ]
    if with_softmax:
        nodes.append(helper.make_node("Softmax", ["y"], ["s"], name="head"))
    model = make_model(
        nodes,
        [value("x", [1, 3])],
        [value("s" if with_softmax else "y", [1, 2]), value("p", [1, 2])],
        [
            tensor("fc.weight", np.random.default_rng(0).normal(size=(3, 2)).astype(np.float32)),
            tensor("one", np.array(1.0, np.float32)),
            tensor("two", np.array(2.0, np.float32)),
        ],
    )
    return write_project(folder, model, BASE_CONFIG)
