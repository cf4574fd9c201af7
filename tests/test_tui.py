"""The workbench driven by keys at 80x24, as a user would: what the screen shows and what gets saved."""

import numpy as np
import yaml
from modelkit import BASE_CONFIG, chip_warning_model, make_model, named_matmul, tensor, value, write_project
from onnx import helper
from rich.text import Text
from textual.widgets import Input, TabbedContent
from tui_kit import DEADLINE, TDNN1, TDNN2, Gate, burst, copy_sample, make_app, settle, until, warned_tf_sample

from npu_tui.core.config.reader import load_config
from npu_tui.tui.details import WeightDetails
from npu_tui.tui.histogram_view import HistogramView
from npu_tui.tui.summary import ModelSummary
from npu_tui.tui.weight_tree import WeightTree

SIZE = (80, 24)


def shown(widget) -> str:
    rendered = widget.render()
    return rendered.plain if isinstance(rendered, Text) else str(rendered)


async def test_select_exclude_recompile_undo(tmp_path):
    app = make_app(copy_sample("kws_tdnn", tmp_path))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert "NPU 28.81%!" in shown(app.query_one(ModelSummary))
        await pilot.press("j")
        assert app.main_screen.selected == "tdnn2.affine"
        await pilot.press("k")
        assert app.main_screen.selected == "tdnn1.affine"
        assert "name tdnn1.affine" in shown(app.query_one(WeightDetails))
        await pilot.press("x")
        tree = app.query_one(WeightTree)
        assert str(tree.leaves["tdnn1.affine"].label).startswith("x 73.8") and str(tree.leaves["tdnn1.affine"].label).endswith(
            " tdnn1.affine"
        )
        assert "state x excluded (excluded)" in shown(app.query_one(WeightDetails))
        assert "(stale: ctrl+r)" in shown(app.query_one(ModelSummary))
        assert "NPU 19,850 B" in shown(app.query_one(ModelSummary))  # 14,286 - 580 compressed + 6,144 fp16 (3 padded tiles)
        await pilot.press("ctrl+r")
        await settle(pilot)
        summary = shown(app.query_one(ModelSummary))
        assert "NPU 97.15%" in summary and "stale" not in summary
        await pilot.press("u")
        assert str(tree.leaves["tdnn1.affine"].label).startswith("q 39.8") and str(tree.leaves["tdnn1.affine"].label).endswith(
            " tdnn1.affine"
        )
        assert "(stale: ctrl+r)" in shown(app.query_one(ModelSummary))
        await pilot.press("ctrl+y")
        assert str(tree.leaves["tdnn1.affine"].label).startswith("x 73.8") and str(tree.leaves["tdnn1.affine"].label).endswith(
            " tdnn1.affine"
        )


async def drawn(pilot, app) -> None:
    """Until the histogram's delayed draw has happened, and the frame after it."""
    await until(pilot, lambda: not app.main(HistogramView).drawing, message=lambda: "the histogram to be drawn")
    await pilot.pause()


def palette_choice(app) -> str:
    """The command the palette would run on Enter, or ''."""
    from textual.command import CommandList

    found = app.screen.query(CommandList)
    if not found or found.first().highlighted is None:
        return ""
    options = found.first()
    return str(options.get_option_at_index(options.highlighted).prompt)


def plot_area(view) -> str:
    """The bars of a histogram as text, without its title and axis labels."""
    return "".join(line.split("┤", 1)[1] for line in view.render().plain.splitlines() if "┤" in line)


async def test_min_max_dialog_validates_then_applies(tmp_path):
    app = make_app(copy_sample("kws_tdnn", tmp_path))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await drawn(pilot, app)
        assert "x" not in plot_area(app.main(HistogramView))  # the full range: nothing saturates
        await pilot.press("m")
        dialog = app.screen
        box = dialog.query_one("#minmax-input")
        preview = dialog.query_one("#minmax-preview")
        box.value = "0.5, -0.5"
        await until(pilot, lambda: "min 0.5 is not less than max -0.5" in shown(preview), message=lambda: shown(preview))
        box.value = "-100000, 100000"  # what the config would refuse, refused here with its words
        fp16 = "bound -100000 is beyond fp16 (±65504); the NPU stores the range's minimum and scale as fp16"
        await until(pilot, lambda: fp16 in shown(preview), message=lambda: shown(preview))
        await pilot.press("enter")
        assert app.screen is dialog and app.workbench.settings.weight_min_max == {}
        box.value = "-19.2, 14.7"
        expected = "would give accuracy 96.98%, clips "  # the model metric, as ctrl+r will measure it
        await until(
            pilot, lambda: expected in shown(preview) and "own SQNR 0.3 dB" in shown(preview), message=lambda: shown(preview)
        )
        await pilot.press("enter")
        assert app.workbench.settings.weight_min_max == {"tdnn1.affine": (-19.2, 14.7)}
        await drawn(pilot, app)
        assert "x" in plot_area(app.main(HistogramView))  # saturating bars drawn in x: seen without colour
        assert "from WEIGHT_MIN_MAX" in shown(app.query_one(WeightDetails))
        assert str(app.query_one(WeightTree).leaves["tdnn1.affine"].label).startswith("c 0.3")
        await pilot.press("ctrl+r")
        await settle(pilot)
        assert "NPU 96.98%" in shown(app.query_one(ModelSummary))


async def test_save_keeps_comments_and_writes_a_backup(tmp_path):
    config = copy_sample("kws_tdnn", tmp_path)
    before = config.read_text()
    app = make_app(config)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("x", "ctrl+s")
        assert "+EXCLUDE_COMPRESS_OPS: [tdnn1.affine]" in app.screen.diff
        await pilot.press("y")
        await pilot.pause()
    after = config.read_text()
    assert (tmp_path / "config.yaml.bak").read_text() == before
    assert after.splitlines()[0] == before.splitlines()[0] and after.startswith("# gxnpuc config")
    assert "COMPRESS: true              # store fully-connected weights as int8" in after
    assert yaml.safe_load(after)["EXCLUDE_COMPRESS_OPS"] == ["tdnn1.affine"]
    assert load_config(config).settings.exclude == ("tdnn1.affine",)
    assert not (tmp_path / "model.h").exists()


async def test_quit_asks_first_when_there_are_unsaved_changes(tmp_path):
    app = make_app(copy_sample("kws_tdnn", tmp_path))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("x", "q")
        assert "unsaved changes" in shown(app.screen.query_one("Label"))
        await pilot.press("n")
        assert app.is_running
        await pilot.press("q", "y")
        await pilot.pause()
        assert not app.is_running


async def test_global_switches(tmp_path):
    app = make_app(copy_sample("cnn_bn", tmp_path))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert "NPU 18.09%" in shown(app.query_one(ModelSummary))  # FUSE_BN's blown-up conv1 (README, cnn_bn step 3)
        await pilot.press("g", "down", "down")
        boxes = [str(box.label) for box in app.screen.query("Checkbox")]
        assert boxes == [
            "  on   COMPRESS: int8 fully-connected weights",
            "  on   CONV2D_COMPRESS: int8 convolution weights",
            "> on   FUSE_BN: fold BatchNorm into convolutions",
        ]  # on/off and the focus in text: NO_COLOR shows the checkbox the same either way
        await pilot.press("space")
        assert str(app.screen.query("Checkbox").last().label) == "> off  FUSE_BN: fold BatchNorm into convolutions"
        await pilot.press("enter")
        assert app.workbench.settings.fuse_bn is False
        await pilot.press("ctrl+r")
        await settle(pilot)
        assert "NPU 99.33%" in shown(app.query_one(ModelSummary))


async def test_filter_and_escape(tmp_path):
    app = make_app(copy_sample("kws_tdnn", tmp_path))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("slash", "t", "d", "n", "n")
        assert set(app.query_one(WeightTree).leaves) == {"tdnn1.affine", "tdnn2.affine"}
        await pilot.press("escape")
        assert set(app.query_one(WeightTree).leaves) == {"tdnn1.affine", "tdnn2.affine", "prefinal-l", "output"}


