import inspect
import re
from pathlib import Path

import pytest

from latentgraph.graph import Registry, Settings, default_registry
from latentgraph.graph.comfy_editor import widget_inputs
from latentgraph.graph.object_info import node_info
from latentgraph.nodes import comfy

from .conftest import BARE_MODEL


def info(name):
    return node_info(default_registry[name])


def test_classic_nodes_match_comfyui_signatures():
    ks = info("KSampler")
    assert ks["input_order"]["required"] == [
        "model", "seed", "steps", "cfg", "sampler_name", "scheduler", "positive", "negative",
        "latent_image", "denoise"]  # fmt: skip
    assert ks["input"]["required"]["seed"][1]["control_after_generate"] is True
    assert ks["input"]["required"]["cfg"][1] == {
        "default": 8.0,
        "min": 0.0,
        "max": 100.0,
        "step": 0.1,
        "round": 0.01,
    }
    assert ks["output"] == ["LATENT"] and ks["output_name"] == ["LATENT"]
    ck = info("CheckpointLoaderSimple")
    assert ck["output"] == ["MODEL", "CLIP", "VAE"] and ck["display_name"] == "Load Checkpoint"
    assert ck["input"]["required"]["ckpt_name"][0][0] == "builtin:tiny-sd"
    assert info("CLIPTextEncode")["input_order"]["required"] == ["text", "clip"]
    assert info("VAEDecode")["input_order"] == {"required": ["samples", "vae"],
                                                "optional": ["tiled", "sliced"]}  # fmt: skip
    assert info("VAEDecode")["output_name"] == ["IMAGE"]
    assert info("VAEEncode")["input_order"]["required"] == ["pixels", "vae"]
    assert info("VAEEncode")["output"] == ["LATENT"]
    save = info("SaveImage")
    assert save["output_node"] is True and save["display_name"] == "Save Image"
    assert save["input_order"]["required"] == ["images", "filename_prefix"]
    assert save["input"]["required"]["filename_prefix"][1]["default"] == "ComfyUI"
    assert info("PreviewImage")["input_order"]["required"] == ["images"]
    assert info("LoadImage")["input"]["required"]["image"][1]["image_upload"] is True
    assert info("LoadImage")["output"] == ["IMAGE", "MASK"]
    adv = [w.name for w in widget_inputs(comfy.comfy_registry["KSamplerAdvanced"])]
    assert adv == [
        "add_noise",
        "noise_seed",
        "steps",
        "cfg",
        "sampler_name",
        "scheduler",
        "start_at_step",
        "end_at_step",
        "return_with_leftover_noise",
    ]


def test_object_info_offers_latentgraphs_extras_as_sockets_not_widgets():
    """ComfyUI's VAEDecode and ImageUpscaleWithModel have no widgets: ours' extra inputs go to
    the editor with `forceInput`, so its widget list (and the widgets_values it saves and
    splits out of a group node) is ComfyUI's. ImageScaleToTotalPixels' resolution_steps is
    ComfyUI's own widget (its newer node has it), so it stays one."""
    for name, extras in (("VAEDecode", ["tiled", "sliced"]),
                         ("ImageUpscaleWithModel", ["tile_size", "overlap"])):  # fmt: skip
        optional = info(name)["input"]["optional"]
        assert [k for k, (_, opts) in optional.items() if opts.get("forceInput")] == extras
    assert info("VAEDecode")["input"]["optional"]["tiled"] == ["BOOLEAN", {
        "default": False, "forceInput": True,
        "tooltip": "decode in overlapping tiles (large images in bounded memory)"}]  # fmt: skip
    steps = info("ImageScaleToTotalPixels")["input"]["optional"]["resolution_steps"]
    assert "forceInput" not in steps[1]
    assert [w.name for w in widget_inputs(default_registry["VAEDecode"])] == ["tiled", "sliced"]


