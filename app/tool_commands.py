"""The commands that run no workflow: `nodes` (the node reference), `schema` (the workflow
format's JSON Schema), `convert` (between workflow formats) and `tiny-model` (the built-in
tiny model, exported as files)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from .arguments import (
    add_models_args,
    add_nodes_dir_arg,
    check_file,
    check_folders,
    load_nodes,
    models_dirs,
)
from .exits import EXIT_OK, UserError, write_document
from .workflow_input import workflow_file


def add_nodes_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The `nodes` subcommand, on `build_parser`'s subparsers."""
    p = sub.add_parser("nodes", help="list node types, or `nodes describe NAME`")
    p.add_argument("action", nargs="?", choices=["list", "describe"], default="list")
    # every word after the action, so extra ones are refused in one message, all of them named
    p.add_argument("name", nargs="*", help="node type name (for describe)")
    shown_as = p.add_mutually_exclusive_group()
    shown_as.add_argument("--json", action="store_true", help="print /object_info-style JSON")
    shown_as.add_argument(
        "--markdown", action="store_true",
        help="print the node reference, docs/nodes.md: the built-in nodes only, no plugin",
    )  # fmt: skip
    add_nodes_dir_arg(p)
    add_models_args(p)  # the dropdowns list these folders' files, as the server's /object_info


def add_schema_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The `schema` subcommand, on `build_parser`'s subparsers."""
    p = sub.add_parser(
        "schema", help="print the JSON Schema of the workflow format",
        description="Print the JSON Schema of the workflow format for every node type installed "
                    "(plugin packs and --nodes-dir folders too), for your editor to check your "
                    "workflows with. --builtin prints the shipped workflows/schema.json: the "
                    "built-in nodes only, as nodes --markdown writes docs/nodes.md.",
    )  # fmt: skip
    p.add_argument(
        "--builtin", action="store_true",
        help="the built-in node types only, no plugin: the shipped workflows/schema.json "
             "(docs/contributing.md)",
    )  # fmt: skip
    add_nodes_dir_arg(p)


def add_convert_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The `convert` subcommand, on `build_parser`'s subparsers."""
    p = sub.add_parser("convert", help="convert between latentgraph YAML and ComfyUI JSON formats")
    p.add_argument("source", help="latentgraph YAML/JSON, ComfyUI API or editor JSON, or a PNG")
    p.add_argument("dest", help="file to write ('-' for stdout)")
    p.add_argument("--to", choices=["yaml", "api", "editor"], help="default: from dest suffix")
    add_nodes_dir_arg(p)


def add_tiny_model_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The `tiny-model` subcommand, on `build_parser`'s subparsers."""
    p = sub.add_parser("tiny-model", help="build the built-in tiny model; optionally export it")
    p.add_argument("--single-file", type=Path, metavar="PATH",
                   help="also write one .safetensors (or .sft) checkpoint there; never over "
                        "a file, unless --force")  # fmt: skip
    p.add_argument("--force", action="store_true",
                   help="replace a file at the --single-file PATH")  # fmt: skip
    p.add_argument("--addons", type=Path, metavar="MODELS_DIR",
                   help="also write tiny LoRAs (loras/), embeddings (embeddings/), "
                        "ControlNets and a T2I-Adapter (controlnet/) there; run and serve "
                        "look for models there with --models-dir MODELS_DIR (by default "
                        "they look in models/ in the user data folder, not ./models)")  # fmt: skip