async def test_letters_sent_with_the_slash_in_one_burst_are_the_filters_text(tmp_path):
    """A paste, or an SSH link that bundles keystrokes, hands over "/td" at once: "td" is the filter's
    text, not t (Table) and d (Layers) for the tree; Enter then goes back to the tree, Esc clears."""
    app = make_app(copy_sample("kws_tdnn", tmp_path), with_data=False)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        box, tabs, tree = app.main("#filter", Input), app.main(TabbedContent), app.main(WeightTree)
        burst(pilot, "/td")
        await until(
            pilot,
            lambda: box.value == "td" or tabs.active != "tab-weight",
            message=lambda: f"the burst to land (filter {box.value!r}, tab {tabs.active})",
        )
        assert (box.value, tabs.active, app.focused) == ("td", "tab-weight", box)
        await until(pilot, lambda: set(tree.leaves) == {"tdnn1.affine", "tdnn2.affine"}, message=lambda: str(set(tree.leaves)))
        await pilot.press("enter", "j", "x")  # back in the tree: j and x act on the matches
        assert app.focused is tree and app.workbench.settings.exclude == ("tdnn2.affine",)
        burst(pilot, "/1")  # / again selects the old text: what follows replaces it
        await until(pilot, lambda: box.value.endswith("1") or tabs.active != "tab-weight", message=lambda: repr(box.value))
        assert app.focused is box and box.value == "1"
        await until(pilot, lambda: set(tree.leaves) == {"tdnn1.affine"}, message=lambda: str(set(tree.leaves)))
        await pilot.press("escape", "j")  # the filter closed and cleared, the keys are the tree's again
        assert app.focused is tree and box.value == "" and len(tree.leaves) == 4
        assert app.main_screen.selected == "tdnn2.affine" and tabs.active == "tab-weight"
        burst(pilot, "/td\r")  # Enter in the burst: back in the tree, x includes tdnn2.affine again
        await until(
            pilot, lambda: box.value == "td" and app.focused is tree, message=lambda: f"{box.value!r}, focus on {app.focused}"
        )
        await pilot.press("x")
        assert box.value == "td" and app.workbench.settings.exclude == ()


async def test_keys_sent_after_enter_or_esc_in_the_same_burst_are_the_trees(tmp_path):
    """'/td', Enter and x sent at once: x excludes the selected match, it is not typed into the filter. An
    Esc read while letters sent before it still wait in the box: they go with the filter, and the key after
    it is the tree's (a terminal sends Esc and a letter in one packet as Alt+letter: this is the key events'
    order, as a slow link can deliver it)."""
    app = make_app(copy_sample("kws_tdnn", tmp_path), with_data=False)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        box, tree = app.main("#filter", Input), app.main(WeightTree)
        selected = app.main_screen.selected
        burst(pilot, "/td\rx")
        await until(
            pilot,
            lambda: app.workbench.settings.exclude or box.value.endswith("x"),
            message=lambda: f"x to act (filter {box.value!r}, focus on {app.focused})",
        )
        assert (box.value, app.focused, app.workbench.settings.exclude) == ("td", tree, (selected,))
        burst(pilot, "/1\x1bj")
        await until(
            pilot,
            lambda: app.main_screen.selected != selected or box.value.endswith("j"),
            message=lambda: f"j to act (filter {box.value!r}, focus on {app.focused})",
        )
        assert box.value == "" and app.focused is tree and len(tree.leaves) == 4


async def test_a_slash_typed_in_the_filter_is_text(tmp_path):
    """TensorFlow names are scopes joined by /: in the box, / is a letter of the name, not the filter key."""
    app = make_app(copy_sample("kws_tdnn_pb", tmp_path), with_data=False)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        box, tree = app.main("#filter", Input), app.main(WeightTree)
        burst(pilot, "/affine/c")  # tdnn1.affine/conv1d/... and tdnn2.affine/conv1d/...
        await until(pilot, lambda: box.value.endswith("c"), message=lambda: f"the last key in the box ({box.value!r})")
        assert box.value == "affine/c"
        await until(pilot, lambda: len(tree.leaves) == 2, message=lambda: str(set(tree.leaves)))


async def test_the_details_show_what_compile_warns_of_for_the_selected_weight(tmp_path):
    """A range without 0 (values stuck, saturation) and a node name gxnpuc ignores, in compile's words, in
    the details of the weight each is about, near the top (seen at 80x24 without scrolling)."""
    from textual.containers import VerticalScroll
    from textual.geometry import Region

    app = make_app(warned_tf_sample(tmp_path), with_data=False)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        details, panel = app.main(WeightDetails), app.main("#details-panel", VerticalScroll)

        def warnings() -> list[str]:
            """Each warning whole: its first line under the label, the rest indented under that line."""
            found: list[str] = []
            for line in shown(details).splitlines():
                if line.startswith("   warning "):
                    found.append(line[11:])
                elif found and line.startswith(" " * 11) and not found[-1].endswith("\n"):
                    found[-1] += line[11:]  # the wrap keeps the space it breaks at
                elif found:
                    found[-1] += "\n"
            return [w.rstrip("\n") for w in found]

        def on_screen(label: str, nth: int = 0) -> int:
            """The row the label's nth line is drawn on, as wrapped at the panel's width."""
            drawn = [strip.text for strip in details.render_lines(Region(0, 0, details.size.width, details.size.height))]
            return [i for i, line in enumerate(drawn) if line.split() and line.split()[0] == label][nth]

        assert app.main_screen.selected == TDNN1
        ignored = f"EXCLUDE_COMPRESS_OPS: gxnpuc 1.5.8 ignores 'tdnn1.affine/conv1d' silently (it matches only -w names): write {TDNN1!r}"
        assert warnings() == [ignored]
        await pilot.press("j")
        await until(pilot, lambda: app.main_screen.selected == TDNN2)
        stuck, saturated = warnings()  # the weight's name, at the top of the details, is not repeated
        assert stuck.startswith("WEIGHT_MIN_MAX [0.1, 0.5] does not contain 0; the nudge shifts the grid to [0, 0.399902]")
        assert saturated.endswith("values (70.83%) lie outside [0, 0.399902] and saturate")
        assert on_screen("warning") + 4 < panel.size.height  # in view at 80x24, its lines clear of the labels
        assert on_screen("warning", 1) < panel.virtual_size.height  # the second: Tab, then the arrows scroll to it
        await pilot.press("r")  # its automatic range holds 0: nothing to warn of
        assert warnings() == []


async def test_hostile_names_are_shown_literally(tmp_path):
    name = "[bold red]evil[/]\x1b[31m.weight"
    config = write_project(tmp_path, named_matmul(name, "[link=http://x]fc[/link]"), BASE_CONFIG)
    app = make_app(config, with_data=False)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        label = app.query_one(WeightTree).leaves[name].label
        literal = "[bold red]evil[/]\\x1b[31m.weight"  # spelled out, never markup
        mark_and_number = "q 48.8 "
        assert label.plain.startswith(mark_and_number) and label.plain.endswith("[31m.weight")  # cut to the tree, never markup
        assert literal.startswith(label.plain[len(mark_and_number) :].split("…")[0])
        # no style from the name itself: spans cover only the mark and the numbers before the name
        assert all(span.end <= len(mark_and_number) for span in label.spans)
        assert str(app.query_one(WeightTree).tooltip) == literal  # whole, as plain text, escapes spelled out
        details = shown(app.query_one(WeightDetails))
        assert "[bold red]evil[/]\\x1b[31m.weight" in details and "[link=http://x]fc[/link] (MatMul)" in details
        screen = app.export_screenshot()
        assert "[bold&#160;red]evil[/]\\x1b[31m.weight" in screen or "[bold red]evil[/]\\x1b[31m.weight" in screen
        assert "\x1b" not in screen


async def test_every_key_is_in_the_command_palette(tmp_path):
    app = make_app(copy_sample("kws_tdnn", tmp_path))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        commands = {c.title: c.help for c in app.get_system_commands(app.screen)}
        assert {b.description for b in app.keys() if b.id != "escape"} <= set(commands)  # the app's keys and the workbench's
        for binding in app.keys():  # the palette's help is the binding's own tooltip: nothing to drift
            assert binding.tooltip, binding.id
            if binding.id != "escape":
                assert commands[binding.description].startswith(binding.tooltip)
        await pilot.press("ctrl+p", *"Exclude")
        await until(pilot, lambda: "Exclude" in palette_choice(app), message=lambda: "the palette to offer Exclude")
        await pilot.press("enter")
        await pilot.pause()
        assert app.workbench.settings.exclude == ("tdnn1.affine",)


