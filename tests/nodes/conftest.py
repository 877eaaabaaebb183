"""Node-test helpers: a recording Context and the tiny model's loaded outputs."""

from __future__ import annotations

import pytest

from latentgraph.graph import CancelToken, Context, Settings


class Recorder:
    def __init__(self) -> None:
        self.warnings: list[str] = []
        self.progress: list[tuple[int, int]] = []


@pytest.fixture
def make_ctx(tmp_path):
    """make_ctx(node_type, **settings) -> Context whose warnings/progress are recorded."""

    def make(node_type: str = "Node", node_id: str = "n1", cancel: CancelToken | None = None,
             **settings_kw) -> Context:  # fmt: skip
        settings_kw.setdefault("output_dir", tmp_path / "output")
        settings_kw.setdefault("input_dir", tmp_path / "input")
        settings_kw.setdefault("temp_dir", tmp_path / "temp")
        rec = Recorder()
        ctx = Context(node_id, node_type, Settings(**settings_kw), cancel or CancelToken(),
                      emit_progress=lambda v, t, p: rec.progress.append((v, t)),
                      emit_warning=rec.warnings.append)  # fmt: skip
        ctx.rec = rec
        return ctx

    return make


@pytest.fixture(scope="session")
def tiny(tiny_folder):
    """(unet, clip, vae, scheduler spec) of builtin:tiny-sd, through LoadModel."""
    from latentgraph.nodes import loaders

    ctx = Context("model", "LoadModel", Settings(), CancelToken())
    return loaders.load_model(ctx, "builtin:tiny-sd")


@pytest.fixture(scope="session")
def tiny_inpaint_folder(cache_dir, torch_1thread):
    """builtin:tiny-sd-inpaint's folder (the tiny model with a 9-channel UNet)."""
    from latentgraph.nodes.tiny_inpaint import ensure_tiny_inpaint

    return ensure_tiny_inpaint()


@pytest.fixture(scope="session")
def tiny_inpaint(tiny_inpaint_folder):
    """(unet, clip, vae, scheduler spec) of builtin:tiny-sd-inpaint, through LoadModel."""
    from latentgraph.nodes import loaders

    ctx = Context("model", "LoadModel", Settings(), CancelToken())
    return loaders.load_model(ctx, "builtin:tiny-sd-inpaint")
