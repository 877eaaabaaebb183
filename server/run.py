"""`serve(config)`: run the app with uvicorn (websocket implementation: `websockets-sansio`)."""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import re
import signal
import socket
import sys
import threading
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote_plus

from .config import ServerConfig
from .hosts import is_loopback_bind, no_such_address
from .middleware import TOKEN_PARAMETER
from .workers import WorkerSetup

if TYPE_CHECKING:  # the app's modules are imported when it starts
    from .api_info import RecentLogs

# What stands where a token was.
REDACTED = "<redacted>"
# A query parameter in a log line: its raw name and value, after `?`, `&` or `;`.
_QUERY_PARAMETER = re.compile(r"(?<=[?&;])([^=&;?#\s]*)=([^&;\s]*)")


def redact_query(text: str) -> str:
    """`text` with the value of every query parameter named `token` replaced by `<redacted>`,
    whatever the name's encoding (`%74oken=` authenticates as `token=` does: the middleware
    reads the decoded query), its case or surrounding blanks."""

    def hide(found: re.Match[str]) -> str:
        name = unquote_plus(found[1]).strip().lower()
        if name != TOKEN_PARAMETER or found[2].startswith(REDACTED):  # hidden already
            return found[0]
        return f"{found[1]}={REDACTED}"

    return _QUERY_PARAMETER.sub(hide, text) if "=" in text else text


# A URL's credentials (`scheme://user:password@`), the part before the host.
_USERINFO = re.compile(r"(?<=://)[^/?#@\s]+@")


def token_pattern(token: str) -> re.Pattern[str]:
    """Matches `token` however a URL spells it: each character as itself or percent-encoded
    (its UTF-8 bytes, hex in either case), a space also as `+`."""

    def spellings(char: str) -> str:
        encoded = "".join(
            "%" + "".join(f"[{d.lower()}{d.upper()}]" if d.isalpha() else d for d in f"{b:02X}")
            for b in char.encode()
        )
        plus = "|\\+" if char == " " else ""
        return f"(?:{re.escape(char)}|{encoded}{plus})"

    return re.compile("".join(spellings(c) for c in token))


class RedactToken(logging.Filter):
    """Hides `?token=...` in uvicorn's log lines (the access log prints every request's path
    and query; the editor is opened with `?token=`; the websocket lines print theirs too), and
    `token`, the server's own, wherever it stands in a line, raw or percent-encoded: a request
    that spells it where the guard does not read it (`?token%3DTOKEN`, `?%E2%28token=TOKEN`,
    a path) is refused, but its log line must not show the token. A URL's credentials
    (`http://user:password@host`) are hidden too (`submit --server` may be given them).
    Each string argument is redacted in place, so a formatter that unpacks the arguments
    (uvicorn's AccessFormatter takes five) gets as many as before; a message without
    arguments is redacted itself (one with arguments is a format whose `%s` must stay)."""

    def __init__(self, token: str | None = None) -> None:
        super().__init__()
        self.token = token
        self._token = token_pattern(token) if token else None

    def redact(self, text: str) -> str:
        text = _USERINFO.sub(f"{REDACTED}@", redact_query(text))  # http://user:password@host
        return self._token.sub(REDACTED, text) if self._token else text

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.args and isinstance(record.msg, str):
            record.msg = self.redact(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(self.redact(a) if isinstance(a, str) else a for a in record.args)
        elif isinstance(record.args, Mapping):
            record.args = {k: self.redact(a) if isinstance(a, str) else a
                           for k, a in record.args.items()}  # fmt: skip
        return True


# How the server's log lines look, latentgraph's and uvicorn's alike: a time to read a line by.
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def log_config() -> dict[str, Any]:
    """uvicorn's logging (its `log_config`): its start-up, error and access lines in
    `LOG_FORMAT`, on stderr as latentgraph's own are (its default printed them without a
    time, the access lines on stdout). Its loggers keep their own handler, as uvicorn's
    default does: the Logs panel (`RecentLogs.attach`) finds them so."""
    handler = {"class": "logging.StreamHandler", "formatter": "latentgraph",
               "stream": "ext://sys.stderr"}  # fmt: skip
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"latentgraph": {"format": LOG_FORMAT}},
        "handlers": {"stderr": handler},
        "loggers": {
            "uvicorn": {"handlers": ["stderr"], "level": "INFO", "propagate": False},
            "uvicorn.error": {"level": "INFO"},
            "uvicorn.access": {"handlers": ["stderr"], "level": "INFO", "propagate": False},
        },
    }


