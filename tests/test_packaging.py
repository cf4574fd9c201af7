"""A normal install: the wheel carries the samples, and `npu-tui` without a config opens a copy of
one where saving can write, never a path of the source checkout."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """The package as `pip install .` lays it out (its dependencies come from this environment)."""
    build, source = tmp_path_factory.mktemp("wheel"), tmp_path_factory.mktemp("source") / "npu-tui"
    skip = shutil.ignore_patterns(".*", "build", "*.egg-info", "benchmarks", "tests", "__pycache__")
    shutil.copytree(ROOT, source, ignore=skip)  # setuptools builds in the tree it is given
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(build), str(source)],
        check=True,
        capture_output=True,
        timeout=600,
    )
    wheel = next(build.glob("npu_tui-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {f"npu_tui/samples/kws_tdnn_pb/{n}" for n in ("config.yaml", "model.pb", "eval.npz")} <= names
    target = tmp_path_factory.mktemp("site")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
        check=True,
        capture_output=True,
        timeout=600,
    )
    return target


def run(installed: Path, cwd: Path, *args: str, home: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(installed), "XDG_DATA_HOME": str(home)}
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_without_a_config_the_installed_sample_is_copied_and_opened(installed, tmp_path):
    code = "from npu_tui.cli import bundled_sample; import npu_tui; print(npu_tui.__file__); print(bundled_sample())"
    first = run(installed, tmp_path, "-c", code, home=tmp_path / "data")
    assert first.returncode == 0, first.stderr
    package, config = first.stdout.split()
    assert package.startswith(str(installed))  # the installed copy, not the checkout
    assert Path(config) == tmp_path / "data" / "npu-tui" / "kws_tdnn_pb" / "config.yaml"
    assert "the bundled sample is copied to" in first.stderr
    Path(config).write_text(Path(config).read_text() + "# mine\n")
    again = run(installed, tmp_path, "-c", code, home=tmp_path / "data")
    assert again.stdout.split()[1] == config and again.stderr == ""
    assert Path(config).read_text().endswith("# mine\n")  # what the user saved is kept
    compiled = run(installed, tmp_path, "-m", "npu_tui", "compile", config, home=tmp_path / "data")
    assert compiled.returncode == 0, compiled.stderr
    assert "NPU" in compiled.stdout


def test_a_sample_folder_that_cannot_be_made_is_one_line_and_exit_2(installed, tmp_path):
    blocker = tmp_path / "data"
    blocker.write_text("a file where the folder would go")
    result = run(installed, tmp_path, "-m", "npu_tui", home=blocker)
    assert result.returncode == 2
    assert result.stderr.startswith("error: ") and "cannot copy the bundled sample there" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_checkout_without_a_config_opens_a_copy_of_the_sample_too(tmp_path):
    from clirun import npu_tui

    sample = ROOT / "sample_models" / "kws_tdnn_pb"
    before = {p.name: p.read_bytes() for p in sample.iterdir()}
    result = npu_tui("--data", str(tmp_path / "missing.npz"), env={"XDG_DATA_HOME": str(tmp_path / "data")})
    copy = tmp_path / "data" / "npu-tui" / "kws_tdnn_pb"
    assert f"the bundled sample is copied to {copy}" in result.stderr
    assert (copy / "config.yaml").read_bytes() == before["config.yaml"]
    assert {p.name: p.read_bytes() for p in sample.iterdir()} == before


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_run_opens_the_copy_not_the_checkout():
    recipe = subprocess.run(["make", "-n", "-W", ".venv/bin/python", "run"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    command = [line for line in recipe.stdout.splitlines() if "npu-tui" in line and "pip" not in line]
    assert command == [".venv/bin/npu-tui"], recipe.stdout
