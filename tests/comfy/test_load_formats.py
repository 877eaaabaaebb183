"""graph/formats.py: every format and container `load_file`/`load_text` read, what each puts
in `extra` for saved PNGs, `node.input` overrides, PNG text chunks and their refusals, reload."""

from __future__ import annotations

import json

import pytest
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from latentgraph.graph import Link, WorkflowError
from latentgraph.graph.formats import (
    MAX_PNG_BYTES,
    MAX_PNG_PIXELS,
    PNG_SIGNATURE,
    load_file,
    load_text,
    png_text,
)
from latentgraph.graph.formats import reload as reload_workflow

from ..image_headers import header_only_png
from .toy_nodes import registry

OURS = """\
# a comment, kept in saved PNGs
version: 1
params:
  seed: 5   # the seed
  width: 64
  text: 'a cat'  # kept in its quotes when the run does not change it
nodes:
  latent: {type: EmptyLatentImage, width: $width, height: 32}
  encode: {type: CLIPTextEncode, text: $text}
  sample: {type: KSampler, seed: $seed, latent_image: latent}
"""


def refused(call) -> list[tuple[str, str, str]]:
    """(code, place, message) of every problem `call` raises."""
    with pytest.raises(WorkflowError) as err:
        call()
    return [(p.code, str(p.location), p.message) for p in err.value.problems]


def png(path, **chunks: str):
    info = PngInfo()
    for key, value in chunks.items():
        info.add_text(key, value)
    Image.new("RGB", (4, 4)).save(path, pnginfo=info)
    return path


def latents(*ids: str) -> dict:
    return {i: {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64}}
            for i in ids}  # fmt: skip


# --- what each format reads to ----------------------------------------------------------------


def test_an_api_prompt_is_embedded_as_sent_with_the_editor_workflow_of_its_body(classic_api,
                                                                             classic_editor):  # fmt: skip
    classic_api["3"]["_meta"] = {"title": "Sampler", "color": "red"}  # not rebuilt from the graph
    classic_api["3"]["inputs"]["control_after_generate"] = "fixed"  # not declared: not read
    body = {"prompt": classic_api, "extra_data": {"extra_pnginfo": {"workflow": classic_editor}}}
    loaded = load_text(json.dumps(body), registry=registry)
    assert (loaded.format, loaded.params, loaded.raw) == ("api", {}, body)
    assert loaded.extra == {"prompt": classic_api, "workflow": classic_editor}
    assert loaded.graph.source == "<request>" and loaded.graph["3"].title == "Sampler"
    assert "control_after_generate" not in loaded.graph["3"].inputs


@pytest.mark.parametrize("extra_data", [[1], {}, {"extra_pnginfo": None}, {"extra_pnginfo": {}}])
def test_an_api_body_without_an_editor_workflow_embeds_only_the_prompt(classic_api, extra_data):
    loaded = load_text(json.dumps({"prompt": classic_api, "extra_data": extra_data}),
                       source="body.json", registry=registry)  # fmt: skip
    assert loaded.extra == {"prompt": classic_api} and loaded.graph.source == "body.json"


def test_overrides_rebuild_the_embedded_prompt(classic_api):
    classic_api["3"]["_meta"] = {"title": "Sampler", "color": "red"}
    loaded = load_text(json.dumps(classic_api), overrides={"3.seed": "77"}, registry=registry)
    assert loaded.params == {"3.seed": "77"}  # as given
    assert loaded.extra["prompt"]["3"]["inputs"]["seed"] == 77
    assert loaded.extra["prompt"]["3"]["_meta"] == {"title": "Sampler"}
    assert set(loaded.extra) == {"prompt"}


def test_an_editor_workflow_embeds_itself_and_the_prompt_of_its_graph(classic_editor):
    text = "  \n" + json.dumps(classic_editor)  # leading blank space: still JSON
    assert load_text(text, registry=registry).extra["workflow"] == classic_editor
    loaded = load_text(text, overrides={"3.steps": 4}, registry=registry)
    assert (loaded.format, loaded.params, loaded.raw) == ("editor", {"3.steps": 4}, classic_editor)
    assert loaded.extra["workflow"]["nodes"][4]["widgets_values"][2] == 4  # the run's value
    assert loaded.extra["prompt"]["3"]["inputs"]["steps"] == 4
    assert loaded.extra["prompt"]["8"] == {"class_type": "VAEDecode",
                                           "inputs": {"samples": ["3", 0], "vae": ["4", 2]}}  # fmt: skip