async def test_a_compile_error_is_a_notification_and_changes_nothing(tmp_path):
    model = make_model(
        [helper.make_node("MatMul", ["x", "fc.weight"], ["y"], name="fc")],
        [value("x", ["n", 3])],
        [value("y", ["n", 2])],
        [tensor("fc.weight", np.array([[np.nan, 1.0], [0.5, 2.0], [1.0, 1.0]], np.float32))],
    )
    config = write_project(tmp_path, model, BASE_CONFIG.replace("COMPRESS: true\nCONV", "COMPRESS: false\nCONV"))
    app = make_app(config, with_data=False)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("g", "space", "enter")
        await pilot.pause()
        assert app.is_running and app.workbench.settings.compress is False
        assert any("holds NaN or Inf" in str(n.message) for n in app._notifications)


async def test_notifications_never_render_markup(tmp_path):
    app = make_app(copy_sample("kws_tdnn", tmp_path), with_data=False)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        app.notify("weight '[bold]w[/bold]\x1b[2J' is odd")
        await pilot.pause()
        last = list(app._notifications)[-1]
        assert last.message == "weight '[bold]w[/bold]\\x1b[2J' is odd" and last.markup is False


async def test_reset_table_sort_and_help(tmp_path):
    from npu_tui.tui.help_screen import HelpScreen
    from npu_tui.tui.weight_table import WeightTable

    app = make_app(copy_sample("kws_tdnn", tmp_path))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("x")
        await pilot.press("r")
        assert app.workbench.settings.exclude == ()
        assert str(app.query_one(WeightTree).leaves["tdnn1.affine"].label).startswith("q 39.8")
        await pilot.press("t")
        table = app.query_one(WeightTable)
        assert table.has_focus and table.sort_by == "sqnr"
        assert table.get_row_at(0)[4].plain == "tdnn1.affine"  # lowest SQNR first
        await pilot.press("o", "o", "o")  # sensitivity, tail, size
        assert table.sort_by == "size" and table.get_row_at(0)[4].plain == "prefinal-l"
        assert table.get_row_at(table.cursor_row)[4].plain == "tdnn1.affine"  # the cursor follows its weight
        await pilot.press("down", "enter")
        assert app.main_screen.selected == "output" == table.get_row_at(3)[4].plain
        assert "name " + app.main_screen.selected in shown(app.query_one(WeightDetails))
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        panels = [name for name, _ in app.screen.panels]
        assert "Weight tab: details" in panels and "Layers tab: chart" in panels  # as the screen names them
        assert not any(name.endswith(("View", "Tree", "Details", "Table", "Summary")) for name in panels)
        numbers = dict(app.screen.numbers)
        assert "99.9th percentile" in numbers["tail_ratio"] and "only this weight quantized" in numbers["alone"]
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)


SWEEP_WORKER = "evaluate_in_background"
BEFORE_RUNS = 2  # the evaluator's measurements before the sweep's first what-if run: the model numbers, the sweep's baseline


def sweep_done(app) -> int:
    """How many what-if runs the summary says are done (0 before the sweep shows progress)."""
    import re

    found = re.match(r"sensitivity (\d+)/", app.main_screen.running or "")
    return int(found.group(1)) if found else 0


async def test_escape_stops_the_sweep_and_keeps_what_it_measured(tmp_path, monkeypatch):
    gate = Gate(monkeypatch, SWEEP_WORKER, free=BEFORE_RUNS + 3)  # the 4th run waits until Esc is pressed
    app = make_app(copy_sample("kws_tdnn", tmp_path))
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: gate.held == 1 and sweep_done(app) >= 1, message=lambda: "the sweep to reach its 4th run")
        assert "s left (Esc stops)" in app.main_screen.running, app.main_screen.running
        await pilot.press("escape")
        gate.open()
        await until(
            pilot, lambda: app.main_screen.running is None, message=lambda: "the stopped sweep to end"
        )  # after its current run
        measured = app.workbench.sensitivity
        assert 1 <= len(measured) < 4 and app.main_screen.running is None and not app.workbench.sweep_complete
        assert "NPU 28.81%" in shown(app.query_one(ModelSummary))  # the model numbers stay
        missing = next(w.name for w in app.workbench.project.inventory.weights if w.name not in measured)
        app.query_one(WeightTree).select_weight(missing)
        await pilot.pause()
        assert "not measured: the sweep stopped" in shown(app.query_one(WeightDetails))


async def test_a_second_retest_during_a_sweep_can_still_be_stopped(tmp_path, monkeypatch):
    gate = Gate(monkeypatch, SWEEP_WORKER, free=BEFORE_RUNS + 1)  # each test's sweep waits at its 2nd run
    app = make_app(copy_sample("kws_tdnn", tmp_path))
    async with app.run_test(size=SIZE) as pilot:
        await until(
            pilot, lambda: gate.held == 1 and sweep_done(app) >= 1, message=lambda: "the first sweep to reach its 2nd run"
        )
        first = app.main_screen.evaluation_worker
        await pilot.press("ctrl+r")
        gate.release_held()  # the first, cancelled, ends after its run; the second waits at its own 2nd run
        await until(
            pilot,
            lambda: app.main_screen.evaluation_worker is not first and gate.held == 1 and sweep_done(app) >= 1,
            message=lambda: "the second sweep to reach its 2nd run",
        )
        await pilot.press("escape")
        gate.open()
        await until(pilot, lambda: app.main_screen.running is None, message=lambda: "the stopped sweep to end")
        assert first.is_cancelled and app.main_screen.evaluation_worker is None
        assert not app.workbench.sweep_complete
        await pilot.press("ctrl+r")  # and a run after that completes
        await settle(pilot)
        assert app.workbench.sweep_complete and len(app.workbench.sensitivity) == 4


async def test_layer_view_opens_sorts_and_leads_to_the_weight(tmp_path):
    from textual.widgets import TabbedContent

    from npu_tui.tui.layer_view import LayerTable

    app = make_app(copy_sample("kws_tdnn", tmp_path))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("j")  # tdnn2.affine
        await pilot.press("d")
        rows = app.main(LayerTable)
        assert app.main(TabbedContent).active == "tab-layers" and app.focused is rows
        assert rows.row_count == 10
        assert rows.shown_layers[rows.current()].weight == "tdnn2.affine"  # d jumps to the weight's layer
        first = [str(rows.get_row_at(0)[i]) for i in range(6)]
        assert first[0] == "v 0" and first[3] == "tdnn1" and first[4] == "tdnn1.affine"
        await pilot.press("o")  # sort by accumulated SQNR, worst first
        assert rows.sort_by == "accumulated"
        worst = rows.shown_layers[int(rows.coordinate_to_cell_key((0, 0)).row_key.value)]
        assert worst.accumulated.sqnr_db == min(layer.accumulated.sqnr_db for layer in rows.shown_layers)
        rows.move_cursor(row=rows.get_row_index(str(0)))
        await pilot.press("enter")
        await pilot.pause()
        assert app.main(TabbedContent).active == "tab-weight" and app.main_screen.selected == "tdnn1.affine"
        await pilot.press("x", "d")  # an edit makes the layer numbers stale
        assert all(str(rows.get_row_at(i)[0])[1] == "~" for i in range(rows.row_count))


async def test_worker_messages_while_a_dialog_is_open_do_not_crash(tmp_path):
    app = make_app(copy_sample("kws_tdnn", tmp_path))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("question_mark")  # help opens before the first test finishes
        await settle(pilot)
        assert app.is_running and app.main_screen.running is None
        assert "NPU 28.81%" in shown(app.main(ModelSummary))


async def test_every_way_out_asks_when_there_are_unsaved_changes(tmp_path):
    app = make_app(copy_sample("kws_tdnn", tmp_path))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("x")
        for key in ("ctrl+q", "q"):
            await pilot.press(key)
            assert "unsaved changes" in shown(app.screen.query_one("Label"))
            await pilot.press("n")
            assert app.is_running
        await app.run_action("quit")  # the command palette's Quit runs this action
        await pilot.pause()
        assert "unsaved changes" in shown(app.screen.query_one("Label"))
        await pilot.press("n", "ctrl+c")
        await pilot.pause()
        assert app.is_running
        shown_text = " ".join(n.message for n in app._notifications)
        assert "Press q or ctrl+q to quit" in shown_text and "[b]" not in shown_text
        await pilot.press("ctrl+q", "y")
        await pilot.pause()
        assert not app.is_running


