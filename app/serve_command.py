"""`latentgraph serve` (the ComfyUI-compatible server, its workers local or on Ray) and
`latentgraph submit` (a workflow queued on one), and the auth token both read."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .arguments import (
    add_cache_bound_args,
    add_device_args,
    add_limit_args,
    add_models_args,
    add_nodes_dir_arg,
    add_ray_args,
    at_least,
    cache_bounds,
    check_cache_folders,
    check_devices,
    check_folders,
    check_nodes_dirs,
    check_ray_args,
    default_folder,
    devices_arg,
    limit_values,
    models_dirs,
    parse_assignments,
    print_plugin_failures,
    read_options,
    require_ray,
)
from .exits import EXIT_OK, EXIT_UNREACHABLE, SIGNAL_EXITS, UserError
from .workflow_input import refuse_run, workflow_file

if TYPE_CHECKING:  # the server's modules are imported by the command that starts it
    from latentgraph.server.api_info import RecentLogs


class _Refused(argparse.Action):
    """A flag this command does not take but a user may well give (another program's, or one
    another command takes): refused with why and what does its work (`why`), never taken, not
    in --help. `serve --listen [IP]`, ComfyUI's flag (its bare `--listen` binds every
    interface, which needs a token here); `submit --nodes-dir DIR` (the server's decides)."""

    def __init__(self, option_strings: list[str], dest: str, why: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs="?", help=argparse.SUPPRESS, **kwargs)
        self.why = why

    def __call__(self, parser: Any, namespace: Any, values: Any, option: Any = None) -> None:
        raise argparse.ArgumentError(self, self.why)


def _allowed_host(text: str) -> str:
    """An argparse type: `--allow-host NAME` as `server.hosts.allowed_host` reads it, the rule
    a request's Host is read by; refused when no Host could ever match it."""
    from latentgraph.graph.problems import quoted
    from latentgraph.server.hosts import allowed_host

    name = allowed_host(text)
    if name is None:
        raise argparse.ArgumentTypeError(
            f"expected a host name or IP address without a port (e.g. studio.lan), got {quoted(text)}"
        )
    return name


def _proxy_addresses(text: str) -> list[str]:
    """An argparse type: `--forwarded-allow-ips LIST`, the addresses uvicorn believes a
    proxy's X-Forwarded-* headers from: IP addresses and networks separated by commas, or `*`
    (every client). uvicorn takes any other entry as a name no client address ever equals, so
    a typo (`10.0.0.1/8`, `proxy.lan`) trusted nobody, silently: refused here."""
    import ipaddress

    from latentgraph.graph.problems import quoted

    entries = [entry.strip() for entry in text.split(",")]
    if entries == ["*"]:
        return entries
    for entry in entries:
        try:
            ipaddress.ip_network(entry)  # an address is a network of one
        except ValueError:
            raise argparse.ArgumentTypeError(
                "expected IP addresses or networks separated by commas (e.g. "
                f"127.0.0.1,10.0.0.0/8), or * for every client; got {quoted(entry)}"
            ) from None
    return entries


# Why the token belongs in $LATENTGRAPH_AUTH_TOKEN, not on a command line: `ps -o args= -p PID`
# shows any process's arguments to every account, its environment (/proc/PID/environ) only to
# its owner.
COMMAND_LINE_SHOWN = "every account on this machine can read a command line (ps)"


def add_serve_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The `serve` subcommand, on `build_parser`'s subparsers."""
    p = sub.add_parser("serve", help="start the ComfyUI-compatible server and editor")
    p.add_argument("--host", default="127.0.0.1", help="default 127.0.0.1: this machine only, "
                   "but every account on it (on a shared machine, set "
                   "$LATENTGRAPH_AUTH_TOKEN)")  # fmt: skip
    p.add_argument("--listen", action=_Refused, why="is ComfyUI's flag; latentgraph's is --host "
                   "ADDRESS (default 127.0.0.1; --host 0.0.0.0 for every interface, which needs "
                   "a token of at least 16 characters, $LATENTGRAPH_AUTH_TOKEN or --auth-token "
                   "TOKEN, or --insecure)")  # fmt: skip
    p.add_argument("--port", type=at_least(0, at_most=65535), default=8188,
                   help="default 8188; 0: a free port (the log says which)")  # fmt: skip
    p.add_argument("--auth-token", metavar="TOKEN", help="require this token of every client (Authorization: "
                   "Bearer TOKEN, or ?token=TOKEN once in the editor's address; at least 16 "
                   "characters on a non-loopback --host; default: $LATENTGRAPH_AUTH_TOKEN). "
                   f"Prefer the variable: {COMMAND_LINE_SHOWN}")  # fmt: skip
    p.add_argument("--data-dir", type=Path,
                   help="the queue and history, the editor's settings and saved workflows, "
                   "nothing else: outputs, inputs and temp files go to --output-dir, --input-dir "
                   "and --temp-dir, the settings and workflows to --user-dir when given "
                   "(default: the user data folder, or $LATENTGRAPH_DATA_DIR); made private "
                   "(0700) when it does not exist")  # fmt: skip
    p.add_argument("--user-dir", type=Path, metavar="DIR",
                   help="the editor's saved workflows and settings, laid out as ComfyUI's user "
                   "folder (DIR/default/workflows, DIR/default/comfy.settings.json): "
                   "--user-dir ~/ComfyUI/user uses a ComfyUI install's in place (default: "
                   "users/ in --data-dir)")  # fmt: skip
    where = "relative to the working folder, not in --data-dir"
    p.add_argument("--output-dir", type=Path, default=default_folder("--output-dir"),
                   help=f"saved images (default: ./output, {where})")  # fmt: skip
    p.add_argument("--input-dir", type=Path, default=default_folder("--input-dir"),
                   help=f"uploads and LoadImage's files (default: ./input, {where})")  # fmt: skip
    p.add_argument("--temp-dir", type=Path, default=default_folder("--temp-dir"),
                   help=f"previews, removed at the next start when latentgraph made the "
                   f"folder (default: ./temp, {where})")  # fmt: skip
    add_models_args(p)
    add_nodes_dir_arg(p)
    add_device_args(p)
    p.add_argument(
        "--workers", type=at_least(1), metavar="N",
        help="worker processes running prompts (default: one per device)",
    )  # fmt: skip
    p.add_argument(
        "--devices", metavar="DEV,DEV", type=devices_arg,
        default=[], help="devices the workers run on, e.g. cuda:0,cuda:1 (default: each visible GPU, "
        "else --device)",
    )  # fmt: skip
    add_ray_args(p, "workers")
    p.add_argument("--previews", action="store_true", help="send denoise previews to clients")
    p.add_argument("--no-cache", action="store_true", help="do not use the disk cache")
    p.add_argument("--cache-dir", type=Path,
                   help="disk cache folder, shared by every worker, as run's (default: user "
                   "cache dir)")  # fmt: skip
    add_cache_bound_args(p)
    p.add_argument(
        "--insecure", action="store_true",
        help="allow a non-loopback --host without --auth-token (anyone who can reach the port "
        "can run workflows and read outputs)",
    )  # fmt: skip
    p.add_argument("--max-queue", type=at_least(1), default=1000,
                   help="prompts queued or running (default 1000); one more is refused with 429")  # fmt: skip
    p.add_argument("--max-history", type=at_least(1), default=10_000, metavar="N",
                   help="finished prompts kept in the history; when one more ends, the oldest "
                   "is deleted (default 10000, as ComfyUI)")  # fmt: skip
    p.add_argument("--interrupt-grace", type=at_least(0, float), default=10.0, metavar="SECONDS",
                   help="after an interrupt, how long a running node has to stop before its "
                   "worker is killed, models and all (default 10)")  # fmt: skip
    p.add_argument("--max-prompt-nodes", type=at_least(1), default=250_000,
                   help="nodes per prompt; larger prompts are refused with 413 (default 250000)")  # fmt: skip
    add_limit_args(p)
    p.add_argument("--max-body-mb", type=at_least(1), default=64,
                   help="request and upload size (default 64 MB)")  # fmt: skip
    p.add_argument("--max-extra-data-mb", type=at_least(0), default=8,
                   help="a prompt's extra_data, e.g. the editor's workflow; 0: none accepted "
                   "(default 8 MB)")  # fmt: skip
    p.add_argument("--allow-host", action="append", default=[], metavar="NAME", type=_allowed_host,
                   help="also answer requests for this Host name (localhost, loopback addresses "
                   "and --host are always answered; others are refused against DNS rebinding)")  # fmt: skip
    p.add_argument("--forwarded-allow-ips", metavar="LIST", type=_proxy_addresses,
                   help="the reverse proxy's addresses or networks, separated by commas, whose "
                   "X-Forwarded-For and X-Forwarded-Proto are believed; * believes every client "
                   "(default: $FORWARDED_ALLOW_IPS, else 127.0.0.1,::1: a proxy on this machine; "
                   'docs/reliability.md, "Behind a reverse proxy")')  # fmt: skip


def add_submit_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The `submit` subcommand, on `build_parser`'s subparsers."""
    p = sub.add_parser("submit", help="queue a workflow on a running server and show progress")
    p.add_argument("workflow", help="workflow file: latentgraph YAML/JSON or ComfyUI JSON "
                   "(read here, run there)")  # fmt: skip
    p.add_argument("--server", default="http://127.0.0.1:8188", metavar="URL",
                   help="the `latentgraph serve` to run it on (default http://127.0.0.1:8188)")  # fmt: skip
    p.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="NAME=VALUE",
        help="override a workflow param (repeatable)",
    )  # fmt: skip
    p.add_argument("--output-dir", type=Path, default=default_folder("--output-dir"),
                   help="where to download the files the run saved (default: ./output)")  # fmt: skip
    p.add_argument("--auth-token", metavar="TOKEN", help="the token the server was started "
                   "with (default: the --server URL's ?token=, else $LATENTGRAPH_AUTH_TOKEN). "
                   f"Prefer the variable: {COMMAND_LINE_SHOWN}, the --server URL too")  # fmt: skip
    p.add_argument("--json", action="store_true", help="print events as JSON lines on stdout")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress output")
    p.add_argument("--nodes-dir", action=_Refused, why="is serve's flag, not submit's: the "
                   "server's own --nodes-dir decides which nodes exist")  # fmt: skip


