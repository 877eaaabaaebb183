"""Every bad workflow file in the corpus: exit code 2, no traceback, the place named.

Cases live in corpus_cli.py (one parametrized test each). `validate` cases never touch torch;
`run` cases (bad model files, file names leaving the output folder) run in-process on the
built-in tiny model. Nothing may be written outside the output/input folders, nothing partial.
"""

from __future__ import annotations

import contextlib
import io
import re
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import new_files, partial, snapshot
from .corpus_cli import CASES, VALID, CliCase

ALLOWED = ("work/output/", "work/input/", "work/temp/")


def run_cli(case: CliCase, root: Path, monkeypatch) -> tuple[int, str, Path]:
    work = root / "work"
    work.mkdir(parents=True)
    path = work / f"case{case.suffix}"
    path.write_bytes(case.data())
    for name, data in case.files:
        target = work / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    monkeypatch.chdir(work)
    from latentgraph.cli import main

    err, out = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        code = main([case.command, str(path), *case.args])
    return code, err.getvalue() + out.getvalue(), path


def error_lines(text: str) -> str:
    return "\n".join(line for line in text.splitlines() if not line.startswith("warning"))


def check_case(case: CliCase, code: int, text: str, path: Path) -> None:
    assert "Traceback" not in text, text
    assert code == 2, f"exit {code}\n{text}"
    errors = " ".join(error_lines(text).split())  # rich wraps long lines
    for pattern in case.expect:
        regex = pattern.replace("{file}", re.escape(str(path)))
        assert re.search(regex, errors), f"{pattern!r} not in:\n{errors}"


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_workflow(case: CliCase, tmp_path, monkeypatch):
    root = tmp_path / "a" / "b"
    root.mkdir(parents=True)
    before = snapshot(tmp_path)
    code, text, path = run_cli(case, root, monkeypatch)
    check_case(case, code, text, path)
    written = [n for n in new_files(before, tmp_path) if not n.startswith("a/b/work/case")]
    written = [n for n in written if not any(n.startswith("a/b/" + f) for f, _ in
                                              [("work/" + name, 0) for name, _ in case.files])]  # fmt: skip
    outside = [n for n in written if not n.startswith(tuple("a/b/" + a for a in ALLOWED))]
    assert not outside, f"written outside output/input: {outside}"
    assert not partial(written), written
    assert not [n for n in written if n.endswith(".png")], "an image was saved by a failed run"
    assert not Path("/tmp/lg-h7-escape_00001_.png").exists()


@pytest.mark.parametrize("case", VALID, ids=[c.id for c in VALID])
def test_corpus_base_documents_are_valid(case: CliCase, tmp_path, monkeypatch):
    """Guard: the documents the cases break are themselves valid, so each case fails for
    its own reason (node declarations change; this test says so first)."""
    code, text, _ = run_cli(case, tmp_path, monkeypatch)
    assert code == 0, text


SUBPROCESS_CASES = ["yaml-alias-bomb", "json-deep", "guidance-nan", "model-pickle-ckpt"]


@pytest.mark.parametrize("case_id", SUBPROCESS_CASES)
def test_bad_workflow_in_a_subprocess(case_id: str, tmp_path):
    """The installed command, not just main(): same exit code and message."""
    case = next(c for c in CASES if c.id == case_id)
    path = tmp_path / f"case{case.suffix}"
    path.write_bytes(case.data())
    for name, data in case.files:
        (tmp_path / name).write_bytes(data)
    command = "validate" if case.command == "run" else case.command  # keep torch out
    proc = subprocess.run([sys.executable, "-m", "latentgraph.cli", command, str(path),
                           *(case.args if command == case.command else ())],
                          cwd=tmp_path, capture_output=True, text=True, timeout=60)  # fmt: skip
    text = proc.stderr + proc.stdout
    check_case(case, proc.returncode, text, path)  # pickle sources: refused by validate too
    assert not (tmp_path / "PWNED").exists()
