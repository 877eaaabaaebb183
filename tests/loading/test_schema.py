"""graph/schema.py: what the JSON Schema says of single inputs: a text's maximum length, a
typed input with choices as an enum, and which defaults it can carry (JSON values only)."""

from __future__ import annotations

import math
from pathlib import Path

import jsonschema

from latentgraph.graph.declare import Float, Input, NodeType, Registry, String
from latentgraph.graph.schema import workflow_schema


def validator_for(*inputs: Input) -> tuple[dict, jsonschema.Draft7Validator]:
    registry = Registry()
    registry.add(NodeType("Box", fn=lambda ctx, **kw: None, inputs=inputs, outputs=()))
    schema = workflow_schema(registry)
    return schema["definitions"]["Box"]["properties"], jsonschema.Draft7Validator(schema)


def flagged(validator: jsonschema.Draft7Validator, **inputs) -> bool:
    return bool(list(validator.iter_errors({"nodes": {"b": {"type": "Box", **inputs}}})))


def test_a_text_longer_than_its_limit_is_flagged():
    _, validator = validator_for(String("note", "", max_length=3))
    assert not flagged(validator, note="abc")
    assert flagged(validator, note="abcd")


def test_a_typed_input_with_choices_is_an_enum():
    _, validator = validator_for(
        Input("sampler", "SAMPLER_NAME", "euler", choices=["euler", "ddim"])
    )
    assert not flagged(validator, sampler="ddim")
    assert flagged(validator, sampler="heun")


def test_only_json_defaults_are_carried():
    properties, _ = validator_for(
        Float("free", math.inf),
        Input("folder", "PATH", Path("models")),
        Input("extra", "ANYTHING", None),
        String("text", "hi"),
    )
    assert "default" not in properties["free"]  # JSON has no infinity
    assert "default" not in properties["folder"]  # not a JSON value
    assert properties["extra"]["default"] is None
    assert properties["text"]["default"] == "hi"


def test_a_choices_aliases_are_in_its_enum_but_in_no_dropdown():
    """An `Aliases` (old spellings validation still takes) is a function the schema cannot
    call: it names its words in the enum beside the choices, which a dropdown lists alone."""
    from latentgraph.graph.declare import Aliases, Choice
    from latentgraph.graph.object_info import input_config

    decl = Choice("config", ["auto", "tiny-sd"], "auto", also_accepts=Aliases(("builtin:tiny-sd",)))
    properties, validator = validator_for(decl)
    assert properties["config"]["anyOf"][0]["enum"] == ["auto", "tiny-sd", "builtin:tiny-sd"]
    assert not flagged(validator, config="builtin:tiny-sd")
    assert flagged(validator, config="builtin:tiny-sdxl")
    box = NodeType("Box", fn=lambda ctx, **kw: None, inputs=(decl,), outputs=())
    assert input_config(box, "config")[0] == ["auto", "tiny-sd"]  # /object_info's dropdown
    assert box.shown_choices(decl) == ["auto", "tiny-sd"]  # `nodes`, docs/nodes.md