async def test_fix_screen_runs_accepts_and_undoes(tmp_path):
    from npu_tui.tui.fix_screen import FixScreen

    app = make_app(copy_sample("kws_tdnn", tmp_path))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("P")  # pin tdnn1.affine: the search may not touch it
        assert "pinned for fix" in shown(app.main(WeightDetails))
        await pilot.press("F")
        screen = app.screen
        assert isinstance(screen, FixScreen)
        assert "pinned: tdnn1.affine" in str(screen.query_one("#fix-status").render())
        await pilot.press("1", "enter")
        await until(pilot, lambda: screen.result is not None and screen.search_worker is None)
        assert all(c.weight != "tdnn1.affine" for c in screen.result.changes)
        await pilot.press("escape")  # back, nothing applied
        assert not isinstance(app.screen, FixScreen) and not app.workbench.dirty
        await pilot.press("P")  # unpinned
        await pilot.press("F")
        screen = app.screen
        await pilot.press("1", "enter")
        await until(pilot, lambda: screen.result is not None and screen.search_worker is None)
        assert screen.result.met and screen.visits
        assert "+ range tdnn1.affine [" in str(screen.query_one("#fix-log").render())
        await pilot.press("a")
        await pilot.pause()
        assert not isinstance(app.screen, FixScreen)
        assert list(app.workbench.settings.weight_min_max) == ["tdnn1.affine"]
        assert "range [" in shown(app.main(WeightDetails)) and "by fix" in shown(app.main(WeightDetails))
        assert str(app.main(WeightTree).leaves["tdnn1.affine"].label).startswith("c*")
        await pilot.press("u")
        assert not app.workbench.settings.weight_min_max


async def test_fix_search_can_be_stopped(tmp_path, monkeypatch):
    from npu_tui.tui.fix_screen import FixScreen

    gate = Gate(monkeypatch, "search", free=2)  # the search's 3rd evaluation waits until Esc is pressed
    app = make_app(copy_sample("kws_tdnn", tmp_path))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("F", "1", "enter")
        screen = app.screen
        assert isinstance(screen, FixScreen)
        await until(pilot, lambda: gate.held == 1 and len(screen.visits) >= 2, message=lambda: "the search's 3rd evaluation")
        await pilot.press("escape")
        gate.open()
        await until(pilot, lambda: screen.search_worker is None, message=lambda: "the stopped search to end")
        assert screen.result is not None and "change(s)" in str(screen.query_one("#fix-status").render())
        await pilot.press("escape")
        assert not isinstance(app.screen, FixScreen)


async def test_l_switches_the_histogram_and_o_sorts_from_anywhere(tmp_path):
    from npu_tui.tui.histogram_view import HistogramView
    from npu_tui.tui.weight_table import WeightTable

    app = make_app(copy_sample("kws_tdnn", tmp_path))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        view = app.main(HistogramView)
        assert view.log_counts
        await pilot.press("L")  # the tree has the focus, as after start
        assert not view.log_counts
        await pilot.press("t", "o")
        assert app.main(WeightTable).sort_by == "alone"
        commands = [c.title for c in app.get_system_commands(app.screen)]
        assert {"Log/linear", "Sort", "Fix", "Layers"} <= set(commands)


async def test_worst_key_focus_after_dialogs_and_visible_help_and_quit(tmp_path):
    from textual.widgets import Input

    app = make_app(copy_sample("kws_tdnn", tmp_path))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("end")  # somewhere else first
        await pilot.press("w")
        assert app.main_screen.selected == "tdnn1.affine"  # output SQNR alone 1.5 dB: the culprit
        await pilot.press("t", "enter", "g", "escape")  # the sequence that once hid the focus in the filter
        assert isinstance(app.focused, type(app.main(WeightTree)))
        await pilot.press("x")
        assert app.workbench.dirty and app.main("#filter", Input).value == ""
        screen = app.export_screenshot()  # what the terminal shows, footer included
        assert "Help" in screen and "Quit" in screen


async def test_an_evaluation_error_stays_in_the_summary_and_the_message_log(tmp_path, monkeypatch):
    from npu_tui.core.errors import UserError
    from npu_tui.core.sim.evaluate import Evaluator
    from npu_tui.tui.messages_screen import MessagesScreen

    def failing(self, *args, **kwargs):
        raise UserError("onnxruntime failed on the evaluation data: \x1b[31mboom")

    monkeypatch.setattr(Evaluator, "evaluate", failing)
    app = make_app(copy_sample("kws_tdnn", tmp_path))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await until(pilot, lambda: app.main_screen.running is None)
        summary = shown(app.main(ModelSummary))
        assert "error: onnxruntime failed on the evaluation data: \\x1b[31mboom" in summary
        await pilot.press("j", "x")  # other work redraws the summary: the error stays until the next run
        assert "error:" in shown(app.main(ModelSummary))
        await pilot.press("M")
        assert isinstance(app.screen, MessagesScreen)
        assert any("boom" in text and severity == "error" for _, severity, text in app.screen.messages)
        await pilot.press("escape")
        assert not isinstance(app.screen, MessagesScreen)


async def test_long_exporter_names_leave_the_numbers_visible(tmp_path):
    name = "model/conv2d_17/Conv2D_weights_fused_bn_very_long_exporter_suffix"
    config = write_project(tmp_path, named_matmul(name, "p2o.pd_op.full_int_array.61.0"), BASE_CONFIG)
    app = make_app(config, with_data=False)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        label = str(app.main(WeightTree).leaves[name].label)
        sqnr = app.workbench.compilation.results[name].errors.sqnr_db
        assert label.startswith(f"q {sqnr:.1f} ")  # the number comes first: only the name can be cut
        assert name in shown(app.main(WeightDetails))  # the whole name where there is room
        assert "not measured" not in shown(app.main(WeightDetails))  # no data: no sweep is missing
        assert str(app.main(WeightTree).tooltip) == name  # and in the tree's tooltip
        await drawn(pilot, app)  # the histogram is drawn a moment after the cursor stops
        title = next(line.strip() for line in app.main(HistogramView).render().plain.splitlines() if line.strip())
        assert title.startswith("model/conv") and title.endswith("suffix  (log10 counts)") and "…" in title  # cut in the middle


async def test_a_config_changed_on_disk_is_never_silently_reverted(tmp_path):
    from npu_tui.tui.confirm_screens import ConflictScreen

    config = copy_sample("kws_tdnn", tmp_path)
    app = make_app(config)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("x")  # exclude tdnn1.affine
        config.write_text(config.read_text().replace("OUTPUT_TYPE: c_code ", "OUTPUT_TYPE: raw  # edited meanwhile"))
        await pilot.press("ctrl+s")
        assert isinstance(app.screen, ConflictScreen)
        await pilot.press("c")
        assert "OUTPUT_TYPE: raw" in config.read_text() and "tdnn1.affine" not in config.read_text()
        await pilot.press("ctrl+s", "k")  # keep their edit, ours on top
        await pilot.press("y")  # the diff confirmation
        await pilot.pause()
        text = config.read_text()
        assert "OUTPUT_TYPE: raw  # edited meanwhile" in text and "tdnn1.affine" in text
        config.write_text(text.replace("OUTPUT_TYPE: raw", "OUTPUT_TYPE: other"))
        await pilot.press("u", "ctrl+s", "o", "y")  # overwrite: the file as loaded (raw) with ours
        await pilot.pause()
        text = config.read_text()
        assert "OUTPUT_TYPE: other" not in text and "OUTPUT_TYPE: raw" in text and "tdnn1.affine" not in text
        config.write_bytes(b"CORENAME: GRUS\n\xff\xfe bad bytes\n")
        await pilot.press("x", "ctrl+s")
        assert app.is_running and any("no longer UTF-8" in m for _, _, m in app.messages)
        config.write_text("- the config became\n- a list\n")
        await pilot.press("ctrl+s", "k", "y")
        await pilot.pause()
        assert app.is_running and config.read_text() == "- the config became\n- a list\n"
        assert any("mapping" in m for _, severity, m in app.messages if severity == "error")


async def test_a_bug_keeps_the_unsaved_settings_beside_the_config(tmp_path, monkeypatch):
    import pytest

    config = copy_sample("kws_tdnn", tmp_path)
    original = config.read_text()
    app = make_app(config)

    def broken(self) -> None:
        raise RuntimeError("a bug")

    from npu_tui.tui.workbench_screen import WorkbenchScreen

    monkeypatch.setattr(WorkbenchScreen, "action_worst", broken)
    with pytest.raises(RuntimeError):
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            await pilot.press("x", "w")
            await pilot.pause()
    assert app.return_code == 1 and app.crash == "internal error: RuntimeError('a bug')"
    assert config.read_text() == original
    recovered = tmp_path / "config.yaml.recovered"
    assert app.recovered == recovered and "tdnn1.affine" in recovered.read_text()


