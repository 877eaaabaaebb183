"""Safe defaults: loopback bind, serve refuses an open host without a token, the token guards
every route (HTTP, /api, /ws, the editor's static files), cross-origin state changes and other
sites' requests refused, no answer framed, model loading never unpickles, plugin code only from
configured folders."""

from __future__ import annotations

import contextlib
import io
import os
import pickle
import stat
import sys

import pytest
from starlette.testclient import TestClient, WebSocketDenialResponse

from ..server.plugin.toy_nodes import toy_registry

TOKEN = "t0ken-for-tests"
WS = "ws://127.0.0.1:8188"  # TestClient's websockets ignore base_url: without it Host is "testserver"


@pytest.fixture(scope="module")
def guarded(tmp_path_factory):
    from latentgraph.server import editor
    from latentgraph.server.app import create_app
    from latentgraph.server.config import ServerConfig
    from latentgraph.server.workers import WorkerSetup

    root = tmp_path_factory.mktemp("guarded")
    static = root / "static"
    static.mkdir()
    (static / "index.html").write_text("<html>editor</html>")
    (static / "app.js").write_text("console.log(1)")
    mp = pytest.MonkeyPatch()
    mp.setattr(editor, "static_dir", lambda: static)
    config = ServerConfig(data_dir=root / "data", auth_token=TOKEN, disk_cache=False,
                          load_nodes=False, editor=True)  # fmt: skip
    app = create_app(config, workers=WorkerSetup(registry=toy_registry))
    (config.output_dir / "x.png").write_bytes(b"png")
    with TestClient(app, base_url="http://127.0.0.1:8188") as client:
        yield client
    mp.undo()


def test_default_bind_is_loopback():
    from latentgraph.cli import build_parser
    from latentgraph.server.config import ServerConfig

    assert ServerConfig().host == "127.0.0.1"
    assert build_parser().parse_args(["serve"]).host == "127.0.0.1"


def test_the_default_bind_is_not_said_to_keep_other_accounts_out():
    """127.0.0.1 keeps other machines out; every account on this one can still reach it."""
    from latentgraph.cli import build_parser

    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit):
        build_parser().parse_args(["serve", "--help"])
    shown = " ".join(out.getvalue().split())
    said = "--host HOST default 127.0.0.1: this machine only, but every account on it (on a shared"
    assert f"{said} machine, set $LATENTGRAPH_AUTH_TOKEN)" in shown


def serve_cli(monkeypatch, argv: list[str], token_env: str | None = None) -> tuple[int, str, list]:
    import latentgraph.server.run as run
    import latentgraph.wiring as wiring
    from latentgraph.cli import main

    started: list = []
    monkeypatch.setattr(run, "serve", lambda config, **kw: started.append(config))
    monkeypatch.setattr(wiring, "prepare_server", lambda config, **kw: None)  # no node setup
    monkeypatch.delenv("LATENTGRAPH_AUTH_TOKEN", raising=False)
    if token_env is not None:
        monkeypatch.setenv("LATENTGRAPH_AUTH_TOKEN", token_env)
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = main(["serve", *argv])
    return code, err.getvalue(), started


# What `serve --auth-token TOKEN` says at start: every account reads a process's arguments.
COMMAND_LINE = ("latentgraph: warning: --auth-token: every account on this machine can read a "
                "command line (ps), the token in it too; set LATENTGRAPH_AUTH_TOKEN instead")  # fmt: skip


def warnings(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("latentgraph: warning: ")]


def test_open_host_without_token_is_refused(monkeypatch, tmp_path):
    code, err, started = serve_cli(monkeypatch, ["--host", "0.0.0.0", "--data-dir", str(tmp_path)])
    assert code == 2 and not started
    assert "--auth-token" in err and "--insecure" in err and "Traceback" not in err


def test_a_host_that_resolves_to_nothing_is_said_to_be_so_first(monkeypatch, tmp_path):
    """Without a token, a name that resolves nowhere got the refusal about strangers reaching
    it; with --insecure, 'no such address': now that, whatever else was given."""
    for extra in ([], ["--insecure"], ["--auth-token", "abc"]):
        code, err, started = serve_cli(
            monkeypatch, ["--host", "nonexistent.invalid", "--data-dir", str(tmp_path), *extra]
        )
        assert code == 2 and not started
        assert "--host nonexistent.invalid: no such address (" in err, err
        assert "anyone" not in err and "Traceback" not in err


