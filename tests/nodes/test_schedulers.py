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