async def test_n_steps_through_filter_matches_and_y_copies_the_name(tmp_path):
    app = make_app(copy_sample("kws_tdnn", tmp_path))
    copied: list[str] = []
    app.copy_to_clipboard = copied.append
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("slash", "t", "d", "n", "n", "enter")  # "tdnn": tdnn1.affine and tdnn2.affine
        assert app.main_screen.selected == "tdnn1.affine"
        await pilot.press("n")
        assert app.main_screen.selected == "tdnn2.affine"
        await pilot.press("n")
        assert app.main_screen.selected == "tdnn1.affine"  # wraps around
        await pilot.press("N")
        assert app.main_screen.selected == "tdnn2.affine"
        await pilot.press("y")
        assert copied == ["tdnn2.affine"]


async def test_alone_numbers_from_other_settings_are_marked_stale(tmp_path):
    from npu_tui.tui.weight_table import WeightTable

    app = make_app(copy_sample("kws_tdnn", tmp_path))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        tree = app.main(WeightTree)
        assert " a:1.5" in str(tree.leaves["tdnn1.affine"].label)
        await pilot.press("x")  # an edit: the alone numbers belong to the settings before it
        assert " a~1.5" in str(tree.leaves["tdnn1.affine"].label)
        await pilot.press("t")
        table = app.main(WeightTable)
        assert str(table.get_row_at(table.get_row_index("tdnn2.affine"))[1]).startswith("~")
        await pilot.press("u")  # back to the settings the numbers were measured with
        assert " a:1.5" in str(tree.leaves["tdnn1.affine"].label)


async def test_layer_chart_says_when_only_the_first_samples_are_measured(tmp_path, monkeypatch):
    from npu_tui.core.sim import layers as layers_module
    from npu_tui.tui.layer_view import LayerChart

    monkeypatch.setattr(layers_module, "LAYER_BYTES", 1)  # one sample's layers already exceed it
    app = make_app(copy_sample("kws_tdnn", tmp_path))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("d")
        await pilot.pause()
        assert "SQNR dB per layer (1/597 samples)" in app.main(LayerChart).render().plain


async def test_min_max_suggestion_is_previewed_marked_and_applied_with_enter(tmp_path):
    from textual.widgets import Input, OptionList

    app = make_app(copy_sample("kws_tdnn", tmp_path))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("m")
        dialog = app.screen
        before = dialog.query_one(Input).value
        options = dialog.query_one(OptionList)
        await until(pilot, lambda: options.option_count > 0, message=lambda: "the candidates were not ranked")
        assert not any(str(options.get_option_at_index(i).prompt).startswith(">") for i in range(options.option_count))
        await pilot.press("down")  # from the box to the best candidate: previewed, and marked without colour
        best = dialog.candidates[0]
        assert best.metric == max(c.metric for c in dialog.candidates) and best.label != "automatic"
        assert str(options.get_option_at_index(0).prompt).startswith(f">    {best.metric:.2%}  clips {best.clipped:6.2%}")
        assert dialog.query_one(Input).value != before
        assert f"would give accuracy {best.metric:.2%}, clips {best.clipped:.2%}" in shown(dialog.query_one("#minmax-preview"))
        await until(pilot, lambda: "x" in plot_area(app.main(HistogramView)))  # the histogram above shows what it saturates
        await pilot.press("enter")
        await pilot.pause()
        assert app.screen is not dialog
        assert app.workbench.settings.weight_min_max == {"tdnn1.affine": best.range}


async def test_a_picked_candidate_is_not_overwritten_by_the_typed_range_computed_before(tmp_path, monkeypatch):
    """The dialog opens computing the current range; a candidate picked before that answer comes keeps the
    box, the numbers and the histogram: the late answer belongs to a range no longer shown."""
    import threading

    from npu_tui.core.workbench import Workbench

    entered, release = threading.Event(), threading.Event()
    preview_range = Workbench.preview_range

    def held(self, *args, **kwargs):  # held before it takes the evaluator, so the ranking is not held with it
        entered.set()
        assert release.wait(DEADLINE), "the held preview was never let go"
        return preview_range(self, *args, **kwargs)

    monkeypatch.setattr(Workbench, "preview_range", held)
    app = make_app(copy_sample("kws_tdnn", tmp_path))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("m")
        dialog = app.screen
        await until(
            pilot, lambda: bool(dialog.candidates) and entered.is_set(), message=lambda: "the candidates, the first preview held"
        )
        await pilot.press("down")
        best = dialog.candidates[0]
        picked = f"would give accuracy {best.metric:.2%}, clips {best.clipped:.2%}"
        assert picked in shown(dialog.query_one("#minmax-preview"))
        release.set()
        await settle(pilot)  # the held preview has answered
        assert picked in shown(dialog.query_one("#minmax-preview"))
        assert "x" in plot_area(app.main(HistogramView))


async def test_a_bad_number_says_so_without_colour(tmp_path):
    from npu_tui.tui.weight_table import WeightTable

    app = make_app(copy_sample("kws_tdnn", tmp_path))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        leaves = app.main(WeightTree).leaves
        assert str(leaves["tdnn1.affine"].label).startswith("q 39.8 a:1.5! ")  # under 20 dB: marked
        assert str(leaves["tdnn2.affine"].label).startswith("q 42.4 a:44.8 ")
        await pilot.press("t")
        table = app.main(WeightTable)
        cells = {str(table.get_row(key)[4]): str(table.get_row(key)[1]) for key in table.rows}
        assert cells["tdnn1.affine"] == "1.5 dB!" and cells["tdnn2.affine"] == "44.8 dB"


async def test_the_details_panel_scrolls_to_its_last_line(tmp_path):
    from textual.containers import VerticalScroll

    app = make_app(copy_sample("kws_tdnn", tmp_path))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        panel = app.main("#details-panel", VerticalScroll)
        lines = shown(app.main(WeightDetails)).rstrip("\n").count("\n") + 1
        assert lines > panel.size.height  # at 80x24 the details do not fit
        for _ in range(4):
            if app.focused is panel:
                break
            await pilot.press("tab")
        assert app.focused is panel
        await pilot.press("end")
        await pilot.pause()
        assert panel.scroll_y == panel.max_scroll_y > 0
        assert panel.virtual_size.height >= lines  # every line, fused BN last, can be scrolled to


def dynamic_project(folder):
    """A model whose input has an open sequence length: no random data without INPUT_OPS."""
    model = make_model(
        [helper.make_node("MatMul", ["x", "w"], ["y"], name="fc")],
        [value("x", ["n", "seq", 3])],
        [value("y", None)],
        [tensor("w", np.random.default_rng(0).normal(size=(3, 4)).astype(np.float32))],
    )
    return write_project(folder, model, BASE_CONFIG)


async def test_r_reloads_the_config_after_the_user_adds_input_ops(tmp_path):
    from npu_tui.core.opening import DataChoice, open_workbench
    from npu_tui.tui.app import NpuTuiApp

    config = dynamic_project(tmp_path)
    app = NpuTuiApp(open_workbench(config, DataChoice()))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        summary = shown(app.main(ModelSummary))
        assert "no evaluation: model input 'x' has a dynamic dimension (seq)" in summary  # the CLI's hint, kept on screen
        assert "INPUT_OPS" in summary
        config.write_text(config.read_text() + "INPUT_OPS:\n  x: [1, 5, 3]\n")
        await pilot.press("R")
        await settle(pilot)
        assert app.workbench.evaluator is not None and app.workbench.evaluation is not None
        assert "output " in shown(app.main(ModelSummary)) and "error" not in shown(app.main(ModelSummary))


async def test_r_asks_before_dropping_unsaved_changes_and_keeps_a_broken_config_out(tmp_path):
    config = copy_sample("kws_tdnn", tmp_path)
    app = make_app(config)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("x", "R")
        assert "Drop them and reload" in shown(app.screen.query_one("Label"))
        assert "[n]o" in app.export_screenshot()  # the keys stay on screen at 80x24: the question wraps
        await pilot.press("n")
        assert app.workbench.settings.exclude == ("tdnn1.affine",)
        before = app.workbench
        config.write_text(config.read_text().replace("COMPRESS: true ", "COMPRESS: [oops ", 1))
        await pilot.press("R", "y")
        await pilot.pause()
        assert app.workbench is before and app.workbench.settings.exclude == ("tdnn1.affine",)
        assert any(m.startswith("not reloaded: ") and "config.yaml" in m for _, _, m in app.messages)
        config.write_text(config.read_text().replace("COMPRESS: [oops ", "COMPRESS: true ", 1))
        await pilot.press("R", "y")
        await settle(pilot)
        assert app.workbench is not before and app.workbench.settings.exclude == () and not app.workbench.dirty
        assert str(app.main(WeightTree).leaves["tdnn1.affine"].label).startswith("q 39.8 a:1.5!")


