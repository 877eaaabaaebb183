"""The notebook API: load with params, run, sweeps that share everything upstream."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest

from latentgraph import api
from latentgraph.graph.cache import Cache

from .conftest import build

WORKFLOW = """\
version: 1
params:
  seed: 1
  base: 5
nodes:
  a: {type: Const, value: $base}
  b: {type: Inc, x: a, by: 10}
  s: {type: Const, value: $seed}
  c: {type: Add, a: b, b: s.value}
  out: {type: Echo, x: c}
"""


@pytest.fixture
def workflow(tmp_path):
    path = tmp_path / "toy.yaml"
    path.write_text(WORKFLOW)
    return path


def test_run_a_path_with_params(toys, workflow):
    r = api.run(workflow, params={"seed": 7}, registry=toys.registry, cache=Cache())
    assert r.status == "success" and r.outputs["out"] == (22,)


def test_params_reach_node_code_via_extra(toys, workflow):
    from latentgraph.graph import INT, Int, Output, node

    seen = []

    @node("Params", inputs=[Int("x", 0)], outputs=[Output("v", INT)], output_node=True,
          registry=toys.registry)  # fmt: skip
    def params_node(ctx, x):
        seen.append(ctx.extra.get("params"))
        return x

    path = workflow.parent / "p.yaml"
    path.write_text("version: 1\nparams: {n: 1}\nnodes:\n  p: {type: Params, x: $n}\n")
    api.run(path, params={"n": 3}, registry=toys.registry, cache=Cache())
    assert seen == [{"n": 3}]


def test_sweep_shares_everything_upstream_of_the_swept_param(toys, workflow):
    results = api.sweep(workflow, "seed", [1, 2, 3], registry=toys.registry, cache=Cache())
    assert [r.outputs["out"] for r in results] == [(16,), (17,), (18,)]
    assert toys.calls["a"] == 1 and toys.calls["b"] == 1
    assert toys.calls["s"] == toys.calls["c"] == toys.calls["out"] == 3


def test_sweep_over_a_loaded_workflow(toys, workflow):
    wf = api.load(workflow, params={"base": 0}, registry=toys.registry)
    results = api.sweep(wf, "seed", [1, 2], registry=toys.registry, cache=Cache())
    assert [r.outputs["out"] for r in results] == [(11,), (12,)]  # base=0 kept while sweeping
    assert toys.calls["b"] == 1


def test_workflow_from_text_can_be_swept(toys):
    from latentgraph.graph.workflow import load_workflow

    wf = load_workflow("inline.yaml", text=WORKFLOW, registry=toys.registry)
    results = api.sweep(wf, "base", [0, 1], registry=toys.registry, cache=Cache())
    assert [r.outputs["out"] for r in results] == [(11,), (12,)]


def test_run_a_graph_and_refuse_params_on_it(toys):
    g = build({"a": ("Const", {"value": 2}), "o": ("Echo", {"x": "@a"})})
    assert api.run(g, registry=toys.registry, cache=Cache()).outputs["o"] == (2,)
    with pytest.raises(TypeError, match="params need a workflow"):
        api.run(g, params={"x": 1}, registry=toys.registry, cache=Cache())


def test_default_cache_is_shared_and_on_disk(toys, workflow, tmp_path, monkeypatch):
    monkeypatch.setenv("LATENTGRAPH_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(api, "_shared", None)
    api.run(workflow, registry=toys.registry)
    toys.calls.clear()
    r = api.run(workflow, registry=toys.registry)
    assert r.cached == ["out"] and not toys.calls
    assert any((tmp_path / "cache" / "outputs").rglob("*"))


def test_keywords_that_are_not_options_are_params(toys, workflow):
    r = api.run(workflow, seed=7, base=0, registry=toys.registry, cache=Cache())
    assert r.outputs["out"] == (17,)
    results = api.sweep(workflow, "seed", [1, 2], base=0, registry=toys.registry, cache=Cache())
    assert [r.outputs["out"] for r in results] == [(11,), (12,)]


def test_load_reads_comfy_api_json_and_png_like_the_cli(toys, tmp_path):
    from PIL import Image
    from PIL.PngImagePlugin import PngInfo

    prompt = {"1": {"class_type": "Const", "inputs": {"value": 4}},
              "2": {"class_type": "Echo", "inputs": {"x": ["1", 0]}}}  # fmt: skip
    path = tmp_path / "api.json"
    path.write_text(json.dumps({"prompt": prompt}))
    wf = api.load(path, registry=toys.registry)
    assert wf.format == "api" and wf.extra["prompt"] == prompt
    info = PngInfo()
    info.add_text("prompt", json.dumps(prompt))
    png = tmp_path / "made.png"
    Image.new("RGB", (4, 4)).save(png, pnginfo=info)
    from_png = api.load(png, registry=toys.registry)
    assert from_png.format == "api" and from_png.graph["2"].inputs == wf.graph["2"].inputs
    overridden = api.run(png, params={"1.value": 9}, registry=toys.registry, cache=Cache())
    assert overridden.outputs["2"] == (9,)  # ComfyUI formats: node.input overrides


def test_a_sweep_needs_a_workflow_not_a_graph(toys):
    g = build({"a": ("Const", {"value": 2}), "o": ("Echo", {"x": "@a"})})
    with pytest.raises(TypeError, match="a sweep needs a workflow"):
        api.sweep(g, "seed", [1], registry=toys.registry, cache=Cache())


def test_a_param_named_scheduler_given_as_a_keyword_says_how_to_set_it(toys, workflow):
    """`scheduler=` is the engine Scheduler; a workflow's param of that name (the sampler's,
    often) given as a keyword is named, with the way to set it, not an AttributeError."""
    for call in (lambda: api.run(workflow, registry=toys.registry, scheduler="euler"),
                 lambda: api.sweep(workflow, "x", [1], registry=toys.registry, scheduler="euler")):  # fmt: skip
        with pytest.raises(TypeError, match=r"pass params=\{'scheduler': 'euler'\}"):
            call()


def test_a_folder_or_device_the_run_cannot_use_is_refused_before_it_runs(
    toys, workflow, tmp_path
):  # fmt: skip
    """As `latentgraph run` does (app/preflight.py): found at SaveImage instead, they cost the
    whole run's work."""
    from latentgraph.graph import Settings

    (tmp_path / "afile").write_text("x")
    ran = []
    out = tmp_path / "out"
    for settings, field, message in [
        (Settings(output_dir=tmp_path / "afile"), "output_dir",
         "a file is there; expected a folder"),
        (Settings(output_dir=tmp_path / "afile" / "sub"), "output_dir",
         f"{tmp_path / 'afile'} is a file; expected a folder"),
        # found at PreviewImage, LoadImage: the run's end, or its last node's
        (Settings(output_dir=out, temp_dir=tmp_path / "afile"), "temp_dir",
         "a file is there; expected a folder"),
        (Settings(output_dir=out, input_dir=tmp_path / "afile" / "in"), "input_dir",
         f"{tmp_path / 'afile'} is a file; expected a folder"),
    ]:  # fmt: skip
        with pytest.raises(ValueError, match=f"settings.{field} .*: {message}"):
            api.run(workflow, registry=toys.registry, cache=Cache(), settings=settings,
                    on_event=ran.append)  # fmt: skip
    assert ran == []  # not one event: nothing ran


