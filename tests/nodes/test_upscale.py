"""Upscale models: tiled running (blending, progress, cancel) and the loader's refusals.

spandrel cannot be imported on this machine (see docs/upscaling.md), so the models here are
plain torch modules with an upscaler's contract: [1, 3, h, w] in 0..1 → [1, 3, h*s, w*s]."""

from __future__ import annotations

import importlib.abc
import importlib.util
import sys

import pytest
import torch

from latentgraph.graph import Cancelled, CancelToken
from latentgraph.nodes import upscale
from latentgraph.nodes.values import NodeInputError, UpscaleModel


class PixelModel(torch.nn.Module):
    """Each pixel becomes a 2x2 block of its own colour mix: no neighbours involved."""

    def __init__(self, scale: int = 2) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.mix = torch.nn.Conv2d(3, 3 * scale * scale, 1)
        self.mix.weight.data = torch.rand(self.mix.weight.shape, generator=g) / 3
        self.mix.bias.data.zero_()
        self.shuffle = torch.nn.PixelShuffle(scale)
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        return self.shuffle(self.mix(x))


class BlurModel(PixelModel):
    """Nearest upscale, then a 3x3 blur: tiles see a different neighbourhood at their edges."""

    def forward(self, x):
        self.calls += 1
        up = torch.nn.functional.interpolate(x, scale_factor=2, mode="nearest")
        kernel = torch.full((3, 1, 3, 3), 1 / 9)
        return torch.nn.functional.conv2d(up, kernel, padding=1, groups=3)


def _image(h=40, w=56, b=1):
    return torch.rand(b, h, w, 3, generator=torch.Generator().manual_seed(1))


def _whole(model, image):
    with torch.no_grad():
        return model(image.movedim(-1, 1)).movedim(1, -1).clamp(0, 1)


def test_tile_origins_cover_the_axis_and_end_at_the_edge():
    tiling = upscale.Tiling(16, 4)
    assert tiling.starts(10) == [0]
    assert tiling.starts(40) == [0, 12, 24]
    for length in (17, 33, 100):
        starts = tiling.starts(length)
        assert starts[-1] + 16 == length
        assert all(b - a <= 12 for a, b in zip(starts, starts[1:], strict=False))


def test_tiled_equals_whole_for_a_pointwise_model_and_reports_each_tile(make_ctx):
    model, image = PixelModel(), _image(b=2)
    ctx = make_ctx("ImageUpscaleWithModel")
    out = upscale.image_upscale_with_model(ctx, UpscaleModel(model, 2, "k"), image, 32, 8)
    assert out.shape == (2, 80, 112, 3)
    tiles = len(upscale.Tiling(32, 8).starts(40)) * len(upscale.Tiling(32, 8).starts(56))
    assert model.calls == 2 * tiles == 2 * 2 * 2
    assert torch.allclose(out, _whole(model, image), atol=1e-5)
    assert ctx.rec.progress == [(i, 2 * tiles) for i in range(1, 2 * tiles + 1)]


def test_overlap_blending_hides_the_seams(make_ctx):
    model, image = BlurModel(), _image()
    whole = _whole(model, image)
    seams = upscale.upscale_tiled(make_ctx(), model, image, 2, upscale.Tiling(16, 0))
    blended = upscale.upscale_tiled(make_ctx(), model, image, 2, upscale.Tiling(16, 6))
    assert (seams - whole).abs().max() > 0.05
    assert (blended - whole).abs().max() < (seams - whole).abs().max() / 4


def test_cancel_stops_between_tiles(make_ctx):
    model, token = PixelModel(), CancelToken()
    ctx = make_ctx("ImageUpscaleWithModel", cancel=token)
    calls = []

    def run(tile):
        calls.append(tile.shape)
        token.cancel()
        return model(tile)

    with pytest.raises(Cancelled):
        upscale.upscale_tiled(ctx, run, _image(), 2, upscale.Tiling(16, 4))
    assert len(calls) == 1


def test_bad_overlap_and_pixel_limit_are_refused(make_ctx):
    handle = UpscaleModel(PixelModel(), 2, "k")
    with pytest.raises(NodeInputError, match="input 'overlap'"):
        upscale.image_upscale_with_model(make_ctx(), handle, _image(), 64, 32)
    with pytest.raises(NodeInputError, match="input 'image'.*limit"):
        upscale.image_upscale_with_model(make_ctx(max_image_pixels=4000), handle, _image())


