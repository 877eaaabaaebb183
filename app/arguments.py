"""The flags several commands share: their argparse types and groups (workflow, device,
limits, Ray), and reading them into values, or a `UserError` naming the flag, before any
work (NAME=VALUE lists, `--option`, folders, files, devices, `--nodes-dir`, `--ray`)."""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from .exits import UserError

if TYPE_CHECKING:
    from latentgraph.graph.declare import Registry
    from latentgraph.graph.paths import KindFolder


def add_workflow_args(p: argparse.ArgumentParser, *, several: bool = False) -> None:
    """The workflow argument (`several`: one or more, `validate`'s) and the flags reading it."""
    if several:
        p.add_argument("workflow", nargs="+", metavar="FILE",
                       help="workflow files: latentgraph YAML/JSON, ComfyUI JSON, or a PNG "
                            "(`-`: stdin, at most once)")  # fmt: skip
    else:
        p.add_argument("workflow",
                       help="workflow file: latentgraph YAML/JSON, ComfyUI JSON, or a PNG")  # fmt: skip
    p.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="NAME=VALUE",
        help="override a workflow param (repeatable)",
    )  # fmt: skip
    add_nodes_dir_arg(p)
    add_models_args(p)


def add_nodes_dir_arg(p: argparse.ArgumentParser) -> None:
    """`--nodes-dir`, the same flag with the same help on every command that loads nodes."""
    p.add_argument(
        "--nodes-dir", action="append", default=[], type=Path, metavar="DIR",
        help="also load node plugins from DIR: its .py files and package folders (repeatable)",
    )  # fmt: skip


