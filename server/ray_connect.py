"""Joining a Ray cluster (`--ray local|auto|ADDRESS`): the address checked before anything is
made or started (`reach`: its head answers as a Ray GCS within CONNECT_SECONDS, sent the token
`ray.init` would send), where Ray's own connect would retry for minutes; `ray.init` itself
(`connect`), a local runtime's token kept private (`keep_token_private`); which cluster was
joined (`joined_text`). Ray is optional: imported only when asked
for (`import_ray`). The pool of actors on the cluster is `ray_workers.py`'s.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import threading
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

RAY_EXTRA = "pip install 'latentgraph[ray]'"
NAMESPACE = "latentgraph"
# The local runtime (`--ray local`) is kept small: it shares the machine with everything else.
LOCAL_OBJECT_STORE_BYTES = 128 * 2**20
# How long joining a cluster waits for its address to answer (a TCP connection to the head's
# GCS port, and its answer to one GCS call) before giving up: Ray's own connect retries forever
# (Ray 2.60: "Failed to connect to GCS at address ..." every 5 s), and its reconnect timeout
# ends the process without a word.
CONNECT_SECONDS = 10.0
# The GCS call asked of a HOST:PORT (`_gcs_answer`): every Ray GCS serves it (`ray.init` asks
# it first); another gRPC or HTTP/2 service answers UNIMPLEMENTED.
GCS_PROBE_METHOD = "/ray.rpc.NodeInfoGcsService/GetClusterId"


# `--ray auto` where Ray finds no cluster: none started on this machine (`ray start`, a running
# runtime) and no RAY_ADDRESS.
NO_CLUSTER_HERE = ("cannot reach the Ray cluster at auto: no Ray cluster runs on this machine "
                   "(auto joins the one `ray start` started here, or the one RAY_ADDRESS names): "
                   "start its head node (`ray start --head`), give its ADDRESS, or give --ray "
                   "local")  # fmt: skip


class RayUnavailable(RuntimeError):
    """Ray cannot be used: not installed (the message names the extra), or the cluster
    cannot give what was asked."""


def import_ray() -> Any:
    """The `ray` module, or RayUnavailable naming the extra to install."""
    try:
        import ray
    except ImportError as exc:
        raise RayUnavailable(f"--ray needs Ray, which is not installed: {RAY_EXTRA}") from exc
    return ray


# --- the runtime -----------------------------------------------------------------------------


def connect(address: str, num_cpus: int) -> bool:
    """Join the Ray cluster at `address`, or start a local runtime ("local") offering
    `num_cpus` CPUs, small (no dashboard, no usage stats, a small object store). Returns
    whether this call started it (so the caller shuts it down); an already connected process
    (a test session's runtime) is reused. A cluster that does not answer is RayUnavailable
    (`reach_cluster`), never a wait without end."""
    ray = import_ray()
    reach(address)
    if ray.is_initialized():
        return False
    if address == "local":
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        keep_token_private()  # the folder private before Ray writes a token into it
        # address="local", not None: Ray would join the cluster RAY_ADDRESS names instead
        with _sigterm_kept():
            ray.init(address="local", num_cpus=num_cpus, include_dashboard=False,
                     namespace=NAMESPACE, object_store_memory=LOCAL_OBJECT_STORE_BYTES,
                     configure_logging=False)  # fmt: skip
        keep_token_private()  # the token Ray has just written
        return True
    try:
        with _sigterm_kept():
            ray.init(address=address, namespace=NAMESPACE, configure_logging=False)
    except ConnectionError as exc:  # "auto" with no cluster running here, a Ray Client refusal
        if address == "auto":  # Ray's text names a flag of its own commands, not ours
            raise RayUnavailable(NO_CLUSTER_HERE) from None
        raise RayUnavailable(f"cannot reach the Ray cluster at {address}: {exc}") from None
    return True


def keep_token_private() -> None:
    """The local runtime's processes listen on every interface (Ray 2.60 binds its GCS,
    raylet and workers to all of them, whatever node IP it is given), guarded by Ray's token
    alone: whoever reads it can run code as this account. Ray writes it to ~/.ray/auth_token
    (HOME's) with the umask's modes, 0644 in a 0755 ~/.ray, so the folder is made or set
    0700, and the file 0600. A token Ray takes from RAY_AUTH_TOKEN or from the file
    RAY_AUTH_TOKEN_PATH names (Ray reads them first) is the user's to keep; a folder or file
    this account may not change is left as it is."""
    if os.environ.get("RAY_AUTH_TOKEN") or os.environ.get("RAY_AUTH_TOKEN_PATH"):
        return
    # where Ray 2.60 writes it (authentication_token_setup._get_default_token_path) and reads
    # it (AuthenticationTokenLoader: $HOME/.ray/auth_token)
    token = Path.home() / ".ray" / "auth_token"
    with contextlib.suppress(OSError):  # Ray then fails, or not, as it would have
        token.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    for path, mode in ((token.parent, 0o700), (token, 0o600)):
        with contextlib.suppress(OSError):  # not there (Ray has not written it yet), not ours
            path.chmod(mode)


@contextlib.contextmanager
def _sigterm_kept() -> Iterator[None]:
    """`ray.init` installs Ray's C++ failure-signal handler for SIGTERM too (a "*** SIGTERM
    received" dump, then exit status 15): the process's own SIGTERM handler (`run --ray`'s stop
    as after Ctrl-C, `serve`'s orderly shutdown) is put back once Ray has started. Ray keeps
    its handler for the crash signals (SIGSEGV, SIGABRT)."""
    previous = signal.getsignal(signal.SIGTERM)
    try:
        yield
    finally:
        if previous is not None and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, previous)


def reach(address: str) -> None:
    """The one check of `--ray ADDRESS` before anything is made or started (`serve` asks it
    before its folders and database, `connect` before `ray.init`): the cluster it names
    answers (`reach_cluster`), else RayUnavailable. "auto" is the cluster Ray's `ray.init`
    would join: the one RAY_ADDRESS names, else the one running on this machine, found as Ray
    finds it (none: `NO_CLUSTER_HERE`). "local" is a runtime started here: nothing to reach."""
    if address == "local":
        return
    if address != "auto":
        reach_cluster(address)
        return
    if os.environ.get("RAY_ADDRESS"):  # Ray joins it, as `ray` commands do
        try:
            reach_cluster(os.environ["RAY_ADDRESS"])
        except RayUnavailable as exc:
            raise RayUnavailable(f"--ray auto joins the cluster RAY_ADDRESS names: {exc}") from None
        return
    import_ray()
    from ray._private.services import canonicalize_bootstrap_address  # what ray.init asks

    try:
        found = canonicalize_bootstrap_address("auto")
    except ConnectionError:  # Ray's text names a flag of its own commands, not ours
        raise RayUnavailable(NO_CLUSTER_HERE) from None
    if found is not None:
        try:  # Ray sends this machine's token to this cluster only (`_gcs_answer`)
            reach_cluster(found, own_token=True)
        except RayUnavailable as exc:  # a `ray start` record left by a cluster since stopped
            raise RayUnavailable(
                f"--ray auto joins the cluster started on this machine: {exc}"
            ) from None


def reach_cluster(address: str, timeout: float | None = None, *, own_token: bool = False) -> None:
    """Before `ray.init` joins `address` (HOST:PORT or ray://HOST:PORT; "auto" is Ray's to
    find), its head must accept a connection and answer as a Ray GCS (`_gcs_answer`; behind
    ray://, as the gRPC server Ray Client's is: `_answers_grpc`) within `timeout`
    (`CONNECT_SECONDS`): else RayUnavailable, where Ray would retry for many minutes. A GCS
    refusing the token is RayUnavailable saying what to set (`own_token`: the cluster `auto`
    found on this machine, which Ray hands this machine's token). An address without a port is
    left to Ray."""
    target = urllib.parse.urlsplit(address if "://" in address else f"//{address}")
    try:
        host, port = target.hostname, target.port
    except ValueError:  # a port that is no number: Ray says what it expects
        return
    if not host or port is None:
        return
    wait = CONNECT_SECONDS if timeout is None else timeout
    try:
        with socket.create_connection((host, port), timeout=wait) as head:
            if target.scheme == "ray":
                if _answers_grpc(head):
                    return
            elif _gcs_answer(host, port, wait, own_token, address):
                return
    except TimeoutError:
        why = f"no answer within {wait:g} s"
    except OSError as exc:
        why = exc.strerror or str(exc)
    else:  # Ray Client (ray://) listens on its own port
        meant = "the Ray Client server's port, 10001" if target.scheme == "ray" else "port 6379"
        raise RayUnavailable(
            f"{address} answered, but not as a Ray cluster: give the address `ray start --head` "
            f"printed ({meant} by default), not the dashboard's (8265)"
        )
    raise RayUnavailable(f"cannot reach the Ray cluster at {address} ({why.lower()}): start its "
                         "head node (`ray start --head`) or give --ray local")  # fmt: skip


def _uses_tls() -> bool:
    """Whether Ray talks TLS here (`RAY_USE_TLS`, as Ray reads it): a head is then not asked,
    since a plaintext question gets a TLS alert, not an answer."""
    return os.environ.get("RAY_USE_TLS", "0").lower() in ("1", "true")


def _gcs_answer(host: str, port: int, wait: float, own_token: bool, address: str) -> bool:
    """Whether HOST:PORT answers `GCS_PROBE_METHOD` as a Ray GCS does, within `wait` (else
    TimeoutError), sending the token `ray.init` would send: this machine's when Ray's token
    authentication is on here (RAY_AUTH_MODE=token), or, with `own_token` and RAY_AUTH_MODE
    unset, when it has one. A GCS refusing it (Ray 2.60's default token authentication) is
    RayUnavailable saying what to set; Ray itself retried for 20 s, then said "cannot reach". A
    head using TLS (`_uses_tls`) is not asked."""
    if _uses_tls():
        return True
    grpc = import_grpc()
    sent = _ray_token(own_token)
    target = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    with grpc.insecure_channel(target) as channel:
        call = channel.unary_unary(GCS_PROBE_METHOD, request_serializer=bytes,
                                   response_deserializer=bytes)  # fmt: skip
        try:
            call(b"", timeout=wait, metadata=sent)
        except grpc.RpcError as exc:
            code = exc.code()
            if code == grpc.StatusCode.DEADLINE_EXCEEDED:
                raise TimeoutError from None
            if code == grpc.StatusCode.UNAUTHENTICATED:
                raise RayUnavailable(_token_refused(address, bool(sent))) from None
            return False  # UNIMPLEMENTED (another gRPC service), an HTTP/1 server's answer
    return True


def _ray_token(own_token: bool) -> tuple[tuple[str, str], ...]:
    """The token header `ray.init` sends to a cluster it joins: this machine's token (from
    RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH or ~/.ray/auth_token) when RAY_AUTH_MODE=token, or when
    `own_token` (the cluster `auto` found here) and RAY_AUTH_MODE is unset; else none."""
    # Ray's private token API, all of it there from Ray 2.53 (pyproject's floor); a Ray without
    # token authentication has no token to send, and `ray.init` sends none: neither does this
    try:
        from ray._raylet import (
            AuthenticationMode,
            AuthenticationTokenLoader,
            get_authentication_mode,
        )

        token_mode, loader = AuthenticationMode.TOKEN, AuthenticationTokenLoader.instance()
    except (ImportError, AttributeError):
        return ()
    mode = os.environ.get("RAY_AUTH_MODE")
    wanted = get_authentication_mode() == token_mode or (own_token and mode is None)
    if not wanted or not loader.has_token(ignore_auth_mode=True):
        return ()
    return tuple(loader.get_token_for_http_header().items())


def _token_refused(address: str, sent: bool) -> str:
    """What to set when the cluster at `address` refused to be joined without its token."""
    if sent:
        return (f"the Ray cluster at {address} refused this machine's Ray token (from "
                "RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH or ~/.ray/auth_token): give the token its "
                "head uses (`ray get-auth-token` prints it there) in RAY_AUTH_TOKEN")  # fmt: skip
    return (f"the Ray cluster at {address} asks for its token (Ray's token authentication), "
            "which Ray sends only to the cluster `--ray auto` finds on this machine: give --ray "
            "auto for that one, or set RAY_AUTH_MODE=token and the cluster's token in "
            "RAY_AUTH_TOKEN (`ray get-auth-token` on its head prints it; without RAY_AUTH_TOKEN, "
            "~/.ray/auth_token is read)")  # fmt: skip


def import_grpc() -> Any:
    """The `grpc` module (grpcio, which the `ray` extra installs with Ray Client), or
    RayUnavailable naming the extra."""
    try:
        import grpc
    except ImportError as exc:
        raise RayUnavailable(f"--ray ADDRESS needs grpcio (Ray Client's gRPC), which is not "
                             f"installed: {RAY_EXTRA}") from exc  # fmt: skip
    return grpc


# What an HTTP/2 client sends first (RFC 9113, 3.4): the preface and an empty SETTINGS frame.
_HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0])
_HTTP2_SETTINGS = 4  # the frame type a server's own preface starts with


def _answers_grpc(head: socket.socket) -> bool:
    """Whether the server on `head` answers an HTTP/2 preface with its SETTINGS frame, as
    every gRPC server does: the Ray Client server behind ray:// speaks gRPC, while an HTTP/1
    server (the dashboard's port, a web app) answers with text. A head using TLS
    (`_uses_tls`) is not asked."""
    if _uses_tls():
        return True
    head.sendall(_HTTP2_PREFACE)
    header = b""
    while len(header) < 9:  # a frame header: length (3 bytes), type, flags, stream id
        chunk = head.recv(9 - len(header))
        if not chunk:
            return False
        header += chunk
    return header[3] == _HTTP2_SETTINGS


# --- the joined cluster ----------------------------------------------------------------------


def cluster_address(address: str) -> str:
    """Where the joined cluster answers, for the pool to watch (`RayWorkerPool._watch`): Ray
    Client's server for a ray:// address (the GCS address it would give is the cluster's
    inside view), else the GCS this process is connected to."""
    if address.startswith("ray://"):
        return address
    return import_ray().get_runtime_context().gcs_address


def joined_text(address: str) -> str:
    """Which cluster this process joined (`address`: `cluster_address`'s), for the one line
    that says so (a machine may run several): "joined the Ray cluster at 192.0.2.2:6379 (2
    node(s), 16 CPU and 2 GPU)"."""
    ray = import_ray()
    nodes = sum(1 for node in ray.nodes() if node.get("Alive"))
    total = ray.cluster_resources()
    resources = resources_text(total.get("CPU", 0), total.get("GPU", 0))
    return f"joined the Ray cluster at {address} ({nodes} node(s), {resources})"


def resources_text(cpus: float, gpus: float) -> str:
    """CPUs and GPUs (an actor's, the cluster's, its free ones) as every message says them:
    "16 CPU and 2 GPU"."""
    return f"{cpus:g} CPU and {gpus:g} GPU"