async def test_cut_names_keep_the_end_that_tells_them_apart(tmp_path):
    names = [f"p2o.pd_op.full_int_array.{i}.0_with_a_long_tail_{i}" for i in range(12)]
    rng = np.random.default_rng(1)
    nodes, current = [], "x"
    for i, name in enumerate(names):
        nodes.append(helper.make_node("MatMul", [current, name], [f"h{i}"], name=f"fc{i}"))
        current = f"h{i}"
    model = make_model(
        nodes,
        [value("x", ["n", 3])],
        [value(current, ["n", 3])],
        [tensor(n, rng.normal(size=(3, 3)).astype(np.float32)) for n in names],
    )
    app = make_app(write_project(tmp_path, model, BASE_CONFIG), with_data=False)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        tree = app.main(WeightTree)
        labels = [str(tree.leaves[n].label) for n in names]
        assert all("…" in label for label in labels)  # too long for the tree at 80 columns
        assert all(label.endswith(f"_tail_{i}") for i, label in enumerate(labels))  # the end tells them apart
        assert all(len(label) + 2 <= tree.scrollable_content_region.width for label in labels)


async def test_table_keys_act_on_the_highlighted_row(tmp_path):
    from npu_tui.tui.min_max_screen import MinMaxScreen
    from npu_tui.tui.weight_table import WeightTable

    app = make_app(copy_sample("kws_tdnn", tmp_path), with_data=False)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("t", "down")
        table = app.query_one(WeightTable)
        row = table.get_row_at(table.cursor_row)[4].plain
        assert row != "tdnn1.affine"  # the tree's weight is still tdnn1.affine
        await pilot.press("x")
        assert app.workbench.settings.exclude == (row,)
        assert table.get_row_at(table.cursor_row)[4].plain == row  # the cursor stays on its weight
        await pilot.press("r")
        assert app.workbench.settings.exclude == ()
        await pilot.press("m")
        assert isinstance(app.screen, MinMaxScreen) and app.screen.weight == row


async def until_fix_done(pilot, screen) -> None:
    await until(
        pilot, lambda: screen.result is not None and screen.search_worker is None, 60, lambda: "the fix search did not finish"
    )


async def test_after_a_fix_that_beats_float_no_alarm_remains(tmp_path):
    from npu_tui.tui.layer_view import LayerTable

    app = make_app(copy_sample("kws_tdnn", tmp_path))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert "!" in str(app.query_one(WeightTree).leaves["tdnn1.affine"].label)
        await pilot.press("F", "0", "enter")  # a drop of 0 points: not below float
        await until_fix_done(pilot, app.screen)
        await pilot.press("a")
        await settle(pilot)  # accepting re-tests: the marks come from the numbers of the accepted config
        assert not app.workbench.stale and not app.workbench.sensitivity_stale and not app.workbench.layers_stale
        assert app.workbench.evaluation.accuracy_npu >= app.workbench.evaluation.accuracy_float
        labels = [str(leaf.label) for leaf in app.query_one(WeightTree).leaves.values()]
        assert not any("!" in label for label in labels), labels
        assert "!" not in shown(app.query_one(ModelSummary))
        await pilot.press("d")
        await pilot.pause()
        rows = app.query_one(LayerTable)
        cells = [str(cell) for i in range(rows.row_count) for cell in rows.get_row_at(i)]
        assert rows.row_count and not any("!" in cell for cell in cells), cells
        await pilot.press("t")
        app.query_one(WeightTree).select_weight("output")
        await pilot.pause()
        await pilot.press("w")
        assert app.main_screen.selected == "output"
        assert "not below float" in str(list(app._notifications)[-1].message)


async def test_min_max_on_a_weight_holding_inf_is_a_message(tmp_path):
    from npu_tui.tui.min_max_screen import MinMaxScreen

    model = make_model(
        [helper.make_node("MatMul", ["x", "fc.weight"], ["y"], name="fc")],
        [value("x", ["n", 3])],
        [value("y", ["n", 2])],
        [tensor("fc.weight", np.array([[np.inf, 1.0], [0.5, 2.0], [1.0, 1.0]], np.float32))],
    )
    config = write_project(tmp_path, model, BASE_CONFIG.replace("COMPRESS: true\nCONV", "COMPRESS: false\nCONV"))
    app = make_app(config, with_data=False)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("m")
        await pilot.pause()
        assert app.is_running and not isinstance(app.screen, MinMaxScreen)
        assert "holds NaN or Inf" in str(list(app._notifications)[-1].message)


async def test_a_range_beyond_float32_typed_in_min_max_is_a_message(tmp_path):
    app = make_app(copy_sample("kws_tdnn", tmp_path), with_data=False)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("m")
        dialog = app.screen
        dialog.query_one("#minmax-input").value = "-1e39, 1e39"  # finite in float64, not in float32
        await until(pilot, lambda: "beyond fp16" in shown(dialog.query_one("#minmax-preview")))
        await pilot.press("enter")
        await pilot.pause()
        assert app.is_running and app.screen is dialog and app.workbench.settings.weight_min_max == {}


async def test_fix_targets_that_overflow_the_plot_are_messages(tmp_path):

    app = make_app(copy_sample("kws_tdnn", tmp_path))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("F")
        screen = app.screen
        for target, why in (("sqnr 1e308", "dB"), ("agree -1e308", "between 0 and 100")):
            screen.query_one("#fix-target").value = target
            await pilot.press("enter")
            await pilot.pause()
            assert app.is_running and app.screen is screen and screen.search_worker is None, target
            assert why in str(screen.query_one("#fix-status").render()), target


async def test_names_and_paths_never_reach_the_terminal_raw(tmp_path):
    """Tooltip, title, save question and diff: a name holding ESC ] 0; (retitle the terminal) is spelled out."""
    from npu_tui.tui.confirm_screens import ConfirmScreen

    name = "w\x1b]0;pwned\x07.weight"
    config = write_project(tmp_path / "cfg\x1b]0;t\x07", named_matmul(name, "fc"), BASE_CONFIG)
    app = make_app(config, with_data=False)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        tree = app.query_one(WeightTree)
        tree.select_weight(name)
        await pilot.pause()
        assert tree.tooltip is not None and "w\\x1b]0;pwned\\x07.weight" in str(tree.tooltip)
        assert "\\x1b]0;t\\x07" in app.sub_title
        await pilot.press("x", "ctrl+s")
        assert isinstance(app.screen, ConfirmScreen)
        shown_text = "".join(str(w.render()) for w in app.screen.query("Static"))
        assert "cfg\\x1b]0;t\\x07" in shown_text
        for text in (str(tree.tooltip), app.sub_title, shown_text, app.export_screenshot()):
            assert "\x1b" not in text and "\x07" not in text


def long_named_chain(folder, names):
    """A chain of MatMuls whose weights have the given names (no data)."""
    rng = np.random.default_rng(3)
    nodes, current = [], "x"
    for i, name in enumerate(names):
        nodes.append(helper.make_node("MatMul", [current, name], [f"h{i}"], name=f"mm{i}"))
        current = f"h{i}"
    inits = [tensor(n, rng.normal(size=(4, 4)).astype(np.float32)) for n in names]
    return write_project(folder, make_model(nodes, [value("x", ["n", 4])], [value(current, ["n", 4])], inits), BASE_CONFIG)


async def test_table_names_take_the_remaining_width_and_stay_distinct(tmp_path):
    from npu_tui.tui.weight_table import WeightTable

    names = [f"backbone/stage{s}/block{b}/conv/weight" for s in range(3) for b in range(4)]
    app = make_app(long_named_chain(tmp_path, names), with_data=False)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("t")
        await pilot.pause()
        table = app.query_one(WeightTable)
        shown_names = [table.get_row_at(i)[4].plain for i in range(table.row_count)]
        assert len(set(shown_names)) == len(names), shown_names
        widths = sum(c.get_render_width(table) for c in table.columns.values())
        room = table.scrollable_content_region.width
        assert room - 2 <= widths <= room  # the name column ends inside the table and uses the room there is
        assert not table.show_horizontal_scrollbar


