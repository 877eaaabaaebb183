"""workflows/schema.json (what an editor checks while typing) accepts and refuses what
`latentgraph validate` accepts and refuses, on edits of workflows/txt2img.yaml, input kind by
input kind. The shipped examples pass both: tests/loading/test_examples.py. The schema is
looser only where it cannot know (a link's target, a param's value) or JSON Schema cannot tell
(4.0 is an integer there): the last test."""

import json
from pathlib import Path

import jsonschema
import pytest

from latentgraph.graph.workflow.positions import parse_yaml

from .conftest import write

ROOT = Path(__file__).resolve().parents[2]
TXT2IMG = (ROOT / "workflows" / "txt2img.yaml").read_text()
SMALL = """\
nodes:
  m: {type: LoadModel, source: "builtin:tiny-sd"}
  n: {type: LatentNoise, vae: m.vae}
  d: {type: VAEDecode, samples: n.latent, vae: m.vae}
  s: {type: SaveImage, images: d}
"""


def schema_errors(text: str) -> list[str]:
    schema = json.loads((ROOT / "workflows" / "schema.json").read_text())
    value, _, _ = parse_yaml(text, "w.yaml")  # YAML 1.2 values, as yaml-language-server reads
    return [e.message for e in jsonschema.Draft7Validator(schema).iter_errors(value)]


def edited(old: str, new: str) -> str:
    assert old in TXT2IMG, old
    return TXT2IMG.replace(old, new, 1)


def renamed(node_id: str) -> str:
    """txt2img.yaml with node 'decode' called `node_id` (written as a quoted YAML key)."""
    key = json.dumps(node_id)
    return TXT2IMG.replace("  decode:\n", f"  {key}:\n").replace("images: decode", f"images: {key}")


ACCEPTED = {
    "a socket input linked as {from: node.output}": edited(
        "latent: noise.latent", "latent: {from: noise.latent}"
    ),
    "a socket input linked to a node with one output, by its id": edited(
        "images: decode", "images: decode"
    ),
    "an output named by its index": edited("clip: model.clip", "clip: model.1"),
    "INT as a whole number": edited("steps: $steps", "steps: 4"),
    "INT as ${param}": edited("steps: $steps", "steps: ${steps}"),
    "INT linked with {from:}": edited("steps: $steps", "steps: {from: n.INT}").replace(
        "nodes:\n", "nodes:\n  n: {type: PrimitiveInt, value: 4}\n"
    ),
    "FLOAT as a whole number": edited("guidance: $guidance", "guidance: 7"),
    "STRING with ${param} and $$ inside": edited("text: $prompt", 'text: "a ${prompt} for $$5"'),
    "a choice from the list": edited("name: $scheduler", "name: euler"),
    "BOOLEAN true": edited("vae: model.vae\n  save", "vae: model.vae\n    tiled: true\n  save"),
    "null for an optional input": edited(
        "vae: model.vae\n  save", "vae: model.vae\n    tiled: null\n  save"
    ),
    "no version": edited("version: 1\n", ""),
    "a title that is a number": edited("type: VAEDecode", "type: VAEDecode\n    title: 5"),
    "an empty description": edited("description: Text to image", "description:"),
    "an empty params": SMALL.replace("nodes:", "params:\nnodes:"),
    "a node id with a space": renamed("my decoder"),
    "a node id with a dot": renamed("dec.v2"),
    "a node id with a dollar inside": renamed("a$b"),
    "a node id that is a number": renamed("5"),
}

