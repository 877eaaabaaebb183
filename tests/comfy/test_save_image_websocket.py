"""SaveImageWebsocket through the real server: each image reaches the websocket client that
queued the prompt as a binary frame in ComfyUI's format (type 1, format 2 = PNG, then the PNG),
while that node runs; another client gets none; /object_info lists ComfyUI's declaration;
headless (`latentgraph run`) the node warns and sends nothing."""

from __future__ import annotations

import io
import json
import struct
import time
import uuid

import numpy as np
import pytest
from PIL import Image

from ..server.conftest import RunningServer, WsClient
from .test_server_classic import real_server  # noqa: F401 - the fixture

WIDTH, HEIGHT = 40, 24


@pytest.fixture(scope="module")
def picture(real_server) -> np.ndarray:  # noqa: F811
    """A gradient PNG in the server's input folder (LoadImage reads it): its pixels."""
    pixels = np.zeros((HEIGHT, WIDTH, 3), dtype=np.uint8)
    pixels[..., 0] = np.arange(WIDTH, dtype=np.uint8)[None, :] * 6
    pixels[..., 1] = np.arange(HEIGHT, dtype=np.uint8)[:, None] * 10
    pixels[..., 2] = 77
    Image.fromarray(pixels).save(real_server.config.input_dir / "ws_gradient.png")
    return pixels


def ws_prompt() -> dict:
    """LoadImage, then two images of one colour after it: a batch of three, sent by node
    "save_ws" (the id ComfyUI's example client watches)."""
    return {
        "1": {"class_type": "LoadImage", "inputs": {"image": "ws_gradient.png"}},
        "2": {"class_type": "EmptyImage", "inputs": {"width": WIDTH, "height": HEIGHT,
                                                     "batch_size": 2, "color": 0xFF8000}},
        "3": {"class_type": "ImageBatch", "inputs": {"image1": ["1", 0], "image2": ["2", 0]}},
        "save_ws": {"class_type": "SaveImageWebsocket", "inputs": {"images": ["3", 0]}},
    }  # fmt: skip


def queue(server: RunningServer, client_id: str) -> str:
    r = server.post_prompt(ws_prompt(), client_id)
    assert r.status_code == 200, r.text
    return r.json()["prompt_id"]


def test_each_image_reaches_the_prompts_client_as_a_png_frame_while_the_node_runs(
    real_server, picture  # noqa: F811
):  # fmt: skip
    client, other = WsClient(real_server), WsClient(real_server)
    try:
        pid = queue(real_server, client.client_id)
        # Everything the client receives, in order, up to the run's final `executing` null.
        received: list[tuple[str, object]] = []
        while True:
            msg = client.recv(120)
            if msg["type"] == "<binary>":
                received.append(("binary", msg["data"]))
                continue
            data = msg.get("data") or {}
            if msg["type"] == "executing" and data.get("prompt_id") == pid:
                received.append(("executing", data["node"]))
                if data["node"] is None:
                    break
            elif msg["type"] == "execution_error":
                pytest.fail(f"the run failed: {data}")
        time.sleep(0.3)  # anything the other client would get has arrived by now
        while True:
            try:
                other.recv(0.2)
            except TimeoutError:
                break
    finally:
        client.close()
        other.close()
    executing = [value for kind, value in received if kind == "executing"]
    assert executing[-2:] == ["save_ws", None]
    start = received.index(("executing", "save_ws"))
    frames = [value for kind, value in received if kind == "binary"]
    assert frames and all(kind == "binary" for kind, _ in received[start + 1 : -1])
    assert [value for kind, value in received[:start] if kind == "binary"] == []
    assert len(frames) == 3  # one per image of the batch
    for frame in frames:
        assert struct.unpack(">II", frame[:8]) == (1, 2)  # PREVIEW_IMAGE, PNG
        image = Image.open(io.BytesIO(frame[8:]))
        assert image.format == "PNG" and image.size == (WIDTH, HEIGHT)
    first = np.asarray(Image.open(io.BytesIO(frames[0][8:])).convert("RGB"))
    assert np.array_equal(first, picture)  # the batch's order: LoadImage's image first
    rest = np.asarray(Image.open(io.BytesIO(frames[2][8:])).convert("RGB"))
    assert (rest == np.array([255, 128, 0], dtype=np.uint8)).all()
    assert other.binary == []  # another clientId gets none of them


def collect_like_comfyuis_example(server: RunningServer, prompt: dict) -> dict[str, list[bytes]]:
    """What ComfyUI's websockets_api_example_ws_images.py does, written afresh: note which node
    `executing` names for our prompt, keep each binary frame's payload (past its 8-byte header)
    under it, stop at `executing` null."""
    from websockets.sync.client import connect

    client_id = str(uuid.uuid4())
    images: dict[str, list[bytes]] = {}
    with connect(f"{server.ws_url}?clientId={client_id}", open_timeout=10) as ws:
        body = {"prompt": prompt, "client_id": client_id}
        prompt_id = server.http.post("/api/prompt", json=body).json()["prompt_id"]
        current = ""
        while True:
            out = ws.recv(timeout=120)
            if isinstance(out, str):
                message = json.loads(out)
                data = message["data"]
                if message["type"] == "executing" and data["prompt_id"] == prompt_id:
                    if data["node"] is None:
                        break
                    current = data["node"]
            elif current == "save_ws":
                images.setdefault(current, []).append(out[8:])
    return images


def test_comfyuis_example_client_gets_every_image(real_server, picture):  # noqa: F811
    images = collect_like_comfyuis_example(real_server, ws_prompt())
    assert list(images) == ["save_ws"] and len(images["save_ws"]) == 3
    sizes = {Image.open(io.BytesIO(png)).size for png in images["save_ws"]}
    assert sizes == {(WIDTH, HEIGHT)}
    # It never comes from the cache: the same prompt again sends its images again.
    again = collect_like_comfyuis_example(real_server, ws_prompt())
    assert len(again["save_ws"]) == 3


def test_object_info_lists_comfyuis_declaration(real_server):  # noqa: F811
    listed = real_server.http.get("/object_info").json()
    info = listed["SaveImageWebsocket"]
    # One required IMAGE input, declared as SaveImage's `images` is (as in ComfyUI).
    assert list(info["input"]["required"]) == ["images"] and info["input_order"]["required"] == [
        "images"
    ]
    assert info["input"]["required"]["images"] == listed["SaveImage"]["input"]["required"]["images"]
    assert info["input"]["required"]["images"][0] == "IMAGE"
    assert info["input"].get("optional", {}) == {}
    assert info["output"] == [] and info["output_node"] is True
    assert info["category"] == "image" and info["display_name"] == "SaveImageWebsocket"


def test_headless_run_warns_once_and_writes_nothing(tmp_path, capsys):
    from latentgraph.cli import main

    prompt = {
        "1": {"class_type": "EmptyImage", "inputs": {"width": 16, "height": 16, "batch_size": 2,
                                                     "color": 0}},
        "save_ws": {"class_type": "SaveImageWebsocket", "inputs": {"images": ["1", 0]}},
    }  # fmt: skip
    path = tmp_path / "ws_api.json"
    path.write_text(json.dumps(prompt))
    code = main(["run", str(path), "--output-dir", str(tmp_path / "out"), "--no-cache"])
    out, err = capsys.readouterr()
    assert code == 0, err
    said = out + err
    assert said.count("SaveImageWebsocket sends images to the websocket client") == 1
    assert "its 2 image(s) were neither sent nor saved" in said
    assert "Traceback" not in said
    assert not list((tmp_path / "out").glob("**/*.png"))