def test_a_device_this_machine_lacks_is_refused_before_the_run(toys, workflow):
    import torch

    from latentgraph.graph import Settings

    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA GPU: 'cuda' is a device it has")
    with pytest.raises(ValueError, match="settings.device: device 'cuda': this torch sees no"):
        api.run(workflow, registry=toys.registry, cache=Cache(), settings=Settings(device="cuda"))


def test_a_swept_and_a_given_value_are_placed_at_what_gave_them(toys, workflow):
    """Each run's graph says where its values came from, so checking or running it names how
    they were given: the swept param's `sweep seed=...`, another given param's `param` (the
    CLI's `--sweep` and `--set`, which it says), the file's own values their line."""
    [wf] = api.sweep_workflows(workflow, "seed", ["abc"], params={"base": 6},
                               registry=toys.registry)  # fmt: skip
    assert str(wf.graph.where("s", "value")) == f"sweep seed='abc' ($seed at {workflow}:8:27)"
    assert str(wf.graph.where("a", "value")) == f"param base=6 ($base at {workflow}:6:27)"
    assert str(wf.graph.where("b", "by")) == f"{workflow}:7:28"
    [wf] = api.sweep_workflows(api.load(workflow, registry=toys.registry), "seed", ["abc"],
                               params={"base": "6"}, registry=toys.registry,
                               given_as=("--set", "--sweep"))  # fmt: skip
    assert str(wf.graph.where("s", "value")) == f"--sweep seed=abc ($seed at {workflow}:8:27)"
    assert str(wf.graph.where("a", "value")) == f"--set base=6 ($base at {workflow}:6:27)"
    same = api.load(workflow, params={"base": 5}, registry=toys.registry)  # the file's value
    assert str(same.graph.where("a", "value")) == f"{workflow}:6:27"


@pytest.mark.parametrize("values", [[], "123"])
def test_a_sweep_over_no_values_is_refused(toys, workflow, values):
    """sweep(..., "seed", []) silently returned []; a str was swept letter by letter."""
    with pytest.raises(ValueError, match=r"sweep 'seed': expected a list of at least one value"):
        api.sweep(workflow, "seed", values, registry=toys.registry, cache=Cache())


def test_errors_about_values_given_from_python_do_not_name_cli_flags(toys, workflow):
    """`latentgraph.run("wf.yaml", seed="abc")` said `--set seed=abc (...)`, a flag the caller
    never wrote; an unknown name `--set nope`, a swept value `--sweep seed=x`. One function
    words them all (`shown_value`, `unknown_override`), told how the value was given."""
    from latentgraph.graph.problems import WorkflowError

    def refusal(call) -> str:
        with pytest.raises(WorkflowError) as refused:
            call()
        assert "--set" not in str(refused.value) and "--sweep" not in str(refused.value)
        return str(refused.value)

    kw = {"registry": toys.registry, "cache": Cache()}
    said = "node 's' input 'value': expected an integer (INT), got 'abc'"
    assert refusal(lambda: api.run(workflow, seed="abc", **kw)) == (
        f"param seed='abc' ($seed at {workflow}:8:27): {said}")  # fmt: skip
    loaded = api.load(workflow, registry=toys.registry)
    assert refusal(lambda: api.run(loaded, params={"seed": "abc"}, **kw)).startswith(
        f"param seed='abc' ($seed at {workflow}:8:27): ")  # fmt: skip
    assert refusal(lambda: api.run(workflow, nope=1, **kw)) == (
        f"{workflow}:3:3: param nope: the workflow has no param 'nope' (params: base, seed)")  # fmt: skip
    assert refusal(lambda: api.sweep(workflow, "seed", [1, "abc"], **kw)).startswith(
        f"sweep seed='abc' ($seed at {workflow}:8:27): ")  # fmt: skip
    assert refusal(lambda: api.sweep(workflow, "sed", [1], **kw)) == (
        f"{workflow}:3:3: sweep sed: the workflow has no param 'sed'; did you mean 'seed'? "
        "(params: base, seed)")  # fmt: skip


