"""`latentgraph serve` flags: nonsense is refused before anything starts (no worker, no port,
no app), in one line naming the flag and what it expected, with the usage exit code; `run`
refuses the limits it shares in the same words."""

from __future__ import annotations

import socket
import warnings
from pathlib import Path

import pytest

from latentgraph.graph.context import LIMIT_FLAGS

from .conftest import write
from .test_cli import GOOD


@pytest.fixture
def serve(tmp_path, monkeypatch, capsys):
    """`latentgraph serve ARGS` in-process, with the server's start replaced: returns (exit
    code, stderr, the ServerConfig it would have served, or None)."""
    from latentgraph import wiring
    from latentgraph.cli import main
    from latentgraph.server import run as server_run

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("LATENTGRAPH_AUTH_TOKEN", raising=False)
    monkeypatch.setattr(wiring, "prepare_server", lambda config, **kw: None)  # no node setup

    def call(*args: str):
        started: list = []
        monkeypatch.setattr(server_run, "serve", lambda config, **kw: started.append(config))
        argv = ["serve", *args]
        if "--data-dir" not in args:
            argv += ["--data-dir", str(tmp_path / "data")]
        try:
            code = main(argv)
        except SystemExit as exc:  # argparse's refusals
            code = exc.code
        err = capsys.readouterr().err
        assert "Traceback" not in err
        return code, err, started[0] if started else None

    return call


def refused(serve, *args: str) -> str:
    code, err, config = serve(*args)
    assert code == 2 and config is None, err
    return err


# --- 1. workers ---------------------------------------------------------------------------


@pytest.mark.parametrize("flag", ["--workers", "--ray-workers"])
@pytest.mark.parametrize("value", ["0", "-1", "two"])
def test_worker_counts_below_one_are_refused(serve, flag, value):
    err = refused(serve, flag, value)
    assert f"latentgraph: error: {flag}: expected an integer of at least 1, " \
           f"got '{value}'" in err  # fmt: skip


def test_worker_counts_are_taken(serve):
    code, err, config = serve("--workers", "2", "--device", "cpu")
    assert code == 0, err
    assert config.workers == 2


# --- 2. port ------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["99999", "65536", "-1", "http"])
def test_a_port_outside_the_tcp_range_is_refused(serve, value):
    err = refused(serve, "--port", value)
    assert f"latentgraph: error: --port: expected an integer from 0 to 65535, got '{value}'" in err


def test_listen_on_port_zero_takes_a_free_port_and_listens_at_once():
    """`--port 0`: the system picks a free port (tests use it to bind no fixed one)."""
    from latentgraph.server.run import listen

    sockets = listen("127.0.0.1", 0)
    try:
        (sock,) = sockets
        host, port = sock.getsockname()
        assert host == "127.0.0.1" and port > 0
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass  # already listening: nothing can take the port between the check and serving
    finally:
        for sock in sockets:
            sock.close()


LAUNCH = (
    "import json, sys\n"
    "from latentgraph.server.config import ServerConfig\n"
    "from latentgraph.server.run import serve\n"
    "serve(ServerConfig(**json.loads(sys.argv[1])))\n"
)


