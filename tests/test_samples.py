"""Every number the README claims about the bundled samples, re-checked on the shipped files
through the compiler core and onnxruntime."""

import re
from dataclasses import replace

import numpy as np
from conftest import SAMPLES

# the bulk of tdnn1.affine: the weights of bands 1-7, leaving out band 0's long tail (README step 5)
KWS_BULK_RANGE = (-19.2, 14.7)

# the README's tables "The vendor's debugging loop on the samples", step by step: the settings changed
# from the shipped config, the NPU accuracy in percent, and the bytes on the NPU (weight_memory_bytes, Mem6)
KWS_FLOAT = 97.32
KWS_LOOP = [
    ({"compress": False, "conv2d_compress": False}, 97.32, 33044),
    ({"conv2d_compress": False}, 97.15, 22570),
    ({}, 28.81, 14286),
    ({"exclude": ("tdnn1.affine",)}, 97.15, 19850),
    ({"weight_min_max": {"tdnn1.affine": KWS_BULK_RANGE}}, 96.98, 14826),
]
CNN_FLOAT = 99.33
CNN_LOOP = [
    ({"compress": False, "conv2d_compress": False}, 99.33, 45172),
    ({"conv2d_compress": False}, 99.33, 38762),
    ({}, 18.09, 8826),
    ({"fuse_bn": False}, 99.33, 8994),
    ({"exclude_fuse_bn": ("conv1.weight",)}, 99.33, 8928),
    ({"exclude": ("conv1.weight",)}, 99.33, 26032),
]


def loop_numbers(sample, steps, names=None):
    """(float %, [(NPU accuracy %, bytes) per step]) with the weight names in `steps` renamed by `names`."""
    project, analysis = sample
    rename = (names or {}).get
    found = []
    for changes, _, _ in steps:
        named = {
            key: {rename(k, k): v for k, v in value.items()}
            if isinstance(value, dict)
            else tuple(rename(n, n) for n in value)
            if isinstance(value, tuple)
            else value
            for key, value in changes.items()
        }
        compiled = project.compile(replace(project.config.settings, **named))
        result = analysis.evaluate(compiled)
        found.append((round(result.accuracy_npu * 100, 2), compiled.npu_bytes))
    return round(result.accuracy_float * 100, 2), found


def test_kws_the_readme_table(kws):
    assert loop_numbers(kws, KWS_LOOP) == (KWS_FLOAT, [(acc, size) for _, acc, size in KWS_LOOP])


def test_cnn_the_readme_table(cnn):
    assert loop_numbers(cnn, CNN_LOOP) == (CNN_FLOAT, [(acc, size) for _, acc, size in CNN_LOOP])


def test_kws_the_readme_weight_numbers(kws):
    """Step 4's histogram span, the per-weight SQNR that points the wrong way, step 5's saturated share,
    and the sensitivity ranking that gets it right."""
    project, analysis = kws
    shipped = project.compile()
    tdnn1 = shipped.results["tdnn1.affine"]
    assert (round(tdnn1.range[0]), round(tdnn1.range[1])) == (-1119, 639)
    assert round(tdnn1.errors.sqnr_db, 1) == 39.8
    clipped = project.compile(replace(project.config.settings, weight_min_max={"tdnn1.affine": KWS_BULK_RANGE})).results[
        "tdnn1.affine"
    ]
    assert round(clipped.errors.sqnr_db, 1) == 0.3 and round(clipped.errors.clipped_fraction * 100, 1) == 12.5
    first = analysis.sensitivity(project.config.settings)[0]
    assert first.weight == "tdnn1.affine"
    assert (round(first.alone_sqnr_db, 1), round(first.accuracy * 100, 2), round(first.exclude_gain_db, 1)) == (1.5, 28.64, 36.2)


def accuracy(sample, **changes):
    project, analysis = sample
    settings = replace(project.config.settings, **changes)
    return analysis.evaluate(project.compile(settings)).accuracy_npu


def test_kws_float_accuracy(kws):
    project, analysis = kws
    assert analysis.evaluate(project.compile()).accuracy_float >= 0.90


def test_kws_shipped_config_loses_at_least_5_points(kws):
    project, analysis = kws
    result = analysis.evaluate(project.compile())
    assert result.accuracy_float - result.accuracy_npu >= 0.05


def test_kws_excluding_the_long_tailed_weight_recovers(kws):
    float_acc = kws[1].evaluate(kws[0].compile()).accuracy_float
    assert abs(accuracy(kws, exclude=("tdnn1.affine",)) - float_acc) <= 0.01


def test_kws_clipping_to_the_bulk_range_recovers(kws):
    float_acc = kws[1].evaluate(kws[0].compile()).accuracy_float
    assert abs(accuracy(kws, weight_min_max={"tdnn1.affine": KWS_BULK_RANGE}) - float_acc) <= 0.01


