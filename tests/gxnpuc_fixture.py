"""Read ../shared/gxnpuc (the vendor compiler's own outputs, README there) into plain records.

Nothing here restates the quantizer: it only says which fixture weight each model.h command holds,
what the run's config asked for, and what gxnpuc stored and printed.
"""

from __future__ import annotations

import json
import re
import struct
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
import yaml

FIXTURE = Path(__file__).resolve().parents[2] / "shared" / "gxnpuc"
WEIGHT_LINE = re.compile(r"^(\S+): \[[\d, ]+\]$")
MEM6_LINE = re.compile(r"^Mem6\(weights\): (\d+)$", re.M)
SKIPPED_OPS = {"Const", "Identity", "Placeholder"}


@dataclass(frozen=True)
class Command:
    """One MatMul/Conv2D command of model.h, the graph op it came from and what it stored."""

    index: int
    op: str
    kind: str
    weight: str  # the TF variable name (a weights.npz key once '/' is '__')
    bias: str | None  # the BiasAdd's bias right after the op, if any
    bn: str | None  # the FusedBatchNorm (V1) right after the op, if any
    record: dict


@dataclass(frozen=True)
class Run:
    graph: str
    variant: str
    path: Path
    config: dict
    rc: int
    stdout: str

    @property
    def ok(self) -> bool:
        return self.rc == 0 and "Compile OK." in self.stdout

    @property
    def mem6(self) -> int:
        found = MEM6_LINE.search(self.stdout)
        assert found, f"{self.path}: no Mem6 line"
        return int(found.group(1))

    @property
    def w_names(self) -> list[str]:
        """The -w lines: gxnpuc's names of the compressed weights, in command order."""
        head = self.stdout.split("Memory allocation info:")[0]
        return [m.group(1) for line in head.splitlines() if (m := WEIGHT_LINE.match(line.strip()))]

    def decoded(self) -> list[dict]:
        return json.loads((self.path / "decoded.json").read_text())

    def arrays(self) -> dict[str, np.ndarray]:
        if not (self.path / "decoded.npz").is_file():  # nothing compressed
            return {}
        with np.load(self.path / "decoded.npz") as data:
            return {k: data[k] for k in data.files}


def available() -> bool:
    return (FIXTURE / "runs" / "summary.tsv").is_file()


@cache
def manifest() -> dict:
    return json.loads((FIXTURE / "models" / "manifest.json").read_text())


@cache
def weights(graph: str) -> dict[str, np.ndarray]:
    """weights.npz with its keys turned back into TF variable names."""
    with np.load(FIXTURE / "models" / graph / "weights.npz") as data:
        return {k.replace("__", "/"): data[k].astype(np.float32) for k in data.files}


def runs() -> list[Run]:
    found = []
    for line in (FIXTURE / "runs" / "summary.tsv").read_text().splitlines()[1:]:
        graph, variant, rc = line.split("\t")
        path = FIXTURE / "runs" / graph / variant
        config = yaml.safe_load((path / "config.yaml").read_text())
        found.append(
            Run(graph, variant, path, config if isinstance(config, dict) else {}, int(rc), (path / "stdout.txt").read_text())
        )
    return found


def _scope_weight(graph: str, op: str, bias: bool) -> str:
    """The variable of the op's scope: the 1-D one for its bias, else the kernel."""
    scope = op.split("/")[0] + "/"
    names = [n for n, shape in manifest()[graph]["weights"].items() if n.startswith(scope) and (len(shape) == 1) == bias]
    assert len(names) == 1, (graph, op, names)
    return names[0]


def commands(run: Run) -> list[Command]:
    """The decoded commands joined to the graph ops (MatMul / Conv2D in graph order) they came from."""
    ops = [(name, op) for name, op in manifest()[run.graph]["ops"] if op not in SKIPPED_OPS]
    records = run.decoded() if (run.path / "decoded.json").is_file() else None  # OUTPUT_TYPE raw: model.npu only
    found: list[Command] = []
    for position, (name, op) in enumerate(ops):
        if op not in ("MatMul", "Conv2D"):
            continue
        after = ops[position + 1][1] if position + 1 < len(ops) else None
        bias = _scope_weight(run.graph, name, True) if after == "BiasAdd" else None
        bn = ops[position + 1][0] if after == "FusedBatchNorm" else None
        found.append(
            Command(len(found), name, op, _scope_weight(run.graph, name, False), bias, bn, records[len(found)] if records else {})
        )
    assert records is None or len(found) == len(records), run.path
    return found


def bn_params(graph: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """gamma, beta, moving_mean, moving_variance of the graph's one BatchNorm."""
    w = weights(graph)
    scope = next(n for n in w if n.endswith("/gamma")).rsplit("/", 1)[0]
    return w[f"{scope}/gamma"], w[f"{scope}/beta"], w[f"{scope}/moving_mean"], w[f"{scope}/moving_variance"]


@cache
def bn_epsilon(graph: str) -> float:
    """The epsilon attribute of the FusedBatchNorm node, read from the pb: the map entry 'epsilon' holds an
    AttrValue whose field f (number 4, fixed32) is the value."""
    data = (FIXTURE / "models" / graph / "model.pb").read_bytes()
    at = data.index(b"\x0a\x07epsilon\x12\x05\x25")
    return struct.unpack("<f", data[at + 12 : at + 16])[0]


def names_weight(name: str, weight: str) -> bool:
    """Whether a config name is gxnpuc's name for the variable: `<var>/read/_N__cf__N`, or for a conv1d
    kernel `<scope>/conv1d/ExpandDims_1/_N__cf__N` (its fold_constants names, README)."""
    scope = re.escape(weight.rsplit("/", 1)[0])
    return bool(re.fullmatch(rf"{re.escape(weight)}/read/_\d+__cf__\d+|{scope}/conv1d/ExpandDims_1/_\d+__cf__\d+", name))


def folded_constants(graph: str) -> set[str]:
    """Consts of the manifest that are not variables and that fold_constants folds away: the dim of a
    conv1d's ExpandDims_1 (TF's expansion of the filter, a constant); the manifest has no edges."""
    return {name for name, op in manifest()[graph]["ops"] if op == "Const" and name.endswith("/conv1d/ExpandDims_1/dim")}
