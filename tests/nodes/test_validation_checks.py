"""Unsafe file names are refused at validation, before any model work starts."""

import pytest

import latentgraph.nodes  # noqa: F401 - registers the node types these prompts use
from latentgraph.graph.comfy_api import graph_from_prompt
from latentgraph.graph.validate import validate


def problems(prompt: dict) -> list[tuple[str, str, str]]:
    graph = graph_from_prompt(prompt)
    return [(p.node_id, p.input_name, p.message) for p in validate(graph) if p.severity == "error"]


@pytest.mark.parametrize("prefix", ["../x", "a/../../x", "/etc/x", "C:/x", "", "folder/"])
def test_save_prefix_that_leaves_the_output_folder_is_refused(prefix):
    prompt = {
        "1": {"class_type": "LoadImage", "inputs": {"image": "example.png"}},
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": prefix}},
    }
    [(node_id, name, _)] = problems(prompt)
    assert (node_id, name) == ("2", "filename_prefix")


@pytest.mark.parametrize("prefix", ["fox", "portraits/fox", "a/b/c_d", "x..y"])
def test_ordinary_prefixes_pass(prefix):
    prompt = {
        "1": {"class_type": "LoadImage", "inputs": {"image": "example.png"}},
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": prefix}},
    }
    assert problems(prompt) == []


@pytest.mark.parametrize("node_type", ["LoadModel", "LoadVAE", "LoadTextEncoder"])
@pytest.mark.parametrize("source", ["model.ckpt", "/abs/weights.PT", "x.bin", "y.pkl"])
def test_pickle_sources_are_refused_by_every_loader(node_type, source):
    graph = graph_from_prompt({"1": {"class_type": node_type, "inputs": {"source": source}}})
    found = [p for p in validate(graph) if p.code != "prompt_no_outputs" and p.severity == "error"]
    assert [(p.node_id, p.input_name) for p in found] == [("1", "source")]
    assert "pickle" in found[0].message


@pytest.mark.parametrize(("node_type", "config"), [
    ("LoadVAE", "tiny-sd"), ("LoadVAE", "tiny-sdxl"), ("LoadTextEncoder", "tiny-sd"),
    ("LoadVAE", "builtin:tiny-sd"), ("LoadVAE", "builtin:tiny-sdxl"),
    ("LoadTextEncoder", "builtin:tiny-sd"), ("LoadModel", "tiny-sd"),
])  # fmt: skip
def test_a_builtin_models_config_is_spelled_alike_by_every_loader(node_type, config):
    """LoadModel took `config: tiny-sd`, LoadVAE refused it (its list said 'builtin:tiny-sd'
    beside 'tiny-sdxl'). Every loader lists a built-in model's preset by one rule, its name
    without `builtin:`, and takes the model's own name for it too."""
    from latentgraph.graph import default_registry

    inputs = {"source": "x.safetensors", "config": config}
    graph = graph_from_prompt({"1": {"class_type": node_type, "inputs": inputs}})
    assert [p.message for p in validate(graph) if p.input_name == "config"] == []
    choices = default_registry.get(node_type).input("config").choices or []
    assert not [c for c in choices if c.startswith("builtin:")]
