"""The workbench on TensorFlow frozen graphs at 80x24: gxnpuc's names on screen, TF shapes in the
details, FUSE_BN toggled on a V1 BatchNorm, and a save that keeps PB_FILE and every key."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml
from rich.text import Text

from tui_kit import copy_sample, make_app, settle

SIZE = (80, 24)
FIXTURE = Path(__file__).resolve().parents[2] / "shared" / "gxnpuc"


@pytest.fixture(autouse=True)
def own_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.getbasetemp() / "tf-cache"))


def shown(widget) -> str:
    rendered = widget.render()
    return rendered.plain if isinstance(rendered, Text) else str(rendered)


async def test_kws_pb_shows_gxnpuc_names_and_saves_them_keeping_pb_file(tmp_path):
    from npu_tui.tui.details import WeightDetails
    from npu_tui.tui.weight_tree import WeightTree

    config = copy_sample("kws_tdnn_pb", tmp_path)
    before = yaml.safe_load(config.read_text())
    app = make_app(config)
    name = "tdnn1.affine/conv1d/ExpandDims_1/_5__cf__5"
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert app.main_screen.selected == name
        assert name in app.query_one(WeightTree).leaves
        details = shown(app.query_one(WeightDetails))
        assert "shape [1, 3, 8, 32]" in details
        assert "tf nodes tdnn1.affine/conv1d/ExpandDims_1, tdnn1.affine/kernel, tdnn1.affine/kernel/read" in details
        await pilot.press("x", "ctrl+s")
        assert f"+EXCLUDE_COMPRESS_OPS: [{name}]" in app.screen.diff
        await pilot.press("y")
        await pilot.pause()
    saved = yaml.safe_load(config.read_text())
    assert saved == {**before, "EXCLUDE_COMPRESS_OPS": [name]}


async def test_fuse_bn_toggles_on_a_v1_pb(tmp_path):
    from npu_tui.tui.summary import ModelSummary

    app = make_app(copy_sample("cnn_bn_pb", tmp_path))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        folded = [r.weight.name for r in app.workbench.compilation.results.values() if r.plan.fused]
        assert folded == ["conv1/kernel/read/_8__cf__8", "conv2/kernel/read/_9__cf__9"]
        fused_summary = shown(app.query_one(ModelSummary))
        await pilot.press("g", "down", "down", "space", "enter")
        assert app.workbench.settings.fuse_bn is False
        await pilot.press("ctrl+r")
        await settle(pilot)
        assert not any(r.plan.fused for r in app.workbench.compilation.results.values())
        assert shown(app.query_one(ModelSummary)) != fused_summary


@pytest.mark.skipif(not FIXTURE.is_dir(), reason="../shared/gxnpuc is not beside the repo")
async def test_the_vendor_mnist_example_opens(tmp_path):
    shutil.copy(FIXTURE / "vendor_mnist" / "generated_pb" / "mnist_with_ckpt.pb", tmp_path / "mnist.pb")
    text = (FIXTURE / "vendor_mnist" / "config.yaml").read_text().replace("./generated_pb/mnist_with_ckpt.pb", "mnist.pb")
    (tmp_path / "config.yaml").write_text(text)
    app = make_app(tmp_path / "config.yaml", with_data=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert app.main_screen.selected == "Variable/read/_0__cf__0"
