"""SVG snapshots of the main screens at 80x24 (pytest-textual-snapshot; update with --snapshot-update)."""

import pytest
from tui_kit import copy_sample, make_app, settle, until

SIZE = (80, 24)


@pytest.fixture
def kws_app(tmp_path, monkeypatch):
    copy_sample("kws_tdnn", tmp_path)
    monkeypatch.chdir(tmp_path)
    from pathlib import Path

    return make_app(Path("config.yaml"))


async def histogram_drawn(pilot) -> None:
    """Every worker ended, the histogram's delayed draw done, and the frame after it."""
    from npu_tui.tui.histogram_view import HistogramView

    await settle(pilot)
    await until(pilot, lambda: not pilot.app.main(HistogramView).drawing, message=lambda: "the histogram to be drawn")
    await pilot.pause()


def after(*keys: str):
    """Wait for the first test to finish (numbers and sweep), press the keys, then let the workers
    and the delayed histogram draw finish."""

    async def run_before(pilot):
        await settle(pilot)
        for key in keys:
            await pilot.press(key)
        await histogram_drawn(pilot)

    return run_before


def test_main_screen(snap_compare, kws_app):
    assert snap_compare(kws_app, terminal_size=SIZE, run_before=after())


def test_excluded_weight_stale_summary(snap_compare, kws_app):
    assert snap_compare(kws_app, terminal_size=SIZE, run_before=after("x"))


def test_layer_table(snap_compare, kws_app):
    assert snap_compare(kws_app, terminal_size=SIZE, run_before=after("t"))


def test_min_max_dialog(snap_compare, kws_app):
    async def run_before(pilot):
        await settle(pilot)
        await pilot.press("m")
        await until(pilot, lambda: bool(pilot.app.screen.candidates), message=lambda: "the candidates to be ranked")
        await pilot.press("down")
        await histogram_drawn(pilot)

    assert snap_compare(kws_app, terminal_size=SIZE, run_before=run_before)


def test_switches_dialog(snap_compare, kws_app):
    assert snap_compare(kws_app, terminal_size=SIZE, run_before=after("g", "down"))


def test_save_dialog(snap_compare, kws_app):
    assert snap_compare(kws_app, terminal_size=SIZE, run_before=after("x", "ctrl+s"))


def test_help_screen(snap_compare, kws_app):
    assert snap_compare(kws_app, terminal_size=SIZE, run_before=after("question_mark"))


def test_layer_view(snap_compare, kws_app):
    assert snap_compare(kws_app, terminal_size=SIZE, run_before=after("d"))


def test_fix_screen(snap_compare, kws_app, monkeypatch):
    import types

    import npu_tui.core.triage.fix as fix

    monkeypatch.setattr(fix, "time", types.SimpleNamespace(perf_counter=lambda: 0.0))  # "0.0 s" in every run

    async def run_before(pilot):
        await settle(pilot)
        await pilot.press("F", "1", "enter")
        screen = pilot.app.screen
        await until(
            pilot, lambda: screen.result is not None and screen.search_worker is None, message=lambda: "the fix search to finish"
        )
        await histogram_drawn(pilot)

    assert snap_compare(kws_app, terminal_size=SIZE, run_before=run_before)


@pytest.fixture
def long_names_app(tmp_path, monkeypatch):
    """Twelve weights named as tf2onnx names them: the part that tells them apart is at the start."""
    from pathlib import Path

    import numpy as np
    from modelkit import BASE_CONFIG, make_model, tensor, value, write_project
    from onnx import helper

    rng = np.random.default_rng(3)
    names = [f"model/conv2d_{i}/Conv2D_weights_fused_bn" for i in range(12)]
    nodes, current = [], "x"
    for i, name in enumerate(names):
        nodes.append(helper.make_node("MatMul", [current, name], [f"h{i}"], name=f"model/conv2d_{i}/Conv2D"))
        current = f"h{i}"
    model = make_model(
        nodes,
        [value("x", ["n", 4])],
        [value(current, ["n", 4])],
        [tensor(n, rng.normal(size=(4, 4)).astype(np.float32)) for n in names],
    )
    write_project(tmp_path, model, BASE_CONFIG)
    monkeypatch.chdir(tmp_path)
    return make_app(Path("config.yaml"), with_data=False)


def test_long_exporter_names(snap_compare, long_names_app):
    assert snap_compare(long_names_app, terminal_size=SIZE, run_before=after("j", "j"))


@pytest.fixture
def kws_pb_app(tmp_path, monkeypatch):
    copy_sample("kws_tdnn_pb", tmp_path)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    from pathlib import Path

    return make_app(Path("config.yaml"))


def test_tensorflow_sample_shows_gxnpuc_names(snap_compare, kws_pb_app):
    """The kws sample's frozen .pb: the tree and the details speak gxnpuc's folded names and TF shapes."""
    assert snap_compare(kws_pb_app, terminal_size=SIZE, run_before=after())