def test_ours_embeds_the_document_as_written_with_the_params_of_the_run():
    loaded = load_text(OURS, registry=registry)
    assert (loaded.format, loaded.params) == ("yaml", {"seed": 5, "width": 64, "text": "a cat"})
    assert loaded.extra["latentgraph"] == OURS
    loaded = load_text(OURS, overrides={"seed": 9}, registry=registry)
    assert loaded.extra["latentgraph"] == OURS.replace("seed: 5 ", "seed: 9 ")
    assert loaded.graph["sample"].inputs["seed"] == 9


# --- node.input overrides of the ComfyUI formats ------------------------------------------------


def test_override_values_are_typed_by_the_input_they_set():
    """A number input reads `16`; a STRING input keeps the text as written (`override_value`,
    the rule params follow too)."""
    prompt = {**latents("1"), "a.b": {"class_type": "CLIPTextEncode", "inputs": {"text": ""}}}
    loaded = load_text(json.dumps(prompt), registry=registry, overrides={
        "1.width": "16", "1.height": 24, "1.batch_size": "two", "a.b.text": '"quoted"',
    })  # fmt: skip
    assert loaded.graph["1"].inputs == {"width": 16, "height": 24, "batch_size": "two"}
    assert loaded.graph["a.b"].inputs == {"text": '"quoted"'}  # the id is up to the last dot


def test_every_override_naming_no_node_is_reported_with_the_node_ids():
    ids = [str(i) for i in range(1, 26)]
    problems = refused(lambda: load_text(json.dumps(latents(*ids)), source="p.json",
                                         overrides={"seed": "1", "99.width": "8", "3.width": "16"},
                                         registry=registry))  # fmt: skip
    listed = ", ".join(ids[:20])
    assert problems == [
        ("unknown_param", "p.json", "--set seed: ComfyUI workflows have no params; name an "
                                    f"input as <node id>.<input> (node ids: {listed})"),
        ("unknown_param", "p.json", f"--set 99.width: the workflow has no node '99'; did you "
                                    f"mean '9'? (node ids: {listed})"),
    ]  # fmt: skip


# --- text and files -------------------------------------------------------------------------


def test_json_the_parser_refuses_is_reported_by_the_workflow_loader_with_its_place():
    assert refused(lambda: load_text('{\n  "a": 1,,\n}', registry=registry)) == [
        ("syntax", "<request>:2:10",
         "JSON syntax error: Expecting property name enclosed in double quotes")]  # fmt: skip
    deep = '{"a":' * 100_000 + "1" + "}" * 100_000  # past the JSON parser's recursion limit
    assert refused(lambda: load_text(deep, registry=registry)) == [
        ("limit_exceeded", "<request>", "the document is nested too deeply")]  # fmt: skip


@pytest.mark.parametrize("name", ["flow.YAML", "flow.yml"])
def test_a_yaml_file_is_always_ours(tmp_path, classic_editor, name):
    """Its positions are kept; JSON in it is not detected as a ComfyUI format."""
    path = tmp_path / name
    path.write_text(json.dumps(classic_editor))
    [(code, _, message)] = refused(lambda: load_file(path, registry=registry))
    assert message.startswith("this is a ComfyUI editor workflow")
    json_path = tmp_path / "flow.json"
    json_path.write_text(json.dumps(classic_editor))
    loaded = load_file(json_path, registry=registry)
    assert loaded.format == "editor" and loaded.graph.source == str(json_path)


def test_a_folder_or_a_missing_file_is_a_workflow_error(tmp_path):
    assert refused(lambda: load_file(tmp_path, registry=registry)) == [
        ("invalid_value", str(tmp_path), "cannot read workflow: Is a directory")]  # fmt: skip
    missing = tmp_path / "missing.json"
    assert refused(lambda: load_file(missing, registry=registry)) == [
        ("invalid_value", str(missing), "cannot read workflow: No such file or directory")]  # fmt: skip


def test_reload_reads_the_file_again_with_the_new_params_on_top(tmp_path):
    path = tmp_path / "flow.yaml"
    path.write_text(OURS)
    first = load_file(path, overrides={"seed": 7}, registry=registry)
    assert first.extra == {"latentgraph": OURS.replace("seed: 5 ", "seed: 7 ")}
    path.write_text(OURS.replace("height: 32", "height: 48"))
    again = reload_workflow(first, {"width": 128}, registry=registry)
    assert again.params == {"seed": 7, "width": 128, "text": "a cat"}
    assert again.graph["latent"].inputs == {"width": 128, "height": 48}
    assert again.graph.source == str(path)


