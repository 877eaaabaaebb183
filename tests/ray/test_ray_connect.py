"""`--ray ADDRESS` naming a cluster nobody runs: a usage error at once, not Ray's endless
"Failed to connect to GCS" retries."""

from __future__ import annotations

import http.server
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
from concurrent import futures
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TXT2IMG = str(ROOT / "workflows" / "txt2img.yaml")


def _closed_port() -> int:
    """A local port nothing listens on (a connection to it is refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("command", [
    ["serve", "--port", "0", "--ray-workers", "1"],
    ["run", TXT2IMG, "--ray-workers", "1"],
])  # fmt: skip
def test_an_unreachable_cluster_is_a_usage_error_not_a_hang(command, tmp_path):
    address = f"127.0.0.1:{_closed_port()}"
    error = _refused(command, address, tmp_path)
    assert f"latentgraph: error: cannot reach the Ray cluster at {address}" in error
    assert not list(tmp_path.glob("out/**/*.png"))  # nothing ran


def _refused(command: list[str], address: str, tmp_path, ray_address: str | None = None,
             env_changes: dict[str, str | None] | None = None,
             script: str | None = None) -> str:  # fmt: skip
    """`command` with `--ray address`, run as a user runs it (with `ray_address` as its
    RAY_ADDRESS, none by default; `env_changes` set, or removed where None; by `script`, a
    Python program taking the CLI's arguments, instead of `python -m latentgraph.cli`): exit 2
    without a traceback or Ray's connect retries; its stderr."""
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    if ray_address is not None:
        env["RAY_ADDRESS"] = ray_address
    for name, value in (env_changes or {}).items():
        env.pop(name, None)
        if value is not None:
            env[name] = value
    cli = ["-m", "latentgraph.cli"] if script is None else ["-c", script]
    out = subprocess.run([sys.executable, *cli, *command, "--ray", address,
                          "--output-dir", str(tmp_path / "out"), *(
                              ["--data-dir", str(tmp_path / "data")] if command[0] == "serve"
                              else [])],
                         capture_output=True, text=True, timeout=60, cwd=tmp_path, env=env)  # fmt: skip
    assert out.returncode == 2, out.stderr
    assert "Traceback" not in out.stderr and "Failed to connect to GCS" not in out.stderr
    return out.stderr


def _ray_nodes_here() -> list[int]:
    """The pids of the Ray nodes running on this machine (their raylet), which `--ray auto`
    would join."""
    import psutil

    found = []
    for proc in psutil.process_iter(["name", "cmdline"]):
        if proc.info["name"] == "raylet" or any(
                Path(part).name == "raylet" for part in proc.info["cmdline"] or []):  # fmt: skip
            found.append(proc.pid)
    return found


@pytest.mark.parametrize("command", [
    ["serve", "--port", "0", "--ray-workers", "1"],
    ["run", TXT2IMG, "--ray-workers", "1"],
])  # fmt: skip
def test_ray_auto_with_no_cluster_here_says_how_to_start_one(command, tmp_path, monkeypatch):
    """Ray's own refusal told the user to set an `--address` flag latentgraph has not. Run
    before this package's runtime starts (`ray_runtime`), which `auto` would join; Ray's
    record of the last `ray start` is looked for in a folder of the test's own (RAY_TMPDIR),
    which stays empty: nothing was started."""
    if _ray_nodes_here():
        pytest.skip("a Ray node runs on this machine: --ray auto would join it")
    ray_tmp = tmp_path / "ray_tmp"
    ray_tmp.mkdir()
    monkeypatch.setenv("RAY_TMPDIR", str(ray_tmp))
    error = _refused(command, "auto", tmp_path)
    assert error == ("latentgraph: error: cannot reach the Ray cluster at auto: no Ray cluster "
                     "runs on this machine (auto joins the one `ray start` started here, or the "
                     "one RAY_ADDRESS names): start its head node (`ray start --head`), give its "
                     "ADDRESS, or give --ray local\n")  # fmt: skip
    assert list(ray_tmp.iterdir()) == [] and not _ray_nodes_here()
    # asked before anything is made, as for an ADDRESS: serve made its data folder's database,
    # input/example.png, output/ and temp/ first
    assert [p.name for p in tmp_path.iterdir()] == ["ray_tmp"]


@pytest.mark.parametrize("command", [
    ["serve", "--port", "0", "--ray-workers", "1"],
    ["run", TXT2IMG, "--ray-workers", "1"],
])  # fmt: skip
def test_ray_auto_with_an_unreachable_ray_address_is_a_usage_error_not_a_hang(command, tmp_path):
    """`--ray auto` joins the cluster RAY_ADDRESS names when it is set (as Ray's own commands
    do): one nobody answers at is refused at once, as `--ray ADDRESS` is (Ray retried for
    ever)."""
    address = f"127.0.0.1:{_closed_port()}"
    error = _refused(command, "auto", tmp_path, ray_address=address)
    assert error.startswith("latentgraph: error: --ray auto joins the cluster RAY_ADDRESS names: "
                            f"cannot reach the Ray cluster at {address} (connection refused)")  # fmt: skip
    assert list(tmp_path.iterdir()) == []  # asked before anything is made


def test_ray_local_starts_its_runtime_here_whatever_ray_address_says(tmp_path):
    """`--ray local` is a runtime started here: with RAY_ADDRESS set (a shell that once
    joined a cluster), Ray joined that address instead and refused the local runtime's CPUs,
    "When connecting to an existing cluster, num_cpus and num_gpus must not be provided"."""
    ray_tmp = Path(tempfile.mkdtemp(prefix="lgray", dir="/tmp"))  # short: Ray's socket paths
    env = {**os.environ, "RAY_ADDRESS": f"127.0.0.1:{_closed_port()}", "RAY_TMPDIR": str(ray_tmp)}
    try:
        out = subprocess.run([sys.executable, "-m", "latentgraph.cli", "run", TXT2IMG, "--ray",
                              "local", "--ray-workers", "1", "--output-dir", str(tmp_path / "out"),
                              "--cache-dir", str(tmp_path / "cache")],
                             capture_output=True, text=True, timeout=300, cwd=tmp_path,
                             env=env)  # fmt: skip
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)
    assert out.returncode == 0, out.stderr
    assert len(list(tmp_path.glob("out/*.png"))) == 1


