"""The wheel carries every module, and `latentgraph.graph` stays free of torch."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CODE_FOLDERS = {
    "graph": "latentgraph/graph",
    "nodes": "latentgraph/nodes",
    "server": "latentgraph/server",
}


def _source_modules() -> set[str]:
    modules = set()
    for folder, prefix in CODE_FOLDERS.items():
        for path in (REPO / folder).rglob("*.py"):
            if "__pycache__" in path.parts:
                continue
            rel = path.relative_to(REPO / folder).with_suffix("")
            modules.add("/".join([prefix, *rel.parts]))
    return modules


def test_wheel_contains_and_imports_every_module(tmp_path):
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(REPO), "--no-deps", "--no-build-isolation",
         "-q", "-w", str(tmp_path)],
        check=True,
    )  # fmt: skip
    (wheel,) = tmp_path.glob("latentgraph-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        zf.extractall(tmp_path / "site")
    in_wheel = {n[: -len(".py")] for n in names if n.endswith(".py")}
    missing = _source_modules() - in_wheel
    assert not missing, f"modules missing from the wheel: {sorted(missing)}"

    modules = sorted(m.replace("/", ".").removesuffix(".__init__") for m in in_wheel)
    script = (
        "import importlib, json, sys\n"
        f"sys.path.insert(0, {str(tmp_path / 'site')!r})\n"
        "files = {}\n"
        f"for name in {modules!r}:\n"
        "    files[name] = importlib.import_module(name).__file__\n"
        "print(json.dumps(files))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, check=True
    )
    files = json.loads(out.stdout)
    for name, file in files.items():
        assert file.startswith(str(tmp_path / "site")), f"{name} imported from {file}"


def test_engine_and_node_declarations_do_not_import_torch():
    script = (
        "import sys\n"
        "import latentgraph.graph, latentgraph.graph.cli, latentgraph.nodes\n"
        "from latentgraph.graph.plugins import builtin_nodes\n"
        "builtin_nodes()\n"
        "heavy = [m for m in ('torch', 'diffusers', 'transformers') if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
