"""Hostile files and folders: nothing but regular files is read, and no write follows a planted link,
lands on an input or leaves a partial file."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from clirun import npu_tui
from modelkit import BASE_CONFIG, conv_bn_fc, write_project
from tui_kit import copy_sample

VICTIM = "precious user data\n"


def project(folder: Path) -> Path:
    return write_project(folder, conv_bn_fc(np.random.default_rng(0)), BASE_CONFIG)


@pytest.mark.parametrize("kind", ["fifo", "device", "socket", "folder"])
@pytest.mark.parametrize("role", ["config", "model", "data"])
def test_only_regular_files_are_read(tmp_path, kind, role):
    config = project(tmp_path)
    odd = tmp_path / f"odd_{role}"
    if kind == "fifo":
        os.mkfifo(odd)
    elif kind == "device":
        odd = Path("/dev/zero")
    elif kind == "socket":
        import socket

        server = socket.socket(socket.AF_UNIX)
        server.bind(str(odd))
    else:
        odd.mkdir()
    if role == "config":
        args = ["compile", str(odd)]
    elif role == "model":
        config.write_text(BASE_CONFIG.replace("ONNX_FILE: model.onnx", f"ONNX_FILE: {odd}"))
        args = ["compile", str(config)]
    else:
        args = ["eval", str(config), "--data", str(odd)]
    result = npu_tui(*args)  # a read of a FIFO would hang past clirun's timeout
    assert result.returncode == 2, result.stderr
    assert ("not a regular file" in result.stderr) or ("is a folder" in result.stderr)
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("target", ["config.yaml", "model.onnx", "model.h"])
def test_sim_never_overwrites_an_input(tmp_path, target):
    config = project(tmp_path)
    (tmp_path / "model.h").write_text(VICTIM)
    before = (tmp_path / target).read_bytes()
    link = tmp_path / "innocent.onnx"
    link.symlink_to(tmp_path / target)
    for path in (tmp_path / target, link):
        result = npu_tui("compile", str(config), "--sim", str(path))
        assert result.returncode == 2 and "choose another path" in result.stderr
    assert (tmp_path / target).read_bytes() == before


def test_a_link_planted_at_the_output_is_replaced_not_followed(tmp_path):
    config = project(tmp_path)
    victim = tmp_path / "victim.txt"
    victim.write_text(VICTIM)
    (tmp_path / "sim.onnx").symlink_to(victim)
    jpgs = tmp_path / "h"
    jpgs.mkdir()
    (jpgs / "0001_conv1.weight.jpg").symlink_to(victim)
    (jpgs / "index.json").symlink_to(victim)
    result = npu_tui("compile", str(config), "--sim", str(tmp_path / "sim.onnx"), "-s", "--hist-dir", str(jpgs))
    assert result.returncode == 0, result.stderr
    assert victim.read_text() == VICTIM
    assert not (tmp_path / "sim.onnx").is_symlink() and (tmp_path / "sim.onnx").stat().st_size > 0
    assert not (jpgs / "0001_conv1.weight.jpg").is_symlink()
    assert not [p for p in tmp_path.rglob("*.tmp")]  # no temporary file left


def test_a_symlinked_config_is_saved_where_it_points(tmp_path):
    real = tmp_path / "real"
    real.mkdir()
    config = copy_sample("kws_tdnn", real)
    link = real / "current.yaml"  # the usual way: a link naming the config in use
    link.symlink_to(config)
    (real / "config.yaml.bak").symlink_to(tmp_path / "victim.txt")
    (tmp_path / "victim.txt").write_text(VICTIM)
    result = npu_tui("fix", str(link), "--max-drop", "1", "--write")
    assert result.returncode == 0, result.stderr
    assert link.is_symlink() and "WEIGHT_MIN_MAX" in config.read_text()
    assert (tmp_path / "victim.txt").read_text() == VICTIM
    assert "WEIGHT_MIN_MAX" not in (real / "config.yaml.bak").read_text()
    assert not (real / "config.yaml.bak").is_symlink()


def test_output_folder_or_empty_name_is_refused(tmp_path):
    config = project(tmp_path)
    (tmp_path / "out").mkdir()
    result = npu_tui("compile", str(config), "--sim", str(tmp_path / "out"))
    assert result.returncode == 2 and "is a folder" in result.stderr
    shutil.rmtree(tmp_path / "out")


def test_fix_write_refuses_a_read_only_config_before_searching(tmp_path):
    config = copy_sample("kws_tdnn", tmp_path)
    before = config.read_bytes()
    os.chmod(config, 0o444)
    result = npu_tui("fix", str(config), "--max-drop", "1", "--write")
    assert result.returncode == 2 and result.stderr.startswith("error: ") and len(result.stderr.splitlines()) == 1
    assert "config.yaml: is read-only (mode 0444)" in result.stderr and "chmod u+w" in result.stderr
    assert config.read_bytes() == before and not (tmp_path / "config.yaml.bak").exists()
    assert oct(config.stat().st_mode & 0o777) == "0o444"


async def test_ctrl_s_refuses_a_read_only_config_and_says_so(tmp_path):
    from tui_kit import make_app, settle

    config = copy_sample("kws_tdnn", tmp_path)
    before = config.read_bytes()
    app = make_app(config)
    os.chmod(config, 0o444)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("x", "ctrl+s")
        await pilot.pause()
        assert app.screen is app.main_screen  # no diff to confirm: nothing can be written
        assert any("is read-only (mode 0444)" in str(n.message) for n in app._notifications)
        with pytest.raises(Exception, match="read-only"):
            app.workbench.save()
    assert config.read_bytes() == before and not (tmp_path / "config.yaml.bak").exists()


def test_saving_a_crlf_config_keeps_crlf_and_the_backup_is_the_previous_bytes(tmp_path):
    config = copy_sample("kws_tdnn", tmp_path)
    before = config.read_bytes().replace(b"\n", b"\r\n")
    config.write_bytes(before)
    result = npu_tui("fix", str(config), "--max-drop", "1", "--write")
    assert result.returncode == 0, result.stderr
    after = config.read_bytes()
    assert after != before and b"WEIGHT_MIN_MAX" in after
    assert after.count(b"\n") == after.count(b"\r\n")  # every line ends in CRLF, the new ones too
    assert (tmp_path / "config.yaml.bak").read_bytes() == before
    assert "\r" not in result.stdout  # the diff shown is text, not carriage returns


def _open_sample_copy(data: Path):
    """`npu-tui` with no CONFIG, stopped before the screen opens by a data file that is not there."""
    return npu_tui("--data", str(data / "missing.npz"), env={"XDG_DATA_HOME": str(data)})


@pytest.mark.parametrize("planted", ["sample_folder", "app_folder", "config_file"])
def test_the_sample_copy_never_writes_through_a_planted_link(tmp_path, planted):
    data, mine = tmp_path / "data", tmp_path / "mine"
    mine.mkdir()
    for name in ("model.pb", "eval.npz"):
        (mine / name).write_text(VICTIM)
    if planted == "sample_folder":
        (data / "npu-tui").mkdir(parents=True)
        (data / "npu-tui" / "kws_tdnn_pb").symlink_to(mine)
    elif planted == "app_folder":
        data.mkdir()
        (data / "npu-tui").symlink_to(mine)
    else:
        (data / "npu-tui" / "kws_tdnn_pb").mkdir(parents=True)
        (data / "npu-tui" / "kws_tdnn_pb" / "config.yaml").symlink_to(mine / "model.pb")
    result = _open_sample_copy(data)
    assert result.returncode == 2 and result.stderr.startswith("error: ") and len(result.stderr.splitlines()) == 1
    assert "is a symbolic link, which npu-tui did not make" in result.stderr
    assert sorted(p.name for p in mine.iterdir()) == ["eval.npz", "model.pb"]
    assert all((mine / name).read_text() == VICTIM for name in ("model.pb", "eval.npz"))
