"""Read and validate a vendor config.yaml (SPEC section 2), keeping line numbers for messages."""

from __future__ import annotations

import reprlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..errors import ConfigError, UserError
from ..quant.settings import NAME_LIST_FIELDS, RANGES_KEY, SWITCH_FIELDS, Settings, range_problem
from ..safe_files import require_regular
from ..text import edit_distance

CORENAMES = ("GRUS", "AQUILA", "LEO")
TYPO_DISTANCE = 2  # an unknown key this close to a known one is taken for a misspelling of it
MODEL_KEYS = ("ONNX_FILE", "PB_FILE", "GRAPH_FILE")
VENDOR_KEYS = frozenset(
    {
        "CORENAME",
        *MODEL_KEYS,
        *SWITCH_FIELDS,
        *NAME_LIST_FIELDS,
        RANGES_KEY,
        "OUTPUT_FILE",
        "OUTPUT_TYPE",
        "NPU_UNIT",
        "MODEL_INFO",
        "INPUT_OPS",
        "OUTPUT_OPS",
        "FP16_OUT_OPS",
        "FUSE_BIASADD",
        "WEIGHT_CACHE_SIZE",
        "SPACE_OPTIMIZATION",
    }
)


@dataclass
class Config:
    """A parsed config: every key in file order, plus where each one was written."""

    path: Path
    data: dict[str, Any]
    model_path: Path
    settings: Settings
    corename: str
    input_shapes: dict[str, list[int]] = field(default_factory=dict)
    output_names: list[str] = field(default_factory=list)
    key_lines: dict[str, int] = field(default_factory=dict)
    item_lines: dict[tuple[str, str], int] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def where(self, key: str, item: str | None = None) -> str:
        """'file:line' for a key, or for one name inside it when known."""
        return _where(self.path, self.key_lines, self.item_lines, key, item)

    @property
    def model_key(self) -> str:
        """The key that names the model (ONNX_FILE, or the vendor's TF keys)."""
        return next(k for k in MODEL_KEYS if k in self.data)


def _where(path: Path, key_lines: dict, item_lines: dict, key: str, item: str | None) -> str:
    line = item_lines.get((key, item)) if item is not None else None
    line = line or key_lines.get(key)
    return f"{path}:{line}" if line else str(path)


def load_config(path: str | Path) -> Config:
    """Parse config.yaml with the safe loader and validate every key SPEC section 2 names."""
    path = Path(path)
    try:
        require_regular(path, "config file")
    except UserError as exc:
        raise ConfigError(str(exc)) from None
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a folder; give the path of config.yaml") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read config: {exc}") from None
    root, data = _parse(path, text)
    duplicates: list[str] = []
    key_lines, item_lines = _lines(root, duplicates)
    cfg = _Validator(path, data, key_lines, item_lines).run()
    cfg.warnings[:0] = [f"{path}: {d}" for d in duplicates]
    return cfg


LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml's C parser when pyyaml has it: 10-50x faster


def parse_yaml(text: str) -> tuple[yaml.Node | None, Any]:
    """The document's node tree (marks give line numbers) and its values, from one parse. Aliases are
    refused before anything is built from the tree: a few of them expand a 1 KB file into gigabytes."""
    loader = LOADER(text)
    try:
        root = loader.get_single_node()
        if root is not None and "*" in text:  # an alias is written *name: without a star there is none
            _refuse_aliases(root, text)
        return root, loader.construct_document(root) if root is not None else None
    finally:
        loader.dispose()


def _refuse_aliases(root: yaml.Node, text: str) -> None:
    """The composer hands an alias back as the anchored node itself: a node met twice is an alias.
    The walk visits each node once, so a document of aliases costs its size, not its expansion."""
    seen: set[int] = set()
    stack = [root]
    while stack:
        node = stack.pop()
        if id(node) in seen:
            raise _alias_error(text)
        seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            stack.extend(child for pair in node.value for child in pair)
        elif isinstance(node, yaml.SequenceNode):
            stack.extend(node.value)


def _alias_error(text: str) -> yaml.MarkedYAMLError:
    """Where the first alias is, and its name (found again by events: only on this rare path)."""
    for event in yaml.parse(text, Loader=LOADER):
        if isinstance(event, yaml.AliasEvent):
            problem = f"YAML aliases (*{event.anchor}) are not allowed in config.yaml; write the values out"
            return yaml.MarkedYAMLError(problem=problem, problem_mark=event.start_mark)  # type: ignore[arg-type]  # libyaml's Mark
    return yaml.MarkedYAMLError(problem="YAML aliases are not allowed in config.yaml; write the values out")


