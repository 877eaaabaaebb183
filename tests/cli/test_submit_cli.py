"""`latentgraph submit` as a user meets it: a server started with --auth-token, the progress
lines of a remote run, `submit --help`, and its usage errors in run's words and exit codes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from latentgraph.cli import build_parser

from ..server.conftest import RunningServer, chain, free_port
from ..server.plugin.toy_nodes import toy_registry

ENTRY = "from latentgraph.cli import entry\nentry()\n"  # what the `latentgraph` script runs
TOKEN = "s3cret"
WORKFLOW = """\
version: 1
params:
  v: 4
nodes:
  n:
    type: Number
    value: $v
  s:
    type: Show
    x: n
    prefix: sub
"""


def _running(tmp_path_factory, name: str, registry, **config: Any) -> Iterator[RunningServer]:
    """A server over the nodes `registry` builds (no torch), `config` added; stopped after."""
    from latentgraph.server.config import ServerConfig
    from latentgraph.server.workers import WorkerSetup

    config = ServerConfig(data_dir=tmp_path_factory.mktemp(name), port=free_port(),
                          disk_cache=False, load_nodes=False, editor=False, **config)  # fmt: skip
    running = RunningServer(config, WorkerSetup(registry=registry)).start()
    yield running
    running.stop()


@pytest.fixture(scope="module")
def token_server(tmp_path_factory):
    """`latentgraph serve --auth-token s3cret` over the toy nodes."""
    yield from _running(tmp_path_factory, "token-server", toy_registry, auth_token=TOKEN)


def test_submit_without_the_token_or_a_wrong_one_says_how_to_give_it(token_server, cli,
                                                                     tmp_path, monkeypatch):  # fmt: skip
    """The server is reachable, it wants a token: a usage error (2) saying how to give it, not
    'cannot reach the server' (3, as the websocket handshake's bare HTTP 403 was read)."""
    monkeypatch.delenv("LATENTGRAPH_AUTH_TOKEN", raising=False)
    (tmp_path / "wf.yaml").write_text(WORKFLOW)
    code, _, err = cli("submit", "wf.yaml", "--server", token_server.url, "-q")
    assert code == 2, err
    assert f"the server at {token_server.url} requires a token" in err
    assert "--auth-token TOKEN" in err and "LATENTGRAPH_AUTH_TOKEN" in err
    # the advice's placeholder as written: the redaction rule hid it as a query's token
    assert "(?token=TOKEN, as the editor's address)" in err and "<redacted>" not in err, err
    assert "cannot reach" not in err and "Traceback" not in err

    code, _, err = cli("submit", "wf.yaml", "--server", token_server.url, "-q",
                       "--auth-token", "wrong")  # fmt: skip
    assert code == 2, err
    assert "refused the token from --auth-token: give the one the server was started with" in err
    assert "cannot reach" not in err and "Traceback" not in err

    monkeypatch.setenv("LATENTGRAPH_AUTH_TOKEN", "wrong")  # named as where the token came from
    code, _, err = cli("submit", "wf.yaml", "--server", token_server.url, "-q")
    assert code == 2 and "refused the token from LATENTGRAPH_AUTH_TOKEN" in err, err

    monkeypatch.setenv("LATENTGRAPH_AUTH_TOKEN", TOKEN)  # the variable the CLI reads
    code, _, err = cli("submit", "wf.yaml", "--server", token_server.url, "-q")
    assert code == 0, err


def test_submit_takes_the_token_from_the_editors_address(token_server, cli, tmp_path,
                                                          monkeypatch):  # fmt: skip
    """`--server http://HOST:PORT/?token=TOKEN`, the editor's address: it said the server
    requires a token, echoing the address and its token. The URL's token is used when no
    --auth-token is given (over LATENTGRAPH_AUTH_TOKEN), and never printed back."""
    monkeypatch.setenv("LATENTGRAPH_AUTH_TOKEN", "from-the-environment")
    (tmp_path / "wf.yaml").write_text(WORKFLOW)
    code, _, err = cli("submit", "wf.yaml", "--server", f"{token_server.url}/?token={TOKEN}",
                       "-q")  # fmt: skip
    assert code == 0, err
    code, _, err = cli("submit", "wf.yaml", "--server", f"{token_server.url}/?token=n0t-it", "-q")
    assert code == 2 and "n0t-it" not in err and "Traceback" not in err, err
    assert f"the server at {token_server.url}/?token=<redacted> refused the token from the " \
           "--server URL's token parameter" in err  # fmt: skip
    code, _, err = cli("submit", "wf.yaml", "--server", f"{token_server.url}/?token=n0t-it",
                       "--auth-token", TOKEN, "-q")  # fmt: skip
    assert code == 0, err  # --auth-token given wins
    code, _, err = cli("submit", "wf.yaml", "--server", "http://127.0.0.1:99999/?token=s3cr3t")
    assert code == 2 and "s3cr3t" not in err and "?token=<redacted>" in err, err


def test_submit_progress_names_the_file_on_the_server_and_the_downloaded_copy(token_server,
                                                                              cli, tmp_path):  # fmt: skip
    """The run's 'saved' line names the file where the server saved it; only the 'downloaded'
    line names the local copy (it said 'saved sub3/...' before anything was downloaded). A
    value of its own: the other test's run would be cached ('kept')."""
    (tmp_path / "wf.yaml").write_text(WORKFLOW)
    code, _, err = cli("submit", "wf.yaml", "--server", token_server.url, "--auth-token", TOKEN,
                       "--output-dir", "sub3", "--set", "v=7")  # fmt: skip
    assert code == 0, err
    assert "saved on the server: output/sub_7.png" in err
    assert "downloaded sub3/sub_7.png" in err
    assert "saved sub3" not in err
    assert (tmp_path / "sub3" / "sub_7.png").read_bytes().startswith(b"\x89PNG")


def _subparser(name: str):
    parser = build_parser()
    [commands] = [a for a in parser._actions if a.dest == "command"]
    return commands.choices[name]


def test_every_commands_help_describes_every_option():
    """`--nodes-dir` had no help on `nodes`, `schema`, `convert` and `serve` (four copies of
    the flag, one with help), nor `--dtype` on `run` and `serve`."""
    [commands] = [a for a in build_parser()._actions if a.dest == "command"]
    undocumented = [(name, a.option_strings) for name, command in commands.choices.items()
                    for a in command._actions if a.option_strings and not a.help]  # fmt: skip
    assert undocumented == []


def test_submit_help_describes_every_option_and_the_server_default():
    submit = _subparser("submit")
    undocumented = [a.option_strings or a.dest for a in submit._actions if not a.help]
    assert undocumented == []
    helps = {a.dest: a.help for a in submit._actions}
    assert "(default http://127.0.0.1:8188)" in helps["server"]
    assert "$LATENTGRAPH_AUTH_TOKEN" in helps["auth_token"]
    [auth] = [a for a in _subparser("serve")._actions if "--auth-token" in a.option_strings]
    assert auth.help and "LATENTGRAPH_AUTH_TOKEN" in auth.help


def refusing_registry():
    """The toy nodes and `Even`, refusing an odd value as a node refuses a bad model file
    (`input_error`: a NodeInputError), for a server's workers (pickled by reference)."""
    from latentgraph.graph import Int, Output, node
    from latentgraph.nodes.values import input_error

    registry = toy_registry()

    @node("Even", inputs=[Int("value", 0)], outputs=[Output("n", "NUM")], registry=registry)
    def even(ctx, value):
        if value % 2:
            raise input_error(ctx, "value", f"{value} is odd")
        return value

    return registry


REFUSED = """\
version: 1
params:
  v: 4
nodes:
  e:
    type: Even
    value: $v
  s:
    type: Show
    x: e
    prefix: even
"""


@pytest.fixture(scope="module")
def plain_server(tmp_path_factory):
    """`latentgraph serve` (no token) over the toy nodes and `Even`."""
    yield from _running(tmp_path_factory, "plain-server", refusing_registry)


def test_submit_refuses_an_output_dir_that_is_a_file_before_queueing(plain_server, cli, tmp_path):
    """The run was queued and run, then the download failed with '[Errno 17] File exists':
    refused first, in run's words."""
    (tmp_path / "wf.yaml").write_text(REFUSED)
    (tmp_path / "afile").write_text("x")
    before = plain_server.http.get("/history").json()
    code, _, err = cli("submit", "wf.yaml", "--server", plain_server.url, "--output-dir", "afile")
    assert code == 2, err
    assert "latentgraph: error: --output-dir afile: a file is there; expected a folder" in err
    code, _, err = cli("submit", "wf.yaml", "--server", plain_server.url,
                       "--output-dir", "afile/sub")  # fmt: skip
    assert code == 2, err
    assert f"--output-dir afile/sub: {tmp_path / 'afile'} is a file; expected a folder" in err
    assert "Errno" not in err
    assert plain_server.http.get("/history").json() == before  # nothing was queued


def test_submit_of_a_run_a_node_refused_exits_as_run_does(plain_server, cli, tmp_path):
    """A node refusing its input on the server: exit 2 and the message as run prints it (it
    was exit 1, with 'latentgraph.nodes.values.NodeInputError: ...'); a crash stays exit 1."""
    (tmp_path / "wf.yaml").write_text(REFUSED)
    code, _, err = cli("submit", "wf.yaml", "--server", plain_server.url, "--set", "v=3")
    assert code == 2, err
    assert "error: --set v=3 ($v at wf.yaml:7:12): node 'e' (Even) input 'value': 3 is odd" in err
    assert "NodeInputError" not in err and "latentgraph." not in err and "Traceback" not in err
    code, out, err = cli("submit", "wf.yaml", "--server", plain_server.url, "--set", "v=5",
                         "--json")  # fmt: skip
    assert code == 2, err
    [failed] = [e for e in map(json.loads, out.splitlines()) if e["event"] == "node_failed"]
    assert failed["user_error"] is True and failed["traceback"] == []

    crash = REFUSED.replace("type: Even\n    value: $v", "type: Fail\n    x: n\n    why: boom") \
        + "  n:\n    type: Number\n    value: 1\n"  # fmt: skip
    (tmp_path / "crash.yaml").write_text(crash)
    code, _, err = cli("submit", "crash.yaml", "--server", plain_server.url, "-q")
    assert code == 1, err


def test_submit_reads_the_workflow_as_run_and_validate_do(cli, tmp_path):
    """The same file:line:col and words as validate for a file that is not UTF-8, as run for
    one that is not there (it said "cannot read the workflow: 'utf-8' codec can't decode..."
    and "[Errno 2] No such file or directory"); refused before any server is asked."""
    (tmp_path / "badutf.yaml").write_bytes(b"version: 1\nnodes:\n  a:\n    type: x\xff\n")
    unreachable = f"http://127.0.0.1:{free_port()}"
    _, _, said = cli("validate", "badutf.yaml")
    code, _, err = cli("submit", "badutf.yaml", "--server", unreachable)
    assert code == 2, err
    assert "error: badutf.yaml:4:12: the file is not UTF-8 text (byte 0xff at offset 34)" in err
    assert err.splitlines()[0] == said.splitlines()[0]
    code, _, err = cli("submit", "nope.yaml", "--server", unreachable)
    assert code == 2, err
    assert "error: nope.yaml: no such file" in err and "Errno" not in err
    (tmp_path / "flows").mkdir()
    code, _, err = cli("submit", "flows", "--server", unreachable)
    assert code == 2 and "error: flows: is a folder; name a workflow file in it" in err


@pytest.mark.parametrize("url", ["notaurl", "localhost:8188", "ftp://127.0.0.1:8188", "http://",
                                 "http://127.0.0.1:99999"])  # fmt: skip
def test_submit_refuses_a_server_that_is_no_url_as_a_usage_error(cli, tmp_path, url):
    """It exited 3, 'unreachable', with "ws:///notaurl/ws?clientId=... isn't a valid URI"."""
    from latentgraph.server.submit import submit

    (tmp_path / "wf.yaml").write_text(WORKFLOW)
    code, _, err = cli("submit", "wf.yaml", "--server", url)
    assert code == 2, err
    assert f"latentgraph: error: --server {url}: " in err
    assert "expected http" in err or "expected an http:// or https:// URL with a host" in err
    assert "valid URI" not in err and "cannot reach" not in err
    assert submit(tmp_path / "wf.yaml", url, quiet=True) == 2


@pytest.mark.parametrize("args", [["--nodes-dir", "pack", "wf.yaml"], ["wf.yaml", "--nodes-dir"],
                                  ["--nodes-dir=pack", "wf.yaml"]])  # fmt: skip
def test_submit_refuses_nodes_dir_saying_the_servers_decides(cli, tmp_path, capsys, args):
    """`submit --nodes-dir pack wf.yaml` was argparse's "unrecognized arguments: --nodes-dir
    wf.yaml" (pack taken for the workflow): the server's own --nodes-dir decides which nodes
    exist, said as serve's --listen is refused; no server is asked."""
    (tmp_path / "wf.yaml").write_text(WORKFLOW)
    with pytest.raises(SystemExit) as exit_:  # argparse's refusals
        cli("submit", "--server", "http://127.0.0.1:1", *args)
    out, err = capsys.readouterr()
    assert (exit_.value.code, out) == (2, "")
    assert err == ("latentgraph: error: --nodes-dir: is serve's flag, not submit's: the server's "
                   "own --nodes-dir decides which nodes exist\n")  # fmt: skip


def test_submit_of_a_png_sends_the_workflow_it_holds(plain_server, cli, tmp_path):
    """run reads a PNG's workflow; submit said the PNG 'is not UTF-8 text at byte 0x89'. It
    now sends the chunk run would read (ours here, with its params), and a PNG with none is
    refused as run refuses it, before any server is asked."""
    from PIL import Image
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_text("latentgraph", REFUSED)
    Image.new("RGB", (8, 8)).save(tmp_path / "made.png", pnginfo=info)
    code, _, err = cli("submit", "made.png", "--server", plain_server.url, "--set", "v=6")
    assert code == 0, err
    assert "success" in err
    Image.new("RGB", (8, 8)).save(tmp_path / "plain.png")
    code, _, err = cli("submit", "plain.png", "--server", f"http://127.0.0.1:{free_port()}")
    assert code == 2 and "plain.png: a PNG image with no workflow in it" in err, err


def test_a_refused_server_url_with_credentials_is_a_usage_error_not_showing_them(token_server,
                                                                                 cli, tmp_path,
                                                                                 monkeypatch):  # fmt: skip
    """`--server http://u:PASSWORD@HOST:PORT/` to a server that wants a token: it printed
    'cannot reach the server at http://u:PASSWORD@...: ... HTTP 403', exit 3."""
    monkeypatch.delenv("LATENTGRAPH_AUTH_TOKEN", raising=False)
    (tmp_path / "wf.yaml").write_text(WORKFLOW)
    url = token_server.url.replace("http://", "http://u:sekrit123@")
    code, _, err = cli("submit", "wf.yaml", "--server", f"{url}/", "-q")
    assert code == 2, err
    assert "sekrit123" not in err and "cannot reach" not in err, err
    host = token_server.url.removeprefix("http://")
    assert err.startswith(f"latentgraph: error: the server at http://<redacted>@{host}/ "), err


def test_a_server_that_is_no_url_is_refused_without_its_credentials(cli, tmp_path):
    """The CLI's own check of --server showed `ftp://u:PASSWORD@host` whole: it hid the
    token= parameter only, while submit's other lines hide a URL's credentials too."""
    (tmp_path / "wf.yaml").write_text(WORKFLOW)
    code, _, err = cli("submit", "wf.yaml", "--server", "ftp://u:sekrit123@127.0.0.1:9/")
    assert code == 2, err
    assert "sekrit123" not in err
    assert "latentgraph: error: --server ftp://<redacted>@127.0.0.1:9/: expected" in err


def test_submit_prints_the_servers_refusal_of_a_workflow_as_run_prints_its_problems(
        plain_server, cli, tmp_path):  # fmt: skip
    """A workflow the server refuses (a --set naming no param, a YAML syntax error): each
    problem one `error: PLACE: ...` line, as `run` prints it (it was the bare `PLACE: ...`)."""
    (tmp_path / "wf.yaml").write_text(REFUSED)
    code, _, err = cli("submit", "wf.yaml", "--server", plain_server.url, "--set", "w=1")
    assert code == 2, err
    assert err.splitlines() == [
        "error: wf.yaml:3:3: --set w: the workflow has no param 'w' (params: v)"
    ]
    (tmp_path / "bad.yaml").write_text(REFUSED.replace("    value: $v", "    value: [$v"))
    code, _, err = cli("submit", "bad.yaml", "--server", plain_server.url)
    assert code == 2, err
    [line] = err.splitlines()
    assert line.startswith("error: bad.yaml:8:4: YAML syntax error: expected ',' or ']'"), err


def test_submit_places_a_nodes_refusal_of_its_input_as_run_does(plain_server, cli, tmp_path):
    """A node refusing an input a --set gave: the line names the --set and where the param is
    used, as `run` does (it was the node's message without a place)."""
    (tmp_path / "wf.yaml").write_text(REFUSED)
    code, _, err = cli("submit", "wf.yaml", "--server", plain_server.url, "--set", "v=3")
    assert code == 2, err
    assert "error: --set v=3 ($v at wf.yaml:7:12): node 'e' (Even) input 'value': 3 is odd" in (
        err.splitlines()
    ), err


def test_a_file_submit_could_not_download_is_a_warning_line(plain_server, cli, tmp_path,
                                                             monkeypatch):  # fmt: skip
    """README: what a command says on stderr beside a run's report starts with the program's
    name; `could not download x.png: HTTP 404` did not."""
    from latentgraph.server import submit

    asked = submit._Http.request

    def gone(self, method: str, path: str, body: Any = None) -> tuple[int, bytes]:
        return (404, b"") if path.startswith("/view?") else asked(self, method, path, body)

    monkeypatch.setattr(submit._Http, "request", gone)
    (tmp_path / "wf.yaml").write_text(REFUSED)
    code, _, err = cli("submit", "wf.yaml", "--server", plain_server.url, "--set", "v=8",
                       "--output-dir", "dl")  # fmt: skip
    assert code == 0, err
    assert "latentgraph: warning: could not download even_8.png: HTTP 404\n" in err, err


def test_submit_downloads_no_file_the_server_named_as_no_upload_may_be_named(plain_server, cli,
                                                                            tmp_path,
                                                                            monkeypatch):  # fmt: skip
    """A server's history names its outputs, and `submit` wrote them by those names: `.` (in
    the subfolder `.` too) was --output-dir itself, so the server's bytes went beside it, into
    its parent (`dl_00001_`); a NUL ended submit with a ValueError; ESC drove the terminal. A
    name is now held to an upload's rule (`safepath.stored_path`): each refused is a warning
    line, its name escaped, and the run's real output still downloads."""
    from urllib.parse import parse_qs, urlsplit

    from latentgraph.server import submit

    hostile = [{"filename": ".", "subfolder": ""}, {"filename": ".", "subfolder": "."},
               {"filename": "n\x00.png", "subfolder": ""},
               {"filename": "\x1b[31mred.png", "subfolder": ""},
               {"filename": "ok.png", "subfolder": "\x1b[2J"},
               {"filename": "up.png", "subfolder": "a/../.."}]  # fmt: skip
    names = {record["filename"] for record in hostile}
    asked = submit._Http.request

    def lying(self, method: str, path: str, body: Any = None) -> tuple[int, bytes]:
        if path.startswith("/view?") and parse_qs(urlsplit(path).query)["filename"][0] in names:
            return 200, b"the server's bytes"
        code, raw = asked(self, method, path, body)
        if path.startswith("/history/") and code == 200:
            history = json.loads(raw)
            for entry in history.values():
                entry["outputs"]["evil"] = {"images": [dict(r, type="output") for r in hostile]}
            raw = json.dumps(history).encode()
        return code, raw

    monkeypatch.setattr(submit._Http, "request", lying)
    (tmp_path / "wf.yaml").write_text(REFUSED)
    code, _, err = cli("submit", "wf.yaml", "--server", plain_server.url, "--set", "v=8",
                       "--output-dir", "dl")  # fmt: skip
    assert code == 0, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dl", "wf.yaml"]  # nothing beside dl
    assert [p.name for p in (tmp_path / "dl").iterdir()] == ["even_8.png"]
    assert "downloaded dl/even_8.png\n" in err, err
    warned = [line for line in err.splitlines() if "not downloading" in line]
    assert warned == [
        "latentgraph: warning: not downloading '.': the server's filename '.' must be a plain "
        "file name",
        "latentgraph: warning: not downloading './.': the server's filename '.' must be a plain "
        "file name",
        "latentgraph: warning: not downloading 'n\\u0000.png': the server's filename "
        "'n\\u0000.png' must be a plain file name",
        "latentgraph: warning: not downloading '\\u001b[31mred.png': the server's filename "
        "'\\u001b[31mred.png' contains a control character, U+001B; file names cannot hold "
        "control characters (NUL, newline, ...) nor invisible Unicode format characters (bidi "
        "overrides, zero-width characters)",
        "latentgraph: warning: not downloading '\\u001b[2J/ok.png': the server's subfolder "
        "'\\u001b[2J' contains a control character, U+001B; file names cannot hold control "
        "characters (NUL, newline, ...) nor invisible Unicode format characters (bidi "
        "overrides, zero-width characters)",
        "latentgraph: warning: not downloading 'a/../../up.png': the server's subfolder "
        "'a/../..' must be a relative path inside its folder",
    ], err
    assert "\x1b" not in err and "\x00" not in err


def test_submit_never_replaces_a_local_file_it_downloads_over(plain_server, cli, tmp_path):
    """The server numbers its files by its own folder, so its name may be one a local run (the
    same ./output) or the user holds: the download replaced that file, silently. It now takes
    the next free number of that name, as SaveImage numbers (past the highest there), and says
    the server's name beside it; a file holding the very bytes, downloaded before, is kept."""
    (tmp_path / "wf.yaml").write_text(REFUSED.replace("prefix: even", "prefix: x_00004"))
    dl = tmp_path / "dl"
    dl.mkdir()
    (dl / "x_00004_6.png").write_text("my precious file")
    (dl / "x_00007_6.png").write_text("a later one")
    code, _, err = cli("submit", "wf.yaml", "--server", plain_server.url, "--set", "v=6",
                       "--output-dir", "dl")  # fmt: skip
    assert code == 0, err
    assert (dl / "x_00004_6.png").read_text() == "my precious file"
    assert (dl / "x_00007_6.png").read_text() == "a later one"
    assert (dl / "x_00008_6.png").read_bytes().startswith(b"\x89PNG")
    assert "downloaded dl/x_00008_6.png (on the server: output/x_00004_6.png)" in err, err

    code, out, err = cli("submit", "wf.yaml", "--server", plain_server.url, "--set", "v=6",
                         "--output-dir", "dl", "--json")  # fmt: skip
    assert code == 0, err  # the run again, cached: the very bytes are there already, no copy
    [kept] = [e for e in map(json.loads, out.splitlines()) if e["event"] == "downloaded"]
    assert (kept["path"], kept["kept"]) == ("dl/x_00008_6.png", True)
    assert (kept["filename"], kept["subfolder"], kept["type"]) == ("x_00004_6.png", "", "output")
    code, _, err = cli("submit", "wf.yaml", "--server", plain_server.url, "--set", "v=6",
                       "--output-dir", "dl")  # fmt: skip
    assert "kept dl/x_00008_6.png (already downloaded; on the server: output/x_00004_6.png)" \
        in err, err  # fmt: skip
    assert sorted(p.name for p in dl.iterdir()) == ["x_00004_6.png", "x_00007_6.png",
                                                    "x_00008_6.png"]  # fmt: skip

    (tmp_path / "plain.yaml").write_text(REFUSED)  # a name with no number: numbered after it
    (dl / "even_2.png").write_text("mine")
    code, out, err = cli("submit", "plain.yaml", "--server", plain_server.url, "--set", "v=2",
                         "--output-dir", "dl", "--json")  # fmt: skip
    assert code == 0, err
    [got] = [e for e in map(json.loads, out.splitlines()) if e["event"] == "downloaded"]
    assert (got["path"], got["filename"], got["kept"]) == ("dl/even_2_00001_.png", "even_2.png",
                                                           False)  # fmt: skip
    assert (dl / "even_2.png").read_text() == "mine"


def test_submit_json_says_every_refusal_and_stop_on_stdout_as_run_json_does(plain_server, cli,
                                                                            tmp_path):  # fmt: skip
    """`submit --json` printed nothing on stdout when the workflow was refused (here or by the
    server) or the server could not be reached: a script got the same shapes as from `run
    --json` only on success. A refused workflow is now `run --json`'s `workflow_invalid` line
    (node, input and place of each problem), with its lines on stderr still; a stop before the
    run's end a `submit_stopped` line with the reason, stderr's message and the exit code's."""
    (tmp_path / "wf.yaml").write_text(REFUSED)
    code, out, err = cli("submit", "wf.yaml", "--server", plain_server.url, "--json",
                         "--set", "v=abc")  # fmt: skip
    assert code == 2, err
    [line] = map(json.loads, out.splitlines())
    [problem] = line["problems"]
    assert (line["event"], problem["node"], problem["input"], problem["location"]) == (
        "workflow_invalid", "e", "value", "--set v=abc ($v at wf.yaml:7:12)"), line  # fmt: skip
    assert err.splitlines() == [f"error: {problem['location']}: node 'e' input 'value': "
                                f"{problem['message']}"]  # fmt: skip
    _, run_out, _ = cli("run", "wf.yaml", "--json", "--set", "v=abc")  # the same shape
    assert json.loads(run_out)["problems"][0].keys() == problem.keys()

    (tmp_path / "badutf.yaml").write_bytes(b"version: 1\nnodes:\n  a:\n    type: x\xff\n")
    for refused in ("nope.yaml", "badutf.yaml"):  # refused here: the file, or reading it
        code, out, err = cli("submit", refused, "--server", plain_server.url, "--json")
        assert code == 2, err
        [line] = map(json.loads, out.splitlines())
        assert line["event"] == "workflow_invalid" and line["problems"][0]["location"], line

    unreachable = f"http://127.0.0.1:{free_port()}"
    code, out, err = cli("submit", "wf.yaml", "--server", unreachable, "--json")
    assert code == 3, err
    [line] = map(json.loads, out.splitlines())
    assert (line["event"], line["reason"], line["prompt_id"], line["history"]) == (
        "submit_stopped", "unreachable", None, None)  # fmt: skip
    assert err == f"latentgraph: error: {line['message']}\n"
    assert line["message"].startswith(f"cannot reach the server at {unreachable}: ")


def test_submit_json_says_a_refused_token_as_a_stop_with_its_advice(token_server, cli, tmp_path,
                                                                     monkeypatch):  # fmt: skip
    """A server refusing who sent the workflow (no token): a `submit_stopped` line, reason
    `refused`, the advice as stderr prints it (its `?token=TOKEN` placeholder not redacted)."""
    monkeypatch.delenv("LATENTGRAPH_AUTH_TOKEN", raising=False)
    (tmp_path / "wf.yaml").write_text(WORKFLOW)
    code, out, err = cli("submit", "wf.yaml", "--server", token_server.url, "--json")
    assert code == 2, err
    [line] = map(json.loads, out.splitlines())
    assert (line["event"], line["reason"], line["prompt_id"]) == ("submit_stopped", "refused", None)
    assert err == f"latentgraph: error: {line['message']}\n"
    assert "(?token=TOKEN, as the editor's address)" in line["message"]


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["Ctrl-C", "SIGTERM"])
def test_submit_stopped_by_ctrl_c_or_sigterm_stops_the_prompt_on_the_server(plain_server,
                                                                            tmp_path, sig):  # fmt: skip
    """SIGTERM (`docker stop`, a CI timeout) ended `submit` silently, by the signal's default
    action: no `submit_stopped` line, no message, and its prompt went on running on the
    server. Now it stops as Ctrl-C stops it: the server asked to stop the prompt, said on
    stderr and in `--json`'s last line, and the process ends by that same signal (README)."""
    # a value of its own per case: a case's prompt run to its end is no cache hit for the next
    (tmp_path / "slow.json").write_text(json.dumps(chain(int(sig), slow_steps=1000, delay=0.1)))
    env = {k: v for k, v in os.environ.items() if k != "LATENTGRAPH_AUTH_TOKEN"}
    # Ctrl-C as a terminal's foreground job gets it: a suite started in the background (a CI
    # script run with `&`) hands its children SIGINT ignored, which submit rightly keeps
    foreground = "import signal\nsignal.signal(signal.SIGINT, signal.default_int_handler)\n"
    proc = subprocess.Popen([sys.executable, "-c", foreground + ENTRY, "submit", "slow.json",
                             "--server", plain_server.url, "--json"], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    watchdog = threading.Timer(120, proc.kill)  # a submit that never shows progress fails here
    watchdog.start()
    try:
        lines = []
        while not lines or json.loads(lines[-1])["event"] != "node_progress":  # watching it run
            lines.append(proc.stdout.readline())
            assert lines[-1], (lines, proc.stderr.read())
        proc.send_signal(sig)
        out, err = proc.communicate()
    finally:
        watchdog.cancel()
        proc.kill()
    assert proc.returncode == -sig, (out[-2000:], err)
    last = json.loads(out.splitlines()[-1])
    pid, url = last["prompt_id"], plain_server.url
    assert (last["event"], last["reason"], last["history"]) == (
        "submit_stopped", "interrupted", f"{url}/history/{pid}"), last  # fmt: skip
    said = "interrupted" if sig == signal.SIGINT else "interrupted by SIGTERM"
    assert err == f"latentgraph: {said}; the server was asked to stop prompt {pid}\n"
    deadline = time.monotonic() + 60  # the server stops the prompt at its node's next step
    while pid not in (history := plain_server.http.get("/history").json()):
        assert time.monotonic() < deadline, plain_server.http.get("/queue").json()
        time.sleep(0.05)
    assert "execution_interrupted" in json.dumps(history[pid]["status"]["messages"])
