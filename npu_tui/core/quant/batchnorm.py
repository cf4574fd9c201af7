"""A BatchNormalization gxnpuc leaves unfolded (FusedBatchNormV2/V3, or V1 without FUSE_BN) is stored as what
the NPU's op_bn multiplies and adds per channel (NPU_ARITHMETIC.md section 3): s = gamma / sqrt(var + eps) and
t = beta - mean * s, float32 math, each through the compiler's fp16 converter. The four parameters themselves
are never stored: a running variance of 65536 or more (0x7fff in fp16) costs the chip nothing, while a
multiplier beyond 65504 is inf or NaN on it whatever the parameters were."""

from __future__ import annotations

import numpy as np
import onnx

from ..model.graph import iter_nodes
from ..model.inventory import Inventory
from .fp16 import compiler_fp16

DEFAULT_EPSILON = 1e-5  # ONNX's default for the attribute


def multiplier_addend_f32(
    gamma: np.ndarray, beta: np.ndarray, mean: np.ndarray, variance: np.ndarray, epsilon: float
) -> tuple[np.ndarray, np.ndarray]:
    """s and t in float32, before the converter (gxnpuc computes them so)."""
    f32 = np.float32
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):  # a zero variance and epsilon: inf, as on the chip
        scale = np.asarray(gamma, f32) / np.sqrt(np.asarray(variance, f32) + f32(epsilon))
        shift = np.asarray(beta, f32) - np.asarray(mean, f32) * scale
    return scale, shift


def multiplier_addend(
    gamma: np.ndarray, beta: np.ndarray, mean: np.ndarray, variance: np.ndarray, epsilon: float
) -> tuple[np.ndarray, np.ndarray]:
    """op_bn's per-channel s and t as the chip holds them: fp16 through the compiler's converter."""
    scale, shift = multiplier_addend_f32(gamma, beta, mean, variance, epsilon)
    return compiler_fp16(scale), compiler_fp16(shift)


def epsilon_of(node: onnx.NodeProto) -> float:
    return next((float(a.f) for a in node.attribute if a.name == "epsilon"), DEFAULT_EPSILON)


def stored_parameters(inventory: Inventory, node: onnx.NodeProto) -> list[str] | None:
    """The names of gamma, beta, mean and var when gxnpuc turns `node` into op_bn: a BatchNormalization in
    inference form (one output) whose four parameters are float constants of one shape; else None."""
    params = list(node.input[1:5])
    if node.op_type != "BatchNormalization" or len(params) != 4 or len([o for o in node.output if o]) != 1:
        return None
    constants = [inventory.constants.get(p) for p in params]
    if not all(c is not None and c.is_float and p in inventory.arrays for c, p in zip(constants, params)):
        return None
    return params if len({inventory.arrays[p].shape for p in params}) == 1 else None


def stored_values(inventory: Inventory) -> dict[str, list[tuple[str, np.ndarray]]]:
    """What gxnpuc stores under each unfolded BatchNormalization's scale and bias names, by name: ("multiplier",
    s) and ("addend", t) in float32 before the converter, one entry per BN that reads the name."""
    found: dict[str, list[tuple[str, np.ndarray]]] = {}
    for ref in iter_nodes(inventory.model.graph):
        params = stored_parameters(inventory, ref.node)
        if params is None:
            continue
        gamma, beta, mean, var = (inventory.arrays[p] for p in params)
        s, t = multiplier_addend_f32(gamma, beta, mean, var, epsilon_of(ref.node))
        found.setdefault(params[0], []).append(("multiplier", s))
        found.setdefault(params[1], []).append(("addend", t))
    return found