def _parse(path: Path, text: str) -> tuple[yaml.Node, Any]:
    try:
        root, data = parse_yaml(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = f":{mark.line + 1}" if mark is not None else ""
        problem = exc.problem or exc.context or "invalid YAML"
        if "could not determine a constructor" in problem:
            problem = f"YAML tag not allowed ({problem.split('tag ')[-1]}); config.yaml holds plain values only"
        raise ConfigError(f"{path}{line}: {problem}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML: {exc}") from None
    if data is None:
        raise ConfigError(f"{path}: the file is empty; it needs at least CORENAME and PB_FILE")
    if not isinstance(data, dict):
        kind = type(data).__name__
        raise ConfigError(f"{path}:1: the top level is a {kind}; it must be a mapping of KEY: value")
    assert root is not None  # a document with data has a root node
    return root, data


def _lines(root: yaml.Node, duplicates: list[str]) -> tuple[dict[str, int], dict[tuple[str, str], int]]:
    key_lines: dict[str, int] = {}
    item_lines: dict[tuple[str, str], int] = {}
    if not isinstance(root, yaml.MappingNode):
        return key_lines, item_lines
    for key_node, value_node in root.value:
        key = str(key_node.value)
        if key in key_lines:
            duplicates.append(
                f"line {key_node.start_mark.line + 1}: {key} is given again (first on line {key_lines[key]}); the last one counts"
            )
        key_lines[key] = key_node.start_mark.line + 1
        if isinstance(value_node, yaml.MappingNode):
            for sub_key, _ in value_node.value:
                item_lines[(key, str(sub_key.value))] = sub_key.start_mark.line + 1
        elif isinstance(value_node, yaml.SequenceNode):
            for item in value_node.value:
                if isinstance(item, yaml.ScalarNode):
                    item_lines[(key, str(item.value))] = item.start_mark.line + 1
    return key_lines, item_lines


_BRIEF = reprlib.Repr()
_BRIEF.maxstring, _BRIEF.maxother, _BRIEF.maxlist, _BRIEF.maxdict, _BRIEF.maxlevel = 60, 60, 6, 4, 2


def _brief(value: object) -> str:
    """A value from the file, repr'd but bounded: a key can hold a megabyte, a message cannot."""
    return _BRIEF.repr(value)


class _Validator:
    def __init__(self, path: Path, data: dict, key_lines: dict, item_lines: dict) -> None:
        self.path = path
        self.data = data
        self.key_lines = key_lines
        self.item_lines = item_lines
        self.warnings: list[str] = []

    def where(self, key: str, item: str | None = None) -> str:
        return _where(self.path, self.key_lines, self.item_lines, key, item)

    def fail(self, key: str, message: str, item: str | None = None) -> ConfigError:
        return ConfigError(f"{self.where(key, item)}: {message}")

    def run(self) -> Config:
        for key in self.data:
            if not isinstance(key, str):
                raise self.fail(str(key), f"key {_brief(key)} is not a name; keys are upper-case words")
            if key not in VENDOR_KEYS:
                near = sorted((edit_distance(key.upper(), known), known) for known in VENDOR_KEYS)[0]
                if near[0] <= TYPO_DISTANCE:  # a typo: the key it means would silently stay off
                    raise self.fail(key, f"{key}: unknown key; did you mean {near[1]}?")
                self.warnings.append(f"{self.where(key)}: unknown key {key} is kept as it is")
        if "COMPRESS" not in self.data:  # gxnpuc 1.5.8: "[ERROR] config COMPRESS error, must be bool type", rc 1
            raise ConfigError(
                f"{self.path}: COMPRESS is missing, and gxnpuc 1.5.8 refuses a config without it; write COMPRESS: true or false"
            )
        self.npu_unit()
        fields: dict[str, Any] = {attr: self.boolean(key) for key, attr in SWITCH_FIELDS.items()}
        fields.update({attr: self.names(key) for key, attr in NAME_LIST_FIELDS.items()})
        settings = Settings(**fields, weight_min_max=self.min_max(), fuse_biasadd=self.data.get("FUSE_BIASADD") is True)
        return Config(
            path=self.path,
            data=self.data,
            model_path=self.model_path(),
            settings=settings,
            corename=self.corename(),
            input_shapes=self.input_shapes(),
            output_names=list(self.names("OUTPUT_OPS")),
            key_lines=self.key_lines,
            item_lines=self.item_lines,
            warnings=self.warnings,
        )

    def corename(self) -> str:
        if "CORENAME" not in self.data:
            raise ConfigError(f"{self.path}: CORENAME is missing; set it to one of {', '.join(CORENAMES)}")
        value = self.data["CORENAME"]
        if value not in CORENAMES:
            raise self.fail("CORENAME", f"CORENAME: unknown chip {_brief(value)}; use one of {', '.join(CORENAMES)}")
        return value

    def npu_unit(self) -> None:
        """GRUS has one NPU unit: gxnpuc 1.5.8 refuses any other ("config NPU_UNIT error, must be a value of
        "NPU32"", rc 1, even though it prints the memory table after)."""
        if "NPU_UNIT" in self.data and self.data.get("CORENAME") == "GRUS" and self.data["NPU_UNIT"] != "NPU32":
            raise self.fail(
                "NPU_UNIT", f"NPU_UNIT: {_brief(self.data['NPU_UNIT'])} is not a GRUS unit; gxnpuc 1.5.8 accepts only NPU32"
            )

    def model_path(self) -> Path:
        key = next((k for k in MODEL_KEYS if k in self.data), None)
        if key is None:
            raise ConfigError(f"{self.path}: no model: set PB_FILE to the frozen .pb (or an .onnx file), relative to this config")
        value = self.data[key]
        if not isinstance(value, str) or not value.strip():
            raise self.fail(key, f"{key}: {_brief(value)} is not a file path")
        return self.path.parent / value

    def boolean(self, key: str) -> bool:
        value = self.data.get(key, False)
        if not isinstance(value, bool):
            raise self.fail(key, f"{key}: {_brief(value)} is not a bool; write true or false")
        return value

    def names(self, key: str) -> tuple[str, ...]:
        value = self.data.get(key)
        if value is None:
            return ()
        if isinstance(value, str):
            value = [value] if key == "OUTPUT_OPS" else value
        if not isinstance(value, list):
            raise self.fail(key, f"{key}: {_brief(value)} is not a list; write [name1, name2]")
        for item in value:
            if not isinstance(item, str):
                raise self.fail(key, f"{key}: item {_brief(item)} is not a name; names are strings")
        return tuple(value)

    def min_max(self) -> dict[str, tuple[float, float]]:
        key = RANGES_KEY
        value = self.data.get(key)
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise self.fail(key, f"{key}: {_brief(value)} is not a mapping; write {{weight_name: [min, max]}}")
        ranges: dict[str, tuple[float, float]] = {}
        for name, bounds in value.items():
            label = f"{key}[{_brief(str(name))}]"
            if not isinstance(name, str):
                raise self.fail(key, f"{label}: the weight name must be a string", str(name))
            if not isinstance(bounds, (list, tuple)) or len(bounds) != 2:
                raise self.fail(key, f"{label}: {_brief(bounds)} is not exactly two bounds; write [min, max]", name)
            for bound in bounds:
                if isinstance(bound, bool) or not isinstance(bound, (int, float)):
                    raise self.fail(key, f"{label}: bound {_brief(bound)} is not a number; write [min, max]", name)
            problem = range_problem(bounds[0], bounds[1])
            if problem is not None:
                raise self.fail(key, f"{label}: {problem}", name)
            ranges[name] = (float(bounds[0]), float(bounds[1]))
        return ranges

    def input_shapes(self) -> dict[str, list[int]]:
        key = "INPUT_OPS"
        value = self.data.get(key)
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise self.fail(key, f"{key}: {_brief(value)} is not a mapping; write {{input_name: [1, 40]}}")
        shapes: dict[str, list[int]] = {}
        for name, shape in value.items():
            ok = isinstance(shape, list) and all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in shape)
            if not ok:
                raise self.fail(key, f"{key}[{_brief(str(name))}]: {_brief(shape)} is not a shape; write [1, 40]", str(name))
            shapes[str(name)] = shape
        return shapes
