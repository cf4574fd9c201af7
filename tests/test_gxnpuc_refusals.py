"""Every config of ../shared/gxnpuc/runs that gxnpuc 1.5.8 refused or crashed on (rc != 0), through
`npu-tui compile` as a user runs it: npu-tui refuses it too, exit 2, one `error:` line saying what to
change. And the bad_* configs gxnpuc accepted: npu-tui accepts them, warns, or (SPEC section 2, on
purpose) refuses a setting gxnpuc would silently not apply."""

from __future__ import annotations

import re

import gxnpuc_fixture as fx
import pytest

from npu_tui.cli import main

# gxnpuc's own message (its [ERROR] line, or the exception its traceback ends in) -> ours, and why.
REFUSED = {
    "[ERROR] config COMPRESS error, must be bool type": (
        r"COMPRESS is missing, and gxnpuc 1\.5\.8 refuses|COMPRESS: .+ is not a bool",
        "no COMPRESS key (nokeys), or a COMPRESS that is not true/false",
    ),
    "CORENAME not supported!": (r"CORENAME: unknown chip 'FOO'", "a chip gxnpuc does not know"),
    '[ERROR] config NPU_UNIT error, must be a value of "NPU32"': (r"NPU_UNIT: 'NPU64' is not a GRUS unit", "GRUS has NPU32 only"),
    "[ERROR] PB_FILE can't be found: /nonexistent.pb": (r"PB_FILE: '/nonexistent\.pb' not found", "the model is missing"),
    '[ERROR] config INPUT_OPS error, no input op called "nosuch"': (r"INPUT_OPS names 'nosuch'", "no such node"),
    '[ERROR] config OUTPUT_OPS error, no output op called "nosuch"': (r"OUTPUT_OPS names 'nosuch'", "no such node"),
    "[ERROR] config WEIGHT_MIN_MAX error, must be dict type": (r"WEIGHT_MIN_MAX: .+ is not a mapping", "a range list, not a map"),
    "[ERROR] config WEIGHT_MIN_MAX error, min max value error": (r"is not exactly two bounds", "one or three bounds"),
    "[ERROR] config WEIGHT_MIN_MAX error, min value must be less than max value": (r"min .+ is not less than max", "min > max"),
    "TypeError": (r"1\.0 is not exactly two bounds", "a scalar range: gxnpuc crashes in its config check"),
    "struct.error": (r"bound 'a' is not a number", "a string bound: gxnpuc crashes writing it"),
    "OverflowError": (
        r"gxnpuc 1\.5\.8 crashes on (this|an empty range)",
        "a range with no step (constant or all-zero weight compressed, min == max): gxnpuc divides by zero",
    ),
}

# bad_* configs gxnpuc compiled (rc 0): what npu-tui does with each, and why.
ACCEPTED = {
    "bad_output_type": ("ok", None),  # OUTPUT_TYPE raw is valid: gxnpuc writes model.npu
    "bad_mm_int_values": ("ok", None),  # integer bounds are numbers
    "bad_unknown_key": ("warn", r"unknown key FOO_BAR is kept as it is"),
    "bad_conv2d_compress_str": ("refuse", r"CONV2D_COMPRESS: 'yes' is not a bool"),  # gxnpuc: truthy, silently
    "bad_fusebn_str": ("refuse", r"FUSE_BN: 'yes' is not a bool"),
    "bad_exclude_str": ("refuse", r"EXCLUDE_COMPRESS_OPS: 'fc/MatMul' is not a list"),  # gxnpuc: its characters
    "bad_exclude_unknown": ("refuse", r"no weight or node named 'no/such/op'"),  # gxnpuc ignores it
    "bad_mm_unknown_name": ("refuse", r"no weight or node named 'no/such/weight'"),
}


def _runs(refused: bool) -> list[fx.Run]:
    if not fx.available():
        return []
    return [r for r in fx.runs() if (r.rc != 0) == refused and (refused or r.variant.startswith("bad_"))]


def gxnpuc_message(run: fx.Run) -> str:
    """What gxnpuc said: its [ERROR] line, its one-line refusal, or the exception type it crashed with."""
    errors = [line for line in run.stdout.splitlines() if line.startswith("[ERROR]") or line == "CORENAME not supported!"]
    if errors:
        return errors[0]
    last = (run.path / "stderr.txt").read_text().strip().splitlines()[-1]
    return last.split(":")[0]


def compile_as_a_user(run: fx.Run, capsys: pytest.CaptureFixture[str]) -> tuple[int, list[str]]:
    code = main(["compile", str(run.path / "config.yaml")])
    return code, capsys.readouterr().err.splitlines()


@pytest.fixture(autouse=True)
def own_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.getbasetemp() / "tf-cache"))


def test_the_fixture_has_the_runs_gxnpuc_refused():
    if not fx.available():
        pytest.skip("../shared/gxnpuc (the vendor compiler's outputs) is not beside the repo")
    refused = _runs(True)
    print(f"gxnpuc refused or crashed on {len(refused)} runs; {len(_runs(False))} bad_* configs it accepted")
    assert len(refused) == 59 and sum(r.variant == "nokeys" for r in refused) == 32
    assert sum(gxnpuc_message(r) == "OverflowError" for r in refused) == 12


@pytest.mark.parametrize("run", _runs(True), ids=lambda r: f"{r.graph}/{r.variant}")
def test_what_gxnpuc_refuses_npu_tui_refuses_in_one_line(run, capsys):
    pattern, why = REFUSED[gxnpuc_message(run)]
    code, lines = compile_as_a_user(run, capsys)
    errors = [line for line in lines if line.startswith("error: ")]
    assert code == 2 and len(errors) == 1 and re.search(pattern, errors[0]), (why, lines)
    assert all(line.startswith("warning: ") for line in lines if line not in errors)  # e.g. an ignored op name first


@pytest.mark.parametrize("run", _runs(False), ids=lambda r: f"{r.graph}/{r.variant}")
def test_what_gxnpuc_accepts_npu_tui_accepts_warns_or_refuses_on_purpose(run, capsys):
    outcome, pattern = ACCEPTED[run.variant]
    code, lines = compile_as_a_user(run, capsys)
    if outcome == "refuse":
        assert (
            pattern is not None
            and code == 2
            and len(lines) == 1
            and lines[0].startswith("error: ")
            and re.search(pattern, lines[0])
        ), lines
    elif outcome == "warn":
        assert (
            pattern is not None
            and code == 0
            and len(lines) == 1
            and lines[0].startswith("warning: ")
            and re.search(pattern, lines[0])
        ), lines
    else:
        assert code == 0 and lines == []