def test_open_host_with_insecure_warns(monkeypatch, tmp_path):
    code, err, started = serve_cli(
        monkeypatch, ["--host", "0.0.0.0", "--insecure", "--data-dir", str(tmp_path)]
    )
    assert code == 0 and started[0].host == "0.0.0.0" and started[0].auth_token is None
    assert "latentgraph: warning: " in err and "anyone" in err


def test_open_host_with_token_and_limits(monkeypatch, tmp_path):
    code, err, started = serve_cli(monkeypatch, [
        "--host", "0.0.0.0", "--auth-token", "abcdefghijklmnop", "--data-dir", str(tmp_path),
        "--max-steps", "30", "--max-batch", "2", "--max-pixels", "65536", "--max-queue", "5",
        "--max-body-mb", "3"])  # fmt: skip
    assert code == 0 and warnings(err) == [COMMAND_LINE], err
    config = started[0]
    assert (config.auth_token, config.max_steps, config.max_batch, config.max_image_pixels,
            config.max_queue, config.max_body_bytes) == ("abcdefghijklmnop", 30, 2, 65536, 5,
                                                         3 * 2**20)  # fmt: skip


@pytest.mark.parametrize("host", ["0.0.0.0", "127.0.0.1"])
@pytest.mark.parametrize("token", [" ", "\t  ", " " * 20])
@pytest.mark.parametrize("how", ["flag", "env"])
def test_a_blank_token_is_refused(monkeypatch, tmp_path, host, token, how):
    """LATENTGRAPH_AUTH_TOKEN=" " served 0.0.0.0 guarded by a space (`?token=%20`), and on
    loopback too; an empty one is no token, refused on an open host."""
    argv = ["--host", host, "--data-dir", str(tmp_path)]
    if how == "flag":
        code, err, started = serve_cli(monkeypatch, [*argv, "--auth-token", token])
    else:
        code, err, started = serve_cli(monkeypatch, argv, token_env=token)
    assert code == 2 and not started, err
    source = "--auth-token" if how == "flag" else "LATENTGRAPH_AUTH_TOKEN"  # where it came from
    assert f"{source}: the token is blank (only whitespace)" in err and "Traceback" not in err
    assert "at least 16 characters" in err and "secrets.token_urlsafe" in err


@pytest.mark.parametrize("host", ["0.0.0.0", "127.0.0.1"])
def test_an_empty_token_given_is_refused_an_empty_variable_is_none(monkeypatch, tmp_path, host):
    """`--auth-token "$TOKEN"` with TOKEN unset gives `--auth-token ''`: it served with no
    token at all. Given, it is refused as a blank one (on 0.0.0.0 without saying to give the
    --auth-token that was given); LATENTGRAPH_AUTH_TOKEN set empty is no token, as unset."""
    argv = ["--host", host, "--data-dir", str(tmp_path)]
    code, err, started = serve_cli(monkeypatch, [*argv, "--auth-token", ""])
    assert code == 2 and not started, err
    assert 'latentgraph: error: --auth-token: the token is empty (an unset variable in "$TOKEN"?), ' \
           "which guards nothing; give one of at least 16 characters" in err  # fmt: skip
    assert "give --auth-token" not in err and "Traceback" not in err
    code, err, started = serve_cli(monkeypatch, argv, token_env="")
    if host == "127.0.0.1":
        assert code == 0 and started[0].auth_token is None, err
    else:
        assert code == 2 and not started, err
        assert "set LATENTGRAPH_AUTH_TOKEN (or give --auth-token TOKEN)" in err, err


def test_token_refusals_name_the_variable_the_token_came_from(monkeypatch, tmp_path):
    """A token from LATENTGRAPH_AUTH_TOKEN was refused as `--auth-token: ...`, a flag the user
    never typed."""
    argv = ["--host", "0.0.0.0", "--data-dir", str(tmp_path)]
    code, err, started = serve_cli(monkeypatch, argv, token_env="abc")
    assert code == 2 and not started
    assert "LATENTGRAPH_AUTH_TOKEN: a token of 3 characters can be guessed" in err, err
    assert "--auth-token:" not in err
    code, err, started = serve_cli(monkeypatch, argv, token_env=" abcdefghijklmnopq ")
    assert code == 2 and not started
    assert "LATENTGRAPH_AUTH_TOKEN: the token starts or ends with whitespace" in err, err
    code, err, started = serve_cli(monkeypatch, [*argv, "--auth-token", "abc"], token_env="x" * 20)
    assert code == 2 and "--auth-token: a token of 3 characters" in err, err  # the flag wins


