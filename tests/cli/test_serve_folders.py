"""Where `latentgraph serve` keeps its folders, as docs/comfy-compat.md says: input, output and
temp in the working directory by default (not under --data-dir), and the last models root is
`models/` in the user data directory ($LATENTGRAPH_DATA_DIR), whatever --data-dir says."""

from pathlib import Path

from latentgraph.graph.paths import models_roots

from .test_serve_flags import serve

__all__ = ["serve"]  # the fixture, shared

DOC = (Path(__file__).resolve().parents[2] / "docs" / "comfy-compat.md").read_text()


def test_serve_reads_input_and_writes_output_and_temp_in_the_working_directory(serve, tmp_path):
    code, err, config = serve("--data-dir", str(tmp_path / "data"))
    assert code == 0, err
    assert (config.input_dir, config.output_dir, config.temp_dir) == (
        tmp_path / "input", tmp_path / "output", tmp_path / "temp")  # fmt: skip
    assert "`latentgraph serve` from its `--input-dir` (default `./input`" in " ".join(DOC.split())


def test_the_models_root_is_in_the_user_data_directory_not_under_serve_data_dir(
    serve, tmp_path, monkeypatch
):
    monkeypatch.setenv("LATENTGRAPH_DATA_DIR", str(tmp_path / "user-data"))
    code, err, config = serve("--data-dir", str(tmp_path / "data"))
    assert code == 0, err
    roots = models_roots(config.models_dirs)
    assert roots[-1] == tmp_path / "user-data" / "models"
    assert tmp_path / "data" / "models" not in roots
    assert "`<data dir>/models`" not in DOC and "`$LATENTGRAPH_DATA_DIR`" in DOC
