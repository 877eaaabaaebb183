"""The wheel carries every module, and `latentgraph.graph` stays free of torch."""

from __future__ import annotations

import importlib
import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CODE_FOLDERS = {
    "app": "latentgraph",
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


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> tuple[list[str], Path]:
    """The wheel built from the repo: its file names, and the folder it is unpacked into."""
    folder = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(REPO), "--no-deps", "--no-build-isolation",
         "-q", "-w", str(folder)],
        check=True,
    )  # fmt: skip
    (built,) = folder.glob("latentgraph-*.whl")
    with zipfile.ZipFile(built) as zf:
        zf.extractall(folder / "site")
        return zf.namelist(), folder / "site"


def test_wheel_contains_and_imports_every_module(wheel, tmp_path):
    names, site = wheel
    in_wheel = {n[: -len(".py")] for n in names if n.endswith(".py")}
    missing = _source_modules() - in_wheel
    assert not missing, f"modules missing from the wheel: {sorted(missing)}"

    modules = sorted(m.replace("/", ".").removesuffix(".__init__") for m in in_wheel)
    script = (
        "import importlib, json, sys\n"
        f"sys.path.insert(0, {str(site)!r})\n"
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
        assert file.startswith(str(site)), f"{name} imported from {file}"


def test_the_wheel_carries_the_editor_extensions(wheel):
    """The server serves its editor extensions from the installed package (server/web/): a
    wheel without them listed a script in GET /extensions that answered 404."""
    from latentgraph.server.editor import WEB_DIR

    names, _ = wheel
    shipped = {p.name for p in WEB_DIR.glob("*.js")}
    assert shipped and {f"latentgraph/server/web/{name}" for name in shipped} <= set(names)


TYPED_USE = """\
import latentgraph

result = latentgraph.run("wf.yaml", cancel=True)
reveal_type(result.status)
latentgraph.Settings(output_dirr="renders")
"""


def test_a_type_checker_sees_the_api_as_installed(wheel, tmp_path):
    """Without `py.typed` in the wheel mypy skipped the installed package (import-untyped), and
    with it every `latentgraph.X` was `Any` (handed out by a module `__getattr__`): `cancel=True`
    and `Settings(output_dirr=...)` passed. The wheel is installed in a venv of its own (no
    torch: its imports are left unresolved), as a user's environment holds it."""
    names, site = wheel
    assert "latentgraph/py.typed" in names
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    (packages,) = venv.glob("lib/python3*/site-packages")
    shutil.copytree(site / "latentgraph", packages / "latentgraph")
    (tmp_path / "use.py").write_text(TYPED_USE)
    out = subprocess.run(
        [sys.executable, "-m", "mypy", "--python-executable", str(venv / "bin" / "python"),
         "--ignore-missing-imports", "--follow-imports=silent", "--no-error-summary",
         "--cache-dir", str(tmp_path / "mypy-cache"), "use.py"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    said = out.stdout
    assert 'use.py:3: error: Argument "cancel" to "run" has incompatible type "bool"' in said, said
    assert "use.py:4: note: Revealed type is \"Literal['success'] | Literal['failed'] | " \
           "Literal['interrupted']\"" in said, said  # fmt: skip
    assert 'use.py:5: error: Unexpected keyword argument "output_dirr" for "Settings"' in said, said


def _heavy_modules_after(imports: str) -> list[str]:
    script = (
        f"import sys\n{imports}\n"
        "heavy = [m for m in ('torch', 'diffusers', 'transformers') if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    return [m for m in out.stdout.strip().split(",") if m]


def test_engine_and_node_declarations_do_not_import_torch():
    imports = (
        "import latentgraph.graph, latentgraph.cli, latentgraph.nodes\n"
        "from latentgraph.wiring import node_registry\n"
        "assert 'UNetDenoise' in node_registry()"
    )
    assert _heavy_modules_after(imports) == []


def test_importing_latentgraph_or_its_engine_imports_neither_nodes_nor_server():
    """`latentgraph` is the composition root, but importing it (or the engine under it) only
    wires things on first use of run/load/sweep."""
    for imports in ("import latentgraph", "import latentgraph.graph",
                    "import latentgraph.graph.validate, latentgraph.graph.formats"):  # fmt: skip
        script = (
            f"import sys\n{imports}\n"
            "print(','.join(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('torch', 'diffusers', 'transformers') or m.startswith(('latentgraph.nodes', "
            "'latentgraph.server', 'latentgraph.api', 'latentgraph.cli')))))\n"
        )
        out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                             check=True)  # fmt: skip
        assert out.stdout.strip() == "", f"{imports!r} imported {out.stdout.strip()}"


def _prints_ok(script: str) -> None:
    """Run `script` in a fresh interpreter (nothing imported yet): it must end printing ok."""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


def test_latentgraph_exposes_the_facade_lazily():
    script = (
        "import sys, latentgraph\n"
        "assert 'latentgraph.api' not in sys.modules\n"
        "from latentgraph import api\n"
        "assert (latentgraph.run, latentgraph.load, latentgraph.sweep) == "
        "(api.run, api.load, api.sweep)\n"
        "from latentgraph.graph.context import Settings\n"
        "assert latentgraph.Settings is Settings  # run(settings=...) needs it (docs/gpu.md)\n"
        "try:\n    latentgraph.nope\nexcept AttributeError:\n    print('ok')\n"
    )
    _prints_ok(script)


def test_latentgraph_exposes_what_a_caller_of_run_catches_and_passes_lazily():
    """`except latentgraph.WorkflowError`, `cancel=latentgraph.CancelToken()` and the events
    `on_event=` receives (README, docs/python.md), none imported by `import latentgraph`."""
    script = (
        "import sys, latentgraph\n"
        "assert [m for m in sys.modules if m.startswith('latentgraph.')] == []\n"
        "from latentgraph.graph import context, events, problems\n"
        "assert latentgraph.WorkflowError is problems.WorkflowError\n"
        "assert latentgraph.CancelToken is context.CancelToken\n"
        "names = ['Event', 'RunStarted', 'NodesCached', 'NodeStarted', 'NodeProgress',\n"
        "         'NodeWarning', 'NodeFinished', 'NodeFailed', 'RunFinished']\n"
        "assert [getattr(latentgraph, n) for n in names] == [getattr(events, n) for n in names]\n"
        "assert set(names) | {'WorkflowError', 'CancelToken', 'run'} <= set(dir(latentgraph))\n"
        "print('ok')\n"
    )
    _prints_ok(script)


def test_a_type_checker_is_shown_every_name_latentgraph_hands_out():
    """The names `latentgraph.__getattr__` hands out are imported under TYPE_CHECKING too, each
    the object it hands out: a name added to one and not the other is `Any` to a checker."""
    import ast

    import latentgraph

    tree = ast.parse((REPO / "app" / "__init__.py").read_text())
    block = next(n for n in tree.body if isinstance(n, ast.If)
                 and ast.unparse(n.test) == "TYPE_CHECKING")  # fmt: skip
    typed = {}
    for imp in block.body:
        assert isinstance(imp, ast.ImportFrom)
        for alias in imp.names:
            assert alias.asname == alias.name  # `X as X`: exported, under mypy --strict too
            typed[alias.name] = f"latentgraph.{imp.module}"
    assert sorted(typed) == latentgraph.__all__
    for name, module in typed.items():
        assert getattr(importlib.import_module(module), name) is getattr(latentgraph, name), name