async def test_the_tree_recuts_to_its_real_width_after_a_filter(tmp_path):
    names = [f"onnx::Conv_weight_quantized_{i}" for i in range(300, 340)]  # more rows than the tree's height
    app = make_app(long_named_chain(tmp_path, names), with_data=False)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        tree = app.query_one(WeightTree)
        before = {n: str(leaf.label) for n, leaf in tree.leaves.items()}
        assert all(len(label) <= tree.scrollable_content_region.width for label in before.values())
        await pilot.press("slash", "3", "3")  # a few rows: no scrollbar
        await pilot.pause()
        await pilot.press("escape")
        await pilot.pause()
        await pilot.pause()
        after = {n: str(leaf.label) for n, leaf in tree.leaves.items()}
        assert after == before
        assert len({label.split()[-1] for label in after.values()}) == len(names)  # rows told apart


def footer_keys(app) -> set[str]:
    """The keys whose footer entry is wholly on screen."""
    from textual.widgets._footer import FooterKey

    width = app.size.width
    return {k.key for k in app.screen.query(FooterKey) if k.region.width and k.region.right <= width}


async def test_the_80_column_footer_shows_the_keys_of_the_loop(tmp_path):
    app = make_app(copy_sample("kws_tdnn", tmp_path), with_data=False)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert {"ctrl+r", "ctrl+s", "u", "t", "d", "F", "slash", "question_mark", "q"} <= footer_keys(app)


async def test_j_k_move_in_both_tables_and_escape_goes_back_to_the_weight(tmp_path):
    from npu_tui.tui.layer_view import LayerTable
    from npu_tui.tui.weight_table import WeightTable

    app = make_app(copy_sample("kws_tdnn", tmp_path))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        tabs = app.main(TabbedContent)
        await pilot.press("t", "j", "j")
        assert app.main(WeightTable).cursor_row == 2
        await pilot.press("k")
        assert app.main(WeightTable).cursor_row == 1
        await pilot.press("escape")
        assert tabs.active == "tab-weight" and app.query_one(WeightTree).has_focus
        app.query_one(WeightTree).select_weight("tdnn1.affine")  # the first layer
        await pilot.press("d", "j", "j")
        rows = app.main(LayerTable)
        assert rows.has_focus and rows.cursor_row == 2
        await pilot.press("k")
        assert rows.cursor_row == 1
        await pilot.press("escape")
        assert tabs.active == "tab-weight" and app.query_one(WeightTree).has_focus


async def test_q_in_the_fix_screen_leaves_it(tmp_path):
    from npu_tui.tui.fix_screen import FixScreen

    app = make_app(copy_sample("kws_tdnn", tmp_path))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("F")
        screen = app.screen
        screen.query_one("#fix-plot").focus()  # not the target box, which takes q as text
        await pilot.press("q")
        await pilot.pause()
        assert app.is_running and not isinstance(app.screen, FixScreen)


async def test_focus_shows_without_colour(tmp_path, monkeypatch):
    """Under NO_COLOR the cursor of the focused list is reversed, the other's is not."""
    from npu_tui.tui.weight_table import WeightTable

    monkeypatch.setenv("NO_COLOR", "1")
    app = make_app(copy_sample("kws_tdnn", tmp_path), with_data=False)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        tree = app.query_one(WeightTree)
        assert app.no_color and tree.has_focus
        assert tree.get_component_rich_style("tree--cursor").reverse
        assert tree.styles.border_top[0] != "round"  # the focused panel's border changes shape, not only colour
        await pilot.press("t")
        await pilot.pause()
        table = app.main(WeightTable)
        assert table.has_focus and table.get_component_rich_style("datatable--cursor").reverse
        assert not tree.get_component_rich_style("tree--cursor").reverse


async def test_top1_is_labelled_as_agreement(tmp_path):
    app = make_app(copy_sample("kws_tdnn", tmp_path))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert "top-1 agreement 29.0%" in shown(app.query_one(ModelSummary))


async def test_the_min_max_dialog_computes_in_a_worker_and_leaves_the_histogram_in_view(tmp_path, monkeypatch):
    import threading

    from npu_tui.core.workbench import Workbench
    from npu_tui.tui.min_max_screen import MinMaxScreen

    threads = []
    for method in ("range_candidates", "preview_range"):
        original = getattr(Workbench, method)

        def recorded(self, *args, _original=original, **kwargs):
            threads.append(threading.current_thread())
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(Workbench, method, recorded)
    app = make_app(copy_sample("kws_tdnn", tmp_path))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("m")
        dialog = app.screen
        assert isinstance(dialog, MinMaxScreen)
        await until(pilot, lambda: dialog.candidates and "would give" in shown(dialog.query_one("#minmax-preview")))
        assert len(threads) >= 2 and threading.main_thread() not in threads  # never on the UI thread
        histogram = app.main(HistogramView)
        box = dialog.query_one("Vertical")
        assert histogram.region.height >= 6 and not box.region.overlaps(histogram.region)


async def test_the_histogram_title_uses_its_width_after_an_edit_in_the_table(tmp_path):
    """An edit made in the Table draws the hidden histogram; back on the Weight tab its title is cut
    to the width it has there, not to the hidden tab's."""
    app = make_app(copy_sample("kws_tdnn", tmp_path), with_data=False)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("t", "j", "x", "escape")  # prefinal-l: second by SQNR
        assert app.main_screen.selected == "prefinal-l"
        await drawn(pilot, app)
        title = next(line.strip() for line in app.main(HistogramView).render().plain.splitlines() if line.strip())
        assert title == "prefinal-l  (log10 counts)"


async def test_an_excluded_weight_holding_nan_blocks_neither_the_sweep_nor_f(tmp_path):
    from test_hostile_models import nan_in_a_dead_unit

    from npu_tui.tui.fix_screen import FixScreen

    config = write_project(tmp_path, nan_in_a_dead_unit(), BASE_CONFIG + "EXCLUDE_COMPRESS_OPS: [fc]\n")
    np.savez(tmp_path / "eval.npz", x=np.random.default_rng(0).normal(size=(8, 3, 6)).astype(np.float32))
    app = make_app(config)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.workbench.sweep_complete, limit=60, message=lambda: "the sweep did not complete")
        assert not [n.message for n in app._notifications if n.severity == "error"]
        assert set(app.workbench.sensitivity) == {"conv1.weight"}  # fc.weight cannot be quantized: gxnpuc would crash on its NaN
        await until(pilot, lambda: app.main_screen.running is None)
        await pilot.press("F", "1", "enter")
        screen = app.screen
        assert isinstance(screen, FixScreen)
        await until(
            pilot,
            lambda: screen.result is not None and screen.search_worker is None,
            limit=60,
            message=lambda: str(screen.query_one("#fix-status").render()),
        )
        assert "failed" not in str(screen.query_one("#fix-status").render())


async def test_fix_screen_names_each_paths_start_and_marks_the_switch_rows(tmp_path):
    from npu_tui.tui.fix_screen import FixPlot, FixScreen

    app = make_app(copy_sample("kws_tdnn", tmp_path))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("F", "1", "enter")
        screen = app.screen
        assert isinstance(screen, FixScreen)
        await until(pilot, lambda: screen.result is not None and screen.search_worker is None, limit=60)
        log = str(screen.query_one("#fix-log").render())
        assert "path from as configured:" in log
        measured = [row for row in screen.result.localization if row["measured"]]
        assert sum(v.row for v in screen.visits) == len(measured) >= 2  # the user's row and the cheapest that meets
        plot = str(screen.query_one(FixPlot).render())
        assert "switch rows" in plot and "S" in plot


async def test_esc_in_the_ranking_sweep_keeps_the_best_so_far_and_a_accepts_it(tmp_path, monkeypatch):
    from npu_tui.tui.fix_screen import FixScreen

    app = make_app(copy_sample("kws_tdnn", tmp_path))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        gate = Gate(monkeypatch, "search", free=0)  # from here: the search's runs go one at a time
        await pilot.press("F", "1", "enter")
        screen = app.screen
        assert isinstance(screen, FixScreen)
        status = screen.query_one("#fix-status")
        while "ranking the weights from as configured:" not in str(status.render()):
            await until(pilot, lambda: gate.held == 1, message=lambda: f"the search's next run (status: {status.render()})")
            await pilot.pause()
            if "ranking the weights from as configured:" not in str(status.render()):
                gate.release_held()
        assert screen.running is not None and screen.running.sweeps == 1
        await pilot.press("escape")  # in the ranking sweep, one of its runs held
        gate.open()
        await until(pilot, lambda: screen.search_worker is None, limit=60)
        shown = str(screen.query_one("#fix-status").render())
        assert "failed" not in shown and "stopped: best so far, target met" in shown, shown
        await pilot.press("a")
        await pilot.pause()
        assert not isinstance(app.screen, FixScreen)
        assert app.workbench.settings.key() == screen.result.settings.key()