def test_a_token_with_whitespace_around_it_is_refused(monkeypatch, tmp_path):
    """An Authorization header's value is stripped: such a token could never be sent there."""
    code, err, started = serve_cli(
        monkeypatch, ["--data-dir", str(tmp_path), "--auth-token", " abcdefghijklmnopq "]
    )
    assert code == 2 and not started
    assert "--auth-token: the token starts or ends with whitespace" in err


def test_a_short_token_on_an_open_host_is_refused(monkeypatch, tmp_path):
    """A few characters guard nothing on a network (no limit on tries): 16 at least there;
    --insecure serves with it, warned; loopback takes any."""
    argv = ["--host", "0.0.0.0", "--data-dir", str(tmp_path), "--auth-token", "abc"]
    code, err, started = serve_cli(monkeypatch, argv)
    assert code == 2 and not started and "Traceback" not in err
    assert "--auth-token: a token of 3 characters can be guessed by anyone who can reach " \
           "--host 0.0.0.0; give one of at least 16" in err and "--insecure" in err  # fmt: skip
    code, err, started = serve_cli(monkeypatch, [*argv, "--insecure"])
    assert code == 0 and started[0].auth_token == "abc"
    assert (
        "latentgraph: warning: listening on 0.0.0.0 with a token of 3 characters (--insecure)"
        in err
    )
    code, err, started = serve_cli(monkeypatch, argv[:-1] + ["a" * 15 + "b"])
    assert code == 0 and warnings(err) == [COMMAND_LINE], err
    code, err, started = serve_cli(
        monkeypatch, ["--data-dir", str(tmp_path), "--auth-token", "abc"]
    )
    assert code == 0 and started[0].auth_token == "abc" and warnings(err) == [COMMAND_LINE]


@pytest.mark.parametrize("host", ["0.0.0.0", "127.0.0.1"])
def test_a_token_on_the_command_line_is_said_to_be_readable_by_every_account(monkeypatch,
                                                                            tmp_path, host):  # fmt: skip
    """`ps -o args= -p PID`, run by any account, showed `--auth-token teamtoken-...`: serve
    starts and says so, on loopback too (there other accounts are all a token keeps out). The
    same token in LATENTGRAPH_AUTH_TOKEN (a process's environment is its owner's) starts
    without a word; the help of serve and submit says to prefer the variable."""
    from latentgraph.cli import build_parser

    argv = ["--host", host, "--data-dir", str(tmp_path)]
    code, err, started = serve_cli(monkeypatch, [*argv, "--auth-token", "t" * 20])
    assert code == 0 and started[0].auth_token == "t" * 20 and warnings(err) == [COMMAND_LINE]
    code, err, started = serve_cli(monkeypatch, argv, token_env="t" * 20)
    assert code == 0 and started[0].auth_token == "t" * 20 and warnings(err) == [], err
    for command in ("serve", "submit"):
        out = io.StringIO()
        with contextlib.redirect_stdout(out), pytest.raises(SystemExit):
            build_parser().parse_args([command, "--help"])
        shown = " ".join(out.getvalue().split())
        assert "Prefer the variable: every account on this machine can read a command line " \
               "(ps)" in shown, shown  # fmt: skip


@contextlib.contextmanager
def umask(mask: int):
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_data_folder_latentgraph_makes_is_private_one_that_exists_is_left(tmp_path):
    """Every prompt (server.sqlite3) and the saved workflows (users/default/workflows/) were
    readable by every account: the data folder was made 0755 under umask 022, and the token
    guards HTTP only. Made now, it is 0700 (its parents made as the umask says); one that
    exists keeps its mode, as its owner made it."""
    from latentgraph.server.config import ServerConfig

    new = tmp_path / "parent" / "data"
    team = tmp_path / "team"
    team.mkdir()
    team.chmod(0o755)
    with umask(0o022):
        ServerConfig(data_dir=new).ensure_dirs()  # as create_app makes its folders
        ServerConfig(data_dir=team).ensure_dirs()
    assert (mode(new), mode(new.parent), mode(team)) == (0o700, 0o755, 0o755)
    assert mode(new / "users" / "default") == 0o755  # inside it: private by its folder