def test_kws_bulk_range_is_the_range_of_bands_1_to_7(kws):
    w = kws[0].inventory.arrays["tdnn1.affine"]
    bulk = w[:, 1:, :]
    assert round(float(bulk.min()), 1) == KWS_BULK_RANGE[0] and round(float(bulk.max()), 1) == KWS_BULK_RANGE[1]
    assert abs(w[:, 0, :]).max() > 20 * abs(bulk).max()


def test_kws_vendor_steps_1_and_2(kws):
    float_acc = kws[1].evaluate(kws[0].compile()).accuracy_float
    assert abs(accuracy(kws, compress=False, conv2d_compress=False) - float_acc) <= 0.01
    assert abs(accuracy(kws, conv2d_compress=False) - float_acc) <= 0.01


def test_cnn_fuse_bn_costs_accuracy_on_the_chip(cnn):
    project, analysis = cnn
    compiled = project.compile()
    shipped = analysis.evaluate(compiled)
    assert project.config.settings.fuse_bn is True
    assert shipped.accuracy_float >= 0.90
    # conv1 is a plain Conv over both input channels, which gxnpuc compresses (a grouped one it never would)
    conv1 = compiled.results["conv1.weight"]
    assert conv1.weight.shape == (16, 2, 3, 3) and conv1.plan.quantized and conv1.plan.fused
    assert shipped.accuracy_float - shipped.accuracy_npu >= 0.5
    assert abs(accuracy(cnn, fuse_bn=False) - shipped.accuracy_float) <= 0.01
    sensitivity = analysis.sensitivity(project.config.settings)
    assert sensitivity[0].weight == "conv1.weight"
    first = sensitivity[0]
    assert (round(first.alone_sqnr_db, 2), round(first.accuracy * 100, 2), round(first.exclude_gain_db, 1)) == (
        -5.68,
        18.26,
        42.4,
    )
    assert round(conv1.errors.sqnr_db, 1) == 44.5  # the per-weight SQNR hides it: the blown-up tail is the signal


def test_cnn_the_readme_fused_weight_numbers(cnn):
    """The fused conv1.weight's span and int8 step, the ink taps that become the zero point, and what
    keeping each BN unfolded costs (the byte figures beside the README table)."""
    project, _ = cnn
    fused = project.compile().results["conv1.weight"]
    assert (round(fused.range[0]), round(fused.range[1]), round(fused.params.scale, 2)) == (-462, 498, 3.77)
    ink = fused.simulated[:8]  # the filters that read the ink channel (their edge taps are zero)
    assert np.count_nonzero(project.inventory.arrays["conv1.weight"][:8]) == 72 and np.count_nonzero(ink) == 1
    unfolded = project.compile(replace(project.config.settings, fuse_bn=False)).results
    assert unfolded["conv1.weight"].weight_memory_bytes - fused.weight_memory_bytes == 70


def test_cnn_fused_weight_is_blown_up_by_tiny_variances(cnn):
    project, _ = cnn
    arrays = project.inventory.arrays
    assert arrays["bn1.var"][8:].max() < 1e-5 < arrays["bn1.var"][:8].min()
    fused, _ = project.compiler.reference(project.inventory.by_name["conv1.weight"], fused=True)
    assert abs(fused[8:]).max() > 20 * abs(fused[:8]).max()


def test_samples_stay_small():
    total = sum(p.stat().st_size for p in SAMPLES.rglob("*") if p.is_file())
    assert total < 5 * 2**20


def readme_loop_tables() -> list[list[tuple[float, int]]]:
    """The (NPU accuracy %, bytes) rows of each table in the README's "The vendor's debugging loop on the samples"."""
    text = (SAMPLES.parent / "README.md").read_text()
    section = text[text.index("## The vendor's debugging loop on the samples") :]
    section = section[: section.index("\n## ", 1)]
    tables: list[list[tuple[float, int]]] = []
    for block in re.split(r"\n\n+", section):
        rows = [line.split("|")[1:-1] for line in block.splitlines() if re.match(r"\| \d \|", line)]
        if rows:
            tables.append(
                [
                    (float(re.search(r"([\d.]+)%", r[2]).group(1)), int(re.match(r"\s*([\d,]+)", r[3]).group(1).replace(",", "")))
                    for r in rows
                ]
            )
    return tables


def test_the_readme_tables_are_the_tested_numbers():
    assert readme_loop_tables() == [[(acc, size) for _, acc, size in steps] for steps in (KWS_LOOP, CNN_LOOP)]


def test_the_readme_compile_w_example_is_what_compile_w_prints():
    from clirun import npu_tui

    text = (SAMPLES.parent / "README.md").read_text()
    block = text[text.index("$ npu-tui compile -w sample_models/kws_tdnn/config.yaml\n") :].split("\n", 1)[1]
    shown = [line.strip() for line in block[: block.index("```")].rstrip().splitlines()]
    result = npu_tui("compile", "-w", "sample_models/kws_tdnn/config.yaml", cwd=SAMPLES.parent)
    assert result.returncode == 0 and result.stdout.splitlines() == shown