def test_an_adapter_never_replaces_a_plugins_node_without_a_word(tmp_path):
    """install() replaced a KSampler declared before the built-in nodes loaded (a notebook's,
    a module imported first) without a word (`replace=True`; the replaced names it returns
    were ignored). Outside plugin loading the clash is raised; plugin loading, where the
    built-in nodes keep their names, says the plugin's declaration is skipped, at its line (a
    new process: the built-in nodes load once per process)."""
    import subprocess
    import sys

    from latentgraph.graph import node
    from latentgraph.graph.declare import NameClash

    reg = Registry()
    node("KSampler", registry=reg)(lambda ctx: None)
    with pytest.raises(NameClash, match=f"'KSampler' is already registered by {__name__}$"):
        comfy.install(reg)
    script = tmp_path / "notebook.py"
    script.write_text("from latentgraph.graph import node\n"
                      "from latentgraph.wiring import node_registry\n"
                      "@node('KSampler', output_node=True)\ndef mine(ctx):\n    return ()\n"  # 3
                      "errors = []\nprint(node_registry(errors=errors)['KSampler'].module)\n"
                      "for e in errors:\n    print(e)\n")  # fmt: skip
    done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True,
                          text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "latentgraph.nodes.comfy",
        f"node plugin {script}:3: node type 'KSampler' is already registered by "
        "latentgraph.nodes.comfy; this declaration is skipped",
    ]


def test_one_node_per_name_and_comfy_nodes_in_the_default_registry():
    """ComfyUI's names are latentgraph's own nodes: no adapter shadows them."""
    import latentgraph.nodes  # noqa: F401

    assert not {"VAEDecode", "VAEEncode", "LoadImage", "SaveImage", "PreviewImage"} & set(
        comfy.comfy_registry.names()
    )
    for t in comfy.comfy_registry:
        assert default_registry[t.name] is t
    assert default_registry["VAEDecode"].module == "latentgraph.nodes.vae"
    assert default_registry["SaveImage"].module == "latentgraph.nodes.images"


def test_an_adapter_named_like_a_built_in_node_is_refused(monkeypatch):
    """An adapter in nodes/comfy*.py under the name of one of our built-in nodes replaced ours
    without a word (install()'s replaced list was ignored); now `import latentgraph.nodes`
    fails naming both. Planted: an adapter named VAEDecode, over the real built-in nodes."""
    from latentgraph.graph import node

    planted = Registry()
    for t in comfy.comfy_registry:
        planted.add(t)
    node("VAEDecode", registry=planted)(lambda ctx: None)
    monkeypatch.setattr(comfy, "comfy_registry", planted)
    ours = Registry()
    for t in default_registry:
        if t.name not in planted:
            ours.add(t)
    ours.add(default_registry["VAEDecode"])
    with pytest.raises(ValueError) as refused:
        comfy.install(ours)
    assert str(refused.value) == (
        f"ComfyUI adapter 'VAEDecode' ({__name__}) would replace the built-in one in "
        "latentgraph.nodes.vae: declare a ComfyUI name once, as our node or as an adapter in "
        "nodes/comfy*.py, never both"
    )
    assert ours["VAEDecode"] is default_registry["VAEDecode"]
    planted.remove("VAEDecode")
    assert comfy.install(ours) == [] and ours["KSampler"] is planted["KSampler"]  # no clash: in


def test_sigma_shape_table_matches_diffusers():
    import diffusers

    from latentgraph.nodes.schedulers import SCHEDULERS

    for ours, _ in comfy.SAMPLERS.values():
        cls = getattr(diffusers, SCHEDULERS[ours][0])
        params = set(inspect.signature(cls.__init__).parameters)
        has = {"use_karras_sigmas", "use_exponential_sigmas", "use_beta_sigmas"} <= params
        assert has == (ours in comfy.WITH_SIGMA_SHAPES), ours


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_every_supported_pair_builds_a_scheduler():
    from latentgraph.nodes.schedulers import build_scheduler

    pairs = [(s, "normal") for s in comfy.SAMPLERS] + [("euler", s) for s in comfy.SIGMAS]
    pairs += [("ddim", "karras"), ("euler_ancestral", "beta")]
    for sampler, sched in pairs:
        if comfy.sampler_problem(sampler, sched):
            assert sched in comfy.SIGMA_SHAPES and sampler in ("ddim", "euler_ancestral")
            continue
        s = build_scheduler(comfy.sampler_spec(BARE_MODEL, sampler, sched), seed=1)
        s.set_timesteps(4)
        assert len(s.timesteps) >= 4
        if sched == "karras":
            assert s.config.use_karras_sigmas
        if sampler == "uni_pc":
            assert s.config.solver_type == "bh1"


