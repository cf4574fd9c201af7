"""Write npu_tui/core/sim/npu/exp_table.npy from the C model's act_sweep case (all 65,536 fp16 inputs
through Exp). Run once: python tools/make_exp_table.py [path/to/gxnpuc/cmodel/act_sweep]."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CASE = ROOT.parent / "shared" / "gxnpuc" / "cmodel" / "act_sweep"
TARGET = ROOT / "npu_tui" / "core" / "sim" / "npu" / "exp_table.npy"


def main() -> None:
    case = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_CASE
    meta = json.loads((case / "meta.json").read_text())
    field = next(f for f in meta["outputs"] if f["name"] == "o_exp")
    inputs = np.load(case / "inputs.npy").astype(np.float16).view(np.uint16).reshape(-1)
    outputs = np.load(case / "cmodel_out.npy")[:, field["offset"] : field["offset"] + field["size"]].reshape(-1)
    all_bits = np.arange(65536, dtype=np.uint32).astype(np.uint16)
    x = all_bits.view(np.float16)
    with np.errstate(over="ignore"):
        table = np.exp(x.astype(np.float64)).astype(np.float16).view(np.uint16).copy()
    table[np.isnan(x)] = all_bits[np.isnan(x)] | 0x0200
    seen = outputs.astype(np.float16).view(np.uint16)
    observable = (np.abs(outputs) >= 2.0**-14) & ~np.isnan(inputs.view(np.float16))
    table[inputs[observable]] = seen[observable]
    nan_input = inputs == 0x7E00
    table[0x7E00] = 0x7E00 if np.all(outputs[nan_input] == np.inf) else seen[nan_input][0]
    np.save(TARGET, table)
    print(f"{TARGET}: {int(observable.sum())} entries from the C model, {65536 - int(observable.sum())} filled")


if __name__ == "__main__":
    main()