PROMPT = {"1": {"class_type": "PrimitiveInt", "inputs": {"value": 4}},
          "2": {"class_type": "PreviewAny", "inputs": {"source": ["1", 0]}}}  # fmt: skip


def test_a_workflow_given_as_a_dict_runs_as_its_file_would(tmp_path):
    """latentgraph.run(prompt_dict) raised 'expected a workflow path ... got dict'. An API
    prompt, an editor workflow and our own document are told apart as in a file
    (graph/formats.py), with `node.input` params for the ComfyUI formats."""
    import latentgraph
    from latentgraph.graph.comfy_editor import editor_from_graph

    r = latentgraph.run(PROMPT, cache=Cache())
    assert (r.status, r.ui["2"]) == ("success", {"text": ["4"]})
    assert latentgraph.run({"prompt": PROMPT}, params={"1.value": 9}, cache=Cache()).ui["2"] == {
        "text": ["9"]}  # fmt: skip
    editor = editor_from_graph(latentgraph.load(PROMPT).graph)
    assert latentgraph.load(editor).format == "editor"
    assert latentgraph.run(editor, cache=Cache()).ui["2"] == {"text": ["4"]}
    ours = {"version": 1, "params": {"n": 1},
            "nodes": {"n": {"type": "PrimitiveInt", "value": "$n"},
                      "p": {"type": "PreviewAny", "source": "n"}}}  # fmt: skip
    assert latentgraph.run(ours, n=6, cache=Cache()).ui["p"] == {"text": ["6"]}
    results = latentgraph.sweep(PROMPT, "1.value", [1, 2], cache=Cache())
    assert [r.ui["2"]["text"] for r in results] == [["1"], ["2"]]


PLUGIN = """
from latentgraph.graph import INT, Int, Output, node


@node("ApiDirTwice", inputs=[Int("x", 1)], outputs=[Output("y", INT)])
def twice(ctx, x):
    return 2 * x
"""


def test_nodes_dirs_loads_plugin_folders_as_nodes_dir_does(tmp_path):
    """No Python call took what --nodes-dir gives."""
    import latentgraph
    from latentgraph.graph.problems import WorkflowError

    plugins = tmp_path / "my_nodes"
    plugins.mkdir()
    (plugins / "twice.py").write_text(PLUGIN)
    prompt = {"1": {"class_type": "ApiDirTwice", "inputs": {"x": 5}},
              "2": {"class_type": "PreviewAny", "inputs": {"source": ["1", 0]}}}  # fmt: skip
    with pytest.raises(WorkflowError, match="ApiDirTwice"):  # not loaded yet
        latentgraph.run(prompt, cache=Cache())
    with pytest.raises(ValueError, match=f"nodes_dirs: {tmp_path / 'none'} is not a folder"):
        latentgraph.run(prompt, nodes_dirs=[tmp_path / "none"], cache=Cache())
    with pytest.raises(ValueError, match="nodes_dirs: expected a list of folders"):
        latentgraph.run(prompt, nodes_dirs=str(plugins), cache=Cache())
    r = latentgraph.run(prompt, nodes_dirs=[str(plugins)], cache=Cache())
    assert (r.status, r.ui["2"]) == ("success", {"text": ["10"]})
    results = latentgraph.sweep(prompt, "1.x", [1, 2], nodes_dirs=[plugins], cache=Cache())
    assert [r.ui["2"]["text"] for r in results] == [["2"], ["4"]]


def test_a_plugin_edited_after_it_was_imported_is_warned_not_run_silently(tmp_path):
    """A plugin folder stays imported for the whole process (docs/python.md): an edit to its
    file was never picked up by a later `run(..., nodes_dirs=...)`, which ran the old code
    without a word."""
    import os

    import latentgraph
    from latentgraph.graph.plugins import PluginWarning

    plugins = tmp_path / "edited_nodes"
    plugins.mkdir()
    plugin = plugins / "thrice.py"
    plugin.write_text(PLUGIN.replace("ApiDirTwice", "ApiDirEdited"))
    prompt = {"1": {"class_type": "ApiDirEdited", "inputs": {"x": 5}},
              "2": {"class_type": "PreviewAny", "inputs": {"source": ["1", 0]}}}  # fmt: skip
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        latentgraph.run(prompt, nodes_dirs=[plugins], cache=Cache())
        latentgraph.run(prompt, nodes_dirs=[plugins], cache=Cache())  # unchanged: no word
        assert not [w for w in caught if "thrice.py" in str(w.message)]
        plugin.write_text(plugin.read_text().replace("2 * x", "3 * x"))
        os.utime(plugin, ns=(1, 1))  # a new mtime, however coarse the file system's clock
        r = latentgraph.run(prompt, nodes_dirs=[plugins], cache=Cache())
    assert r.ui["2"] == {"text": ["10"]}  # the code imported first
    [said] = [w for w in caught if "thrice.py" in str(w.message)]
    assert said.category is PluginWarning and "restart Python" in str(said.message)


