"""Node plugins from folders and entry points: what is imported, in which order, under which
module name, what a failure reports, and what reaches the caller's registry.
(test_formats.py has the first tests of a broken plugin and of entry points.)"""

from __future__ import annotations

import hashlib
import importlib.metadata
import sys
import uuid
import warnings
from pathlib import Path

import pytest

from latentgraph.graph import plugins
from latentgraph.graph.declare import NodeType, Registry, default_registry
from latentgraph.graph.node_docs import builtin_only
from latentgraph.graph.plugins import PluginFailure, PluginWarning, SkippedNode, load_plugins


def _unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:10]}"


def _node_source(name: str, log: str | None = None) -> str:
    """A plugin declaring node type `name`; appends its name to `log` when imported."""
    note = f"import pathlib\nwith open({log!r}, 'a') as f:\n    f.write({name!r} + '\\n')\n"
    return ((note if log else "") + "from latentgraph.graph import node\n"
            f"@node({name!r}, output_node=True)\ndef f(ctx):\n    return ()\n")  # fmt: skip


def _module_name(path, file) -> str:
    digest = hashlib.sha1(str(file.resolve()).encode()).hexdigest()[:8]
    stem = "".join(c if c.isalnum() else "_" for c in path.stem)
    return f"latentgraph_plugin_{stem}_{digest}"


def test_folder_plugins_load_in_name_order_and_skip_what_is_not_a_plugin(tmp_path):
    log = tmp_path / "imported.txt"
    folder = tmp_path / "nodes"
    folder.mkdir()
    names = {n: _unique(n) for n in ("b", "a", "pkg", "hidden", "private", "notpkg", "txt")}
    (folder / "b.py").write_text(_node_source(names["b"], str(log)))
    (folder / "a.py").write_text(_node_source(names["a"], str(log)))
    (folder / "pkg").mkdir()
    (folder / "pkg" / "__init__.py").write_text(_node_source(names["pkg"], str(log)))
    (folder / ".hidden.py").write_text(_node_source(names["hidden"], str(log)))
    (folder / "_private.py").write_text(_node_source(names["private"], str(log)))
    (folder / "notpkg").mkdir()  # a folder without __init__.py
    (folder / "notpkg" / "mod.py").write_text(_node_source(names["notpkg"], str(log)))
    (folder / "notes.txt").write_text(_node_source(names["txt"], str(log)))
    (folder / "folder.py").mkdir()  # a folder named like a file, without __init__.py
    target = Registry()
    failures: list[PluginFailure] = []
    loaded = load_plugins([folder], entry_points=False, registry=target, errors=failures)
    assert failures == []
    assert loaded == [str(folder / "a.py"), str(folder / "b.py"), str(folder / "pkg")]
    assert log.read_text().split() == [names["a"], names["b"], names["pkg"]]
    assert sorted(target.names()) == sorted([names["a"], names["b"], names["pkg"]])
    # a second load imports nothing again and reports the same plugins
    assert load_plugins([folder], entry_points=False, registry=Registry(), errors=failures) == (
        loaded)  # fmt: skip
    assert log.read_text().split() == [names["a"], names["b"], names["pkg"]]
    assert failures == []


def test_plugin_module_names_are_per_file_and_never_builtin(tmp_path):
    one, two = tmp_path / "one", tmp_path / "two-x"
    for folder in (one, two):
        folder.mkdir()
    first, second = _unique("SameFile"), _unique("SameFile")
    (one / "my-nodes.py").write_text(_node_source(first))
    (two / "my-nodes.py").write_text(_node_source(second))
    (two / "pack.v2").mkdir()
    third = _unique("Pack")
    (two / "pack.v2" / "__init__.py").write_text(_node_source(third))
    target = Registry()
    failures: list[PluginFailure] = []
    load_plugins([one, two], entry_points=False, registry=target, errors=failures)
    assert failures == []
    assert target[first].module == _module_name(one / "my-nodes.py", one / "my-nodes.py")
    assert target[second].module == _module_name(two / "my-nodes.py", two / "my-nodes.py")
    assert target[first].module != target[second].module
    pack = _module_name(two / "pack.v2", two / "pack.v2" / "__init__.py")
    assert target[third].module == pack and sys.modules[pack].__path__ == [str(two / "pack.v2")]
    assert not sys.modules[target[first].module].__spec__.submodule_search_locations
    assert target[first].module.startswith("latentgraph_plugin_my_nodes_")
    assert list(builtin_only(target)) == []