@pytest.fixture
def web_server():
    """An HTTP/1 server on a free local port (as the Ray dashboard's 8265 is): it accepts
    connections, so only its answer tells it from a Ray head."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("command", [
    ["serve", "--port", "0", "--ray-workers", "1"],
    ["run", TXT2IMG, "--ray-workers", "1"],
])  # fmt: skip
def test_an_address_that_answers_but_not_as_ray_is_a_usage_error_not_a_hang(
    command, web_server, tmp_path
):
    """Ray's own connect retried such an address for many minutes."""
    error = _refused(command, web_server, tmp_path)
    assert f"latentgraph: error: {web_server} answered, but not as a Ray cluster" in error
    assert "(port 6379 by default)" in error


def test_a_running_clusters_head_is_reached(ray_runtime):
    """The check passes Ray's own head: its GCS address, as `ray start --head` prints it."""
    from latentgraph.server.ray_connect import reach_cluster

    reach_cluster(ray_runtime.get_runtime_context().gcs_address)  # raises if it is not


def test_a_ray_client_address_is_told_the_ray_client_port(web_server):
    """ray://HOST:PORT is Ray Client's server, whose port is 10001, not the GCS's 6379."""
    from latentgraph.server.ray_connect import RayUnavailable, reach_cluster

    with pytest.raises(RayUnavailable, match=r"\(the Ray Client server's port, 10001 by default\)"):
        reach_cluster(f"ray://{web_server}")


@pytest.mark.parametrize("answering", [False, True])
def test_serve_refused_for_its_cluster_leaves_no_file_behind(answering, web_server, tmp_path):
    """README: such a refusal comes before anything runs. It came after serve had made the
    data folder's database and users/, and input/example.png, output/ and temp/ in the
    working folder: the cluster is reached first now."""
    address = web_server if answering else f"127.0.0.1:{_closed_port()}"
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    out = subprocess.run([sys.executable, "-m", "latentgraph.cli", "serve", "--port", "0",
                          "--ray", address, "--ray-workers", "1", "--data-dir", "d1"],
                         capture_output=True, text=True, timeout=60, cwd=cwd)  # fmt: skip
    assert out.returncode == 2, out.stderr
    assert f"latentgraph: error: {'' if answering else 'cannot reach the Ray cluster at '}" \
           f"{address}" in out.stderr  # fmt: skip
    assert list(cwd.rglob("*")) == []


@pytest.fixture
def grpc_service():
    """A gRPC server that is not Ray, on a free local port: it serves no method, so it answers
    Ray's calls UNIMPLEMENTED, as any other gRPC service does."""
    import grpc

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=1))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield f"127.0.0.1:{port}"
    server.stop(None)


def test_a_grpc_service_that_is_not_ray_is_a_usage_error_not_a_hang(grpc_service, tmp_path):
    """It passed the check (every gRPC server greets with HTTP/2 SETTINGS), then `ray.init`
    retried for ever, serve's data folder already made: the head must answer a Ray GCS call
    now."""
    error = _refused(["serve", "--port", "0", "--ray-workers", "1"], grpc_service, tmp_path)
    assert f"latentgraph: error: {grpc_service} answered, but not as a Ray cluster" in error
    assert list(tmp_path.iterdir()) == []  # asked before anything is made


