"""Hostile inputs: graphs that loop or nest deep, YAML that expands or repeats itself, numbers that
do not survive, data that lies. Each ends in one clear line or a result, quickly."""

from __future__ import annotations

import subprocess
import sys
from functools import partial
from pathlib import Path

import numpy as np
import pytest
import yaml
from clirun import npu_tui
from modelkit import BASE_CONFIG, make_model, tensor, value, write_project
from onnx import helper

from npu_tui.core.config.writer import render_config, yaml_float
from npu_tui.core.model.inventory import build_inventory
from npu_tui.core.quant.settings import Settings


def test_a_cycle_of_pass_through_nodes_ends():
    # w -> Identity(a) -> Identity(b) -> a: an invalid graph a careless export can still hold
    model = make_model(
        [
            helper.make_node("Identity", ["b"], ["a"], name="id_a"),
            helper.make_node("Identity", ["a"], ["b"], name="id_b"),
            helper.make_node("MatMul", ["x", "a"], ["y"], name="fc"),
        ],
        [value("x", [1, 2])],
        [value("y", [1, 2])],
    )
    inventory = build_inventory(model)
    assert inventory.weights == []


def test_a_very_long_constant_chain_folds_without_recursion():
    count = 5000
    nodes = [helper.make_node("Neg", [f"c{i}"], [f"c{i + 1}"], name=f"neg{i}") for i in range(count)]
    nodes.append(helper.make_node("MatMul", ["x", f"c{count}"], ["y"], name="fc"))
    model = make_model(nodes, [value("x", [1, 2])], [value("y", [1, 2])], [tensor("c0", np.eye(2, dtype=np.float32))])
    inventory = build_inventory(model)
    assert [w.name for w in inventory.weights] == [f"c{count}"] and inventory.weights[0].origin == "folded"
    np.testing.assert_array_equal(inventory.arrays[f"c{count}"], np.eye(2, dtype=np.float32))


@pytest.mark.parametrize(
    "text, expected",
    [
        (
            "a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: [*b, *b, *b, *b, *b, *b, *b, *b]\n",
            "YAML aliases (*a) are not allowed",
        ),
        ("CORENAME: GRUS\nCORENAME: LEO\n", "CORENAME is given again"),
        ("CORENAME: GRUS\nFUSE_BN: [" + "1, " * 100_000 + "1]\n", "is not a bool"),
    ],
    ids=["alias_bomb", "duplicate_key", "huge_value_in_a_message"],
)
def test_yaml_that_expands_or_repeats(tmp_path, text, expected):
    model = make_model(
        [helper.make_node("MatMul", ["x", "w"], ["y"], name="fc")],
        [value("x", [1, 2])],
        [value("y", [1, 2])],
        [tensor("w", np.eye(2, dtype=np.float32))],
    )
    config = write_project(tmp_path, model, BASE_CONFIG.replace("CORENAME: GRUS\n", "") + text)
    result = npu_tui("compile", str(config))
    assert expected in result.stderr and len(result.stderr) < 2000


@pytest.mark.parametrize("number", [-3e-05, 1e-300, 2.5e17, -19.2, 0.0])
def test_ranges_are_written_as_yaml_11_numbers(number):
    assert yaml.safe_load(yaml_float(number)) == number
    text = render_config(BASE_CONFIG, Settings(compress=True, conv2d_compress=True, weight_min_max={"fc": (number - 1, number)}))
    assert yaml.safe_load(text)["WEIGHT_MIN_MAX"]["fc"] == [number - 1, number]


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_eval_data_with_nan_or_inf_is_refused(tmp_path, bad):
    model = make_model(
        [helper.make_node("MatMul", ["x", "w"], ["y"], name="fc")],
        [value("x", ["n", 2])],
        [value("y", ["n", 2])],
        [tensor("w", np.eye(2, dtype=np.float32))],
    )
    config = write_project(tmp_path, model, BASE_CONFIG)
    x = np.ones((4, 2), np.float32)
    x[2, 1] = bad
    np.savez(tmp_path / "d.npz", x=x)
    result = npu_tui("eval", str(config), "--data", str(tmp_path / "d.npz"), "--json")
    assert result.returncode == 2 and "holds 1 NaN or infinite values" in result.stderr