TOKEN_VARIABLE = "LATENTGRAPH_AUTH_TOKEN"


def _auth_token(
    given: str | None, carried: str | None = None, carrier: str = ""
) -> tuple[str | None, str]:
    """The token `serve` or `submit` uses and where it came from, as their messages name it:
    --auth-token when given (an empty one too: what `--auth-token "$TOKEN"` gives with TOKEN
    unset, which `serve` refuses), else the token `carrier` carries (`submit --server
    URL?token=`), else $LATENTGRAPH_AUTH_TOKEN (set but empty: no token, as unset)."""
    if given is not None:
        return given, "--auth-token"
    if carried is not None:
        return carried, carrier
    return os.environ.get(TOKEN_VARIABLE) or None, TOKEN_VARIABLE


def _refuse_comfy_user_folder(data: Path, users: Path | None) -> None:
    """`--data-dir` naming a ComfyUI user folder (its default user's saved workflows or
    settings in it), the install holding one (`~/ComfyUI`: user/default/...) or its default
    user's folder (`~/ComfyUI/user/default`): a usage error naming the folder `--user-dir`
    takes, unless that is the `--user-dir` given (then the database there is what the user
    asked for). Served as a data folder, its workflows would not be shown and the queue
    database and a users/ folder would be made in the ComfyUI install."""
    from latentgraph.server.api_user import SETTINGS_FILE
    from latentgraph.server.config import DEFAULT_USER

    # (the user folder, what --data-dir then is, what is given as --user-dir)
    layouts = [(data, "a ComfyUI user folder", "it"),
               (data / "user", "a ComfyUI install", "its user folder")]  # fmt: skip
    if data.name == DEFAULT_USER:
        layouts.append((data.parent, "a ComfyUI user folder's default user", "the user folder "
                        "holding it"))  # fmt: skip
    for folder, what, whose in layouts:
        for name in (f"{DEFAULT_USER}/workflows", f"{DEFAULT_USER}/{SETTINGS_FILE}"):
            held = folder / name
            if held.exists():
                if users is not None and users.resolve() == folder.resolve():
                    return
                raise UserError(f"--data-dir {data}: {what} (it holds "
                                f"{held.relative_to(data).as_posix()}); to show and save its "
                                f"workflows and settings in place, give {whose} as --user-dir "
                                f"{folder}, and --data-dir (the queue database) another folder "
                                "or none")  # fmt: skip


