"""graph/object_info.py: each kind of input as the editor reads it (tooltips, dropdowns listed
for the given settings, float rounding), and a node type's outputs and names."""

from __future__ import annotations

from pathlib import Path

from latentgraph.graph.context import Settings
from latentgraph.graph.declare import (
    Choice,
    Float,
    Input,
    NodeType,
    Output,
    Registry,
    Socket,
    String,
)
from latentgraph.graph.object_info import node_info, object_info


def _files(settings: Settings) -> list[str]:
    """A picker listing its folder: the settings decide what it shows."""
    return sorted(p.name for p in Path(settings.input_dir).iterdir())


def _missing(settings: Settings) -> list[str]:
    raise FileNotFoundError("no such folder")


def make_type(*inputs: Input, **fields) -> NodeType:
    return NodeType("Pick", fn=lambda ctx, **kw: None, inputs=inputs,
                    outputs=fields.pop("outputs", ()), **fields)  # fmt: skip


def test_tooltips_on_sockets_dropdowns_and_widgets():
    info = node_info(make_type(
        Socket("image", "IMAGE", description="the picture"),
        Choice("mode", ["a", "b"], description="how"),
        String("text", "", description="what"),
    ))  # fmt: skip
    req = info["input"]["required"]
    assert req["image"] == ["IMAGE", {"tooltip": "the picture"}]
    assert req["mode"] == [["a", "b"], {"default": "a", "tooltip": "how"}]
    assert req["text"] == ["STRING", {"default": "", "multiline": False, "tooltip": "what"}]


def test_a_typed_input_with_choices_is_a_dropdown():
    info = node_info(make_type(Input("sampler", "SAMPLER_NAME", "b", choices=["a", "b"])))
    assert info["input"]["required"]["sampler"] == [["a", "b"], {"default": "b"}]


def test_dropdowns_list_the_files_of_the_given_settings(tmp_path):
    (tmp_path / "x.png").write_bytes(b"")
    (tmp_path / "y.png").write_bytes(b"")
    settings = Settings(input_dir=tmp_path)
    node_type = make_type(Choice("image", _files), Choice("other", _missing, optional=True))
    info = node_info(node_type, settings)
    assert info["input"]["required"]["image"] == [["x.png", "y.png"], {"default": "x.png"}]
    assert info["input"]["optional"]["other"] == [[], {}]  # its folder is missing: empty
    registry = Registry()
    registry.add(node_type)
    assert object_info(registry, settings)["Pick"] == info


def test_float_rounding_only_on_floats():
    info = node_info(make_type(Float("cfg", 7.0, min=0.0, max=30.0, step=0.5, round=0.01),
                               Input("n", "INT", 1, round=0.5)))  # fmt: skip
    req = info["input"]["required"]
    assert req["cfg"] == ["FLOAT", {"default": 7.0, "min": 0.0, "max": 30.0, "step": 0.5,
                                    "round": 0.01}]  # fmt: skip
    assert req["n"] == ["INT", {"default": 1}]


def test_outputs_names_and_display_name():
    outputs = (Output("image", "IMAGE", description="decoded"), Output("mask", "MASK"))
    info = node_info(make_type(outputs=outputs))
    assert info["output_tooltips"] == ["decoded", ""]
    assert (info["name"], info["display_name"]) == ("Pick", "Pick")
    named = node_info(make_type(outputs=outputs, display_name="Pick an image"))
    assert named["display_name"] == "Pick an image"
