"""docs/custom-nodes.md is true: its plugin and workflow, copied into files, run as it says, and
the mistakes it quotes are reported as it quotes them. Each command runs in a new process (a
plugin registers its nodes in the process that loads it)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib
from PIL import Image

from latentgraph.graph.plugins import ENTRY_POINT_GROUP

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "custom-nodes.md").read_text()
BLOCKS = re.findall(r"^```(python|yaml|toml)\n(.*?)^```$", DOC, flags=re.S | re.M)


def _latentgraph(folder: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", "import sys; from latentgraph.cli import main; sys.exit(main())",
         *args], cwd=folder, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


@pytest.fixture
def copied(tmp_path) -> Path:
    """The doc's files, each written where its first line (`# path`) says."""
    for kind, body in BLOCKS:
        first = body.splitlines()[0]
        if kind != "toml":
            assert first.startswith("# "), first
            path = tmp_path / first[2:].strip()
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(body)
    return tmp_path


def test_the_first_node_runs_as_the_doc_says(copied):
    assert sorted(str(p.relative_to(copied)) for p in copied.rglob("*.*")) == [
        "inverted.yaml", "my_nodes/colors.py"]  # fmt: skip
    [shell] = [body for kind, body in re.findall(r"^```(\w+)\n(.*?)^```$", DOC, re.S | re.M)
               if kind == "sh"]  # fmt: skip
    run, describe = [line.split()[1:] for line in shell.splitlines()]
    out = _latentgraph(copied, *run, "--cache-dir", str(copied / "cache"))
    assert out.returncode == 0, out.stderr
    assert "shout: DONE!" in out.stdout + out.stderr
    with Image.open(copied / "output" / "inverted_00001_.png") as image:
        assert image.size == (64, 64) and image.getpixel((3, 3)) == (0, 255, 255)  # cyan
    described = _latentgraph(copied, *describe)
    assert described.returncode == 0, described.stderr
    assert "amount: FLOAT (value or link, default 1.0; min 0; max 1)" in described.stdout


def test_the_quoted_declaration_mistake_is_reported_as_quoted(copied):
    plugin = copied / "my_nodes" / "colors.py"
    plugin.write_text(plugin.read_text().replace('Float("amount", 1.0,', 'Float("amount", 2.0,'))
    quoted = re.search(r"`(node plugin my_nodes/colors\.py failed to load: .*?)`", DOC, re.S)
    out = _latentgraph(copied, "validate", "--nodes-dir", "my_nodes", "inverted.yaml")
    assert out.returncode == 2
    assert " ".join(quoted.group(1).split()) in out.stderr


def test_the_entry_point_example_names_our_group():
    [toml] = [body for kind, body in BLOCKS if kind == "toml"]
    groups = tomllib.loads(toml)["project"]["entry-points"]
    assert list(groups) == [ENTRY_POINT_GROUP]
    assert groups[ENTRY_POINT_GROUP] == {"my_nodes": "my_nodes.colors"}


def test_the_models_folder_dropdown_the_doc_gives_answers_as_the_built_in_loaders_do(tmp_path):
    """The doc's `model_choice(...)` and `resolve(...)`, put in a plugin: a LoRA not there is
    refused with the loaders' advice, and one there is read back as its file."""
    declared = re.search(r"`latentgraph\.nodes\.models_dirs\.(model_choice\(.*?\))`", DOC).group(1)
    resolved = re.search(r"`(resolve\(.*?\))`", DOC).group(1)
    (tmp_path / "pack").mkdir()
    (tmp_path / "pack" / "lora_path.py").write_text(
        "from latentgraph.graph import STRING, Output, node\n"
        "from latentgraph.nodes.models_dirs import list_files, model_choice, resolve\n\n\n"
        f'@node("LoraPath", inputs=[{declared}], outputs=[Output("path", STRING)])\n'
        f"def lora_path(ctx, lora):\n    return (str({resolved}),)\n"
    )  # fmt: skip
    (tmp_path / "models" / "loras").mkdir(parents=True)
    (tmp_path / "models" / "loras" / "mine.safetensors").write_bytes(b"x")
    for name in ("nothere.safetensors", "mine.safetensors"):
        (tmp_path / "w.yaml").write_text(
            f"version: 1\nnodes:\n  p: {{type: LoraPath, lora: {name}}}\n"
            "  show: {type: PreviewAny, source: p.path}\n"
        )  # fmt: skip
        out = _latentgraph(tmp_path, "run", "--nodes-dir", "pack", "--models-dir", "models",
                           "--cache-dir", "cache", "w.yaml")  # fmt: skip
        if name == "nothere.safetensors":
            assert out.returncode == 2
            assert "'nothere.safetensors' is not one of: 'mine.safetensors'" in out.stderr
            assert "pickled files (.ckpt, .pt, .pth, .bin) are never listed" in out.stderr
        else:
            assert out.returncode == 0, out.stderr
            assert "show: models/loras/mine.safetensors" in out.stdout + out.stderr