def test_reload_of_a_document_read_from_text_reads_the_document(classic_api):
    first = load_text(json.dumps(classic_api), source="posted", overrides={"3.seed": 1},
                      registry=registry)  # fmt: skip
    again = reload_workflow(first, {"3.steps": 2}, registry=registry)
    assert again.params == {"3.seed": 1, "3.steps": 2} and again.graph.source == "posted"
    assert (again.graph["3"].inputs["seed"], again.graph["3"].inputs["steps"]) == (1, 2)


# --- PNG files --------------------------------------------------------------------------------


def test_our_chunk_comes_first_then_the_prompt_then_the_workflow(tmp_path, classic_api,
                                                                  classic_editor):  # fmt: skip
    chunks = {"latentgraph": OURS, "prompt": json.dumps(classic_api),
              "workflow": json.dumps(classic_editor)}  # fmt: skip
    loaded = load_file(png(tmp_path / "a.png", **chunks), {"seed": 3}, registry=registry)
    assert loaded.format == "yaml" and loaded.graph["sample"].inputs["seed"] == 3
    assert loaded.extra["latentgraph"] == OURS.replace("seed: 5 ", "seed: 3 ")
    assert "workflow" not in loaded.extra  # a param of ours has no place in it: left out
    loaded = load_file(tmp_path / "a.png", registry=registry)
    assert loaded.extra["workflow"] == classic_editor  # carried to the next saved PNG
    del chunks["latentgraph"]
    loaded = load_file(png(tmp_path / "b.png", **chunks), {"3.seed": 4}, registry=registry)
    assert loaded.format == "api" and loaded.graph["3"].inputs["seed"] == 4
    seed_set = json.loads(json.dumps(classic_editor))
    next(n for n in seed_set["nodes"] if n["id"] == 3)["widgets_values"][0] = 4
    assert loaded.extra["workflow"] == seed_set  # carried with the value set
    path = png(tmp_path / "c.png", workflow=chunks["workflow"])
    loaded = load_file(path, registry=registry)
    assert loaded.format == "editor" and loaded.graph["8"].inputs["vae"] == Link("4", 2)
    assert loaded.graph.source == str(path)


def test_the_workflow_a_prompt_body_carries_wins_over_a_workflow_chunk(tmp_path, classic_api,
                                                                        classic_editor):  # fmt: skip
    body = {"prompt": classic_api, "extra_data": {"extra_pnginfo": {"workflow": {"mine": 1}}}}
    path = png(tmp_path / "a.png", prompt=json.dumps(body), workflow=json.dumps(classic_editor))
    assert load_file(path, registry=registry).extra["workflow"] == {"mine": 1}


def test_our_chunk_as_json_and_a_broken_workflow_chunk_beside_a_good_one(tmp_path, classic_api):
    ours = json.dumps({"version": 1, "nodes": {"l": {"type": "EmptyLatentImage", "width": 8}}})
    loaded = load_file(png(tmp_path / "a.png", latentgraph=ours, workflow="{broken"),
                       registry=registry)  # fmt: skip
    assert loaded.format == "yaml" and loaded.graph["l"].inputs == {"width": 8}
    assert loaded.extra == {"latentgraph": ours}  # the broken workflow is left out
    for broken in ("{", "[" * 100_000):  # past the JSON parser's recursion limit
        loaded = load_file(png(tmp_path / "b.png", prompt=json.dumps(classic_api),
                               workflow=broken), registry=registry)  # fmt: skip
        assert loaded.extra == {"prompt": classic_api}


@pytest.mark.parametrize(("chunks", "code", "message"), [
    ({"prompt": "{not json"}, "syntax", "the PNG's 'prompt' text is not valid JSON"),
    ({"workflow": "[1,"}, "syntax", "the PNG's 'workflow' text is not valid JSON"),
    ({"prompt": "[" * 100_000}, "limit_exceeded",
     "the PNG's 'prompt' text is nested too deeply"),
    ({"prompt": "{}"}, "syntax", "the PNG's 'prompt' text is not a ComfyUI prompt or workflow"),
    ({"workflow": '{"version": 1, "nodes": {}}'}, "syntax",
     "the PNG's 'workflow' text is not a ComfyUI prompt or workflow"),
    ({"parameters": "a cat"}, "syntax", "a PNG image with no workflow in it (no 'prompt', "
     "'workflow' or 'latentgraph' text chunk; latentgraph and ComfyUI save theirs in PNG text "
     "chunks and WEBP EXIF)"),
])  # fmt: skip
def test_png_refusals_name_the_file_and_the_chunk(tmp_path, chunks, code, message):
    path = png(tmp_path / "x.png", **chunks)
    assert refused(lambda: load_file(path, registry=registry)) == [(code, str(path), message)]