def test_a_package_plugin_imports_its_own_submodules(tmp_path):
    name = _unique("Inner")
    (tmp_path / "pack").mkdir()
    (tmp_path / "pack" / "__init__.py").write_text("from .inner import VALUE\n")
    (tmp_path / "pack" / "inner.py").write_text(_node_source(name) + "VALUE = 1\n")
    target = Registry()
    failures: list[PluginFailure] = []
    assert load_plugins([tmp_path], entry_points=False, registry=target, errors=failures) == [
        str(tmp_path / "pack")]  # fmt: skip
    assert failures == [] and name in target


def test_plugins_after_a_failed_one_still_load(tmp_path):
    names = [_unique("After")]
    (tmp_path / "a_bad.py").write_text("raise RuntimeError('first')\n")
    (tmp_path / "b_good.py").write_text(_node_source(names[0]))
    target = Registry()
    failures: list[PluginFailure] = []
    loaded = load_plugins([tmp_path], entry_points=False, registry=target, errors=failures)
    assert loaded == [str(tmp_path / "b_good.py")] and names[0] in target
    assert [f.origin for f in failures] == [str(tmp_path / "a_bad.py")]


def test_a_failed_plugin_is_forgotten_and_loads_once_fixed(tmp_path):
    path = tmp_path / "flaky.py"
    path.write_text("raise ValueError('not yet')\n")
    module = _module_name(path, path)
    failures: list[PluginFailure] = []
    assert load_plugins([tmp_path], entry_points=False, errors=failures) == []
    assert module not in sys.modules
    (failure,) = failures
    assert failure.origin == str(path) and failure.message == "ValueError: not yet"
    lines = failure.traceback.splitlines()
    assert lines[0] == "Traceback (most recent call last):" and lines[1].startswith("  File ")
    assert f'  File "{path}", line 1, in <module>' in lines
    assert str(path) in failure.traceback
    assert failure.traceback.rstrip().endswith("ValueError: not yet")
    name = _unique("Fixed")
    path.write_text(_node_source(name))
    failures.clear()
    target = Registry()
    assert load_plugins([tmp_path], entry_points=False, registry=target, errors=failures) == [
        str(path)]  # fmt: skip
    assert failures == [] and name in target and module in sys.modules


def test_only_new_node_types_reach_the_callers_registry(tmp_path):
    name, clash = _unique("New"), _unique("Clash")
    (tmp_path / "new.py").write_text(_node_source(name))
    (tmp_path / "clash.py").write_text(_node_source(clash))
    # the caller's registry already holds a type of the plugin's name: it keeps its own
    target = Registry()
    own = target.add(NodeType(clash, lambda ctx: (), (), (), module="caller"))
    failures: list[PluginFailure] = []
    load_plugins([tmp_path], entry_points=False, registry=target, errors=failures)
    assert failures == []
    assert sorted(target.names()) == sorted([name, clash])  # none of the earlier types
    assert target[clash] is own and target[name] is default_registry[name]
    # a registry given after the plugins were loaded gets nothing: they are not new any more
    later = Registry()
    load_plugins([tmp_path], entry_points=False, registry=later, errors=failures)
    assert later.names() == [] and failures == []


def test_without_a_registry_the_default_one_holds_the_plugins(tmp_path):
    name = _unique("Default")
    (tmp_path / "d.py").write_text(_node_source(name))
    before = len(default_registry)
    assert load_plugins([tmp_path], entry_points=False, errors=[]) == [str(tmp_path / "d.py")]
    assert name in default_registry and len(default_registry) == before + 1


