"""`latentgraph submit`: queue a workflow on a running server, show its progress, fetch outputs.

The websocket messages are turned back into engine events, so the same renderers as
`latentgraph run` (rich bars or JSON lines) draw a remote run.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import ssl
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from latentgraph.graph import events as ev
from latentgraph.graph.files import SAVING_PREFIX, file_records, write_new
from latentgraph.graph.formats import load_text, workflow_text
from latentgraph.graph.numbered_files import (
    link_numbered,
    name_and_suffix,
    next_number,
    number_in,
    numbered_name,
)
from latentgraph.graph.problems import (
    WorkflowError,
    labelled,
    printable,
    problem_line,
    problem_row,
    quoted,
)

from .errors import ApiError
from .hosts import is_loopback_name
from .messages import NODE_ERROR, NODE_FINISHED, NODE_WARNING, reported_inputs
from .middleware import TOKEN_PARAMETER
from .run import RedactToken
from .safepath import stored_path

if TYPE_CHECKING:
    from websockets.sync.client import ClientConnection

    from latentgraph.graph.declare import Registry
    from latentgraph.graph.model import Graph

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_UNREACHABLE = 0, 1, 2, 3
EXIT_INTERRUPTED, EXIT_TERMINATED = 130, 143
# The exit code of a submit each signal stopped, as `run`'s (the process then ends by it)
SIGNAL_EXITS = {signal.SIGINT: EXIT_INTERRUPTED, signal.SIGTERM: EXIT_TERMINATED}


class _Signalled(BaseException):
    """Ctrl-C or SIGTERM while `submit` runs (`_stopped_by_signals`), raised into whatever it
    is doing as Python raises KeyboardInterrupt for Ctrl-C: SIGTERM (`docker stop`, a CI
    timeout) stops it as Ctrl-C does, asking the server to stop the prompt rather than
    leaving it running. Not an `Exception`, so no step's `except Exception` takes it for a
    lost connection."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum

    def code(self) -> int:
        return SIGNAL_EXITS[self.signum]

    def said(self) -> str:
        """How messages say it, as `run` does: "interrupted", "interrupted by SIGTERM"."""
        return "interrupted by SIGTERM" if self.signum == signal.SIGTERM else "interrupted"


@contextlib.contextmanager
def _stopped_by_signals() -> Iterator[None]:
    """Ctrl-C and SIGTERM raise `_Signalled` while the block runs (in the main thread only,
    where Python runs signal handlers; a signal the process ignores, as a shell's `&` job
    ignores SIGINT, stays ignored); the handlers before are put back after."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def raise_it(signum: int, _frame: object) -> None:
        raise _Signalled(signum)

    previous = {sig: signal.getsignal(sig) for sig in SIGNAL_EXITS}
    for sig, handler in previous.items():
        if handler != signal.SIG_IGN:
            signal.signal(sig, raise_it)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def proxy_for(server_url: str) -> str | None:
    """The proxy `submit` reaches the server at `server_url` through, or None: connect
    directly. The one rule for its HTTP requests and its websocket alike. A server on this
    machine (`is_loopback_name`: localhost, 127.0.0.0/8, ::1) is always reached directly, so
    a down proxy cannot hide it and the token never passes through the proxy. Any other host
    gets the environment's proxy for its scheme (`http_proxy`/`HTTP_PROXY`,
    `https_proxy`/`HTTPS_PROXY`, as urllib reads them) unless `no_proxy`/`NO_PROXY` names it.
    A proxy without a scheme (`proxy.lan:3128`) is http://, as curl reads it."""
    parts = urllib.parse.urlsplit(server_url)
    host = parts.hostname or ""
    if is_loopback_name(host) or urllib.request.proxy_bypass(parts.netloc.rpartition("@")[2]):
        return None
    proxy = urllib.request.getproxies().get(parts.scheme)
    if not proxy:
        return None
    return proxy if "://" in proxy else f"http://{proxy}"


class _Http:
    """The server's HTTP requests, through `proxy` (`proxy_for`'s choice; None: directly), the
    token in each one's Authorization header."""

    def __init__(self, base: str, token: str | None, proxy: str | None) -> None:
        self.base = base.rstrip("/")
        self.token = token
        self.proxy = proxy
        scheme = urllib.parse.urlsplit(self.base).scheme
        handler = urllib.request.ProxyHandler({scheme: proxy} if proxy else {})
        self._opener = urllib.request.build_opener(handler)

    def request(self, method: str, path: str, body: Any = None) -> tuple[int, bytes]:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base + path, data=data, method=method)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        if self.token:
            req.add_header("Authorization", f"Bearer {self.token}")
        try:
            with self._opener.open(req, timeout=60) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()


