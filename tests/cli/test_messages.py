"""What a new user reads: command output and messages, and the commands the docs show."""

from __future__ import annotations

import argparse
import re
import shlex
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from latentgraph.cli import build_parser, main

from .conftest import write

ROOT = Path(__file__).resolve().parents[2]


def test_plain_run_output_shows_previews(cli, tmp_path):
    path = write(
        tmp_path,
        "preview.yaml",
        """version: 1
nodes:
  word: {type: PrimitiveString, value: hello there}
  show: {type: PreviewAny, source: word}
  pic: {type: CliImage, shade: 9}
  look: {type: PreviewImage, images: pic}
""",
    )
    code, _, err = cli("run", str(path))
    assert code == 0, err
    assert "show: hello there" in err
    assert re.search(r"preview \S*temp/preview_\d{5}_\.png", err)


def test_previews_go_to_the_working_folders_temp_whatever_the_output_folder(cli, tmp_path):
    """`--output-dir ~/Pictures` put previews in ~/temp (the output folder's sibling); they go
    to ./temp, as serve's do, unless --temp-dir says otherwise."""
    path = write(tmp_path, "preview.yaml", """version: 1
nodes:
  pic: {type: CliImage, shade: 9}
  look: {type: PreviewImage, images: pic}
""")  # fmt: skip
    code, _, err = cli("run", str(path), "--output-dir", str(tmp_path / "pics" / "Pictures"))
    assert code == 0, err
    assert list((tmp_path / "temp").glob("preview_*.png"))
    assert not (tmp_path / "pics" / "temp").exists()
    code, _, err = cli("run", str(path), "--temp-dir", str(tmp_path / "t2"))
    assert code == 0 and list((tmp_path / "t2").glob("preview_*.png")), err