def cmd_serve(args: argparse.Namespace) -> int:
    from latentgraph.graph.paths import DATA_DIR_ENV, data_dir
    from latentgraph.server.config import ServerConfig, auth_token_rule
    from latentgraph.server.hosts import address_problem, is_loopback_bind
    from latentgraph.server.run import serve

    from .wiring import prepare_server, worker_setup

    check_ray_args(args)
    data = ("--data-dir", args.data_dir) if args.data_dir else (DATA_DIR_ENV, data_dir())
    check_folders([data, ("--output-dir", args.output_dir),
                   ("--input-dir", args.input_dir), ("--temp-dir", args.temp_dir)]
                  + ([("--user-dir", args.user_dir)] if args.user_dir else []))  # fmt: skip
    check_cache_folders(args.cache_dir)
    if args.data_dir:
        _refuse_comfy_user_folder(args.data_dir, args.user_dir)
    check_nodes_dirs(args.nodes_dir)
    loopback = is_loopback_bind(args.host)
    unusable = None if loopback else address_problem(args.host)  # a loopback one resolved
    if unusable:
        raise UserError(f"--host {args.host}: {unusable}")
    token, source = _auth_token(args.auth_token)
    refusal, warning = auth_token_rule(token, args.host, loopback=loopback,
                                       insecure=args.insecure, source=source)  # fmt: skip
    if refusal:
        raise UserError(refusal)
    if warning:
        print(f"latentgraph: warning: {warning}", file=sys.stderr)
    if source == "--auth-token":  # loopback too: then other accounts are all the token keeps out
        print(f"latentgraph: warning: --auth-token: {COMMAND_LINE_SHOWN}, the token in it too; set "
              f"{TOKEN_VARIABLE} instead", file=sys.stderr)  # fmt: skip
    memory_bytes, disk_bytes = cache_bounds(args)
    config = ServerConfig(
        host=args.host,
        port=args.port,
        auth_token=token,
        data_dir=args.data_dir or data_dir(),
        users_dir=args.user_dir,
        output_dir=args.output_dir,
        input_dir=args.input_dir,
        temp_dir=args.temp_dir,
        models_dirs=models_dirs(args),
        nodes_dirs=list(args.nodes_dir),
        device=args.device,
        dtype=args.dtype,
        workers=args.workers,
        devices=args.devices,
        ray=args.ray,
        ray_workers=args.ray_workers,
        ray_cpus_per_actor=args.ray_cpus_per_actor,
        ray_gpus_per_actor=args.ray_gpus_per_actor,
        options=read_options(args.options),
        previews=args.previews,
        disk_cache=not args.no_cache,
        cache_dir=args.cache_dir,
        cache_memory_bytes=memory_bytes,
        cache_disk_bytes=disk_bytes,
        max_queue=args.max_queue,
        max_history=args.max_history,
        interrupt_grace_seconds=args.interrupt_grace,
        max_prompt_nodes=args.max_prompt_nodes,
        **limit_values(args),
        max_body_bytes=args.max_body_mb * 2**20,
        max_upload_bytes=args.max_body_mb * 2**20,
        max_extra_data_bytes=args.max_extra_data_mb * 2**20,
        allow_hosts=list(args.allow_host),
        forwarded_allow_ips=args.forwarded_allow_ips,
    )
    from latentgraph.graph.files import FileWriteError
    from latentgraph.server.ray_connect import RayUnavailable, reach
    from latentgraph.server.run import CannotListen, WorkersLost
    from latentgraph.server.store import StoreOpenError

    if args.ray:
        if args.workers or args.devices:
            raise UserError("--workers and --devices set local worker processes; with --ray, "
                            "give --ray-workers N (devices come from the Ray cluster)")  # fmt: skip
        require_ray()
    else:  # on Ray the devices are the cluster's
        flag = "--devices" if args.devices else "--device"
        check_devices(flag, args.devices or [args.device], isolated=True)

    def prepare(logs: RecentLogs) -> Any:
        """Once the port is bound (a port taken leaves no folder made); a plugin that failed
        to load said on stderr and in the editor's Logs panel."""
        failures: list = []
        registry = prepare_server(config, errors=failures)
        print_plugin_failures(failures)
        for failure in failures:
            logs.keep_printed(str(failure))
        return registry

    # Refusals at start (a cluster nobody answers at, a port taken, a folder whose disk refuses
    # example.png or the Ray pool's marker) are usage errors, before any worker starts.
    try:
        if args.ray:  # before a folder or the database is made, so a refusal leaves none
            reach(args.ray)  # the rule `connect` asks too ("auto" as Ray finds it)
        stopped_by = serve(config, prepare=prepare, workers=worker_setup(config.nodes_dirs))
    except (RayUnavailable, CannotListen, FileWriteError, StoreOpenError) as exc:
        raise UserError(str(exc)) from None
    except WorkersLost as exc:  # stopped in order (the log said so): try again later
        print(f"latentgraph: error: {exc}; the prompts are kept for the next start",
              file=sys.stderr)  # fmt: skip
        return EXIT_UNREACHABLE
    return SIGNAL_EXITS.get(stopped_by, EXIT_OK)  # the process then ends by that signal


def cmd_submit(args: argparse.Namespace) -> int:
    from latentgraph.graph.problems import WorkflowError
    from latentgraph.server import submit as remote
    from latentgraph.server.run import RedactToken

    from .wiring import node_registry

    bad_url = remote.server_url_problem(args.server)
    if bad_url:  # a usage error, not an unreachable server; shown as submit shows the URL
        raise UserError(f"--server {RedactToken().redact(args.server)}: {bad_url}")
    token, source = _auth_token(args.auth_token, remote.url_token(args.server), remote.URL_TOKEN)
    try:
        workflow = workflow_file(args.workflow)  # as `run` names a file that is not there
    except WorkflowError as exc:  # and refuses it: `--json` readers get `workflow_invalid`
        return refuse_run(exc.problems, args.json)
    check_folders([("--output-dir", args.output_dir)])  # before the run, not at its download
    return remote.submit(
        workflow,
        args.server,
        overrides=parse_assignments(args.overrides, "--set"),
        output_dir=args.output_dir,
        auth_token=token,
        token_source=source,
        as_json=args.json,
        quiet=args.quiet,
        registry=node_registry(errors=[]),  # the workflow read here too, to place a failure:
    )  # the installed nodes; a pack failing to load is the server's to say (its own nodes)
