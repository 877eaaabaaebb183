"""Server settings: one dataclass, `ServerConfig`, that `latentgraph serve` fills from its flags,
`run --ray` (app/ray_run.py) for the Ray pool its runs go to, and tests and benchmarks directly."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from latentgraph.graph import paths
from latentgraph.graph.cache import DEFAULT_DISK_BYTES, DEFAULT_MEMORY_BYTES
from latentgraph.graph.context import LIMITS, limit_defaults

# The example workflows beside the code in a source checkout (also an editable install).
EXAMPLES = Path(__file__).resolve().parents[1] / "workflows"


# `serve --auth-token` on a host others can reach: a shorter token can be guessed (nothing
# limits how many a client may try).
MIN_TOKEN_CHARS = 16
_MAKE_TOKEN = "python -c 'import secrets; print(secrets.token_urlsafe())'"


def auth_token_rule(
    token: str | None, host: str, *, loopback: bool, insecure: bool, source: str = "--auth-token"
) -> tuple[str | None, str | None]:
    """Whether `serve --host HOST --auth-token TOKEN [--insecure]` may start: (why it may not,
    or None; a warning to print when it starts, or None). `source` is where the token came
    from (--auth-token or LATENTGRAPH_AUTH_TOKEN), as the messages name it. None is no token
    (the caller reads an unset or empty variable so); a token given empty (`--auth-token
    "$TOKEN"` with TOKEN unset) or blank (whitespace only) is refused on any host, as is one
    with whitespace around it (the Authorization header cannot carry it: its value is
    stripped). A host others can reach needs a token of `MIN_TOKEN_CHARS` or more; --insecure
    serves with none or a shorter one, warned."""
    if token is not None and not token.strip():
        what = "blank (only whitespace)" if token else 'empty (an unset variable in "$TOKEN"?)'
        return (f"{source}: the token is {what}, which guards nothing; give one of at least "
                f"{MIN_TOKEN_CHARS} characters, e.g. from {_MAKE_TOKEN}"), None  # fmt: skip
    if token and token != token.strip():
        return (f"{source}: the token starts or ends with whitespace, which an Authorization "
                "header cannot carry; give it without"), None  # fmt: skip
    if loopback:
        return None, None
    anyone = "anyone who can reach this port can run workflows and read outputs"
    if not token:
        if not insecure:
            return (f"--host {host} would let anyone who can reach this machine run workflows "
                    "and read outputs; set LATENTGRAPH_AUTH_TOKEN (or give --auth-token TOKEN), or "
                    "--insecure if this network is trusted"), None  # fmt: skip
        return None, f"listening on {host} with no --auth-token (--insecure): {anyone}"
    if len(token) < MIN_TOKEN_CHARS:
        if not insecure:
            return (f"{source}: a token of {len(token)} characters can be guessed by anyone "
                    f"who can reach --host {host}; give one of at least {MIN_TOKEN_CHARS} "
                    f"(e.g. from {_MAKE_TOKEN}), or --insecure if this network is trusted"), None  # fmt: skip
        return None, (f"listening on {host} with a token of {len(token)} characters (--insecure): "
                      f"it can be guessed; give one of at least {MIN_TOKEN_CHARS}")  # fmt: skip
    return None, None


# The `serve` flag setting each of the server's own limits (a `ServerConfig` field), named in
# the refusal of a request over it, as the run limits name theirs (`graph.context.LIMIT_FLAGS`
# in the server's `Settings.limit_labels`): a client learns which flag the operator can raise.
SERVER_LIMIT_FLAGS: dict[str, str] = {"max_queue": "--max-queue", "max_prompt_nodes": "--max-prompt-nodes",
                                      "max_body_bytes": "--max-body-mb", "max_upload_bytes": "--max-body-mb",
                                      "max_string_chars": "--max-string-chars",
                                      "max_extra_data_bytes": "--max-extra-data-mb",
                                      "max_history": "--max-history"}  # fmt: skip


# Finished prompts the history keeps by default (`serve --max-history`), as ComfyUI's
# MAXIMUM_HISTORY_SIZE.
MAX_HISTORY = 10_000


def server_limit_label(limit: str) -> str:
    """How a refusal names server limit `limit` (a `SERVER_LIMIT_FLAGS` field): "the server's
    --max-queue"."""
    return f"the server's {SERVER_LIMIT_FLAGS[limit]}"


# The run limits' defaults, Settings' own (the one place they are written).
_LIMIT_DEFAULTS = limit_defaults()

# The one local user's folder name in the users folder, as ComfyUI names it without --multi-user.
DEFAULT_USER = "default"

# The data folder when latentgraph makes it: its owner's alone. It holds every prompt (the
# queue database) and the saved workflows, which the token (HTTP only) does not guard; made
# 0755 under umask 022, every account on the machine read them.
DATA_DIR_MODE = 0o700