def test_serve_makes_a_new_data_folder_private(tmp_path, monkeypatch):
    """`latentgraph serve --data-dir NEW` makes NEW itself once its port is bound (then the
    queue database's lock file in it): 0700 from the start, before the app is made."""
    import latentgraph.server.app as app_module
    from latentgraph.server.config import ServerConfig
    from latentgraph.server.run import serve

    class Made(Exception):
        pass

    def create_app(config, **kw):
        raise Made(mode(config.data_dir), sorted(p.name for p in config.data_dir.iterdir()))

    monkeypatch.setattr(app_module, "create_app", create_app)
    with umask(0o022), pytest.raises(Made) as made:
        serve(ServerConfig(data_dir=tmp_path / "new", port=0))
    assert made.value.args == (0o700, ["server.sqlite3.lock"])


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
    with (
        pytest.raises(WebSocketDenialResponse) as refused,
        guarded.websocket_connect(WS + url) as ws,
    ):
        ws.receive_json()
    assert refused.value.status_code == 401
    assert refused.value.json()["error"]["type"] == "unauthorized"


def test_websocket_with_token(guarded):
    with guarded.websocket_connect(f"{WS}/api/ws?token={TOKEN}&clientId=sec") as ws:
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


NOT_FRAMED = {"x-frame-options": "DENY", "content-security-policy": "frame-ancestors 'none'"}


@pytest.mark.parametrize("path", ["/", "/index.html", "/app.js", "/view?filename=x.png",
                                  "/system_stats", "/openapi.json"])  # fmt: skip
def test_no_page_of_another_origin_may_frame_the_editor(guarded, path):
    """Clickjacking: a page framing the editor got the user to click Run, Clear or Delete (the
    framed editor's own requests are same-origin). Every answer, a refusal's too, forbids it."""
    for auth in ({"Authorization": f"Bearer {TOKEN}"}, {}):
        r = guarded.get(path, headers=auth)
        assert r.status_code == (200 if auth else 401), r.text
        assert {k: r.headers.get(k) for k in NOT_FRAMED} == NOT_FRAMED


def test_another_sites_page_cannot_load_outputs_but_may_link_to_the_editor(local):
    """`<img src=http://127.0.0.1:8188/view?filename=...>` on any web page told it which
    outputs exist and their sizes, and had the server encode previews at will. A browser says
    where a request comes from (Sec-Fetch-Site): from another site, or another port of this
    host (same-site), only a navigation (a link to the editor) is answered."""
    (local.config.output_dir / "seen.png").write_bytes(b"png")
    view = "/view?filename=seen.png&type=output&preview=webp;90"
    image = {"Sec-Fetch-Mode": "no-cors", "Sec-Fetch-Dest": "image"}
    for site in ("cross-site", "same-site"):
        r = local.get(view, headers={**image, "Sec-Fetch-Site": site})
        assert r.status_code == 403 and r.json()["error"] == {
            "type": "forbidden", "message": f"request from another site refused "
            f"(Sec-Fetch-Site: {site})", "details": "", "extra_info": {}}  # fmt: skip
        page = {"Sec-Fetch-Site": site, "Sec-Fetch-Mode": "navigate", "Sec-Fetch-Dest": "document"}
        assert local.get("/", headers=page).status_code == 200
    for site in ("same-origin", "none"):  # the editor's own <img>; a typed address
        r = local.get(
            "/view?filename=seen.png&type=output", headers={**image, "Sec-Fetch-Site": site}
        )
        assert r.status_code == 200 and r.content == b"png"
    assert local.get("/view?filename=seen.png&type=output").status_code == 200  # scripts, curl


def test_cross_origin_websocket_refused(guarded):
    with (
        pytest.raises(WebSocketDenialResponse) as refused,
        guarded.websocket_connect(
            f"{WS}/ws?token={TOKEN}", headers={"Origin": "http://evil.example"}
        ) as ws,
    ):
        ws.receive_json()
    assert refused.value.status_code == 403
    assert refused.value.json()["error"]["message"].startswith(
        "cross-origin request refused: Origin 'http://evil.example' is not this server's Host "
        "'127.0.0.1:8188'")  # fmt: skip


# --- issue 11: DNS rebinding, Origin parsing, loopback, log redaction, user files ---------


@pytest.fixture(scope="module")
def local(tmp_path_factory):
    """An app as `serve` makes it on 127.0.0.1 without a token, with `--allow-host studio.lan`;
    the client's base URL sets the Host header each request sends."""
    from latentgraph.server.app import create_app
    from latentgraph.server.config import ServerConfig
    from latentgraph.server.workers import WorkerSetup

    config = ServerConfig(data_dir=tmp_path_factory.mktemp("local") / "data", disk_cache=False,
                          load_nodes=False, editor=False, allow_hosts=["studio.lan"])  # fmt: skip
    app = create_app(config, workers=WorkerSetup(registry=toy_registry))
    with TestClient(app, base_url="http://127.0.0.1:8188") as client:
        client.config = config
        yield client


