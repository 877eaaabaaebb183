"""Acceptance through the real server (uvicorn, the default registry, the tiny model):
ComfyUI's classic graph posted to /prompt produces an image in /history and /view; uploads
appear in LoadImage's dropdown; unknown node types are refused with node_errors."""

from __future__ import annotations

import io
import json

import pytest
from PIL import Image

from latentgraph.graph.comfy_api import prompt_from_graph
from latentgraph.graph.comfy_editor import graph_from_editor

from ..server.conftest import RunningServer, WsClient, free_port


@pytest.fixture(scope="module")
def real_server(tmp_path_factory, one_thread):
    from latentgraph.server.config import ServerConfig
    from latentgraph.wiring import prepare_server, worker_setup

    data = tmp_path_factory.mktemp("comfy-server")
    config = ServerConfig(data_dir=data, port=free_port(), disk_cache=False, editor=False)
    prepare_server(config)  # example.png in the input folder
    running = RunningServer(config, worker_setup()).start()
    yield running
    running.stop()


def run_prompt(server: RunningServer, prompt: dict, workflow: dict | None = None, *,
               pnginfo: dict | None = None) -> dict:  # fmt: skip
    """POST /prompt as the editor does (or with an API client's `pnginfo` as extra_pnginfo),
    wait for the end of the run, return its history."""
    client = WsClient(server)
    try:
        pnginfo = pnginfo or ({"workflow": workflow} if workflow else None)
        extra = {"extra_pnginfo": pnginfo} if pnginfo else {}
        r = server.post_prompt(prompt, client.client_id, extra_data=extra)
        assert r.status_code == 200, r.text
        pid = r.json()["prompt_id"]
        messages = client.until_done(pid, timeout=120)
    finally:
        client.close()
    assert any(m["type"] == "execution_success" for m in messages), messages
    return server.http.get(f"/history/{pid}").json()[pid]


def view(server: RunningServer, record: dict) -> Image.Image:
    r = server.http.get("/view", params=record)
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    return Image.open(io.BytesIO(r.content))


def test_api_format_prompt_gives_an_image_in_history_and_view(real_server, classic_api,
                                                                classic_editor):  # fmt: skip
    history = run_prompt(real_server, classic_api, classic_editor)
    assert history["status"]["status_str"] == "success"
    [record] = history["outputs"]["9"]["images"]
    assert record["type"] == "output" and record["filename"].startswith("classic_")
    img = view(real_server, record)
    assert img.size == (64, 64)
    assert json.loads(img.text["workflow"]) == classic_editor  # drag it back onto the editor
    assert json.loads(img.text["prompt"])["3"]["class_type"] == "KSampler"


def test_editor_format_converted_as_the_editor_does_runs(real_server, classic_editor):
    from latentgraph.graph import default_registry

    classic_editor["nodes"] = [dict(n) for n in classic_editor["nodes"]]
    for n in classic_editor["nodes"]:
        if n["type"] == "KSampler":
            n["widgets_values"] = [99, "fixed", *n["widgets_values"][2:]]
    graph = graph_from_editor(classic_editor, default_registry)
    prompt = prompt_from_graph(graph, default_registry)
    history = run_prompt(real_server, prompt, classic_editor)
    [record] = history["outputs"]["9"]["images"]
    assert view(real_server, record).size == (64, 64)
    assert history["prompt"][2]["3"]["inputs"]["seed"] == 99


def test_uploaded_image_is_listed_and_runs_through_load_image(real_server):
    buf = io.BytesIO()
    Image.new("RGB", (24, 16), (10, 200, 30)).save(buf, format="PNG")
    up = real_server.http.post("/upload/image", files={"image": ("green.png", buf.getvalue())})
    assert up.status_code == 200, up.text
    info = real_server.http.get("/object_info/LoadImage").json()["LoadImage"]
    choices = info["input"]["required"]["image"][0]
    assert "green.png" in choices and "example.png" in choices
    assert info["input"]["required"]["image"][1]["image_upload"] is True
    assert (real_server.config.input_dir / "example.png").is_file()  # for the editor preview
    prompt = {
        "1": {"class_type": "LoadImage", "inputs": {"image": "green.png"}},
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "up"}},
    }
    history = run_prompt(real_server, prompt)
    [record] = history["outputs"]["2"]["images"]
    img = view(real_server, record)
    assert img.size == (24, 16) and img.getpixel((3, 3)) == (10, 200, 30)
    prompt["1"]["inputs"]["image"] = "not-uploaded.png"
    r = real_server.post_prompt(prompt)
    assert r.status_code == 400
    [err] = r.json()["node_errors"]["1"]["errors"]
    assert err["type"] == "value_not_in_list" and err["extra_info"]["input_name"] == "image"


