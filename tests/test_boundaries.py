"""The dependency direction holds in the source: latentgraph (app/) -> server, graph, nodes;
server -> graph; nodes -> graph. The engine imports neither the nodes nor the server, not
lazily inside a function and not through a module name handed to importlib or __import__."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = {"app": "latentgraph", "graph": "latentgraph.graph", "nodes": "latentgraph.nodes",
            "server": "latentgraph.server"}  # fmt: skip
ROOT_MODULES = {p.stem for p in (REPO / "app").glob("*.py")} - {"__init__"}
# folder -> the packages its code must not import
FORBIDDEN = {
    "graph": ("latentgraph.nodes", "latentgraph.server", "latentgraph (the composition root)"),
    "nodes": ("latentgraph.server", "latentgraph (the composition root)"),
    "server": ("latentgraph.nodes", "latentgraph (the composition root)"),
}
IMPORT_FUNCTIONS = {"import_module", "__import__", "find_spec", "import_string"}


def _module_name(path: Path, folder: str) -> str:
    rel = path.relative_to(REPO / folder).with_suffix("")
    parts = [p for p in rel.parts if p != "__init__"]
    return ".".join([PACKAGES[folder], *parts])


def _imported(tree: ast.AST, module: str, is_package: bool) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import and importlib call with a literal name."""
    found: list[tuple[int, str]] = []
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                name = ".".join([*base, node.module] if node.module else base)
            else:
                name = node.module or ""
            found.append((node.lineno, name))
            found += [(node.lineno, f"{name}.{alias.name}") for alias in node.names]
        elif isinstance(node, ast.Call):
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if called in IMPORT_FUNCTIONS:
                found += [(node.lineno, arg.value) for arg in node.args
                          if isinstance(arg, ast.Constant) and isinstance(arg.value, str)]  # fmt: skip
    return found


def _breaks(name: str, rule: str) -> bool:
    if rule.startswith("latentgraph (the composition root)"):
        parts = name.split(".")
        return name == "latentgraph" or (
            parts[0] == "latentgraph" and len(parts) > 1 and parts[1] in ROOT_MODULES
        )
    return name == rule or name.startswith(rule + ".")


def violations(folder: str) -> list[str]:
    found = []
    for path in sorted((REPO / folder).rglob("*.py")):
        module = _module_name(path, folder)
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for line, name in _imported(tree, module, path.name == "__init__.py"):
            for rule in FORBIDDEN[folder]:
                if _breaks(name, rule):
                    found.append(f"{path.relative_to(REPO)}:{line} imports {name} ({rule})")
    return found


@pytest.mark.parametrize("folder", sorted(FORBIDDEN))
def test_imports_follow_the_dependency_direction(folder):
    assert violations(folder) == []


def test_the_scan_sees_lazy_relative_and_importlib_imports(tmp_path):
    source = (
        "import importlib\n"
        "def f():\n"
        "    from latentgraph.nodes import configure\n"
        "    from ..server import run\n"
        "    importlib.import_module('latentgraph.nodes.loaders')\n"
        "    __import__('latentgraph.server.app')\n"
        "    from .. import cli\n"
    )
    names = [name for _, name in _imported(ast.parse(source), "latentgraph.graph.x", False)]
    assert [n for n in names if _breaks(n, "latentgraph.nodes")] == [
        "latentgraph.nodes", "latentgraph.nodes.configure", "latentgraph.nodes.loaders"]  # fmt: skip
    assert [n for n in names if _breaks(n, "latentgraph.server")] == [
        "latentgraph.server", "latentgraph.server.run", "latentgraph.server.app"]  # fmt: skip
    assert [n for n in names if _breaks(n, FORBIDDEN["graph"][2])] == [
        "latentgraph", "latentgraph.cli"]  # fmt: skip
