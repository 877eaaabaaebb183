"""Bad input gives clear errors naming the node; models load once; files are written safely."""

from __future__ import annotations

from pathlib import Path

import pytest

from latentgraph.nodes import images, latents, loaders, model_presets, vae
from latentgraph.nodes.model_manager import manager
from latentgraph.nodes.values import NodeInputError


def test_missing_model_file(make_ctx, cache_dir, tmp_path):
    ctx = make_ctx("LoadModel", node_id="model")
    with pytest.raises(
        NodeInputError, match=r"node 'model' \(LoadModel\) input 'source'.*not found"
    ):
        loaders.load_model(ctx, str(tmp_path / "nope.safetensors"))


def test_pickle_checkpoint_refused(make_ctx, tmp_path):
    bad = tmp_path / "model.ckpt"
    bad.write_bytes(b"not even a pickle")
    with pytest.raises(NodeInputError, match=r"'model'.*pickle"):
        loaders.load_model(make_ctx("LoadModel", node_id="model"), str(bad))


def test_corrupt_checkpoint(make_ctx, tiny_folder, tmp_path):
    bad = tmp_path / "broken.safetensors"
    bad.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all}")
    with pytest.raises(NodeInputError, match=r"node 'model' \(LoadModel\) input 'source'"):
        loaders.load_model(make_ctx("LoadModel", node_id="model"), str(bad), "builtin:tiny-sd")
    with pytest.raises(NodeInputError, match=r"could not load"):
        loaders.load_model(make_ctx("LoadModel", node_id="model"), str(bad), "auto")
    assert not any(k.startswith(str(bad.resolve())) for k in manager().keys())


def test_a_builtin_model_without_a_recipe_is_refused_not_built_as_another():
    """A built-in name with no recipe of its own (a sixth added to the dropdown's list and
    forgotten here) was built, and keyed, as builtin:tiny-sdxl."""
    from latentgraph.nodes.models_dirs import BUILTIN_CHECKPOINTS

    for ask in (model_presets.builtin_path, model_presets.builtin_folder,
                model_presets.builtin_version):  # fmt: skip
        with pytest.raises(ValueError, match=r"^unknown built-in model 'builtin:tiny-new'; "):
            ask("builtin:tiny-new")
    assert list(model_presets.RECIPES) == list(BUILTIN_CHECKPOINTS)


