from pathlib import Path

import pytest

from latentgraph.cli import main

PLUGIN = Path(__file__).parent / "plugin"


@pytest.fixture
def cli(tmp_path, monkeypatch, capsys):
    """Run `latentgraph ARGS` in-process with the toy plugin; returns (exit code, stdout, stderr)."""
    monkeypatch.chdir(tmp_path)

    def run(*args: str, plugin: bool = True):
        argv = list(args)
        if plugin and argv and argv[0] in ("run", "validate", "nodes"):
            argv += ["--nodes-dir", str(PLUGIN)]
        if argv and argv[0] == "run":
            argv += ["--cache-dir", str(tmp_path / "cache")]
        code = main(argv)
        out, err = capsys.readouterr()
        return code, out, err

    return run


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path