def test_the_server_serves_on_the_socket_it_bound_and_logs_its_port(tmp_path):
    """`serve` binds the port itself and hands uvicorn the socket: with port 0 the log line
    names the port picked, and the server answers there. uvicorn's lines, its access lines
    among them, are on stderr with a time as latentgraph's own (`run.LOG_FORMAT`): they had no
    time, and the access lines went to stdout."""
    import json
    import os
    import re
    import subprocess
    import sys
    import time

    import httpx

    plugin = Path(__file__).parents[1] / "server" / "plugin"
    config = {"data_dir": str(tmp_path / "data"), "port": 0, "disk_cache": False,
              "load_nodes": False, "editor": False, "nodes_dirs": [str(plugin)], "workers": 1,
              "device": "cpu", "preload": False}  # fmt: skip
    env = {**os.environ, "LATENTGRAPH_TOY_PLUGIN": "1",
           "LATENTGRAPH_CACHE_DIR": str(tmp_path / "cache")}  # fmt: skip
    proc = subprocess.Popen([sys.executable, "-c", LAUNCH, json.dumps(config)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    when = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}"
    try:
        lines, deadline = [], time.monotonic() + 60
        while time.monotonic() < deadline:
            line = proc.stderr.readline()
            assert line, "".join(lines)
            lines.append(line)
            found = re.search(r"Uvicorn running on http://127\.0\.0\.1:(\d+) ", line)
            if found:
                break
        else:
            raise AssertionError("".join(lines))
        port = int(found.group(1))
        assert port != 0
        assert re.match(f"{when} INFO uvicorn.error: Uvicorn running on ", line), line
        assert httpx.get(f"http://127.0.0.1:{port}/prompt", timeout=10).status_code == 200
    finally:
        proc.terminate()
        try:
            out, err = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
    access = rf'{when} INFO uvicorn.access: 127\.0\.0\.1:\d+ - "GET /prompt HTTP/1\.1" 200$'
    assert [m for m in err.splitlines() if re.match(access, m)], err
    assert out == ""


def test_listen_binds_every_address_of_the_host_on_one_port():
    """As uvicorn binds a name (asyncio's `create_server`): every address it resolves to, an
    IPv6 socket IPv6-only; with port 0 they share the port picked for the first."""
    from latentgraph.server.run import listen

    sockets = listen("localhost", 0)
    try:
        assert {s.getsockname()[1] for s in sockets} == {sockets[0].getsockname()[1]}
        for sock in sockets:
            if sock.family == socket.AF_INET6:
                assert sock.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY) == 1
    finally:
        for sock in sockets:
            sock.close()


def busy_port(host: str = "127.0.0.1") -> tuple[socket.socket, int]:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family)
    sock.bind((host, 0))
    sock.listen()
    return sock, sock.getsockname()[1]


@pytest.mark.parametrize("host", ["127.0.0.1", "::1"])
def test_a_port_in_use_is_refused_before_the_app_or_a_worker_starts(tmp_path, monkeypatch,
                                                                    capsys, host):  # fmt: skip
    """Was: "Application startup complete" (a worker spawned), then uvicorn's "[Errno 98]
    address already in use" and exit 3."""
    from latentgraph import wiring
    from latentgraph.cli import main
    from latentgraph.server import app as server_app

    if host == "::1" and not socket.has_ipv6:
        pytest.skip("no IPv6")
    try:
        other, port = busy_port(host)
    except OSError:
        pytest.skip(f"cannot bind {host}")
    monkeypatch.setattr(wiring, "prepare_server", lambda config, **kw: None)
    made: list = []
    monkeypatch.setattr(server_app, "create_app", lambda *a, **k: made.append(a) or 1 / 0)
    try:
        code = main(["serve", "--host", host, "--port", str(port), "--data-dir",
                     str(tmp_path / "data")])  # fmt: skip
    finally:
        other.close()
    err = capsys.readouterr().err
    assert code == 2 and not made
    assert f"latentgraph: error: port {port} on {host} is in use (another server?); choose " \
           "another with --port" in err  # fmt: skip
    assert "Traceback" not in err and "startup" not in err


def test_a_port_in_use_leaves_no_folder_made(tmp_path, monkeypatch, capsys):
    """Was: the new --data-dir with its lock file, ./input with example.png and ./temp made,
    then the port refused."""
    from latentgraph.cli import main

    monkeypatch.chdir(tmp_path)
    other, port = busy_port()
    try:
        code = main(["serve", "--port", str(port), "--data-dir", "new/data", "--device", "cpu"])
    finally:
        other.close()
    err = capsys.readouterr().err
    assert code == 2 and f"latentgraph: error: port {port} on 127.0.0.1 is in use" in err
    assert list(tmp_path.iterdir()) == []


# --- 3. devices ---------------------------------------------------------------------------


@pytest.mark.parametrize(("args", "message"), [
    (["--device", "cuda"], "--device: device 'cuda': this torch sees no CUDA GPU"),
    (["--device", "cpu", "--devices", "cpu,cuda:1"],
     "--devices: device 'cuda:1': this torch sees no CUDA GPU"),
])  # fmt: skip
def test_a_device_this_machine_lacks_is_refused_as_run_refuses_it(serve, monkeypatch, args,
                                                                  message):  # fmt: skip
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")  # the check's torch sees no GPU
    err = refused(serve, *args)
    assert f"latentgraph: error: {message}" in err