def test_a_plugin_failing_to_load_is_warned_at_the_callers_line(tmp_path):
    """A PluginWarning from `latentgraph.run(..., nodes_dirs=...)` (and `load`, `sweep`)
    pointed at latentgraph's wiring.py: a notebook showed no line of its own."""
    import latentgraph
    from latentgraph.graph.plugins import PluginWarning

    plugins = tmp_path / "broken_nodes"
    plugins.mkdir()
    (plugins / "bad.py").write_text("raise RuntimeError('boom')\n")
    prompt = {"1": {"class_type": "PrimitiveInt", "inputs": {"value": 5}},
              "2": {"class_type": "PreviewAny", "inputs": {"source": ["1", 0]}}}  # fmt: skip
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert latentgraph.run(prompt, nodes_dirs=[plugins], cache=Cache()).status == "success"
        latentgraph.load(prompt, nodes_dirs=[plugins])
        latentgraph.sweep(prompt, "1.value", [1], nodes_dirs=[plugins], cache=Cache())
    places = [(w.filename, w.category) for w in caught if "bad.py" in str(w.message)]
    assert places == [(__file__, PluginWarning)] * 3


def test_run_result_is_exported_and_a_failing_node_is_a_status_not_an_exception(toys):
    """RunResult was not importable from latentgraph (help(run) said `-> 'RunResult'`); that a
    node's failure is no exception is said where users look."""
    import latentgraph
    from latentgraph.graph.scheduler import RunResult

    assert latentgraph.RunResult is RunResult and "RunResult" in dir(latentgraph)
    failing = {"1": {"class_type": "Const", "inputs": {"value": 1}},
               "2": {"class_type": "Fail", "inputs": {"x": ["1", 0]}},
               "3": {"class_type": "Echo", "inputs": {"x": ["2", 0]}}}  # fmt: skip
    r = latentgraph.run(failing, registry=toys.registry, cache=Cache())
    assert r.status == "failed" and [f.node_id for f in r.failures] == ["2"]
    assert r.failures[0].message == "told to fail on 1" and r.failures[0].traceback
    assert '`status` is "failed"' in " ".join(latentgraph.run.__doc__.split())


def test_a_workflow_given_as_json_text_is_told_to_pass_the_dict():
    """`run(json.dumps(prompt))` was read as a file name and echoed the whole JSON in 'cannot
    read workflow: No such file or directory'."""
    import json

    import latentgraph

    text = json.dumps({"1": {"class_type": "PrimitiveInt", "inputs": {"value": 1}}})
    with pytest.raises(TypeError, match=r"pass the dict it holds \(json.loads\(text\)\)") as err:
        latentgraph.load(text)
    assert "PrimitiveInt" not in str(err.value)


@pytest.mark.parametrize("call", ["run", "load", "sweep"])
def test_a_workflow_given_as_yaml_text_says_what_was_given_and_what_is_accepted(call):
    """`run(yaml_text)` was read as a file name: the whole document echoed in 'cannot read
    workflow: No such file or directory'. It says it was given text and what a workflow is."""
    import latentgraph

    text = "version: 1\nnodes:\n  a: {type: PrimitiveInt, value: 1}\n"
    args = (text, "seed", [1]) if call == "sweep" else (text,)
    with pytest.raises(TypeError) as err:
        getattr(latentgraph, call)(*args)
    message = str(err.value)
    assert message == (
        "a workflow given as text of 3 lines, not a file's path: pass the dict it holds "
        "(yaml.safe_load(text)), or the file's path (accepted: a workflow file's path, a dict "
        "holding what such a file holds, a Workflow or a Graph)"
    )
    assert "PrimitiveInt" not in message and "No such file" not in message


def test_a_workflow_given_as_json_text_names_what_is_accepted():
    import json

    import latentgraph

    text = json.dumps([{"1": {"class_type": "PrimitiveInt", "inputs": {"value": 1}}}])
    with pytest.raises(TypeError) as err:
        latentgraph.run(text)
    assert str(err.value).startswith(f"a workflow given as JSON text ({len(text)} characters), "
                                     "not a file's path: pass the dict it holds (json.loads(text))")  # fmt: skip
    assert str(err.value).endswith("(accepted: a workflow file's path, a dict holding what such "
                                   "a file holds, a Workflow or a Graph)")  # fmt: skip


def test_changing_an_output_in_place_leaves_what_later_runs_are_served(toys):
    """`r.output(...)` was the cache's own object: zeroing a returned image in place made the
    next run serve zeros. Data is handed out as copies; a memory-only value (a model) is the
    shared object, too big to copy."""
    import torch

    from latentgraph.graph import ANY, IMAGE, Output, node
    from latentgraph.nodes import codecs

    codecs.register()
    model = object()

    @node("Outs", outputs=[Output("image", IMAGE), Output("table", ANY), Output("model", ANY)],
          registry=toys.registry)  # fmt: skip
    def outs(ctx):
        return torch.ones(1, 2, 2, 3), {"rows": [[1, 2]]}, model

    graph = {"nodes": {"o": {"type": "Outs"}}}
    cache = Cache()
    r = api.run(graph, targets=["o"], registry=toys.registry, cache=cache)
    r.output("o").mul_(0)
    r.outputs["o"][0].mul_(0)
    r.output("o", 1)["rows"][0].append(3)
    assert r.output("o", 2) is model
    again = api.run(graph, targets=["o"], registry=toys.registry, cache=cache)
    assert again.cached == ["o"]
    image, table, same = again.outputs["o"]
    assert torch.equal(image, torch.ones(1, 2, 2, 3))
    assert table == {"rows": [[1, 2]]} and same is model


