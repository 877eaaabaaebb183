"""The temp folder: PreviewImage's files are removed when `serve` starts (as ComfyUI empties its
temp folder), but only from a folder latentgraph keeps (made or found empty, then marked), and
only the names PreviewImage writes: a --temp-dir pointing at the user's own files loses none."""

from __future__ import annotations

import pytest

import latentgraph.nodes  # noqa: F401 - registers PreviewImage and EmptyImage
from latentgraph.graph import Settings, default_registry
from latentgraph.graph.comfy_api import graph_from_prompt
from latentgraph.graph.scheduler import Scheduler
from latentgraph.nodes.temp_folder import MARKER, is_preview, keep, remove_previews
from latentgraph.server.config import ServerConfig
from latentgraph.wiring import prepare_server

PREVIEW = {
    "1": {"class_type": "EmptyImage",
          "inputs": {"width": 8, "height": 8, "batch_size": 2, "color": 7}},
    "2": {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}},
}  # fmt: skip


def previews(config: ServerConfig) -> list[str]:
    """Run PreviewImage as the server's workers do (its Settings' temp folder): its names."""
    settings = Settings(output_dir=config.output_dir, input_dir=config.input_dir,
                        temp_dir=config.temp_dir)  # fmt: skip
    result = Scheduler(default_registry, settings=settings).run(
        graph_from_prompt(PREVIEW, default_registry))  # fmt: skip
    assert result.ok, result.failures
    return [r["filename"] for r in result.ui["2"]["images"]]


def test_each_serve_start_removes_the_previews_earlier_starts_left(tmp_path, capsys):
    """Five restarts left 30 previews in ./temp: each start now removes the earlier ones."""
    config = ServerConfig(data_dir=tmp_path / "data", output_dir=tmp_path / "output",
                          input_dir=tmp_path / "input", temp_dir=tmp_path / "temp")  # fmt: skip
    for _ in range(3):
        prepare_server(config)
        assert sorted(p.name for p in config.temp_dir.iterdir()) == [MARKER]
        names = previews(config)
        assert names == ["preview_00001_.png", "preview_00002_.png"]
        assert all(is_preview(n) for n in names)
    assert "previews" not in capsys.readouterr().err


def test_previewimage_marks_the_temp_folder_it_makes(tmp_path):
    """`run` (or the Python API) making ./temp for its previews: `serve` clears it later."""
    config = ServerConfig(data_dir=tmp_path / "data", temp_dir=tmp_path / "new" / "temp")
    previews(config)
    assert (config.temp_dir / MARKER).is_file()
    prepare_server(config)
    assert sorted(p.name for p in config.temp_dir.iterdir()) == [MARKER]


def test_a_temp_folder_holding_the_users_files_is_never_cleared(tmp_path, capsys):
    folder = tmp_path / "pictures"
    folder.mkdir()
    (folder / "cat.png").write_bytes(b"mine")
    config = ServerConfig(data_dir=tmp_path / "data", temp_dir=folder)
    names = previews(config)  # PreviewImage does not mark a folder with files in it
    prepare_server(config)
    assert sorted(p.name for p in folder.iterdir()) == ["cat.png", *names]
    err = capsys.readouterr().err
    assert err == (f"latentgraph: note: 2 previews are left in the temp folder {folder}: "
                   f"latentgraph did not make it (it has no {MARKER} file), so nothing there "
                   "is removed; delete them yourself, or add that file to have serve remove "
                   "them when it starts\n")  # fmt: skip
    (folder / MARKER).write_text("")  # the user's choice
    prepare_server(config)
    assert sorted(p.name for p in folder.iterdir()) == [MARKER, "cat.png"]


def test_only_the_names_previewimage_writes_are_removed(tmp_path):
    folder = tmp_path / "temp"
    keep(folder)
    kept = ["cat.png", "preview_1_.png", "Preview_00001_.png", "preview_00001_.png.txt",
            "preview_00001_.jpg", "xpreview_00001_.png", ".saving-1a2b.png", MARKER]  # fmt: skip
    for name in kept[:-1] + ["preview_00001_.png", "preview_123456_.png"]:
        (folder / name).write_bytes(b"x")
    (folder / "sub").mkdir()
    (folder / "sub" / "preview_00001_.png").write_bytes(b"x")
    (folder / "preview_00002_.png").mkdir()  # a folder of that name
    (tmp_path / "elsewhere.png").write_bytes(b"x")
    (folder / "preview_00003_.png").symlink_to(tmp_path / "elsewhere.png")
    assert remove_previews(folder) is None
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        kept + ["sub", "preview_00002_.png", "preview_00003_.png"])  # fmt: skip
    assert (folder / "sub" / "preview_00001_.png").is_file()
    assert (tmp_path / "elsewhere.png").is_file()


@pytest.mark.parametrize("where", ["output", "output/temp", "input"])
def test_a_temp_folder_that_is_or_lies_in_the_output_or_input_folder_is_not_cleared(tmp_path,
                                                                                    where):  # fmt: skip
    """SaveImage with the prefix 'preview' names its files as PreviewImage does."""
    output, inputs = tmp_path / "output", tmp_path / "input"
    temp = tmp_path / where
    keep(temp)
    (temp / "preview_00001_.png").write_bytes(b"saved")
    assert remove_previews(temp, (output, inputs)) is None
    assert (temp / "preview_00001_.png").is_file()


def test_keep_marks_only_a_missing_or_empty_folder(tmp_path):
    keep(tmp_path / "missing")
    assert (tmp_path / "missing" / MARKER).read_text().startswith("latentgraph keeps its previews")
    (tmp_path / "empty").mkdir()
    keep(tmp_path / "empty")
    assert (tmp_path / "empty" / MARKER).is_file()
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "a.txt").write_text("a")
    keep(tmp_path / "used")
    assert not (tmp_path / "used" / MARKER).exists()
    (tmp_path / "afile").write_text("a")
    keep(tmp_path / "afile")  # left to the write that needs it, which names the problem
    assert (tmp_path / "afile").read_text() == "a"


def test_one_preview_left_is_said_in_the_singular(tmp_path):
    folder = tmp_path / "pictures"
    folder.mkdir()
    (folder / "cat.png").write_bytes(b"mine")
    (folder / "preview_00001_.png").write_bytes(b"x")
    assert remove_previews(folder).startswith("1 preview is left in the temp folder ")
