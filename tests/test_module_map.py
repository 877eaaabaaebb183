"""Every module is reached and mapped: nothing scans nodes/, so a module left out of
nodes/__init__.py's import list ships none of its nodes, silently; and docs/architecture.md is
the one map of the code, so a module it does not name is one a reader cannot find, and a module
it names that is not there (moved, renamed) sends the reader to the wrong place."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("app", "graph", "nodes", "server", "bench")

# In a fresh process: `import latentgraph.nodes`, then each nodes module it did not import.
# The modules it leaves out are helpers their users import when needed (the tiny models'
# builders, attention processors, embedding files, ...: torch stays out of the import), allowed
# as long as importing one declares no node. One that does ships its nodes only by accident.
_DECLARED_ELSEWHERE = """
import importlib, json, pkgutil, sys
import latentgraph.nodes as package
from latentgraph.graph import default_registry
from latentgraph.nodes.comfy import comfy_registry

def declared():
    return set(default_registry.names()) | set(comfy_registry.names())

before, imported = declared(), set(sys.modules)
found = {}
for module in pkgutil.iter_modules(package.__path__, package.__name__ + "."):
    if module.name not in imported:
        importlib.import_module(module.name)
        new = declared() - before
        if new:
            found[module.name] = sorted(new)
            before |= set(new)
print(json.dumps(found))
"""


def test_every_module_declaring_nodes_is_imported_by_the_package():
    done = subprocess.run([sys.executable, "-c", _DECLARED_ELSEWHERE], capture_output=True,
                          text=True, cwd=ROOT, check=True)  # fmt: skip
    left_out = json.loads(done.stdout)
    assert left_out == {}, (
        f"not in nodes/__init__.py's import list, so their nodes do not ship: {left_out}"
    )


def _map_section(package: str) -> str:
    text = (ROOT / "docs" / "architecture.md").read_text()
    return next(s for s in re.split(r"^## ", text, flags=re.M) if s.startswith(f"{package}/"))


@pytest.mark.parametrize("package", PACKAGES)
def test_every_module_is_named_in_the_map(package):
    """Each module file is named in its package's section of docs/architecture.md (an empty
    `__init__.py`, a package marker holding nothing, needs no row)."""
    section = _map_section(package)
    unnamed = [
        str(path.relative_to(ROOT))
        for path in sorted((ROOT / package).rglob("*.py"))
        if path.read_text().strip()
        and not re.search(rf"(?<![\w.]){re.escape(path.name)}\b", section)
    ]
    assert unnamed == [], f"not named in docs/architecture.md's {package}/ map: {unnamed}"


@pytest.mark.parametrize("package", PACKAGES)
def test_every_module_the_map_names_is_there(package):
    """Each file a row of the package's table names in its first cell (`declare.py`, or a
    subpackage's as `workflow/` (`building.py`, ...)) exists in that package."""
    missing = []
    for row in re.findall(r"^\| (`.*?) \|", _map_section(package), flags=re.M):
        inside = re.match(r"`(\w+)/` \((.*?)\)", row)  # a subpackage's files, in brackets
        where = [("", row)]
        if inside:
            where = [(inside[1], inside[2]), ("", row[inside.end() :])]
        for folder, names in where:
            for name in re.findall(r"`([\w/]+\.\w+)`", names):
                if not (ROOT / package / folder / name).is_file():
                    missing.append(f"{package}/{folder}/{name}".replace("//", "/"))
    assert missing == [], f"docs/architecture.md's {package}/ map names files not there: {missing}"