@pytest.fixture
def models_root(tmp_path):
    folder = tmp_path / "models" / "upscale_models"
    folder.mkdir(parents=True)
    (folder / "tiny_esrgan.safetensors").write_bytes(b"\0" * 16)
    (folder / "old.pth").write_bytes(b"\0" * 16)
    return tmp_path / "models"


def test_loader_lists_safetensors_only(make_ctx, models_root):
    ctx = make_ctx(models_dirs=[models_root])
    choices = upscale.upscale_model_loader.node_type.inputs[0].choice_list(ctx.settings)
    assert choices == ["builtin:tiny-esrgan", "tiny_esrgan.safetensors"]


def test_loader_refuses_pickles_and_missing_files_by_input(make_ctx, models_root):
    ctx = make_ctx("UpscaleModelLoader", models_dirs=[models_root])
    with pytest.raises(NodeInputError, match="input 'model_name'.*pickle-based file"):
        upscale.upscale_model_loader(ctx, "old.pth")
    with pytest.raises(NodeInputError, match="input 'model_name'.*not found"):
        upscale.upscale_model_loader(ctx, "nope.safetensors")


def test_loader_without_spandrel_names_the_extra(make_ctx, models_root, monkeypatch):
    monkeypatch.setitem(sys.modules, "spandrel", None)  # import spandrel -> ImportError
    ctx = make_ctx("UpscaleModelLoader", models_dirs=[models_root])
    with pytest.raises(NodeInputError, match=r"model_name.*pip install 'latentgraph\[upscale\]'"):
        upscale.upscale_model_loader(ctx, "tiny_esrgan.safetensors")


class _BrokenTorchvision(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """spandrel whose import fails the way a torchvision built for another torch does."""

    def find_spec(self, name, path=None, target=None):
        from importlib.machinery import ModuleSpec

        return ModuleSpec(name, self) if name == "spandrel" else None

    def create_module(self, spec):
        return None

    def exec_module(self, module):
        raise RuntimeError("operator torchvision::nms does not exist")


def test_loader_with_a_mismatched_torchvision_says_so(make_ctx, models_root, monkeypatch):
    monkeypatch.delitem(sys.modules, "spandrel", raising=False)
    monkeypatch.setattr(sys, "meta_path", [_BrokenTorchvision(), *sys.meta_path])
    ctx = make_ctx("UpscaleModelLoader", models_dirs=[models_root])
    with pytest.raises(NodeInputError, match="torchvision does not match this torch.*nms"):
        upscale.upscale_model_loader(ctx, "tiny_esrgan.safetensors")


def _spandrel_installed(monkeypatch, installed: bool) -> None:
    real = importlib.util.find_spec

    def find_spec(name, *args):
        if name == "spandrel":
            return real("json") if installed else None  # any spec stands for "installed"
        return real(name, *args)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)


def test_validate_refuses_an_upscale_workflow_without_spandrel_before_anything_runs(
    monkeypatch, capsys, tmp_path
):
    from pathlib import Path

    from latentgraph.cli import main

    _spandrel_installed(monkeypatch, False)
    monkeypatch.chdir(tmp_path)
    workflow = Path(__file__).parents[2] / "workflows" / "upscale.yaml"
    for command in ("validate", "run"):
        assert main([command, str(workflow), "--cache-dir", str(tmp_path / "c")]
                    if command == "run" else [command, str(workflow)]) == 2  # fmt: skip
        err = capsys.readouterr().err
        assert "input 'model_name': upscale models need spandrel" in err
        assert "pip install 'latentgraph[upscale]'" in err
    assert not (tmp_path / "output").exists()  # refused before the image was generated


def test_with_spandrel_installed_the_loader_validates(monkeypatch, capsys, tmp_path):
    from pathlib import Path

    from latentgraph.cli import main

    _spandrel_installed(monkeypatch, True)
    monkeypatch.chdir(tmp_path)
    workflow = Path(__file__).parents[2] / "workflows" / "upscale.yaml"
    assert main(["validate", str(workflow)]) == 0, capsys.readouterr().err
