"""`latentgraph submit` brings back every file the run saved, whatever its kind."""

from __future__ import annotations

from pathlib import Path

from safetensors.torch import load_file

from latentgraph.server.submit import submit

from .test_server_classic import real_server  # noqa: F401 - the fixture

WORKFLOWS = Path(__file__).parents[2] / "workflows"


def test_submit_downloads_every_file_a_node_saved_not_only_images(real_server, tmp_path):  # noqa: F811
    """merge.yaml saves a PNG and a checkpoint: the summary names both as saved, so both come
    back (only `images` records were downloaded: the checkpoint stayed on the server)."""
    out = tmp_path / "out"
    assert submit(WORKFLOWS / "merge.yaml", real_server.url, {}, output_dir=out, quiet=True) == 0
    [checkpoint] = (out / "checkpoints").glob("merged_*.safetensors")
    assert load_file(checkpoint)  # the whole file, readable
    assert list(out.glob("merge_*.png"))