REBOUND = {"Host": "evil.example:8188", "Origin": "http://evil.example:8188"}


@pytest.mark.parametrize(("method", "path"), [
    ("POST", "/prompt"), ("GET", "/history"), ("GET", "/view?filename=x.png"),
    ("GET", "/userdata?dir="), ("POST", "/userdata/w.json"), ("GET", "/api/object_info")])  # fmt: skip
def test_dns_rebinding_host_refused(local, method, path):
    """A page whose name was rebound to 127.0.0.1 sends its own name as Host and a matching
    Origin: nothing is answered, nothing is written."""
    for host in ("evil.example:8188", "evil.example"):  # a Host without a port too
        r = local.request(method, path, json={"prompt": {}}, headers={**REBOUND, "Host": host})
        assert r.status_code == 403 and r.json()["error"]["type"] == "forbidden_host", r.text
        assert "--allow-host evil.example" in r.json()["error"]["message"]
    assert not (local.config.user_dir / "w.json").exists()


@pytest.mark.parametrize("host", ["evil.example:8188", "evil.example"])
def test_dns_rebinding_websocket_refused(local, host):
    """Refused by its Host, before the Origin is compared: a Host without a port (matched to
    the Origin by name alone) lets no rebound page through."""
    headers = {**REBOUND, "Host": host}
    with (
        pytest.raises(WebSocketDenialResponse) as refused,
        local.websocket_connect("/ws", headers=headers) as ws,
    ):
        ws.receive_json()
    assert refused.value.status_code == 403
    assert refused.value.json()["error"]["type"] == "forbidden_host"


@pytest.mark.parametrize("host", ["127.0.0.1:8188", "localhost:8188", "LOCALHOST", "[::1]:8188",
                                  "127.0.0.2:8188", "studio.lan:8188", "Studio.Lan",
                                  "app.localhost:8188"])  # fmt: skip
def test_our_host_names_answered(local, host):
    assert local.get("/queue", headers={"Host": host}).status_code == 200
    with local.websocket_connect("/ws?clientId=h", headers={"Host": host}) as ws:
        assert ws.receive_json()["type"] == "status"


@pytest.mark.parametrize("host", ["evil.example", "127.0.0.1.evil.example", "studio.lan.evil",
                                  "localhost.evil.example", "10.0.0.5:8188", "[::1", "x:port",
                                  "127.0.0.1:8188@evil.example", ""])  # fmt: skip
def test_other_host_names_refused(local, host):
    r = local.get("/queue", headers={"Host": host})
    assert r.status_code == 403 and r.json()["error"]["type"] == "forbidden_host"


def test_bound_to_every_interface_answers_addresses_not_names():
    from latentgraph.server.hosts import HostGuard

    guard = HostGuard("0.0.0.0", ["box.lan"])
    assert guard.allows("192.168.1.20:8188") and guard.allows("[fe80::1]:8188")
    assert guard.allows("box.lan") and guard.allows("localhost")
    assert not guard.allows("evil.example:8188")
    named = HostGuard("box.example")
    assert named.allows("box.example:8188") and not named.allows("192.168.1.20")


@pytest.mark.parametrize("header", ["localhost/x", "localhost?x", "localhost#x", "me@localhost",
                                    "localhost:8188/x", "me@localhost:8188"])  # fmt: skip
def test_a_host_header_with_a_path_query_fragment_or_user_names_no_host(header):
    from latentgraph.server.hosts import HostGuard, host_name

    assert host_name(header) is None and not HostGuard("127.0.0.1").allows(header)


def test_a_host_name_is_read_without_its_trailing_dot_and_zone():
    from latentgraph.server.hosts import HostGuard, host_name

    assert host_name("LocalHost.:8188") == "localhost"
    assert HostGuard("127.0.0.1").allows("localhost.:8188")
    assert HostGuard("127.0.0.1").allows("[::1%25lo]:8188")  # a zone id on a loopback address
    assert HostGuard("127.0.0.1").allows(None)  # HTTP/1.0 without Host: not a browser


