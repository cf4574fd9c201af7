"""npu-tui's quantizer and byte model against what gxnpuc 1.5.8 itself stored and printed (../shared/gxnpuc).

Every compressed weight of every compiled run: the fp16 scale and offset bits, the mask and every code;
which weights the config compresses; and Mem6(weights) of every compiled run.
"""

from __future__ import annotations

import gxnpuc_fixture as fx
import numpy as np
import pytest

from npu_tui.core.quant import gxnpuc, layout, memory

pytestmark = pytest.mark.skipif(not fx.available(), reason="../shared/gxnpuc (the vendor compiler's outputs) is absent")


def compiled_runs() -> list[fx.Run]:
    return [r for r in fx.runs() if r.ok and (r.path / "decoded.json").is_file()] if fx.available() else []


def compresses(run: fx.Run, command: fx.Command) -> bool:
    """What the config asks for, by SPEC section 5 (gxnpuc matches only its own -w names)."""
    config = run.config
    if command.kind == "MatMul":
        wanted = config.get("COMPRESS") is True
    else:
        kernel = fx.weights(run.graph)[command.weight]
        wanted = config.get("COMPRESS") is True and config.get("CONV2D_COMPRESS") is True and kernel.shape[-2] != 1
        if any(fx.names_weight(n, command.weight) for n in config.get("EXCLUDE_CONV2D_COMPRESS_OPS") or []):
            wanted = False
    if any(fx.names_weight(n, command.weight) for n in config.get("EXCLUDE_COMPRESS_OPS") or []):
        wanted = False
    return wanted


def folds_bn(run: fx.Run, command: fx.Command) -> bool:
    return run.config.get("FUSE_BN") is True and command.bn is not None


def fuses_bias(run: fx.Run, command: fx.Command) -> bool:
    return run.config.get("FUSE_BIASADD") is True and command.bias is not None and compresses(run, command)


def quantized(run: fx.Run, command: fx.Command, names: dict[str, str]) -> tuple[gxnpuc.GxnpucQuant, np.ndarray]:
    """The command's weight through npu-tui's quantizer, as the run's config asks; and the float weight."""
    w = fx.weights(run.graph)[command.weight]
    if command.kind == "Conv2D" and w.ndim == 3:  # conv1d: [k, cin, cout] is one row of taps
        w = w[None]
    if folds_bn(run, command):
        gamma, _, _, var = fx.bn_params(run.graph)
        w = (w * gamma) / np.sqrt(var + np.float32(fx.bn_epsilon(run.graph)))
    bias = fx.weights(run.graph)[command.bias] if fuses_bias(run, command) and command.bias else None
    given = (run.config.get("WEIGHT_MIN_MAX") or {}).get(names[command.weight])
    return gxnpuc.quantize(w, tuple(given) if given else None, bias), w


def compressed_commands(run: fx.Run) -> tuple[list[fx.Command], dict[str, str]]:
    """The compressed commands and gxnpuc's -w name of each weight (printed once per weight, in order)."""
    done = [c for c in fx.commands(run) if c.record["compress_enable"]]
    weights = list(dict.fromkeys(c.weight for c in done))
    assert len(weights) == len(run.w_names), run.path
    return done, dict(zip(weights, run.w_names))


def test_every_compressed_weight_is_bit_exact():
    checked = 0
    for run in compiled_runs():
        arrays = run.arrays()
        done, names = compressed_commands(run)
        for command in done:
            where = f"{run.graph}/{run.variant} command {command.index}"
            q, w = quantized(run, command, names)
            record, i = command.record, command.index
            assert q.padded == record["origin_weight_len"], where
            assert (q.params.scale_fp16_bits, q.params.offset_fp16_bits) == (record["scale_u16"], record["bias_u16"]), where
            assert np.array_equal(q.mask(), arrays[f"mask_{i}"]), where
            assert np.array_equal(q.tile_codes()[q.mask() == 1], arrays[f"codes_{i}"]), where
            assert q.codes_stored == record["n_codes"], where
            assert q.codes.shape == w.shape
            checked += 1
    assert checked == 319  # every compressed command the fixture decoded (fc_shared's weight twice per run)