def test_devices_are_names_the_device_flag_takes(serve):
    err = refused(serve, "--devices", "cuda:0,gpu")
    assert "latentgraph: error: --devices: device 'gpu' is not one of" in err


def test_the_device_check_of_serve_leaves_torch_out_of_the_server_process(tmp_path):
    """The HTTP process never imports torch (docs/architecture.md): serve asks a child."""
    import os
    import subprocess
    import sys

    script = ("import sys\nfrom latentgraph.cli import main\ncode = main(sys.argv[1:])\n"
              "print('torch' in sys.modules)\nsys.exit(code)\n")  # fmt: skip
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    out = subprocess.run([sys.executable, "-c", script, "serve", "--device", "cuda:0", "--port",
                          "0", "--data-dir", str(tmp_path / "data")], capture_output=True,
                         text=True, timeout=120, env=env, cwd=tmp_path)  # fmt: skip
    assert out.returncode == 2, out.stderr
    assert out.stdout.split() == ["False"]
    assert "--device: device 'cuda:0': this torch sees no CUDA GPU" in out.stderr


# --- 4. --max-pixels ----------------------------------------------------------------------


@pytest.mark.parametrize(("value", "pixels"), [("256x256", 65536), ("65536", 65536),
                                               ("640X480", 307200), (" 64 x 32 ", 2048)])  # fmt: skip
def test_max_pixels_takes_a_count_or_width_x_height(serve, value, pixels):
    code, err, config = serve("--max-pixels", value)
    assert code == 0, err
    assert config.max_image_pixels == pixels


@pytest.mark.parametrize("value", ["0", "0x256", "256x", "axb", "-5", "2x3x4"])
def test_max_pixels_refuses_what_is_no_size(serve, value):
    err = refused(serve, "--max-pixels", value)
    assert f"latentgraph: error: --max-pixels: expected a pixel count or WIDTHxHEIGHT " \
           f"(e.g. 1024x1024) of at least 1, got '{value}'" in err  # fmt: skip


def test_run_takes_max_pixels_as_serve_does(cli, tmp_path):
    path = write(tmp_path, "good.yaml", GOOD)
    code, _, err = cli("run", str(path), "-q", "--max-pixels", "256x256")
    assert code == 0, err
    with pytest.raises(SystemExit) as exc:
        cli("run", str(path), "-q", "--max-pixels", "0x1")
    assert exc.value.code == 2


def test_max_pixels_help_says_both_forms(capsys):
    from latentgraph.cli import build_parser

    for command in ("run", "serve"):
        with pytest.raises(SystemExit):
            build_parser().parse_args([command, "--help"])
        text = " ".join(capsys.readouterr().out.split())
        assert "--max-pixels PIXELS pixels per image: a count or WxH (default 4096x4096)" in text


# --- 5. limits ----------------------------------------------------------------------------


@pytest.mark.parametrize(("flag", "value", "expected"), [
    ("--max-queue", "0", "an integer of at least 1"),
    ("--max-body-mb", "0", "an integer of at least 1"),
    ("--interrupt-grace", "-5", "a number of at least 0"),
    ("--interrupt-grace", "nan", "a number of at least 0"),
    ("--max-prompt-nodes", "0", "an integer of at least 1"),
    ("--max-string-chars", "0", "an integer of at least 1"),
    ("--max-extra-data-mb", "-1", "an integer of at least 0"),
    ("--max-steps", "0", "an integer of at least 1"),
    ("--max-batch", "-2", "an integer of at least 1"),
    ("--max-queue", "1.5", "an integer of at least 1"),
])  # fmt: skip
def test_limits_that_would_refuse_everything_are_refused(serve, flag, value, expected):
    err = refused(serve, flag, value)
    assert f"latentgraph: error: {flag}: expected {expected}, got '{value}'" in err


def test_the_smallest_sensible_limits_are_taken(serve):
    code, err, config = serve("--max-queue", "1", "--max-body-mb", "1", "--interrupt-grace",
                              "0", "--max-extra-data-mb", "0", "--max-steps", "1")  # fmt: skip
    assert code == 0, err
    assert (config.max_queue, config.max_body_bytes, config.interrupt_grace_seconds,
            config.max_extra_data_bytes, config.max_steps) == (1, 2**20, 0.0, 0, 1)  # fmt: skip