def test_a_plugin_changing_its_input_in_place_leaves_the_upstream_value_as_it_was(toys):
    """A plugin node zeroing its IMAGE input in place (`image.mul_(0)`) zeroed the value held
    for the node feeding it: the run's other reader of that image, and later runs served from
    the cache, got black. A plugin's inputs are copies; built-in nodes get the value itself."""
    import torch

    import latentgraph.nodes  # noqa: F401 - registers EmptyImage
    from latentgraph.graph import IMAGE, Output, Socket, default_registry, node

    toys.registry.add(default_registry["EmptyImage"])

    @node("ZeroInPlace", inputs=[Socket("image", IMAGE)], outputs=[Output("image", IMAGE)],
          registry=toys.registry)  # fmt: skip
    def zero_in_place(ctx, image):
        return image.mul_(0)

    assert default_registry["EmptyImage"].builtin and not toys.registry["ZeroInPlace"].builtin
    graph = {"nodes": {"e": {"type": "EmptyImage", "width": 8, "height": 8, "color": 0xFF0000},
                       "z": {"type": "ZeroInPlace", "image": "e"}}}  # fmt: skip
    red = torch.zeros(1, 8, 8, 3)
    red[..., 0] = 1
    cache = Cache()
    r = api.run(graph, targets=["z", "e"], registry=toys.registry, cache=cache)
    assert r.ok and torch.equal(r.output("e"), red) and not r.output("z").any()
    again = api.run(graph, targets=["e"], registry=toys.registry, cache=cache)
    assert again.cached == ["e"] and torch.equal(again.output("e"), red)


def test_numpy_values_are_taken_as_the_python_values_they_are(toys, workflow):
    """`run(wf, seed=np.int64(7))` raised "Object of type int64 is not JSON serializable"
    (saving the run's documents), and `sweep(wf, "seed", np.arange(2))` numpy's "truth value
    of an array is ambiguous". Params take NumPy's numbers as Python's; a sweep any iterable."""
    import numpy as np

    from latentgraph.graph import INT, Int, Output, node

    seen = []

    @node("SeenParams", inputs=[Int("x", 0)], outputs=[Output("v", INT)], output_node=True,
          registry=toys.registry)  # fmt: skip
    def seen_params(ctx, x):
        seen.append(ctx.extra["params"])
        return x

    kw = {"registry": toys.registry, "cache": Cache()}
    r = api.run(workflow, seed=np.int64(7), params={"base": np.int32(0)}, **kw)
    assert r.ok and r.outputs["out"] == (17,) and type(r.output("out")) is int
    path = workflow.parent / "flags.yaml"
    path.write_text("version: 1\nparams: {f: 0.5, b: false, t: x}\n"
                    "nodes:\n  p: {type: SeenParams, x: 1}\n")  # fmt: skip
    assert api.run(path, f=np.float32(0.25), b=np.bool_(True), t=np.str_("y"), **kw).ok
    assert seen == [{"f": 0.25, "b": True, "t": "y"}]
    assert [type(v) for v in seen[0].values()] == [float, bool, str]
    prompt = {"1": {"class_type": "Const", "inputs": {"value": 4}},
              "2": {"class_type": "Echo", "inputs": {"x": ["1", 0]}}}  # fmt: skip
    assert api.run(prompt, params={"1.value": np.int64(9)}, **kw).outputs["2"] == (9,)
    for values in (np.arange(1, 3), range(1, 3), (1, 2), iter([1, 2])):
        results = api.sweep(workflow, "seed", values, base=np.int16(0), **kw)
        assert [r.outputs["out"] for r in results] == [(11,), (12,)]
    loaded = api.load(workflow, registry=toys.registry)
    results = api.sweep(loaded, "seed", np.array([3]), **kw)
    assert [r.outputs["out"] for r in results] == [(18,)]


def test_a_param_value_that_is_no_workflow_data_is_refused_naming_the_param(toys, workflow):
    """A tensor or another object given for a param raised json's TypeError from the dumping
    of the run's documents; it is a WorkflowError naming the param and what a param takes."""
    import torch

    from latentgraph.graph.problems import WorkflowError

    kw = {"registry": toys.registry, "cache": Cache()}
    taken = "expected a number, a bool, text, None, or a list or dict of them"
    with pytest.raises(WorkflowError) as refused:
        api.run(workflow, seed=torch.tensor(7), base=[object()], **kw)
    assert [p.message for p in refused.value.problems] == [
        f"param seed: {taken} (what a workflow file holds), got a Tensor",
        f"param base: {taken} (what a workflow file holds), got an object"]  # fmt: skip
    with pytest.raises(WorkflowError, match=f"sweep seed: {taken} .*, got an object"):
        api.sweep(workflow, "seed", [1, object()], **kw)
    assert not toys.calls  # refused before any run
    loaded = api.load(workflow, registry=toys.registry)
    with pytest.raises(WorkflowError, match=f"param seed: {taken} .*, got a Tensor"):
        api.run(loaded, seed=torch.tensor(1), **kw)
    with pytest.raises(TypeError, match="sweep 'seed': expected a list of .*, got an int"):
        api.sweep(workflow, "seed", 5, **kw)


def test_a_target_or_kept_node_is_not_warned_to_feed_no_output_node(toys):
    """`targets=["n", "o"]`, `targets="n"` or `keep="n"` ran node 'n' while warning "the node
    feeds no output node, so it will not run" about it: the nodes told to run count as outputs."""
    g = build({"n": ("Const", {"value": 3}), "m": ("Const", {"value": 4}),
               "o": ("Echo", {"x": "@m"})})  # fmt: skip
    unused = "the node feeds no output node, so it will not run"
    for told in ({"targets": ["n", "o"]}, {"targets": "n"}, {"keep": "n"}):
        r = api.run(g, registry=toys.registry, cache=Cache(), **told)
        assert r.ok and "n" in r.executed and r.warnings == [], told
    r = api.run(g, registry=toys.registry, cache=Cache())
    assert r.executed == ["m", "o"]
    assert [(w.node_id, w.message) for w in r.warnings] == [("n", unused)]