def test_every_extra_pnginfo_entry_is_a_text_chunk_of_the_saved_png(real_server):
    """ComfyUI's SaveImage writes each extra_pnginfo entry as a chunk of its key (JSON), beside
    the prompt; only `workflow` was written, and an API client's own entries were lost."""
    prompt = {
        "1": {"class_type": "LoadImage", "inputs": {"image": "example.png"}},
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "x"}},
    }
    workflow = {"nodes": [], "links": [], "version": 0.4}
    mine = {"job": 7, "tags": ["fox", "é"], "none": None}
    pnginfo = {"workflow": workflow, "my_app": mine, "prompt": "not the prompt", "n": None}
    [record] = run_prompt(real_server, prompt, pnginfo=pnginfo)["outputs"]["2"]["images"]
    text = view(real_server, record).text
    assert json.loads(text["workflow"]) == workflow and json.loads(text["my_app"]) == mine
    assert text["n"] == "null"  # as ComfyUI writes it
    assert json.loads(text["prompt"]) == prompt  # the run's own: an entry does not replace it
    refused = real_server.post_prompt(prompt, extra_data={"extra_pnginfo": {"日本": 1}})
    assert refused.status_code == 400 and "'日本'" in refused.json()["error"]["message"]


def test_unknown_node_types_are_refused_naming_them(real_server, classic_api):
    classic_api["9"]["class_type"] = "UltimateSDUpscale"
    classic_api["4"]["class_type"] = "CheckpointLoaderGGUF"
    r = real_server.post_prompt(classic_api)
    assert r.status_code == 400
    body = r.json()
    assert body["error"]["type"] == "missing_node_type"
    assert "UltimateSDUpscale" in body["error"]["message"]
    assert "CheckpointLoaderGGUF" in body["error"]["message"]
    assert body["node_errors"]["9"]["class_type"] == "UltimateSDUpscale"
    [error] = body["node_errors"]["4"]["errors"]
    assert error["type"] == "exception_during_validation"
    assert error["extra_info"]["latentgraph_type"] == "unknown_node_type"


@pytest.mark.parametrize(("node", "name", "sent", "error_type"), [
    ("3", "steps", -3, "value_smaller_than_min"),
    ("3", "steps", 5000, "custom_validation_failed"),  # over --max-steps: our limit_exceeded
    ("3", "cfg", "x", "invalid_input_type"),
    ("3", "sampler_name", "euler_fancy", "value_not_in_list"),
    ("4", "ckpt_name", "nowhere.safetensors", "value_not_in_list"),
    ("9", "filename_prefix", "a:b", "custom_validation_failed"),
    ("3", "positive", None, "bad_linked_input"),
    ("6", "text", "x" * 100_001, "custom_validation_failed"),  # over --max-string-chars
])  # fmt: skip
def test_a_refused_input_quotes_its_declaration_as_object_info_shows_it(real_server, classic_api,
                                                                         node, name, sent,
                                                                         error_type):  # fmt: skip
    """ComfyUI's node_errors carry `extra_info.input_config`, the input as /object_info
    declares it ([type, {options}]); ours had only input_name and received_value."""
    classic_api[node]["inputs"][name] = sent
    r = real_server.post_prompt(classic_api)
    assert r.status_code == 400, r.text
    error = r.json()["node_errors"][node]["errors"][0]
    assert error["type"] == error_type and error["extra_info"]["input_name"] == name
    class_type = classic_api[node]["class_type"]
    declared = real_server.http.get(f"/object_info/{class_type}").json()[class_type]["input"]
    assert error["extra_info"]["input_config"] == declared["required"][name]


