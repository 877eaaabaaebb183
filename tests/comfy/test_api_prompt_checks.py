"""How POST /prompt checks an API-format prompt, as ComfyUI does (server/prompts.py over
graph/comfy_api.py): each output node with what it needs, literals converted with int(),
float(), str(); our YAML stays strict."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from latentgraph.graph import Settings
from latentgraph.graph.comfy_api import graph_from_prompt
from latentgraph.graph.formats import load_text
from latentgraph.graph.object_info import node_info, object_info
from latentgraph.graph.validate import validate
from latentgraph.server.prompts import PromptRejected, check_prompt
from latentgraph.wiring import node_registry

from .conftest import DATA


@pytest.fixture(scope="module")
def registry():
    return node_registry()


@pytest.fixture
def t2i() -> dict:
    return json.loads((DATA / "classic_api.json").read_text())


def check(prompt: dict, registry, targets=None):
    return check_prompt(prompt, registry, Settings(), targets)


def refusal(prompt: dict, registry) -> dict:
    with pytest.raises(PromptRejected) as caught:
        check(prompt, registry)
    return caught.value.body


# --- only output nodes and what they need are checked ---------------------------------------


def test_a_node_feeding_no_output_is_not_checked(t2i, registry):
    t2i["31"] = {"class_type": "CLIPTextEncode", "inputs": {"text": "unused"}}  # no clip
    checked, _ = check(t2i, registry)
    assert checked.targets is None and checked.node_errors == {}


def test_a_failing_output_is_named_and_only_the_good_ones_run(t2i, registry):
    t2i["30"] = {"class_type": "PreviewImage", "inputs": {}}  # a stray preview
    checked, _ = check(t2i, registry)
    assert checked.targets == ["9"]
    [error] = checked.node_errors["30"]["errors"]
    assert error["type"] == "required_input_missing"
    assert error["extra_info"]["input_name"] == "images"
    assert checked.node_errors["30"]["dependent_outputs"] == ["30"]
    assert checked.node_errors["30"]["class_type"] == "PreviewImage"


def test_an_error_stops_every_output_that_needs_it_and_none_left_is_a_400(t2i, registry):
    t2i["10"] = {"class_type": "PreviewImage", "inputs": {"images": ["8", 0]}}
    t2i["3"]["inputs"]["steps"] = 0
    body = refusal(t2i, registry)
    assert body["error"]["type"] == "prompt_outputs_failed_validation"
    assert list(body["node_errors"]) == ["3"]
    assert sorted(body["node_errors"]["3"]["dependent_outputs"]) == ["10", "9"]


def test_an_unknown_class_type_refuses_the_prompt_even_unconnected(t2i, registry):
    t2i["31"] = {"class_type": "NoSuchNode", "inputs": {}}
    body = refusal(t2i, registry)
    assert body["error"]["type"] == "missing_node_type"
    assert body["node_errors"]["31"]["dependent_outputs"] == []


def test_an_unknown_class_type_is_worded_as_latentgraph_validate_words_it(t2i, registry):
    """One rule (validate.unknown_type_message): the server's node_errors say what `latentgraph
    validate` prints for the same API file."""
    inputs = {"samples": ["3", 0], "filename_prefix": "latents/ComfyUI"}
    t2i["31"] = {"class_type": "SaveLatent", "inputs": inputs}  # a ComfyUI node we lack
    [error] = refusal(t2i, registry)["node_errors"]["31"]["errors"]
    graph = load_text(json.dumps(t2i), "api.json", registry=registry).graph
    [problem] = [p for p in validate(graph, registry) if p.code == "unknown_node_type"]
    assert error["extra_info"]["latentgraph_type"] == "unknown_node_type"
    assert error["message"] == problem.message
    assert error["message"] == (
        "unknown node type 'SaveLatent': a ComfyUI core or custom node latentgraph does not have "
        "(docs/comfy-compat.md lists the ones it has); if a plugin declares it, give its folder "
        "with --nodes-dir or install its package"  # serve's flag too: the server's answer
    )


# --- an unknown class_type names the outputs depending on it ------------------------------


def test_an_unknown_class_types_dependent_outputs_are_named(t2i, registry):
    t2i["8"]["class_type"] = "VAEDecodeTiledFancy"
    body = refusal(t2i, registry)
    assert body["error"]["type"] == "missing_node_type"
    assert body["node_errors"]["8"]["dependent_outputs"] == ["9"]


def test_a_bool_output_index_is_a_literal_for_the_refusal_as_for_the_converter(t2i, registry):
    """["31", true] is no link (ComfyUI's link is [node id, int index]; a bool is no index):
    the converter keeps it a literal, so a refusal naming node 31 names no output depending
    on it through that value (it was counted once: bool is an int subclass)."""
    t2i["31"] = {"class_type": "VAEDecodeTiledFancy", "inputs": {}}
    t2i["9"]["inputs"]["filename_prefix"] = ["31", True]
    assert graph_from_prompt(t2i, registry)["9"].inputs["filename_prefix"] == ["31", True]
    body = refusal(t2i, registry)
    assert body["error"]["type"] == "missing_node_type"
    assert body["node_errors"]["31"]["dependent_outputs"] == []


# --- a literal where a link belongs: the link as ComfyUI writes it -------------------------


@pytest.mark.parametrize(
    ("node", "name", "sent", "advice"),
    [("8", "vae", [4, 2], 'not a literal (a list); a link\'s node id is a string: write ["4", 2]'),
     ("3", "positive", None,
      'not a literal (null); write a link as ["<node id>", <output index>]')],
)  # fmt: skip
def test_a_literal_for_a_link_input_gets_comfyuis_link_form(t2i, registry, node, name, sent,
                                                            advice):  # fmt: skip
    t2i[node]["inputs"][name] = sent
    [error] = refusal(t2i, registry)["node_errors"][node]["errors"]
    assert error["type"] == "bad_linked_input" and error["message"].endswith(advice)
    assert "node.output" not in error["message"]
    declared = node_info(registry[t2i[node]["class_type"]], Settings())["input"]["required"]
    assert error["extra_info"] == {"input_name": name, "input_config": declared[name],
                                   "received_value": sent,
                                   "latentgraph_type": "bad_linked_input"}  # fmt: skip


@pytest.mark.parametrize(("files", "quoted"), [(19, True), (20, False)])  # + example.png
def test_a_dropdown_is_quoted_unless_longer_than_comfyui_sends(registry, tmp_path, files,
                                                               quoted):  # fmt: skip
    """A value_not_in_list's extra_info.input_config is the dropdown as /object_info lists
    it, or null past 20 choices, as ComfyUI leaves out lists of many model files."""
    from PIL import Image

    for i in range(files):
        Image.new("RGB", (8, 8)).save(tmp_path / f"{i:02}.png")
    settings = Settings(input_dir=tmp_path)
    prompt = {"1": {"class_type": "LoadImage", "inputs": {"image": "missing.png"}},
              "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0]}}}  # fmt: skip
    with pytest.raises(PromptRejected) as caught:
        check_prompt(prompt, registry, settings)
    [error] = caught.value.body["node_errors"]["1"]["errors"]
    assert error["type"] == "value_not_in_list"
    declared = object_info(registry, settings)["LoadImage"]["input"]["required"]["image"]
    assert len(declared[0]) == files + 1
    assert error["extra_info"]["input_config"] == (declared if quoted else None)


# --- literals converted as ComfyUI converts them ------------------------------------------


@pytest.mark.parametrize(
    ("node", "name", "sent", "runs"),
    [("3", "steps", "5", 5), ("3", "cfg", "7.5", 7.5), ("5", "width", 64.0, 64),
     ("6", "text", 123, "123"), ("3", "cfg", 7, 7.0), ("3", "steps", 5.9, 5),
     ("3", "seed", " 12 ", 12)],
)  # fmt: skip
def test_literals_are_converted_with_int_float_str(t2i, registry, node, name, sent, runs):
    t2i[node]["inputs"][name] = sent
    checked, graph = check(t2i, registry)
    value = graph.nodes[node].inputs[name]
    assert value == runs and type(value) is type(runs)
    assert checked.node_errors == {}


@pytest.mark.parametrize(
    ("name", "sent"),
    [("steps", "7.5"), ("steps", "five"), ("steps", float("inf")), ("cfg", "x"),
     ("steps", {"__value__": [5]}), ("steps", None)],
)  # fmt: skip
def test_a_literal_that_does_not_convert_is_invalid_input_type(t2i, registry, name, sent):
    t2i["3"]["inputs"][name] = sent
    body = refusal(t2i, registry)
    [error] = body["node_errors"]["3"]["errors"]
    assert error["type"] == "invalid_input_type"
    assert error["extra_info"]["input_name"] == name


@pytest.mark.parametrize("sent", ["nan", "inf", "-inf", "1e999", "1" + "0" * 400])
def test_a_float_that_converts_to_no_number_is_reported_as_the_client_sent_it(t2i, registry,
                                                                             sent):  # fmt: skip
    """ComfyUI reports the value from the prompt; the converted NaN or infinity could not be
    encoded as JSON (the 400 became a 500)."""
    t2i["3"]["inputs"]["cfg"] = sent
    body = refusal(t2i, registry)
    [error] = body["node_errors"]["3"]["errors"]
    assert error["type"] == "invalid_input_type"
    declared = node_info(registry["KSampler"], Settings())["input"]["required"]["cfg"]
    assert error["extra_info"] == {"input_name": "cfg", "input_config": declared,
                                   "received_value": sent,
                                   "latentgraph_type": "invalid_input_type"}  # fmt: skip
    json.dumps(body, allow_nan=False)  # what Starlette's JSONResponse does


@pytest.mark.parametrize("width", [64.0, "64", " 64"])
def test_the_converted_value_is_what_the_cache_key_sees(t2i, registry, width):
    from latentgraph.graph.cache import node_key

    latent = registry.get("EmptyLatentImage")
    _, plain = check(t2i, registry)
    t2i["5"]["inputs"]["width"] = width
    _, converted = check(t2i, registry)
    keys = [
        node_key(latent, graph.nodes["5"].inputs, {}, Settings()) for graph in (plain, converted)
    ]
    assert keys[0] == keys[1]


def test_our_yaml_is_not_converted(registry):
    workflow = load_text("nodes:\n  latent: {type: EmptyLatentImage, width: '64'}\n",
                         registry=registry)  # fmt: skip
    codes = {(p.code, p.input_name) for p in validate(workflow.graph, registry)}
    assert ("invalid_input_type", "width") in codes


def test_load_image_values_naming_their_folder_pass_the_check(registry, tmp_path):
    from PIL import Image

    (tmp_path / "output").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "output" / "ComfyUI_00001_.png")
    settings = Settings(input_dir=tmp_path / "input", output_dir=tmp_path / "output")
    prompt = {"1": {"class_type": "LoadImage", "inputs": {"image": "ComfyUI_00001_.png [output]"}},
              "2": {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}}}  # fmt: skip
    checked, _ = check_prompt(prompt, registry, settings)
    assert checked.node_errors == {} and checked.targets is None
    prompt["1"]["inputs"]["image"] = "ComfyUI_00002_.png [output]"  # no such file
    with pytest.raises(PromptRejected) as caught:
        check_prompt(prompt, registry, settings)
    [error] = caught.value.body["node_errors"]["1"]["errors"]
    assert error["type"] == "value_not_in_list"


def test_an_input_the_type_lacks_is_ignored_with_a_warning_naming_the_one_meant(t2i, registry):
    """ComfyUI ignores it, and so does the run, but a typo would silently take the default of
    the input meant: validation warns, with a did-you-mean; the prompt is still accepted."""
    sampler = next(n for n in t2i.values() if n["class_type"] == "KSampler")
    sampler["inputs"]["stesp"] = sampler["inputs"].pop("steps")
    graph = load_text(json.dumps(t2i), "t2i.json", registry=registry).graph
    [warning] = [p for p in validate(graph, registry, Settings()) if p.code == "unknown_input"]
    assert warning.severity == "warning" and warning.input_name == "stesp"
    assert warning.message == "KSampler has no input 'stesp': it is ignored; did you mean 'steps'?"
    checked, _ = check(t2i, registry)
    assert checked.node_errors == {}


def test_a_checkpoint_not_in_any_models_folder_says_where_the_choices_come_from(registry):
    prompt = {"4": {"class_type": "CheckpointLoaderSimple",
                    "inputs": {"ckpt_name": "v1-5-pruned-emaonly.safetensors"}},
              "9": {"class_type": "PreviewAny", "inputs": {"source": ["4", 0]}}}  # fmt: skip
    body = refusal(prompt, registry)
    [error] = body["node_errors"]["4"]["errors"]
    assert error["type"] == "value_not_in_list"
    assert (
        "(the choices are the .safetensors files in checkpoints/ of the models folders; "
        in error["message"]
    )
    assert error["message"].endswith(
        "pass --models-dir DIR to look in another models folder (or --extra-model-paths FILE "
        "to read ComfyUI's extra_model_paths.yaml); pickled files (.ckpt, .pt, .pth, .bin) "
        "are never listed, for safety: convert them to .safetensors)"
    )


def test_a_model_refusal_names_the_folders_searched_for_the_run_and_a_broken_link(
    registry, tmp_path, monkeypatch
):
    """The dropdown's refusal names the folders this run's settings searched (not only the
    flags that set them), as the run-time error does; a name that is a link to a missing
    file says so (it is not listed, since it could not be loaded)."""
    monkeypatch.setenv("LATENTGRAPH_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("LATENTGRAPH_MODELS_DIRS", raising=False)
    for root in ("a", "b"):
        (tmp_path / root / "checkpoints").mkdir(parents=True)
    (tmp_path / "b" / "checkpoints" / "gone.safetensors").symlink_to(tmp_path / "nowhere")
    settings = Settings(models_dirs=[tmp_path / "a", tmp_path / "b"])
    # as a web client knows the server's folders (server.messages.shown_paths): two roots
    # are two names, never "models/checkpoints, models/checkpoints"
    looked = f"looked in {Path('models', 'checkpoints')}, {Path('models-2', 'checkpoints')}; "
    for name, broken in (("sd15.safetensors", ""), ("gone.safetensors", (
            f"'gone.safetensors' ({Path('models-2', 'checkpoints', 'gone.safetensors')}) is a "
            "link to a missing file, nowhere; "))):  # fmt: skip
        prompt = {"4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": name}},
                  "9": {"class_type": "PreviewAny", "inputs": {"source": ["4", 0]}}}  # fmt: skip
        with pytest.raises(PromptRejected) as caught:
            check_prompt(prompt, registry, settings)
        [error] = caught.value.body["node_errors"]["4"]["errors"]
        assert error["type"] == "value_not_in_list"
        assert (
            f"({broken}the choices are the .safetensors files in checkpoints/ of the "
            f"models folders; {looked}pass --extra-models-dir DIR" in error["message"]
        )


def test_an_empty_models_folder_is_an_empty_dropdown_and_a_name_in_it_says_where_files_go(
    registry, tmp_path, monkeypatch
):
    """An empty vae/: /object_info sends VAELoader's choices as [] with no default, as ComfyUI
    sends `(folder_paths.get_filename_list("vae"),)` (its editor reads [[]] and [[], {}]
    alike and shows the widget's missing value as "undefined" for both); a prompt naming a
    file there says there are no choices and where the files go."""
    monkeypatch.setenv("LATENTGRAPH_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("LATENTGRAPH_MODELS_DIRS", raising=False)
    (tmp_path / "models" / "vae").mkdir(parents=True)
    settings = Settings(models_dirs=[tmp_path / "models"])
    declared = object_info(registry, settings)["VAELoader"]["input"]["required"]["vae_name"]
    assert declared[0] == [] and "default" not in declared[1]
    prompt = {"1": {"class_type": "VAELoader", "inputs": {"vae_name": "sd-vae.safetensors"}},
              "2": {"class_type": "PreviewAny", "inputs": {"source": ["1", 0]}}}  # fmt: skip
    with pytest.raises(PromptRejected) as caught:
        check_prompt(prompt, registry, settings)
    [error] = caught.value.body["node_errors"]["1"]["errors"]
    assert error["type"] == "value_not_in_list"
    assert error["extra_info"]["input_config"] == declared
    assert error["message"] == (
        "'sd-vae.safetensors' is not one of: (no choices) (the choices are the .safetensors "
        f"files in vae/ of the models folders; looked in {Path('models', 'vae')}; pass "
        "--extra-models-dir DIR to look in another models folder too (or --extra-model-paths "
        "FILE to read ComfyUI's extra_model_paths.yaml); pickled files (.ckpt, .pt, .pth, "
        ".bin) are never listed, for safety: convert them to .safetensors)"
    )


def test_an_empty_dropdown_left_out_by_the_editor_says_its_list_is_empty_and_why(
    registry, tmp_path, monkeypatch
):
    """The editor sends no value for a dropdown with nothing in it: the input is missing from
    the prompt, and the refusal says where the files it would list go; with a file there,
    a missing input is only missing."""
    monkeypatch.setenv("LATENTGRAPH_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("LATENTGRAPH_MODELS_DIRS", raising=False)
    (tmp_path / "models" / "vae").mkdir(parents=True)
    settings = Settings(models_dirs=[tmp_path / "models"])
    prompt = {"1": {"class_type": "VAELoader", "inputs": {}},
              "2": {"class_type": "PreviewAny", "inputs": {"source": ["1", 0]}}}  # fmt: skip
    with pytest.raises(PromptRejected) as caught:
        check_prompt(prompt, registry, settings)
    [error] = caught.value.body["node_errors"]["1"]["errors"]
    assert error["type"] == "required_input_missing"
    assert error["extra_info"]["input_name"] == "vae_name"
    assert error["message"].startswith(
        "this required COMBO input is missing: give it a value; its list of choices "
        "is empty (the choices are the .safetensors files in vae/ of the models folders; "
        f"looked in {Path('models', 'vae')}; "
    )
    (tmp_path / "models" / "vae" / "sd-vae.safetensors").write_bytes(b"0")
    with pytest.raises(PromptRejected) as caught:
        check_prompt(prompt, registry, settings)
    [error] = caught.value.body["node_errors"]["1"]["errors"]
    assert error["message"] == "this required COMBO input is missing: give it a value"


def test_a_prompt_read_from_a_file_places_its_problems_in_it(registry, t2i):
    t2i["5"]["inputs"]["height"] = 0
    graph = load_text(json.dumps(t2i), "wf/x.json", registry=registry).graph
    [problem] = [p for p in validate(graph, registry) if p.severity == "error"]
    assert str(problem) == "wf/x.json: node '5' input 'height': 0 is below the minimum 16"
    # a prompt a client sent has no file: the server words it as ComfyUI does
    with pytest.raises(PromptRejected) as refused:
        check_prompt(t2i, registry, Settings())
    [error] = refused.value.body["node_errors"]["5"]["errors"]
    assert error["details"] == "node '5' input 'height': 0 is below the minimum 16"


# --- a save node's prefix: only where the server serves its files -----------------------


@pytest.mark.parametrize("prefix, said", [(".hidden", "the file name starts with '.'"),
                                           ("a/" * 40 + "x", "saves 40 folders deep")])  # fmt: skip
def test_a_prefix_saving_where_view_serves_nothing_is_refused_naming_the_input(t2i, registry,
                                                                             prefix, said):  # fmt: skip
    """SaveImage's `.hidden` and a prefix 40 folders deep were queued and saved, and /view
    refused the files (a name starting with '.', more than 32 levels): a broken image."""
    t2i["9"]["inputs"]["filename_prefix"] = prefix
    body = refusal(t2i, registry)
    assert body["error"]["type"] == "prompt_outputs_failed_validation"
    [error] = body["node_errors"]["9"]["errors"]
    assert error["extra_info"]["input_name"] == "filename_prefix"
    assert said in error["details"]
