"""How long an exact run would take, told by its elements rather than a clock (the same model and data
always give the same choice): every fp16 operation the interpreter does is a numpy pass over one
tensor, so its time follows the elements it touches, a MatMul's or Conv's multiplied by its chain."""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import onnx

LINEAR = ("MatMul", "Gemm", "Conv")
# Seconds per unit of work, from the exact runs of benchmarks/bench_sim.py's models since the chains run
# as onnxruntime calls (kws_tdnn 1.8 ns, cnn_bn 1.3 ns, the 50-weight model 1.6 ns per unit, on the 2
# shared cores they were measured on, load 2-4); rounded up 2-3x, to err on the slow side.
SECONDS_PER_UNIT = 4e-9


def exact_work(model: onnx.ModelProto, shapes: Mapping[str, tuple[int, ...]], samples: int) -> int:
    """Units of work of an exact run of `samples`: each node's output elements, times the chain length
    (inputs per output) for a linear layer. `shapes` are one inference's input shapes; an output shape
    inference cannot tell counts as nothing."""
    sized = onnx.ModelProto()
    sized.CopyFrom(model)
    for info in sized.graph.input:
        if info.name in shapes:
            dims = info.type.tensor_type.shape.dim
            del dims[:]
            for n in shapes[info.name]:
                dims.add().dim_value = int(n)
    try:
        inferred = onnx.shape_inference.infer_shapes(sized)
    except Exception:  # noqa: BLE001 - onnx raises its own classes; no shapes means no estimate
        return 0
    known: dict[str, tuple[int, ...]] = {}
    for info in list(inferred.graph.value_info) + list(inferred.graph.input) + list(inferred.graph.output):
        dims = info.type.tensor_type.shape.dim
        if dims and all(d.HasField("dim_value") for d in dims):
            known[info.name] = tuple(d.dim_value for d in dims)
        elif not dims and info.type.tensor_type.HasField("shape"):
            known[info.name] = ()
    weights = {t.name: tuple(t.dims) for t in inferred.graph.initializer}
    total = 0
    for node in inferred.graph.node:
        out = known.get(node.output[0]) if node.output else None
        if out is None:
            continue
        chain = 1
        if node.op_type in LINEAR and len(node.input) > 1:
            weight = weights.get(node.input[1]) or known.get(node.input[1]) or ()
            if node.op_type == "Conv":
                chain = math.prod(weight[1:]) if len(weight) > 1 else 1
            else:
                source = known.get(node.input[0]) or ()
                chain = source[-1] if source else 1
        total += math.prod(out) * chain
    return total * samples


def exact_seconds(model: onnx.ModelProto, inputs: Mapping[str, np.ndarray]) -> float:
    """The estimated seconds of an exact run on `inputs` (arrays samples first)."""
    arrays = list(inputs.values())
    samples = arrays[0].shape[0] if arrays and arrays[0].ndim else 1
    shapes = {name: tuple(array.shape[1:]) for name, array in inputs.items()}
    return exact_work(model, shapes, samples) * SECONDS_PER_UNIT
