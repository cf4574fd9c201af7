"""Every bad input a user can give `compile` ends in exit status 2 and one clear `error:` line."""

import numpy as np
import onnx
import pytest
from clirun import npu_tui
from modelkit import BASE_CONFIG, conv_bn_fc, write_project
from onnx import numpy_helper

CASES = {
    "yaml_syntax": (BASE_CONFIG + "WEIGHT_MIN_MAX: {fc.weight: [0.1, 0.2]\n", "config.yaml:8:"),
    "not_a_mapping": ("- CORENAME\n- GRUS\n", "config.yaml:1: the top level is a list"),
    "empty": ("", "the file is empty"),
    "comment_only": ("# nothing here\n", "the file is empty"),
    "compress_not_bool": (
        BASE_CONFIG.replace("COMPRESS: true\nCONV", "COMPRESS: 'yes please'\nCONV"),
        "config.yaml:5: COMPRESS: 'yes please' is not a bool",
    ),
    "min_max_not_mapping": (BASE_CONFIG + "WEIGHT_MIN_MAX: [1, 2]\n", "config.yaml:7: WEIGHT_MIN_MAX: [1, 2] is not a mapping"),
    "min_not_less": (
        BASE_CONFIG + "WEIGHT_MIN_MAX:\n  fc.weight: [0.1, -0.1]\n",
        "config.yaml:8: WEIGHT_MIN_MAX['fc.weight']: min 0.1 is not less than max -0.1",
    ),
    "min_equal": (BASE_CONFIG + "WEIGHT_MIN_MAX:\n  fc.weight: [0.1, 0.1]\n", "min 0.1 is not less than max 0.1"),
    "nan_bound": (
        BASE_CONFIG + "WEIGHT_MIN_MAX:\n  fc.weight: [.nan, 0.1]\n",
        "config.yaml:8: WEIGHT_MIN_MAX['fc.weight']: bound nan is not a finite number",
    ),
    "string_bound": (BASE_CONFIG + "WEIGHT_MIN_MAX:\n  fc.weight: ['-0.1', 0.1]\n", "bound '-0.1' is not a number"),
    "three_bounds": (BASE_CONFIG + "WEIGHT_MIN_MAX:\n  fc.weight: [-0.1, 0, 0.1]\n", "is not exactly two bounds"),
    "unknown_weight": (
        BASE_CONFIG + "WEIGHT_MIN_MAX:\n  fc.weigth: [-0.1, 0.1]\n",
        "config.yaml:8: WEIGHT_MIN_MAX['fc.weigth']: no weight or node named 'fc.weigth' in the model (did you mean 'fc.weight'",
    ),
    "exclude_not_list": (
        BASE_CONFIG + "EXCLUDE_COMPRESS_OPS: {fc: 1}\n",
        "config.yaml:7: EXCLUDE_COMPRESS_OPS: {'fc': 1} is not a list",
    ),
    "exclude_unknown": (
        BASE_CONFIG + "EXCLUDE_COMPRESS_OPS:\n  - fc\n  - conv2\n",
        "config.yaml:9: EXCLUDE_COMPRESS_OPS: no weight or node named 'conv2' in the model (did you mean 'conv1'",
    ),
    "unknown_corename": (
        BASE_CONFIG.replace("GRUS", "GRUSS"),
        "config.yaml:2: CORENAME: unknown chip 'GRUSS'; use one of GRUS, AQUILA, LEO",
    ),
    "no_model_key": (BASE_CONFIG.replace("ONNX_FILE: model.onnx\n", ""), "no model: set PB_FILE"),
    "missing_model": (BASE_CONFIG.replace("model.onnx", "gone.onnx"), "config.yaml:3: ONNX_FILE: 'gone.onnx' not found ("),
    "missing_pb": (
        BASE_CONFIG.replace("ONNX_FILE: model.onnx", "PB_FILE: model.pb"),
        "config.yaml:3: PB_FILE: 'model.pb' not found (",
    ),
    "key_typo": (
        BASE_CONFIG.replace("COMPRESS: true\nCONV", "COMPRES: true\nCONV"),
        "config.yaml:5: COMPRES: unknown key; did you mean COMPRESS?",
    ),
    "input_ops_typo": (
        BASE_CONFIG + "INPUT_OPS:\n  xx: [1, 3, 6]\n",
        "config.yaml:8: INPUT_OPS: no model input named 'xx'; the model's inputs are 'x'",
    ),
    "output_ops_typo": (
        BASE_CONFIG + "OUTPUT_OPS: [yy]\n",
        "config.yaml:7: OUTPUT_OPS: no model output named 'yy'; the model's outputs are 'y'",
    ),
    "python_tag": (
        BASE_CONFIG + "OUTPUT_TYPE: !!python/object/apply:os.system ['echo pwned']\n",
        "config.yaml:7: YAML tag not allowed",
    ),
    "model_is_folder": (BASE_CONFIG.replace("model.onnx", "subdir"), "subdir: is a folder"),
    "nul_in_model_path": (BASE_CONFIG.replace("model.onnx", '"model\\0.onnx"'), "a model file name holding a NUL byte"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_config_is_one_error_line_and_exit_2(tmp_path, case):
    text, expected = CASES[case]
    config = write_project(tmp_path, conv_bn_fc(np.random.default_rng(0)), text)
    (tmp_path / "subdir").mkdir()
    result = npu_tui("compile", str(config), cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert expected in lines[0]
    assert result.stdout == ""
    assert not (tmp_path / "pwned").exists()


def _model_bytes():
    return conv_bn_fc(np.random.default_rng(0)).SerializeToString()


@pytest.mark.parametrize(
    "content, expected",
    [
        (lambda: _model_bytes()[: len(_model_bytes()) // 2], "not an ONNX model"),
        (lambda: np.random.default_rng(1).bytes(4096), "not an ONNX model"),
        (lambda: b"", "not an ONNX model"),
    ],
    ids=["truncated", "random_bytes", "empty_file"],
)
def test_unreadable_model_is_one_error_line(tmp_path, content, expected):
    config = write_project(tmp_path, None, BASE_CONFIG)
    (tmp_path / "model.onnx").write_bytes(content())
    result = npu_tui("compile", str(config))
    assert result.returncode == 2 and expected in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_nan_in_a_weight_to_quantize(tmp_path):
    model = conv_bn_fc(np.random.default_rng(0))
    fc = next(t for t in model.graph.initializer if t.name == "fc.weight")
    values = numpy_helper.to_array(fc).copy()
    values[2, 3] = np.inf
    fc.CopyFrom(numpy_helper.from_array(values, "fc.weight"))
    config = write_project(tmp_path, model, BASE_CONFIG)
    result = npu_tui("compile", str(config))
    assert result.returncode == 2
    assert result.stderr.strip().endswith("weight 'fc.weight' holds NaN or Inf; fix the model or exclude the weight")


def test_external_data_leaving_the_folder(tmp_path):
    model = conv_bn_fc(np.random.default_rng(0))
    inner = tmp_path / "inner"
    inner.mkdir()
    onnx.save(model, str(inner / "model.onnx"), save_as_external_data=True, location="w.bin", size_threshold=0)
    saved = onnx.load(str(inner / "model.onnx"), load_external_data=False)
    for t in saved.graph.initializer:
        for entry in t.external_data:
            if entry.key == "location":
                entry.value = "../../etc/passwd"
    onnx.save(saved, str(inner / "model.onnx"))
    config = write_project(inner, None, BASE_CONFIG)
    result = npu_tui("compile", str(config))
    assert result.returncode == 2 and "outside the model's folder" in result.stderr


def test_bad_argument_is_one_line(tmp_path):
    result = npu_tui("compile", "--bogus", "x.yaml")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [result.stderr.strip()] and result.stderr.startswith("error: ")


def test_missing_config_file(tmp_path):
    result = npu_tui("compile", str(tmp_path / "nope.yaml"))
    assert result.returncode == 2 and "nope.yaml: config file not found" in result.stderr


def test_workbench_with_a_missing_config_fails_before_the_screen_opens(tmp_path):
    result = npu_tui(str(tmp_path / "nope.yaml"))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [f"error: {tmp_path / 'nope.yaml'}: config file not found"]


def test_version():
    from npu_tui import __version__

    result = npu_tui("--version")
    assert result.returncode == 0 and result.stdout.strip() == f"npu-tui {__version__}"
