"""A node's cache key holds the digest of its code: results computed by code that has since
changed are not served from the disk cache, and two plugins declaring one name do not share
results (each run here is a new process, as a user's runs are)."""

from __future__ import annotations

import compileall
import importlib
import json
import os
import shutil
import subprocess
import sys
import textwrap
import zipfile

from latentgraph.graph import code_identity
from latentgraph.graph.cache import Cache
from latentgraph.graph.code_identity import Code, code_digest
from latentgraph.graph.declare import Registry
from latentgraph.graph.model import Graph, Link, Node
from latentgraph.graph.scheduler import Scheduler

WORKFLOW = """\
version: 1
nodes:
  add: {type: PluginAdd, a: 3, b: 4}
  show: {type: PluginShow, value: add.v}
"""


def _plugin(body: str) -> str:
    return textwrap.dedent(f"""\
        from latentgraph.graph import INT, Int, NodeResult, Output, Socket, node

        @node("PluginAdd", inputs=[Int("a", 0), Int("b", 0)], outputs=[Output("v", INT)])
        def add(ctx, a, b):
            return {body}

        @node("PluginShow", inputs=[Socket("value", INT)], output_node=True)
        def show(ctx, value):
            return NodeResult(ui={{"value": [value]}})
        """)


def _run(tmp_path, nodes_dir) -> tuple[dict, list[str]]:
    """`latentgraph run --json` in a new process: PluginShow's value, and the cached nodes."""
    wf = tmp_path / "wf.yaml"
    wf.write_text(WORKFLOW)
    out = subprocess.run(
        [sys.executable, "-c", "import sys; from latentgraph.cli import main; sys.exit(main())",
         "run", str(wf), "--json", "--nodes-dir", str(nodes_dir),
         "--cache-dir", str(tmp_path / "cache"), "--output-dir", str(tmp_path / "out")],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    events = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    done = next(e for e in events if e["event"] == "run_finished")
    shown = next(e for e in events if e["event"] == "node_finished" and e["node_id"] == "show")
    return shown["ui"]["value"][0], done["cached"]


def test_an_edited_plugin_runs_its_new_code_in_the_next_process(tmp_path):
    plugin = tmp_path / "nodes"
    plugin.mkdir()
    (plugin / "mine.py").write_text(_plugin("a + b"))
    assert _run(tmp_path, plugin) == (7, [])
    assert _run(tmp_path, plugin) == (7, ["show"])  # unchanged: served from disk
    (plugin / "mine.py").write_text(_plugin("a + b + 100"))
    assert _run(tmp_path, plugin) == (107, [])


def test_two_plugins_declaring_one_name_do_not_share_results(tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir()
    two.mkdir()
    (one / "p.py").write_text(_plugin("a + b"))
    (two / "p.py").write_text(_plugin("(a + b) * 2"))
    assert _run(tmp_path, one) == (7, [])
    assert _run(tmp_path, two) == (14, [])


def _declared_in(tmp_path, monkeypatch, files: dict[str, str], module: str):
    """Import `module` from a fresh folder holding `files`; the function `f` it declares."""
    root = tmp_path / "src"
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    monkeypatch.syspath_prepend(str(root))
    monkeypatch.setattr(code_identity, "_digests", {})  # a new process's memo
    for name in [m for m in sys.modules if m.split(".")[0] == module.split(".")[0]]:
        monkeypatch.delitem(sys.modules, name)
    __import__(module)
    return sys.modules[module].f


def test_a_package_digest_covers_its_helpers_and_sub_packages(tmp_path, monkeypatch):
    files = {"lgpk/__init__.py": "", "lgpk/nodes.py": "def f(ctx):\n    return 1\n",
             "lgpk/helpers.py": "X = 1\n", "lgpk/sub/__init__.py": "Y = 1\n"}  # fmt: skip
    first = code_digest(_declared_in(tmp_path, monkeypatch, files, "lgpk.nodes"))
    assert first == code_digest(_declared_in(tmp_path, monkeypatch, files, "lgpk.nodes"))
    for name in ("lgpk/helpers.py", "lgpk/sub/__init__.py"):
        changed = {**files, name: files[name].replace("1", "2")}
        assert code_digest(_declared_in(tmp_path, monkeypatch, changed, "lgpk.nodes")) != first


def test_a_single_module_digest_is_its_own_file(tmp_path, monkeypatch):
    files = {"lgsingle.py": "def f(ctx):\n    return 1\n", "unrelated.py": "Z = 1\n"}
    first = code_digest(_declared_in(tmp_path, monkeypatch, files, "lgsingle"))
    other = {**files, "unrelated.py": "Z = 2\n"}  # beside it, not part of it
    assert code_digest(_declared_in(tmp_path, monkeypatch, other, "lgsingle")) == first
    edited = {**files, "lgsingle.py": "def f(ctx):\n    return 2\n"}
    assert code_digest(_declared_in(tmp_path, monkeypatch, edited, "lgsingle")) != first


def _made_by_exec(source: str, filename: str = "<cell 1>", **names) -> object:
    """The function `f` that `source` declares, compiled as a notebook cell is (no file)."""
    namespace: dict = {"__name__": "lg_made_by_exec", **names}
    exec(compile(source, filename, "exec"), namespace)
    return namespace["f"]


def test_code_without_source_files_is_digested_from_what_it_does():
    source = "def f(ctx, x):\n    return helper(x) * 5 + SHIFT\n"
    helper = _made_by_exec("def f(x):\n    return x + 1\n")
    first = code_digest(_made_by_exec(source, helper=helper, SHIFT=1))
    assert first != ""
    # a notebook runs a cell under a new file name, the function at another line: same code
    moved = "\n\n# a comment\n" + source
    assert code_digest(_made_by_exec(moved, "<cell 7>", helper=helper, SHIFT=1)) == first
    edits = [
        (source.replace("5", "6"), helper, 1),  # a constant
        (source.replace("*", "+"), helper, 1),  # an operation
        (source, _made_by_exec("def f(x):\n    return x + 2\n"), 1),  # the helper it calls
        (source, helper, 2),  # a plain value it names
    ]
    for edited, edited_helper, shift in edits:
        assert code_digest(_made_by_exec(edited, helper=edited_helper, SHIFT=shift)) != first


def test_a_changed_parameter_default_changes_the_digest():
    """The finding: defaults live on the function, not its code object, so a changed default
    (the docs' way to make an input optional) was served the old default's cached results."""
    source = "def f(ctx, x, scale=2, *, shift=(1, 'a')):\n    return x * scale + shift[0]\n"
    first = code_digest(_made_by_exec(source))
    assert code_digest(_made_by_exec("\n" + source, "<cell 9>")) == first
    for edited in (source.replace("scale=2", "scale=3"), source.replace("(1, 'a')", "(2, 'a')"),
                   source.replace("scale=2", "scale=2.0")):  # fmt: skip
        assert code_digest(_made_by_exec(edited)) != first
    # a helper's default too
    helper = "def f(x, by=1):\n    return x + by\n"
    caller = "def f(ctx, x):\n    return helper(x)\n"
    one = code_digest(_made_by_exec(caller, helper=_made_by_exec(helper)))
    two = code_digest(_made_by_exec(caller, helper=_made_by_exec(helper.replace("1", "2"))))
    assert one != two


def test_an_object_default_is_digested_by_its_type_alone():
    """Its repr may hold its address, which differs per process."""
    source = "def f(ctx, x, thing=Thing()):\n    return x\n"
    thing = type("Thing", (), {})
    assert code_digest(_made_by_exec(source, Thing=thing)) == code_digest(
        _made_by_exec(source, Thing=thing)
    )


def test_built_in_nodes_are_keyed_by_their_source_files_alone():
    """Their keys do not change with the code-object digest's rules: they have files."""
    import latentgraph.nodes  # noqa: F401 - registers the nodes
    from latentgraph.graph import default_registry

    built_in = [nt for nt in default_registry if nt.module.startswith("latentgraph.nodes")]
    assert len(built_in) >= 128
    for nt in built_in:
        assert nt.code == Code(code_identity._module_files(nt.fn)[0]) != Code(), nt.name


def test_a_code_digest_is_the_same_in_every_process(tmp_path):
    """A set constant's order follows string hashes, which change per process."""
    script = textwrap.dedent("""\
        from latentgraph.graph.code_identity import code_digest
        namespace = {"__name__": "lg_made_by_exec"}
        exec("def f(ctx, x):\\n    return x in {'a', 'b', 'c', 'd', 'e'}\\n", namespace)
        print(code_digest(namespace["f"]))
        """)
    digests = {
        subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                       env={**os.environ, "PYTHONHASHSEED": seed}, check=True).stdout
        for seed in ("1", "2", "3")
    }  # fmt: skip
    assert len(digests) == 1


def _python_c_run(tmp_path, factor: int) -> tuple[int, list[str]]:
    """A node declared in `python -c` (no source file) run in a new process: its value, and
    the nodes served from the cache."""
    script = textwrap.dedent(f"""\
        import json, latentgraph
        from latentgraph.graph import INT, Int, Output, node
        @node("LgCellScale", inputs=[Int("a", 0)], outputs=[Output("v", INT)])
        def scale(ctx, a):
            return a * {factor}
        cache = latentgraph.Cache(disk_dir={str(tmp_path / "cache")!r})
        r = latentgraph.run({{"nodes": {{"s": {{"type": "LgCellScale", "a": 3}}}}}},
                            targets=["s"], cache=cache)
        print(json.dumps([r.output("s"), r.cached]))
        """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=120, cwd=tmp_path)  # fmt: skip
    assert out.returncode == 0, out.stderr
    value, cached = json.loads(out.stdout.splitlines()[-1])
    return value, cached


def test_a_node_declared_without_a_file_runs_its_edited_code_in_the_next_process(tmp_path):
    assert _python_c_run(tmp_path, 5) == (15, [])
    assert _python_c_run(tmp_path, 5) == (15, ["s"])  # unchanged: served from disk
    assert _python_c_run(tmp_path, 6) == (18, [])


PACKAGE = {"lgpacked/__init__.py": "", "lgpacked/helpers.py": "X = 1\n",
           "lgpacked/nodes.py": "def f(ctx):\n    return 1\n"}  # fmt: skip


def _imported_from(entry: str, monkeypatch) -> object:
    """`lgpacked.nodes.f` imported from the sys.path entry `entry` (a folder or a zip), put
    first."""
    monkeypatch.syspath_prepend(entry)
    monkeypatch.setattr(code_identity, "_digests", {})  # a new process's memo
    for name in [m for m in sys.modules if m.split(".")[0] == "lgpacked"]:
        monkeypatch.delitem(sys.modules, name)
    importlib.invalidate_caches()
    return importlib.import_module("lgpacked.nodes").f


def test_a_package_imported_from_a_zip_is_digested_from_its_code(tmp_path, monkeypatch):
    def zipped(name: str, files: dict[str, str]) -> str:
        path = tmp_path / f"{name}.zip"
        with zipfile.ZipFile(path, "w") as archive:
            for file, text in files.items():
                archive.writestr(file, text)
        return str(path)

    first = code_digest(_imported_from(zipped("one", PACKAGE), monkeypatch))
    assert code_digest(_imported_from(zipped("same", PACKAGE), monkeypatch)) == first
    edited = {**PACKAGE, "lgpacked/nodes.py": "def f(ctx):\n    return 2\n"}
    assert code_digest(_imported_from(zipped("edited", edited), monkeypatch)) != first


def test_a_package_shipped_without_sources_is_digested_from_its_compiled_files(
    tmp_path, monkeypatch
):
    root = tmp_path / "compiled"

    def compiled(files: dict[str, str]) -> str:
        """`files` compiled into `root` (mod.pyc beside where mod.py was), the sources gone."""
        shutil.rmtree(root, ignore_errors=True)
        for file, text in files.items():
            (root / file).parent.mkdir(parents=True, exist_ok=True)
            (root / file).write_text(text)
            os.utime(root / file, (0, 0))  # the .pyc records its source's time
        assert compileall.compile_dir(root, legacy=True, quiet=1)
        for source in root.rglob("*.py"):
            source.unlink()
        return str(root)

    first = code_digest(_imported_from(compiled(PACKAGE), monkeypatch))
    assert code_digest(_imported_from(compiled(PACKAGE), monkeypatch)) == first
    for name in ("lgpacked/nodes.py", "lgpacked/helpers.py"):  # its own code, or a helper
        edited = {**PACKAGE, name: PACKAGE[name].replace("1", "2")}
        assert code_digest(_imported_from(compiled(edited), monkeypatch)) != first


CELL = """\
from latentgraph.graph import INT, Int, Output, Socket, node

SCALE = 2

def helper(x):
    return x + 1

@node("LgCellStart", inputs=[Int("a", 0)], outputs=[Output("v", INT)], registry=registry)
def start(ctx, a):
    return a

@node("LgCellScaled", inputs=[Socket("x", INT)], outputs=[Output("v", INT)], registry=registry)
def scaled(ctx, x):
    return helper(x) * SCALE
"""


def _cell_graph() -> Graph:
    return Graph({"a": Node("a", "LgCellStart", {"a": 3}),
                  "s": Node("s", "LgCellScaled", {"x": Link("a", 0)})})  # fmt: skip


def test_a_notebook_node_runs_again_after_a_later_cell_changes_what_it_names(tmp_path):
    """The finding: the digest of the module globals a notebook node names was taken when it was
    declared, so `SCALE = 3` or a redefined helper in a later cell was served the result
    computed before (memory and disk cache alike)."""
    notebook: dict = {"__name__": "lg_notebook", "registry": Registry()}  # no file: a notebook
    exec(compile(CELL, "<cell 1>", "exec"), notebook)
    scheduler = Scheduler(notebook["registry"], Cache(disk_dir=tmp_path / "cache"))

    def run() -> tuple[int, list[str]]:
        result = scheduler.run(_cell_graph(), targets="s")
        return result.output("s"), result.executed

    assert run() == (8, ["a", "s"])
    assert run() == (8, [])  # unchanged: served from the cache
    exec(compile("SCALE = 3\n", "<cell 2>", "exec"), notebook)
    assert run() == (12, ["s"])
    exec(compile("def helper(x):\n    return x + 2\n", "<cell 3>", "exec"), notebook)
    assert run() == (15, ["s"])
    exec(compile("SCALE = 2\ndef helper(x):\n    return x + 1\n", "<cell 4>", "exec"), notebook)
    assert run() == (8, [])  # the code as it was first: its results again
    scheduler.cache.memory.discard(lambda value: True)  # a new process: the disk cache alone
    notebook["SCALE"] = 5
    assert run() == (20, ["s"])


FACTORY = """\
from latentgraph.graph import INT, Int, Output, node

def make(k, registry):
    @node("LgMadeScale", inputs=[Int("a", 0)], outputs=[Output("v", INT)], registry=registry)
    def scale(ctx, a):
        return a * k

    return scale
"""


def test_a_node_made_by_a_factory_is_keyed_by_the_values_it_closes_over(tmp_path):
    """The finding: `make(2)` and `make(3)` have one code object; the value of `k` is in the
    closure's cell, which the digest did not read, so k=3 was served k=2's results."""
    cache = Cache(disk_dir=tmp_path / "cache")
    graph = Graph({"s": Node("s", "LgMadeScale", {"a": 5})})
    made: dict = {"__name__": "lg_factory"}
    exec(compile(FACTORY, "<cell 1>", "exec"), made)

    def run(k) -> tuple[int, list[str]]:
        registry = Registry()  # declared anew, as a new process or a re-run cell does
        made["make"](k, registry)
        result = Scheduler(registry, cache).run(graph, targets="s")
        return result.output("s"), result.executed

    assert run(2) == (10, ["s"])
    assert run(3) == (15, ["s"])
    assert run(2) == (10, [])
    assert code_digest(made["make"](2, Registry())) != code_digest(made["make"](3, Registry()))


SCRIPT = """\
from latentgraph.graph import INT, Int, Output, Registry, node
from latentgraph.graph.cache import Cache
from latentgraph.graph.model import Graph, Node
from latentgraph.graph.scheduler import Scheduler

registry = Registry()
SCALE = 2


@node("LgScriptScale", inputs=[Int("a", 0)], outputs=[Output("v", INT)], registry=registry)
def scale(ctx, a):
    return a * SCALE


scheduler = Scheduler(registry, Cache())
graph = Graph({"s": Node("s", "LgScriptScale", {"a": 5})})
seen = []
for SCALE in (2, 3, 2):
    result = scheduler.run(graph, targets="s")
    seen.append((result.output("s"), result.executed))
"""


def test_a_node_a_script_declares_runs_again_after_the_script_changes_what_it_names(tmp_path):
    """The finding: a node declared in the script Python runs (`python my.py`, the module
    `__main__`) was keyed by its file alone, read once, so the script's loop setting `SCALE`
    was served the first value's result for every later one."""
    import runpy

    script = tmp_path / "lg_script.py"
    script.write_text(SCRIPT)
    ran = runpy.run_path(str(script), run_name="__main__")  # as `python lg_script.py` runs it
    assert ran["seen"] == [(10, ["s"]), (15, ["s"]), (10, [])]