class _Once(argparse.Action):
    """A flag that takes one value: given twice, a usage error saying what to use instead
    (argparse would keep the last one silently)."""

    def __init__(self, *args: Any, instead: str = "", **kwargs: Any) -> None:
        self.instead = instead
        super().__init__(*args, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:  # fmt: skip
        if getattr(namespace, self.dest, None) is not None:
            parser.error(f"{option_string} given twice; {self.instead}")
        setattr(namespace, self.dest, values)


def add_models_args(p: argparse.ArgumentParser) -> None:
    """The models folders, for `run`, `validate`, `serve` and `nodes` (README's "Models
    folders")."""
    p.add_argument("--models-dir", type=Path, metavar="DIR", action=_Once,
                   instead="use --extra-models-dir for more models folders",
                   help="the models folder searched first, holding checkpoints/, vae/, loras/, "
                   "... (e.g. ~/ComfyUI/models; once)")  # fmt: skip
    p.add_argument(
        "--extra-models-dir", action="append", default=[], type=Path, metavar="DIR",
        help="another models folder searched after it, e.g. an existing ComfyUI install's "
        "models/ (repeatable)",
    )  # fmt: skip
    p.add_argument(
        "--extra-model-paths", "--extra-model-paths-config", dest="extra_model_paths",
        action="append", default=[], type=Path, metavar="FILE",
        help="a ComfyUI extra_model_paths.yaml: its per-kind folders are searched too "
        "(repeatable)",
    )  # fmt: skip


def _device_arg(text: str) -> str:
    from latentgraph.graph.context import check_device

    try:
        return check_device(text)
    except ValueError as exc:  # the parser names the option: "--device: device 'gpu' ..."
        raise argparse.ArgumentTypeError(str(exc)) from None


def devices_arg(text: str) -> list[str]:
    """`--devices DEV,DEV`: each a name `--device` takes."""
    return [_device_arg(d) for d in text.split(",") if d.strip()]


def add_device_args(p: argparse.ArgumentParser) -> None:
    """What `run` and `serve` share: where models run, in which precision, with which options
    (docs/gpu.md lists the options)."""
    p.add_argument("--device", default="auto", type=_device_arg,
                   help="auto, cpu, cuda, cuda:N or mps")  # fmt: skip
    p.add_argument("--dtype", default="auto", choices=["auto", "fp32", "fp16", "bf16"],
                   help="the models' number format; auto: fp16 on CUDA, fp32 elsewhere")  # fmt: skip
    p.add_argument(
        "--option", dest="options", action="append", default=[], metavar="NAME=VALUE",
        help="runtime option for the diffusion nodes, e.g. attention_slicing=true, "
        "vae_tiling=true, cpu_offload=true, compile=true, channels_last=true, tf32=true, "
        "vae_fp32=false, vram_headroom_gb=1.5 (docs/gpu.md)",
    )  # fmt: skip


def at_least(minimum: int, kind: type = int, *, at_most: int | None = None):
    """An argparse type: a number of `kind` (int or float, finite) no smaller than `minimum`
    (nor larger than `at_most`). A refusal says what was expected, and the parser names the
    flag (cli.py): "--max-queue: expected an integer of at least 1, got '0'"."""
    noun = "an integer" if kind is int else "a number"
    expected = (f"{noun} from {minimum} to {at_most}" if at_most is not None
                else f"{noun} of at least {minimum}")  # fmt: skip

    def read(text: str):
        from latentgraph.graph.problems import quoted

        try:
            value = kind(text)
        except ValueError:
            value = None
        if value is None or not math.isfinite(value) or value < minimum or (
                at_most is not None and value > at_most):  # fmt: skip
            raise argparse.ArgumentTypeError(f"expected {expected}, got {quoted(text)}")
        return value

    return read


def add_ray_args(p: argparse.ArgumentParser, what: str) -> None:
    """`--ray` and the actors' flags, shared by run and serve (docs/scale-out.md). The actors'
    flags default to None, so one given without --ray can be refused (`check_ray_args`)."""
    p.add_argument("--ray", metavar="local|ADDRESS",
                   help=f"{what} on Ray actors: a local Ray runtime, or the cluster at ADDRESS "
                   "(needs pip install 'latentgraph[ray]')")  # fmt: skip
    p.add_argument("--ray-workers", type=at_least(1), metavar="N",
                   help="Ray actors (default: one per GPU the cluster offers)")  # fmt: skip
    p.add_argument("--ray-cpus-per-actor", type=at_least(0, float), metavar="N",
                   help="CPUs each actor asks for (its torch threads on a CPU actor; default 1)")  # fmt: skip
    p.add_argument("--ray-gpus-per-actor", type=at_least(0, float), metavar="N",
                   help="GPUs each actor asks for when the cluster has GPUs (0.5: two actors "
                   "share one; default 1)")  # fmt: skip


def _pixels(text: str) -> int:
    """`--max-pixels`: a pixel count (16777216) or WIDTHxHEIGHT (4096x4096, their product),
    at least 1 (the limit is on width x height: `Settings.max_image_pixels`)."""
    from latentgraph.graph.problems import quoted

    parts = text.lower().split("x")
    try:
        sides = [int(part) for part in parts] if len(parts) <= 2 else []
    except ValueError:
        sides = []
    if not sides or min(sides) < 1:
        raise argparse.ArgumentTypeError("expected a pixel count or WIDTHxHEIGHT (e.g. 1024x1024) "
                                         f"of at least 1, got {quoted(text)}")  # fmt: skip
    return math.prod(sides)


def _pixels_text(pixels: int) -> str:
    """A pixel count as `--max-pixels` takes it and --help shows it: WxH when square
    (4096x4096), else the count."""
    side = math.isqrt(pixels)
    return f"{side}x{side}" if side * side == pixels else str(pixels)


class _LimitArg(NamedTuple):
    """How a run limit's flag reads its value, what --help says of it ({default}: the limit's
    default as the flag is written), and its metavar."""

    read: Callable[[str], int]
    help: str
    metavar: str | None = None


# Each run limit's flag (`graph.context.LIMIT_FLAGS`): its name, the field it sets and its
# default are the limit's (`Settings`); here only how it reads and what --help says.
_LIMIT_ARGS: dict[str, _LimitArg] = {
    "max_steps": _LimitArg(at_least(1), "steps per sampler (default {default})"),
    "max_batch": _LimitArg(at_least(1), "images per batch (default {default})"),
    "max_image_pixels": _LimitArg(_pixels, "pixels per image: a count or WxH (default {default})",
                                  "PIXELS"),
    "max_batch_pixels": _LimitArg(
        _pixels, "pixels of a whole batch, width x height x images (an animation's frames "
        "too): a count or WxH (default {default}, 200 MB of float32 RGB: SDXL 1024x1024 x 16, "
        "2048x2048 x 4 or one 4096x4096 image pass, 4096x4096 x 64 does not)", "PIXELS"),
    "max_string_chars": _LimitArg(at_least(1), "characters of a text a node returns, and "
                                  "(serve) of any string in a prompt (default {default})"),
}  # fmt: skip


def add_limit_args(p: argparse.ArgumentParser) -> None:
    """The run limits `run`, `validate` and `serve` share, one flag per limit
    (`graph.context.LIMIT_FLAGS`, which messages name), each setting the `Settings` field of
    its limit (read back by `limit_values`) with that field's default: a workflow `run
    --max-steps 5000` takes passes `validate --max-steps 5000`."""
    from latentgraph.graph.context import LIMIT_FLAGS, limit_defaults

    defaults = limit_defaults()
    for limit, flag in LIMIT_FLAGS.items():
        arg = _LIMIT_ARGS[limit]
        shown = _pixels_text(defaults[limit]) if arg.read is _pixels else str(defaults[limit])
        p.add_argument(flag, dest=limit, type=arg.read, default=defaults[limit],
                       metavar=arg.metavar, help=arg.help.format(default=shown))  # fmt: skip


def limit_values(args: argparse.Namespace) -> dict[str, int]:
    """The run limits as their flags set them (`add_limit_args`), by `Settings` field: the one
    copy from flags to fields, for `Settings(**limit_values(args))` and `ServerConfig`'s."""
    from latentgraph.graph.context import LIMITS

    return {limit: vars(args)[limit] for limit in LIMITS}


def add_cache_bound_args(p: argparse.ArgumentParser) -> None:
    """The cache's bounds in MiB (`--max-body-mb`'s unit), integers of at least 1: `run` and
    `serve` (each worker and Ray actor) keep to them (`cache` reports by `--cache-disk-mb`).
    None when not given: `cache_bounds` fills the defaults."""
    from latentgraph.graph.cache import DEFAULT_DISK_BYTES, DEFAULT_MEMORY_BYTES

    p.add_argument("--cache-memory-mb", type=at_least(1), metavar="MB",
                   help="memory the cache keeps values in, per process (default "
                   f"{DEFAULT_MEMORY_BYTES >> 20}, 2 GiB); past it the least recently used go")  # fmt: skip
    p.add_argument("--cache-disk-mb", type=at_least(1), metavar="MB",
                   help=f"disk cache size (default {DEFAULT_DISK_BYTES >> 20}, 10 GiB); past it "
                   "the least recently used entries are deleted")  # fmt: skip


def cache_bounds(args: argparse.Namespace) -> tuple[int, int]:
    """(memory bytes, disk bytes) from `--cache-memory-mb` / `--cache-disk-mb`, the defaults
    (`graph.cache.DEFAULT_MEMORY_BYTES`, `DEFAULT_DISK_BYTES`) for those not given."""
    from latentgraph.graph.cache import DEFAULT_DISK_BYTES, DEFAULT_MEMORY_BYTES

    memory, disk = args.cache_memory_mb, args.cache_disk_mb
    return (memory << 20 if memory else DEFAULT_MEMORY_BYTES,
            disk << 20 if disk else DEFAULT_DISK_BYTES)  # fmt: skip


def parse_assignments(items: list[str], what: str) -> dict[str, Any]:
    """`NAME=VALUE` items, the names checked and the values the text as written: what each
    sets types it (`override_value`), so prompt text stays text."""
    if not items:  # the workflow module (and yaml) is not imported for nothing: serve start
        return {}
    from latentgraph.graph.workflow import parse_override

    result: dict[str, Any] = {}
    for item in items:
        name, value = parse_override(command_line_text(item, what), what)
        result[name] = value
    return result


def command_line_text(item: str, flag: str) -> str:
    """A `NAME=VALUE` flag's text (`--set`, `--sweep`), or a usage error naming the flag when
    it holds bytes that are not UTF-8: Python reads them as lone surrogates (`surrogateescape`),
    which no cache key, file or message can encode (`run` died on its cache key with a bare
    "surrogates not allowed", `validate` passed the value)."""
    bad = next((c for c in item if "\ud800" <= c <= "\udfff"), None)
    if bad is None:
        return item
    from latentgraph.graph.problems import escaped

    # Escaped as `printable` shows a text holding what cannot be printed: a byte surrogateescape
    # kept as the shell shows it (`\xff`), a typed `\xff` with its backslash doubled (`\\xff`).
    shown = escaped(item)
    part = "value" if 0 <= item.find("=") < item.index(bad) else "name"
    byte = "\udc80" <= bad <= "\udcff"
    what = f"byte 0x{ord(bad) - 0xDC00:02x}" if byte else f"U+{ord(bad):04X}"
    raise UserError(f"{flag} {shown}: the {part} is not UTF-8 text ({what})")


def read_options(items: list[str]) -> dict[str, Any]:
    """`--option NAME=VALUE` items, each value read by the option's declaration
    (graph/context.py `OPTIONS`): an unknown name or a bad value is refused before any work,
    naming `--option`. This is the one reading: the Settings of `run` (and of `serve`'s
    server, through `ServerConfig.options`) keep the values as read (`ParsedOptions`)."""
    from latentgraph.graph.context import parse_options
    from latentgraph.graph.problems import quoted

    options = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise UserError(f"--option {quoted(item)}: expected NAME=VALUE")
        options[name.strip()] = value.strip()
    try:
        return parse_options(options, "--option")
    except ValueError as exc:
        raise UserError(str(exc)) from None


def check_nodes_dirs(nodes_dirs: list[Path]) -> None:
    """Each `--nodes-dir` a folder, else a usage error (exit 2) before anything loads or
    starts: the one rule for every command taking the flag (`load_nodes`, and `serve`, whose
    registry `prepare_server` loads). A plugin file in it that fails to import is no usage
    error: each command warns (`print_plugin_failures`) and goes on without it."""
    for d in nodes_dirs:
        if not d.is_dir():
            raise UserError(f"--nodes-dir {d}: not a folder")


def load_nodes(nodes_dirs: list[Path]) -> Registry:
    """The registry: the built-in nodes, installed plugin packs and `--nodes-dir` folders."""
    from .wiring import node_registry

    check_nodes_dirs(nodes_dirs)
    failures: list = []
    registry = node_registry(nodes_dirs, errors=failures)
    print_plugin_failures(failures)
    return registry


def print_plugin_failures(failures: list) -> None:
    for failure in failures:
        print(f"latentgraph: warning: {failure}", file=sys.stderr)


def models_dirs(args: argparse.Namespace) -> list[Path | KindFolder]:
    """The run's models folders (`Settings.models_dirs`) from `--models-dir`,
    `--extra-models-dir` and `--extra-model-paths` files (their `is_default` sections first,
    the others last). A folder that is none, or a file that cannot be read, is a usage error
    naming the flag; a root holding no kind folder (given, or in `$LATENTGRAPH_MODELS_DIRS`)
    is a warning on stderr (`root_warning`), once each, as are a file's folders that are none
    (a base_path that does not exist once, others once per kind for every file:
    `folder_warnings`); the kinds a file names that no node reads
    are a note."""
    from latentgraph.graph.paths import MODELS_DIRS_ENV, env_models_roots
    from latentgraph.nodes.extra_model_paths import (
        ModelPathsError,
        Unfound,
        folder_warnings,
        read_model_paths,
    )
    from latentgraph.nodes.models_dirs import root_warning

    named = [("--models-dir", args.models_dir)] if args.models_dir else []
    named += [("--extra-models-dir", d) for d in args.extra_models_dir]
    check_folders(named, create=False)
    given = {folder for _, folder in named}
    env = [(f"${MODELS_DIRS_ENV}:", d) for d in env_models_roots() if d not in given]
    for flag, folder in dict.fromkeys(named + env):  # each once
        warning = root_warning(folder)
        if warning:
            print(f"latentgraph: warning: {flag} {warning}", file=sys.stderr)
    first: list[KindFolder] = []
    last: list[KindFolder] = []
    unfound: list[Unfound] = []
    no_base: list[str] = []
    notes: list[str] = []
    for file in args.extra_model_paths:
        try:
            found = read_model_paths(file)
        except ModelPathsError as exc:
            raise UserError(f"--extra-model-paths {exc}") from None
        first += found.first
        last += found.others
        no_base += found.no_base
        unfound += found.unfound
        if found.ignored:
            notes.append(f"{file}: ignored (no node here reads them): {', '.join(found.ignored)}")
    for warning in [*dict.fromkeys(no_base), *folder_warnings(unfound)]:  # each file once
        print(f"latentgraph: warning: --extra-model-paths {warning}", file=sys.stderr)
    for note in notes:
        print(f"latentgraph: note: --extra-model-paths {note}", file=sys.stderr)
    return [*first, *(d for _, d in named), *last]


# The folders `run`, `validate`, `serve` and `submit` use in the working folder when their flag
# is not given (its default), and what each is: a refusal names one so, not as a flag the user
# may not have typed (`folder_named`).
DEFAULT_FOLDERS = {"--output-dir": ("output", "output folder"),
                   "--input-dir": ("input", "input folder"),
                   "--temp-dir": ("temp", "temp folder")}  # fmt: skip


def default_folder(flag: str) -> Path:
    """The folder `flag` names when it is not given (`DEFAULT_FOLDERS`: its argparse default)."""
    return Path(DEFAULT_FOLDERS[flag][0])


# The user's own folders, by the environment variable naming one (`graph.paths`), else the
# platform's default: what each is, and the flag choosing another for the command refused
# (None: only the variable does; `run --cache-dir` moves the disk store, not the cache folder,
# which holds the built-in models too). Their source in `check_folders` is that variable.
# Keyed by the names `graph.paths` holds as CACHE_DIR_ENV and DATA_DIR_ENV, written out so that
# every CLI start does not import the graph package (tests/cli/test_environment.py checks them).
USER_FOLDERS = {"LATENTGRAPH_CACHE_DIR": ("cache folder", None),
                "LATENTGRAPH_DATA_DIR": ("data folder", "--data-dir")}  # fmt: skip


def folder_named(source: str, folder: Path) -> str:
    """How a refusal names a folder, by where it came from (`source`), so that the user finds
    it and knows how to choose another. A flag's: `--output-dir out`; its default, as what it
    is: `the output folder ./output (the default; --output-dir DIR chooses another)`. A user
    folder's (`source` its variable, a `USER_FOLDERS` key), in the same form: `the cache folder
    /x (the default; $LATENTGRAPH_CACHE_DIR chooses another)`, or `the cache folder /x (from
    $LATENTGRAPH_CACHE_DIR; set it to another folder)` when the variable gave it."""
    if source in USER_FOLDERS:
        from latentgraph.graph.paths import env_folder

        what, flag = USER_FOLDERS[source]
        variable = f"${source}"
        if env_folder(source) is not None:
            other = f"{flag} DIR chooses another" if flag else "set it to another folder"
            return f"the {what} {folder} (from {variable}; {other})"
        choose = f"{flag} DIR or {variable}" if flag else variable
        return f"the {what} {folder} (the default; {choose} chooses another)"
    known = DEFAULT_FOLDERS.get(source)
    if known is None or Path(folder) != default_folder(source):
        return f"{source} {folder}"
    return f"the {known[1]} ./{known[0]} (the default; {source} DIR chooses another)"


def check_cache_folders(given: Path | None, *, listing: bool = False) -> None:
    """The cache folders of `run`, `serve` and `cache`, checked before any work: the cache
    folder (`graph.paths.cache_dir`: the built-in models are built in its models/, a single
    file's configs in configs/; the disk store is its outputs/) by `cache_folder_problem`'s
    rule, named by where it came from so the user knows what to change, and `--cache-dir`
    when `given` (the disk store moved there) by `check_folders`' rule; for the `cache`
    `listing`, which only reads it, a missing or unwritable one is not refused (a file is)."""
    from latentgraph.graph.paths import CACHE_DIR_ENV, cache_dir

    from .preflight import cache_folder_problem

    folder = cache_dir()
    problem = cache_folder_problem(folder)
    if problem:
        raise UserError(f"{folder_named(CACHE_DIR_ENV, folder)}: {problem}")
    if given:
        check_folders([("--cache-dir", given)], written=not listing)


def check_folders(named: list[tuple[str, Path]], *, create: bool = True,
                  written: bool = True) -> None:  # fmt: skip
    """Each (source, folder) a folder, or one the command may make (`create`; `written`: that
    it can write in, `folder_problem`): else a usage error (exit 2) naming it by its source, a
    flag or a user folder's variable (a `USER_FOLDERS` key; `folder_named`: a default as
    such), before anything runs (app/preflight.py, one rule for run and serve): "--data-dir
    /tmp/x/afile: a file is there; expected a folder"."""
    from .preflight import folder_problem

    for source, folder in named:
        problem = folder_problem(folder, create=create, written=written)
        if problem:
            raise UserError(f"{folder_named(source, folder)}: {problem}")


def check_file(name: str, path: Path, *, replace: bool = True) -> None:
    """A file a command will write (`name`: its argument or flag) can be written there: else a
    usage error (exit 2) naming it, before the work that makes it (app/preflight.py, the folder
    it goes in held to the folder flags' rule; `replace` False: a file there is refused too):
    "dest /tmp: a folder is there; ..."."""
    from .preflight import file_problem

    problem = file_problem(path, replace=replace)
    if problem:
        raise UserError(f"{name} {path}: {problem}")


def check_devices(flag: str, devices: list[str], *, isolated: bool = False) -> None:
    """A device this machine lacks: a usage error (exit 2) naming `flag`, before any node runs
    or any worker starts (app/preflight.py, one rule for run and serve). `isolated`: torch is
    asked in a child process (serve's process never imports torch)."""
    from .preflight import device_problems

    for problem in device_problems(devices, isolated=isolated).values():
        raise UserError(f"{flag}: {problem}")


# The flags shaping Ray actors (their `args` name, flag, default): nothing without --ray.
RAY_ACTOR_FLAGS = (("ray_workers", "--ray-workers", None),
                   ("ray_cpus_per_actor", "--ray-cpus-per-actor", 1.0),
                   ("ray_gpus_per_actor", "--ray-gpus-per-actor", 1.0))  # fmt: skip


def check_ray_args(args: argparse.Namespace) -> None:
    """An actors' flag without --ray is a usage error ("--ray-workers needs --ray"), as
    `--workers` with --ray is: it would be ignored. The defaults of those not given are filled
    in here (argparse leaves them None so that a flag given can be told from one left out).
    An empty --ray (`--ray ""`, an unset variable in a script) is refused: it used to run in
    this process, no Ray and no word of it."""
    if args.ray is not None and not args.ray.strip():
        from latentgraph.graph.problems import quoted

        raise UserError(f"--ray {quoted(args.ray)}: expected local (a Ray runtime started here) or "
                        "a cluster's ADDRESS (HOST:PORT or ray://HOST:PORT)")  # fmt: skip
    for dest, flag, default in RAY_ACTOR_FLAGS:
        if getattr(args, dest) is None:
            setattr(args, dest, default)
        elif not args.ray:
            raise UserError(f"{flag} needs --ray (local or a cluster's ADDRESS); without it "
                            "nothing runs on Ray actors")  # fmt: skip


def require_ray() -> None:
    """--ray without Ray installed: a usage error naming the extra, before any work."""
    from latentgraph.server.ray_connect import RayUnavailable, import_ray

    try:
        import_ray()
    except RayUnavailable as exc:
        raise UserError(str(exc)) from None