def test_a_bracketed_bind_address_is_read_as_the_address():
    from latentgraph.server.hosts import HostGuard, is_loopback_bind

    assert HostGuard("[2001:db8::5]").allows("[2001:db8::5]:8188")
    every = HostGuard("[::]")
    assert every.allows("192.168.1.20:8188") and not every.allows("evil.example")
    assert is_loopback_bind("[::1]") and is_loopback_bind("::1")
    assert not is_loopback_bind("[::]") and not is_loopback_bind("[2001:db8::5]")


def test_allow_host_option(monkeypatch, tmp_path):
    code, _err, started = serve_cli(monkeypatch, ["--allow-host", "studio.lan", "--allow-host",
                                                  "art.local", "--data-dir", str(tmp_path)])  # fmt: skip
    assert code == 0 and started[0].allow_hosts == ["studio.lan", "art.local"]


@pytest.mark.parametrize("origin", ["http://x:99999", "http://x:abc", "http://[::1",
                                    "http://127.0.0.1:8188:1", "http://", "127.0.0.1:8188",
                                    "ws://127.0.0.1:8188", "ftp://127.0.0.1:8188",
                                    "https://127.0.0.1:8189", "https://127.0.0.1"])  # fmt: skip
def test_malformed_or_other_scheme_origin_refused(local, origin):
    """Malformed origins were a 500. A page is http or https: other schemes are refused; an
    https page passes only where its host and port are this request's (a TLS proxy in front
    that sends no X-Forwarded-Proto: the scheme alone refuses nothing)."""
    r = local.post("/interrupt", json={}, headers={"Origin": origin})
    assert r.status_code == 403 and r.json()["error"]["type"] == "forbidden", r.text
    for ours in ("http://127.0.0.1:8188", "https://127.0.0.1:8188"):
        assert local.post("/interrupt", json={}, headers={"Origin": ours}).status_code == 200


@pytest.mark.parametrize("host", ["127.lan", "127.0.0.1.nip.example", "127.zero.example"])
def test_loopback_decided_from_the_address(monkeypatch, tmp_path, host):
    """`--host 127.lan` looked loopback by its spelling (it resolves to a LAN address here); a
    name resolving to 0.0.0.0 binds every interface. Both now need a token. (A name resolving
    to nothing is refused as no such address: `test_a_host_that_resolves_to_nothing_...`.)"""
    import socket

    real = socket.getaddrinfo

    def resolve(name, *args, **kw):
        if name == "127.zero.example":
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("0.0.0.0", 0))]
        if name.endswith((".lan", ".example")):
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("192.0.2.7", 0))]
        return real(name, *args, **kw)

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    code, err, started = serve_cli(monkeypatch, ["--host", host, "--data-dir", str(tmp_path)])
    assert code == 2 and not started and "--auth-token" in err


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1", "127.3.4.5", "::1"])
def test_loopback_addresses_start_without_token(monkeypatch, tmp_path, host):
    code, _err, started = serve_cli(monkeypatch, ["--host", host, "--data-dir", str(tmp_path)])
    assert code == 0 and started[0].host == host


def _uvicorn_log(record_args: tuple, token: str | None = None) -> tuple[str, list]:
    """A uvicorn access record with `record_args` through the redaction filter and uvicorn's
    own AccessFormatter, as `serve` prints it: (the line, the "Logging error"s it raised)."""
    import logging

    from uvicorn.config import LOGGING_CONFIG
    from uvicorn.logging import AccessFormatter

    from latentgraph.server.run import RedactToken

    stream, errors = io.StringIO(), []
    handler = logging.StreamHandler(stream)
    handler.setFormatter(AccessFormatter(LOGGING_CONFIG["formatters"]["access"]["fmt"]))
    handler.handleError = errors.append  # type: ignore[method-assign]
    record = logging.getLogger("uvicorn.access").makeRecord(
        "uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d', record_args, None
    )
    if RedactToken(token).filter(record):
        handler.handle(record)
    return stream.getvalue(), errors


@pytest.mark.parametrize("path", ["/queue?token=s3cret", "/queue?a=b&%74oken=s3cret&c=d",
                                  "/queue?TOKEN=s3cret", "/queue?to%6Ben=s3cret;x=1"])  # fmt: skip
def test_access_log_lines_keep_their_shape_redacted(path):
    """Every request with `token=` printed a "--- Logging error ---" traceback (ValueError: not
    enough values to unpack) instead of its access line: the filter emptied the record's
    arguments, which uvicorn's formatter unpacks. And `%74oken=` (which authenticates: the
    query is decoded) was logged in clear."""
    line, errors = _uvicorn_log(("127.0.0.1:5000", "GET", path, "1.1", 200))
    assert not errors
    assert "s3cret" not in line and "=<redacted>" in line, line
    assert line.startswith('INFO:     127.0.0.1:5000 - "GET /queue?') and "200 OK" in line, line