# Runs the CLI with a Ray that has no token authentication: its token API taken away, as Ray
# before 2.52 lacks it.
RAY_WITHOUT_TOKENS = """
import sys

import ray._raylet

for name in ("AuthenticationMode", "AuthenticationTokenLoader", "get_authentication_mode"):
    delattr(ray._raylet, name)
from latentgraph.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_a_ray_without_token_authentication_asks_the_address_sending_no_token(
    grpc_service, tmp_path
):
    """Joining by address imported Ray's token API (Ray 2.52 on) unguarded: with an older Ray,
    every `--ray HOST:PORT` ended as `internal error: ImportError` (exit 70). Such a Ray sends
    no token: the address is asked as always, here refused for not answering as Ray."""
    error = _refused(["serve", "--port", "0", "--ray-workers", "1"], grpc_service, tmp_path,
                     script=RAY_WITHOUT_TOKENS)  # fmt: skip
    assert error.startswith(f"latentgraph: error: {grpc_service} answered, but not as a Ray "
                            "cluster"), error  # fmt: skip
    assert list(tmp_path.iterdir()) == []  # asked before anything is made


@pytest.mark.parametrize("token", [None, "not-its-token"])
def test_a_cluster_asking_for_its_token_says_what_to_set(token, ray_runtime, tmp_path):
    """This package's runtime runs with Ray's token authentication (on by default): joined by
    its address without a token (RAY_AUTH_MODE unset: Ray sends none to an address it was
    given), or with another token, Ray printed ~20 lines of C++ warnings for 20 s, then
    "cannot reach the Ray cluster"."""
    if os.environ.get("RAY_AUTH_MODE") != "token":
        pytest.skip("this package's Ray runtime runs without token authentication")
    address = ray_runtime.get_runtime_context().gcs_address
    tokens = {"RAY_AUTH_MODE": None, "RAY_AUTH_TOKEN": None, "RAY_AUTH_TOKEN_PATH": None}
    if token is not None:
        tokens |= {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token}
    error = _refused(["run", TXT2IMG, "--ray-workers", "1"], address, tmp_path,
                     env_changes=tokens)  # fmt: skip
    if token is None:
        assert error == (
            f"latentgraph: error: the Ray cluster at {address} asks for its token (Ray's token "
            "authentication), which Ray sends only to the cluster `--ray auto` finds on this "
            "machine: give --ray auto for that one, or set RAY_AUTH_MODE=token and the "
            "cluster's token in RAY_AUTH_TOKEN (`ray get-auth-token` on its head prints it; "
            "without RAY_AUTH_TOKEN, ~/.ray/auth_token is read)\n")  # fmt: skip
    else:
        assert error.startswith(f"latentgraph: error: the Ray cluster at {address} refused this "
                                "machine's Ray token"), error  # fmt: skip


def test_ray_local_keeps_its_token_file_private(tmp_path):
    """`--ray local`'s processes listen on every interface, guarded by Ray's token alone; Ray
    2.60 writes it to ~/.ray/auth_token with the umask's modes (0644 in a 0755 ~/.ray), so on
    a machine with 0755 homes any account could read it and run code as this one. Both are
    private now: the folder 0700 before Ray writes the token, the file 0600."""
    home, ray_tmp = tmp_path / "home", Path(tempfile.mkdtemp(prefix="lgray", dir="/tmp"))
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in (
        "RAY_ADDRESS", "RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH")}  # fmt: skip
    env |= {"HOME": str(home), "RAY_TMPDIR": str(ray_tmp)}  # Ray's token path follows HOME
    try:
        out = subprocess.run([sys.executable, "-m", "latentgraph.cli", "run", TXT2IMG, "--ray",
                              "local", "--ray-workers", "1", "--set", "steps=1", "--output-dir",
                              str(tmp_path / "out"), "--cache-dir", str(tmp_path / "cache")],
                             capture_output=True, text=True, timeout=300, cwd=tmp_path, env=env,
                             umask=0o022)  # fmt: skip
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)
    assert out.returncode == 0, out.stderr
    token = home / ".ray" / "auth_token"
    assert token.read_text().strip()  # Ray made it: the token the runtime ran with
    assert oct(token.parent.stat().st_mode & 0o777) == "0o700"
    assert oct(token.stat().st_mode & 0o777) == "0o600"


def test_an_existing_token_file_is_made_private(tmp_path, monkeypatch):
    """A token Ray wrote before (an earlier `--ray local`, `ray start`), in a folder and file
    left with the umask's modes: Ray reads it and writes nothing, so it is made private before
    the runtime starts."""
    from latentgraph.server.ray_connect import keep_token_private

    for name in ("RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    folder = tmp_path / ".ray"
    folder.mkdir(mode=0o755)
    (folder / "auth_token").write_text("0" * 64)
    folder.chmod(0o755)
    (folder / "auth_token").chmod(0o644)
    keep_token_private()
    assert oct(folder.stat().st_mode & 0o777) == "0o700"
    assert oct((folder / "auth_token").stat().st_mode & 0o777) == "0o600"