@pytest.mark.parametrize("flag", ["--max-steps", "--max-batch"])
def test_run_refuses_the_limits_serve_refuses(cli, tmp_path, flag, capsys):
    path = write(tmp_path, "good.yaml", GOOD)
    with pytest.raises(SystemExit) as exc:
        cli("run", str(path), flag, "0")
    assert exc.value.code == 2
    assert f"latentgraph: error: {flag}: expected an integer of at least 1, got " \
           "'0'" in capsys.readouterr().err  # fmt: skip


BOUNDED = """\
version: 1
nodes:
  bounded:
    type: CliBounded
    {limit}: {value}
"""


@pytest.mark.parametrize(("limit", "flag"), list(LIMIT_FLAGS.items()))
def test_each_run_limit_flag_is_honoured_by_validate_run_and_serve(cli, serve, tmp_path, limit,
                                                                   flag):  # fmt: skip
    """Each run limit's flag (`LIMIT_FLAGS`), set low, refuses a workflow over it in every
    command taking it, naming the flag, and passes one at it: each command once copied the
    flags into its limits by hand, and a copy missing one would pass what the others refuse.
    The limit is low, but above the prompt's own strings (--max-string-chars bounds them)."""
    from starlette.testclient import TestClient

    from latentgraph.arguments import load_nodes
    from latentgraph.server.app import create_app
    from latentgraph.wiring import worker_setup

    from ..server.test_dispatch import RecordingPool
    from .conftest import PLUGIN

    low = 50
    said = f"over the limit of {low} ({flag})"
    for command in ("validate", "run"):
        over = write(tmp_path, "over.yaml", BOUNDED.format(limit=limit, value=low + 1))
        code, _, err = cli(command, str(over), flag, str(low))
        assert code == 2 and said in err, (command, err)
        at = write(tmp_path, "at.yaml", BOUNDED.format(limit=limit, value=low))
        code, _, err = cli(command, str(at), flag, str(low))
        assert code == 0, (command, err)
    code, err, config = serve(flag, str(low), "--nodes-dir", str(PLUGIN))
    assert code == 0, err
    app = create_app(config, registry=load_nodes([PLUGIN]), workers=worker_setup([PLUGIN]),
                     pool=RecordingPool([frozenset()]))  # fmt: skip

    def prompt(value: int) -> dict:
        inputs = {name: 1 for name in LIMIT_FLAGS} | {limit: value}
        return {"prompt": {"1": {"class_type": "CliBounded", "inputs": inputs}}}

    with TestClient(app, base_url="http://127.0.0.1:8188") as client:
        over = client.post("/prompt", json=prompt(low + 1))
        at = client.post("/prompt", json=prompt(low))
    assert over.status_code == 400
    errors = over.json()["node_errors"]["1"]["errors"]
    assert [e["extra_info"]["input_name"] for e in errors] == [limit], over.text
    assert said in errors[0]["details"], over.text
    assert at.status_code == 200, at.text


def test_without_their_flags_the_limits_are_the_settings_defaults(serve):
    """A limit left out is Settings' default in every command (and in a ServerConfig made in
    Python): the defaults are written once, on the Settings fields."""
    from latentgraph.arguments import limit_values
    from latentgraph.cli import build_parser
    from latentgraph.graph.context import limit_defaults
    from latentgraph.server.config import ServerConfig

    for command in ("run", "validate"):
        assert limit_values(build_parser().parse_args([command, "w.yaml"])) == limit_defaults()
    code, err, config = serve()
    assert code == 0, err
    assert config.limits == ServerConfig().limits == limit_defaults()