def test_a_missing_input_quotes_no_declaration_as_comfyui_does(real_server, classic_api):
    del classic_api["3"]["inputs"]["model"]
    r = real_server.post_prompt(classic_api)
    assert r.status_code == 400, r.text
    [error] = r.json()["node_errors"]["3"]["errors"]
    assert error["type"] == "required_input_missing"
    assert error["extra_info"]["input_name"] == "model"
    assert "input_config" not in error["extra_info"]


def test_our_endpoint_takes_an_editor_workflow_and_keeps_it_for_the_png(real_server,
                                                                         classic_editor):  # fmt: skip
    client = WsClient(real_server)
    try:
        r = real_server.http.post(
            "/latentgraph/run",
            json={"workflow": classic_editor, "client_id": client.client_id},
        )
        assert r.status_code == 200, r.text
        pid = r.json()["prompt_id"]
        client.until_done(pid, timeout=120)
    finally:
        client.close()
    history = real_server.http.get(f"/history/{pid}").json()[pid]
    [record] = history["outputs"]["9"]["images"]
    assert json.loads(view(real_server, record).text["workflow"]) == classic_editor


def test_our_yaml_through_the_server_keeps_its_text_and_params_in_the_png(real_server):
    from pathlib import Path

    text = (Path(__file__).parents[2] / "workflows" / "txt2img.yaml").read_text()
    params = {"width": 64, "height": 64, "steps": 2, "seed": 7}
    client = WsClient(real_server)
    try:
        r = real_server.http.post("/latentgraph/run", json={
            "workflow": text, "params": params, "client_id": client.client_id})  # fmt: skip
        assert r.status_code == 200, r.text
        pid = r.json()["prompt_id"]
        client.until_done(pid, timeout=120)
    finally:
        client.close()
    history = real_server.http.get(f"/history/{pid}").json()[pid]
    [record] = history["outputs"]["save"]["images"]
    embedded = view(real_server, record).text["latentgraph"]
    expected = text
    for key, old in (("width", 128), ("height", 128), ("steps", 20), ("seed", 42)):
        expected = expected.replace(f"  {key}: {old}\n", f"  {key}: {params[key]}\n", 1)
    assert embedded == expected  # comments kept, the run's params in place


def test_rerun_after_the_image_was_deleted_writes_it_again(real_server, classic_api):
    prompt = json.loads(json.dumps(classic_api))
    prompt["9"]["inputs"]["filename_prefix"] = "rewritten"
    [first] = run_prompt(real_server, prompt)["outputs"]["9"]["images"]
    output = real_server.config.output_dir
    (output / first["filename"]).unlink()
    [again] = run_prompt(real_server, prompt)["outputs"]["9"]["images"]
    assert (output / again["subfolder"] / again["filename"]).is_file()
    assert view(real_server, again).size == (64, 64)


def test_example_workflows_are_the_editors_templates(real_server):
    from pathlib import Path

    http = real_server.http
    assert http.get("/api/workflow_templates").json() == {}  # {package: [names]}, none here
    [category] = http.get("/templates/index.json").json()
    examples = sorted(p.stem for p in (Path(__file__).parents[2] / "workflows").glob("*.yaml"))
    names = [t["name"] for t in category["templates"]]
    assert names[0] == "default" and sorted(names[1:]) == examples  # ComfyUI's classic first
    txt2img = next(t for t in category["templates"] if t["name"] == "txt2img")
    assert txt2img["title"] == "Text to image" and "tiny model" in txt2img["description"]
    workflow = http.get("/templates/txt2img.json").json()
    graph = graph_from_editor(workflow)
    assert {n.type for n in graph} >= {"LoadModel", "UNetDenoise", "SaveImage"}
    thumb = http.get(f"/templates/txt2img-1.{txt2img['mediaSubtype']}")
    assert thumb.status_code == 200 and Image.open(io.BytesIO(thumb.content)).size == (256, 256)
    for bad in ("nope.json", "..%2Fpyproject.json", "txt2img-1.webp"):
        assert http.get(f"/templates/{bad}").status_code == 404
    assert http.get("/api/userdata/comfy.templates.json").json() == []  # before any is saved


