"""Write the TensorFlow frozen versions of the two samples from their ONNX weights, without TensorFlow.

    python sample_models/make_tf_samples.py      # after make_samples.py; deterministic, no training

Each graph is what TF 1.15's freeze_graph writes for the same network built with tf.layers (variables
read through `<var>/read`, conv1d as ExpandDims + Conv2D + Squeeze, NHWC), so gxnpuc names its weights
as it names the user's: kws_tdnn_pb's first layer is `tdnn1.affine/conv1d/ExpandDims_1/_5__cf__5`.
cnn_bn_pb uses FusedBatchNorm (V1), the one gxnpuc 1.5.8 folds under FUSE_BN. Layouts change
from ONNX's channels-first to TF's channels-last, so each Flatten's next weight is permuted to match and
eval.npz holds the same samples transposed: the float outputs equal the ONNX samples' (a test checks).
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from npu_tui.core.model.tf.writer import GraphWriter  # noqa: E402

VALID = {"strides": [1, 1, 1, 1], "padding": "VALID", "data_format": "NHWC", "dilations": [1, 1, 1, 1]}
SAME = {**VALID, "padding": "SAME"}
POOL = {"ksize": [1, 2, 2, 1], "strides": [1, 2, 2, 1], "padding": "VALID", "data_format": "NHWC"}


def onnx_weights(sample: str) -> dict[str, np.ndarray]:
    model = onnx.load(str(HERE / sample / "model.onnx"))
    return {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}


def flatten_rows(weight: np.ndarray, channels: int, positions: int) -> np.ndarray:
    """The rows of the weight after a Flatten, from channel-major (ONNX, c*P+p) to position-major (TF, p*C+c)."""
    return weight.reshape(channels, positions, -1).transpose(1, 0, 2).reshape(channels * positions, -1)


def dense(g: GraphWriter, scope: str, x: str, kernel: np.ndarray, bias: np.ndarray, out: str | None = None) -> str:
    g.variable(f"{scope}/kernel", kernel)
    g.variable(f"{scope}/bias", bias)
    mm = g.node(f"{scope}/MatMul", "MatMul", [x, f"{scope}/kernel/read"], transpose_a=False, transpose_b=False)
    return g.node(out or f"{scope}/BiasAdd", "BiasAdd", [mm, f"{scope}/bias/read"], data_format="NHWC")


def conv1d(g: GraphWriter, scope: str, x: str, kernel: np.ndarray, bias: np.ndarray) -> str:
    """tf.layers.conv1d: ExpandDims of the input and of the kernel, Conv2D, Squeeze, BiasAdd."""
    g.variable(f"{scope}/kernel", kernel)
    g.variable(f"{scope}/bias", bias)
    g.const(f"{scope}/conv1d/ExpandDims/dim", np.array(1, np.int32))
    g.node(f"{scope}/conv1d/ExpandDims", "ExpandDims", [x, f"{scope}/conv1d/ExpandDims/dim"], Tdim=3)
    g.const(f"{scope}/conv1d/ExpandDims_1/dim", np.array(0, np.int32))
    g.node(f"{scope}/conv1d/ExpandDims_1", "ExpandDims", [f"{scope}/kernel/read", f"{scope}/conv1d/ExpandDims_1/dim"], Tdim=3)
    g.node(f"{scope}/conv1d", "Conv2D", [f"{scope}/conv1d/ExpandDims", f"{scope}/conv1d/ExpandDims_1"], **VALID)
    g.node(f"{scope}/conv1d/Squeeze", "Squeeze", [f"{scope}/conv1d"], squeeze_dims=[1])
    return g.node(f"{scope}/BiasAdd", "BiasAdd", [f"{scope}/conv1d/Squeeze", f"{scope}/bias/read"], data_format="NHWC")


def flatten(g: GraphWriter, x: str) -> str:
    g.const("flatten/Reshape/shape", np.array([1, -1], np.int32))
    return g.node("flatten/Reshape", "Reshape", [x, "flatten/Reshape/shape"], Tshape=3)


def kws_tdnn() -> GraphWriter:
    w = onnx_weights("kws_tdnn")
    g = GraphWriter()
    g.placeholder("features", [1, 8, 8])  # [batch, frame, band]: TF's NWC
    x = conv1d(g, "tdnn1.affine", "features", w["tdnn1.affine"].transpose(2, 1, 0), w["tdnn1.affine.bias"])
    x = g.node("tdnn1.relu", "Relu", [x])
    x = conv1d(g, "tdnn2.affine", x, w["tdnn2.affine"].transpose(2, 1, 0), w["tdnn2.affine.bias"])
    x = g.node("tdnn2.relu", "Relu", [x])
    x = flatten(g, x)
    x = g.node("prefinal.relu", "Relu", [dense(g, "prefinal-l", x, flatten_rows(w["prefinal-l"], 32, 4), w["prefinal-l.bias"])])
    dense(g, "output", x, w["output"], w["output.bias"])
    g.node("logits", "Identity", ["output/BiasAdd"])
    return g


def conv_bn(g: GraphWriter, conv: str, bn: str, x: str, kernel: np.ndarray, w: dict[str, np.ndarray]) -> str:
    g.variable(f"{conv}/kernel", kernel)
    g.node(f"{conv}/Conv2D", "Conv2D", [x, f"{conv}/kernel/read"], **SAME)
    for part, key in (("gamma", "scale"), ("beta", "bias"), ("moving_mean", "mean"), ("moving_variance", "var")):
        g.variable(f"{bn}/{part}", w[f"{bn}.{key}"])
    params = [f"{bn}/{p}/read" for p in ("gamma", "beta", "moving_mean", "moving_variance")]
    return g.node(f"{bn}/FusedBatchNorm", "FusedBatchNorm", [f"{conv}/Conv2D", *params], epsilon=1e-5, data_format="NHWC", is_training=False)


def cnn_bn() -> GraphWriter:
    w = onnx_weights("cnn_bn")
    g = GraphWriter()
    g.placeholder("image", [1, 8, 8, 2])
    x = g.node("relu1", "Relu", [conv_bn(g, "conv1", "bn1", "image", w["conv1.weight"].transpose(2, 3, 1, 0), w)])
    x = g.node("pool1/AvgPool", "AvgPool", [x], **POOL)
    x = g.node("relu2", "Relu", [conv_bn(g, "conv2", "bn2", x, w["conv2.weight"].transpose(2, 3, 1, 0), w)])
    x = g.node("pool2/AvgPool", "AvgPool", [x], **POOL)
    x = flatten(g, x)
    dense(g, "fc", x, flatten_rows(w["fc.weight"], 32, 4), w["fc.bias"])
    g.node("logits", "Identity", ["fc/BiasAdd"])
    return g


CONFIG = """\
# gxnpuc config for the {name} sample as a TensorFlow frozen graph: what gxnpuc itself compiles.
CORENAME: GRUS              # chip family: GRUS (GX8002)
PB_FILE: model.pb           # the frozen GraphDef, relative to this file
OUTPUT_FILE: model.h        # written by gxnpuc only; npu-tui never touches it
OUTPUT_TYPE: c_code
NPU_UNIT: NPU32
INPUT_OPS:                  # input node name -> shape of one inference (NHWC / NWC)
  {input}: {shape}
OUTPUT_OPS: [logits]
COMPRESS: true              # store fully-connected weights as int8
CONV2D_COMPRESS: true       # store convolution weights as int8
FUSE_BN: {fuse}
"""


def write(name: str, graph: GraphWriter, input_name: str, shape: list[int], perm: tuple[int, ...], fuse: str) -> None:
    folder = HERE / f"{name}_pb"
    folder.mkdir(exist_ok=True)
    (folder / "model.pb").write_bytes(graph.serialize())
    (folder / "config.yaml").write_text(CONFIG.format(name=name, input=input_name, shape=shape, fuse=fuse))
    data = dict(np.load(HERE / name / "eval.npz"))
    data[input_name] = np.ascontiguousarray(data[input_name].transpose(perm))
    np.savez(folder / "eval.npz", **data)


def main() -> None:
    write("kws_tdnn", kws_tdnn(), "features", [1, 8, 8], (0, 2, 1), "false              # no BatchNormalization in this model")
    write("cnn_bn", cnn_bn(), "image", [1, 8, 8, 2], (0, 2, 3, 1), "true               # fold FusedBatchNorm into the convolution before it")
    shutil.rmtree(HERE / "__pycache__", ignore_errors=True)


if __name__ == "__main__":
    main()