def test_ksampler_advanced_refuses_only_an_early_clean_end_without_sigmas():
    check = comfy.comfy_registry["KSamplerAdvanced"].check
    ok = {
        "sampler_name": "euler",
        "scheduler": "normal",
        "steps": 20,
        "end_at_step": 10000,
        "add_noise": "enable",
        "return_with_leftover_noise": "disable",
    }
    assert check(ok, Settings()) == []
    # base + refiner settings are accepted (they run; tests/sdxl checks the results)
    assert check(dict(ok, add_noise="disable", end_at_step=10,
                      return_with_leftover_noise="enable"), Settings()) == []  # fmt: skip
    assert check(dict(ok, end_at_step=10), Settings()) == []  # euler ends at sigma 0
    bad = dict(ok, sampler_name="ddim", end_at_step=10)
    assert [name for name, _ in check(bad, Settings())] == ["return_with_leftover_noise"]


@pytest.mark.parametrize(
    "value, text", [("hi", "hi"), (3, "3"), ([1, 2], "[\n  1,\n  2\n]"), (None, "null")]
)
def test_preview_any_text(value, text):
    assert comfy.preview_text(value) == text


def test_utility_nodes():
    assert comfy.string_concatenate(None, "a", "b", ", ") == "a, b"
    assert comfy.primitive_int(None, 5) == 5
    result = comfy.preview_any(None, {"a": 1})
    assert result.ui == {"text": ['{\n  "a": 1\n}']}


def test_latent_ops():
    import torch

    from latentgraph.nodes.values import Latent

    class Ctx:
        settings = Settings()

    empty = comfy.empty_latent_image(Ctx(), 64, 32, 2)
    assert list(empty.samples.shape) == [2, 4, 4, 8] and not empty.samples.any()
    x = Latent(torch.arange(32.0).reshape(1, 1, 4, 8), None)
    up = comfy.latent_upscale(Ctx(), x, "nearest-exact", 128, 0, "disabled")
    assert list(up.samples.shape) == [1, 1, 8, 16]  # height from the aspect ratio
    crop = comfy.latent_upscale(Ctx(), x, "bilinear", 32, 32, "center")
    assert list(crop.samples.shape) == [1, 1, 8, 8]  # as ComfyUI's: each side at least 64 px


def test_prompt_texts_ask_the_editor_for_dynamic_prompts():
    """ComfyUI's text encoders declare dynamicPrompts: its editor then strips // and /* */
    comments and picks one of each {a|b} before it queues. Other text inputs do not."""
    from latentgraph.wiring import node_registry

    registry = node_registry()

    def options(node: str, name: str) -> dict:
        return node_info(registry[node])["input"]["required"][name][1]

    for node, name in [("CLIPTextEncode", "text"), ("CLIPTextEncodeSDXL", "text_g"),
                       ("CLIPTextEncodeSDXL", "text_l"), ("CLIPTextEncodeSDXLRefiner", "text")]:  # fmt: skip
        assert options(node, name)["dynamicPrompts"] is True
    assert "dynamicPrompts" not in options("SaveImage", "filename_prefix")


