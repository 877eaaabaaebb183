"""A node's cache key holds the digest of its code: results computed by code that has since
changed are not served from the disk cache, and two plugins declaring one name do not share
results (each run here is a new process, as a user's runs are)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from latentgraph.graph import code_identity
from latentgraph.graph.code_identity import code_digest

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


def test_code_without_source_files_has_no_digest():
    namespace: dict = {"__name__": "lg_made_by_exec"}
    exec("def f(ctx):\n    return 1\n", namespace)
    assert code_digest(namespace["f"]) == ""
