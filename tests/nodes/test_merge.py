"""Model merging (simple, blocks, add, subtract, text encoders) and SaveCheckpoint."""

from __future__ import annotations

import pytest

from latentgraph.nodes import lora, merge


@pytest.fixture(scope="module")
def two(tiny):
    """The tiny model and a LoRA'd copy of it: two UNets and two text encoders that differ."""
    from latentgraph.graph import CancelToken, Context, Settings

    unet, clip, vae, _ = tiny
    ctx = Context("l", "LoadLoRA", Settings(), CancelToken())
    unet_b, clip_b = lora.load_lora(ctx, unet, clip, "builtin:tiny-lora", 1.0, 1.0)
    return unet, unet_b, clip, clip_b, vae


def params(module) -> dict:
    return {k: v.detach().clone() for k, v in module.named_parameters()}


def test_simple_merge_is_a_weighted_average(make_ctx, two):
    import torch

    a, b = two[0], two[1]
    pa, pb = params(a.unet), params(b.unet)
    half = merge.merge_models(make_ctx("MergeModels"), a, b, 0.25)
    for name, value in params(half.unet).items():
        assert torch.equal(value, pa[name] * 0.25 + pb[name] * 0.75), name
    whole = merge.merge_models(make_ctx("MergeModels"), a, b, 1.0)
    assert all(torch.equal(v, pa[k]) for k, v in params(whole.unet).items())
    assert params(a.unet).keys() == pa.keys()
    assert all(torch.equal(v, pa[k]) for k, v in params(a.unet).items())  # inputs untouched


def test_block_merge_takes_each_block_group_from_its_ratio(make_ctx, two):
    import torch

    a, b = two[0], two[1]
    pa, pb = params(a.unet), params(b.unet)
    out = params(merge.merge_model_blocks(make_ctx("MergeModelBlocks"), a, b, 1.0, 0.0, 1.0).unet)
    mid = [k for k in out if k.startswith("mid_block.") and not torch.equal(pa[k], pb[k])]
    assert mid and all(torch.equal(out[k], pb[k]) for k in mid)
    rest = [k for k in out if not k.startswith("mid_block.")]
    assert all(torch.equal(out[k], pa[k]) for k in rest)  # time embedding follows `input`
    swapped = params(merge.merge_model_blocks(make_ctx("MergeModelBlocks"), a, b, 0.0, 1.0,
                                              1.0).unet)  # fmt: skip
    down = [k for k in out if k.startswith("down_blocks.") and not torch.equal(pa[k], pb[k])]
    assert down and all(torch.equal(swapped[k], pb[k]) for k in down)


def test_add_and_subtract(make_ctx, two):
    import torch

    a, b = two[0], two[1]
    pa, pb = params(a.unet), params(b.unet)
    difference = merge.subtract_models(make_ctx("SubtractModels"), b, a, 1.0)
    for k, v in params(difference.unet).items():
        assert torch.equal(v, pb[k] - pa[k])
    back = merge.add_models(make_ctx("AddModels"), a, difference)
    for k, v in params(back.unet).items():
        assert torch.allclose(v, pb[k], atol=1e-6)
    half = merge.subtract_models(make_ctx("SubtractModels"), a, a, 0.5)
    assert all(torch.equal(v, pa[k] * 0.5) for k, v in params(half.unet).items())


def test_text_encoder_merge(make_ctx, two):
    import torch

    _, _, clip_a, clip_b, _ = two
    pa, pb = params(clip_a.text_encoder), params(clip_b.text_encoder)
    out = merge.merge_text_encoders(make_ctx("MergeTextEncoders"), clip_a, clip_b, 0.5)
    assert out.tokenizer is clip_a.tokenizer
    for k, v in params(out.text_encoder).items():
        assert torch.equal(v, pa[k] * 0.5 + pb[k] * 0.5)


def test_a_merge_is_computed_once(make_ctx, two):
    from latentgraph.nodes.model_manager import manager

    a, b = two[0], two[1]
    first = merge.merge_models(make_ctx("MergeModels"), a, b, 0.4)
    loads = manager().loads
    again = merge.merge_models(make_ctx("MergeModels"), a, b, 0.4)
    assert again.unet is first.unet and manager().loads == loads and again.key == first.key
    other = merge.merge_models(make_ctx("MergeModels"), a, b, 0.41)
    assert other.key != first.key