def uvicorn_config(app: Any, config: ServerConfig, log_level: str = "info") -> Any:
    """uvicorn's settings for this app, with the token kept out of its logs."""
    import uvicorn

    settings = uvicorn.Config(app, host=config.host, port=config.port, log_level=log_level,
                              timeout_graceful_shutdown=5, **uvicorn_options(config))  # fmt: skip
    for name in ("uvicorn.access", "uvicorn.error"):  # after uvicorn configured its logging
        logger = logging.getLogger(name)  # one filter, for this server's token
        for old in [f for f in logger.filters if isinstance(f, RedactToken)]:
            logger.removeFilter(old)
        logger.addFilter(RedactToken(config.auth_token))
    return settings


def uvicorn_options(config: ServerConfig) -> dict[str, Any]:
    """The uvicorn settings every start of the app shares (`serve`, the tests, the benches).

    The websocket implementation is `websockets-sansio` (uvicorn's default since 0.50; the
    older `websockets` one is deprecated), which writes a frame in 4 us of event-loop time where
    the older one took 7 (docs/benchmarks.md), with the frames of one event-loop turn written
    together (`ws_protocol.py`): a run sends one frame per node. No permessage-deflate: run
    messages are small JSON objects that compress little, and compressing each one cost more
    event-loop time than writing it.

    HTTP is parsed by httptools and the event loop is uvloop's where it exists (not on
    Windows): with the pure-Python h11 parser and asyncio's loop a 100-node run through the
    server took 0.03-0.6 ms longer, alternated side by side (docs/benchmarks.md). uvicorn's
    httptools protocol with deadlines for a request's headers and body (`http_protocol.py`):
    idle connections no longer pile up until no descriptor is left.

    uvicorn's log lines look as latentgraph's own do (`log_config`). It believes a reverse
    proxy's X-Forwarded-For and X-Forwarded-Proto from the addresses `serve
    --forwarded-allow-ips` names (None: uvicorn's default, $FORWARDED_ALLOW_IPS or loopback)."""
    from .http_protocol import deadline_protocol
    from .ws_protocol import TurnBufferedWebSockets

    http = deadline_protocol(config.header_timeout_seconds, config.body_stall_seconds)
    return {"ws": TurnBufferedWebSockets, "ws_per_message_deflate": False,
            "ws_max_size": config.max_body_bytes, "http": http,
            "loop": "asyncio" if sys.platform == "win32" else "uvloop",
            "forwarded_allow_ips": config.forwarded_allow_ips,
            "log_config": log_config()}  # fmt: skip


class CannotListen(Exception):
    """The server cannot listen where it was told (a port in use, an address this machine does
    not have): found before the app is made or any worker starts."""


class WorkersLost(Exception):
    """The server stopped in order because its pool lost every worker for good (`Lost`: a Ray
    cluster stopped answering); `serve` raises it after the orderly shutdown, the prompts kept
    in the queue database for the next start."""


BACKLOG = 2048  # uvicorn's default


def listen(host: str, port: int) -> list[socket.socket]:
    """Listening sockets on `host`:`port`, bound as uvicorn binds a host and port (asyncio's
    `create_server`): one per address `host` resolves to (localhost: 127.0.0.1 and ::1), an
    IPv6 one IPv6-only, SO_REUSEADDR on POSIX. Port 0: a free port, the one picked for the
    first address. Bound and listening here, before the app starts and then handed to uvicorn,
    so a port taken is said at once (`CannotListen`), and nothing can take it in between."""
    try:
        infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM,
                                   flags=socket.AI_PASSIVE)  # fmt: skip
    except socket.gaierror as exc:
        raise CannotListen(f"--host {host}: {no_such_address(exc)}") from None
    sockets: list[socket.socket] = []
    try:
        for family, kind, proto, _, address in dict.fromkeys(infos):  # each address once
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            if os.name == "posix":
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            if port == 0 and len(sockets) > 1:
                address = (address[0], sockets[0].getsockname()[1], *address[2:])
            try:
                sock.bind(address)
                sock.listen(BACKLOG)
            except OSError as exc:
                raise CannotListen(_cannot_listen(host, address[1], exc)) from None
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    return sockets


def _cannot_listen(host: str, port: int, exc: OSError) -> str:
    if exc.errno == errno.EADDRINUSE:
        return f"port {port} on {host} is in use (another server?); choose another with --port"
    if exc.errno == errno.EADDRNOTAVAIL:
        return f"--host {host}: not an address of this machine; give one of its own (or 0.0.0.0)"
    if exc.errno == errno.EACCES:
        return (f"port {port} on {host}: permission denied (ports below 1024 need privileges); "
                "choose another with --port")  # fmt: skip
    return f"cannot listen on {host} port {port}: {exc.strerror or exc}"


