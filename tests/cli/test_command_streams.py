"""How `latentgraph` writes and starts, whatever it is started from: a stdout that is not UTF-8
gets escapes, never a usage error; `python -m latentgraph` and `--version` work."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import yaml

from latentgraph import cli as cli_module

from .conftest import write

CACHE_ENV = "LATENTGRAPH_CACHE_DIR"


def _latentgraph(tmp_path, *args: str, module: str = "latentgraph.cli", raw: bool = False,
                 **env: str):  # fmt: skip
    """`python -m MODULE ARGS` in `tmp_path`, its cache there, with `env` added; its output read
    in the encoding it was told to write (`PYTHONIOENCODING`), or as bytes (`raw`)."""
    encoding = None if raw else env.get("PYTHONIOENCODING", "utf-8")
    env = {**os.environ, CACHE_ENV: str(tmp_path / "cache"), **env}
    return subprocess.run([sys.executable, "-m", module, *args], cwd=tmp_path, env=env,
                          capture_output=True, encoding=encoding, timeout=300)  # fmt: skip


# --- a stdout that is not UTF-8 ---------------------------------------------------------------

UNICODE = """
version: 1
nodes:
  text:
    type: PrimitiveString
    value: "図 ü"
  show:
    type: PreviewAny
    source: text
"""


@pytest.mark.parametrize("encoding", ["ascii", "latin-1"])
def test_every_printing_command_escapes_what_stdout_cannot_encode(tmp_path, encoding):
    """`nodes`, `nodes describe` and `cache` (and the documents on stdout, below) exited 2 with
    a bare "'ascii' codec can't encode" on a stdout that is not UTF-8, reported as a usage
    error; `run` and `validate` coped only because their text went to stderr."""
    write(tmp_path, "wf 図.yaml", UNICODE)
    commands = [["nodes"], ["nodes", "describe", "KSampler"], ["validate", "wf 図.yaml"]]
    for args in commands:
        proc = _latentgraph(tmp_path, *args, PYTHONIOENCODING=encoding)
        assert proc.returncode == 0, (args, proc.stderr)
        assert "codec" not in proc.stderr and proc.stdout, args
    assert "wf \\u56f3.yaml: ok" in proc.stdout  # validate's verdict, the name escaped
    proc = _latentgraph(tmp_path, "cache", PYTHONIOENCODING=encoding,
                        **{CACHE_ENV: str(tmp_path / "c 図")})  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert f"folder:  {tmp_path}/c \\u56f3/outputs (not made yet)\n" in proc.stdout


CAFE = """
version: 1
params:
  prompt: café ☕
nodes:
  text:
    type: PrimitiveString
    value: $prompt
"""


@pytest.mark.parametrize("encoding", ["ascii", "latin-1"])
def test_a_document_written_to_stdout_is_its_utf8_bytes_whatever_the_encoding(tmp_path, encoding):
    """`convert wf.yaml - --to yaml` on an ASCII stdout wrote `prompt: caf\\xe9 \\u2615`, exit 0:
    a plain YAML scalar, which reads back as another prompt. A document on stdout is data: the
    bytes the same command writes to a file (`nodes --markdown`'s too, docs/nodes.md)."""
    write(tmp_path, "wf.yaml", CAFE)
    proc = _latentgraph(tmp_path, "convert", "wf.yaml", "-", "--to", "yaml", raw=True,
                        PYTHONIOENCODING=encoding)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert yaml.safe_load(proc.stdout.decode("utf-8"))["params"]["prompt"] == "café ☕"
    assert _latentgraph(tmp_path, "convert", "wf.yaml", "out.yaml", "--to", "yaml").returncode == 0
    assert proc.stdout == (tmp_path / "out.yaml").read_bytes()
    proc = _latentgraph(tmp_path, "convert", "wf.yaml", "-", "--to", "api", raw=True,
                        PYTHONIOENCODING=encoding)  # fmt: skip
    assert proc.returncode == 0 and "café ☕" in proc.stdout.decode("utf-8"), proc.stderr
    proc = _latentgraph(tmp_path, "nodes", "--markdown", raw=True, PYTHONIOENCODING=encoding)
    assert proc.returncode == 0, proc.stderr
    assert "\u00d7" in proc.stdout.decode("utf-8") and b"\\xd7" not in proc.stdout


def test_an_encoding_error_is_never_a_usage_error(cli, monkeypatch, capsys):
    """A UnicodeEncodeError is a ValueError, which `main` took for the user's input (exit 2):
    the streams escape what they cannot encode, so one coming through is a bug (exit 70)."""

    def fails(args):
        "x".encode("ascii") + "図".encode("ascii")

    monkeypatch.setitem(cli_module.COMMANDS, "nodes", fails)
    errors = sys.stdout.errors
    code, _, err = cli("nodes", plugin=False)
    assert code == 70 and err.startswith("latentgraph: internal error: UnicodeEncodeError: ")
    assert sys.stdout.errors == errors  # a caller in this process keeps its streams as they were


# --- python -m latentgraph, --version ----------------------------------------------------------


def test_python_m_latentgraph_runs_the_command_and_version_names_the_installed_one(tmp_path):
    """`python -m latentgraph` said "No module named latentgraph.__main__", the fallback when
    the script is not on PATH; there was no --version."""
    from importlib.metadata import version

    proc = _latentgraph(tmp_path, "--version", module="latentgraph")
    assert proc.returncode == 0 and proc.stdout == f"latentgraph {version('latentgraph')}\n"
    write(tmp_path, "u.yaml", UNICODE)
    proc = _latentgraph(tmp_path, "validate", "u.yaml", module="latentgraph")
    assert proc.returncode == 0 and proc.stdout == "u.yaml: ok (2 nodes)\n", proc.stderr