@dataclass
class ServerConfig:
    """Everything `serve` needs. Directories default to folders under `data_dir`."""

    host: str = "127.0.0.1"
    port: int = 8188
    data_dir: Path = field(default_factory=paths.data_dir)
    output_dir: Path | None = None
    input_dir: Path | None = None
    temp_dir: Path | None = None
    # The folder holding each user's folder (`serve --user-dir`), laid out as ComfyUI's user/
    # folder (what its --user-directory names): `default/workflows/`, `default/comfy.settings.json`.
    # None: `<data_dir>/users`.
    users_dir: Path | None = None
    models_dirs: list[Path | paths.KindFolder] = field(default_factory=list)
    nodes_dirs: list[Path] = field(default_factory=list)
    previews: bool = False  # send binary preview frames even when the prompt did not ask
    auth_token: str | None = None
    # Host names answered besides localhost, loopback addresses and `host` (`--allow-host`).
    allow_hosts: list[str] = field(default_factory=list)
    # The addresses (or networks, or "*") whose X-Forwarded-For and X-Forwarded-Proto uvicorn
    # believes: a reverse proxy's (`--forwarded-allow-ips`). None: uvicorn's default,
    # $FORWARDED_ALLOW_IPS or else 127.0.0.1 and ::1 (a proxy on this machine).
    forwarded_allow_ips: list[str] | None = None
    max_body_bytes: int = 64 * 1024 * 1024
    max_upload_bytes: int = 64 * 1024 * 1024
    max_queue: int = 1000
    # Checked at POST /prompt before any work: the longest string in a prompt (a 50 MB text
    # tied the text encoder up for minutes; a run limit too, `Settings.max_string_chars`: the
    # longest text a node returns) and the encoded size of `extra_data` (the editor's
    # workflow; kept with the prompt in the queue and history).
    max_string_chars: int = _LIMIT_DEFAULTS["max_string_chars"]
    max_extra_data_bytes: int = 8 * 1024 * 1024
    # The editor's settings file as stored (`comfy.settings.json`): a save that would make it
    # larger answers 413 and writes nothing, and a file found larger is moved aside when read
    # (server/api_user.py). Each POST /settings under the body limit added a value: 5 of 60 MB
    # made a 300 MB file that every page load of the editor parsed, 5 s each. The editor's own
    # settings take a few kilobytes.
    max_settings_bytes: int = 4 * 1024 * 1024
    # Memory the in-memory queue and recent history may hold (their encoded JSON): a POST that
    # would take the queue over answers 429; history keeps fewer entries.
    max_queue_bytes: int = 512 * 1024 * 1024
    history_memory_bytes: int = 128 * 1024 * 1024
    # Finished prompts kept in the database: when a prompt ends with more stored, the oldest
    # are deleted (`Store.max_history`).
    max_history: int = MAX_HISTORY
    # Run limits (`graph.context.LIMITS`), checked when a prompt is queued (before any model
    # work): the Settings fields, with their defaults; `limits` hands them to the Settings.
    max_image_pixels: int = _LIMIT_DEFAULTS["max_image_pixels"]
    max_batch: int = _LIMIT_DEFAULTS["max_batch"]
    max_steps: int = _LIMIT_DEFAULTS["max_steps"]
    max_batch_pixels: int = _LIMIT_DEFAULTS["max_batch_pixels"]
    disk_cache: bool = True
    # The disk cache's folder (`serve --cache-dir`), its entries directly in it; None: the
    # default store (`graph.cache.disk_store_dir`, as `run` and `cache` resolve it).
    cache_dir: Path | None = None
    # The bounds of each worker's cache (`serve --cache-memory-mb`, `--cache-disk-mb`): its
    # memory tier, per worker, and the disk store they share.
    cache_memory_bytes: int = DEFAULT_MEMORY_BYTES
    cache_disk_bytes: int = DEFAULT_DISK_BYTES
    # A websocket client is closed when this many bytes wait to be sent to it, or when one
    # write has waited this long for it to read (see server/hub.py).
    client_backlog_bytes: int = 64 * 2**20
    client_stall_seconds: float = 15.0
    # An HTTP connection is closed when its request's headers are not all there this long after
    # it opened (or, kept alive, after the request's first byte), or when a body the app waits
    # for gets no byte for `body_stall_seconds` (server/http_protocol.py).
    header_timeout_seconds: float = 10.0
    body_stall_seconds: float = 30.0
    # After an interrupt, how long a worker has to end its prompt before it is killed (and its
    # loaded models with it): longer than a slow denoise step, so only a node that never
    # checks for cancellation is killed (ComfyUI never kills; it waits for the next check).
    interrupt_grace_seconds: float = 10.0
    # POST /prompt refuses (413) a prompt of more nodes than this.
    max_prompt_nodes: int = 250_000
    device: str = "auto"
    dtype: str = "auto"
    # Worker processes: `workers` of them (None: one per device), on `devices` in turn
    # (empty: each visible GPU, else `device`). See local_workers.worker_specs.
    workers: int | None = None
    devices: list[str] = field(default_factory=list)
    # Ray actors instead of local worker processes (`--ray local|ADDRESS`, ray_workers.py):
    # `ray_workers` of them (None: one per GPU the cluster offers), each asking for these.
    ray: str | None = None
    ray_workers: int | None = None
    ray_cpus_per_actor: float = 1.0
    ray_gpus_per_actor: float = 1.0
    # Runtime options for the diffusion nodes, as `run --option` takes them (docs/gpu.md).
    options: dict[str, Any] = field(default_factory=dict)
    editor: bool = True  # serve the ComfyUI frontend at /
    # Workflows offered in the editor's Templates dialog (none when the folder is missing).
    templates_dir: Path | None = field(
        default_factory=lambda: EXAMPLES if EXAMPLES.is_dir() else None
    )
    load_nodes: bool = True  # load the installed node packs (the built-in nodes among them)
    # Workers import torch and the model libraries before taking a prompt, when the diffusion
    # nodes are registered: importing them at the first prompt held that prompt for seconds.
    preload: bool = True

    def __post_init__(self) -> None:
        # Absolute and resolved: routes compare the paths they resolve with these folders (a
        # relative --data-dir made every workflow save answer 500 after writing the file).
        self.data_dir = Path(self.data_dir).resolve()
        self.output_dir = (
            Path(self.output_dir).resolve() if self.output_dir else self.data_dir / "output"
        )
        self.input_dir = (
            Path(self.input_dir).resolve() if self.input_dir else self.data_dir / "input"
        )
        self.temp_dir = Path(self.temp_dir).resolve() if self.temp_dir else self.data_dir / "temp"
        self.users_dir = (
            Path(self.users_dir).resolve() if self.users_dir else self.data_dir / "users"
        )
        self.models_dirs = [
            p if isinstance(p, paths.KindFolder) else Path(p) for p in self.models_dirs
        ]
        self.nodes_dirs = [Path(p) for p in self.nodes_dirs]
        self.cache_dir = Path(self.cache_dir).resolve() if self.cache_dir else None

    @property
    def disk_store(self) -> Path | None:
        """The folder every worker's disk cache keeps its entries in (absolute: a Ray actor's
        working folder is not the server's); None under `disk_cache=False` (--no-cache)."""
        from latentgraph.graph.cache import disk_store_dir

        return disk_store_dir(self.cache_dir).resolve() if self.disk_cache else None

    @property
    def limits(self) -> dict[str, int]:
        """The run limits (limit -> value) as the server's `Settings` take them."""
        return {limit: getattr(self, limit) for limit in LIMITS}

    @property
    def db_path(self) -> Path:
        return self.data_dir / "server.sqlite3"

    @property
    def user_dir(self) -> Path:
        """The one local user's folder: saved workflows, settings, user.css (ComfyUI's
        single-user name, so a ComfyUI user folder given as `--user-dir` is read in place)."""
        return self.users_dir / DEFAULT_USER

    def dir_for(self, kind: str) -> Path | None:
        """The folder behind a /view or /upload `type` (output, input, temp)."""
        return {"output": self.output_dir, "input": self.input_dir, "temp": self.temp_dir}.get(kind)

    def make_data_dir(self) -> list[Path]:
        """Make the data folder, private (`DATA_DIR_MODE`), and its missing parents as the
        umask says; return the folders made (`graph.files.make_folders`). One that exists is
        left as its owner made it (a team's shared one stays so)."""
        from latentgraph.graph.files import make_folders

        return make_folders(self.data_dir, mode=DATA_DIR_MODE)

    def ensure_dirs(self) -> list[list[Path]]:
        """Make the data folder and the server's other folders; return the folders made, for
        each of them (`graph.files.make_folders`), so a start that fails removes them again
        (`remove_made`; one that cannot be made removes those made before it)."""
        from latentgraph.graph.files import make_folders

        made = [self.make_data_dir()]
        try:
            for folder in (self.output_dir, self.input_dir, self.temp_dir, self.user_dir):
                made.append(make_folders(folder))
        except BaseException:
            remove_made(made)
            raise
        return made


def remove_made(made: list[list[Path]]) -> None:
    """Remove the folders `ServerConfig.ensure_dirs` made, those still empty, the data folder
    last (it may hold the others)."""
    from latentgraph.graph.files import remove_folders

    for folders in reversed(made):
        remove_folders(folders)