def _server_class(on_signal: Callable[[], None]) -> Any:
    """uvicorn's Server, saying where it listens once started: handed sockets, uvicorn does
    not (it expects a process manager to have said it). `on_signal` runs as soon as SIGTERM
    or Ctrl-C arrives, before uvicorn's graceful shutdown; the signals that came are kept
    (`signals`), not raised again once it is done as uvicorn does, so the orderly shutdown
    finishes and the exit does not depend on the shell's SIGINT disposition. `serve` returns
    the stop signal; the command ends by it (`latentgraph.exits.end_process`)."""
    import uvicorn
    from uvicorn.server import HANDLED_SIGNALS

    class Server(uvicorn.Server):
        def __init__(self, config: uvicorn.Config) -> None:
            super().__init__(config)
            self.signals: list[int] = []

        def handle_exit(self, sig: int, frame: Any) -> None:
            self.signals.append(sig)
            on_signal()
            super().handle_exit(sig, frame)

        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            if threading.current_thread() is not threading.main_thread():
                yield  # signals reach the main thread's handlers only
                return
            previous = {sig: signal.signal(sig, self.handle_exit) for sig in HANDLED_SIGNALS}
            try:
                yield
            finally:
                for sig, handler in previous.items():
                    signal.signal(sig, handler)

        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets=sockets)
            for sock in sockets or []:
                address, port = sock.getsockname()[:2]
                shown = f"[{address}]" if sock.family == socket.AF_INET6 else address
                logging.getLogger("uvicorn.error").info(
                    "Uvicorn running on http://%s:%d (Press CTRL+C to quit)", shown, port
                )

    return Server


def serve(
    config: ServerConfig,
    *,
    registry: Any = None,
    workers: WorkerSetup | None = None,
    log_level: str = "info",
    prepare: Callable[[RecentLogs], Any] | None = None,
) -> int | None:
    """Start the server and block until it is stopped (Ctrl-C / SIGTERM); return the signal
    that stopped it (SIGTERM once one came, else SIGINT), after the orderly shutdown (the
    prompt running ended, the workers stopped, the store closed). A pool that lost every
    worker for good (a Ray cluster gone) stops it the same way, then `WorkersLost`.
    `registry` and `workers` as for `create_app`; `prepare`, when given, makes the registry
    once the port is bound (`latentgraph serve`'s: plugins, example.png, the temp folder's
    previews), given the Logs panel's lines to keep there what it prints
    (`RecentLogs.keep_printed`). The panel holds the server's lines from then on: the start-up
    lines printed before the app runs as well.

    A refusal at start leaves nothing behind: an existing data folder's queue database is
    locked first (`StoreInUse`: another server uses this data folder, said before the port is
    bound); then the port is bound (`CannotListen`: a port in use, an address not on this
    machine), before `prepare`, before a new data folder is made, before the app is made or any
    worker starts. A start refused later (a full disk: the lock's pid or the queue database
    cannot be written) removes the data folder it made, and the lock file it made
    (`DatabaseLock.abandon`), as the app removes its folders and the store its files."""
    from latentgraph.graph.files import remove_folders

    from .api_info import RecentLogs
    from .app import create_app
    from .store import DatabaseLock

    lock = DatabaseLock(config.db_path) if config.data_dir.is_dir() else None
    sockets: list[socket.socket] = []
    made: list[Path] = []  # a new data folder and its parents
    app = None  # made: the start went through
    logs = RecentLogs()
    try:
        sockets = listen(config.host, config.port)
        # (before the panel is attached: basicConfig sets up a root logger with no handler only)
        logging.basicConfig(level=getattr(logging, log_level.upper(), logging.INFO),
                            format=LOG_FORMAT)  # fmt: skip
        logs.attach()
        if prepare is not None:
            registry = prepare(logs)
        if lock is None:  # a new data folder, made only now that the port is ours
            made = config.make_data_dir()  # private: every prompt is kept in it
            lock = DatabaseLock(config.db_path)  # held until the store closes
        app = create_app(config, registry=registry, workers=workers, lock=lock, logs=logs)
        if not is_loopback_bind(config.host) and not config.auth_token:
            logging.getLogger("latentgraph.server").warning(
                "listening on %s without --auth-token: anyone who can reach this port can run "
                "workflows and read outputs", config.host)  # fmt: skip
        server_class = _server_class(on_signal=app.state.lg.dispatcher.shutting_down)
        server = server_class(uvicorn_config(app, config, log_level))
        logs.attach()  # uvicorn's loggers, configured now: its start-up lines
        dispatcher = app.state.lg.dispatcher

        def stop_for_lost_workers() -> None:  # from a pool thread: uvicorn's loop polls it
            server.should_exit = True

        dispatcher.on_lost = stop_for_lost_workers
        server.run(sockets=sockets)
        if dispatcher.lost is not None:
            raise WorkersLost(dispatcher.lost)
        came = server.signals
        return signal.SIGTERM if signal.SIGTERM in came else came[0] if came else None
    finally:
        logs.detach()
        for sock in sockets:
            sock.close()
        if app is None:  # a refused start: the lock file it made gone, then its folders
            if lock is not None:
                lock.abandon()
            remove_folders(made)
        elif lock is not None:  # the store released it, unless the app was never started
            lock.release()