@pytest.mark.parametrize("path", ["/system_stats?token%3Ds3cret-t0ken", "/?%E2%28token=s3cret-t0ken",
                                  "/queue?x=s3cret%2Dt0ken", "/s3cret-t0ken/x?y=%73%33cret-t0ken",
                                  "/?q=S3CRET-T0KEN"])  # fmt: skip
def test_the_servers_token_is_redacted_wherever_a_line_spells_it(path):
    """A request that spells the token where the guard does not read it as the token
    (`?token%3DTOKEN`, a name that is no UTF-8) is refused (401), and its line printed the
    token in clear: the filter knows the server's token and hides it, raw or percent-encoded.
    Another string (the token in other case) is not the token and is kept."""
    line, errors = _uvicorn_log(("127.0.0.1:5000", "GET", path, "1.1", 401), "s3cret-t0ken")
    assert not errors
    if path.endswith("S3CRET-T0KEN"):
        assert path in line, line
        return
    assert "s3cret" not in line and "<redacted>" in line and "401" in line, line


def test_token_redacted_in_access_log(tmp_path):
    """uvicorn's access log printed `GET /?token=<token>` for every editor load; the websocket's
    lines print its address too. Formatted by uvicorn's own formatters, as `serve` logs."""
    import logging
    import threading
    import time

    import httpx
    import uvicorn
    from uvicorn.config import LOGGING_CONFIG
    from uvicorn.logging import AccessFormatter, DefaultFormatter
    from websockets.sync.client import connect

    from latentgraph.server.app import create_app
    from latentgraph.server.config import ServerConfig
    from latentgraph.server.run import uvicorn_config
    from latentgraph.server.workers import WorkerSetup

    from ..server.conftest import free_port

    config = ServerConfig(data_dir=tmp_path, port=free_port(), auth_token=TOKEN,
                          disk_cache=False, load_nodes=False, editor=False)  # fmt: skip
    server = uvicorn.Server(uvicorn_config(create_app(config, workers=WorkerSetup(registry=toy_registry)),
                                           config, "info"))  # fmt: skip
    stream, errors = io.StringIO(), []
    formats = LOGGING_CONFIG["formatters"]
    handlers = {}
    for name, formatter in [("uvicorn.access", AccessFormatter(formats["access"]["fmt"])),
                            ("uvicorn.error", DefaultFormatter(formats["default"]["fmt"]))]:  # fmt: skip
        handlers[name] = logging.StreamHandler(stream)
        handlers[name].setFormatter(formatter)
        handlers[name].handleError = errors.append  # type: ignore[method-assign]
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.02)
        for name, handler in handlers.items():
            logging.getLogger(name).addHandler(handler)
        url = f"http://127.0.0.1:{config.port}"
        assert httpx.get(f"{url}/queue?token={TOKEN}&x=1").status_code == 200
        assert httpx.get(f"{url}/queue?a=b&token={TOKEN}").status_code == 200
        assert httpx.get(f"{url}/queue?%74oken={TOKEN}").status_code == 200
        assert httpx.get(f"{url}/system_stats?token%3D{TOKEN}").status_code == 401
        with connect(f"ws://127.0.0.1:{config.port}/ws?to%6Ben={TOKEN}"):
            pass
    finally:
        server.should_exit = True
        thread.join(15)
        for name, handler in handlers.items():
            logging.getLogger(name).removeHandler(handler)
    lines = stream.getvalue().splitlines()
    assert not errors, errors
    requests = [line for line in lines if "/queue" in line or "/ws" in line or "/system_" in line]
    assert len(requests) == 5, lines
    assert not [line for line in requests if TOKEN in line], requests
    assert all("<redacted>" in line for line in requests), requests
    assert sum(' - "GET /queue?' in line and "200 OK" in line for line in requests) == 3, lines
    assert any('"WebSocket /ws?to%6Ben=<redacted>" [accepted]' in line for line in requests), lines