def test_schema_into_a_closed_pipe_ends_quietly():
    proc = subprocess.Popen([sys.executable, "-c", "from latentgraph.cli import main; "
                             "raise SystemExit(main(['schema']))"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    proc.stdout.read(100)  # `| head -c 100`
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 0 and err == ""


def test_convert_to_stdout_names_the_to_flag(cli, tmp_path):
    path = write(tmp_path, "w.yaml", "version: 1\nnodes:\n  a: {type: CliNumber, value: 1}\n")
    code, _, err = cli("convert", str(path), "-")
    assert code == 2 and "give --to api, --to editor or --to yaml" in err
    assert "to=" not in err and "Traceback" not in err


def test_describe_lists_every_choice(cli):
    from latentgraph.nodes.schedulers import SCHEDULERS

    code, out, _ = cli("nodes", "describe", "SchedulerSelect", plugin=False)
    assert code == 0 and "..." not in out
    assert f"one of: {', '.join(SCHEDULERS)}" in out


def test_mistyped_param_gets_did_you_mean(cli, tmp_path):
    path = write(tmp_path, "w.yaml", "version: 1\nparams: {seed: 1}\n"
                                     "nodes:\n  a: {type: CliNumber, value: $seed}\n")  # fmt: skip
    code, _, err = cli("validate", str(path), "--set", "sede=3")
    assert code == 2 and "did you mean 'seed'?" in err


def test_a_missing_loadimage_file_names_the_input_folder_searched_and_its_flag(cli, tmp_path):
    """A LoadImage file not there named the output folder (a saved image's other spellings)
    but not the input folder the name was looked for in, nor `--input-dir`."""
    (tmp_path / "pics").mkdir()
    path = write(tmp_path, "w.yaml", "version: 1\nnodes:\n  load: {type: LoadImage, image: "
                 "cat.png}\n  show: {type: PreviewImage, images: load.IMAGE}\n")  # fmt: skip
    code, _, err = cli("validate", str(path), "--input-dir", "pics")
    assert code == 2
    assert ("'cat.png' is not one of: 'example.png' (the images in the input folder "
            f"({tmp_path / 'pics'}; --input-dir names another), or a saved image as") in err  # fmt: skip


def test_dpmpp_sde_prints_no_torchsde_warning(torch_1thread, cache_dir, tmp_path):
    import json

    api = json.loads((ROOT / "tests" / "comfy" / "data" / "classic_api.json").read_text())
    api["3"]["inputs"]["sampler_name"] = "dpmpp_sde"
    src = tmp_path / "sde.json"
    src.write_text(json.dumps(api))
    with warnings.catch_warnings(record=True) as caught:
        code = main(["run", str(src), "--output-dir", str(tmp_path), "--no-cache", "-q"])
    assert code == 0
    assert [str(w.message) for w in caught if "torchsde" in w.filename] == []


def _documented_commands() -> list[str]:
    """`latentgraph ...` commands in backticks in the docs, and in the example workflows'
    comments, without placeholders (FILE, [optional], <value>), each up to a shell redirection
    or pipe (`latentgraph schema > workflows/schema.json`: the command is `schema`)."""
    found = []
    for doc in [ROOT / "README.md", *(ROOT / "docs").glob("*.md")]:
        found += re.findall(r"`latentgraph ([^`]+)`", doc.read_text())
    for wf in (ROOT / "workflows").glob("*.yaml"):
        for line in wf.read_text().splitlines():
            if line.startswith("#"):
                found += [m.rstrip(".") for m in re.findall(r"latentgraph ([^`,;]+)", line)]
    found = [re.split(r"\s(?:\d?>|\|)", c)[0] for c in found]
    return [c.strip() for c in found if not re.search(r"[\[<]|\b[A-Z]{3,}\b", c)]


def test_readme_names_every_kind_of_message_the_program_prints():
    """README lists the forms of the lines on stderr; `latentgraph: note: ...` (what
    --extra-model-paths ignored, previews left in the temp folder) was printed but not listed."""
    printed = set()
    for folder in ("app", "server", "graph", "nodes"):
        for source in (ROOT / folder).rglob("*.py"):
            printed |= set(re.findall(r"latentgraph: [a-z]+: ", source.read_text()))
    readme = (ROOT / "README.md").read_text()
    assert printed >= {"latentgraph: error: ", "latentgraph: note: "}
    assert [kind for kind in sorted(printed) if f"`{kind}...`" not in readme] == []


WORKFLOW = str(ROOT / "workflows" / "txt2img.yaml")


@pytest.mark.parametrize(("argv", "line"), [
    (["run", WORKFLOW, "--device", "cuda0"],
     "--device: device 'cuda0' is not one of auto, cpu, cuda, cuda:N (N = 0, 1, ...) or mps"),
    (["run", WORKFLOW, "--dtype", "fp8"],
     "--dtype: invalid choice: 'fp8' (choose from 'auto', 'fp32', 'fp16', 'bf16')"),
    (["validate", WORKFLOW, "--max-steps", "0"],
     "--max-steps: expected an integer of at least 1, got '0'"),
    (["serve", "--devices", "cuda:0,gpu"],
     "--devices: device 'gpu' is not one of auto, cpu, cuda, cuda:N (N = 0, 1, ...) or mps"),
    (["convert", WORKFLOW, "out.json", "--to", "png"],
     "--to: invalid choice: 'png' (choose from 'yaml', 'api', 'editor')"),
    (["cache", "wipe"], "action: invalid choice: 'wipe' (choose from 'info', 'clear')"),
    (["cache", "--", "-x"], "action: invalid choice: '-x' (choose from 'info', 'clear')"),
    (["nodes", "--json", "--markdown"], "--markdown: not allowed with argument --json"),
    (["submit", WORKFLOW, "--ray", "local"], "unrecognized arguments: --ray local"),
    (["tiny-model", "--addons"], "--addons: expected one argument"),
    (["run", WORKFLOW, "--set", "--", "x=1"], "--set: expected one argument"),
    (["run"], "the following arguments are required: workflow"),
    (["rn", WORKFLOW], "COMMAND: invalid choice: 'rn' (choose from 'run', 'validate', 'nodes', "
                       "'schema', 'convert', 'serve', 'submit', 'cache', 'tiny-model')"),
])  # fmt: skip
def test_a_command_line_argparse_refuses_is_one_error_line_as_every_refusal(argv, line, capsys):
    """README: a refused flag is exit 2 and one `latentgraph: error:` line. `--device cuda`
    on a machine without CUDA was (`--device: device 'cuda': ...`), but `--device cuda0` and
    `--dtype fp8`, refused by argparse, printed its usage block, then `latentgraph run: error:
    argument --device: ...`: every command's parser refuses in the one form now."""
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    assert capsys.readouterr().err == f"latentgraph: error: {line}\n"


def _parse_args_of_python_3_13(self, args=None, namespace=None):
    """ArgumentParser.parse_args as Python 3.13's argparse has it: with exit_on_error=False
    (every parser of the CLI's), the words no argument took are raised, ArgumentError(None,
    "unrecognized arguments: ..."), where 3.10 to 3.12 hand them to `error`."""
    namespace, extras = self.parse_known_args(args, namespace)
    if extras:
        message = f"unrecognized arguments: {' '.join(extras)}"
        if self.exit_on_error:
            self.error(message)
        raise argparse.ArgumentError(None, message)
    return namespace


@pytest.mark.parametrize(("argv", "extras"), [
    (["run", WORKFLOW, "extra"], "extra"),
    (["schema", "extra"], "extra"),
    (["cache", "clear", "extra"], "extra"),
    (["validate", WORKFLOW, "--bogus"], "--bogus"),
    (["submit", WORKFLOW, "--ray", "local"], "--ray local"),
])  # fmt: skip
def test_unrecognized_arguments_are_one_error_line_on_python_3_13_too(argv, extras, capsys,
                                                                      monkeypatch):  # fmt: skip
    """On Python 3.13 every `unrecognized arguments` was an uncaught ArgumentError, a
    traceback and exit 1: its parse_args raises it (this test gives any Python 3.13's)."""
    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", _parse_args_of_python_3_13)
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    assert capsys.readouterr().err == f"latentgraph: error: unrecognized arguments: {extras}\n"


@pytest.mark.parametrize("command", sorted(set(_documented_commands())))
def test_documented_commands_exist(command):
    argv = shlex.split(command)
    if len(argv) == 1 and argv[0] in ("run", "validate", "convert", "submit"):
        return  # the command named alone, in prose
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as stop:  # --help stops with 0: a valid command
        if stop.code != 0:
            pytest.fail(f"`latentgraph {command}` is not a valid command")
        return
    if args.command == "nodes" and args.action == "describe":
        from latentgraph.wiring import node_registry

        assert args.name and all(n in node_registry() for n in args.name), command


def test_square_brackets_in_messages_are_printed_not_read_as_rich_markup():
    """An error that names an extra (`latentgraph[upscale]`), a node id or a summary with
    brackets reaches the terminal as written."""
    import io

    from rich.console import Console

    from latentgraph.graph.console import RichProgress
    from latentgraph.graph.events import NodeFailed, NodeFinished, NodeWarning, RunStarted

    progress = RichProgress()
    out = io.StringIO()
    progress.console = Console(file=out, width=300, color_system=None)
    progress(RunStarted("r", nodes=["n[2]"]))
    progress(NodeWarning("r", node_id="w[1]", message="try [bold] things"))
    progress(NodeFinished("r", node_id="n[2]", node_type="T", summary=["IMAGE: Tensor[1, 3]"]))
    progress(NodeFailed("r", node_id="up", node_type="UpscaleModelLoader", exception_type="E",
                        message="pip install 'latentgraph[upscale]'"))  # fmt: skip
    progress.close()
    text = out.getvalue()
    assert "node 'w[1]': try [bold] things" in text
    assert "n[2] (T)" in text and "IMAGE: Tensor[1, 3]" in text
    assert "pip install 'latentgraph[upscale]'" in text


# A shared workflow file's node id and type holding a newline and escape sequences (a title
# change, a screen clear): printed raw, they forged a `success` line and drove the terminal.
FORGING_TYPE = "Nope\x1b[2J\nsuccess: 8 ran"
FORGING_ID = "a\x1b]0;TITLE\x07\x1b[31mRED\nFAKE: success"


def test_a_node_id_and_type_from_a_file_are_printed_escaped_on_one_line(cli, tmp_path):
    """`latentgraph validate esc.json` printed `error: esc.json: node '1' (Nope^[[2J` and then
    a line `success: 8 ran): ...`: the type in parentheses was printed as it came."""
    import json

    api = write(tmp_path, "esc.json", json.dumps({"1": {"class_type": FORGING_TYPE,
                                                        "inputs": {}}}))  # fmt: skip
    ours = write(tmp_path, "esc.yaml", "version: 1\nnodes:\n  " + json.dumps(FORGING_ID)
                 + ":\n    type: " + json.dumps(FORGING_TYPE) + "\n")  # fmt: skip
    for path in (api, ours):
        code, out, err = cli("validate", str(path))
        assert code == 2 and out == "", err
        first, verdict = err.splitlines()  # the error, one line, then the file's verdict
        assert "\x1b" not in err and "\x07" not in err
        assert "(Nope\\u001b[2J\\nsuccess: 8 ran): unknown node type 'Nope\\u001b[2J" in first
        assert verdict == f"{path}: 1 error(s)"
    assert "node 'a\\u001b]0;TITLE\\u0007\\u001b[31mRED\\nFAKE: success' (" in first


def test_a_run_prints_a_node_id_from_its_file_escaped(cli, tmp_path):
    """`done a^[[31mRED` then a line `FAKE (PrimitiveString) ...`: the id of a node that ran,
    as the file wrote it, in `done`, the progress and a preview's line."""
    import json

    path = write(tmp_path, "esc.yaml", "version: 1\nnodes:\n  " + json.dumps(FORGING_ID)
                 + ": {type: PrimitiveString, value: hello}\n  show: {type: PreviewAny, "
                 "source: " + json.dumps(FORGING_ID + ".STRING") + "}\n")  # fmt: skip
    code, out, err = cli("run", str(path))
    assert code == 0, err
    assert "\x1b" not in err and "\x07" not in err
    shown = "a\\u001b]0;TITLE\\u0007\\u001b[31mRED\\nFAKE: success"
    assert f"done {shown} (PrimitiveString) " in err
    assert [line for line in err.splitlines() if "FAKE" in line] == [
        line for line in err.splitlines() if shown in line]  # fmt: skip


@pytest.mark.parametrize("name, fmt", [("photo.jpg", "JPEG"), ("plain.png", "PNG"),
                                       ("photo.webp", "WEBP")])  # fmt: skip
def test_an_image_without_a_workflow_is_named_as_such(cli, tmp_path, name, fmt):
    from PIL import Image

    Image.new("RGB", (8, 8), "red").save(tmp_path / name)
    for command in ("run", "validate", "convert"):
        args = [command, name] + (["out.yaml"] if command == "convert" else [])
        code, out, err = cli(*args)
        assert code == 2, err
        assert f"{name}: a {fmt} image with no workflow in it (" in err
        assert "latentgraph and ComfyUI save theirs in PNG text chunks and WEBP EXIF)" in err
        assert "UTF-8" not in err and "Traceback" not in err


def test_a_validation_warning_in_a_run_names_its_place_and_node_once(cli, tmp_path):
    """`run` printed the place and the node twice (`wf.yaml:4:3: node 'lone' (CliNumber):
    wf.yaml:4:3: node 'lone': ...`), and --json's message held them; now the line is
    validate's, with the node's type, and the JSON message is the problem's alone."""
    import json

    path = write(tmp_path, "wf.yaml", """version: 1
nodes:
  pic: {type: CliImage, shade: 9}
  lone: {type: CliNumber, value: 1}
  look: {type: PreviewImage, images: pic}
""")  # fmt: skip
    api = write(tmp_path, "api.json", json.dumps({
        "1": {"class_type": "CliImage", "inputs": {"shade": 9, "upload": "image"}},
        "2": {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}},
    }))  # fmt: skip
    unused = "the node feeds no output node, so it will not run"
    ignored = "CliImage has no input 'upload': it is ignored"
    code, _, err = cli("run", str(path))
    assert code == 0, err
    assert f"warning: {path}:4:3: node 'lone' (CliNumber): {unused}\n" in err
    code, out, err = cli("validate", str(path))  # validate said `node 'lone': ...`
    assert code == 0 and f"warning: {path}:4:3: node 'lone' (CliNumber): {unused}\n" in err
    code, _, err = cli("run", str(api))
    assert code == 0, err
    assert f"warning: {api}: node '1' (CliImage) input 'upload': {ignored}\n" in err
    code, out, err = cli("run", str(api), "--json")
    assert code == 0, err
    [warning] = [e for e in map(json.loads, out.splitlines()) if e["event"] == "node_warning"]
    assert (warning["node_id"], warning["node_type"], warning["input"], warning["message"]) == (
        "1", "CliImage", "upload", ignored)  # as node_failed and the problems name them  # fmt: skip