def test_offline_hub_id(make_ctx, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(NodeInputError, match=r"'model'.*hub id.*local"):
        loaders.load_model(make_ctx("LoadModel", node_id="model"), "someone/some-model")


def test_an_unreachable_hub_is_one_line_with_the_librarys_first(make_ctx, monkeypatch):
    """README: each problem is one line. huggingface_hub's error goes on for lines of advice
    of its own; the message keeps ours and its type and first line only."""
    import huggingface_hub

    def unreachable(*args, **kwargs):
        raise huggingface_hub.errors.LocalEntryNotFoundError(
            "Got: ConnectError: [Errno -2] Name or service not known\nAn error happened while "
            "trying to locate the files on the Hub. Please check your internet connection."
        )

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", unreachable)
    with pytest.raises(NodeInputError) as caught:
        loaders.load_model(make_ctx("LoadModel", node_id="model"), "someone/some-model")
    message = str(caught.value)
    assert "\n" not in message and "Please check" not in message
    assert message.endswith("(LocalEntryNotFoundError: Got: ConnectError: [Errno -2] Name or "
                            "service not known)")  # fmt: skip
    assert "hub id 'someone/some-model' could not be fetched" in message


def test_a_librarys_error_as_one_line():
    from latentgraph.graph.problems import error_line

    assert error_line(RuntimeError("Error(s) in loading:\n\tsize mismatch")) == (
        "RuntimeError: Error(s) in loading"
    )
    assert error_line(OSError("\n  first\r\nsecond")) == "OSError: first"
    assert error_line(ValueError()) == "ValueError"
    assert error_line(ValueError("a \x1b[31m b")) == "ValueError: a \\u001b[31m b"


def test_width_not_a_multiple_of_the_scale_factor(make_ctx, tiny):
    ctx = make_ctx("LatentNoise", node_id="noise")
    with pytest.raises(NodeInputError, match=r"'noise' \(LatentNoise\) input 'width'.*multiple.*8"):
        latents.latent_noise(ctx, 33, 32, 1, 0, vae=tiny[2])
    with pytest.raises(NodeInputError, match=r"'height'.*multiple of .* 8"):
        latents.latent_noise(ctx, 64, 60, 1, 0)


def test_wrong_sized_image_for_vae_encode(make_ctx, tiny):
    import torch

    ctx = make_ctx("VAEEncode", node_id="encode")
    out = vae.vae_encode(ctx, pixels=torch.rand(1, 31, 32, 3), vae=tiny[2])
    assert tuple(out.samples.shape[-2:]) == (3, 4)  # cropped to 24x32, as ComfyUI does
    assert "cropped to 32x24" in ctx.rec.warnings[0]
    with pytest.raises(NodeInputError, match=r"'encode' \(VAEEncode\) input 'pixels'.*at least"):
        vae.vae_encode(ctx, pixels=torch.rand(1, 1, 32, 3), vae=tiny[2])
    with pytest.raises(
        NodeInputError, match=r"'encode' \(VAEEncode\) input 'pixels'.*\[B, H, W, 3\]"
    ):
        vae.vae_encode(ctx, pixels=torch.rand(32, 32, 3), vae=tiny[2])


def test_model_loaded_once(make_ctx, tiny):
    before = manager().loads
    a = loaders.load_model(make_ctx("LoadModel", node_id="a"), "builtin:tiny-sd")
    b = loaders.load_model(make_ctx("LoadModel", node_id="b"), "builtin:tiny-sd")
    assert manager().loads == before
    assert a[0].unet is b[0].unet is tiny[0].unet
    assert a[1].text_encoder is tiny[1].text_encoder


def test_manager_evicts_least_recently_used():
    from latentgraph.nodes.model_manager import ModelManager

    m = ModelManager(ram_budget=100)
    m.get("a", lambda: "A", size=lambda v: 60)
    m.get("b", lambda: "B", size=lambda v: 30)
    m.get("a", lambda: "A2")  # touch a: b is now the oldest
    m.get("c", lambda: "C", size=lambda v: 30)
    assert m.keys() == ["a", "c"] and m.loads == 3
    m.free()
    assert m.keys() == []


def test_save_image_counter_subfolder_and_chunks(make_ctx):
    import torch
    from PIL import Image

    ctx = make_ctx("SaveImage", node_id="save")
    ctx.extra.update({"prompt": {"1": {"class_type": "X"}}, "latentgraph": "version: 1\n"})
    img = torch.rand(2, 8, 8, 3)
    r1 = images.save_image(ctx, img, "sub/pic").ui["images"]
    r2 = images.save_image(ctx, img[:1], "sub/pic").ui["images"]
    names = [r["filename"] for r in r1 + r2]
    assert names == ["pic_00001_.png", "pic_00002_.png", "pic_00003_.png"]
    assert {r["subfolder"] for r in r1} == {"sub"} and r1[0]["type"] == "output"
    out = Path(ctx.settings.output_dir) / "sub"
    assert sorted(p.name for p in out.iterdir()) == names  # no temp files left
    with Image.open(out / names[0]) as png:
        assert png.text["prompt"] == '{"1": {"class_type": "X"}}'
        assert png.text["latentgraph"] == "version: 1\n"
        assert "workflow" not in png.text


@pytest.mark.parametrize("prefix", ["../escape", "/tmp/abs", "a/../../b"])
def test_save_image_prefix_cannot_escape(make_ctx, prefix):
    import torch

    ctx = make_ctx("SaveImage", node_id="save")
    with pytest.raises(
        NodeInputError, match=r"'save' \(SaveImage\) input 'filename_prefix'.*outside"
    ):
        images.save_image(ctx, torch.rand(1, 4, 4, 3), prefix)


def test_load_image_refuses_traversal_and_reads_files(make_ctx, tmp_path):
    from PIL import Image

    ctx = make_ctx("LoadImage", node_id="pic")
    Path(ctx.settings.input_dir).mkdir(parents=True)
    Image.new("RGB", (6, 4), (255, 0, 0)).save(Path(ctx.settings.input_dir) / "red.png")
    t, mask = images.load_image(ctx, "red.png")
    assert t.shape == (1, 4, 6, 3) and float(t[0, 0, 0, 0]) == 1.0
    assert mask.shape == (1, 64, 64) and float(mask.max()) == 0.0  # no alpha: ComfyUI's mask
    with pytest.raises(NodeInputError, match="outside its folder"):
        images.load_image(ctx, "../secret.png")
    with pytest.raises(NodeInputError, match="no such file"):
        images.load_image(ctx, "missing.png")


def test_image_grid(make_ctx):
    import torch

    a, b = torch.zeros(2, 4, 6, 3), torch.ones(1, 4, 6, 3)
    grid = images.image_grid(make_ctx("ImageGrid"), a, images_2=b)
    assert grid.shape == (1, 8, 12, 3)
    assert float(grid[0, 4:, :6].min()) == 1.0 and float(grid[0, 4:, 6:].max()) == 0.0


def test_a_comfy_loaders_file_error_names_its_own_input(make_ctx, tmp_path):
    """CheckpointLoaderSimple and VAELoader run LoadModel's and LoadVAE's loading: an error
    about the file names the input the user set (ckpt_name, vae_name), not LoadModel's source."""
    from latentgraph.nodes import comfy

    for folder, name, load in (("checkpoints", "ckpt_name", comfy.checkpoint_loader),
                               ("vae", "vae_name", comfy.vae_loader)):  # fmt: skip
        (tmp_path / "models" / folder).mkdir(parents=True)
        bad = tmp_path / "models" / folder / "broken.safetensors"
        bad.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all}")
        ctx = make_ctx("Loader", node_id="4", models_dirs=[tmp_path / "models"])
        with pytest.raises(NodeInputError) as caught:
            load(ctx, "broken.safetensors")
        assert caught.value.input_name == name
        assert str(caught.value).startswith(f"node '4' (Loader) input '{name}': ")
        assert "'source'" not in str(caught.value)
