"""Safe defaults: loopback bind, serve refuses an open host without a token, the token guards
every route (HTTP, /api, /ws, the editor's static files), cross-origin state changes refused,
model loading never unpickles, plugin code only from configured folders."""

from __future__ import annotations

import contextlib
import io
import pickle
import sys

import pytest
from starlette.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from ..server.plugin.toy_nodes import register

TOKEN = "t0ken-for-tests"


@pytest.fixture(scope="module")
def guarded(tmp_path_factory):
    from latentgraph.graph import Registry
    from latentgraph.server import editor
    from latentgraph.server.app import create_app
    from latentgraph.server.config import ServerConfig

    root = tmp_path_factory.mktemp("guarded")
    static = root / "static"
    static.mkdir()
    (static / "index.html").write_text("<html>editor</html>")
    (static / "app.js").write_text("console.log(1)")
    mp = pytest.MonkeyPatch()
    mp.setattr(editor, "static_dir", lambda: static)
    config = ServerConfig(data_dir=root / "data", auth_token=TOKEN, disk_cache=False,
                          load_nodes=False, editor=True)  # fmt: skip
    app = create_app(config, registry=register(Registry()))
    (config.output_dir / "x.png").write_bytes(b"png")
    with TestClient(app, base_url="http://127.0.0.1:8188") as client:
        yield client
    mp.undo()


def test_default_bind_is_loopback():
    from latentgraph.cli import build_parser
    from latentgraph.server.config import ServerConfig

    assert ServerConfig().host == "127.0.0.1"
    assert build_parser().parse_args(["serve"]).host == "127.0.0.1"


def serve_cli(monkeypatch, argv: list[str]) -> tuple[int, str, list]:
    import latentgraph.server.run as run
    import latentgraph.wiring as wiring
    from latentgraph.cli import main

    started: list = []
    monkeypatch.setattr(run, "serve", lambda config, **kw: started.append(config))
    monkeypatch.setattr(wiring, "prepare_server", lambda config, **kw: None)  # no node setup
    monkeypatch.delenv("LATENTGRAPH_AUTH_TOKEN", raising=False)
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = main(["serve", *argv])
    return code, err.getvalue(), started


def test_open_host_without_token_is_refused(monkeypatch, tmp_path):
    code, err, started = serve_cli(monkeypatch, ["--host", "0.0.0.0", "--data-dir", str(tmp_path)])
    assert code == 2 and not started
    assert "--auth-token" in err and "--insecure" in err and "Traceback" not in err


def test_open_host_with_insecure_warns(monkeypatch, tmp_path):
    code, err, started = serve_cli(
        monkeypatch, ["--host", "0.0.0.0", "--insecure", "--data-dir", str(tmp_path)]
    )
    assert code == 0 and started[0].host == "0.0.0.0" and started[0].auth_token is None
    assert "WARNING" in err and "anyone" in err


def test_open_host_with_token_and_limits(monkeypatch, tmp_path):
    code, err, started = serve_cli(monkeypatch, [
        "--host", "0.0.0.0", "--auth-token", "abc", "--data-dir", str(tmp_path),
        "--max-steps", "30", "--max-batch", "2", "--max-pixels", "65536", "--max-queue", "5",
        "--max-body-mb", "3"])  # fmt: skip
    assert code == 0 and "WARNING" not in err
    config = started[0]
    assert (config.auth_token, config.max_steps, config.max_batch, config.max_image_pixels,
            config.max_queue, config.max_body_bytes) == ("abc", 30, 2, 65536, 5, 3 * 2**20)  # fmt: skip


PATHS = ["/prompt", "/api/prompt", "/queue", "/api/queue", "/history", "/api/history/x",
         "/object_info", "/api/object_info", "/system_stats", "/api/system_stats",
         "/view?filename=x.png", "/api/view?filename=x.png", "/userdata?dir=workflows",
         "/api/settings", "/api/users", "/openapi.json", "/jobs", "/", "/index.html", "/app.js",
         "/latentgraph/run"]  # fmt: skip


