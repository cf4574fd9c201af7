"""The converted float model against TensorFlow itself, on graphs TensorFlow builds and freezes here:
every GRUS op, NHWC, SAME/VALID, strides, dilations (atrous_conv2d's SpaceToBatchND pattern), LSTM and GRU
cells. Runs only where TensorFlow is installed (it is not a dependency: `pip install tensorflow-cpu`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

tf = pytest.importorskip("tensorflow")
v1 = tf.compat.v1


@pytest.fixture(autouse=True)
def own_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.getbasetemp() / "tf-cache"))


def frozen(build, inputs: dict[str, list[int]], tmp_path: Path, seed: int = 0):
    """Build under a fresh v1 graph with classic variables (read through <var>/read), freeze, save."""
    v1.disable_eager_execution()
    v1.disable_resource_variables()
    graph = tf.Graph()
    with graph.as_default():
        v1.set_random_seed(seed)
        placeholders = {name: v1.placeholder(tf.float32, shape, name=name) for name, shape in inputs.items()}
        outputs = build(**placeholders)
        names = [o.op.name for o in outputs]
        with v1.Session(graph=graph) as session:
            session.run(v1.global_variables_initializer())
            graph_def = v1.graph_util.convert_variables_to_constants(session, graph.as_graph_def(), names)
    pb = tmp_path / "model.pb"
    pb.write_bytes(graph_def.SerializeToString())
    rng = np.random.default_rng(seed)
    feeds = {name: rng.normal(size=shape).astype(np.float32) for name, shape in inputs.items()}
    with tf.Graph().as_default() as run_graph:
        v1.import_graph_def(graph_def, name="")
        with v1.Session(graph=run_graph) as session:
            expected = session.run([f"{n}:0" for n in names], {f"{k}:0": v for k, v in feeds.items()})
    return pb, names, feeds, expected


def same_as_tf(pb: Path, names: list[str], feeds: dict[str, np.ndarray], expected: list[np.ndarray]) -> None:
    from npu_tui.core.model.tf.to_onnx import read_pb

    model = read_pb(pb, {k: list(v.shape) for k, v in feeds.items()}, names)
    got = ort.InferenceSession(model.SerializeToString()).run(names, feeds)
    for name, ours, theirs in zip(names, got, expected):
        assert ours.shape == theirs.shape, name
        scale = max(float(np.abs(theirs).max()), 1e-30)
        assert float(np.abs(ours - theirs).max()) <= 1e-5 * scale, name


def variable(name: str, shape: list[int], low: float = -0.5, high: float = 0.5):
    return v1.get_variable(name, shape, initializer=v1.random_uniform_initializer(low, high))


def conv(x, scope: str, shape: list[int], strides: int = 1, padding: str = "SAME", bias: bool = True):
    """What tf.layers.conv2d writes: <scope>/kernel, <scope>/Conv2D, <scope>/bias, <scope>/BiasAdd."""
    with v1.variable_scope(scope):
        y = tf.nn.conv2d(x, variable("kernel", shape), [1, strides, strides, 1], padding, name="Conv2D")
        return tf.nn.bias_add(y, variable("bias", shape[-1:]), name="BiasAdd") if bias else y


def ops_of(pb: Path) -> set[str]:
    from npu_tui.core.model.tf.graphdef import read_graphdef

    return {node.op for node in read_graphdef(pb).node}


def test_convolutions_pools_and_batch_norms(tmp_path):
    def build(x):
        a = conv(x, "c1", [3, 3, 3, 6], strides=2)
        b = tf.nn.relu6(conv(x, "c2", [3, 2, 3, 4], padding="VALID"))
        d = tf.nn.depthwise_conv2d(x, variable("dwk", [3, 3, 3, 2]), [1, 2, 2, 1], "VALID", name="dw")
        atrous = tf.nn.atrous_conv2d(x, variable("ak", [3, 3, 3, 5]), rate=2, padding="SAME", name="atrous")
        with v1.variable_scope("bn"):
            params = [
                variable("gamma", [6]),
                variable("beta", [6]),
                variable("moving_mean", [6]),
                variable("moving_variance", [6], 0.5, 2),
            ]
            bn, _, _ = v1.nn.fused_batch_norm(a, *params, epsilon=1e-3, is_training=False, name="FusedBatchNorm")
        m = tf.nn.max_pool2d(x, 3, 3, "SAME", name="mp")
        p = tf.nn.avg_pool2d(x, 2, 2, "SAME", name="ap")
        return [tf.identity(t, name=f"out{i}") for i, t in enumerate([a, b, d, atrous, bn, m, p])]

    pb, *rest = frozen(build, {"x": [1, 11, 9, 3]}, tmp_path)
    assert {
        "SpaceToBatchND",
        "BatchToSpaceND",
        "DepthwiseConv2dNative",
        "FusedBatchNormV3",
        "MaxPool",
        "AvgPool",
        "Relu6",
    } <= ops_of(pb)
    same_as_tf(pb, *rest)


def test_elementwise_shape_and_reduction_ops(tmp_path):
    def build(x, y):
        pos = tf.abs(x) + 0.1
        outs = [
            x + y,
            x - y,
            x * y,
            x / (tf.abs(y) + 1),
            tf.math.squared_difference(x, y),
            2.0 - x,
            3.0 / pos,
            tf.nn.relu(x),
            tf.nn.relu6(x * 4),
            tf.sigmoid(x),
            tf.tanh(x),
            tf.nn.selu(x),
            tf.exp(x),
            tf.math.log(pos),
            tf.sqrt(pos),
            tf.math.rsqrt(pos),
            tf.math.reciprocal(pos),
            tf.square(x),
            tf.pow(pos, 1.7),
            tf.negative(x),
            tf.reduce_mean(x, axis=[1, 2], keepdims=True),
            tf.reduce_sum(x, axis=-1),
            tf.concat([x, y], axis=-1),
            tf.reshape(x, [1, -1]),
            tf.squeeze(x[:, :1], axis=1),
            tf.expand_dims(x, 2),
            x[:, 1:5:2, ::-1],
            x[0, ..., 1],
            tf.slice(x, [0, 1, 2], [1, 3, -1]),
            tf.stack([x, y], axis=1),
            tf.pad(x, [[0, 0], [1, 2], [3, 0]]),
            tf.transpose(x, [0, 2, 1]),
        ]
        first, second = tf.split(x, 2, axis=1)
        outs += [first, second]
        return [tf.identity(t, name=f"out{i}") for i, t in enumerate(outs)]

    pb, *rest = frozen(build, {"x": [1, 6, 4], "y": [1, 6, 4]}, tmp_path)
    assert {
        "StridedSlice",
        "Slice",
        "Pack",
        "Pad",
        "Transpose",
        "Split",
        "SquaredDifference",
        "Rsqrt",
        "Selu",
        "Mean",
        "Sum",
    } <= ops_of(pb)
    same_as_tf(pb, *rest)


def dense(x, scope: str, units: int):
    with v1.variable_scope(scope):
        y = tf.matmul(x, variable("kernel", [int(x.shape[-1]), units]), name="MatMul")
        return tf.nn.bias_add(y, variable("bias", [units]), name="BiasAdd")


def test_matmuls_and_rnn_cells(tmp_path):
    """LSTM and GRU cells as TF 1.15's BasicLSTMCell and GRUCell compute them: MatMul, Split, Sigmoid, Tanh."""

    def build(x, h, c):
        fc = dense(x, "fc", 6)
        transposed = tf.matmul(tf.reshape(x, [5, 1]), variable("w", [8, 5]), transpose_a=True, transpose_b=True, name="mm_t")
        with v1.variable_scope("lstm"):
            gates = dense(tf.concat([x, h], axis=1), "gates", 20)
            i, j, f, o = tf.split(gates, 4, axis=1)
            new_c = c * tf.sigmoid(f + 1.0) + tf.sigmoid(i) * tf.tanh(j)
            new_h = tf.tanh(new_c) * tf.sigmoid(o)
        with v1.variable_scope("gru"):
            r, u = tf.split(tf.sigmoid(dense(tf.concat([x, h], axis=1), "gates", 10)), 2, axis=1)
            candidate = tf.tanh(dense(tf.concat([x, r * h], axis=1), "candidate", 5))
            gru = u * h + (1 - u) * candidate
        return [tf.identity(t, name=f"out{i}") for i, t in enumerate([fc, transposed, new_h, new_c, gru])]

    same_as_tf(*frozen(build, {"x": [1, 5], "h": [1, 5], "c": [1, 5]}, tmp_path))