def test_codes_read_back_in_the_weights_own_shape():
    """The README's way back: a grid of zero points, the stored codes where the mask is 1, tiling undone."""
    run = next(r for r in compiled_runs() if (r.graph, r.variant) == ("fc_odd", "compress_fusebias"))
    done, names = compressed_commands(run)
    q, w = quantized(run, done[0], names)
    arrays = run.arrays()
    grid = np.full(done[0].record["origin_weight_len"], q.params.zero_point, np.uint8)
    grid[arrays["mask_0"] == 1] = arrays["codes_0"]
    codes, bias = layout.from_tiles(grid, w.shape, bias_row=True)
    assert bias is not None and q.bias_codes is not None
    assert np.array_equal(codes, q.codes) and np.array_equal(bias, q.bias_codes)
    assert codes.shape == (40, 37) and bias.shape == (37,)


def test_which_weights_compress_follows_the_config():
    for run in compiled_runs():
        for command in fx.commands(run):
            assert compresses(run, command) == command.record["compress_enable"], f"{run.graph}/{run.variant} {command.op}"


def test_the_runs_gxnpuc_crashed_on_are_the_ones_without_a_step():
    """gxnpuc's OverflowError: a constant or all-zero block, or WEIGHT_MIN_MAX min == max."""
    crashed = [r for r in fx.runs() if "OverflowError" in (r.path / "stderr.txt").read_text()] if fx.available() else []
    assert len(crashed) >= 8
    for run in crashed:
        manifest_ops = fx.manifest()[run.graph]["ops"]
        names = {n for n, op in manifest_ops if op == "Const"}
        given = run.config.get("WEIGHT_MIN_MAX") or {}
        raised = False
        for weight in [n for n in fx.weights(run.graph) if n in names and fx.weights(run.graph)[n].ndim >= 2]:
            rng = next((tuple(v) for k, v in given.items() if fx.names_weight(k, weight)), None)
            try:
                gxnpuc.quantize(fx.weights(run.graph)[weight], rng)
            except gxnpuc.RangeCrash as exc:
                raised = "gxnpuc 1.5.8 crashes on this" in str(exc)
        assert raised, run.path


def mem6_model(run: fx.Run) -> int:
    """Mem6(weights) by memory.py's rule, from weights.npz, the manifest and the config."""
    graph = fx.manifest()[run.graph]
    arrays = fx.weights(run.graph)
    names = dict(zip(list(dict.fromkeys(c.weight for c in fx.commands(run) if compresses(run, c))), run.w_names))
    total, seen, fused_biases, bn_folded = 0, set(), set(), set()
    for command in fx.commands(run):
        if command.weight in seen:
            continue
        seen.add(command.weight)
        if compresses(run, command):
            q, _ = quantized(run, command, names)
            total += memory.compressed_bytes(q.padded, q.codes_stored)
            if fuses_bias(run, command) and command.bias:
                fused_biases.add(command.bias)
        else:
            w = arrays[command.weight]
            total += memory.fp16_matrix_bytes(w.shape)
        if folds_bn(run, command):
            bn_folded.add(command.bn)
            total += memory.fp16_bytes(arrays[command.weight].shape[-1])  # the fused bias
            if command.bias:
                fused_biases.add(command.bias)
    for name, op in graph["ops"]:
        if op in ("FusedBatchNorm", "FusedBatchNormV2", "FusedBatchNormV3") and name not in bn_folded:
            total += memory.batchnorm_bytes(len(fx.bn_params(run.graph)[0]))
        if op == "DepthwiseConv2dNative":
            total += memory.fp16_bytes(arrays[fx._scope_weight(run.graph, name, False)].size)
    commanded = {c.weight for c in fx.commands(run)}
    depthwise = {fx._scope_weight(run.graph, n, False) for n, op in graph["ops"] if op == "DepthwiseConv2dNative"}
    bn_vars = {n for n in arrays if n.endswith(("/gamma", "/beta", "/moving_mean", "/moving_variance"))}
    for name in arrays:
        if name in commanded or name in depthwise or name in bn_vars or name in fused_biases:
            continue
        total += memory.fp16_bytes(arrays[name].size)
    others = {n for n, op in graph["ops"] if op == "Const"} - set(arrays) - fx.folded_constants(run.graph)
    return total + memory.fp16_bytes(len(others))  # each one a scalar (axes, dims, a forget bias)


