"""Every bad request in the corpus: a 4xx JSON answer, nothing queued, nothing written outside
the output/input/user folders, no partial file, and the server still answers /queue."""

from __future__ import annotations

import pytest

from ..server.conftest import RunningServer, free_port
from ..server.plugin.toy_nodes import register
from .conftest import new_files, partial, snapshot
from .corpus_server import CASES, Req, png, sd

SERVER_LIMITS = dict(max_body_bytes=1_000_000, max_upload_bytes=200_000, max_steps=50,
                     max_batch=4, max_image_pixels=512 * 512, max_string_chars=1000,
                     max_extra_data_bytes=20_000)  # fmt: skip


def full_registry():
    """The real node types (no torch is imported by declaring them) plus the toy nodes."""
    import latentgraph.nodes  # noqa: F401 - registers the real nodes
    from latentgraph.graph import Registry
    from latentgraph.graph.declare import default_registry

    registry = Registry()
    for node_type in default_registry:
        registry.add(node_type)
    for name in ("Number", "Add", "Slow", "Fail", "Show"):
        if name in registry:
            pytest.fail(f"a real node type is named like a toy node: {name}")
    return register(registry)


@pytest.fixture(scope="module")
def corpus_server(tmp_path_factory):
    from latentgraph.server.config import ServerConfig
    from latentgraph.server.workers import WorkerSetup

    root = tmp_path_factory.mktemp("corpus-server")
    config = ServerConfig(data_dir=root / "data", port=free_port(), disk_cache=False,
                          load_nodes=False, editor=False, **SERVER_LIMITS)  # fmt: skip
    running = RunningServer(config, WorkerSetup(registry=full_registry)).start()
    (config.input_dir / "seed.png").write_bytes(png())
    (config.input_dir / "big.png").write_bytes(png(600, 600))  # over the 512x512 limit
    outside = root / "outside"  # links out of the output and input folders
    outside.mkdir()
    (outside / "secret.png").write_bytes(png())
    (config.output_dir / "ldir").symlink_to(outside, target_is_directory=True)
    (config.input_dir / "link2.png").symlink_to(outside / "secret.png")
    yield running, root
    running.stop()


def send(server: RunningServer, req: Req):
    content = req.content
    if req.headers.get("x-chunked"):

        def chunks():
            for _ in range(12):
                yield b"x" * 100_000

        content = chunks()
    return server.http.request(req.method, req.path, json=req.json, content=content,
                               files=req.files, data=req.data, headers=req.headers)  # fmt: skip


ALLOWED = ("data/output/", "data/input/", "data/users/", "data/temp/", "data/server.sqlite3")


@pytest.mark.parametrize("req", CASES, ids=[c.id for c in CASES])
def test_bad_request(corpus_server, req: Req):
    server, root = corpus_server
    before = snapshot(root)
    r = send(server, req)
    assert r.status_code == req.status, r.text[:500]
    assert r.headers["content-type"].startswith("application/json"), r.headers
    error = r.json()["error"]
    assert isinstance(error["message"], str) and error["message"]
    if req.type is not None:
        assert error["type"] == req.type, r.json()
    if req.message is not None:
        assert req.message in error["message"], error
    written = new_files(before, root)
    assert not [n for n in written if not n.startswith(ALLOWED)], written
    assert not partial(written), written
    assert not [n for n in written if n.startswith("data/input/") and req.status >= 400], written
    queue = server.http.get("/queue")
    assert queue.status_code == 200
    assert queue.json() == {"queue_running": [], "queue_pending": []}
    assert server.http.get("/history").json() == {}


def test_corpus_base_prompts_are_accepted(corpus_server):
    """Guard: the prompts the cases break are valid, so each case fails for its own reason."""
    from latentgraph.server.prompts import check_prompt

    from .corpus_server import SD, toy

    server, _ = corpus_server
    state = server.app.state.lg
    for prompt in (toy(), SD):
        checked, _graph = check_prompt(prompt, state.registry, state.settings)
        assert checked.outputs


@pytest.mark.parametrize("prompt, node, name", [
    (sd("10", filename_prefix="%date:..%/escaped"), "10", "filename_prefix"),
    (sd("10", filename_prefix="ldir/pwn7"), "10", "filename_prefix"),
    ({"1": {"class_type": "LoadImage", "inputs": {"image": "link2.png"}},
      "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0]}}}, "1", "image"),
])  # fmt: skip
def test_paths_the_run_refuses_are_refused_by_node_and_input(corpus_server, prompt, node, name):
    """A prefix whose %date:..% makes `../escaped`, one through a folder linked out of the
    output folder, an input file linked out of the input folder: POST /prompt answered 200 and
    the run failed (execution_error); the 400 names the node and its input. /object_info does
    not offer link2.png (/internal/files/input leaves it out too)."""
    server, _ = corpus_server
    r = server.http.post("/prompt", json={"prompt": prompt})
    assert r.status_code == 400, r.text
    [error] = r.json()["node_errors"][node]["errors"]
    assert error["extra_info"]["input_name"] == name, error
    listed = server.http.get("/object_info/LoadImage").json()
    assert "link2.png" not in listed["LoadImage"]["input"]["required"]["image"][0]
    assert "link2.png" not in server.http.get("/internal/files/input").json()