def test_an_option_of_the_wrong_type_is_refused_naming_the_keyword(toys, workflow):
    """`cancel=True`, `on_event=5`, `settings={...}` failed deep in the engine ('bool' object
    has no attribute 'cancelled'); a param given in params= and as a keyword: the keyword
    silently won."""
    kw = {"registry": toys.registry, "cache": Cache()}
    for given, said in [({"cancel": True}, "cancel= takes a latentgraph.CancelToken, not True"),
                        ({"on_event": 5}, "on_event= takes a function, called with each event, "
                                          "not 5"),
                        ({"settings": {"output_dir": "x"}}, "settings= takes a latentgraph."
                         "Settings, not a dict; make one of the dict: settings=latentgraph."
                         "Settings(**settings)"),
                        ({"cache": {}}, "cache= takes a latentgraph.Cache, not a dict"),
                        ({"extra": 5}, "extra= takes a dict, not 5"),
                        ({"params": [1]}, "params= takes a dict of param name to value, not a "
                                          "list"),
                        ({"params": {"seed": 1}, "seed": 2}, "param 'seed' is given twice, in "
                         "params= and as the keyword seed=: give it once")]:  # fmt: skip
        with pytest.raises(TypeError) as refused:
            api.run(workflow, **{**kw, **given})
        assert str(refused.value) == said
        with pytest.raises(TypeError) as refused:
            api.sweep(workflow, "base", [1], **{**kw, **given})
        assert str(refused.value) == said
    with pytest.raises(TypeError, match="param 'seed' is given twice"):
        api.load(workflow, params={"seed": 1}, seed=2, registry=toys.registry)
    with pytest.raises(TypeError, match=r"sweep 'seed': param 'seed' is given too \(seed=2\), "
                                        "and the sweep sets it"):  # fmt: skip
        api.sweep(workflow, "seed", [1], seed=2, **kw)
    assert not toys.calls


def test_reading_the_outputs_of_a_node_not_kept_says_to_keep_it(toys, workflow):
    """`r.output("s")` of a node that ran but was not kept raised a bare KeyError: 's'."""
    r = api.run(workflow, registry=toys.registry, cache=Cache())
    for read in (lambda: r.output("s"), lambda: r.outputs["s"]):
        with pytest.raises(KeyError, match=r"node 's' ran, but its outputs were not kept: .*"
                                           r"run with keep=\['s'\] to keep them"):  # fmt: skip
            read()
    with pytest.raises(KeyError, match=r"the workflow has no node 'nope' \(outputs held: 'out'\)"):
        r.output("nope")
    g = build({"a": ("Const", {"value": 2}), "o": ("Echo", {"x": "@a"}),
               "u": ("Const", {"value": 3})})  # fmt: skip
    r = api.run(g, registry=toys.registry, cache=Cache())
    with pytest.raises(KeyError, match=r"node 'u' did not run: .*keep=\['u'\] runs it"):
        r.output("u")
    with pytest.raises(IndexError, match="node 'o' has 1 output"):
        r.output("o", 1)
    assert "s" not in r.outputs and r.outputs.get("s") is None and r.output("o") == 2
    assert api.run(workflow, keep="s", registry=toys.registry, cache=Cache()).output("s") == 1


def test_a_sweep_stops_at_its_first_failed_run_and_names_the_values_not_run(toys, tmp_path):
    """`sweep` went on after a run failed (['failed', 'failed', 'failed']) while `latentgraph
    run --sweep` stops there; both now run through one loop (`api.runs_in_turn`)."""
    path = tmp_path / "boom.yaml"
    path.write_text("version: 1\nparams: {x: 1, fail: true}\nnodes:\n"
                    "  a: {type: Const, value: $x}\n  f: {type: Fail, x: a, fail: $fail}\n"
                    "  out: {type: Echo, x: f}\n")  # fmt: skip
    results = api.sweep(path, "x", [1, 2, 3], registry=toys.registry, cache=Cache())
    assert [r.status for r in results] == ["failed"] and results.not_run == [2, 3]
    assert toys.calls["a"] == 1  # the values after the failed run never ran
    results = api.sweep(path, "x", [1, 2], fail=False, registry=toys.registry, cache=Cache())
    assert [r.outputs["out"] for r in results] == [(1,), (2,)] and results.not_run == []


def test_free_unloads_the_models_and_empties_the_shared_caches_memory(toys, workflow,
                                                                      monkeypatch):  # fmt: skip
    """Loaded models are held process-wide and `Cache.clear_memory()` left them; the only
    release was latentgraph.nodes.model_manager.free_models(). `latentgraph.free()` does what
    the server's POST /free does (`cache.release_memory`)."""
    import latentgraph
    from latentgraph.nodes.model_manager import manager

    monkeypatch.setattr(api, "_shared", Cache())
    mine = Cache()
    api.run(workflow, registry=toys.registry)  # into the process-wide cache
    api.run(workflow, registry=toys.registry, cache=mine)
    manager().get("test-free-model", lambda: object())
    assert "test-free-model" in manager().keys() and api.shared_cache().memory.bytes > 0
    latentgraph.free(mine)
    assert "test-free-model" not in manager().keys()
    assert api.shared_cache().memory.bytes == 0 and mine.memory.bytes == 0
    toys.calls.clear()
    assert api.run(workflow, registry=toys.registry).outputs["out"] == (16,)
    assert toys.calls["out"] == 1  # computed again: nothing was left in memory