def cmd_nodes(args: argparse.Namespace) -> int:
    from latentgraph.graph.context import Settings
    from latentgraph.graph.node_docs import describe, listing, markdown
    from latentgraph.graph.object_info import node_info, object_info

    names = args.name
    if args.action == "list" and names:  # was silently ignored; a second word lost the first
        raise UserError(f"unrecognized arguments: {' '.join(names)} (nodes list takes none; "
                        "nodes describe NAME describes one)")  # fmt: skip
    if len(names) > 1:
        raise UserError(f"unrecognized arguments: {' '.join(names[1:])} (nodes describe takes "
                        "one NAME)")  # fmt: skip
    name = names[0] if names else None
    registry = load_nodes(args.nodes_dir)
    settings = Settings(models_dirs=models_dirs(args))
    if args.action == "describe":
        if not name:
            raise UserError("nodes describe: give a node type name")
        node_type = registry.get(name)
        if node_type is None:
            from latentgraph.graph.problems import did_you_mean

            hint = did_you_mean(name, registry.names())
            raise UserError(f"unknown node type {name!r}{hint}")
        if args.json:
            write_document(json.dumps(node_info(node_type, settings), indent=2) + "\n")
        else:
            print(describe(node_type, settings=settings))
        return EXIT_OK
    if args.json:
        write_document(json.dumps(object_info(registry, settings), indent=2) + "\n")
    elif args.markdown:
        write_document(markdown(registry) + "\n")
    else:
        print(listing(registry))
    return EXIT_OK


def cmd_schema(args: argparse.Namespace) -> int:
    from latentgraph.graph.node_docs import builtin_only
    from latentgraph.graph.schema import workflow_schema

    if args.builtin and args.nodes_dir:
        raise UserError("--builtin leaves every plugin out: give it or --nodes-dir, not both")
    registry = load_nodes(args.nodes_dir)
    if args.builtin:  # the shipped file, whatever this machine has installed besides
        registry = builtin_only(registry)
    write_document(json.dumps(workflow_schema(registry), indent=2) + "\n")
    return EXIT_OK


def cmd_convert(args: argparse.Namespace) -> int:
    from latentgraph.graph.convert import NO_FILE, convert

    registry = load_nodes(args.nodes_dir)
    source = workflow_file(args.source)
    if args.dest != NO_FILE:
        check_file("dest", Path(args.dest))
    converted = convert(source, args.dest, to=args.to, registry=registry, wording="--to {}")
    if args.dest == NO_FILE:  # `convert SRC -`: the document on stdout
        write_document(converted.text)
    return EXIT_OK


def cmd_tiny_model(args: argparse.Namespace) -> int:
    from latentgraph.nodes.tiny_model import ensure_tiny_model, write_single_file

    if args.force and not args.single_file:
        raise UserError("--force replaces a file at the --single-file PATH: give --single-file")
    if args.single_file:  # the name first: a wrong one is refused whatever is there
        check_checkpoint_name("--single-file", args.single_file)
        check_file("--single-file", args.single_file, replace=args.force)
    if args.addons:
        check_folders([("--addons", args.addons)])
    folder = ensure_tiny_model()
    print(f"built-in model: {folder}")
    if args.single_file:
        write_single_file(args.single_file)
        print(f"single-file checkpoint: {args.single_file}")
    if args.addons:
        write_addons(args.addons)
    return EXIT_OK


def check_checkpoint_name(name: str, path: Path) -> None:
    """A checkpoint a command writes is named as the loaders load one (`WEIGHT_SUFFIXES`): else
    a usage error (exit 2) naming its flag, before any work. `--single-file victim.json` put
    a checkpoint there, which no models folder lists and LoadModel refuses."""
    from latentgraph.graph.paths import WEIGHT_SUFFIXES

    if path.suffix.lower() not in WEIGHT_SUFFIXES:
        raise UserError(f"{name} {path}: a checkpoint's name ends in "
                        f"{' or '.join(WEIGHT_SUFFIXES)}, the files LoadModel loads")  # fmt: skip


def write_addons(root: Path) -> None:
    """The tiny add-ons into `root`, each named as it is written. Each file works alone, so a
    write that fails (a full disk) keeps those before it, and its error names them ("saved 3
    of 12: ...; cannot write ..."): the user knows what is there without listing the folder."""
    from latentgraph.graph.files import FileWriteError
    from latentgraph.nodes.tiny_addons import models_folder_writes
    from latentgraph.nodes.tiny_control import controlnet_folder_writes

    writes = [*models_folder_writes(root), *controlnet_folder_writes(root)]
    written: list[str] = []
    for write in writes:
        try:
            path = write()
        except FileWriteError as exc:
            raise exc.after_saving(written, len(writes)) from None
        print(f"tiny add-on: {path}")
        written.append(str(path))
