"""A config and its model, opened and checked together: the unit the CLI and the workbench work on."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..model.inventory import Inventory, build_inventory
from ..model.onnx_file import load_model
from ..quant.compiler import Compilation, Compiler
from ..quant.plan import check_names
from ..quant.settings import Settings
from .reader import Config, load_config


@dataclass
class Project:
    config: Config
    inventory: Inventory
    compiler: Compiler
    inputs: dict[str, Path] = field(default_factory=dict)  # what no output may overwrite, by what it is

    def compile(self, settings: Settings | None = None) -> Compilation:
        """Compile under `settings`, or under the config's own settings."""
        settings = settings or self.config.settings
        check_names(self.inventory, settings, self.config)
        return self.compiler.compile(settings)


def open_project(config_path: str | Path) -> Project:
    """Load and validate config.yaml, read its model and take the weight inventory."""
    config = load_config(config_path)
    model = load_model(config.model_path, config.input_shapes, config.output_names or None)
    inputs = {"the config": config.path, "the model": model.path}
    inputs.update({f"external data {ref.file.name}": ref.file for ref in model.data.values() if ref.file != model.path})
    output = config.data.get("OUTPUT_FILE")
    if isinstance(output, str) and output:
        inputs["OUTPUT_FILE, which belongs to gxnpuc"] = config.path.parent / output
    inventory = build_inventory(model)
    config.warnings.extend(w for w in check_names(inventory, config.settings, config) if w not in config.warnings)
    return Project(config, inventory, Compiler(inventory), inputs)
