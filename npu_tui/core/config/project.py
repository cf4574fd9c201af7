"""A config and its model, opened and checked together: the unit the CLI and the workbench work on."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import onnx

from ..errors import ConfigError
from ..model.inventory import Inventory, build_inventory
from ..model.onnx_file import load_model
from ..model.tf.metadata import is_tensorflow
from ..quant.compiler import Compilation, Compiler
from ..quant.plan import check_names
from ..quant.settings import Settings
from .reader import Config, load_config

MAX_LISTED = 10  # names an error lists before "..."


@dataclass
class Project:
    config: Config
    inventory: Inventory
    compiler: Compiler
    inputs: dict[str, Path] = field(default_factory=dict)  # what no output may overwrite, by what it is
    model_warnings: list[str] = field(default_factory=list)  # what gxnpuc will refuse once the ONNX model is a TF graph

    @property
    def warnings(self) -> list[tuple[str, str]]:
        """(code, message) of everything the user is warned of on opening: the config's, then the model's."""
        return [("config", w) for w in self.config.warnings] + [("gxnpuc_refuses", w) for w in self.model_warnings]

    @property
    def fp16_outputs(self) -> list[str]:
        """FP16_OUT_OPS: the outputs the chip returns as raw fp16 (no format op)."""
        names = self.config.data.get("FP16_OUT_OPS")
        return [n for n in names if isinstance(n, str)] if isinstance(names, list) else []

    def compile(self, settings: Settings | None = None) -> Compilation:
        """Compile under `settings`, or under the config's own settings."""
        settings = settings or self.config.settings
        check_names(self.inventory, settings, self.config)
        return self.compiler.compile(settings)


def open_project(config_path: str | Path) -> Project:
    """Load and validate config.yaml, read its model and take the weight inventory."""
    config = load_config(config_path)
    if _missing(config.model_path):
        key = config.model_key
        raise ConfigError(f"{config.where(key)}: {key}: {config.data[key]!r} not found (looked for {config.model_path})")
    model = load_model(config.model_path, config.input_shapes, config.output_names or None)
    check_io_names(config, model.model)
    inputs = {"the config": config.path, "the model": model.path}
    inputs.update({f"external data {ref.file.name}": ref.file for ref in model.data.values() if ref.file != model.path})
    output = config.data.get("OUTPUT_FILE")
    if isinstance(output, str) and output:
        inputs["OUTPUT_FILE, which belongs to gxnpuc"] = config.path.parent / output
    inventory = build_inventory(model)
    ignored = [w.message for w in check_names(inventory, config.settings, config)]
    config.warnings.extend(w for w in ignored if w not in config.warnings)
    return Project(config, inventory, Compiler(inventory), inputs, list(model.warnings))


def _missing(path: Path) -> bool:
    """No file (nor link) at the model's path: the config's key is named. Other problems (a NUL byte in
    the name, a folder, a FIFO) are the model reader's to report."""
    try:
        os.lstat(path)
    except FileNotFoundError:
        return True
    except (OSError, ValueError):
        return False
    return False


def check_io_names(config: Config, model: onnx.ModelProto) -> None:
    """INPUT_OPS and OUTPUT_OPS name the model's inputs and outputs: a misspelled name would leave
    the shape unfixed or the output silently unpicked, so it is refused, naming the real ones. A TF
    model's names were checked against its graph's nodes when it was read (INPUT_OPS may cut inside it)."""
    if is_tensorflow(model):
        return
    initializers = {t.name for t in model.graph.initializer}
    inputs = [i.name for i in model.graph.input if i.name not in initializers]
    outputs = [o.name for o in model.graph.output]
    for key, given, known, what in (
        ("INPUT_OPS", list(config.input_shapes), inputs, "input"),
        ("OUTPUT_OPS", config.output_names, outputs, "output"),
    ):
        for name in given:
            if name not in known:
                listed = ", ".join(repr(n) for n in known[:MAX_LISTED]) + (", ..." if len(known) > MAX_LISTED else "")
                raise ConfigError(
                    f"{config.where(key, name)}: {key}: no model {what} named {name!r}; the model's {what}s are {listed}"
                )
