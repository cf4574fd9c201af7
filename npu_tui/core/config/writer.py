"""Save Settings back into config.yaml (SPEC section 8): only the keys npu-tui manages are rewritten,
in place, so comments, key order and every other key stay as the user wrote them.

pyyaml cannot round-trip comments, and a round-trip YAML library would be one more dependency for
one job, so the managed keys' spans are found with pyyaml's node marks and replaced as text.
"""

from __future__ import annotations

import difflib
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import yaml

from ..errors import ConfigError, UserError
from ..quant.settings import NAME_LIST_FIELDS, RANGES_KEY, SWITCH_FIELDS, Settings
from ..safe_files import atomic_write, require_regular, require_writable
from .reader import load_config, parse_yaml

BOM = "\ufeff"


def _scalar(value: object) -> str:
    return yaml.safe_dump(value, default_flow_style=True, width=10**9).strip().removesuffix("\n...").strip()


def yaml_float(value: float) -> str:
    """A float YAML 1.1 (the vendor's pyyaml) reads back as a float: `-3e-05` is a string there,
    `-3.0e-05` a number."""
    text = repr(float(value))
    mantissa, _, exponent = text.partition("e")
    if exponent and "." not in mantissa:
        text = f"{mantissa}.0e{exponent}"
    return text


@dataclass(frozen=True)
class _Layout:
    """How the user's file is laid out, so that what npu-tui writes looks like it belongs there."""

    indent: str  # the column of the top-level keys (a document may be indented as a whole)
    newline: str  # "\r\n" when the file uses CRLF


def _layout(text: str, root: yaml.Node | None) -> _Layout:
    column = root.value[0][0].start_mark.column if isinstance(root, yaml.MappingNode) and root.value else 0
    return _Layout(" " * column, "\r\n" if "\r\n" in text else "\n")


def _line_comment(text: str, end: int) -> str:
    """The comment after position `end` on its line ('  # why'), or ''."""
    line_end = text.find("\n", end)
    rest = text[end : line_end if line_end >= 0 else len(text)].rstrip("\r")
    return rest if rest.strip().startswith("#") else ""


def _render(key: str, value: object, layout: _Layout, node: yaml.Node | None = None, text: str = "") -> str:
    """The entry for `key`, written in the file's layout; a block list keeps its style and the comment
    after each item that stays."""
    child = layout.indent + "  "
    if isinstance(value, bool):
        return f"{key}: {'true' if value else 'false'}"
    if isinstance(value, dict):
        if not value:
            return f"{key}: {{}}"
        if isinstance(node, yaml.MappingNode) and node.value and node.flow_style is False:
            child = " " * node.value[0][0].start_mark.column
        rows = [f"{child}{_scalar(name)}: [{yaml_float(lo)}, {yaml_float(hi)}]" for name, (lo, hi) in value.items()]
        return f"{key}:{layout.newline}" + layout.newline.join(rows)
    assert isinstance(value, (list, tuple))
    if value and isinstance(node, yaml.SequenceNode) and node.value and node.flow_style is False:
        first = node.value[0].start_mark
        dash = text.rfind("-", 0, first.index)
        prefix = text[text.rfind("\n", 0, dash) + 1 : dash] if dash >= 0 else child
        comments = {
            str(item.value): _line_comment(text, item.end_mark.index) for item in node.value if isinstance(item, yaml.ScalarNode)
        }
        rows = [f"{prefix}- {_scalar(v)}{comments.get(str(v), '')}" for v in value]
        return f"{key}:{layout.newline}" + layout.newline.join(rows)
    return f"{key}: [{', '.join(_scalar(v) for v in value)}]"


def _value_end(node: yaml.Node) -> int:
    """Where a value ends in the text, not counting the comments and blank lines after a block."""
    if isinstance(node, yaml.MappingNode) and node.value and node.flow_style is False:
        return _value_end(node.value[-1][1])
    if isinstance(node, yaml.SequenceNode) and node.value and node.flow_style is False:
        return _value_end(node.value[-1])
    return node.end_mark.index


def managed_values(settings: Settings) -> dict[str, object]:
    """The managed keys' values as they would be saved."""
    wanted: dict[str, object] = {key: getattr(settings, attr) for key, attr in SWITCH_FIELDS.items()}
    wanted.update({key: list(getattr(settings, attr)) for key, attr in NAME_LIST_FIELDS.items()})
    wanted[RANGES_KEY] = {name: tuple(bounds) for name, bounds in settings.weight_min_max.items()}
    return wanted


def _same(current: object, wanted: object) -> bool:
    if isinstance(wanted, dict):
        if current is None:
            return not wanted
        return isinstance(current, dict) and {k: tuple(v) for k, v in current.items()} == wanted
    if isinstance(wanted, list):
        return current == wanted or (current is None and not wanted)
    return current == wanted or (current is None and wanted is False)