def test_a_failures_traceback_is_its_lines_as_documented(toys):
    """`print(f.traceback)` printed a list's repr: the field is format_exception's lines (the
    `--json` wire shape), and docs/python.md says so and how to print it."""
    from pathlib import Path

    failing = {"1": {"class_type": "Const", "inputs": {"value": 1}},
               "2": {"class_type": "Fail", "inputs": {"x": ["1", 0]}},
               "3": {"class_type": "Echo", "inputs": {"x": ["2", 0]}}}  # fmt: skip
    [failure] = api.run(failing, registry=toys.registry, cache=Cache()).failures
    text = "".join(failure.traceback)
    assert text.startswith("Traceback (most recent call last):\n")
    assert text.endswith("ValueError: told to fail on 1\n")
    assert all(line.endswith("\n") for line in failure.traceback)
    assert failure.to_json()["traceback"] == failure.traceback  # the wire shape
    doc = (Path(__file__).parents[2] / "docs" / "python.md").read_text()
    assert "`traceback` (a list of lines, as `traceback.format_exception` gives them" in doc
    assert 'print("".join(event.traceback))' in doc


def test_a_problem_in_a_workflow_given_as_a_dict_is_placed_by_its_key_path():
    """It was placed at `<workflow dict>:1:994`, an offset into JSON text the caller never saw."""
    import latentgraph
    from latentgraph.graph.problems import WorkflowError

    ours = {"version": 1, "params": {"n": 1},
            "nodes": {"n": {"type": "PrimitiveInt", "value": "$n"},
                      "p": {"type": "PreviewAny", "source": "nope"}}}  # fmt: skip
    with pytest.raises(WorkflowError) as refused:
        latentgraph.run(ours, n="x", cache=Cache())
    assert str(refused.value).splitlines() == [
        "param n='x' ($n at <workflow dict> nodes.n.value): node 'n' input 'value': expected an "
        "integer (INT), got 'x'",
        "<workflow dict> nodes.p.source: node 'p' input 'source': links to node 'nope', which "
        "does not exist",
    ]


@pytest.mark.parametrize("device", ["cuda", "mps"])
def test_a_device_this_machine_lacks_is_refused_naming_no_cli_flag(toys, workflow, device):
    """`Settings(device="mps")` on a CPU machine said `...; use --device cpu or auto`, a flag
    in a Python error (the CLI names its flag before the same words)."""
    import torch

    from latentgraph.graph import Settings

    if torch.cuda.is_available() or torch.backends.mps.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(ValueError) as refused:
        api.run(workflow, registry=toys.registry, cache=Cache(), settings=Settings(device=device))
    assert str(refused.value).startswith(f"settings.device: device {device!r}: this torch sees no")
    assert str(refused.value).endswith("use device 'cpu' or 'auto'")
    assert "--" not in str(refused.value)


def test_reading_a_node_a_cached_run_did_not_need_says_so(toys, workflow):
    """On a run served from the cache, `r.outputs["c"]` said `node 'c' did not run: it failed
    or was skipped ..., or no target needs it`: the target needs it, but what it feeds came
    from the cache."""
    cache = Cache()
    api.run(workflow, registry=toys.registry, cache=cache)
    r = api.run(workflow, registry=toys.registry, cache=cache)
    assert r.cached == ["out"]
    with pytest.raises(KeyError, match=r"node 'c' was not needed: the nodes it feeds were served "
                                       r"from the cache, so its outputs were not kept; run with "
                                       r"keep=\['c'\] to keep them"):  # fmt: skip
        r.outputs["c"]
    assert api.run(workflow, registry=toys.registry, cache=cache, keep="c").output("c") == 16


CAPPED = "version: 1\nparams: {n: 1}\nnodes:\n  c: {type: Capped, n: $n}\n"


def capped_node(toys) -> None:
    """`Capped`: an input bounded by the run's `max_steps`, which only a run's settings judge
    (not the loader: a limit, as a dropdown listing a folder)."""
    from latentgraph.graph import INT, Int, Output, node

    @node("Capped", inputs=[Int("n", 1, limit="max_steps")], outputs=[Output("v", INT)],
          output_node=True, registry=toys.registry)  # fmt: skip
    def capped(ctx, n):
        toys.calls[ctx.node_id] += 1
        return n


def test_a_sweep_checks_every_value_with_the_run_settings_before_the_first_run(toys, tmp_path):
    """`sweep(wf, "scheduler", ["ddim", "euler", "bogus"])` ran ddim and euler, then raised
    on bogus (a choice only the run's settings judge): their results were lost. Every value is
    checked as its run will be (`checked_sweep`, `run --sweep`'s rule) before the first."""
    from latentgraph.graph import Settings
    from latentgraph.graph.problems import WorkflowError

    capped_node(toys)
    path = tmp_path / "capped.yaml"
    path.write_text(CAPPED)
    ran = []
    with pytest.raises(WorkflowError) as refused:
        api.sweep(path, "n", [1, 2, 99, 98], registry=toys.registry, cache=Cache(),
                  settings=Settings(max_steps=10), on_event=ran.append)  # fmt: skip
    assert ran == [] and not toys.calls  # not one run
    said = str(refused.value)
    assert "sweep n=99 ($n at" in said and "sweep n=98 ($n at" in said, said  # every bad value
    assert "Settings.max_steps" in said or "max_steps" in said, said
    results = api.sweep(path, "n", [1, 2], registry=toys.registry, cache=Cache(),
                        settings=Settings(max_steps=10), targets="c")  # fmt: skip
    assert [r.outputs["c"] for r in results] == [(1,), (2,)]