@pytest.mark.parametrize("path", PATHS)
def test_token_guards_every_route(guarded, path):
    guarded.cookies.clear()
    method = "POST" if path == "/latentgraph/run" else "GET"
    denied = guarded.request(method, path)
    assert denied.status_code == 401, denied.text
    assert denied.json()["error"]["type"] == "unauthorized"
    wrong = guarded.request(method, path, headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    allowed = guarded.request(method, path, headers={"Authorization": f"Bearer {TOKEN}"})
    assert allowed.status_code != 401, allowed.text


def test_static_editor_served_with_token(guarded):
    r = guarded.get("/app.js", headers={"Authorization": f"Bearer {TOKEN}"})
    assert r.status_code == 200 and "console.log" in r.text


@pytest.mark.parametrize("url", ["/ws", "/api/ws", "/ws?token=wrong", "/ws?clientId=a&token="])
def test_websocket_needs_the_token(guarded, url):
    guarded.cookies.clear()
    with pytest.raises(WebSocketDisconnect), guarded.websocket_connect(url) as ws:
        ws.receive_json()


def test_websocket_with_token(guarded):
    with guarded.websocket_connect(f"/api/ws?token={TOKEN}&clientId=sec") as ws:
        assert ws.receive_json()["data"]["sid"] == "sec"
    guarded.cookies.clear()


@pytest.mark.parametrize(("method", "path"), [("POST", "/prompt"), ("POST", "/api/interrupt"),
                         ("POST", "/queue"), ("POST", "/history"), ("POST", "/upload/image"),
                         ("POST", "/userdata/x.json"), ("DELETE", "/userdata/x.json"),
                         ("POST", "/settings"), ("POST", "/free")])  # fmt: skip
@pytest.mark.parametrize("origin", ["http://evil.example", "null", "http://127.0.0.1:9999",
                                    "http://localhost.evil.example:8188"])  # fmt: skip
def test_cross_origin_state_change_refused(guarded, method, path, origin):
    auth = {"Authorization": f"Bearer {TOKEN}", "Origin": origin}
    r = guarded.request(method, path, json={}, headers=auth)
    assert r.status_code == 403 and r.json()["error"]["type"] == "forbidden"


def test_same_origin_and_no_origin_allowed(guarded):
    auth = {"Authorization": f"Bearer {TOKEN}"}
    assert guarded.post("/interrupt", json={}, headers=auth).status_code == 200
    same = {**auth, "Origin": "http://127.0.0.1:8188"}
    assert guarded.post("/interrupt", json={}, headers=same).status_code == 200


def test_cross_origin_websocket_refused(guarded):
    with (
        pytest.raises(WebSocketDisconnect),
        guarded.websocket_connect(
            f"/ws?token={TOKEN}", headers={"Origin": "http://evil.example"}
        ) as ws,
    ):
        ws.receive_json()


class _Bomb:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.mark.parametrize("suffix", [".ckpt", ".pt", ".pth", ".bin", ".pkl", ".safetensors"])
def test_model_loading_never_unpickles(tmp_path, monkeypatch, suffix):
    """A pickle that would create a marker file, offered under every model suffix: refused,
    and the marker never appears (safetensors cannot execute code; pickle suffixes are not
    even opened)."""
    from latentgraph.graph import Settings
    from latentgraph.graph.context import CancelToken, Context
    from latentgraph.nodes.loaders import load_bundle
    from latentgraph.nodes.values import NodeInputError

    marker = tmp_path / "PWNED"
    weights = tmp_path / f"model{suffix}"
    weights.write_bytes(pickle.dumps(_Bomb(str(marker))))
    ctx = Context("m", "LoadModel", Settings(models_dirs=[tmp_path]), CancelToken())
    with pytest.raises(NodeInputError) as info:
        load_bundle(ctx, str(weights))
    assert "source" in str(info.value)
    assert not marker.exists()


def test_checkpoint_dropdowns_never_list_pickles(tmp_path):
    from latentgraph.nodes import models_dirs

    ckpts = tmp_path / "checkpoints"
    ckpts.mkdir()
    for name in ("a.ckpt", "b.pt", "c.bin", "d.safetensors"):
        (ckpts / name).write_bytes(b"x")
    listed = models_dirs.list_files("checkpoints", [tmp_path])
    assert "d.safetensors" in listed
    assert not [n for n in listed if n.endswith((".ckpt", ".pt", ".bin"))]
    for name in ("a.ckpt", "../checkpoints/d.safetensors", "/etc/passwd"):
        with pytest.raises(ValueError):
            models_dirs.resolve("checkpoints", name, [tmp_path])


def test_plugins_load_only_from_configured_folders(tmp_path, monkeypatch):
    """A .py file in the working directory, the data dir or next to a workflow is never
    imported; only --nodes-dir folders (and installed entry points) are."""
    from latentgraph.graph import Registry
    from latentgraph.graph.plugins import load_plugins

    code = ("import pathlib\npathlib.Path({marker!r}).write_text('ran')\n"
            "from latentgraph.graph import node, Output, Int\n"
            "@node('Planted{n}', inputs=[Int('v', 0)], outputs=[Output('o', 'INT')], "
            "registry=REG)\ndef f(ctx, v):\n    return v\n")  # fmt: skip
    stray, allowed = tmp_path / "stray", tmp_path / "allowed"
    stray.mkdir()
    allowed.mkdir()
    (stray / "planted.py").write_text(code.format(marker=str(tmp_path / "stray-ran"), n=1))
    (allowed / "wanted.py").write_text(code.format(marker=str(tmp_path / "allowed-ran"), n=2))
    monkeypatch.chdir(stray)
    monkeypatch.syspath_prepend(str(stray))
    registry = Registry()
    import builtins

    monkeypatch.setattr(builtins, "REG", registry, raising=False)
    load_plugins([allowed], entry_points=False, registry=registry)
    assert (tmp_path / "allowed-ran").exists()
    assert not (tmp_path / "stray-ran").exists()
    assert "planted" not in sys.modules