class PromptEvents:
    """Rebuilds engine events from one prompt's websocket messages."""

    def __init__(self, prompt_id: str, prompt: dict[str, Any], render) -> None:
        self.pid = prompt_id
        self.types = {k: v.get("class_type", "") for k, v in prompt.items()}
        self.render = render
        self.running: str | None = None
        self.started: dict[str, float] = {}
        self.ui: dict[str, dict] = {}
        self.executed: list[str] = []
        self.cached: list[str] = []
        self.failures: list[ev.NodeFailed] = []
        self.status: str | None = None
        self.began = False  # the server said it started the run (`execution_start`)
        self.created = time.monotonic()  # the run's time is measured from queueing

    def _finish_running(
        self, seconds: float | None = None, summary: list[str] | None = None
    ) -> None:
        """The running node ran: its time and outputs as the server's `node_finished` told
        them, else (a server that sends none) its time as seen from here and no outputs."""
        nid, self.running = self.running, None
        if nid is not None:
            self.executed.append(nid)
            took = time.monotonic() - self.started.get(nid, 0) if seconds is None else seconds
            self.render(ev.NodeFinished(self.pid, node_id=nid, node_type=self.types.get(nid, ""),
                                        seconds=took, summary=summary or [],
                                        ui=self.ui.get(nid)))  # fmt: skip

    def handle(self, kind: str, data: dict[str, Any]) -> bool:
        """Feed one message; True when the prompt is over (final `executing`)."""
        pid = self.pid
        if kind == "execution_start":
            self.began = True
            self.render(ev.RunStarted(pid, nodes=list(self.types)))
        elif kind == "execution_cached":
            self.cached = list(data.get("nodes", []))
            self.render(ev.NodesCached(pid, nodes=self.cached))
        elif kind == "executing":
            self._finish_running()
            node = data.get("node")
            if node is None:
                return True
            self.running = node
            self.started[node] = time.monotonic()
            self.render(ev.NodeStarted(pid, node_id=node, node_type=self.types.get(node, "")))
        elif kind == "progress":
            self.render(ev.NodeProgress(pid, node_id=str(data.get("node")),
                                        value=int(data.get("value", 0)), max=int(data.get("max", 0))))  # fmt: skip
        elif kind == "executed":
            node = str(data.get("node"))
            self.ui[node] = data.get("output") or {}
            if node != self.running:  # a cached output node reports its files too
                self.render(ev.NodeFinished(pid, node_id=node, node_type=self.types.get(node, ""),
                                            cached=True, ui=self.ui[node]))  # fmt: skip
        elif kind == NODE_FINISHED:  # the node that ran, as the engine described its outputs
            if str(data.get("node_id")) == self.running:
                self._finish_running(float(data.get("seconds") or 0.0),
                                     [str(line) for line in data.get("summary") or ()])  # fmt: skip
        elif kind == NODE_WARNING:  # what a node said (`ctx.warn`), at its place as `run` says it
            node = str(data.get("node_id") or "")
            self.render(ev.NodeWarning(pid, node_id=node, message=str(data.get("message", "")),
                                       node_type=str(data.get("node_type") or "")
                                       or self.types.get(node, ""),
                                       input_name=data.get("input_name") or None))  # fmt: skip
        elif kind == NODE_ERROR:  # a node failed; the run goes on with what does not need it
            self._failed(data)
        elif kind == "execution_error":  # the run's end, naming its first failure
            if self.running in (data.get("executed") or ()):  # it ran before the run ended
                self._finish_running()
            failed = {f.node_id for f in self.failures if f.node_id}
            if str(data.get("node_id") or "") not in failed:  # not told by a `node_error`
                self._failed(data)
            self.running = None
            self._end("failed")
        elif kind == "execution_interrupted":
            if self.running in (data.get("executed") or ()):  # stopped after it, not in it
                self._finish_running()
            self.running = None
            node = data.get("node_id")
            self._end("interrupted", interrupted=[str(node)] if node is not None else [])
        elif kind == "execution_success":
            self._finish_running()
            self._end("success")
        return False

    def _failed(self, data: dict[str, Any]) -> None:
        """A failure as the server said it (an `execution_error`'s fields): drawn as `run`
        draws a node's failure; a node failing is no node that ran."""
        node = str(data.get("node_id") or "")  # "" (or an old server's null): no node
        if node and node == self.running:
            self.running = None
        failure = ev.NodeFailed(self.pid, node_id=node,
                                node_type=str(data.get("node_type") or ""),
                                message=str(data.get("exception_message", "")),
                                exception_type=str(data.get("exception_type", "")),
                                traceback=list(data.get("traceback") or []),
                                inputs=reported_inputs(data.get("current_inputs")),
                                user_error=bool(data.get("user_error")),
                                input_name=str(data.get("input_name") or "") or None)  # fmt: skip
        self.failures.append(failure)
        self.render(failure)

    def _end(self, status: str, interrupted: list[str] | None = None) -> None:
        """The run's end, every node in one list as a local run's summary has them: a run that
        failed or was interrupted skipped the nodes that neither ran, failed nor came from
        cache."""
        self.status = status
        failed = list(dict.fromkeys(f.node_id for f in self.failures if f.node_id))
        interrupted = interrupted or []
        executed = [n for n in self.executed if n not in failed]  # a server that told no
        accounted = {*executed, *self.cached, *failed, *interrupted}  # failure till the end
        skipped = [n for n in self.types if n not in accounted] if status != "success" else []
        self.render(ev.RunFinished(self.pid, status=status, executed=executed,
                                   cached=list(self.cached), failed=failed,
                                   interrupted=interrupted, skipped=skipped,
                                   seconds=time.monotonic() - self.created))  # fmt: skip