async def test_a_depthwise_kernel_says_gxnpuc_never_compresses_it(tmp_path):
    """Marked `n` in the tree and said in the histogram's title and the details, whatever the config."""
    from npu_tui.tui.details import WeightDetails
    from npu_tui.tui.weight_tree import WeightTree

    rng = np.random.default_rng(0)
    model = make_model(
        [helper.make_node("Conv", ["x", "dw.weight"], ["y"], name="dw", group=4)],
        [value("x", ["n", 4, 6, 6])],
        [value("y", ["n", 4, 4, 4])],
        [tensor("dw.weight", rng.normal(size=(4, 1, 3, 3)).astype(np.float32))],
    )
    app = make_app(write_project(tmp_path, model, BASE_CONFIG), with_data=False)
    async with app.run_test(size=SIZE) as pilot:
        await drawn(pilot, app)
        tree = app.main(WeightTree)
        assert str(tree.cursor_node.label).startswith("n ")
        assert "fp16: depthwise, never compressed" in app.main(HistogramView).render().plain
        assert "fp16 always (depthwise_never_compressed)" in str(app.main(WeightDetails).render())


async def test_an_onnx_softmax_is_a_warning_in_the_messages(tmp_path):
    """What gxnpuc will refuse once the ONNX model is a TensorFlow graph is said like a config warning."""
    model = make_model(
        [
            helper.make_node("MatMul", ["x", "fc.weight"], ["h"], name="fc"),
            helper.make_node("Softmax", ["h"], ["y"], name="head"),
        ],
        [value("x", [1, 3])],
        [value("y", [1, 2])],
        [tensor("fc.weight", np.ones((3, 2), np.float32))],
    )
    app = make_app(write_project(tmp_path, model, BASE_CONFIG), with_data=False)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        said = [m for _, severity, m in app.messages if severity == "warning" and "once it is a TensorFlow graph" in m]
        assert len(said) == 1 and "node 'head' (Softmax): Softmax is not an op GRUS runs" in said[0]


def cursor_weight(app) -> str | None:
    node = app.main(WeightTree).cursor_node
    return node.data if node is not None else None


async def test_the_filter_keeps_the_tree_cursor_on_the_weight_the_keys_act_on(tmp_path):
    """x acts on the selected weight: whatever the filter shows, it is the one under the tree's cursor."""
    app = make_app(copy_sample("kws_tdnn", tmp_path), with_data=False)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("j", "j", "j")
        assert app.main_screen.selected == cursor_weight(app) == "output"
        await pilot.press("slash", "t", "d", "enter")  # "output" is filtered out: the cursor's weight is selected
        assert set(app.main(WeightTree).leaves) == {"tdnn1.affine", "tdnn2.affine"}
        assert app.main_screen.selected == cursor_weight(app) == "tdnn1.affine"
        await pilot.press("j", "x")
        assert app.workbench.settings.exclude == ("tdnn2.affine",)
        assert str(app.main(WeightTree).leaves["tdnn2.affine"].label).startswith("x ")
        await pilot.press("escape")  # the filter cleared: the cursor stays on the weight
        await pilot.pause()
        assert len(app.main(WeightTree).leaves) == 4
        assert app.main_screen.selected == cursor_weight(app) == "tdnn2.affine"
        assert str(app.main(WeightTree).leaves["tdnn2.affine"].label).startswith("x ")
        await pilot.press("slash", "o", "u", "t", "enter", "u")  # undo under a filter relabels what it shows
        assert app.workbench.settings.exclude == ()
        assert app.main_screen.selected == cursor_weight(app) == "output"
        await pilot.press("R")  # a reload clears the filter and keeps the selection on the cursor
        await pilot.pause()
        assert len(app.main(WeightTree).leaves) == 4 and app.main("#filter").value == ""
        assert app.main_screen.selected == cursor_weight(app) == "output"


async def test_the_tree_starts_with_its_cursor_on_the_selected_weight_inside_a_group(tmp_path):
    names = [f"backbone/stage{s}/conv/weight" for s in range(3)]
    app = make_app(long_named_chain(tmp_path, names), with_data=False)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert app.main_screen.selected == cursor_weight(app) == names[0]
        await pilot.press("j")
        assert app.main_screen.selected == cursor_weight(app) == names[1]


async def test_a_tab_opened_with_the_mouse_shows_the_numbers_of_now(tmp_path):
    from npu_tui.tui.weight_table import WeightTable

    app = make_app(copy_sample("kws_tdnn", tmp_path), with_data=False)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("x")  # tdnn1.affine
        await pilot.click("#--content-tab-tab-table")
        table = app.main(WeightTable)
        await until(pilot, lambda: table.row_count == 4, message=lambda: f"the table's rows (now {table.row_count})")
        marks = {table.get_row_at(i)[4].plain: table.get_row_at(i)[0].plain for i in range(4)}
        assert marks["tdnn1.affine"].startswith("x ")
        await pilot.click("#--content-tab-tab-weight")
        await pilot.press("u")
        await pilot.click("#--content-tab-tab-table")
        await until(
            pilot,
            lambda: any(table.get_row_at(i)[0].plain.startswith("q 39.8") for i in range(table.row_count)),
            message=lambda: "the table to show the undone exclude",
        )


async def test_chip_warnings_are_in_the_summary_and_w_lists_them_whole(tmp_path):
    from npu_tui.tui.warnings_screen import WarningsScreen

    app = make_app(chip_warning_model(tmp_path, with_softmax=True), with_data=False)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.pause()
        summary = app.main(ModelSummary)
        assert summary.region.height == 3  # a line of its own: the numbers' two lines stay whole
        last = shown(summary).splitlines()[-1]
        assert last.startswith("3 warnings (W): Sub '[bold]gate[/bold]': c - x")  # literal, never markup
        assert "[bold]gate[/bold]" in app.export_screenshot().replace("&#160;", " ")
        await pilot.press("x")  # an edit: the warnings line stays (stale numbers never push it off)
        await pilot.pause()
        assert shown(summary).splitlines()[-1].startswith("3 warnings (W)")
        await pilot.press("W")
        assert isinstance(app.screen, WarningsScreen)
        await pilot.pause()
        text = " ".join(shown(s) for s in app.screen.query("Static"))
        assert "Sub '[bold]gate[/bold]': c - x with the scalar constant c = 1 first; gxnpuc compiles it as x - c" in text
        assert "Pow 'square': the chip computes x^c as exp(ln(x) * c) (c = 2), which is NaN wherever x < 0" in text
        assert "node 'head' (Softmax): Softmax is not an op GRUS runs" in text
        await pilot.press("escape")
        assert not isinstance(app.screen, WarningsScreen)


async def test_a_model_without_chip_warnings_keeps_a_two_line_summary_and_w_says_so(tmp_path):
    app = make_app(copy_sample("kws_tdnn", tmp_path), with_data=False)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert app.main(ModelSummary).region.height == 2 and "warning" not in shown(app.main(ModelSummary))
        await pilot.press("W")
        await pilot.pause()
        assert any("no warnings" in m for _, _, m in app.messages)


async def test_the_stale_summary_keeps_its_byte_line_at_80_columns(tmp_path):
    """After an edit the model numbers are stale: the line saying so fits, the sizes the edit changed stay."""
    app = make_app(copy_sample("kws_tdnn", tmp_path))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("x")
        await pilot.pause()
        screen = app.export_screenshot().replace("&#160;", " ")
        assert "(stale: ctrl+r)" in screen and "NPU 19,850 B of fp16" in screen


async def test_the_histogram_says_why_a_one_input_channel_kernel_is_fp16_whole(tmp_path):
    from npu_tui.tui.labels import why_fp16

    rng = np.random.default_rng(0)
    model = make_model(
        [helper.make_node("Conv", ["x", "conv.weight"], ["y"], name="conv")],
        [value("x", ["n", 1, 6, 6])],
        [value("y", ["n", 4, 4, 4])],
        [tensor("conv.weight", rng.normal(size=(4, 1, 3, 3)).astype(np.float32))],
    )
    app = make_app(write_project(tmp_path, model, BASE_CONFIG), with_data=False)
    async with app.run_test(size=SIZE) as pilot:
        await drawn(pilot, app)
        why = why_fp16(app.workbench.result("conv.weight"))
        assert "one input channel" in why or "1 input channel" in why
        lines = [line.strip() for line in app.main(HistogramView).render().plain.splitlines()]
        assert why in lines and not any("…" in line for line in lines)
