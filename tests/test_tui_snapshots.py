"""SVG snapshots of the main screens at 80x24 (pytest-textual-snapshot; update with --snapshot-update)."""

import pytest

from tui_kit import copy_sample, make_app, settle

SIZE = (80, 24)


@pytest.fixture
def kws_app(tmp_path, monkeypatch):
    copy_sample("kws_tdnn", tmp_path)
    monkeypatch.chdir(tmp_path)
    from pathlib import Path

    return make_app(Path("config.yaml"))


def after(*keys: str):
    """Wait for the first test to finish (numbers and sweep), press the keys, then let the delayed
    histogram draw settle."""

    async def run_before(pilot):
        await settle(pilot)
        for key in keys:
            await pilot.press(key)
        await pilot.app.workers.wait_for_complete()
        await pilot.pause(0.3)

    return run_before


def test_main_screen(snap_compare, kws_app):
    assert snap_compare(kws_app, terminal_size=SIZE, run_before=after())


def test_excluded_weight_stale_summary(snap_compare, kws_app):
    assert snap_compare(kws_app, terminal_size=SIZE, run_before=after("x"))


def test_layer_table(snap_compare, kws_app):
    assert snap_compare(kws_app, terminal_size=SIZE, run_before=after("t"))


def test_min_max_dialog(snap_compare, kws_app):
    assert snap_compare(kws_app, terminal_size=SIZE, run_before=after("m", "down"))


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

    import npu_tui.core.fix as fix

    monkeypatch.setattr(fix, "time", types.SimpleNamespace(perf_counter=lambda: 0.0))  # "0.0 s" in every run

    async def run_before(pilot):
        await settle(pilot)
        await pilot.press("F", "1", "enter")
        screen = pilot.app.screen
        for _ in range(200):
            if screen.result is not None and screen.search_worker is None:
                break
            await pilot.pause(0.05)
        await pilot.pause(0.3)

    assert snap_compare(kws_app, terminal_size=SIZE, run_before=run_before)