def server_url_problem(server_url: str) -> str | None:
    """Why `server_url` is no address of a server (`submit --server`), or None: an http or
    https URL naming a host (and a port that is a number), checked before any connection."""
    try:
        parts = urllib.parse.urlsplit(server_url)
        parts.port  # noqa: B018 - raises ValueError for a port that is no number in range
    except ValueError as exc:
        return f"{exc}; expected http://HOST:PORT"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "expected an http:// or https:// URL with a host, e.g. http://127.0.0.1:8188"
    return None


URL_TOKEN = "the --server URL's token parameter"


def url_token(server_url: str) -> str | None:
    """The token a server's address carries (`http://HOST:PORT/?token=TOKEN`, the editor's
    address as README gives it), read as the server reads it; None without one."""
    try:
        query = urllib.parse.urlsplit(server_url).query
    except ValueError:
        return None
    return (urllib.parse.parse_qs(query).get(TOKEN_PARAMETER) or [None])[0]


def _base(server_url: str) -> str:
    """The server's address requests are made under: `server_url` without query or fragment."""
    parts = urllib.parse.urlsplit(server_url)
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


def _ws_url(server_url: str, client_id: str) -> str:
    """The websocket's address: no token in it (`_connect` sends it in a header)."""
    parts = urllib.parse.urlsplit(server_url)
    scheme = "wss" if parts.scheme == "https" else "ws"
    query = urllib.parse.urlencode({"clientId": client_id})
    path = parts.path.rstrip("/") + "/ws"
    return urllib.parse.urlunsplit((scheme, parts.netloc, path, query, ""))


def _refusal(server_url: str, token: str | None, source: str, status: int, raw: bytes,
             hidden: Callable[[str], str]) -> str | None:  # fmt: skip
    """What to say when the server answered but refused the request for who sent it, not what:
    a token it requires, missing or wrong (HTTP 401; the token named by `source`, where it came
    from), or a Host or Origin it does not accept (403, with its reason, `hidden` here). A usage
    error, not an unreachable server; None for other answers. `server_url` as `submit` shows it
    (its token hidden). The line is printed as it is (`_Say.refuse`): its advice's placeholder,
    `?token=TOKEN`, is a query's token to the redaction rule, which printed `?token=<redacted>`."""
    if status == 401:
        if token:
            return (f"the server at {server_url} refused the token from {source}: give the one "
                    "the server was started with")  # fmt: skip
        return (f"the server at {server_url} requires a token: give it in the environment "
                "variable LATENTGRAPH_AUTH_TOKEN, with --auth-token TOKEN or in the --server URL "
                "(?token=TOKEN, as the editor's address)")  # fmt: skip
    if status == 403:
        try:
            reason = json.loads(raw)["error"]["message"]
        except (ValueError, KeyError, TypeError):
            reason = "HTTP 403"
        return f"the server at {server_url} refused the request: {hidden(str(reason))}"
    return None


