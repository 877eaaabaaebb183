import os

import pytest

from latentgraph.graph import Settings
from latentgraph.nodes import models_dirs as md


@pytest.fixture
def tree(tmp_path, monkeypatch):
    monkeypatch.setenv("LATENTGRAPH_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("LATENTGRAPH_MODELS_DIRS", raising=False)
    main = tmp_path / "models"
    (main / "checkpoints" / "sd15").mkdir(parents=True)
    (main / "checkpoints" / "a.safetensors").write_bytes(b"x")
    (main / "checkpoints" / "sd15" / "b.safetensors").write_bytes(b"x")
    (main / "checkpoints" / "old.ckpt").write_bytes(b"x")
    (main / "checkpoints" / ".hidden.safetensors").write_bytes(b"x")
    (main / "vae").mkdir()
    (main / "vae" / "v.safetensors").write_bytes(b"x")
    extra = tmp_path / "ComfyUI" / "models"
    (extra / "checkpoints").mkdir(parents=True)
    (extra / "checkpoints" / "c.safetensors").write_bytes(b"x")
    (extra / "checkpoints" / "d.sft").write_bytes(b"x")  # ComfyUI's other safetensors suffix
    (extra / "vae").mkdir()
    (extra / "vae" / "w.sft").write_bytes(b"x")
    (extra / "checkpoints" / "a.safetensors").write_bytes(b"y")  # shadowed by the main dir
    (tmp_path / "secret.safetensors").write_bytes(b"s")
    yield tmp_path, main, extra


def test_lists_safetensors_only_across_roots(tree):
    tmp, main, extra = tree
    dirs = [main, extra]
    assert md.list_files("checkpoints", dirs) == [
        "a.safetensors", "c.safetensors", "d.sft", "sd15/b.safetensors"]  # fmt: skip
    assert md.checkpoint_names(Settings(models_dirs=dirs))[0] == md.BUILTIN_CHECKPOINT
    assert md.vae_names(Settings(models_dirs=dirs)) == ["v.safetensors", "w.sft"]
    assert md.list_files("loras", dirs) == []


def test_resolve_prefers_the_first_root(tree):
    tmp, main, extra = tree
    dirs = [main, extra]
    assert (
        md.resolve("checkpoints", "a.safetensors", dirs) == main / "checkpoints" / "a.safetensors"
    )
    assert (
        md.resolve("checkpoints", "c.safetensors", dirs) == extra / "checkpoints" / "c.safetensors"
    )
    assert md.resolve("vae", "w.sft", dirs) == extra / "vae" / "w.sft"
    assert md.resolve("checkpoints", "d.sft", dirs) == extra / "checkpoints" / "d.sft"
    assert md.resolve("checkpoints", "sd15\\b.safetensors", dirs).name == "b.safetensors"


@pytest.mark.parametrize(
    "name",
    [
        "../../secret.safetensors",
        "/etc/passwd",
        "sd15/../../../secret.safetensors",
        "C:\\x.safetensors",
        "",
    ],
)
def test_resolve_refuses_paths_outside(tree, name):
    tmp, main, extra = tree
    dirs = [main, extra]
    with pytest.raises(md.ModelNotFound):
        md.resolve("checkpoints", name, dirs)


def test_resolve_refuses_pickles_and_missing_names(tree):
    tmp, main, extra = tree
    dirs = [main, extra]
    with pytest.raises(md.ModelNotFound, match="pickled"):
        md.resolve("checkpoints", "old.ckpt", dirs)
    with pytest.raises(md.ModelNotFound, match="looked in"):
        md.resolve("checkpoints", "nope.safetensors", dirs)
    with pytest.raises(md.ModelNotFound):
        md.resolve("checkpoints", ".hidden.safetensors", dirs)


def test_symlinked_folder_is_followed_without_loops(tree):
    tmp, main, extra = tree
    dirs = [main, extra]
    os.symlink(extra / "checkpoints", main / "checkpoints" / "linked")
    os.symlink(main / "checkpoints", main / "checkpoints" / "sd15" / "loop")
    names = md.list_files("checkpoints", dirs)
    assert "linked/c.safetensors" in names
    assert md.resolve("checkpoints", "linked/c.safetensors", dirs).is_file()


def test_experiment_models_shape(tree):
    tmp, main, extra = tree
    dirs = [main, extra]
    folders = {f["name"]: f["folders"] for f in md.experiment_models(dirs)}
    assert folders["checkpoints"] == [str(main / "checkpoints"), str(extra / "checkpoints")]
    entries = md.experiment_folder("checkpoints", dirs)
    assert entries[0] == {"name": md.BUILTIN_CHECKPOINT, "pathIndex": 0}
    assert {"name": "c.safetensors", "pathIndex": 1} in entries
    with pytest.raises(md.ModelNotFound):
        md.experiment_folder("../etc", dirs)
