"""Property tests: random valid graphs validate clean and round-trip; corrupted ones are caught."""

from __future__ import annotations

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from latentgraph.graph.comfy_api import graph_from_prompt, prompt_from_graph
from latentgraph.graph.model import Graph, Link, Node
from latentgraph.graph.problems import WorkflowError
from latentgraph.graph.validate import validate
from latentgraph.graph.workflow import dump_workflow, load_workflow

from .conftest import make_registry

REGISTRY = make_registry()
NUMBER_OUTPUTS = {"Const": 1, "Add": 1, "Split": 2, "Scale": 1, "Range": 1}
SETTINGS = settings(suppress_health_check=[HealthCheck.too_slow])  # examples: the profile
texts = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=10)


@st.composite
def valid_graphs(draw) -> Graph:
    graph = Graph(source="<random>")
    numbers: list[Link] = []
    count = draw(st.integers(1, 12))
    for i in range(count):
        choices = ["Const", "Range", "Format"] + (
            ["Add", "Split", "Scale", "ShowNumber", "Show"] if numbers else []
        )
        kind = draw(st.sampled_from(choices))
        pick = st.sampled_from(numbers) if numbers else None
        inputs: dict = {}
        if kind == "Const":
            if draw(st.booleans()):
                inputs["value"] = draw(st.integers(-1000, 1000))
        elif kind == "Range":
            low = draw(st.integers(-50, 50))
            inputs = {"low": low, "high": draw(st.integers(low, 100))}
        elif kind == "Format":
            inputs["template"] = draw(texts)
            if numbers and draw(st.booleans()):
                inputs["value"] = draw(pick)
        elif kind == "Add":
            inputs["a"] = draw(pick)
            if draw(st.booleans()):
                inputs["b"] = draw(pick)
        elif kind == "Split":
            inputs["x"] = draw(pick)
        elif kind == "Scale":
            inputs["x"] = draw(pick)
            optional = {
                "factor": st.floats(0, 10, allow_nan=False),
                "seed": st.integers(0, 2**32),
                "flip": st.booleans(),
                "mode": st.sampled_from(["fast", "slow", "exact"]),
                "note": st.text(max_size=10).filter(lambda s: "\x00" not in s),
                "width": st.integers(8, 512),
                "free": st.floats(allow_nan=False),
            }
            for name in draw(st.lists(st.sampled_from(sorted(optional)), unique=True)):
                inputs[name] = draw(optional[name])
        else:  # Show, ShowNumber
            inputs["value"] = draw(pick)
        title = draw(st.none() | texts)
        node_id = draw(st.sampled_from([f"n{i}", str(i), f"node-{i}", f"x.{i}"]))
        graph.add(Node(node_id, kind, inputs, title=title))
        for output in range(NUMBER_OUTPUTS.get(kind, 0)):
            numbers.append(Link(node_id, output))
    if not any(n.type in ("Show", "ShowNumber") for n in graph):
        last = next(reversed(graph.nodes))
        graph.add(Node("final", "Show", {"value": Link(last, 0)}))
    return graph


def errors(graph: Graph):
    return [p for p in validate(graph, REGISTRY) if p.severity == "error"]


def same(a: Graph, b: Graph) -> None:
    assert list(a.nodes) == list(b.nodes)
    for node in a:
        other = b[node.id]
        assert (other.type, other.inputs, other.title) == (node.type, node.inputs, node.title)


@SETTINGS
@given(valid_graphs())
def test_valid_graphs_have_no_errors_and_round_trip(graph):
    assert errors(graph) == []
    prompt = prompt_from_graph(graph, REGISTRY)
    same(graph, graph_from_prompt(prompt, REGISTRY))
    text = dump_workflow(graph, REGISTRY)
    same(graph, load_workflow("r.yaml", text=text, registry=REGISTRY).graph)


def _corrupt(draw, graph: Graph) -> str:
    nodes = list(graph)
    how = draw(st.sampled_from(["drop", "cycle", "type", "dangling", "unknown"]))
    if how == "drop":
        victims = [
            n for n in nodes if n.type in ("Add", "Split", "Scale", "Show", "ShowNumber", "Format")
        ]
        if victims:
            node = draw(st.sampled_from(victims))
            required = {
                "Add": "a",
                "Split": "x",
                "Scale": "x",
                "Show": "value",
                "ShowNumber": "value",
                "Format": "template",
            }
            del node.inputs[required[node.type]]
            return "required_input_missing"
        how = "unknown"
    if how == "cycle":
        node = draw(st.sampled_from(nodes))
        graph.add(Node("loop", "Add", {"a": Link(node.id, 0)}))
        graph.add(Node("loop2", "ShowNumber", {"value": Link("loop", 0)}))
        node.type = "Add"
        node.inputs = {"a": Link("loop", 0)}
        return "cycle"
    if how == "type":
        node = draw(st.sampled_from(nodes))
        node.type, node.inputs = (
            "Const",
            {"value": draw(st.sampled_from(["7", 1.5, True, None, [1]]))},
        )
        return "invalid_input_type"
    if how == "dangling":
        graph.add(Node("dangler", "Show", {"value": Link("ghost", 0)}))
        return "bad_linked_input"
    node = draw(st.sampled_from(nodes))
    node.type = draw(st.sampled_from(["Nope", "const", "Scal", ""]))
    return "unknown_node_type"


@SETTINGS
@given(st.data())
def test_corrupted_graphs_get_a_matching_error(data):
    graph = data.draw(valid_graphs())
    code = _corrupt(data.draw, graph)
    assert code in {p.code for p in errors(graph)}


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=10,
)


@SETTINGS
@given(
    st.dictionaries(
        st.text(max_size=3),
        json_values
        | st.fixed_dictionaries(
            {"class_type": st.sampled_from(["Const", "Add", "Show", "Scale", "X"]) | json_values},
            optional={
                "inputs": st.dictionaries(
                    st.sampled_from(["a", "x", "value", "mode", "b"]),
                    json_values | st.tuples(st.text(max_size=2), st.integers(-1, 3)).map(list),
                )
            },
        ),
        max_size=5,
    )
)
def test_malformed_prompts_never_crash(prompt):
    try:
        graph = graph_from_prompt(prompt, REGISTRY)
    except WorkflowError as exc:
        assert all(p.code == "invalid_prompt" for p in exc.problems)
        return
    validate(graph, REGISTRY)


@SETTINGS
@given(st.text(max_size=200))
@example("{")  # JSON syntax error: located in the file
@example("[1, 2]")  # a document that is not a workflow
def test_arbitrary_text_never_crashes_the_loader(text):
    """Any text is either a workflow or a WorkflowError whose problems name the file."""
    for name, body in (("f.yaml", "nodes:\n  a: " + text), ("f.json", text)):
        try:
            workflow = load_workflow(name, text=body, registry=REGISTRY)
        except WorkflowError as exc:
            assert exc.errors, exc.problems  # refused for at least one error
            for problem in exc.problems:
                assert problem.message and problem.location.file == name, problem
        else:
            assert isinstance(workflow.graph, Graph) and len(workflow.graph.nodes) >= 1