def test_user_files_served_with_a_safe_type(local):
    """/userdata/x.html and an uploaded GIF/HTML polyglot were served as text/html (stored
    XSS); now they are attachments the browser does not render, and nothing is sniffed."""
    page = b"<html><script>alert(document.cookie)</script></html>"
    assert local.post("/userdata/x.html", content=page).status_code == 200
    assert local.post("/userdata/workflows%2Fw.json", content=b'{"nodes": []}').status_code == 200
    html = local.get("/userdata/x.html")
    assert html.content == page
    assert html.headers["content-type"] == "application/octet-stream"
    assert html.headers["x-content-type-options"] == "nosniff"
    assert html.headers["content-disposition"].startswith("attachment")
    workflow = local.get("/userdata/workflows%2Fw.json")
    assert workflow.headers["content-type"] == "application/json"
    assert workflow.headers["x-content-type-options"] == "nosniff" and workflow.json()

    polyglot = b"GIF89a\x01\x00\x01\x00\x00\x00\x00;" + page
    inputs = local.config.input_dir
    (inputs / "poly.html").write_bytes(polyglot)
    (inputs / "poly.svg").write_bytes(
        b"<svg xmlns='http://www.w3.org/2000/svg'><script>1</script></svg>"
    )
    (inputs / "pic.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    for name in ("poly.html", "poly.svg"):
        r = local.get(f"/view?filename={name}&type=input")
        assert r.status_code == 200 and r.content.startswith((b"GIF", b"<svg"))
        assert r.headers["content-type"] == "application/octet-stream", name
        assert r.headers["content-disposition"].startswith("attachment")
        assert r.headers["x-content-type-options"] == "nosniff"
    image = local.get("/view?filename=pic.png&type=input")
    assert image.headers["content-type"] == "image/png"
    assert "content-disposition" not in image.headers
    assert image.headers["x-content-type-options"] == "nosniff"


def test_userdata_listing_does_not_follow_links_out(local, tmp_path):
    outside = tmp_path / "outside"
    (outside / "deep").mkdir(parents=True)
    (outside / "secret.txt").write_text("secret")
    (outside / "deep" / "key.pem").write_text("key")
    user = local.config.user_dir
    (user / "lists").mkdir()
    (user / "lists" / "mine.json").write_text("{}")
    (user / "lists" / "leak.txt").symlink_to(outside / "secret.txt")
    (user / "lists" / "linked").symlink_to(outside / "deep", target_is_directory=True)
    (user / "lists" / "alias.json").symlink_to(user / "lists" / "mine.json")
    for recurse in ("false", "true"):
        listed = local.get(f"/userdata?dir=lists&recurse={recurse}").json()
        assert sorted(listed) == ["alias.json", "mine.json"], listed
    full = local.get("/userdata?dir=lists&recurse=true&full_info=true").json()
    assert sorted(f["path"] for f in full) == ["alias.json", "mine.json"]
    assert local.get("/userdata/lists%2Fleak.txt").status_code == 400
    assert local.get("/userdata?dir=lists/linked").status_code == 400


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


@pytest.mark.parametrize("component", ["unet/diffusion_pytorch_model", "text_encoder/model"])
def test_a_diffusers_folder_with_pickled_weights_is_refused_unopened(tmp_path, component):
    """A diffusers folder whose UNet (or text encoder) weights are a pickled `.bin` (that
    would create a marker file): refused when validated and when loaded, naming the folder and
    the file; the marker never appears (diffusers/transformers would torch.load it)."""
    import shutil

    from latentgraph.graph import Settings
    from latentgraph.graph.context import CancelToken, Context
    from latentgraph.nodes.loaders import check_source, load_bundle
    from latentgraph.nodes.model_presets import BUILTIN_TINY, builtin_folder
    from latentgraph.nodes.values import NodeInputError

    folder = tmp_path / "tiny-pickled"
    shutil.copytree(builtin_folder(BUILTIN_TINY), folder)
    marker = tmp_path / "PWNED"
    (folder / f"{component}.safetensors").unlink()
    pickled = "unet/diffusion_pytorch_model.bin" if component.startswith("unet") else (
        "text_encoder/pytorch_model.bin")  # fmt: skip
    (folder / pickled).write_bytes(pickle.dumps(_Bomb(str(marker))))
    said = f"{str(folder)!r}: {pickled} is a pickle; latentgraph loads only .safetensors"
    hint = " (save the model with safe_serialization=True, or convert that file)"
    assert [m for _, m in check_source({"source": str(folder)}, Settings())] == [said + hint]
    ctx = Context("m", "LoadModel", Settings(), CancelToken())
    with pytest.raises(NodeInputError) as info:
        load_bundle(ctx, str(folder))
    assert said in str(info.value) and "source" in str(info.value)
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