def test_an_npz_whose_header_lies_is_refused_before_reading(tmp_path):
    import io
    import zipfile

    model = make_model(
        [helper.make_node("MatMul", ["x", "w"], ["y"], name="fc")],
        [value("x", ["n", 2])],
        [value("y", ["n", 2])],
        [tensor("w", np.eye(2, dtype=np.float32))],
    )
    config = write_project(tmp_path, model, BASE_CONFIG)
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": "<f4", "fortran_order": False, "shape": (1 << 20, 1 << 16)})
    buffer.write(b"\0" * 64)  # a few bytes behind a header that claims 256 GiB
    with zipfile.ZipFile(tmp_path / "lie.npz", "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("x.npy", buffer.getvalue())
    result = npu_tui("eval", str(config), "--data", str(tmp_path / "lie.npz"))
    assert result.returncode == 2 and "claims shape [1048576, 65536]" in result.stderr


def test_json_has_no_nan_or_infinity_even_when_fp16_overflows(tmp_path):
    import json

    model = make_model(
        [helper.make_node("MatMul", ["x", "w"], ["y"], name="fc")],
        [value("x", ["n", 2])],
        [value("y", ["n", 2])],
        [tensor("w", np.array([[1e6, 0.0], [0.0, 1.0]], np.float32))],
    )
    config = write_project(tmp_path, model, BASE_CONFIG.replace("COMPRESS: true", "COMPRESS: false", 1))
    for args in (["compile", str(config), "--json"], ["eval", str(config), "--json", "--sensitivity", "--layers"]):
        result = npu_tui(*args)
        assert result.returncode == 0, result.stderr
        json.loads(result.stdout, parse_constant=partial(_no_constant, args[0]))


def _no_constant(command: str, token: str) -> None:
    """json's parse_constant: NaN or Infinity in a --json document fails the test."""
    pytest.fail(f"{token} in {command} --json")


@pytest.mark.parametrize("bound", ["-1.0e+39", "-1.0e+6"])
def test_ranges_beyond_fp16_are_refused(tmp_path, bound):
    model = make_model(
        [helper.make_node("MatMul", ["x", "w"], ["y"], name="fc")],
        [value("x", [1, 2])],
        [value("y", [1, 2])],
        [tensor("w", np.eye(2, dtype=np.float32))],
    )
    config = write_project(tmp_path, model, BASE_CONFIG + f"WEIGHT_MIN_MAX:\n  w: [{bound}, 3.0]\n")
    result = npu_tui("compile", str(config))
    assert result.returncode == 2 and "is beyond fp16 (±65504)" in result.stderr


def test_deeply_nested_subgraphs_end_in_a_result(tmp_path):
    """30 levels of If (protobuf itself refuses much deeper files; those are 'not an ONNX model')."""
    inner = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["o0"], name="fc")],
        "g0",
        [],
        [value("o0", None)],
        [tensor("w", np.eye(2, dtype=np.float32))],
    )
    for depth in range(1, 30):
        other = helper.make_graph(
            [helper.make_node("Identity", ["x"], [f"e{depth}"])], f"e{depth}", [], [value(f"e{depth}", None)]
        )
        inner = helper.make_graph(
            [helper.make_node("If", ["flag"], [f"o{depth}"], name=f"if{depth}", then_branch=inner, else_branch=other)],
            f"g{depth}",
            [],
            [value(f"o{depth}", None)],
        )
    top = helper.make_node(
        "If",
        ["flag"],
        ["y"],
        name="top",
        then_branch=inner,
        else_branch=helper.make_graph([helper.make_node("Identity", ["x"], ["et"])], "et", [], [value("et", None)]),
    )
    model = make_model([top], [value("x", [1, 2])], [value("y", None)], [tensor("flag", np.array(True))])
    config = write_project(tmp_path, model, BASE_CONFIG)
    result = npu_tui("compile", str(config), "-w")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("w: [2, 2]")


@pytest.mark.parametrize("hostile", ["\x1b[2J", "\u202e", "\u2066", "\x07", "\x9b31m"])
def test_names_printed_by_the_cli_are_inert(tmp_path, hostile):
    name = f"w{hostile}eight"
    model = make_model(
        [helper.make_node("MatMul", ["x", name], ["y"], name=f"fc{hostile}")],
        [value("x", [1, 2])],
        [value("y", [1, 2])],
        [tensor(name, np.array([[1.0, 2.0], [3.0, 400.0]], np.float32))],
    )
    config = write_project(tmp_path, model, BASE_CONFIG)
    for args in (["compile", str(config), "-w"], ["eval", str(config), "--sensitivity", "--layers"]):
        result = npu_tui(*args)
        assert result.returncode == 0, result.stderr
        assert hostile not in result.stdout and hostile not in result.stderr
        assert "w\\" in result.stdout  # spelled out instead


def test_a_config_is_parsed_once_with_the_c_loader(tmp_path, monkeypatch):
    from tui_kit import copy_sample

    from npu_tui.core.config.reader import load_config
    from npu_tui.core.config.writer import save_config

    config = copy_sample("kws_tdnn", tmp_path)
    parses: list[str] = []
    for loader in {yaml.SafeLoader, yaml.FullLoader, yaml.Loader, getattr(yaml, "CSafeLoader", yaml.SafeLoader)}:
        original = loader.__init__

        def counted(self, stream, _original=original, _name=loader.__name__):
            parses.append(_name)
            _original(self, stream)

        monkeypatch.setattr(loader, "__init__", counted)
    cfg = load_config(config)
    assert parses == ["CSafeLoader" if yaml.__with_libyaml__ else "SafeLoader"]
    assert cfg.where("COMPRESS").endswith(":11")  # line numbers kept for messages
    parses.clear()
    save_config(config, Settings(compress=False))
    assert len(parses) == 2  # the text written into, and the written text checked before the rename