def test_failures_warn_from_the_callers_line_without_an_error_list(tmp_path):
    (tmp_path / "bad.py").write_text("raise RuntimeError('boom')\n")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        load_plugins([tmp_path, tmp_path / "missing"], entry_points=False)
    plugin_warnings = [w for w in caught if w.category is PluginWarning]
    assert [str(w.message) for w in plugin_warnings] == [
        f"node plugin {tmp_path / 'bad.py'} failed to load: RuntimeError: boom ({tmp_path / 'bad.py'}:1)",
        f"node plugin {tmp_path / 'missing'} failed to load: not a directory",
    ]
    # attributed to the caller, not to plugins.py (== this file, except under mutmut, whose
    # trampoline is the caller then)
    assert plugins.__file__ not in {w.filename for w in plugin_warnings}
    assert issubclass(PluginWarning, UserWarning)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        load_plugins([tmp_path], entry_points=False, errors=[])
    assert caught == []


def test_a_file_given_as_a_folder_is_reported(tmp_path):
    file = tmp_path / "plugin.py"
    file.write_text(_node_source(_unique("NotAFolder")))
    failures: list[PluginFailure] = []
    assert load_plugins([file], entry_points=False, errors=failures) == []
    assert [(f.origin, f.message, f.traceback) for f in failures] == [
        (str(file), "not a directory", "")]  # fmt: skip
    assert str(failures[0]) == f"node plugin {file} failed to load: not a directory"