def test_max_queue_help_says_the_running_prompt_counts(capsys):
    """3 accepted with --max-queue 3 = 1 running + 2 pending (server/state.py counts both, as
    ComfyUI's queue_remaining does)."""
    from latentgraph.cli import build_parser

    with pytest.raises(SystemExit):
        build_parser().parse_args(["serve", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "prompts queued or running (default 1000)" in text


# --- 6. folders ---------------------------------------------------------------------------


@pytest.mark.parametrize("flag", ["--data-dir", "--output-dir", "--input-dir", "--temp-dir",
                                  "--user-dir", "--models-dir", "--cache-dir"])  # fmt: skip
def test_a_file_named_as_a_folder_is_refused_saying_what_was_expected(serve, tmp_path, flag):
    afile = write(tmp_path, "afile", "x")
    err = refused(serve, flag, str(afile))
    assert f"latentgraph: error: {flag} {afile}: a file is there; expected a folder" in err


@pytest.mark.parametrize(("args", "store"), [
    (["--cache-dir", "store"], "store"),  # the entries directly in it, as `run --cache-dir`
    (["--cache-dir", "store", "--no-cache"], None),  # --no-cache wins, as in `run`
    (["--no-cache"], None),
])  # fmt: skip
def test_cache_dir_is_the_folder_the_workers_are_given(serve, tmp_path, args, store):
    code, err, config = serve(*args)
    assert code == 0, err
    assert config.disk_store == (None if store is None else (tmp_path / store).resolve())


def test_user_dir_is_the_users_folder_and_the_database_stays_in_the_data_dir(serve, tmp_path):
    """`--user-dir DIR` is ComfyUI's user folder: the default user's files in DIR/default;
    without it, users/ in --data-dir as before."""
    code, err, config = serve("--user-dir", "ComfyUI/user")
    assert code == 0, err
    assert config.user_dir == (tmp_path / "ComfyUI" / "user" / "default").resolve()
    assert config.db_path == (tmp_path / "data" / "server.sqlite3").resolve()
    code, err, config = serve()
    assert code == 0, err
    assert config.user_dir == (tmp_path / "data" / "users" / "default").resolve()


@pytest.mark.parametrize(("made", "held"), [("default/workflows/a.json", "default/workflows"),
                                            ("default/comfy.settings.json",) * 2])  # fmt: skip
def test_a_comfy_user_folder_given_as_data_dir_is_refused_naming_user_dir(serve, tmp_path, made,
                                                                           held):  # fmt: skip
    """Served as a data folder, a ComfyUI user folder's workflows were not listed and the
    queue database and users/ were made in the ComfyUI install: refused before anything is
    made, naming the flag that takes it; given as both, it is what the user asked for."""
    (tmp_path / "ComfyUI" / "user" / made).parent.mkdir(parents=True)
    write(tmp_path, f"ComfyUI/user/{made}", "{}")
    err = refused(serve, "--data-dir", "ComfyUI/user")
    assert (f"latentgraph: error: --data-dir ComfyUI/user: a ComfyUI user folder (it holds "
            f"{held}); to show and save its workflows and settings in place, give it as "
            "--user-dir ComfyUI/user, and --data-dir (the queue database) another folder or "
            "none") in err  # fmt: skip
    assert sorted(p.name for p in (tmp_path / "ComfyUI" / "user").iterdir()) == ["default"]
    code, err, _ = serve("--data-dir", "ComfyUI/user", "--user-dir", "ComfyUI/user")
    assert code == 0, err


@pytest.mark.parametrize(("given", "what", "held", "whose", "user_dir"), [
    ("ComfyUI", "a ComfyUI install", "user/default/workflows", "its user folder", "ComfyUI/user"),
    ("ComfyUI/user/default", "a ComfyUI user folder's default user", "workflows",
     "the user folder holding it", "ComfyUI/user"),
])  # fmt: skip
def test_a_comfy_install_or_its_default_user_given_as_data_dir_is_refused_naming_user_dir(
    serve, tmp_path, given, what, held, whose, user_dir
):
    """The two mistakes as likely as the user folder itself (`--data-dir ~/ComfyUI`, `--data-dir
    ~/ComfyUI/user/default`) made the database and users/ in the install too: refused, naming
    the folder --user-dir takes; with that --user-dir given, the database there is asked for."""
    (tmp_path / "ComfyUI/user/default/workflows").mkdir(parents=True)
    err = refused(serve, "--data-dir", given)
    assert (f"latentgraph: error: --data-dir {given}: {what} (it holds {held}); to show and "
            f"save its workflows and settings in place, give {whose} as --user-dir {user_dir}, "
            "and --data-dir (the queue database) another folder or none") in err  # fmt: skip
    assert [p.name for p in (tmp_path / given).iterdir()] == [held.split("/")[0]]  # none made
    code, err, _ = serve("--data-dir", given, "--user-dir", user_dir)
    assert code == 0, err


def test_a_folder_holding_workflows_is_a_comfy_users_only_when_named_default(serve, tmp_path):
    """A user's own folder holding a workflows/ folder is no ComfyUI user's: only one named
    `default` (the user ComfyUI serves) is taken for it."""
    (tmp_path / "mine" / "workflows").mkdir(parents=True)
    code, err, _ = serve("--data-dir", "mine")
    assert code == 0, err
    (tmp_path / "ComfyUI/user/default").mkdir(parents=True)
    write(tmp_path, "ComfyUI/user/default/comfy.settings.json", "{}")
    err = refused(serve, "--data-dir", "ComfyUI/user/default")
    assert "(it holds comfy.settings.json)" in err and "--user-dir ComfyUI/user," in err


def test_a_folder_under_a_file_is_refused_naming_the_file(serve, tmp_path):
    afile = write(tmp_path, "afile", "x")
    err = refused(serve, "--temp-dir", "afile/temp")
    assert f"latentgraph: error: --temp-dir afile/temp: {afile} is a file; expected a folder" \
        in err  # fmt: skip


def test_a_missing_models_folder_is_named_by_its_flag(serve, tmp_path):
    err = refused(serve, "--extra-models-dir", "nowhere")
    assert "latentgraph: error: --extra-models-dir nowhere: no such folder" in err


# --- 7. plugin failures -------------------------------------------------------------------


def test_a_missing_nodes_dir_is_refused_as_run_refuses_it(serve, tmp_path):
    """Was a warning ("node plugin ... failed to load: not a directory"), then the server
    started without the plugins; `run` refused it. Refused before the port is bound."""
    err = refused(serve, "--nodes-dir", str(tmp_path / "nowhere"))
    assert f"latentgraph: error: --nodes-dir {tmp_path / 'nowhere'}: not a folder" in err


def test_a_plugin_failure_is_said_once_in_the_cli_form(tmp_path, monkeypatch, capsys):
    """Was four times: the CLI's line, then Python warnings from the app's second load and
    from each worker's. A plugin that fails to import is a warning, as for every command."""
    import uvicorn

    from latentgraph.cli import main
    from latentgraph.graph.plugins import PluginWarning
    from latentgraph.wiring import worker_setup

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(uvicorn.Server, "run",  # the app is made, not served: no worker starts
                        lambda self, **kw: self.config.app.state.lg.store.close())  # fmt: skip
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    bad = write(plugins, "bad.py", "raise RuntimeError('plugin exploded')\n")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        code = main(["serve", "--port", "0", "--nodes-dir", str(plugins), "--data-dir",
                     str(tmp_path / "data")])  # fmt: skip
        worker_setup([plugins]).registry()  # what each worker builds
    err = capsys.readouterr().err
    assert code == 0, err
    said = f"latentgraph: warning: node plugin {bad} failed to load: RuntimeError: plugin exploded"
    assert err.count("failed to load") == 1 and said in err
    assert [w for w in caught if issubclass(w.category, PluginWarning)] == []


def test_the_worker_registry_is_a_module_function_it_can_rebuild(tmp_path):
    import pickle

    from latentgraph.wiring import worker_setup

    setup = pickle.loads(pickle.dumps(worker_setup([Path(tmp_path)])))
    assert setup.registry() is not None


def test_serve_help_says_where_each_folder_is(capsys):
    """--output-dir, --input-dir and --temp-dir showed no default: they are ./output, ./input,
    ./temp of the working folder, not folders of --data-dir, which holds the queue, history
    and settings only."""
    from latentgraph.cli import build_parser

    with pytest.raises(SystemExit):
        build_parser().parse_args(["serve", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for flag, default in [("--output-dir", "./output"), ("--input-dir", "./input"),
                          ("--temp-dir", "./temp")]:  # fmt: skip
        assert f"(default: {default}, relative to the working folder, not in --data-dir)" in \
            text.split(f"{flag} {flag[2:].upper().replace('-', '_')} ", 1)[1]  # fmt: skip
    assert "--data-dir DATA_DIR the queue and history, the editor's settings and saved " \
           "workflows, nothing else: outputs, inputs and temp files go to --output-dir" in text  # fmt: skip


@pytest.mark.parametrize("args", [["--listen"], ["--listen", "0.0.0.0"], ["--listen=::"],
                                  ["--auth-token", "a" * 20, "--listen"]])  # fmt: skip
def test_comfyui_listen_names_host_and_binds_nothing(serve, args):
    """ComfyUI's `--listen` was `unrecognized arguments: --listen`: now refused naming
    latentgraph's flag (and the token an open host needs), never taken as --host 0.0.0.0."""
    err = refused(serve, *args)
    assert "latentgraph: error: --listen: is ComfyUI's flag; latentgraph's is " \
           "--host ADDRESS" in err and "--auth-token TOKEN" in err  # fmt: skip


# --- Ray actors' flags without --ray ---------------------------------------------------------


@pytest.mark.parametrize("flag, value", [("--ray-workers", "2"), ("--ray-cpus-per-actor", "2"),
                                         ("--ray-gpus-per-actor", "0.5")])  # fmt: skip
def test_a_ray_actor_flag_without_ray_is_refused_not_ignored(serve, flag, value, tmp_path, capsys):
    """serve and run alike: the flag would shape actors nobody starts."""
    from latentgraph.cli import main

    err = refused(serve, flag, value, "--device", "cpu")
    assert f"latentgraph: error: {flag} needs --ray" in err
    out = tmp_path / "out"
    assert main(["run", str(write(tmp_path, "g.yaml", GOOD)), flag, value, "--output-dir",
                 str(out)]) == 2  # fmt: skip
    assert f"latentgraph: error: {flag} needs --ray" in capsys.readouterr().err
    assert not list(out.glob("*.png"))  # nothing ran


def test_ray_actor_flags_with_ray_get_their_defaults(serve):
    code, err, config = serve("--ray", "local", "--ray-workers", "2")
    assert code == 0, err
    assert (config.ray_workers, config.ray_cpus_per_actor, config.ray_gpus_per_actor) == (2, 1, 1)


@pytest.mark.parametrize(("value", "shown"), [
    ("localhost#x", "'localhost#x'"), ("local host", "'local host'"), ("a,b", "'a,b'"),
    ("a;b", "'a;b'"), ("box.lan:8188", "'box.lan:8188'"), ("me@box.lan", "'me@box.lan'"),
    ("box.lan/x", "'box.lan/x'"), ("", "''"),
    ("box\\lan", "'box\\lan'"),  # as typed: repr doubled the backslash
])  # fmt: skip
def test_an_allow_host_no_host_header_could_match_is_refused(serve, value, shown):
    """`--allow-host 'localhost#x'` started, and a request naming it was refused as malformed:
    the flag is read by the rule a request's Host is read by (server.hosts.host_name)."""
    err = refused(serve, "--allow-host", value)
    assert (f"latentgraph: error: --allow-host: expected a host name or IP address without a port "
            f"(e.g. studio.lan), got {shown}") in err  # fmt: skip


def test_an_allow_host_name_is_taken_as_a_host_header_reads_it(serve):
    code, err, config = serve("--allow-host", "Studio.Lan.", "--allow-host", "box_1.local",
                              "--allow-host", "[2001:db8::5]", "--allow-host", "2001:db8::6")  # fmt: skip
    assert code == 0, err
    assert config.allow_hosts == ["studio.lan", "box_1.local", "2001:db8::5", "2001:db8::6"]


@pytest.mark.parametrize(("value", "taken"), [
    ("127.0.0.2", ["127.0.0.2"]), ("10.0.0.0/8, ::1", ["10.0.0.0/8", "::1"]), ("*", ["*"]),
])  # fmt: skip
def test_forwarded_allow_ips_are_the_proxy_addresses_uvicorn_believes(serve, value, taken):
    from latentgraph.server.run import uvicorn_options

    code, err, config = serve("--forwarded-allow-ips", value)
    assert code == 0, err
    assert config.forwarded_allow_ips == taken
    assert uvicorn_options(config)["forwarded_allow_ips"] == taken
    code, err, config = serve()  # not given: uvicorn's default ($FORWARDED_ALLOW_IPS, loopback)
    assert code == 0 and config.forwarded_allow_ips is None


@pytest.mark.parametrize("value", ["proxy.lan", "10.0.0.1/8", "127.0.0.1,", "*,10.0.0.1"])
def test_a_forwarded_allow_ip_no_client_address_could_match_is_refused(serve, value):
    """uvicorn reads any entry that is no address or network as a name, which no client
    address equals: `10.0.0.1/8` (host bits set) or a host name trusted nobody, silently."""
    err = refused(serve, "--forwarded-allow-ips", value)
    assert "latentgraph: error: --forwarded-allow-ips: expected IP addresses or networks " \
           "separated by commas (e.g. 127.0.0.1,10.0.0.0/8), or * for every client; got '" in err  # fmt: skip


# --- the cache's bounds ----------------------------------------------------------------------


@pytest.mark.parametrize("flag", ["--cache-memory-mb", "--cache-disk-mb"])
@pytest.mark.parametrize("value", ["0", "-1", "2.5", "big"])
def test_a_cache_bound_below_one_mib_is_refused_naming_the_flag(serve, flag, value):
    err = refused(serve, flag, value)
    assert f"latentgraph: error: {flag}: expected an integer of at least 1, got '{value}'" in err


def test_the_cache_bounds_reach_every_worker_spec(serve, tmp_path):
    """`serve --cache-memory-mb M --cache-disk-mb D`: each local worker's spec carries them
    (the Ray actors' specs are made from the same ServerConfig fields, `ray_pool`); not given,
    the defaults `run` and Python's Cache keep to."""
    from latentgraph.graph.cache import DEFAULT_DISK_BYTES, DEFAULT_MEMORY_BYTES
    from latentgraph.graph.context import Settings
    from latentgraph.server.local_workers import worker_specs

    code, err, config = serve("--cache-memory-mb", "300", "--cache-disk-mb", "1024",
                              "--workers", "2", "--device", "cpu")  # fmt: skip
    assert code == 0, err
    assert [(s.cache_memory_bytes, s.cache_disk_bytes) for s in worker_specs(config, Settings())] \
        == [(300 << 20, 1 << 30)] * 2  # fmt: skip
    code, err, config = serve("--device", "cpu")
    assert (config.cache_memory_bytes, config.cache_disk_bytes) == (DEFAULT_MEMORY_BYTES,
                                                                    DEFAULT_DISK_BYTES)  # fmt: skip


# --- 6. the data folder's database ------------------------------------------------------


def test_max_history_is_the_bound_the_store_keeps(serve):
    from latentgraph.server.config import MAX_HISTORY

    code, err, config = serve("--max-history", "5")
    assert code == 0 and config.max_history == 5, err
    assert serve()[2].max_history == MAX_HISTORY == 10_000  # as ComfyUI's
    err = refused(serve, "--max-history", "0")
    assert "latentgraph: error: --max-history: expected an integer of at least 1, got '0'" in err


def test_a_database_a_newer_latentgraph_wrote_stops_the_start(tmp_path, monkeypatch, capsys):
    """One line naming the database and its data folder, exit 2, as a data folder in use is
    refused; the database is left as it is."""
    import sqlite3
    from contextlib import closing

    from latentgraph import wiring
    from latentgraph.cli import main
    from latentgraph.server import app as server_app
    from latentgraph.server.store import SCHEMA_VERSION

    def no_workers(*args, **kwargs):
        raise RuntimeError("the server went on to start its workers")

    monkeypatch.setattr(server_app, "LocalWorkerPool", no_workers)
    data = tmp_path / "data"
    data.mkdir()
    with closing(sqlite3.connect(data / "server.sqlite3", isolation_level=None)) as db:
        db.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    before = (data / "server.sqlite3").read_bytes()
    monkeypatch.setattr(wiring, "prepare_server", lambda config, **kw: None)
    code = main(["serve", "--port", "0", "--data-dir", str(data), "--device", "cpu"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert f"latentgraph: error: the queue database {data / 'server.sqlite3'} in the data " \
           f"folder {data} was written by a newer latentgraph" in err  # fmt: skip
    assert "Traceback" not in err
    assert (data / "server.sqlite3").read_bytes() == before
