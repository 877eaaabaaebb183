"""One rule each for seeds and pickled weights, and the run's Settings (not process state)
deciding what the diffusion nodes list and allow."""

from __future__ import annotations

import pytest

import latentgraph.nodes  # noqa: F401 - registers the node types
from latentgraph.graph import Settings, default_registry
from latentgraph.graph.model import Graph, Node
from latentgraph.graph.validate import validate
from latentgraph.nodes import loaders, models_dirs, seeds
from latentgraph.nodes.latents import make_noise


def test_image_seeds_and_the_64_bit_seed_range():
    assert seeds.image_seeds(7, 3) == [7, 8, 9]
    assert seeds.generator_seed(seeds.SEED_MAX) == seeds.SEED_MAX
    assert seeds.generator_seed(seeds.SEED_MAX + 2) == 1  # seed + i wraps, never fails


def test_a_batch_image_is_reproduced_alone_from_its_seed():
    batch = make_noise((4, 2, 2), seeds.image_seeds(seeds.SEED_MAX, 2))
    alone = make_noise((4, 2, 2), [seeds.generator_seed(seeds.SEED_MAX + 1)])
    assert bool((batch[1] == alone[0]).all())


def test_sde_noise_seed_keeps_all_64_bits():
    """Seeds 5 and 2**32 + 5 must not share the SDE noise (they did when cut to 32 bits)."""
    from latentgraph.nodes.schedulers import build_scheduler
    from latentgraph.nodes.values import SchedulerSpec

    spec = SchedulerSpec(config={}, class_name="DPMSolverSDEScheduler")
    assert build_scheduler(spec, 2**32 + 5).config.noise_sampler_seed == 2**32 + 5


@pytest.mark.parametrize("suffix", models_dirs.PICKLE_SUFFIXES)
def test_every_pickle_suffix_is_refused_by_the_loader_and_the_models_folder(suffix, tmp_path):
    name = "model" + suffix.upper()
    assert models_dirs.is_pickled(name)
    [(input_name, message)] = loaders.check_source({"source": name}, Settings())
    assert input_name == "source" and "pickle" in message
    with pytest.raises(models_dirs.ModelNotFound, match="pickle-based file"):
        models_dirs.resolve("checkpoints", name, [tmp_path])


def _latent_noise(width: int, height: int, batch: int = 1) -> Graph:
    g = Graph()
    g.add(Node("n", "LatentNoise", {"width": width, "height": height, "batch_size": batch}))
    return g


def test_latent_noise_is_checked_against_the_run_settings_limits():
    big = _latent_noise(8192, 8192, batch=100)
    codes = {(p.code, p.input_name) for p in validate(big, default_registry, Settings())}
    assert {("limit_exceeded", "width"), ("limit_exceeded", "batch_size")} <= codes
    roomy = Settings(max_image_pixels=8192 * 8192, max_batch=100,
                     max_batch_pixels=8192 * 8192 * 100)  # fmt: skip
    assert not [p for p in validate(big, default_registry, roomy) if p.code == "limit_exceeded"]


def test_dropdowns_list_the_folders_of_the_settings(tmp_path):
    models, pictures = tmp_path / "models", tmp_path / "input"
    (models / "checkpoints").mkdir(parents=True)
    (models / "checkpoints" / "mine.safetensors").write_bytes(b"x")
    pictures.mkdir()
    (pictures / "cat.png").write_bytes(b"x")
    g = Graph()
    g.add(Node("c", "CheckpointLoaderSimple", {"ckpt_name": "mine.safetensors"}))
    g.add(Node("i", "LoadImage", {"image": "cat.png"}))

    def not_listed(settings):
        return {p.node_id for p in validate(g, default_registry, settings)
                if p.code == "value_not_in_list"}  # fmt: skip

    assert not_listed(Settings(models_dirs=[models], input_dir=pictures)) == set()
    assert not_listed(Settings(models_dirs=[], input_dir=tmp_path / "none")) == {"c", "i"}


def test_node_code_called_directly_enforces_the_context_settings_limits(make_ctx):
    from latentgraph.nodes.latents import latent_noise
    from latentgraph.nodes.values import NodeInputError

    with pytest.raises(NodeInputError, match="'batch_size'.*limit of 2"):
        latent_noise(make_ctx("LatentNoise", max_batch=2), 8, 8, batch_size=3)
    noise = latent_noise(make_ctx("LatentNoise", max_batch=3), 8, 8, batch_size=3)
    assert noise.seeds == [0, 1, 2]