def test_entry_points_exiting_or_failing_do_not_stop_the_others(
    tmp_path, monkeypatch, fresh_entry_points
):
    good = _unique("lg_ep_good_")
    name = _unique("EntryPointNode")
    (tmp_path / f"{good}.py").write_text(_node_source(name))
    (tmp_path / "lg_ep_exit.py").write_text("import sys\nsys.exit(2)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    group = "latentgraph.nodes"
    installed = [importlib.metadata.EntryPoint("quits", "lg_ep_exit", group),
                 importlib.metadata.EntryPoint("good", good, group)]  # fmt: skip
    asked = []

    def entry_points(group):
        asked.append(group)
        return [e for e in installed if e.group == group]

    monkeypatch.setattr(importlib.metadata, "entry_points", entry_points)
    target = Registry()
    failures: list[PluginFailure] = []
    (tmp_path / "folder").mkdir()
    folder_plugin = _unique("FolderNode")
    (tmp_path / "folder" / "f.py").write_text(_node_source(folder_plugin))
    loaded = load_plugins([tmp_path / "folder"], registry=target, errors=failures)
    assert asked == ["latentgraph.nodes"]
    assert loaded == [good, str(tmp_path / "folder" / "f.py")]
    assert [(f.origin, f.message) for f in failures] == [("quits = lg_ep_exit", "SystemExit: 2")]
    assert name in target and folder_plugin in target
    asked.clear()
    assert load_plugins([], entry_points=False, errors=failures) == [] and asked == []


def test_installed_entry_points_are_read_once_per_process(monkeypatch, fresh_entry_points):
    """`latentgraph.run` builds its registry on every call: reading every installed
    distribution's metadata each time cost 4-5 ms twice per call."""
    from latentgraph.wiring import node_registry

    real, asked = importlib.metadata.entry_points, []

    def entry_points(group):
        asked.append(group)
        return real(group=group)

    monkeypatch.setattr(importlib.metadata, "entry_points", entry_points)
    first = node_registry()
    assert node_registry() is first and node_registry() is first
    assert asked == ["latentgraph.nodes"]
    assert "KSampler" in first


def test_an_install_without_the_builtin_entry_point_is_told_to_reinstall(monkeypatch,
                                                                        fresh_entry_points):  # fmt: skip
    from latentgraph.wiring import InstallError, node_registry

    monkeypatch.setattr(importlib.metadata, "entry_points", lambda group: [])
    with pytest.raises(InstallError, match="reinstall latentgraph"):
        node_registry()


@pytest.mark.parametrize("exc", ["KeyboardInterrupt()", "GeneratorExit()"])
def test_an_interrupt_while_importing_is_not_swallowed(tmp_path, exc):
    """Ctrl-C during a plugin's import stops the host; its half-imported module is dropped."""
    path = tmp_path / "slow.py"
    path.write_text(f"raise {exc}\n")
    with pytest.raises(BaseException) as raised:
        load_plugins([tmp_path], entry_points=False, errors=[])
    assert type(raised.value).__name__ == exc.removesuffix("()")
    assert _module_name(path, path) not in sys.modules


# --- a plugin's declarations: refused ones point at their @node, clashing ones are skipped ---


def test_a_declaration_refused_by_node_points_at_its_line(tmp_path, monkeypatch):
    """The plugin-load warning names the file and the line of the refused `@node` (the path
    as given: Python's code objects hold absolute ones), in a package's submodule too."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "nodes" / "pack").mkdir(parents=True)
    name = _unique("Bad")
    (tmp_path / "nodes" / "bad.py").write_text(
        "from latentgraph.graph import Int, node\n\n\n"
        f"@node(\n    {name!r},\n    inputs=[Int('x', 500, min=0, max=100)],\n)\n"
        "def bad(ctx, x):\n    return ()\n")  # fmt: skip
    (tmp_path / "nodes" / "pack" / "__init__.py").write_text("from . import inner\n")
    (tmp_path / "nodes" / "pack" / "inner.py").write_text(
        f"from latentgraph.graph import Int, node\n@node({name + 'P'!r}, inputs=[Int('count')])\n"
        "def badparam(ctx, cnt):\n    return ()\n")  # fmt: skip
    failures: list[PluginFailure] = []
    assert load_plugins([Path("nodes")], entry_points=False, errors=failures) == []
    assert [str(f) for f in failures] == [
        f"node plugin nodes/bad.py failed to load: ValueError: node type {name!r} input 'x': "
        "default 500 is above its max 100 (nodes/bad.py:4)",
        f"node plugin nodes/pack failed to load: ValueError: node type {name + 'P'!r} input "
        "'count': its function badparam(ctx, cnt) has no parameter 'count' (nor **kwargs); "
        f"node type {name + 'P'!r}: its function badparam(ctx, cnt) needs 'cnt', which is no "
        "declared input: declare it, or give the parameter a default (nodes/pack/inner.py:2)",
    ]
    assert name not in default_registry and name + "P" not in default_registry


def test_a_syntax_error_is_placed_at_the_broken_files_line(tmp_path, monkeypatch):
    """Python's own "(b_syntax.py, line 3)" named no folder, and a package's broken submodule
    was placed at the __init__.py line importing it: the place is the broken file's path:line."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "nodes" / "pack").mkdir(parents=True)
    (tmp_path / "nodes" / "b_syntax.py").write_text("x = 1\n\ndef f(:\n    pass\n")
    (tmp_path / "nodes" / "pack" / "__init__.py").write_text("from . import broken\n")
    (tmp_path / "nodes" / "pack" / "broken.py").write_text("a = 1\nb = (\n")
    failures: list[PluginFailure] = []
    assert load_plugins([Path("nodes")], entry_points=False, errors=failures) == []
    assert [str(f) for f in failures] == [
        "node plugin nodes/b_syntax.py failed to load: SyntaxError: invalid syntax "
        "(nodes/b_syntax.py:3)",
        "node plugin nodes/pack failed to load: SyntaxError: '(' was never closed "
        "(nodes/pack/broken.py:2)",
    ]


def test_a_name_already_registered_is_skipped_and_the_rest_of_the_file_loads(tmp_path):
    """ComfyUI skips the clashing name and loads the rest; this said 'failed to load' and lost
    the nodes after the clash. Who has the name is said: a module, or a plugin's file:line."""
    from latentgraph.wiring import node_registry

    assert default_registry is node_registry(errors=[])  # the built-in nodes
    one, two, other = _unique("GoodOne"), _unique("GoodTwo"), _unique("Other")
    (tmp_path / "a.py").write_text(
        "from latentgraph.graph import node\n"  # 1
        f"@node({one!r})\ndef one(ctx):\n    return ()\n"  # 2
        "@node('KSampler')\ndef mine(ctx):\n    return ()\n"  # 5
        f"@node({one!r})\ndef again(ctx):\n    return ()\n"  # 8
        f"@node({two!r})\ndef two(ctx):\n    return ()\n")  # fmt: skip
    (tmp_path / "b.py").write_text(
        f"from latentgraph.graph import node\n@node({two!r})\ndef two(ctx):\n    return ()\n"
        f"@node({other!r})\ndef other(ctx):\n    return ()\n")  # fmt: skip
    builtin = default_registry["KSampler"]
    target = Registry()
    failures: list[PluginFailure] = []
    loaded = load_plugins([tmp_path], entry_points=False, registry=target, errors=failures)
    a, b = tmp_path / "a.py", tmp_path / "b.py"
    assert loaded == [str(a), str(b)]
    assert [str(f) for f in failures] == [
        f"node plugin {a}:5: node type 'KSampler' is already registered by "
        "latentgraph.nodes.comfy; this declaration is skipped",
        f"node plugin {a}:8: node type {one!r} is already registered by {a}:2; this "
        "declaration is skipped",
        f"node plugin {b}:2: node type {two!r} is already registered by {a}:11; this "
        "declaration is skipped",
    ]
    assert all(isinstance(f, SkippedNode) for f in failures)
    assert default_registry["KSampler"] is builtin  # the first declaration wins
    assert sorted(target.names()) == sorted([one, two, other])
    assert target[one].fn.__name__ == "one" and target[two].fn.__name__ == "two"
    with pytest.raises(ValueError, match="already registered"):  # only plugin loading skips
        default_registry.add(NodeType(one, lambda ctx: (), (), ()))


def test_a_skipped_declaration_is_not_named_as_why_a_type_is_unknown(tmp_path):
    """A skipped duplicate loses no node type (the first declaration is registered): an unknown
    type's message named it as a plugin that did not load instead of giving the plugin hint."""
    from latentgraph.graph.validate import PLUGIN_HINT, unknown_type_message

    shared = _unique("Shared")
    for folder in ("one", "two"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "nodes.py").write_text(_node_source(shared))
    target, failures = Registry(), []
    load_plugins([tmp_path / "one", tmp_path / "two"], entry_points=False, registry=target,
                 errors=failures)  # fmt: skip
    assert [type(f) for f in failures] == [SkippedNode] and shared in target
    message = unknown_type_message("latentgraph", _unique("Missing"), target.names(),
                                   target.plugin_failures)  # fmt: skip
    assert "skipped" not in message and message.endswith(PLUGIN_HINT)


def test_a_clash_in_an_entry_point_pack_is_skipped_too(tmp_path, monkeypatch,
                                                       fresh_entry_points):  # fmt: skip
    first, second = _unique("lg_ep_first_"), _unique("lg_ep_second_")
    shared, own = _unique("Shared"), _unique("Own")
    (tmp_path / f"{first}.py").write_text(_node_source(shared))
    (tmp_path / f"{second}.py").write_text(_node_source(shared) + _node_source(own))
    monkeypatch.syspath_prepend(str(tmp_path))
    group = "latentgraph.nodes"
    installed = [importlib.metadata.EntryPoint("first", first, group),
                 importlib.metadata.EntryPoint("second", second, group)]  # fmt: skip
    monkeypatch.setattr(importlib.metadata, "entry_points", lambda group: installed)
    failures: list[PluginFailure] = []
    target = Registry()
    assert load_plugins([], registry=target, errors=failures) == [first, second]
    assert [str(f) for f in failures] == [
        f"node plugin {tmp_path / second}.py:2: node type {shared!r} is already registered by "
        f"{first}; this declaration is skipped"]  # fmt: skip
    assert target[shared].module == first and own in target


def test_an_entry_point_refused_by_node_points_at_its_line(tmp_path, monkeypatch,
                                                            fresh_entry_points):  # fmt: skip
    module = _unique("lg_ep_bad_")
    (tmp_path / f"{module}.py").write_text(
        "from latentgraph.graph import Choice, node\n"
        "@node('X', inputs=[Choice('c', ['a', 'b'], 'z')])\ndef x(ctx, c):\n    return ()\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    entry = importlib.metadata.EntryPoint("bad", module, "latentgraph.nodes")
    monkeypatch.setattr(importlib.metadata, "entry_points", lambda group: [entry])
    failures: list[PluginFailure] = []
    assert load_plugins([], errors=failures) == []
    assert [str(f) for f in failures] == [
        f"node plugin bad = {module} failed to load: ValueError: node type 'X' input 'c': default "
        f"'z' is not one of its choices: 'a', 'b' ({tmp_path / module}.py:2)"]  # fmt: skip


def test_a_comfyui_custom_node_file_is_named_not_silently_empty(tmp_path):
    """ComfyUI's node classes are not loaded; a file holding only them said nothing and its
    nodes were then 'unknown'."""
    (tmp_path / "comfy_style.py").write_text(
        "class Upper:\n    RETURN_TYPES = ('STRING',)\n    FUNCTION = 'run'\n"
        "NODE_CLASS_MAPPINGS = {'Upper': Upper}\n"
    )
    failures: list[PluginFailure] = []
    assert load_plugins([tmp_path], entry_points=False, errors=failures) == []
    assert [str(f) for f in failures] == [
        f"node plugin {tmp_path / 'comfy_style.py'} failed to load: it is a ComfyUI custom node "
        "(NODE_CLASS_MAPPINGS) and declares no latentgraph node: ComfyUI's node classes are not "
        "loaded (docs/custom-nodes.md says how to port one)"
    ]


def test_a_file_declaring_our_nodes_beside_comfyui_mappings_loads(tmp_path):
    name = _unique("BothKinds")
    (tmp_path / "both.py").write_text(_node_source(name) + "NODE_CLASS_MAPPINGS = {}\n")
    target, failures = Registry(), []
    assert load_plugins([tmp_path], entry_points=False, registry=target, errors=failures) == [
        str(tmp_path / "both.py")
    ]
    assert failures == [] and name in target


def test_a_file_that_fails_to_load_registers_none_of_its_nodes(tmp_path, monkeypatch):
    """Whole or not at all: the nodes declared above a refused one (or above the line the
    import stopped at) were listed and usable although the file "failed to load"; and every
    refused declaration of the file is said at once, each at its line."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "nodes").mkdir()
    good, bad, worse, late = (_unique(n) for n in ("Good", "Bad", "Worse", "Late"))
    (tmp_path / "nodes" / "refused.py").write_text(
        "from latentgraph.graph import Int, node\n"
        f"@node({good!r}, inputs=[Int('n', 1)])\ndef good(ctx, n):\n    return ()\n"
        f"@node({bad!r}, inputs=[Int('n', 1.5)])\ndef bad(ctx, n):\n    return ()\n"
        f"@node({worse!r}, inputs=[Int('n', 2.5)])\ndef worse(ctx, n):\n    return ()\n")  # fmt: skip
    (tmp_path / "nodes" / "stopped.py").write_text(
        "from latentgraph.graph import node\n"
        f"@node({late!r}, output_node=True)\ndef late(ctx):\n    return ()\n"
        "raise RuntimeError('boom')\n")  # fmt: skip
    failures: list[PluginFailure] = []
    target = Registry()
    assert load_plugins([Path("nodes")], entry_points=False, registry=target,
                        errors=failures) == []  # fmt: skip
    assert [str(f) for f in failures] == [
        f"node plugin nodes/refused.py failed to load: ValueError: node type {bad!r} input 'n': "
        "default 1.5 is not an integer (INT) (nodes/refused.py:5); ValueError: node type "
        f"{worse!r} input 'n': default 2.5 is not an integer (INT) (nodes/refused.py:8)",
        "node plugin nodes/stopped.py failed to load: RuntimeError: boom (nodes/stopped.py:5)",
    ]
    for name in (good, bad, worse, late):
        assert name not in default_registry and name not in target
    fixed = tmp_path / "nodes" / "stopped.py"  # fixed, loaded again: its nodes are declared
    fixed.write_text(fixed.read_text().replace("raise RuntimeError('boom')\n", ""))
    (tmp_path / "nodes" / "refused.py").unlink()
    assert load_plugins([Path("nodes")], entry_points=False, registry=target) == [
        "nodes/stopped.py"
    ]
    assert late in target


def test_a_plugins_failing_choices_are_placed_at_its_file_as_given(tmp_path, monkeypatch, caplog):
    """`nodes describe` of a plugin Choice whose choices function raises named the file by its
    absolute path, where the plugin's load warnings name it as --nodes-dir gave it."""
    from latentgraph.graph import Settings

    monkeypatch.chdir(tmp_path)
    (tmp_path / "p2").mkdir()
    name = _unique("PickOne")
    (tmp_path / "p2" / "ch.py").write_text(
        "from latentgraph.graph import Choice, node\n"
        "def boom(settings):\n    raise RuntimeError('kaboom')\n"
        f"@node({name!r}, inputs=[Choice('c', boom, None)], output_node=True)\n"  # line 4
        "def pick(ctx, c=None):\n    return ()\n")  # fmt: skip
    target, failures = Registry(), []
    load_plugins([Path("p2")], entry_points=False, registry=target, errors=failures)
    assert failures == []
    node_type = target[name]
    assert node_type.declared_at == "p2/ch.py:4"
    with caplog.at_level("WARNING", logger="latentgraph.declare"):
        assert node_type.shown_choices(node_type.input("c"), Settings()) == []
    assert [r.getMessage() for r in caplog.records] == [
        f"node type {name!r} input 'c' (p2/ch.py:4): could not list the choices: kaboom; "
        "its list is shown empty"
    ]


def test_an_installed_pack_never_takes_a_built_in_nodes_name(tmp_path):
    """A pip-installed pack found before latentgraph's own distribution (here: on PYTHONPATH)
    was loaded first: its SaveImage took the name, the built-in one was skipped with a warning
    naming latentgraph's nodes/images.py, and ComfyUI's KSampler adapter replaced the pack's
    without a word. The built-in nodes load first and keep their names, also from a
    declaration made before they were loaded (a notebook's, here a script's); each plugin
    declaration is said skipped at its own file:line. A new process: the built-in nodes are
    loaded once per process."""
    import json
    import os
    import subprocess

    pack = tmp_path / "lg_clash_pack.py"
    pack.write_text("from latentgraph.graph import node\n"
                    "@node('SaveImage', output_node=True)\ndef save(ctx):\n    return ()\n"  # 2
                    "@node('KSampler', output_node=True)\ndef sample(ctx):\n    return ()\n"  # 5
                    "@node('LgClashOwn', output_node=True)\ndef own(ctx):\n    return ()\n")  # fmt: skip
    dist = tmp_path / "lg_clash_pack-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: lg-clash-pack\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[latentgraph.nodes]\nclash = lg_clash_pack\n")
    script = tmp_path / "notebook.py"
    script.write_text("import json\nfrom latentgraph.graph import node\n"
                      "from latentgraph.wiring import node_registry\n"
                      "@node('PreviewImage', output_node=True)\ndef mine(ctx):\n    return ()\n"  # 4
                      "errors = []\nregistry = node_registry(errors=errors)\n"
                      "print(json.dumps({n: registry[n].module for n in "
                      "('SaveImage', 'KSampler', 'PreviewImage', 'LgClashOwn')}))\n"
                      "for e in errors:\n    print(e)\n")  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    done = subprocess.run([sys.executable, str(script)], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr
    first, *said = done.stdout.splitlines()
    assert json.loads(first) == {
        "SaveImage": "latentgraph.nodes.images", "KSampler": "latentgraph.nodes.comfy",
        "PreviewImage": "latentgraph.nodes.images", "LgClashOwn": "lg_clash_pack"}  # fmt: skip
    skipped = "; this declaration is skipped"
    assert said == [
        f"node plugin {script}:4: node type 'PreviewImage' is already registered by "
        f"latentgraph.nodes.images{skipped}",
        f"node plugin {pack}:2: node type 'SaveImage' is already registered by "
        f"latentgraph.nodes.images{skipped}",
        f"node plugin {pack}:5: node type 'KSampler' is already registered by "
        f"latentgraph.nodes.comfy{skipped}",
    ]


RACING_PLUGIN = """\
import threading

import lg_plugin_gate
from latentgraph.graph import node

lg_plugin_gate.importing(threading.current_thread().name)


@node({name!r}, output_node=True)
def f(ctx):
    return ()
"""


class _Gate:
    """Where each of two threads loading one plugin folder is: `reached[thread]` is set when
    it asks for the loading lock or imports the plugin's file, `importing[thread]` only for
    the latter, whose import then waits for `go[thread]` (the test's turn order)."""

    def __init__(self, threads: tuple[str, ...]) -> None:
        import threading

        self.reached = {t: threading.Event() for t in threads}
        self.importing_now = {t: threading.Event() for t in threads}
        self.go = {t: threading.Event() for t in threads}

    def importing(self, thread: str) -> None:
        self.reached[thread].set()
        self.importing_now[thread].set()
        assert self.go[thread].wait(30)


class _AskedLock:
    """The loading lock, saying in `gate` which thread asks for it (before it waits)."""

    def __init__(self, gate: _Gate) -> None:
        import threading

        self.gate, self.lock = gate, threading.RLock()

    def __enter__(self) -> None:
        import threading

        self.gate.reached[threading.current_thread().name].set()
        self.lock.acquire()

    def __exit__(self, *exc) -> None:
        self.lock.release()


def test_two_threads_loading_one_folder_at_once_both_get_its_nodes(tmp_path, monkeypatch):
    """Two threads making a process's first `latentgraph.run(..., nodes_dirs=[...])` at
    once: both imported the file, the second's node clashed with the first's (said as a
    notebook cell run again) and its failed load removed the first's node too, while the file
    was marked loaded: its node type was unknown for the rest of the process. The turns are
    forced: the first thread is inside the plugin's import when the second asks to load."""
    import threading

    name = _unique("Racing")
    folder = tmp_path / "nodes"
    folder.mkdir()
    (folder / "racing.py").write_text(RACING_PLUGIN.format(name=name))
    gate = _Gate(("first", "second"))
    monkeypatch.setitem(sys.modules, "lg_plugin_gate", gate)
    monkeypatch.setattr(plugins, "_loading", _AskedLock(gate), raising=False)
    failures: dict[str, list] = {"first": [], "second": []}
    loaded: dict[str, list] = {}

    def load(thread: str) -> None:
        loaded[thread] = load_plugins([folder], entry_points=False, errors=failures[thread])

    threads = {t: threading.Thread(target=load, args=(t,), name=t) for t in gate.go}
    try:
        threads["first"].start()
        assert gate.importing_now["first"].wait(30)
        threads["second"].start()
        assert gate.reached["second"].wait(30)  # asks for the lock, or imports the file too
        gate.go["first"].set()
        threads["first"].join(30)
    finally:
        for event in gate.go.values():
            event.set()
        for thread in threads.values():
            thread.join(30)
    assert failures == {"first": [], "second": []}
    assert loaded == {"first": [str(folder / "racing.py")], "second": [str(folder / "racing.py")]}
    assert name in default_registry  # for good: the file is not imported again