def test_a_png_past_the_size_limit_is_refused_before_it_is_read(tmp_path):
    path = tmp_path / "huge.png"
    with open(path, "wb") as fh:  # sparse: no disk space used
        fh.write(PNG_SIGNATURE)
        fh.truncate(MAX_PNG_BYTES + 1)
    assert refused(lambda: load_file(path, registry=registry)) == [
        ("syntax", str(path), "PNG larger than 256 MB")]  # fmt: skip
    with open(path, "r+b") as fh:
        fh.truncate(MAX_PNG_BYTES)  # at the limit: read (and found broken)
    [(_, _, message)] = refused(lambda: load_file(path, registry=registry))
    assert message.startswith("cannot read the PNG: ")


def test_png_text_refuses_other_images_and_broken_pngs(tmp_path):
    jpeg = tmp_path / "a.jpg"
    Image.new("RGB", (4, 4)).save(jpeg)
    assert refused(lambda: png_text(jpeg)) == [
        ("syntax", str(jpeg), "not a PNG image (it is JPEG)")]  # fmt: skip
    broken = tmp_path / "b.png"
    broken.write_bytes(PNG_SIGNATURE + b"garbage" * 10)
    assert refused(lambda: load_file(broken, registry=registry)) == [
        ("syntax", str(broken), "cannot read the PNG: Truncated File Read")]  # fmt: skip
    assert png_text(png(tmp_path / "c.png", a="1", b="two")) == {"a": "1", "b": "two"}


@pytest.mark.parametrize("side", [9000, 14000, 60000])
def test_a_png_claiming_too_many_pixels_is_refused_before_it_is_decoded(tmp_path, side, recwarn):
    """A 65-byte PNG whose header claims 14000 x 14000 failed `run` with Pillow's
    DecompressionBombError (an internal error), 13000 x 13000 printed its warning first."""
    path = tmp_path / "bomb.png"
    path.write_bytes(header_only_png(side, side))
    assert refused(lambda: load_file(path, registry=registry)) == [
        ("syntax", str(path), f"cannot read the PNG's text: the image is {side}x{side} = "
         f"{side * side:,} pixels, over the limit of {MAX_PNG_PIXELS:,}")]  # fmt: skip
    assert not recwarn.list


@pytest.mark.parametrize("shape", ["editor", "api"])
def test_a_comfyui_file_writing_a_key_twice_is_refused(tmp_path, classic_editor, classic_api,
                                                        shape):  # fmt: skip
    """`"mode": 0, "mode": 2` in a hand-edited editor file muted the node without a word
    (JSON keeps the last); our own JSON refuses it, and so do ComfyUI's formats now."""
    if shape == "editor":
        text = json.dumps(classic_editor, indent=1).replace('"mode": 0', '"mode": 0, "mode": 2', 1)
    else:
        text = json.dumps(classic_api, indent=1).replace('"seed":', '"seed": 1, "seed":', 1)
    key = "mode" if shape == "editor" else "seed"
    path = tmp_path / "twice.json"
    path.write_text(text)
    with pytest.raises(WorkflowError) as err:
        load_file(path, registry=registry)
    [problem] = err.value.problems
    assert problem.message == (f"key {key!r} is written twice in one object (JSON would keep "
                               "the last without a word): keep the one you mean")  # fmt: skip
    assert str(problem.location) == str(path)
    written_once = classic_editor if shape == "editor" else classic_api
    assert load_text(json.dumps(written_once), registry=registry).format == shape


@pytest.mark.parametrize("shape", ["editor", "api"])
def test_a_comfyui_file_is_parsed_once(tmp_path, monkeypatch, classic_editor, classic_api,
                                       shape):  # fmt: skip
    """Its text was parsed twice: to tell the format, then again to find keys written twice."""
    text = json.dumps(classic_editor if shape == "editor" else classic_api)
    path = tmp_path / "wf.json"
    path.write_text(text)
    parsed = []
    loads = json.loads

    def counting(s, *args, **kwargs):
        parsed.append(s == text)
        return loads(s, *args, **kwargs)

    monkeypatch.setattr(json, "loads", counting)
    assert load_file(path, registry=registry).format == shape
    assert load_text(text, registry=registry).format == shape
    assert parsed.count(True) == 2  # once per load