def render_config(text: str, settings: Settings) -> str:
    """The config text with the managed keys changed to `settings`; untouched where already equal."""
    if text.startswith(BOM):  # libyaml's marks count from after a byte-order mark: edit the text they index
        return BOM + render_config(text[len(BOM) :], settings)
    root, data = parse_yaml(text)
    data = data or {}
    if not isinstance(data, dict):
        raise ConfigError(f"the file is a {type(data).__name__}, not a mapping of KEY: value; fix it or save elsewhere")
    layout = _layout(text, root)
    spans: dict[str, tuple[int, int, yaml.Node]] = {}
    if isinstance(root, yaml.MappingNode):
        for key_node, value_node in root.value:
            end = _value_end(value_node)
            if isinstance(value_node, yaml.SequenceNode) and value_node.flow_style is False and value_node.value:
                end += len(_line_comment(text, end))  # the last item's comment is rewritten with its item
            spans[str(key_node.value)] = (key_node.start_mark.index, end, value_node)
    edits, appended = [], []
    for key, value in managed_values(settings).items():
        if _same(data.get(key), value):
            continue
        if key in spans:
            start, end, node = spans[key]
            edits.append((start, end, _render(key, value, layout, node, text)))
        else:
            flat = _render(key, value, _Layout("", layout.newline))
            appended.append(layout.indent + flat.replace(layout.newline, layout.newline + layout.indent))
    for start, end, replacement in sorted(edits, reverse=True):
        rest = text[end:]
        if "\n" not in text[start:end] and "\n" not in replacement:
            rest = _keep_comment_column(rest, end - start, len(replacement))
        text = text[:start] + replacement + rest
    if appended:
        nl = layout.newline
        text = (text if text.endswith("\n") or not text else text + nl) + nl.join(appended) + nl
    return text


def _keep_comment_column(rest: str, old_length: int, new_length: int) -> str:
    """A comment after a one-line entry stays in its column when the entry's length changes."""
    spaces = len(rest) - len(rest.lstrip(" "))
    if not rest[spaces:].startswith("#"):
        return rest
    return " " * max(1, spaces + old_length - new_length) + rest[spaces:]


def read_config_text(path: Path) -> str:
    """The config's text as it is on disk now, newlines untranslated (a CRLF file stays CRLF), or one
    clear error (gone, unreadable, not UTF-8)."""
    return _decoded(Path(os.path.realpath(path)), _read_config_bytes(path))


def _read_config_bytes(path: Path) -> bytes:
    path = Path(os.path.realpath(path))
    require_regular(path, "config")
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None


def _decoded(path: Path, raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: is no longer UTF-8 text (byte {exc.start}); fix the file or save elsewhere") from None


def check_writable(path: Path) -> None:
    """Refuse, before any work, to save into a config its owner made read-only."""
    try:
        require_writable(Path(os.path.realpath(path)), "config")
    except UserError as exc:
        raise ConfigError(str(exc)) from None


def config_diff(path: Path, settings: Settings, base: str | None = None) -> str:
    """What saving would change, as a unified diff (into `base` instead of the file's text when given)."""
    old = read_config_text(path)
    new = _rendered(path, base if base is not None else old, settings)
    old, new = old.replace("\r\n", "\n"), new.replace("\r\n", "\n")  # a diff is read, not written: no carriage returns
    return "".join(difflib.unified_diff(old.splitlines(True), new.splitlines(True), str(path), str(path)))


def _rendered(path: Path, text: str, settings: Settings) -> str:
    try:
        return render_config(text, settings)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(
            f"{path}: the file on disk is no longer valid YAML ({str(exc).splitlines()[0]}); fix it or save elsewhere"
        ) from None


def save_config(path: Path, settings: Settings, base: str | None = None) -> Path:
    """Write atomically: the new text goes to an exclusive temporary file, is checked, then renamed
    over the old one, which is kept as `<name>.bak` (written the same way). A symlinked config is
    updated where it points, the link kept. `base` is the text to write the settings into (the text as
    loaded, to overwrite changes made on disk since); by default the file's current text. Returns the
    backup's path."""
    path = Path(os.path.realpath(path))
    check_writable(path)
    previous = _read_config_bytes(path)
    old = _decoded(path, previous)
    new = _rendered(path, base if base is not None else old, settings).encode("utf-8")
    backup = path.with_name(path.name + ".bak")
    try:
        with atomic_write(path.with_name(f".{path.name}.check")) as handle:
            handle.write(new)
        check = path.with_name(f".{path.name}.check")
        try:
            load_config(check)
        finally:
            check.unlink(missing_ok=True)
        with atomic_write(backup) as handle:  # the exact previous bytes
            handle.write(previous)
        shutil.copymode(path, backup)
        with atomic_write(path) as handle:
            handle.write(new)
        shutil.copymode(backup, path)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot save: {exc.strerror}") from None
    return backup
