"""Every number the README claims about the bundled samples, re-checked on the shipped files
through the compiler core and onnxruntime."""

from dataclasses import replace

from conftest import SAMPLES

# the bulk of tdnn1.affine: the weights of bands 1-7, leaving out band 0's long tail (README step 5)
KWS_BULK_RANGE = (-19.2, 14.7)


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


def test_cnn_float_accuracy_and_fuse_bn(cnn):
    project, analysis = cnn
    compiled = project.compile()
    shipped = analysis.evaluate(compiled)
    assert project.config.settings.fuse_bn is True
    assert shipped.accuracy_float >= 0.90
    # conv1, whose fused weight the tiny variances blow up, is depthwise: gxnpuc keeps it fp16, so FUSE_BN
    # costs no accuracy on the chip
    assert compiled.results["conv1.weight"].plan.reason == "depthwise_never_compressed"
    assert abs(shipped.accuracy_float - shipped.accuracy_npu) <= 0.01
    assert abs(accuracy(cnn, fuse_bn=False) - shipped.accuracy_float) <= 0.01


def test_cnn_fused_weight_is_blown_up_by_tiny_variances(cnn):
    project, _ = cnn
    arrays = project.inventory.arrays
    assert arrays["bn1.var"][8:].max() < 1e-5 < arrays["bn1.var"][:8].min()
    fused, _ = project.compiler.reference(project.inventory.by_name["conv1.weight"], fused=True)
    assert abs(fused[8:]).max() > 20 * abs(fused[:8]).max()


def test_samples_stay_small():
    total = sum(p.stat().st_size for p in SAMPLES.rglob("*") if p.is_file())
    assert total < 5 * 2**20
