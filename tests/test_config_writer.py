"""Saving settings into config.yaml: only managed keys change, everything else stays byte for byte."""

import os
import stat

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from npu_tui.core.config.reader import load_config
from npu_tui.core.config.writer import config_diff, render_config, save_config
from npu_tui.core.quant.settings import Settings

ORIGINAL = """\
# header comment
CORENAME: GRUS   # chip
ONNX_FILE: model.onnx
WEIGHT_MIN_MAX:
  fc.weight: [-0.5, 0.5]   # tuned by hand
# a comment about compression
COMPRESS: true
MY_OWN_KEY: {keep: me}
"""


def test_unchanged_settings_leave_the_text_alone():
    current = Settings(compress=True, weight_min_max={"fc.weight": (-0.5, 0.5)})
    assert render_config(ORIGINAL, current) == ORIGINAL


def test_only_managed_keys_change_and_comments_stay():
    changed = Settings(compress=False, weight_min_max={"fc.weight": (-0.25, 0.5), "conv": (-1.0, 1.0)}, exclude=("conv1",))
    text = render_config(ORIGINAL, changed)
    assert text.splitlines() == [
        "# header comment",
        "CORENAME: GRUS   # chip",
        "ONNX_FILE: model.onnx",
        "WEIGHT_MIN_MAX:",
        "  fc.weight: [-0.25, 0.5]",
        "  conv: [-1.0, 1.0]   # tuned by hand",
        "# a comment about compression",
        "COMPRESS: false",
        "MY_OWN_KEY: {keep: me}",
        "EXCLUDE_COMPRESS_OPS: [conv1]",
    ]


def test_a_comment_after_a_value_keeps_its_column():
    text = render_config("COMPRESS: true      # int8 fc\n", Settings(compress=False))
    assert text == "COMPRESS: false     # int8 fc\n"


odd_names = st.sampled_from(["fc.weight", "a: b", "#hash", "[bracket]", "quote'd", "tab\there", "x-y/z", "yes", "1.5", "ünï"])
bounds = st.tuples(st.floats(-100, -0.001), st.floats(0.001, 100))


@settings(max_examples=100, deadline=None)
@given(
    compress=st.booleans(),
    conv=st.booleans(),
    fuse=st.booleans(),
    exclude=st.lists(odd_names, unique=True, max_size=4),
    ranges=st.dictionaries(odd_names, bounds, max_size=4),
)
def test_what_is_saved_reads_back_the_same(compress, conv, fuse, exclude, ranges):
    wanted = Settings(compress=compress, conv2d_compress=conv, fuse_bn=fuse, exclude=tuple(exclude), weight_min_max=ranges)
    data = yaml.safe_load(render_config(ORIGINAL, wanted))
    assert data["COMPRESS"] is compress and data.get("CONV2D_COMPRESS", False) is conv and data.get("FUSE_BN", False) is fuse
    assert data.get("EXCLUDE_COMPRESS_OPS", []) == exclude
    assert {k: tuple(v) for k, v in (data["WEIGHT_MIN_MAX"] or {}).items()} == ranges
    assert data["MY_OWN_KEY"] == {"keep": "me"} and data["CORENAME"] == "GRUS"


def test_save_is_atomic_keeps_a_backup_and_the_file_mode(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(ORIGINAL)
    os.chmod(path, 0o640)
    new = Settings(compress=False, weight_min_max={"fc.weight": (-0.5, 0.5)})
    assert "-COMPRESS: true\n+COMPRESS: false\n" in config_diff(path, new)
    backup = save_config(path, new)
    assert backup.read_text() == ORIGINAL
    assert load_config(path).settings.compress is False
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.yaml", "config.yaml.bak"]


def test_crlf_block_lists_with_comments_and_an_indented_document_are_kept():
    import yaml

    from npu_tui.core.config.writer import render_config
    from npu_tui.core.quant.settings import Settings

    crlf = (
        "# vendor config\r\nCORENAME: GRUS\r\nONNX_FILE: model.onnx\r\nCOMPRESS: true   # fc\r\n"
        "EXCLUDE_COMPRESS_OPS:\r\n  - a   # why a\r\n  - b   # why b\r\nCONV2D_COMPRESS: true\r\n"
    )
    out = render_config(crlf, Settings(compress=False, conv2d_compress=True, exclude=("a", "b", "c")))
    assert out == (
        "# vendor config\r\nCORENAME: GRUS\r\nONNX_FILE: model.onnx\r\nCOMPRESS: false  # fc\r\n"
        "EXCLUDE_COMPRESS_OPS:\r\n  - a   # why a\r\n  - b   # why b\r\n  - c\r\nCONV2D_COMPRESS: true\r\n"
    )
    dropped = render_config(crlf, Settings(compress=True, conv2d_compress=True, exclude=("b",)))
    assert "  - b   # why b\r\n" in dropped and "why a" not in dropped
    indented = "  CORENAME: GRUS\n  ONNX_FILE: model.onnx\n  COMPRESS: true\n"
    out = render_config(indented, Settings(compress=False, weight_min_max={"w": (-1.0, 2.0)}))
    assert out.endswith("  COMPRESS: false\n  WEIGHT_MIN_MAX:\n    w: [-1.0, 2.0]\n")
    assert yaml.safe_load(out)["WEIGHT_MIN_MAX"] == {"w": [-1.0, 2.0]}


def test_a_config_with_a_byte_order_mark_is_edited_in_place():
    text = "\ufeff# vendor config, é\nCORENAME: GRUS\nCOMPRESS: true   # fc\n"
    assert render_config(text, Settings(compress=False)) == "\ufeff# vendor config, é\nCORENAME: GRUS\nCOMPRESS: false  # fc\n"