def _queue_full(server_url: str, answer: Any) -> str:
    """The line for a server whose queue is full (HTTP 429 `queue_full`): the prompt was not
    queued, and may be once the server has worked through its queue. Exit 3, as an unreachable
    server: the server cannot take the prompt now, try again later (README, "Exit codes")."""
    error = answer.get("error") if isinstance(answer, dict) else None
    reason = error.get("message") if isinstance(error, dict) else None
    return (
        f"the server at {server_url} did not queue the workflow: "
        f"{reason or 'its queue is full'}; try again once the queue has room"
    )


class _Stop(Exception):
    """Ends `submit` early: the step that raises it has printed why; `code` is the exit code."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


@dataclass(frozen=True)
class _Say:
    """How `submit` speaks to the user, one place for every step: each line on stderr, hidden
    first (an exception's text may quote the websocket's address, the token percent-encoded in
    it, the --server URL its credentials (user:password@): the rule the server's log uses, every
    spelling of the token); the server named as `shown`, the token by where it came from. With
    `as_json` (`submit --json`) what ends it is a JSON line on stdout too, as `run --json`
    says it: a refused workflow's `workflow_invalid`, any other stop before the run's end a
    `submit_stopped` (`stop`), so the stream always ends with a line a script can key on."""

    hidden: Callable[[str], str]
    shown: str  # the --server URL as messages show it
    token: str | None
    token_source: str  # --auth-token, LATENTGRAPH_AUTH_TOKEN or `URL_TOKEN`
    as_json: bool = False

    def err(self, text: str) -> None:
        print(self.hidden(text), file=sys.stderr)

    def line(self, event: dict[str, Any], hide: bool = True) -> None:
        """One JSON line on stdout (`--json`), its text hidden as the lines on stderr are
        (`hide` False: hidden already, as `stop`'s `refusal`)."""
        text = json.dumps(event)
        print(self.hidden(text) if hide else text, flush=True)

    def stop(self, reason: str, text: str, code: int, events: PromptEvents | None = None,
             history: str | None = None, *, refusal: bool = False,
             label: str = "error: ") -> _Stop:  # fmt: skip
        """Say why submit stops before the run's end, prefixed as the CLI's other errors
        (`label`; `refusal`: a line `_refusal` made, the server's words in it hidden there
        already, its advice, `?token=TOKEN`, printed as written), and with `--json` its `submit_stopped`
        line: `reason` (unreachable, refused, queue_full, server_error, lost, interrupted),
        the message, the prompt (None: not queued) and its history's address. Returns the
        `_Stop` to raise, ending submit with `code`."""
        line = f"latentgraph: {label}{text}"
        print(line if refusal else self.hidden(line), file=sys.stderr)
        if self.as_json:
            self.line({"event": "submit_stopped", "reason": reason, "message": text,
                       "prompt_id": events.pid if events is not None else None,
                       "history": history}, hide=not refusal)  # fmt: skip
        return _Stop(code)

    def invalid(self, lines: list[str], rows: list[dict[str, Any]]) -> _Stop:
        """A workflow refused before it ran (here, or by the server): each problem's line on
        stderr, as `run` prints them, and with `--json` the `workflow_invalid` line `run
        --json` gives, `rows` as `problem_row` makes them. Returns the `_Stop` (exit 2)."""
        for text in lines:
            self.err(text)
        if self.as_json:
            self.line({"event": "workflow_invalid", "problems": rows})
        return _Stop(EXIT_USAGE)

    def refusal(self, status: int, raw: bytes) -> str | None:
        """`_refusal` for this server and token: why it refused who sent a request, or None."""
        return _refusal(self.shown, self.token, self.token_source, status, raw, self.hidden)


def _handshake_refusal(http: _Http, say: _Say) -> str | None:
    """Why the websocket handshake was refused, asked of an HTTP request: the same guards answer
    it with their status and message (None: the server let it through, the refusal was
    something else). A server before 2026-12 refused a websocket with a bare 403 and no body."""
    try:
        status, raw = http.request("GET", "/features")
    except (urllib.error.URLError, OSError):
        return None
    return say.refusal(status, raw)


def _download(http: _Http, events: PromptEvents, output_dir: Path, say: _Say,
              quiet: bool) -> None:  # fmt: skip
    """Fetch every file the run saved into `output_dir` (`_keep`: never over a file there),
    each said as its local name (and the server's, when they differ): a line on stderr, or
    with `--json` a `downloaded` line. A file the server named as no upload may be named
    (`stored_path`: `.`, a folder up, NUL, ESC) is a warning line, and the others download."""
    prompt_id = events.pid
    status, raw = http.request("GET", f"/history/{urllib.parse.quote(prompt_id)}")
    entry = json.loads(raw).get(prompt_id, {}) if status == 200 else {}
    for out in (entry.get("outputs") or {}).values():
        for record in file_records(out if isinstance(out, dict) else None):  # any kind of file
            name, sub = str(record.get("filename", "")), str(record.get("subfolder") or "")
            kind = str(record.get("type", "output"))
            try:  # kept in output_dir as an upload is in its folder: `.`, `..`, NUL, ESC refused
                rel = stored_path(output_dir, sub, name)
            except ApiError as exc:
                named = "/".join(part for part in (sub, name) if part)
                say.err(f"latentgraph: warning: not downloading {quoted(named)}: the server's "
                        f"{exc.message}")  # fmt: skip
                continue
            query = urllib.parse.urlencode({"filename": name, "subfolder": sub, "type": kind})
            code, data = http.request("GET", f"/view?{query}")
            if code != 200:
                say.err(f"latentgraph: warning: could not download {printable(str(rel))}: "
                        f"HTTP {code}")  # fmt: skip
                continue
            target, kept = _keep(data, output_dir.joinpath(*rel.parts))
            if say.as_json:
                say.line({"event": "downloaded", "run_id": prompt_id, "path": str(target),
                          "filename": name, "subfolder": sub, "type": kind, "kept": kept})  # fmt: skip
            elif not quiet:
                on_server = PurePosixPath(kind, sub, name)  # as the run's "saved on the server:"
                notes = ["already downloaded"] if kept else []
                notes += [f"on the server: {on_server}"] if target.name != name else []
                said = f" ({'; '.join(notes)})" if notes else ""
                say.err(printable(f"{'kept' if kept else 'downloaded'} {target}{said}"))


def _keep(data: bytes, target: Path) -> tuple[Path, bool]:
    """Where a downloaded file's `data` is kept, and whether it was there already: at `target`
    (the server's name) when that is free; else under the next free number of its name, as a
    save node numbers its files (`link_numbered`): the file there, the user's or a local run's
    (`--output-dir` defaults to `run`'s ./output), is never replaced. A file holding these very
    bytes under either name (a cached run's, downloaded before) is that one: nothing written."""
    name, suffix = name_and_suffix(target.name)
    same = _holding(data, target, name, suffix)
    if same is not None:
        return same, True

    def place(tmp: Path) -> Path:
        try:
            os.link(tmp, target)
            return target
        except FileExistsError:
            counter = next_number(os.listdir(target.parent), name, suffix)
            counter = link_numbered(tmp, target.parent, name, suffix, counter)
            return target.parent / numbered_name(name, counter, suffix)

    placed = write_new(target.parent, lambda tmp: tmp.write_bytes(data), place,
                       prefix=SAVING_PREFIX, suffix=suffix, target=lambda: target)  # fmt: skip
    return placed, False


def _holding(data: bytes, target: Path, name: str, suffix: str) -> Path | None:
    """The file at `target`, or among the numbered files of its name beside it, that holds
    `data` (its size compared first), or None."""
    try:
        there = sorted(os.listdir(target.parent))
    except OSError:  # no folder yet (the download makes it), or none to read
        return None
    for filename in [target.name, *(f for f in there if number_in(f, name, suffix) is not None)]:
        path = target.parent / filename
        try:
            if path.is_file() and path.stat().st_size == len(data) and path.read_bytes() == data:
                return path
        except OSError:  # unreadable: not the same file, and not replaced either
            continue
    return None


def _connect(say: _Say, http: _Http, ws_url: str) -> ClientConnection:
    """The websocket, opened before the workflow is queued so that none of its run's messages
    is missed. A server that refuses this client is a usage error (exit 2), told with the
    reason its guards give; any other failure to connect means an unreachable server (exit 3).
    The token goes in the Authorization header, as every HTTP request's does: in the address
    (`/ws?token=`) a reverse proxy's access log kept it in clear."""
    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect

    auth = {"Authorization": f"Bearer {http.token}"} if http.token else None
    try:
        return connect(ws_url, open_timeout=10, max_size=2**26, additional_headers=auth,
                       proxy=http.proxy)  # fmt: skip
    except Exception as exc:  # noqa: BLE001 - any failure to connect means unreachable,
        refused = isinstance(exc, InvalidStatus) and (  # unless the server refused this client
            _handshake_refusal(http, say)
            or say.refusal(exc.response.status_code,
                           exc.response.body or b"")  # the HTTP request failed: the bare status
        )  # fmt: skip
        if refused:
            raise say.stop("refused", refused, EXIT_USAGE, refusal=True) from None
        raise say.stop("unreachable", _unreachable(say, http, exc), EXIT_UNREACHABLE) from None


def _queue(say: _Say, http: _Http, body: dict[str, Any]) -> dict[str, Any]:
    """POST /latentgraph/run: the server's answer (`prompt_id`, the `prompt` it runs) once it
    queued the workflow. A refusal is told as the server words it, with its exit code: a
    refusal of who sent it 2 (a usage error), a full queue 3 (try again later), the workflow's
    problems 2 (HTTP 400, 413), any other answer 1."""
    try:
        status, raw = http.request("POST", "/latentgraph/run", body)
    except (urllib.error.URLError, OSError) as exc:
        raise say.stop("unreachable", _unreachable(say, http, exc), EXIT_UNREACHABLE) from None
    try:
        answer = json.loads(raw)
    except ValueError:
        raise say.stop("server_error", f"the server answered HTTP {status} with something "
                       "that is not JSON", EXIT_FAILED) from None  # fmt: skip
    refused = say.refusal(status, raw)
    if refused:
        raise say.stop("refused", refused, EXIT_USAGE, refusal=True)
    if status == 429:  # no run, and not the workflow's fault: the server is busy
        raise say.stop("queue_full", _queue_full(say.shown, answer), EXIT_UNREACHABLE)
    if status in (400, 413):
        raise say.invalid(*_sent_problems(answer, status))
    if status != 200:
        error = answer.get("error") if isinstance(answer, dict) else None
        message = error.get("message") if isinstance(error, dict) else None
        raise say.stop("server_error", f"the server at {say.shown} answered HTTP {status}"
                       + (f": {message}" if message else ""), EXIT_FAILED)  # fmt: skip
    return answer


def _unreachable(say: _Say, http: _Http, exc: Exception) -> str:
    """Why the server could not be reached, naming what was not: the server, or the proxy on
    the way (`http.proxy`), by its address (no credentials) and where it was set, so a
    refusing proxy is not blamed on the server."""
    if http.proxy is None:
        return f"cannot reach the server at {say.shown}: {exc}"
    parts = urllib.parse.urlsplit(http.base)
    names = (f"{parts.scheme}_proxy", f"{parts.scheme.upper()}_PROXY")  # urllib's order
    source = next((f"${n}" for n in names if os.environ.get(n)), "the system's proxy settings")
    proxy = urllib.parse.urlsplit(http.proxy)
    proxy = f"{proxy.scheme}://{proxy.netloc.rpartition('@')[2]} (from {source})"
    direct = f"NO_PROXY={parts.hostname} connects to it directly"
    reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
    # refused, no route, no such name, no answer: the connection to the proxy; not TLS with
    # the server (through the proxy's tunnel), nor the proxy's refusal to connect on
    unreached = isinstance(reason, OSError) and not isinstance(reason, ssl.SSLError)
    if unreached and (reason.errno is not None or isinstance(reason, TimeoutError)):
        return (f"cannot reach the proxy {proxy} on the way to the server at {say.shown}: "
                f"{reason}; {direct}")  # fmt: skip
    return f"cannot reach the server at {say.shown} through the proxy {proxy}: {exc}; {direct}"


def _sent_problems(answer: Any, status: int) -> tuple[list[str], list[dict[str, Any]]]:
    """The workflow's problems as the server sent them (HTTP 400, 413): each one's line, as
    `run` prints a problem (`error: PLACE: ...`, the server's text), and its row as `run
    --json` gives one (`problem_row`'s keys, from the server's: `node_id`, `input_name`); a
    ComfyUI-style `node_errors` entry and a bare error message alike."""
    lines: list[str] = []
    rows: list[dict[str, Any]] = []
    answer = answer if isinstance(answer, dict) else {}
    for p in answer.get("problems") or []:
        severity = p.get("severity") or "error"
        lines.append(labelled(severity, p.get("text") or p.get("message", "")))
        rows.append({"severity": severity, "code": p.get("code"), "message": p.get("message"),
                     "node": p.get("node_id"), "input": p.get("input_name"),
                     "location": p.get("location")})  # fmt: skip
    for nid, entry in (answer.get("node_errors") or {}).items():
        for e in entry.get("errors", []):
            lines.append(labelled("error", f"node {nid!r}: {e.get('message')}"))
            rows.append({"severity": "error", "code": e.get("type"), "message": e.get("message"),
                         "node": nid, "input": (e.get("extra_info") or {}).get("input_name"),
                         "location": None})  # fmt: skip
    if not lines:
        error = answer.get("error") if isinstance(answer.get("error"), dict) else {}
        message = error.get("message") or f"HTTP {status}"
        lines.append(labelled("error", message))
        rows.append({"severity": "error", "code": error.get("type"), "message": message,
                     "node": None, "input": None, "location": None})  # fmt: skip
    return lines, rows


def _renderer(as_json: bool, quiet: bool, graph: Graph | None) -> Any:
    """What draws the run, as `latentgraph run` draws one: JSON lines, or rich progress bars
    naming the files as the server names them, and placing a node's failure where `graph` (the
    workflow as read here, None when it could not be) wrote the node or the input it refused."""
    if as_json:
        from latentgraph.graph.console import JsonLines

        return JsonLines(graph=graph, quiet=quiet)
    from latentgraph.graph.console import RichProgress

    return RichProgress(quiet=quiet, on_server=True, graph=graph)


def _watch(socket: ClientConnection, http: _Http, say: _Say, events: PromptEvents) -> None:
    """Feed this prompt's websocket messages to `events`, which draws them, until the run is
    over (the final `executing`); other prompts' messages and binary previews are skipped.
    Ctrl-C or SIGTERM (`_Signalled`) interrupts the prompt on the server too (exit 130 or
    143, the process then ending by that signal); a connection lost mid-run is
    exit 1, as a closed stdout's (`_lost`: not 3, the workflow was queued). The renderer is
    closed either way. A closed stdout (`--json | head`) is raised as the BrokenPipeError it
    is, which `cli.main` words (exit 1), not as a lost connection."""
    render = events.render
    closed: BrokenPipeError | None = None
    try:
        while True:
            message = socket.recv()
            if isinstance(message, bytes):
                continue
            msg = json.loads(message)
            data = msg.get("data") or {}
            if data.get("prompt_id") != events.pid:
                continue
            try:
                if events.handle(msg.get("type", ""), data):
                    break
            except BrokenPipeError as exc:  # stdout's reader went away, not the server
                closed = exc
                break
    except _Signalled as signalled:
        http.request("POST", "/interrupt", {"prompt_id": events.pid})
        render.close()
        raise say.stop("interrupted", f"{signalled.said()}; the server was asked to stop prompt "
                       f"{events.pid}", signalled.code(), events, _history(say, http, events),
                       label="") from None  # fmt: skip
    except Exception as exc:  # noqa: BLE001 - connection lost mid-run
        render.close()
        raise say.stop("lost", _lost(say, http, events, exc), EXIT_FAILED, events,
                       _history(say, http, events)) from None  # fmt: skip
    render.close()
    if closed is not None:
        raise closed


# The close codes of a server that is stopping: going away, service restart (uvicorn's, at
# SIGTERM or Ctrl-C).
_SERVER_STOPPING = (1001, 1012)


def _lost(say: _Say, http: _Http, events: PromptEvents, exc: Exception) -> str:
    """Why `submit` stopped watching a prompt the server had queued (it printed "lost the
    connection to the server" and exited 3, "not queued", with no prompt id): the server
    stopping (a close saying so) or the connection lost, the prompt named with its history's
    address. A running prompt a stop ended is in that history (interrupted by shutdown); a
    queued one waits in the queue database, and runs when the server starts again."""
    from websockets.exceptions import ConnectionClosed

    history = _history(say, http, events)
    state = "running" if events.began else "queued"
    closed = exc.rcvd if isinstance(exc, ConnectionClosed) else None
    if closed is None or closed.code not in _SERVER_STOPPING:
        return (f"lost the connection to the server at {say.shown} while prompt {events.pid} "
                f"was {state} ({exc}); it may go on there: {history}")  # fmt: skip
    after = ("how it ended is in the server's history" if events.began else
             "it stays queued there, and runs when the server starts again")  # fmt: skip
    return (f"the server at {say.shown} stopped ({exc}) while prompt {events.pid} was {state}; "
            f"{after}: {history}")  # fmt: skip


def _history(say: _Say, http: _Http, events: PromptEvents) -> str:
    """The address of the prompt's history entry, as messages show it (no token)."""
    return say.hidden(f"{http.base}/history/{urllib.parse.quote(events.pid)}")


def _exit_code(events: PromptEvents) -> int:
    """The run's exit code as `run` gives it: a run that failed only on its inputs is the
    user's to fix (exit 2); success 0, interrupted 130, any other end 1."""
    if events.status == "failed" and ev.input_errors_only(events.failures):
        return EXIT_USAGE
    return {"success": EXIT_OK, "interrupted": EXIT_INTERRUPTED}.get(
        events.status or "", EXIT_FAILED
    )


def _local_graph(text: str, source: str, overrides: dict[str, Any],
                 registry: Registry | None) -> Graph | None:  # fmt: skip
    """The workflow as the server reads it (the name it is sent under, the same `--set`s), read
    here only to place a node's failure as `run` places it (`--set steps=1000 ($steps at
    FILE:46:12)`); None when it cannot be read here: the server says why, and its doubts are
    the server's to say, not printed twice."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return load_text(text, source, overrides, registry).graph
        except WorkflowError:
            return None


def submit(
    path: Path | str,
    server_url: str,
    overrides: dict[str, Any] | None = None,
    *,
    output_dir: Path | str = "output",
    auth_token: str | None = None,
    token_source: str = "--auth-token",
    as_json: bool = False,
    quiet: bool = False,
    client_id: str | None = None,
    registry: Registry | None = None,
) -> int:
    """Queue `path` on the server at `server_url`; returns a `latentgraph` exit code.
    `auth_token` came from `token_source` (messages name it: --auth-token,
    LATENTGRAPH_AUTH_TOKEN or `URL_TOKEN`); messages never show it. `registry` reads the
    workflow here too (`_local_graph`), for the places of the run's failures."""
    hidden = RedactToken(auth_token).redact
    say = _Say(hidden, hidden(server_url), auth_token, token_source, as_json)
    path = Path(path)
    bad_url = server_url_problem(server_url)
    if bad_url:  # a flag refused, as `run --json` refuses one: no JSON line
        say.err(f"latentgraph: error: --server {say.shown}: {bad_url}")
        return EXIT_USAGE
    server_url = _base(server_url)  # a query (the editor's ?token=) is no part of any request
    try:  # as `run` reads it: a PNG's workflow chunk; the size limit, UTF-8 with line:column
        text = workflow_text(path)
    except WorkflowError as exc:
        return say.invalid([problem_line(p) for p in exc.problems],
                           [problem_row(p) for p in exc.problems]).code  # fmt: skip
    graph = _local_graph(text, str(path), overrides or {}, registry)
    output_dir = Path(output_dir)
    client_id = client_id or uuid.uuid4().hex
    http = _Http(server_url, auth_token, proxy_for(server_url))
    # the params are the command line's --set: the server names them so, as `run` does
    body = {"workflow": text, "params": overrides or {}, "client_id": client_id,
            "name": str(path), "given_as": "--set"}  # fmt: skip
    try:
        with _stopped_by_signals():
            with _connect(say, http, _ws_url(server_url, client_id)) as socket:
                answer = _queue(say, http, body)
                events = PromptEvents(answer["prompt_id"], answer.get("prompt") or {},
                                      _renderer(as_json, quiet, graph))  # fmt: skip
                _watch(socket, http, say, events)
            _download(http, events, output_dir, say, quiet)
    except _Stop as stop:
        return stop.code
    except _Signalled as signalled:  # before the prompt was queued, or while downloading
        say.err(f"latentgraph: {signalled.said()}")
        return signalled.code()
    return _exit_code(events)
