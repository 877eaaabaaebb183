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
    with pytest.raises(md.ModelNotFound, match="pickle-based file"):
        md.resolve("checkpoints", "old.ckpt", dirs)
    with pytest.raises(md.ModelNotFound, match="looked in"):
        md.resolve("checkpoints", "nope.safetensors", dirs)
    with pytest.raises(md.ModelNotFound):
        md.resolve("checkpoints", ".hidden.safetensors", dirs)


@pytest.mark.parametrize(("folder", "kind"), [("loras", "LoRA"), ("checkpoints", "checkpoint"),
                                              ("controlnet", "ControlNet or T2I-Adapter"),
                                              ("upscale_models", "upscale model")])  # fmt: skip
def test_a_missing_model_is_named_by_its_kind_in_words_users_know(tree, folder, kind):
    """It read "loras model 'x' not found": the folder's name where its kind was meant."""
    tmp, main, extra = tree
    with pytest.raises(md.ModelNotFound) as caught:
        md.resolve(folder, "x.safetensors", [main, extra])
    assert str(caught.value).startswith(f"{kind} 'x.safetensors' not found ("), caught.value


@pytest.mark.parametrize("kind", [kind for kind, k in md.KINDS.items() if k.loader])
def test_the_loader_a_kind_points_to_is_a_node_in_each_dialect(kind):
    """A file given to the wrong loader is pointed to its kind's (`model_presets.loader_name`):
    a node of that name must exist, ours among ours and ComfyUI's among ComfyUI's."""
    from latentgraph.graph import default_registry
    from latentgraph.nodes import comfy
    from latentgraph.nodes.model_presets import loader_name

    declared = md.KINDS[kind]
    assert default_registry[loader_name(kind, comfy=False)].name == declared.loader
    if declared.comfy_loader is not None:
        assert loader_name(kind, comfy=True) in comfy.comfy_registry.names()


def test_symlinked_folder_is_followed_without_loops(tree):
    tmp, main, extra = tree
    dirs = [main, extra]
    os.symlink(extra / "checkpoints", main / "checkpoints" / "linked")
    os.symlink(main / "checkpoints", main / "checkpoints" / "sd15" / "loop")
    names = md.list_files("checkpoints", dirs)
    assert "linked/c.safetensors" in names
    assert md.resolve("checkpoints", "linked/c.safetensors", dirs).is_file()


def test_an_alias_link_lists_both_names_and_a_loop_still_ends(tree):
    """`vae/Alias -> sub`, a link kept so old workflows' names resolve, hid sub/ (each real
    folder was walked once, under whichever name sorted first: `sub_link` hid the link
    instead), so a workflow naming the other was refused. Every name is listed and resolves,
    as ComfyUI lists them; a link into its own ancestors (`up -> ..`) still ends the walk."""
    tmp, main, extra = tree
    sub = main / "vae" / "sub"
    sub.mkdir()
    (sub / "k.safetensors").write_bytes(b"x")
    os.symlink("sub", main / "vae" / "Alias")  # sorts before sub
    os.symlink("sub", main / "vae" / "sub_link")  # sorts after it
    os.symlink("..", sub / "up")  # back to vae/: a loop
    names = md.list_files("vae", [main])
    assert names == ["Alias/k.safetensors", "sub/k.safetensors", "sub_link/k.safetensors",
                     "v.safetensors"]  # fmt: skip
    for name in names:
        assert md.resolve("vae", name, [main]).is_file()


def test_folders_reached_again_through_links_are_walked_a_bounded_number_of_times(
    tree, monkeypatch, caplog
):
    """Links are followed to every folder they reach, so links to links could make a listing
    walk the same folders without end (two links per level, 2^depth paths): past
    `_MAX_REVISITS` folders reached again the rest is left out, with one warning."""
    from latentgraph.graph import paths

    tmp, main, extra = tree
    monkeypatch.setattr(paths, "_MAX_REVISITS", 5)
    level = main / "loras"
    for depth in range(4):
        (level / "deeper").mkdir(parents=True)
        (level / f"l{depth}.safetensors").write_bytes(b"x")
        os.symlink("deeper", level / "again")
        level = level / "deeper"
    with caplog.at_level("WARNING", logger="latentgraph.paths"):
        names = md.list_files("loras", [main])
    assert "l0.safetensors" in names and "deeper/l1.safetensors" in names
    assert len(names) < 2 + 4 + 8 + 16  # every path to every level: 30
    assert caplog.text.count("reached again through links") == 1, caplog.text


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


def test_an_a1111_models_root_is_read_controlnet_included(tree):
    """An A1111 install's models/ has Stable-diffusion/, Lora/, VAE/ and ControlNet/: the
    last was not read (ComfyUI's example maps controlnet to models/ControlNet there)."""
    tmp, _, _ = tree
    root = tmp / "webui" / "models"
    for kind, name in (("Stable-diffusion", "sd.safetensors"), ("Lora", "l.safetensors"),
                       ("VAE", "v2.safetensors"), ("ControlNet", "canny.safetensors")):  # fmt: skip
        (root / kind).mkdir(parents=True)
        (root / kind / name).write_bytes(b"x")
    assert md.list_files("checkpoints", [root]) == ["sd.safetensors"]
    assert md.list_files("loras", [root]) == ["l.safetensors"]
    assert md.list_files("vae", [root]) == ["v2.safetensors"]
    assert md.list_files("controlnet", [root]) == ["canny.safetensors"]
    assert (
        md.resolve("controlnet", "canny.safetensors", [root])
        == root / "ControlNet" / "canny.safetensors"
    )
    assert md.root_warning(root) is None


def test_kind_folders_are_searched_in_their_place_among_the_roots(tree):
    """An extra_model_paths.yaml's per-kind folder (`KindFolder`) stands among the roots: the
    kind it names lists and resolves its files, in the order given; other kinds skip it."""
    from latentgraph.graph.paths import KindFolder

    tmp, main, extra = tree
    mine = tmp / "my-checkpoints"
    mine.mkdir()
    (mine / "a.safetensors").write_bytes(b"z")
    (mine / "e.safetensors").write_bytes(b"z")
    dirs = [KindFolder("checkpoints", mine), main, KindFolder("clip", tmp / "nowhere")]
    settings = Settings(models_dirs=dirs)
    assert md.list_files("checkpoints", settings.models_dirs) == [
        "a.safetensors", "e.safetensors", "sd15/b.safetensors"]  # fmt: skip
    assert md.resolve("checkpoints", "a.safetensors", dirs) == mine / "a.safetensors"
    assert md.folder_paths("vae", dirs) == [main / "vae"]
    assert md.folder_paths("text_encoders", dirs) == []
