"""The core's folders are the pipeline: a module imports only from its own floor or the floors below it.

Every import counts, those inside functions too (they used to hide a cycle), and the no-UI guard covers
every module of the core, each imported on its own in a fresh interpreter.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

CORE = Path(__file__).resolve().parent.parent / "npu_tui" / "core"

# bottom first; a module may import from its own floor or any floor before it
FLOORS = ["base", "model", "quant", "config", "sim", "triage", "api"]
TOP_LEVEL = {"opening": "api", "workbench": "api", "report": "api", "eval_report": "api"}
UI_AND_RUNTIME = ("textual", "rich", "onnxruntime", "matplotlib")


def floor_of(module: str) -> str:
    """The floor of a dotted module name under npu_tui.core."""
    parts = module.split(".")[2:]
    if not parts:
        return "base"
    if parts[0] in FLOORS:
        return parts[0]
    return TOP_LEVEL.get(parts[0], "base")


def module_name(path: Path) -> str:
    rel = path.relative_to(CORE.parent.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """Every npu_tui.core module `path` imports, with the line, relative imports resolved."""
    package = module_name(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            names = [f"{target}.{a.name}" for a in node.names]
            found.extend((node.lineno, t) for t in [target, *names] if t.startswith("npu_tui.core"))
        elif isinstance(node, ast.Import):
            found.extend((node.lineno, a.name) for a in node.names if a.name.startswith("npu_tui.core"))
    return found


def core_modules() -> list[Path]:
    return sorted(p for p in CORE.rglob("*.py") if "__pycache__" not in p.parts)


def real_module(name: str) -> bool:
    """`from .x import y` names y too; only names that are modules or packages count as imports."""
    path = CORE.parent.parent.joinpath(*name.split("."))
    return path.with_suffix(".py").exists() or (path / "__init__.py").exists()


def test_imports_only_point_down_the_pipeline():
    wrong = []
    for path in core_modules():
        own = floor_of(module_name(path))
        for line, target in imported_modules(path):
            if real_module(target) and FLOORS.index(floor_of(target)) > FLOORS.index(own):
                wrong.append(f"{path.relative_to(CORE)}:{line}: {own} imports {target} ({floor_of(target)})")
    assert wrong == []


def test_a_module_that_claims_a_floor_exists():
    assert {floor_of(module_name(p)) for p in core_modules()} <= set(FLOORS)


def test_no_core_module_imports_ui_or_runtime():
    modules = [module_name(p) for p in core_modules()]
    code = (
        f"import importlib, sys\nfor m in {modules!r}:\n    importlib.import_module(m)\n"
        f"print(','.join(m for m in {UI_AND_RUNTIME!r} if m in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "", f"importing all {len(modules)} core modules loads {result.stdout.strip()}"


def test_no_import_cycles_between_core_modules():
    """A circle of imports (a package's `__init__` aside) hides which module is below which."""
    graph = {module_name(p): {t for _, t in imported_modules(p) if real_module(t)} for p in core_modules()}
    cycles = []

    def visit(node: str, trail: list[str]) -> None:
        for nxt in graph.get(node, ()):
            if nxt in trail:
                cycles.append(" -> ".join([*trail[trail.index(nxt) :], nxt]))
            elif nxt not in done:
                visit(nxt, [*trail, nxt])
        done.add(node)

    done: set[str] = set()
    for start in sorted(graph):
        if start not in done:
            visit(start, [start])
    packages = {n for n in graph if (CORE.parent.parent.joinpath(*n.split(".")) / "__init__.py").exists()}
    assert [c for c in cycles if not set(c.split(" -> ")) & packages] == []


def test_the_tui_uses_only_the_cores_public_face():
    """The TUI reaches the core through core/workbench.py (and opening, which opens one), plus the bottom
    floor's vocabulary: never into the pipeline's folders, whose insides may move."""
    allowed = {
        "npu_tui.core.workbench",
        "npu_tui.core.opening",
        *(f"npu_tui.core.{m}" for m in ("errors", "text", "kinds", "numbers")),
    }
    tui = CORE.parent / "tui"
    wrong = []
    for path in sorted(tui.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 2 and (node.module or "").startswith("core"):
                target = f"npu_tui.{node.module}"
                if target not in allowed:
                    wrong.append(f"{path.name}:{node.lineno}: {target}")
    assert wrong == []