REFUSED = {
    "INT as quoted text": (edited("steps: $steps", 'steps: "4"'), "expected an integer (INT)"),
    "INT as true": (edited("steps: $steps", "steps: true"), "expected an integer (INT)"),
    "INT null where not optional": (edited("steps: $steps", "steps: null"), "expected an integer"),
    # above its declared maximum (10000) and over --max-steps: said as the limit /object_info shows
    "INT above its maximum": (edited("steps: $steps", "steps: 10001"), "over the limit of 1000"),
    "FLOAT as quoted text": (edited("guidance: $guidance", 'guidance: "7"'), "expected a number"),
    "STRING as a number": (edited("text: $prompt", "text: 5"), "expected text (STRING)"),
    "BOOLEAN as yes (text in YAML 1.2)": (
        edited("vae: model.vae\n  save", "vae: model.vae\n    tiled: yes\n  save"),
        "expected true or false"),
    "a choice not in the list": (edited("name: $scheduler", "name: nope"), "is not one of"),
    "a socket input given a number": (edited("latent: noise.latent", "latent: 5"),
                                      "takes a link from a LATENT output, not a literal"),
    "a socket input given a param": (edited("latent: noise.latent", "latent: $seed"),
                                     "a param cannot feed a link input"),
    "a widget linked from a param": (edited("steps: $steps", "steps: {from: $steps}"),
                                     "a param cannot feed a link input"),
    "a link that is not text": (edited("latent: noise.latent", "latent: {from: [noise, latent]}"),
                                "a link is written {from: node.output}"),
    "{from:} with another key": (
        edited("latent: noise.latent", "latent: {from: noise.latent, x: 1}"),
        "takes a link from a LATENT output, not a literal"),
    "an input the type does not have": (
        edited("type: VAEDecode", "type: VAEDecode\n    nope: 1"), "VAEDecode has no input 'nope'"),
    "a node without a type": (edited("    type: VAEDecode\n", ""), "the node has no 'type'"),
    "an empty node": (TXT2IMG + "  extra:\n", "the node is empty"),
    "version 2": (edited("version: 1", "version: 2"), "unsupported workflow version 2"),
    "version as text": (edited("version: 1", 'version: "1"'), "'version' must be the number 1"),
    "an unknown top-level key": (TXT2IMG + "extra: 1\n", "unknown top-level key 'extra'"),
    "a param name starting with a digit": (edited("  seed: 42", "  seed: 42\n  2x: 1"),
                                           "param name '2x' must be ASCII letters"),
    "a param name in katakana": (edited("  seed: 42", "  seed: 42\n  プロンプト: 猫"),
                                 "param name 'プロンプト' must be ASCII letters"),
    "no nodes": ("nodes: {}\n", "the workflow has no nodes"),
    "an empty nodes": ("nodes:\n", "the workflow has no 'nodes' mapping"),
}  # fmt: skip


@pytest.mark.parametrize("text", ACCEPTED.values(), ids=ACCEPTED.keys())
def test_what_validate_accepts_the_schema_accepts(cli, tmp_path, text):
    code, out, err = cli("validate", str(write(tmp_path, "w.yaml", text)), plugin=False)
    assert (code, err) == (0, "")
    assert schema_errors(text) == []


@pytest.mark.parametrize(("text", "message"), REFUSED.values(), ids=REFUSED.keys())
def test_what_validate_refuses_the_schema_refuses(cli, tmp_path, text, message):
    code, _, err = cli("validate", str(write(tmp_path, "w.yaml", text)), plugin=False)
    assert code == 2 and message in err
    assert schema_errors(text) != []


def test_an_int_written_4_point_0_is_refused_by_validate_and_typed_integer_in_the_schema(
    cli, tmp_path
):
    """JSON Schema counts 4.0 as an integer (no keyword tells 4.0 from 4), so the schema can
    only say "integer"; `latentgraph validate` refuses the float and has the last word."""
    text = edited("steps: $steps", "steps: 4.0")
    code, _, err = cli("validate", str(write(tmp_path, "w.yaml", text)), plugin=False)
    assert code == 2 and "input 'steps': expected an integer (INT), got 4.0" in err
    schema = json.loads((ROOT / "workflows" / "schema.json").read_text())
    steps = schema["definitions"]["UNetDenoise"]["properties"]["steps"]["anyOf"][0]
    assert steps["type"] == "integer"


def _aliased_choices() -> list[tuple[str, str, str]]:
    """(node type, input, value) for every value a built-in input with `Aliases` takes: its
    choices and its other spellings."""
    from latentgraph.graph.declare import Aliases, default_registry
    from latentgraph.wiring import node_registry

    node_registry()
    return [(node_type.name, decl.name, value)
            for node_type in default_registry if node_type.builtin
            for decl in node_type.inputs if isinstance(decl.also_accepts, Aliases)
            for value in [*decl.choice_list(), *decl.also_accepts.names]]  # fmt: skip


def test_aliased_choices_include_the_old_builtin_config_spelling():
    """The test below is not empty: LoadVAE and LoadTextEncoder take `builtin:tiny-sd`."""
    found = _aliased_choices()
    assert ("LoadVAE", "config", "builtin:tiny-sd") in found
    assert ("LoadTextEncoder", "config", "builtin:tiny-sd") in found


@pytest.mark.parametrize(("node_type", "name", "value"), _aliased_choices())
def test_every_value_a_choice_with_aliases_takes_the_schema_takes(node_type, name, value):
    """workflows/schema.json listed only LoadVAE's new `config: tiny-sd`, so an editor flagged
    an old workflow's `builtin:tiny-sd`, which `validate` still takes: each value validation
    takes for such an input is valid under the schema for that input."""
    from latentgraph.graph.comfy_api import graph_from_prompt
    from latentgraph.graph.validate import validate

    graph = graph_from_prompt({"1": {"class_type": node_type, "inputs": {name: value}}})
    assert [p.message for p in validate(graph) if p.input_name == name] == []
    schema = json.loads((ROOT / "workflows" / "schema.json").read_text())
    entry = schema["definitions"][node_type]["properties"][name]
    assert [e.message for e in jsonschema.Draft7Validator(entry).iter_errors(value)] == []