def test_weight_memory_is_gxnpucs_mem6_on_every_compiled_run():
    matched = [(r.graph, r.variant, mem6_model(r), r.mem6) for r in fx.runs() if r.ok] if fx.available() else []
    wrong = [m for m in matched if m[2] != m[3]]
    assert not wrong, wrong
    assert len(matched) == 418  # every run gxnpuc compiled


def test_whole_graphs_through_the_tf_reader_are_gxnpucs():
    """Every compiled run npu-tui opens (it refuses five configs gxnpuc accepts silently, by design: see
    test_gxnpuc_refusals.py), read from its .pb and compiled as the product does: each compressed weight's
    fp16 bits and stored codes as model.h has them, and Mem6 (the int axes and dims gxnpuc stores too:
    conv1d's ExpandDims dim, lstm's Split and ConcatV2 axes)."""
    from npu_tui.core.config.project import open_project
    from npu_tui.core.errors import UserError

    bits_checked = mem6_matched = refused = 0
    for run in fx.runs() if fx.available() else []:
        if not run.ok:
            continue
        try:
            project = open_project(run.path / "config.yaml")
        except UserError:
            refused += 1
            continue
        compiled = project.compile(project.config.settings)
        where = f"{run.graph}/{run.variant}"
        if (run.path / "decoded.json").is_file():
            stored = [r.quant for r in compiled.results.values() if r.quant is not None]
            records = list({c.weight: c.record for c in fx.commands(run) if c.record["compress_enable"]}.values())
            assert [(q.params.scale_fp16_bits, q.params.offset_fp16_bits, q.codes_stored) for q in stored] == [
                (r["scale_u16"], r["bias_u16"], r["n_codes"]) for r in records
            ], where
            bits_checked += len(stored)
        assert compiled.npu_bytes == run.mem6, (where, compiled.npu_bytes, run.mem6)
        mem6_matched += 1
    print(f"through the TF reader: {mem6_matched} runs' Mem6 equal gxnpuc's, {bits_checked} compressed weights' bits")
    assert (mem6_matched, refused, bits_checked) == (413, 5, 303)


def test_the_c_model_cases_weight_memory_is_gxnpucs():
    """The 16 C-model cases (cmodel/: activations, pools, GRU, mnist, ...), whole graphs gxnpuc compiled:
    weight_memory_bytes equals their Mem6, but for softmax_manual, whose Sum gxnpuc lowers through 138
    bytes of constants of its own that npu-tui does not model."""
    from npu_tui.core.config.project import open_project

    cases = sorted((fx.FIXTURE / "cmodel").glob("*/config.yaml")) if fx.available() else []
    if not cases:
        pytest.skip("../shared/gxnpuc/cmodel is not beside the repo")
    ours = {c.parent.name: open_project(c).compile().npu_bytes for c in cases}
    theirs = {c.parent.name: int(fx.MEM6_LINE.search((c.parent / "stdout.txt").read_text()).group(1)) for c in cases}
    differ = {name: (ours[name], theirs[name]) for name in ours if ours[name] != theirs[name]}
    print(f"C-model cases: {len(ours) - len(differ)} of {len(ours)} Mem6 equal gxnpuc's")
    assert len(ours) == 16 and differ == {"softmax_manual": (2, 140)}
