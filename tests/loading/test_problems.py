"""How a problem reads: where (file:line:column), which node and input, then what."""

from __future__ import annotations

from latentgraph.graph.model import Location
from latentgraph.graph.problems import Problem, WorkflowError

AT = Location("w.yaml", 3, 5)


def test_a_problem_names_its_place_node_and_input():
    assert str(Problem("c", "too big", "n1", "steps", AT)) == (
        f"{AT}: node 'n1' input 'steps': too big")  # fmt: skip
    assert str(AT).startswith("w.yaml:3")


def test_parts_that_are_not_known_are_left_out():
    assert str(Problem("c", "empty")) == "empty"
    assert str(Problem("c", "cycle", "n1")) == "node 'n1': cycle"
    assert str(Problem("c", "bad file", location=AT)) == f"{AT}: bad file"


def test_a_workflow_error_lists_every_problem_one_per_line():
    problems = [Problem("a", "first", "n1"), Problem("b", "second", location=AT)]
    error = WorkflowError(problems)
    assert str(error) == f"node 'n1': first\n{AT}: second"
    assert error.problems == problems and error.errors == problems
    warning = Problem("unused_node", "not used", "n2", severity="warning")
    assert WorkflowError([*problems, warning]).errors == problems


def test_did_you_mean_offers_up_to_three_close_names_or_a_case_match():
    from latentgraph.graph.problems import did_you_mean

    assert did_you_mean("stpes", ["steps", "seed", "cfg"]) == "; did you mean 'steps'?"
    names = ["value1", "value2", "value3", "value4"]
    # four equally close: three of them (difflib breaks the tie by name, last first)
    assert did_you_mean("value", names) == "; did you mean 'value4' or 'value3' or 'value2'?"
    assert did_you_mean("KSAMPLER", ["KSampler", "VAEDecode"]) == "; did you mean 'KSampler'?"
    assert did_you_mean("zzz", ["steps", "seed"]) == ""


def test_did_you_mean_compares_file_names_without_their_shared_extension():
    """'.safetensors' alone made an unrelated checkpoint look close (ratio 0.625)."""
    from latentgraph.graph.problems import did_you_mean

    files = ["builtin:tiny-sd", "empty.safetensors", "tiny.safetensors"]
    assert did_you_mean("v1-5-pruned-emaonly.safetensors", files) == ""
    assert did_you_mean("tiny-lora-kohy.safetensors", ["tiny-lora-kohya.safetensors",
                                                       "x.safetensors"]) == \
        "; did you mean 'tiny-lora-kohya.safetensors'?"  # fmt: skip
    assert did_you_mean("emtpy.safetensors", files) == "; did you mean 'empty.safetensors'?"