def test_a_node_warning_is_in_the_server_log_and_the_prompts_history(real_server, classic_api):
    """ComfyUI has no message for a node's warning: it is logged with the prompt and node
    (the editor's Logs panel shows it) and kept in the prompt's history status messages. The
    same prompt again, served from the cache, says it again."""
    buf = io.BytesIO()
    Image.new("RGB", (150, 130), (90, 120, 200)).save(buf, format="PNG")
    up = real_server.http.post("/upload/image", files={"image": ("odd.png", buf.getvalue())})
    assert up.status_code == 200, up.text
    prompt = dict(classic_api)
    prompt["10"] = {"class_type": "LoadImage", "inputs": {"image": "odd.png"}}
    prompt["11"] = {"class_type": "VAEEncode", "inputs": {"pixels": ["10", 0], "vae": ["4", 2]}}
    prompt["3"]["inputs"].update(latent_image=["11", 0], denoise=0.5, steps=2)
    prompt["9"]["inputs"]["filename_prefix"] = "odd"
    said = "image is 150x130, not a multiple of the VAE's scale factor 8: cropped to 144x128"
    for cached in ([], ["10", "11", "3", "8", "9"]):
        history = run_prompt(real_server, prompt)
        messages = history["status"]["messages"]
        [warning] = [d for t, d in messages if t == "node_warning"]
        assert (warning["node_id"], warning["node_type"]) == ("11", "VAEEncode")
        assert said in warning["message"]
        assert {*cached} <= {*next(d["nodes"] for t, d in messages if t == "execution_cached")}
        pid = warning["prompt_id"]
        lines = [e["m"] for e in real_server.http.get("/internal/logs/raw").json()["entries"]]
        assert any(m.startswith(f"WARNING latentgraph.server: prompt {pid}: warning from node "
                                "'11' (VAEEncode): ") and said in m for m in lines), lines  # fmt: skip


def test_a_controlnet_for_another_model_family_is_a_node_error_naming_it(real_server, classic_api):
    """An SD 1.5 ControlNet on an SDXL checkpoint: the run ends with the sampler's error
    naming the ControlNet and what differs (it was torch's matrix-shape error mid-step)."""
    prompt = dict(classic_api)
    prompt["4"] = {"class_type": "CheckpointLoaderSimple",
                   "inputs": {"ckpt_name": "builtin:tiny-sdxl"}}  # fmt: skip
    prompt["10"] = {"class_type": "LoadImage", "inputs": {"image": "example.png"}}
    prompt["11"] = {"class_type": "ControlNetLoader",
                    "inputs": {"control_net_name": "builtin:tiny-controlnet"}}  # fmt: skip
    prompt["12"] = {"class_type": "ControlNetApplyAdvanced", "inputs": {
        "positive": ["6", 0], "negative": ["7", 0], "control_net": ["11", 0],
        "image": ["10", 0], "strength": 0.8, "start_percent": 0.0, "end_percent": 1.0}}  # fmt: skip
    prompt["3"] = {**prompt["3"], "inputs": {**prompt["3"]["inputs"], "positive": ["12", 0],
                                             "negative": ["12", 1], "steps": 2}}  # fmt: skip
    client = WsClient(real_server)
    try:
        r = real_server.post_prompt(prompt, client.client_id)
        assert r.status_code == 200, r.text
        error = client.until("execution_error", r.json()["prompt_id"], timeout=120)["data"]
    finally:
        client.close()
    assert (error["node_id"], error["node_type"]) == ("3", "KSampler")
    assert error["exception_message"].startswith(
        "node '3' (KSampler) input 'positive': ControlNet builtin:tiny-controlnet (control_net of "
        "node '12' (ControlNetApplyAdvanced)) does not fit this model's unet: its cross-attention "
        "width 32, the UNet's 96;"
    )
    assert error["exception_message"].endswith("(SDXL vs SD 1.5)?")
    assert "mat1" not in str(error) and error["traceback"] == []
