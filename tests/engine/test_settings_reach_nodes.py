"""The scheduler's Settings are what node code sees: through the Context when it runs, and as
the argument of its check hook, choice lists and cache identity at validation and keying."""

from __future__ import annotations

from latentgraph.graph import INT, Choice, Int, Output, Registry, Settings, node
from latentgraph.graph.cache import Cache
from latentgraph.graph.model import Graph, Node
from latentgraph.graph.scheduler import Scheduler
from latentgraph.graph.validate import validate


def _toy(seen: dict) -> Registry:
    reg = Registry()

    def check(inputs, settings):
        seen["check"] = settings
        return []

    def files(settings):
        seen["choices"] = settings
        return sorted(p.name for p in settings.input_dir.iterdir())

    def identity(inputs, settings):
        seen["identity"] = settings
        return ""

    @node("Pick", inputs=[Choice("name", files), Int("n", 1)], outputs=[Output("v", INT)],
          output_node=True, check=check, identity=identity, registry=reg)  # fmt: skip
    def pick(ctx, name, n):
        seen["context"] = ctx.settings
        return n

    return reg


def test_settings_given_to_the_scheduler_reach_check_hook_choices_identity_and_context(
    tmp_path,
):
    (tmp_path / "a.png").write_bytes(b"")
    seen: dict = {}
    settings = Settings(input_dir=tmp_path, max_steps=7)
    graph = Graph()
    graph.add(Node("p", "Pick", {"name": "a.png"}))
    result = Scheduler(_toy(seen), Cache(), settings=settings).run(graph)
    assert result.ok, result.failures
    assert all(seen[k] is settings for k in ("check", "choices", "identity", "context")), seen


def test_choices_are_listed_from_the_folder_the_settings_name(tmp_path):
    (tmp_path / "here").mkdir()
    (tmp_path / "here" / "a.png").write_bytes(b"")
    (tmp_path / "elsewhere").mkdir()
    graph = Graph()
    graph.add(Node("p", "Pick", {"name": "a.png"}))
    reg = _toy({})
    assert validate(graph, reg, Settings(input_dir=tmp_path / "here")) == []
    [problem] = validate(graph, reg, Settings(input_dir=tmp_path / "elsewhere"))
    assert (problem.code, problem.input_name) == ("value_not_in_list", "name")
