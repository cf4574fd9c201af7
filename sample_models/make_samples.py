"""Train and export the bundled samples, deterministically (fixed seeds), with numpy alone.

    make samples          # pip install -e .[samples]; this script; then make_tf_samples.py (the pb twins)

Both samples learn scikit-learn's bundled handwritten digits (1,797 real 8x8 scans, no download).
They were built to show the vendor's documented quantization problems through real mechanisms:

kws_tdnn  A keyword-spotting-style TDNN reads each digit as 8 frames (rows) of 8 band energies
          (squared ink of each column).
          As in Kaldi-style KWS models, it is trained on mean/variance-normalized features and the
          normalization is folded into the first affine layer at export, so the model reads raw
          features. Band 0 (the left column, almost always blank) has a standard deviation 170
          times smaller than the others; folding divides its weights by it, so `tdnn1.affine`
          becomes long-tailed and its bulk drowns when quantized per tensor.
cnn_bn    A small CNN reads each digit as two channels: ink (0..1) and its edge strength in raw
          units (1/1000). The first convolution is a plain Conv over both channels, trained as two
          groups: its first 8 filters read only the ink, the last 8 only the edges (their taps on
          the other channel are zero). The edge filters' BatchNorm variances are tiny, and FUSE_BN
          multiplies their weights by 1/sqrt(var + eps), 330 to 550, blowing up the range of the
          fused weight that gxnpuc quantizes per tensor, so the ink filters drown.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

HERE = Path(__file__).resolve().parent
RAW_UNITS = 1e-3  # the cnn_bn edge channel's unit, relative to the ink channel
EVAL_SAMPLES = 597


# ---------------------------------------------------------------- data


def digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    data = load_digits()
    return (data.images / 16.0).astype(np.float32), data.target.astype(np.int64)


def split(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    order = np.random.default_rng(seed).permutation(n)
    return order[EVAL_SAMPLES:], order[:EVAL_SAMPLES]


def kws_features(images: np.ndarray) -> np.ndarray:
    """[N, 8, 8]: [sample, band, frame]: each image row is a frame, each column a band whose
    energy is the squared ink, like the filterbank energies a KWS front end computes."""
    return np.ascontiguousarray((images**2).transpose(0, 2, 1), dtype=np.float32)


def cnn_features(images: np.ndarray) -> np.ndarray:
    """[N, 2, 8, 8]: ink, and edge strength (horizontal and vertical differences) in raw units."""
    dx = np.abs(np.diff(images, axis=2, prepend=0))
    dy = np.abs(np.diff(images, axis=1, prepend=0))
    return np.stack([images, (dx + dy) * RAW_UNITS], axis=1).astype(np.float32)


# ---------------------------------------------------------------- layers (forward and backward)


def conv_forward(x, w, b, pad, groups=1):
    """NCHW convolution, stride 1, as one matrix product per group."""
    xp = np.pad(x, ((0, 0), (0, 0), (pad[0], pad[0]), (pad[1], pad[1])))
    m, cg, kh, kw = w.shape
    n, c, hp, wp = xp.shape
    ho, wo = hp - kh + 1, wp - kw + 1
    win = np.lib.stride_tricks.sliding_window_view(xp, (kh, kw), axis=(2, 3))  # N C Ho Wo kh kw
    outs, cols = [], []
    mg = m // groups
    for g in range(groups):
        col = win[:, g * cg : (g + 1) * cg].transpose(0, 2, 3, 1, 4, 5).reshape(n * ho * wo, cg * kh * kw)
        cols.append(col)
        outs.append(col @ w[g * mg : (g + 1) * mg].reshape(mg, -1).T)
    out = np.concatenate(outs, axis=1) + b
    return out.reshape(n, ho, wo, m).transpose(0, 3, 1, 2), (x.shape, xp.shape, w, cols, pad, groups)


def conv_backward(dout, cache):
    x_shape, xp_shape, w, cols, pad, groups = cache
    m, cg, kh, kw = w.shape
    n, m, ho, wo = dout.shape
    d2 = dout.transpose(0, 2, 3, 1).reshape(-1, m)
    mg = m // groups
    dw = np.empty_like(w)
    dxp = np.zeros(xp_shape, np.float32)
    for g in range(groups):
        dg = d2[:, g * mg : (g + 1) * mg]
        dw[g * mg : (g + 1) * mg] = (dg.T @ cols[g]).reshape(mg, cg, kh, kw)
        dcol = (dg @ w[g * mg : (g + 1) * mg].reshape(mg, -1)).reshape(n, ho, wo, cg, kh, kw)
        for i in range(kh):
            for j in range(kw):
                dxp[:, g * cg : (g + 1) * cg, i : i + ho, j : j + wo] += dcol[..., i, j].transpose(0, 3, 1, 2)
    dx = dxp[:, :, pad[0] : xp_shape[2] - pad[0], pad[1] : xp_shape[3] - pad[1]]
    return dx, dw, d2.sum(axis=0)


def bn_forward(x, p, name, state, training, momentum=0.1, eps=1e-5):
    gamma, beta = p[name + ".scale"], p[name + ".bias"]
    if training:
        mean = x.mean(axis=(0, 2, 3))
        var = x.var(axis=(0, 2, 3))
        count = x.size / x.shape[1]
        state[name + ".mean"] = (1 - momentum) * state[name + ".mean"] + momentum * mean
        state[name + ".var"] = (1 - momentum) * state[name + ".var"] + momentum * var * count / (count - 1)
    else:
        mean, var = state[name + ".mean"], state[name + ".var"]
    inv = 1.0 / np.sqrt(var + eps)
    xhat = (x - mean[None, :, None, None]) * inv[None, :, None, None]
    return gamma[None, :, None, None] * xhat + beta[None, :, None, None], (xhat, inv, gamma)


def bn_backward(dout, cache):
    xhat, inv, gamma = cache
    count = dout.size / dout.shape[1]
    dgamma = (dout * xhat).sum(axis=(0, 2, 3))
    dbeta = dout.sum(axis=(0, 2, 3))
    dxhat = dout * gamma[None, :, None, None]
    dx = (inv[None, :, None, None] / count) * (
        count * dxhat - dxhat.sum(axis=(0, 2, 3))[None, :, None, None] - xhat * (dxhat * xhat).sum(axis=(0, 2, 3))[None, :, None, None]
    )
    return dx, dgamma, dbeta


def pool_forward(x):
    n, c, h, w = x.shape
    return x.reshape(n, c, h // 2, 2, w // 2, 2).mean(axis=(3, 5))


def pool_backward(dout):
    return np.repeat(np.repeat(dout, 2, axis=2), 2, axis=3) / 4


def softmax_loss(logits, labels):
    shifted = logits - logits.max(axis=1, keepdims=True)
    prob = np.exp(shifted)
    prob /= prob.sum(axis=1, keepdims=True)
    loss = -np.log(prob[np.arange(len(labels)), labels] + 1e-12).mean()
    grad = prob
    grad[np.arange(len(labels)), labels] -= 1
    return loss, grad / len(labels)


class Adam:
    def __init__(self, params, lr, beta1=0.9, beta2=0.999, eps=1e-8):
        self.params, self.lr, self.b1, self.b2, self.eps = params, lr, beta1, beta2, eps
        self.m = {k: np.zeros_like(v) for k, v in params.items()}
        self.v = {k: np.zeros_like(v) for k, v in params.items()}
        self.t = 0

    def step(self, grads):
        self.t += 1
        for k, g in grads.items():
            self.m[k] = self.b1 * self.m[k] + (1 - self.b1) * g
            self.v[k] = self.b2 * self.v[k] + (1 - self.b2) * g * g
            mhat = self.m[k] / (1 - self.b1**self.t)
            vhat = self.v[k] / (1 - self.b2**self.t)
            self.params[k] -= (self.lr * mhat / (np.sqrt(vhat) + self.eps)).astype(np.float32)


# ---------------------------------------------------------------- the two networks


def init(rng, shape, fan_in):
    return (rng.normal(0, np.sqrt(2.0 / fan_in), shape)).astype(np.float32)


class Tdnn:
    """tdnn1 (8->32, k=3) -> ReLU -> tdnn2 (32->32, k=3) -> ReLU -> prefinal-l (128->64) -> ReLU -> output."""

    def __init__(self, rng):
        self.p = {
            "tdnn1.affine": init(rng, (32, 8, 1, 3), 24),
            "tdnn1.affine.bias": np.zeros(32, np.float32),
            "tdnn2.affine": init(rng, (32, 32, 1, 3), 96),
            "tdnn2.affine.bias": np.zeros(32, np.float32),
            "prefinal-l": init(rng, (128, 64), 128),
            "prefinal-l.bias": np.zeros(64, np.float32),
            "output": init(rng, (64, 10), 64),
            "output.bias": np.zeros(10, np.float32),
        }
        self.state = {}

    def forward(self, x, training=False):
        p, caches = self.p, {}
        h, caches["c1"] = conv_forward(x[:, :, None, :], p["tdnn1.affine"], p["tdnn1.affine.bias"], (0, 0))
        r1 = np.maximum(h, 0)
        h, caches["c2"] = conv_forward(r1, p["tdnn2.affine"], p["tdnn2.affine.bias"], (0, 0))
        r2 = np.maximum(h, 0)
        flat = r2.reshape(len(x), -1)
        h3 = flat @ p["prefinal-l"] + p["prefinal-l.bias"]
        r3 = np.maximum(h3, 0)
        logits = r3 @ p["output"] + p["output.bias"]
        self.saved = (r1, r2, flat, r3, caches)
        return logits

    def backward(self, dlogits):
        p = self.p
        r1, r2, flat, r3, caches = self.saved
        g = {"output": r3.T @ dlogits, "output.bias": dlogits.sum(0)}
        d3 = (dlogits @ p["output"].T) * (r3 > 0)
        g["prefinal-l"], g["prefinal-l.bias"] = flat.T @ d3, d3.sum(0)
        d2 = (d3 @ p["prefinal-l"].T).reshape(r2.shape) * (r2 > 0)
        d1, g["tdnn2.affine"], g["tdnn2.affine.bias"] = conv_backward(d2, caches["c2"])
        _, g["tdnn1.affine"], g["tdnn1.affine.bias"] = conv_backward(d1 * (r1 > 0), caches["c1"])
        return g

    def export(self, path: Path, mean: np.ndarray, std: np.ndarray) -> None:
        """Fold the input normalization (x - mean) / std into tdnn1, so the model reads raw features."""
        p = self.p
        w = p["tdnn1.affine"][:, :, 0, :] / std[None, :, None]
        b = p["tdnn1.affine.bias"] - (w * mean[None, :, None]).sum(axis=(1, 2))
        inits = [
            numpy_helper.from_array(w.astype(np.float32), "tdnn1.affine"),
            numpy_helper.from_array(b.astype(np.float32), "tdnn1.affine.bias"),
            numpy_helper.from_array(p["tdnn2.affine"][:, :, 0, :], "tdnn2.affine"),
            numpy_helper.from_array(p["tdnn2.affine.bias"], "tdnn2.affine.bias"),
            numpy_helper.from_array(p["prefinal-l"], "prefinal-l"),
            numpy_helper.from_array(p["prefinal-l.bias"], "prefinal-l.bias"),
            numpy_helper.from_array(p["output"], "output"),
            numpy_helper.from_array(p["output.bias"], "output.bias"),
        ]
        nodes = [
            helper.make_node("Conv", ["features", "tdnn1.affine", "tdnn1.affine.bias"], ["tdnn1.out"], name="tdnn1", kernel_shape=[3]),
            helper.make_node("Relu", ["tdnn1.out"], ["tdnn1.relu"], name="tdnn1.relu"),
            helper.make_node("Conv", ["tdnn1.relu", "tdnn2.affine", "tdnn2.affine.bias"], ["tdnn2.out"], name="tdnn2", kernel_shape=[3]),
            helper.make_node("Relu", ["tdnn2.out"], ["tdnn2.relu"], name="tdnn2.relu"),
            helper.make_node("Flatten", ["tdnn2.relu"], ["flat"], name="flatten"),
            helper.make_node("MatMul", ["flat", "prefinal-l"], ["prefinal.mm"], name="prefinal"),
            helper.make_node("Add", ["prefinal.mm", "prefinal-l.bias"], ["prefinal.out"], name="prefinal.bias"),
            helper.make_node("Relu", ["prefinal.out"], ["prefinal.relu"], name="prefinal.relu"),
            helper.make_node("MatMul", ["prefinal.relu", "output"], ["output.mm"], name="output.affine"),
            helper.make_node("Add", ["output.mm", "output.bias"], ["logits"], name="output.bias_add"),
        ]
        _save(path, nodes, inits, ("features", [None, self.p["tdnn1.affine"].shape[1], 8]), "kws_tdnn")


class CnnBn:
    """conv1 (2->16, 3x3) -> BN -> ReLU -> pool -> conv2 (16->32) -> BN -> ReLU -> pool -> fc.

    conv1 is trained as two groups (ink -> 8 filters, edges -> 8 filters) and exported as the
    same arithmetic in one plain Conv, whose cross-group taps are zero: gxnpuc never compresses a
    grouped or one-input-channel kernel, but it does compress this one.
    The convolutions have no bias, as usual before BatchNorm: BN cancels it, so Adam would only
    make it drift.
    """

    def __init__(self, rng):
        self.p = {
            "conv1.weight": init(rng, (16, 1, 3, 3), 9),
            "bn1.scale": np.ones(16, np.float32),
            "bn1.bias": np.zeros(16, np.float32),
            "conv2.weight": init(rng, (32, 16, 3, 3), 144),
            "bn2.scale": np.ones(32, np.float32),
            "bn2.bias": np.zeros(32, np.float32),
            "fc.weight": init(rng, (128, 10), 128),
            "fc.bias": np.zeros(10, np.float32),
        }
        self.state = {
            "bn1.mean": np.zeros(16, np.float32), "bn1.var": np.ones(16, np.float32),
            "bn2.mean": np.zeros(32, np.float32), "bn2.var": np.ones(32, np.float32),
        }

    def forward(self, x, training=False):
        p, s, c = self.p, self.state, {}
        h, c["c1"] = conv_forward(x, p["conv1.weight"], 0.0, (1, 1), groups=2)
        h, c["b1"] = bn_forward(h, p, "bn1", s, training)
        r1 = np.maximum(h, 0)
        q1 = pool_forward(r1)
        h, c["c2"] = conv_forward(q1, p["conv2.weight"], 0.0, (1, 1))
        h, c["b2"] = bn_forward(h, p, "bn2", s, training)
        r2 = np.maximum(h, 0)
        flat = pool_forward(r2).reshape(len(x), -1)
        self.saved = (r1, r2, flat, c)
        return flat @ p["fc.weight"] + p["fc.bias"]

    def backward(self, dlogits):
        p = self.p
        r1, r2, flat, c = self.saved
        g = {"fc.weight": flat.T @ dlogits, "fc.bias": dlogits.sum(0)}
        d = pool_backward((dlogits @ p["fc.weight"].T).reshape(len(flat), 32, 2, 2)) * (r2 > 0)
        d, g["bn2.scale"], g["bn2.bias"] = bn_backward(d, c["b2"])
        d, g["conv2.weight"], _ = conv_backward(d, c["c2"])
        d = pool_backward(d) * (r1 > 0)
        d, g["bn1.scale"], g["bn1.bias"] = bn_backward(d, c["b1"])
        _, g["conv1.weight"], _ = conv_backward(d, c["c1"])
        return g

    def export(self, path: Path) -> None:
        p, s = self.p, self.state
        arrays = {**p, "conv1.weight": dense_conv1(p["conv1.weight"]), **{k: v.astype(np.float32) for k, v in s.items()}}
        inits = [numpy_helper.from_array(v, k) for k, v in arrays.items()]
        nodes = [
            helper.make_node("Conv", ["image", "conv1.weight"], ["conv1.out"], name="conv1", pads=[1, 1, 1, 1]),
            helper.make_node("BatchNormalization", ["conv1.out", "bn1.scale", "bn1.bias", "bn1.mean", "bn1.var"], ["bn1.out"], name="bn1", epsilon=1e-5),
            helper.make_node("Relu", ["bn1.out"], ["relu1"], name="relu1"),
            helper.make_node("AveragePool", ["relu1"], ["pool1"], name="pool1", kernel_shape=[2, 2], strides=[2, 2]),
            helper.make_node("Conv", ["pool1", "conv2.weight"], ["conv2.out"], name="conv2", pads=[1, 1, 1, 1]),
            helper.make_node("BatchNormalization", ["conv2.out", "bn2.scale", "bn2.bias", "bn2.mean", "bn2.var"], ["bn2.out"], name="bn2", epsilon=1e-5),
            helper.make_node("Relu", ["bn2.out"], ["relu2"], name="relu2"),
            helper.make_node("AveragePool", ["relu2"], ["pool2"], name="pool2", kernel_shape=[2, 2], strides=[2, 2]),
            helper.make_node("Flatten", ["pool2"], ["flat"], name="flatten"),
            helper.make_node("MatMul", ["flat", "fc.weight"], ["fc.mm"], name="fc"),
            helper.make_node("Add", ["fc.mm", "fc.bias"], ["logits"], name="fc.bias_add"),
        ]
        _save(path, nodes, inits, ("image", [None, 2, 8, 8]), "cnn_bn")


def dense_conv1(grouped: np.ndarray) -> np.ndarray:
    """[16, 1, 3, 3] in 2 groups -> [16, 2, 3, 3]: filter o reads input channel o // 8, its other taps zero."""
    dense = np.zeros((grouped.shape[0], 2, *grouped.shape[2:]), np.float32)
    half = grouped.shape[0] // 2
    dense[:half, 0], dense[half:, 1] = grouped[:half, 0], grouped[half:, 0]
    return dense


