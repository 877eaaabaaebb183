"""SchedulerSelect's Karras option: refused at validation for a scheduler without Karras
sigmas, as KSampler refuses its `karras` scheduler with such a sampler."""

import inspect

import pytest

import latentgraph.nodes  # noqa: F401 - registers the node types these prompts use
from latentgraph.graph.comfy_api import graph_from_prompt
from latentgraph.graph.validate import validate
from latentgraph.nodes import schedulers


def _problems(name: str, karras: bool) -> list[tuple[str, str, str]]:
    prompt = {
        "1": {"class_type": "LoadModel", "inputs": {"source": "builtin:tiny-sd"}},
        "2": {"class_type": "SchedulerSelect",
              "inputs": {"scheduler": ["1", 3], "name": name, "karras": karras}},
    }  # fmt: skip
    found = validate(graph_from_prompt(prompt))
    return [(p.node_id, p.input_name, p.message) for p in found
            if p.severity == "error" and p.code != "prompt_no_outputs"]  # fmt: skip


@pytest.mark.parametrize("name", ["ddim", "ddpm", "pndm", "euler_a", "lcm", "tcd"])
def test_karras_on_a_scheduler_without_karras_sigmas_is_refused_at_validation(name):
    [(node_id, input_name, message)] = _problems(name, True)
    assert (node_id, input_name) == ("2", "karras")
    assert f"scheduler {name!r} has no Karras sigmas" in message
    assert "with karras use one of: deis, dpm++1s, dpm++2m," in message
    assert _problems(name, False) == []


def test_karras_on_a_scheduler_with_karras_sigmas_passes():
    assert _problems("dpm++2m", True) == []


def test_karras_refused_when_run_too(make_ctx, tiny):
    """A linked `karras` is only known at run time: the same refusal there (it was a warning
    and the option ignored)."""
    from latentgraph.nodes.values import NodeInputError

    spec = tiny[3]
    with pytest.raises(NodeInputError) as err:
        schedulers.scheduler_select(make_ctx("SchedulerSelect"), spec, "ddim", karras=True)
    assert err.value.input_name == "karras" and "has no Karras sigmas" in str(err.value)


def test_karras_table_matches_diffusers():
    for name, (class_name, _) in schedulers.SCHEDULERS.items():
        params = inspect.signature(schedulers.scheduler_class(class_name).__init__).parameters
        assert ("use_karras_sigmas" in params) == (name in schedulers.KARRAS), name


def _stepped(sched, x, timesteps, drop_history_at=None):
    """`x` stepped through `timesteps` by a smooth stand-in model; the history of a multistep
    scheduler dropped before step `drop_history_at` (as a new sampler node starts)."""
    import torch

    for i, t in enumerate(timesteps):
        if i == drop_history_at:
            sched.derivatives = []  # LMS's history
        x = sched.step(torch.sin(sched.scale_model_input(x, t) * 0.3 + float(t) / 300), t, x)
        x = x.prev_sample
    return x


@pytest.mark.parametrize("name", ["lms", "euler"])
def test_a_split_schedule_is_the_whole_run_with_its_history_dropped(name):
    """KSamplerAdvanced halves (steps 0..4, then 4..8 from the leftover noise): LMS's second
    half starts without the first half's derivatives, so it differs from the whole run
    (docs/comfy-compat.md: the method, as in ComfyUI) and equals the whole run with its history
    dropped at step 4; euler keeps no history and matches the whole run exactly."""
    import torch

    from latentgraph.nodes.comfy import sampler_spec
    from latentgraph.nodes.values import UNetModel

    spec = sampler_spec(UNetModel(None, "no-weights", "cpu", "fp32"), name, "normal")  # SD's

    def fresh(begin: int):
        sched = schedulers.build_scheduler(spec)
        sched.set_timesteps(8)
        sched.set_begin_index(begin)
        return sched

    torch.manual_seed(0)
    start = torch.randn(1, 4, 8, 8) * fresh(0).init_noise_sigma
    timesteps = fresh(0).timesteps
    half = _stepped(fresh(0), start, timesteps[:4])
    split = _stepped(fresh(4), half, timesteps[4:])
    whole = _stepped(fresh(0), start, timesteps)
    dropped = _stepped(fresh(0), start, timesteps, drop_history_at=4)
    torch.testing.assert_close(split, dropped, rtol=0, atol=1e-6)
    if name == "euler":
        torch.testing.assert_close(split, whole, rtol=0, atol=1e-6)
    else:
        assert float((split - whole).abs().max()) > 1e-3


def test_an_unknown_scheduler_name_is_shown_with_one_backslash(make_ctx):
    """The name is quoted as it was sent (`graph.problems.quoted`), not doubled by repr."""
    from latentgraph.nodes.values import NodeInputError, SchedulerSpec

    with pytest.raises(NodeInputError) as caught:
        schedulers.scheduler_select(make_ctx("SchedulerSelect"), SchedulerSpec({}), "dpm\\2m")
    assert "unknown scheduler 'dpm\\2m'; one of ['" in str(caught.value)