@pytest.mark.parametrize(
    "settings",
    [Settings(max_steps=50, max_batch=4, max_image_pixels=100_000), Settings(),
     Settings(max_steps=7, max_batch=1, max_image_pixels=512 * 512),
     Settings(max_batch_pixels=1024 * 1024 * 3)],
)  # fmt: skip
def test_object_info_advertises_the_largest_value_each_limited_input_may_take(settings):
    """/object_info of a server says the maxima it enforces (its --max-steps, --max-batch,
    --max-pixels, --max-batch-pixels): for every input bounded by run limits, the advertised
    max passes the limit checks with the inputs sharing them at their minimum, and one step
    more does not (unless the max is the declared one)."""
    from latentgraph.wiring import node_registry

    registry = node_registry()
    seen = set()
    for node_type in registry:
        for decl in node_type.inputs:
            if not decl.limit_names:
                continue
            entry = node_info(node_type, settings)["input"]
            options = {**entry["required"], **entry["optional"]}[decl.name][1]
            groups = [node_type.limits[limit] for limit in decl.limit_names]
            others = {n: int(node_type.input(n).min) for names in groups for n in names}
            if all(any(others[n] <= 0 for n in names if n != decl.name) for names in groups):
                assert options["max"] == decl.max  # a zero in each product: no bound
                continue
            at = {**others, decl.name: options["max"]}
            assert node_type.limit_problems(at, settings) == [], (node_type.name, decl.name)
            if options["max"] < decl.max:
                over = {**at, decl.name: options["max"] + int(decl.step)}
                assert node_type.limit_problems(over, settings), (node_type.name, decl.name)
            seen.add((node_type.name, decl.name, options["max"]))
    steps, batch = settings.max_steps, settings.max_batch
    batch = min(batch, settings.max_batch_pixels // (16 * 16))  # at width and height 16
    assert {
        ("KSampler", "steps", min(10000, steps)),
        ("EmptyLatentImage", "batch_size", min(4096, batch)),
    } <= seen
    assert node_info(registry["KSampler"])["input"]["required"]["steps"][1]["max"] == 10000


def test_no_two_node_types_show_the_same_name_in_the_editor():
    """The editor's node search lists display names: ours and ComfyUI's ControlNet appliers
    were both "Apply ControlNet"."""
    from collections import Counter

    from latentgraph.graph.object_info import object_info
    from latentgraph.wiring import node_registry

    info = object_info(node_registry())
    shown = Counter(entry["display_name"] for entry in info.values())
    assert [name for name, count in shown.items() if count > 1] == []
    assert info["ApplyControlNet"]["display_name"] == "Apply ControlNet (latentgraph)"
    assert info["ControlNetApplyAdvanced"]["display_name"] == "Apply ControlNet"


def test_an_unsupported_sampler_or_scheduler_is_shown_with_one_backslash(tmp_path):
    """KSampler's refusals quote the value as it was sent (`graph.problems.quoted`): repr
    doubled a backslash, showing a name nobody sent."""
    from latentgraph.graph.context import CancelToken, Context
    from latentgraph.nodes.values import NodeInputError

    ctx = Context("k", "KSampler", Settings(output_dir=tmp_path), CancelToken())
    with pytest.raises(NodeInputError) as caught:
        comfy.ksampler(ctx, None, 1, 4, 7.0, "euler\\a", "normal", None, None, None)
    assert "unsupported sampler 'euler\\a'; one of: euler, " in str(caught.value)
    with pytest.raises(NodeInputError) as caught:
        comfy.ksampler(ctx, None, 1, 4, 7.0, "euler", "my\\karras", None, None, None)
    assert "unsupported scheduler 'my\\karras'; one of: normal, " in str(caught.value)


# --- docs/comfy-compat.md's node lists ------------------------------------------------------

COMPAT = Path(__file__).resolve().parents[2] / "docs" / "comfy-compat.md"
NOT_PROVIDED = "### ComfyUI core nodes not provided"
# A table whose header starts so names ComfyUI nodes in that column
NODE_COLUMNS = {"node": 0, "ComfyUI node": 0, "group": 1}


def _node_tables(text: str) -> list[list[str]]:
    """The names each table of `text` lists in its node column (cells like `KSampler,
    KSamplerAdvanced`), one list per table."""
    tables: list[list[str]] = []
    column = None
    for line in text.splitlines():
        row = line.startswith("|")
        cells = [c.strip() for c in line.strip().strip("|").split("|")] if row else []
        if not cells:
            column = None
        elif column is None:
            column = NODE_COLUMNS.get(cells[0], -1)
            tables.append([])
        elif column >= 0 and not set(cells[0]) <= set("-: "):
            tables[-1] += [n.strip() for n in cells[column].split(",")]
    return [names for names in tables if names]


def _compat_names() -> tuple[set[str], set[str]]:
    """(the nodes the page's "Nodes" section lists as provided, those it lists as not)."""
    text = COMPAT.read_text()
    nodes = text[text.index("\n## Nodes\n") : text.index("\n## Models folders\n")]
    assert f"\n{NOT_PROVIDED}\n" in nodes, f"no {NOT_PROVIDED!r} under '## Nodes'"
    provided, rest = nodes.split(f"\n{NOT_PROVIDED}\n")
    missing, after = rest.split("\n### ", 1)
    listed = [n for t in _node_tables(provided + after) for n in t]
    [lacking] = _node_tables(missing)
    for name in listed + lacking:
        assert re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", name), f"not a node name: {name!r}"
    return set(listed), set(lacking)


def test_comfy_compat_lists_what_the_registry_has_and_lacks():
    """docs/comfy-compat.md said latentgraph ran workflows of "the classic core nodes", and
    no page said which of ComfyUI's it lacked (unCLIP, GLIGEN, hypernetworks, ...): every node
    its tables name as provided is registered, every node it lists as not provided is not."""
    import latentgraph.nodes  # noqa: F401 - registers the nodes

    provided, lacking = _compat_names()
    names = set(default_registry.names())
    assert len(provided) > 90 and {"KSampler", "VAEDecodeTiled", "LatentBlend"} <= provided
    assert sorted(provided - names) == []
    assert {"unCLIPCheckpointLoader", "GLIGENLoader", "SaveLatent", "FreeU"} <= lacking
    assert sorted(lacking & names) == []