def _save(path, nodes, inits, input_spec, name):
    name_in, shape = input_spec
    graph = helper.make_graph(
        nodes,
        name,
        [helper.make_tensor_value_info(name_in, TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [None, 10])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="npu-tui make_samples")
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def train(net, x, y, epochs, lr, seed, batch=64):
    rng = np.random.default_rng(seed)
    opt = Adam(net.p, lr)
    for _ in range(epochs):
        order = rng.permutation(len(x))
        for start in range(0, len(x), batch):
            idx = order[start : start + batch]
            loss, dlogits = softmax_loss(net.forward(x[idx], training=True), y[idx])
            opt.step(net.backward(dlogits))
    return net


def accuracy(net, x, y) -> float:
    return float((net.forward(x).argmax(axis=1) == y).mean())


def main() -> None:
    images, labels = digits()
    train_idx, eval_idx = split(len(images), seed=0)
    which = sys.argv[1:] or ["kws_tdnn", "cnn_bn"]
    if "kws_tdnn" in which:
        x = kws_features(images)
        mean = x[train_idx].mean(axis=(0, 2))
        std = x[train_idx].std(axis=(0, 2))
        normalized = (x - mean[None, :, None]) / std[None, :, None]
        net = train(Tdnn(np.random.default_rng(1)), normalized[train_idx], labels[train_idx], epochs=60, lr=3e-3, seed=2)
        print(f"kws_tdnn float accuracy (numpy): {accuracy(net, normalized[eval_idx], labels[eval_idx]):.4f}")
        folder = HERE / "kws_tdnn"
        folder.mkdir(exist_ok=True)
        net.export(folder / "model.onnx", mean, std)
        np.savez_compressed(folder / "eval.npz", features=x[eval_idx], labels=labels[eval_idx])
    if "cnn_bn" in which:
        x = cnn_features(images)
        net = train(CnnBn(np.random.default_rng(3)), x[train_idx], labels[train_idx], epochs=30, lr=3e-3, seed=4)
        print(f"cnn_bn float accuracy (numpy): {accuracy(net, x[eval_idx], labels[eval_idx]):.4f}")
        folder = HERE / "cnn_bn"
        folder.mkdir(exist_ok=True)
        net.export(folder / "model.onnx")
        np.savez_compressed(folder / "eval.npz", image=x[eval_idx], labels=labels[eval_idx])


if __name__ == "__main__":
    main()