RANDOM_UNDER_A_MEMORY_LIMIT = """
import resource, sys
import subprocess
import sys
from pathlib import Path

import numpy as np
from npu_tui.core.errors import UserError
from npu_tui.core.sim.eval_data import ModelInput, random_data
spec = ModelInput("x", np.dtype(np.float32), (1, 1024, 1024), ("batch", "h", "w"), True)  # 4 MiB a sample
vm = int(next(line for line in open("/proc/self/status") if line.startswith("VmSize")).split()[1]) * 1024
room = int(sys.argv[1]) << 20
resource.setrlimit(resource.RLIMIT_AS, (vm + room, vm + room))
try:
    data = random_data([spec], 128, 0)  # 512 MiB in float32, 1 GiB more as float64
except UserError as exc:
    print("error:", exc)
else:
    print("made", data.inputs["x"].dtype, data.inputs["x"].shape)
"""


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads the process's memory size from /proc")
def test_random_inputs_are_made_in_their_final_dtype_and_too_many_are_a_message():
    def run(room_mib: int) -> str:
        result = subprocess.run(
            [sys.executable, "-c", RANDOM_UNDER_A_MEMORY_LIMIT, str(room_mib)], capture_output=True, text=True, timeout=300
        )
        assert result.returncode == 0, result.stderr[-2000:]
        return result.stdout

    assert run(768) == "made float32 (128, 1, 1024, 1024)\n"  # no float64 copy of the whole: 512 MiB and a chunk
    assert "do not fit in this machine's free memory; use fewer --samples" in run(256)


def _zeros_npz(path: Path, samples: int, compression: int) -> None:
    """An .npz whose features (samples, 8, 8) float32 are zeros, streamed in: the file is small when
    compressed, and no array of that size is ever made here."""
    import zipfile

    header = {"descr": "<f4", "fortran_order": False, "shape": (samples, 8, 8)}
    with zipfile.ZipFile(path, "w", compression=compression, compresslevel=1 if compression else None) as archive:
        with archive.open("features.npy", "w", force_zip64=True) as member:
            np.lib.format.write_array_header_1_0(member, header)
            block = bytes(64 << 20)
            left = samples * 256
            while left:
                member.write(block[: min(left, len(block))])
                left -= min(left, len(block))
        with archive.open("labels.npy", "w") as member:
            np.lib.format.write_array(member, np.arange(samples) % 12)


NPZ_UNDER_A_MEMORY_LIMIT = """
import resource, sys
import numpy as np
from npu_tui.core.sim.eval_data import ModelInput, load_npz
spec = ModelInput("features", np.dtype(np.float32), (8, 8), ("h", "w"), False)
vm = int(next(line for line in open("/proc/self/status") if line.startswith("VmSize")).split()[1]) * 1024
resource.setrlimit(resource.RLIMIT_AS, (vm + (200 << 20), vm + (200 << 20)))
try:
    data = load_npz(sys.argv[1], [spec], 4)
except Exception as exc:
    print(type(exc).__name__)
else:
    print(data.samples, data.inputs["features"].shape, data.labels.tolist(), float(np.abs(data.inputs["features"]).max()))
"""


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads the process's memory size from /proc")
@pytest.mark.parametrize("compression, declared", [(8, 1 << 22), (0, 1 << 20)], ids=["deflated_1GiB", "stored_256MiB"])
def test_an_npz_is_read_only_as_far_as_the_samples_used(tmp_path, compression, declared):
    from npu_tui.core.sim.eval_data import ModelInput, load_npz

    path = tmp_path / "big.npz"
    _zeros_npz(path, declared, compression)
    result = subprocess.run(
        [sys.executable, "-c", NPZ_UNDER_A_MEMORY_LIMIT, str(path)], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout == "4 (4, 8, 8) [0, 1, 2, 3] 0.0\n"  # 4 samples read, the 200 MiB allowed never exceeded
    small = tmp_path / "small.npz"
    features = np.random.default_rng(0).normal(size=(6, 8, 8)).astype(np.float32)
    np.savez_compressed(small, features=features, labels=np.arange(6), unused=np.zeros(3))
    spec = ModelInput("features", np.dtype(np.float32), (8, 8), ("h", "w"), False)
    for limit, expected in ((None, 6), (4, 4), (100, 6)):
        data = load_npz(small, [spec], limit)
        assert data.samples == expected and np.array_equal(data.inputs["features"], features[:expected])
        assert data.labels.tolist() == list(range(expected))