def test_models_of_different_architectures_are_refused(make_ctx, two):
    from diffusers import UNet2DConditionModel

    from latentgraph.nodes.tiny_model import UNET_CONFIG
    from latentgraph.nodes.values import UNetModel

    other = UNet2DConditionModel(**{**UNET_CONFIG, "block_out_channels": [32, 32]})
    handle = UNetModel(other, "other-architecture", "cpu", "fp32")
    with pytest.raises(ValueError, match=r"node 'n1' \(MergeModels\): the two models differ"):
        merge.merge_models(make_ctx("MergeModels"), two[0], handle, 0.5)


def test_save_checkpoint_writes_a_checkpoint_load_model_reads_back(make_ctx, two, tmp_path):
    import hashlib
    import json

    import torch
    from safetensors import safe_open

    from latentgraph.nodes.loaders import load_model

    a, b, clip_a, clip_b, vae = two
    merged = merge.merge_models(make_ctx("MergeModels"), a, b, 0.5)
    ctx = make_ctx("SaveCheckpoint")
    ctx.extra["prompt"] = {"1": {"class_type": "SaveCheckpoint"}}
    result = merge.save_checkpoint(ctx, merged, clip_b, vae, "checkpoints/merged")
    [record] = result.ui["checkpoints"]
    path = tmp_path / "output" / "checkpoints" / "merged_00001_.safetensors"
    data = path.read_bytes()  # size and sha256 too: a cached save checks its file holds them
    assert record == {"filename": "merged_00001_.safetensors", "subfolder": "checkpoints",
                      "type": "output", "size": len(data),
                      "sha256": hashlib.sha256(data).hexdigest(),
                      "filename_prefix": "checkpoints/merged"}  # fmt: skip
    with safe_open(str(path), framework="pt") as fh:
        assert json.loads(fh.metadata()["prompt"]) == ctx.extra["prompt"]
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temp file left
    unet, clip, _, _ = load_model(make_ctx("LoadModel"), str(path))
    for k, v in params(unet.unet).items():
        assert torch.equal(v, params(merged.unet)[k]), k
    for k, v in params(clip.text_encoder).items():
        assert torch.equal(v, params(clip_b.text_encoder)[k]), k
    again = merge.save_checkpoint(ctx, merged, clip_b, vae, "checkpoints/merged")
    assert again.ui["checkpoints"][0]["filename"] == "merged_00002_.safetensors"
    with pytest.raises(ValueError, match="filename_prefix"):
        merge.save_checkpoint(ctx, merged, clip_b, vae, "../outside")


def test_every_extra_pnginfo_entry_is_a_string_of_the_checkpoints_metadata(make_ctx, tiny,
                                                                            tmp_path):  # fmt: skip
    """ComfyUI's CheckpointSave writes each extra_pnginfo entry as a metadata string of its key
    (the value as JSON), as SaveImage writes each as a PNG chunk; only `prompt` and `workflow`
    were written. The run's own documents and our `format` are not replaced by an entry."""
    import json

    from safetensors import safe_open

    unet, clip, vae, _ = tiny
    ctx = make_ctx("CheckpointSave")
    prompt, workflow, mine = {"1": {"class_type": "CheckpointSave"}}, {"nodes": []}, {"job": 7}
    ctx.extra.update(prompt=prompt, workflow=workflow, latentgraph="nodes: {}\n",
                     pnginfo={"my_app": mine, "prompt": "not it", "format": "np", "n": None,
                              "x" * 80: 1})  # fmt: skip
    merge.save_checkpoint(ctx, unet, clip, vae, "meta")
    with safe_open(str(tmp_path / "output" / "meta_00001_.safetensors"), framework="pt") as fh:
        metadata = fh.metadata()
    assert metadata == {"format": "pt", "prompt": json.dumps(prompt),
                        "workflow": json.dumps(workflow), "my_app": json.dumps(mine),
                        "n": "null", "latentgraph": "nodes: {}\n"}  # fmt: skip