def test_scheduler_given_beside_settings_cache_or_registry_is_refused(toys, workflow):
    """`run(wf, scheduler=s, settings=Settings(output_dir=B))` saved into the scheduler's
    folder: settings= was silently ignored (cache= and registry= too)."""
    from latentgraph.graph import Settings

    scheduler = toys.scheduler()
    for option, value in (("settings", Settings()), ("cache", Cache()),
                          ("registry", toys.registry)):  # fmt: skip
        said = rf"scheduler= and {option}= are both given: .* give one of them"
        with pytest.raises(TypeError, match=said):
            api.run(workflow, scheduler=scheduler, **{option: value})
        with pytest.raises(TypeError, match=said):
            api.sweep(workflow, "seed", [1], scheduler=scheduler, **{option: value})
    assert api.run(workflow, scheduler=scheduler).outputs["out"] == (16,)  # its registry
    assert [r.outputs["out"] for r in api.sweep(workflow, "seed", [2], scheduler=scheduler)] \
        == [(17,)]  # fmt: skip


@pytest.mark.parametrize(("keyword", "value", "option"), [
    ("on_evnt", print, "on_event"), ("kep", "out", "keep"), ("setting", None, "settings"),
    ("targts", ["out"], "targets"),
])  # fmt: skip
def test_a_mistyped_option_is_said_to_be_one(toys, workflow, keyword, value, option):
    """`run(wf, on_evnt=print)` said `param on_evnt: expected a number, ... got a function`,
    `kep="decode"` only that the workflow has no param 'kep': neither named `on_event=`."""
    from latentgraph.graph import Settings

    value = Settings() if option == "settings" else value
    said = f"{keyword}= is no option of run and no param of the workflow; did you mean {option}=?"
    kw = {"registry": toys.registry, "cache": Cache()}
    for call in (lambda: api.run(workflow, **{keyword: value}, **kw),
                 lambda: api.run(api.load(workflow, registry=toys.registry), **{keyword: value}, **kw),
                 lambda: api.sweep(workflow, "seed", [1], **{keyword: value}, **kw),
                 lambda: api.run(build({"o": ("Const", {})}), **{keyword: value}, **kw)):  # fmt: skip
        with pytest.raises(TypeError) as refused:
            call()
        assert str(refused.value) == said


@pytest.mark.parametrize(("keyword", "said"), [
    ("nodes_dir", "did you mean nodes_dirs=?"), ("registy", "did you mean registry=?"),
    ("setings", "settings= is an option of run, which loads and runs the workflow: "
                "latentgraph.run(workflow, settings=...)"),
    ("settings", "settings= is an option of run, which loads and runs the workflow: "
                 "latentgraph.run(workflow, settings=...)"),
])  # fmt: skip
def test_load_says_a_mistyped_option_is_one_as_run_does(toys, workflow, keyword, said):
    """`load(wf, setings=s)` said `param setings: expected a number, ... got a Settings`,
    `load(wf, nodes_dir=[...])` that the workflow has no param 'nodes_dir': run's keyword check
    (`keyword_params`) is load's too, naming the option, or the run option load does not take."""
    from latentgraph.graph import Settings

    with pytest.raises(TypeError) as refused:
        api.load(workflow, registry=toys.registry, **{keyword: Settings()})
    assert str(refused.value) == f"{keyword}= is no option of load and no param of the " \
        f"workflow; {said}"  # fmt: skip


def test_a_param_named_like_an_option_is_a_param(toys, tmp_path):
    """A keyword that looks like an option's typo but is a param of the workflow is the
    param: only a name the workflow lacks is said to be a typo."""
    path = tmp_path / "kep.yaml"
    path.write_text("version: 1\nparams: {kep: 1, seed: 2}\nnodes:\n"
                    "  a: {type: Const, value: $kep}\n  o: {type: Add, a: a, b: {from: s}}\n"
                    "  s: {type: Const, value: $seed}\n  out: {type: Echo, x: o}\n")  # fmt: skip
    kw = {"registry": toys.registry, "cache": Cache()}
    assert api.run(path, kep=5, seed=1, **kw).outputs["out"] == (6,)
    assert [r.outputs["out"] for r in api.sweep(path, "seed", [1, 2], kep=7, **kw)] == [(8,), (9,)]


def test_a_saved_file_record_carries_its_full_path(toys, tmp_path):
    """`result.ui` records name a file by `filename`, `subfolder` and `type`: the path was
    the caller's to rebuild from the settings' folders. The run's copy carries it."""
    from latentgraph.graph import INT, NodeResult, Settings, Socket, node

    @node("Saver", inputs=[Socket("x", INT)], outputs=[], output_node=True,
          registry=toys.registry)  # fmt: skip
    def saver(ctx, x):
        return NodeResult(ui={"images": [
            {"filename": f"{x}.png", "subfolder": "sub", "type": "output"},
            {"filename": "p.png", "subfolder": "", "type": "temp"}], "text": ["x"]})  # fmt: skip

    settings = Settings(output_dir=tmp_path / "out", temp_dir="tmp")
    g = build({"a": ("Const", {"value": 3}), "s": ("Saver", {"x": "@a"})})
    cache = Cache()
    paths = [str(tmp_path / "out" / "sub" / "3.png"), str(Path("tmp", "p.png").absolute())]
    for _ in ("run", "served from the cache"):
        result = api.run(g, registry=toys.registry, cache=cache, settings=settings)
        assert [r["path"] for r in result.ui["s"]["images"]] == paths
    # the records the cache holds (a server sends them to web clients) name no folder
    records = toys.scheduler(cache, settings=settings).run(g).ui["s"]["images"]
    assert not any("path" in r for r in records)
