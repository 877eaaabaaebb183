"""The `latentgraph` command as a user meets it: exit codes, messages, events, caching."""

import json
import re
import signal

import pytest

from .conftest import PLUGIN, write

GOOD = """\
version: 1
params:
  x: 2
nodes:
  a:
    type: CliNumber
    value: $x
  b:
    type: CliNumber
    value: 3
  sum:
    type: CliAdd
    a: a.value
    b: b
  out:
    type: CliWrite
    value: sum
    name: total
"""


def events(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines() if line.strip()]


def test_validate_ok(cli, tmp_path):
    path = write(tmp_path, "good.yaml", GOOD)
    code, out, err = cli("validate", str(path))
    assert code == 0, err
    assert "ok (4 nodes)" in out


def test_validate_reports_every_problem_with_location(cli, tmp_path):
    bad = GOOD.replace("value: 3", "value: 5000").replace("b: b", "b: nowhere.value")
    path = write(tmp_path, "bad.yaml", bad)
    code, out, err = cli("validate", str(path))
    assert code == 2
    assert "Traceback" not in err
    assert f"{path}:10:" in err and "'b'" in err and "'value'" in err  # out of range, at its line
    assert "'sum'" in err and "nowhere" in err  # the dangling link
    assert "2 error(s)" in err


def test_validate_json_output(cli, tmp_path):
    path = write(tmp_path, "bad.yaml", GOOD.replace("CliAdd", "CliAd"))
    code, out, _ = cli("validate", str(path), "--json")
    assert code == 2
    (problem,) = [p for p in json.loads(out) if p["severity"] == "error"]
    assert problem["code"] == "unknown_node_type"
    assert problem["node"] == "sum"
    assert "CliAdd" in problem["message"]  # did you mean


def test_validate_checks_several_files_each_named_and_exits_with_the_worst(cli, tmp_path):
    """`validate workflows/*.json`: every file checked, each problem line and verdict naming
    its file, a last line counting them; exit 2 when any has an error, 0 when none has."""
    good = write(tmp_path, "good.yaml", GOOD)
    bad = write(tmp_path, "bad.yaml", GOOD.replace("CliAdd", "CliAd"))
    missing = tmp_path / "nope.yaml"
    code, out, err = cli("validate", str(good), str(bad), str(missing))
    assert code == 2 and "Traceback" not in err, err
    assert f"{good}: ok (4 nodes)" in out
    assert f"error: {bad}:" in err and "'CliAd'" in err and f"{bad}: 1 error(s)" in err
    assert f"error: {missing}: no such file" in err and f"{missing}: 1 error(s)" in err
    assert err.splitlines()[-1] == "3 workflows: 2 with errors"
    code, out, err = cli("validate", str(bad), str(good))  # the worst, not the last
    assert code == 2 and out.splitlines()[-1] == f"{good}: ok (4 nodes)", err
    code, out, err = cli("validate", str(good), str(good))
    assert code == 0 and out.splitlines()[-1] == "2 workflows: ok", err


def test_a_json_schema_is_named_as_one_not_read_as_a_workflow(cli, tmp_path):
    """`validate workflows/*.json` on a fresh clone matched only workflows/schema.json, and
    read it as a workflow: eight errors (`unknown top-level key '$id'`...). validate, run and
    convert say what it is in one line; a workflow naming its schema with `$schema` still
    reads."""
    schema = write(tmp_path, "schema.json", json.dumps({
        "$schema": "http://json-schema.org/draft-07/schema#", "$id": "x", "type": "object",
        "properties": {}, "definitions": {}}))  # fmt: skip
    said = (f"error: {schema}: this is a JSON Schema (the workflow format's description), "
            "not a workflow")  # fmt: skip
    out_file = str(tmp_path / "out.yaml")
    for args in (("validate",), ("run",), ("convert", out_file, "--to", "yaml")):
        code, _, err = cli(args[0], str(schema), *args[1:])
        assert code == 2 and err.splitlines()[0] == said, (args, err)
        assert "top-level key" not in err and "'nodes'" not in err, err
    nodes = {"a": {"type": "CliNumber", "value": 2},
             "out": {"type": "CliWrite", "value": "a", "name": "n"}}  # fmt: skip
    named = write(tmp_path, "named.json", json.dumps({"$schema": "schema.json", "nodes": nodes}))
    assert cli("validate", str(named))[:2] == (0, f"{named}: ok (2 nodes)\n")


def test_validate_json_of_several_files_is_one_object_per_file(cli, tmp_path):
    """Several files: a list of {file, ok, nodes, problems} in the order given (one file's
    --json stays the list of its problems: test_validate_json_output)."""
    good = write(tmp_path, "good.yaml", GOOD)
    bad = write(tmp_path, "bad.yaml", GOOD.replace("CliAdd", "CliAd"))
    code, out, _ = cli("validate", str(bad), str(good), str(tmp_path / "nope.yaml"), "--json")
    assert code == 2
    first, second, third = json.loads(out)
    assert (first["file"], first["ok"], first["nodes"]) == (str(bad), False, 4)
    assert [p["code"] for p in first["problems"]] == ["unknown_node_type"]
    assert second == {"file": str(good), "ok": True, "nodes": 4, "problems": []}
    assert (third["ok"], third["nodes"]) == (False, None)
    assert third["problems"][0]["message"] == "no such file"
    code, out, _ = cli("validate", str(good), str(good), "--json")
    assert code == 0 and [f["ok"] for f in json.loads(out)] == [True, True]


def test_missing_file_and_yaml_syntax_error_exit_2_without_traceback(cli, tmp_path):
    code, _, err = cli("validate", str(tmp_path / "nope.yaml"))
    assert code == 2 and "no such file" in err and "Traceback" not in err
    path = write(tmp_path, "broken.yaml", "nodes:\n  a: [unclosed\n")
    code, _, err = cli("run", str(path))
    assert code == 2 and "broken.yaml:" in err and "Traceback" not in err


def test_an_unclosed_quote_is_one_error_line_naming_where_it_opened(cli, tmp_path):
    path = write(tmp_path, "q.yaml", 'nodes:\n  a:\n    type: "CliAdd\n    inputs: {}\n')
    code, out, err = cli("validate", str(path))
    assert code == 2 and "Traceback" not in err
    assert err.splitlines()[0] == (
        f"error: {path}:5:1: YAML syntax error: found unexpected end of stream; {path}:3:11: a "
        "quoted scalar started here; the quote opened there is never closed: end the value with "
        "the same quote"
    )
    code, out, _ = cli("validate", str(path), "--json")
    (problem,) = json.loads(out)
    assert code == 2 and f"{path}:3:11: a quoted scalar started here" in problem["message"]


def test_run_writes_output_and_second_run_is_cached(cli, tmp_path):
    path = write(tmp_path, "good.yaml", GOOD)
    code, out, err = cli("run", str(path), "--json")
    assert code == 0, err
    assert (tmp_path / "output" / "total.txt").read_text() == "5"
    first = events(out)
    assert first[0]["event"] == "run_started" and first[-1]["event"] == "run_finished"
    assert first[-1]["status"] == "success"
    assert sorted(first[-1]["executed"]) == ["a", "b", "out", "sum"]

    (tmp_path / "output" / "total.txt").write_text("stale")
    code, out, _ = cli("run", str(path), "--json")
    assert code == 0
    finished = events(out)[-1]
    assert finished["executed"] == []  # unchanged graph: everything, outputs too, from cache
    assert finished["cached"] == ["out"]  # its inputs were not even needed
    assert (tmp_path / "output" / "total.txt").read_text() == "stale"


def test_a_cached_second_runs_summary_counts_add_up_to_its_nodes(cli, tmp_path):
    """The second run's summary said `0 ran, 1 cached, 0 failed, 0 skipped` for 4 nodes: the
    output node's inputs, not needed once it came from the cache, were in no count."""
    path = write(tmp_path, "good.yaml", GOOD)
    assert cli("run", str(path))[0] == 0
    code, out, err = cli("run", str(path))
    assert (code, out) == (0, "")  # progress and summary are on stderr (README)
    summary = err.rstrip().splitlines()[-1]
    assert summary.startswith("success: 0 ran, 1 cached, 3 not needed, 0 failed, 0 skipped in ")
    counts = re.findall(r"(\d+) (?:ran|cached|not needed|failed|skipped)", summary)
    assert sum(map(int, counts)) == 4, summary


def test_set_overrides_a_param_and_reruns_only_its_descendants(cli, tmp_path):
    path = write(tmp_path, "good.yaml", GOOD)
    assert cli("run", str(path), "--json")[0] == 0
    code, out, _ = cli("run", str(path), "--json", "--set", "x=10")
    assert code == 0
    assert (tmp_path / "output" / "total.txt").read_text() == "13"
    assert sorted(events(out)[-1]["executed"]) == ["a", "out", "sum"]


def test_unknown_param_is_a_user_error(cli, tmp_path):
    path = write(tmp_path, "good.yaml", GOOD)
    code, _, err = cli("run", str(path), "--set", "nope=1")
    assert code == 2 and "nope" in err and "Traceback" not in err


def test_sweep_runs_once_per_value_sharing_upstream(cli, tmp_path):
    path = write(tmp_path, "good.yaml", GOOD)
    code, out, _ = cli("run", str(path), "--json", "--sweep", "x=1,2,3")
    assert code == 0
    runs = [e for e in events(out) if e["event"] == "run_finished"]
    assert len(runs) == 3
    executed_b = sum("b" in r["executed"] for r in runs)
    assert executed_b == 1  # the unswept branch ran once
    assert (tmp_path / "output" / "total.txt").read_text() == "6"


def test_failing_node_exit_1_and_independent_branch_finishes(cli, tmp_path):
    text = (
        GOOD
        + """\
  broken:
    type: CliFail
    a: a
  out2:
    type: CliWrite
    value: broken
    name: never
"""
    )
    path = write(tmp_path, "fail.yaml", text)
    code, out, err = cli("run", str(path), "--json")
    assert code == 1
    assert (tmp_path / "output" / "total.txt").read_text() == "5"
    assert not (tmp_path / "output" / "never.txt").exists()
    failed = [e for e in events(out) if e["event"] == "node_failed"]
    assert failed[0]["node_id"] == "broken" and "refusing 2" in failed[0]["message"]


def test_debug_shows_a_failed_nodes_traceback_after_its_error(cli, tmp_path):
    """`latentgraph --debug run` printed only `error in node ...`: a plugin's traceback was
    in --json alone. Without --debug the one line is unchanged."""
    from .conftest import PLUGIN

    path = write(tmp_path, "fail.yaml", GOOD + "  broken: {type: CliFail, a: a}\n"
                 "  out2: {type: CliWrite, value: broken, name: never}\n")  # fmt: skip
    code, _, err = cli("--debug", "run", str(path), "--nodes-dir", str(PLUGIN), "--cache-dir",
                       str(tmp_path / "cache"))  # fmt: skip
    assert code == 1
    lines = err.splitlines()
    said = "node 'broken' (CliFail): RuntimeError: refusing 2"
    at = next(i for i, line in enumerate(lines) if line.endswith(f": {said}"))
    assert lines[at].startswith(f"error: {path}:")  # at the node's place, as problems are
    assert lines[at + 1] == "Traceback (most recent call last):"
    assert 'raise RuntimeError(f"refusing {a}")' in err and "cli_toys.py" in err
    code, _, err = cli("run", str(path))
    assert code == 1
    assert said in err
    assert "Traceback" not in err


def test_nodes_list_and_describe(cli):
    code, out, _ = cli("nodes")
    assert code == 0 and "CliAdd" in out and "UNetDenoise" in out
    code, out, _ = cli("nodes", "describe", "CliNumber")
    assert code == 0 and "value: INT" in out and "max 1000" in out
    code, _, err = cli("nodes", "describe", "CliNumbr")
    assert code == 2 and "did you mean 'CliNumber'" in err


@pytest.mark.parametrize("extra", [["extra"], ["extra", "more"], ["a", "b", "c"]])
def test_nodes_list_refuses_an_argument_it_does_not_take(cli, extra):
    """`nodes list extra` listed every node, exit 0, ignoring `extra`; `nodes list extra more`
    said `unrecognized arguments: more`, dropping `extra` and the hint: one message for any
    number of them."""
    code, out, err = cli("nodes", "list", *extra)
    assert code == 2 and out == ""
    assert err.splitlines() == [f"latentgraph: error: unrecognized arguments: {' '.join(extra)} "
                                "(nodes list takes none; nodes describe NAME describes one)"]  # fmt: skip
    code, out, err = cli("nodes", "describe", "CliNumber", *extra)
    assert code == 2 and out == ""
    assert err.splitlines() == [f"latentgraph: error: unrecognized arguments: {' '.join(extra)} "
                                "(nodes describe takes one NAME)"]  # fmt: skip


def _orders(*units: tuple[str, ...], words: int) -> list[list[str]]:
    """Every order of `units` (a word, or a flag with its value) keeping the first `words`
    units, the command's words, in the order given: the command lines a user may type."""
    from itertools import permutations

    lines = []
    for order in permutations(units):
        placed = [unit for unit in order if unit in units[:words]]
        if placed == list(units[:words]):
            lines.append([arg for unit in order for arg in unit])
    return lines


NODES_DIR = ("--nodes-dir", str(PLUGIN))


@pytest.mark.parametrize("argv", _orders(("describe",), ("CliNumber",), ("--json",), NODES_DIR,
                                         words=2))  # fmt: skip
def test_nodes_describe_takes_its_words_and_flags_in_any_order(cli, argv):
    """`nodes describe --json VShow` and `nodes describe --nodes-dir p1 VShow` said
    `unrecognized arguments: VShow`, the valid name taken for an extra: argparse placed no
    word after a flag once the optional action had been filled."""
    code, out, err = cli("nodes", *argv, plugin=False)
    assert (code, err) == (0, ""), argv
    assert json.loads(out)["name"] == "CliNumber"


LIST_HINT = "(nodes list takes none; nodes describe NAME describes one)"


@pytest.mark.parametrize(("words", "hint"), [
    (("list", "extra", "more"), f"extra more {LIST_HINT}"),
    (("describe", "CliNumber", "extra", "more"), "extra more (nodes describe takes one NAME)"),
])  # fmt: skip
def test_nodes_refuses_extra_words_with_its_hint_in_any_order(cli, words, hint):
    """`nodes list --json extra more` and `nodes describe VShow --json VAdd` lost the hint
    (argparse's bare `unrecognized arguments`): every order gets the one message."""
    for argv in _orders(*[(w,) for w in words], ("--json",), NODES_DIR, words=len(words)):
        code, out, err = cli("nodes", *argv, plugin=False)
        assert (code, out) == (2, ""), argv
        assert err.splitlines() == [f"latentgraph: error: unrecognized arguments: {hint}"], argv


def test_validate_takes_files_after_a_flag_and_after_dashdash(cli, tmp_path):
    """`validate a.yaml --json b.yaml` refused `b.yaml`; `--` still marks the words after it
    as files, however they begin (Python 3.11's parse of words and flags in any order drops
    a `--` before every word)."""
    good = write(tmp_path, "good.yaml", GOOD)
    write(tmp_path, "-odd.yaml", GOOD)  # the fixture runs in tmp_path
    code, out, err = cli("validate", str(good), "--json", str(good), *NODES_DIR, plugin=False)
    assert (code, err) == (0, "") and [f["ok"] for f in json.loads(out)] == [True, True]
    code, out, err = cli("validate", *NODES_DIR, "--", "-odd.yaml", plugin=False)
    assert (code, out, err) == (0, "-odd.yaml: ok (4 nodes)\n", "")
    code, out, err = cli("validate", "--json", *NODES_DIR, "--", "-odd.yaml", str(good),
                         plugin=False)  # fmt: skip
    assert (code, err) == (0, "") and [f["file"] for f in json.loads(out)] == ["-odd.yaml",
                                                                             str(good)]  # fmt: skip


@pytest.mark.parametrize("argv", [
    *(line + ["--", "CliNumber"] for line in _orders(("describe",), ("--json",), NODES_DIR,
                                                      words=1)),
    *(line + ["--", "describe", "CliNumber"] for line in _orders(("--json",), NODES_DIR,
                                                                 words=0)),
])  # fmt: skip
def test_nodes_describe_takes_its_words_after_dashdash_wherever_its_flags_stand(cli, argv):
    """`nodes describe --nodes-dir p1 -- VShow` said `unrecognized arguments: -- VShow`: a
    `--` anywhere brought back argparse's rule, the words before the first flag or none."""
    code, out, err = cli("nodes", *argv, plugin=False)
    assert (code, err) == (0, ""), argv
    assert json.loads(out)["name"] == "CliNumber"


def test_the_words_after_dashdash_are_words_however_they_begin_after_the_others(cli, tmp_path):
    """`validate a.yaml --json b.yaml -- -odd.yaml` said `unrecognized arguments: b.yaml --
    -odd.yaml`, and `--json` after `--` was read as the flag: a file's name now, as every
    word after `--`."""
    good = write(tmp_path, "good.yaml", GOOD)
    write(tmp_path, "-odd.yaml", GOOD)  # the fixture runs in tmp_path
    write(tmp_path, "--json", GOOD)
    code, out, err = cli("validate", str(good), "--json", "good.yaml", *NODES_DIR, "--",
                         "-odd.yaml", plugin=False)  # fmt: skip
    assert (code, err) == (0, "")
    assert [f["file"] for f in json.loads(out)] == [str(good), "good.yaml", "-odd.yaml"]
    code, out, err = cli("validate", *NODES_DIR, "--", "good.yaml", "--json", plugin=False)
    assert (code, err) == (0, "") and out.splitlines()[:2] == ["good.yaml: ok (4 nodes)",
                                                               "--json: ok (4 nodes)"]  # fmt: skip


def test_a_trailing_dashdash_is_no_word(cli, tmp_path):
    """`run wf.yaml --set x=5 --` said `unrecognized arguments: --`."""
    path = write(tmp_path, "good.yaml", GOOD)
    code, out, err = cli("validate", str(path), *NODES_DIR, "--set", "x=5", "--", plugin=False)
    assert (code, out, err) == (0, f"{path}: ok (4 nodes)\n", "")


def test_nodes_json_and_markdown_together_is_a_usage_error(cli, capsys):
    """One output format at a time: both flags printed JSON, silently ignoring --markdown."""
    with pytest.raises(SystemExit) as exit_:
        cli("nodes", "--json", "--markdown")
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "latentgraph: error: --markdown: not allowed with argument --json\n" in err


def test_schema_is_json_with_node_types(cli):
    code, out, _ = cli("schema", plugin=False)
    assert code == 0
    schema = json.loads(out)
    assert "UNetDenoise" in json.dumps(schema)


def test_schema_builtin_with_nodes_dir_is_a_user_error(cli, tmp_path):
    """--builtin is the shipped file: a folder of plugins given with it would be left out."""
    code, out, err = cli("schema", "--builtin", "--nodes-dir", str(tmp_path), plugin=False)
    assert (code, out) == (2, "")
    assert "latentgraph: error: --builtin leaves every plugin out: give it or --nodes-dir" in err


@pytest.mark.parametrize("command", [["run", "x.yaml"], ["validate", "x.yaml"], ["nodes"],
                                     ["schema"], ["convert", "x.yaml", "-"]])  # fmt: skip
def test_bad_nodes_dir_is_a_user_error(cli, tmp_path, command):
    """One rule for every command taking --nodes-dir (`serve` too: test_serve_flags.py)."""
    missing = tmp_path / "missing"
    code, _, err = cli(*command, "--nodes-dir", str(missing), plugin=False)
    assert code == 2 and f"latentgraph: error: --nodes-dir {missing}: not a folder" in err
    assert "Traceback" not in err


@pytest.mark.parametrize("command", [["run", "x.yaml"], ["validate", "x.yaml"], ["nodes"],
                                     ["schema"]])  # fmt: skip
def test_a_plugin_that_fails_to_import_is_a_warning_and_the_command_goes_on(cli, tmp_path,
                                                                           command):  # fmt: skip
    """As `serve` says it (test_serve_flags.py): one warning line naming the file, then the
    command does its work without that plugin."""
    write(tmp_path, "x.yaml", GOOD)
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    bad = write(plugins, "bad.py", "raise RuntimeError('plugin exploded')\n")
    code, _, err = cli(*command, "--nodes-dir", str(plugins))  # and the toy plugin
    assert code == 0, err
    assert err.count("failed to load") == 1
    assert f"latentgraph: warning: node plugin {bad} failed to load: RuntimeError: plugin " \
           "exploded" in err  # fmt: skip


@pytest.mark.parametrize("command", ["validate", "run"])
def test_a_type_unknown_beside_a_plugin_that_failed_to_import_names_that_failure(cli, tmp_path,
                                                                               command):  # fmt: skip
    """The unknown type's error names the plugin that failed and why, not "give its folder
    with --nodes-dir" (it was given), as a server worker lacking it says it."""
    write(tmp_path, "x.yaml", "nodes:\n  a:\n    type: Exploding\n")
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    bad = write(plugins, "bad.py", "raise RuntimeError('plugin exploded')\n")
    code, _, err = cli(command, "x.yaml", "--nodes-dir", str(plugins))
    assert code == 2, err
    assert (
        f"unknown node type 'Exploding'; it may be declared by a plugin that did not load: "
        f"node plugin {bad} failed to load: RuntimeError: plugin exploded ({bad}:1)"
    ) in err
    assert "give its folder with --nodes-dir" not in err


BAD_RETURNS = """
from latentgraph.graph import IMAGE, INT, Int, Output, Socket, node


@node("RetNone", inputs=[Int("x", 1)], outputs=[Output("y", INT)])
def ret_none(ctx, x):
    x + 1


@node("WrongType", outputs=[Output("v", INT)])
def wrong_type(ctx):
    return "not an int"


@node("WrongImage", outputs=[Output("image", IMAGE)])
def wrong_image(ctx):
    return [[0.0, 0.0, 0.0]]


@node("ChannelsFirst", outputs=[Output("image", IMAGE)])
def channels_first(ctx):
    import torch

    return torch.rand(1, 3, 16, 16)


@node("Uint8Image", outputs=[Output("image", IMAGE)])
def uint8_image(ctx):
    import torch

    return torch.zeros(1, 16, 16, 3, dtype=torch.uint8)


@node("MyAdd", inputs=[Int("a", 0, min=0, max=100), Int("b", 1)], outputs=[Output("v", INT)])
def my_add(ctx, a, b):
    return a + b
"""


BAD_CASES = [
    ("n: {type: WrongType}\n  add: {type: MyAdd, a: {from: n.v}}\n  p: {type: PreviewAny, source: add}",
     "node 'n' (WrongType): TypeError: returned 'not an int' "
     "(str) for output 'v', declared INT (an int)"),
    ("n: {type: RetNone}\n  p: {type: PreviewAny, source: n}",
     "node 'n' (RetNone): TypeError: returned None for output 'y', "
     "declared INT (an int)"),
    ("n: {type: WrongImage}\n  s: {type: SaveImage, images: n}",
     "node 'n' (WrongImage): TypeError: returned list[1] (list) "
     "for output 'image', declared IMAGE (a float torch.Tensor [B, H, W, C], C 3 or 4, in 0..1)"),
    # channels first, and uint8: SaveImage saved a 16x3 picture, or VAEEncode was blamed
    ("n: {type: ChannelsFirst}\n  s: {type: SaveImage, images: n}",
     "node 'n' (ChannelsFirst): TypeError: returned Tensor[1, 3, 16, 16] torch.float32 (Tensor) "
     "for output 'image', declared IMAGE (a float torch.Tensor [B, H, W, C], C 3 or 4, in 0..1)"),
    ("n: {type: Uint8Image}\n  s: {type: SaveImage, images: n}",
     "node 'n' (Uint8Image): TypeError: returned Tensor[1, 16, 16, 3] torch.uint8 (Tensor) "
     "for output 'image', declared IMAGE (a float torch.Tensor [B, H, W, C], C 3 or 4, in 0..1)"),
]  # fmt: skip


def test_a_plugin_node_returning_the_wrong_type_is_the_failure_not_what_it_feeds(cli, tmp_path):
    """A None or a wrong value was cached and passed on: the next node was blamed with an
    unrelated TypeError/AttributeError, or a preview showed null and the run succeeded."""
    plugin = tmp_path / "bad_returns"
    plugin.mkdir()
    (plugin / "bad_returns.py").write_text(BAD_RETURNS)
    for nodes, error in BAD_CASES:
        path = write(tmp_path, "bad.yaml", f"version: 1\nnodes:\n  {nodes}\n")
        for _ in range(2):  # nothing was cached: the second run fails the same way
            code, _, err = cli("run", str(path), "--nodes-dir", str(plugin))
            assert code == 1, err
            lines = [line for line in err.splitlines() if line and "warning" not in line]
            assert lines[0] == f"error: {path}:3:3: {error}"
            assert lines[1].startswith("failed: 0 ran, 0 cached, 1 failed, ")  # the rest skipped


CTRL_C = """
import os
import signal
import time

from latentgraph.graph import Output, Socket, node


@node("CliCtrlC", inputs=[Socket("a", "CLI_INT")], outputs=[Output("value", "CLI_INT")])
def ctrl_c(ctx, a):
    os.kill(os.getpid(), signal.SIGINT)  # the user presses Ctrl-C while this node runs
    for _ in range(500):
        ctx.check_cancelled()
        time.sleep(0.01)
    return a
"""


def test_the_summary_after_ctrl_c_counts_the_interrupted_node(cli, tmp_path):
    plugin = tmp_path / "ctrl_c"
    plugin.mkdir()
    (plugin / "ctrl_c.py").write_text(CTRL_C)
    assert cli("run", str(write(tmp_path, "good.yaml", GOOD)))[0] == 0  # b and out cached
    text = (
        GOOD
        + """\
  c: {type: CliNumber, value: 9}
  stop: {type: CliCtrlC, a: c}
  after: {type: CliAdd, a: stop, b: b}
  never: {type: CliWrite, value: after, name: never}
"""
    )
    path = write(tmp_path, "stop.yaml", text)
    code, _, err = cli("run", str(path), "--nodes-dir", str(plugin))
    assert code == 130, err
    assert (
        "interrupted: 1 ran, 2 cached, 2 not needed, 0 failed, 1 interrupted (node 'stop' "
        "(CliCtrlC)), 2 skipped in "
    ) in err  # named off a terminal too
    # said at once, while the node still ran (before its summary line)
    notice = ("latentgraph: Ctrl-C: stopping after node 'stop' (CliCtrlC) finishes or reaches "
              "its next step; press Ctrl-C again to stop now")  # fmt: skip
    assert notice in err and err.index(notice) < err.index("interrupted: 1 ran")
    code, out, _ = cli("run", str(path), "--nodes-dir", str(plugin), "--json")
    assert code == 130
    finished = events(out)[-1]
    assert finished["event"] == "run_finished" and finished["status"] == "interrupted"
    assert (finished["executed"], finished["interrupted"], finished["skipped"]) == (
        [], ["stop"], ["after", "never"])  # fmt: skip
    assert sorted(finished["cached"]) == ["b", "c", "out"]  # c ran the first time
    assert finished["interrupted_node"] == "stop"


LATE_SIGNAL = """\
import os
import signal

from latentgraph.graph import Output, Socket, node


@node("CliLateSignal", inputs=[Socket("a", "CLI_INT")], outputs=[Output("value", "CLI_INT")],
      output_node=True)
def late_signal(ctx, a):
    os.kill(os.getpid(), signal.SIGTERM)  # arrives during the last node, which never checks
    return a
"""


@pytest.mark.parametrize(("sig", "name"), [("SIGTERM", "SIGTERM"), ("SIGINT", "Ctrl-C")])
def test_a_signal_during_the_last_node_which_finishes_leaves_a_success(cli, tmp_path, sig, name):
    """A SIGTERM or Ctrl-C while the last node runs (a long PNG save in C code, which checks
    no step) exited 130/143 "interrupted" while every node had finished and its files were
    saved; `run --json`'s run_finished said success all the same. The run's status decides:
    success, exit 0, and a note says the signal stopped nothing."""
    plugin = tmp_path / "late"
    plugin.mkdir()
    (plugin / f"late_{sig}.py").write_text(LATE_SIGNAL.replace("signal.SIGTERM", f"signal.{sig}")
                                           .replace("CliLateSignal", f"CliLate{sig}"))  # fmt: skip
    path = write(tmp_path, "late.yaml", GOOD + f"  last: {{type: CliLate{sig}, a: sum}}\n")
    code, _, err = cli("run", str(path), "--nodes-dir", str(plugin), "--no-cache")
    assert code == 0, err
    assert "success: " in err and "interrupted" not in err
    assert err.rstrip().splitlines()[-1] == (
        f"latentgraph: note: {name} came during the last node, which finished: the run "
        "succeeded, nothing was stopped")  # fmt: skip
    code, out, err = cli("run", str(path), "--nodes-dir", str(plugin), "--no-cache", "--json")
    assert code == 0, err
    assert events(out)[-1]["event"] == "run_finished" and events(out)[-1]["status"] == "success"


def test_a_sweeps_run_stopped_before_any_node_names_no_node_interrupted(cli, tmp_path):
    """Ctrl-C during the last node of a sweep's first run, which finishes: the next run stops
    before its first node, and was reported `"interrupted_node": "a"`, a node that never
    started (skipped). None was: null, every node it was to run skipped, and its summary says
    it stopped before any node ran."""
    plugin = tmp_path / "late"
    plugin.mkdir()
    (plugin / "late.py").write_text(LATE_SIGNAL.replace("signal.SIGTERM", "signal.SIGINT"))
    path = write(tmp_path, "late.yaml", GOOD + "  last: {type: CliLateSignal, a: sum}\n")
    args = ("run", str(path), "--nodes-dir", str(plugin), "--no-cache", "--sweep", "x=2,4")
    code, out, err = cli(*args, "--json")
    assert code == 130, err
    first, second = [e for e in events(out) if e["event"] == "run_finished"]
    assert first["status"] == "success" and second["status"] == "interrupted"
    assert (second["executed"], second["cached"], second["interrupted"]) == ([], ["b"], [])
    assert second["interrupted_node"] is None and second["skipped"] == ["a", "sum", "out", "last"]
    code, _, err = cli(*args)
    assert code == 130, err
    assert "interrupted: 0 ran, 1 cached, 0 failed, 4 skipped in " in err
    assert "s; stopped before any node ran\nlatentgraph: interrupted by Ctrl-C\n" in err


def test_sigterm_stops_a_run_as_ctrl_c_does_with_its_own_exit_code(cli, tmp_path):
    """SIGTERM (a service manager, `docker stop`) ended the process at once with no word, exit
    143: now the run stops at the node's next step, as after Ctrl-C, and says so; the exit code
    stays the shell's for a SIGTERM. The handlers are put back afterwards."""
    import signal

    plugin = tmp_path / "term"
    plugin.mkdir()
    (plugin / "term.py").write_text(CTRL_C.replace("signal.SIGINT", "signal.SIGTERM")
                                    .replace("CliCtrlC", "CliTerm"))  # fmt: skip
    path = write(tmp_path, "stop.yaml", GOOD + "  stop: {type: CliTerm, a: sum}\n"
                 "  never: {type: CliWrite, value: stop, name: never}\n")  # fmt: skip
    before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    code, _, err = cli("run", str(path), "--nodes-dir", str(plugin))
    assert code == 143, err
    assert (
        "interrupted: " in err and ", 1 interrupted (node 'stop' (CliTerm)), 1 skipped in " in err
    )
    assert ("latentgraph: SIGTERM: stopping after node 'stop' (CliTerm) finishes or reaches its "
            "next step; send SIGTERM again to stop now") in err  # fmt: skip
    assert err.rstrip().splitlines()[-1] == "latentgraph: interrupted by SIGTERM"
    assert not (tmp_path / "output" / "never.txt").exists()
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == before
    code, out, err = cli("run", str(path), "--nodes-dir", str(plugin), "--json")
    assert code == 143 and "latentgraph: interrupted by SIGTERM" in err
    assert events(out)[-1]["status"] == "interrupted"


STUBBORN = """
import os
import signal
import threading
import time

from latentgraph.graph import Output, Socket, node
from latentgraph.graph.files import write_file

FIRST, SECOND = signal.{first}, signal.{second}


@node("CliStubborn{second}", inputs=[Socket("a", "CLI_INT")],
      outputs=[Output("value", "CLI_INT")])
def stubborn(ctx, a):
    # The user presses Ctrl-C while this node runs, and again a moment later, while it is
    # half-way through writing a file and never checks for cancellation.
    os.kill(os.getpid(), FIRST)
    threading.Timer(0.3, os.kill, (os.getpid(), SECOND)).start()

    def save(tmp):
        with open(tmp, "w") as fh:
            fh.write("half")
            fh.flush()
            time.sleep(30)
            fh.write(" and the rest")

    write_file(ctx.settings.output_dir / "slow.txt", save)
    return a
"""


@pytest.mark.parametrize(("first", "second", "code", "name"), [
    ("SIGINT", "SIGINT", 130, "Ctrl-C"), ("SIGINT", "SIGTERM", 143, "SIGTERM")])  # fmt: skip
def test_a_second_ctrl_c_does_not_wait_for_a_node_that_checks_no_step(cli, tmp_path, first,
                                                                       second, code, name):  # fmt: skip
    """A node that never polls for cancellation (a plugin's `time.sleep(30)`) kept the run
    going 28 s after two Ctrl-C: the second one now ends it at once, naming the node it did
    not wait for. The file that node was writing is not left half-written (nor its temporary
    copy), and what finished before it stays cached."""
    import signal
    import time

    plugin = tmp_path / "stubborn"
    plugin.mkdir()
    (plugin / "stubborn.py").write_text(STUBBORN.format(first=first, second=second))
    path = write(tmp_path, "stop.yaml", GOOD + f"  stop: {{type: CliStubborn{second}, a: sum}}\n"
                 "  never: {type: CliWrite, value: stop, name: never}\n")  # fmt: skip
    before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    started = time.monotonic()
    code_seen, _, err = cli("run", str(path), "--nodes-dir", str(plugin))
    assert time.monotonic() - started < 10, "the second signal waited for the node"
    assert code_seen == code, err
    assert err.rstrip().splitlines()[-1] == (
        f"latentgraph: interrupted again ({name}): did not wait for node 'stop' "
        f"(CliStubborn{second}) to stop; what had finished is cached")  # fmt: skip
    assert sorted(p.name for p in (tmp_path / "output").iterdir()) == ["total.txt"]
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == before
    code_seen, out, _ = cli("run", str(write(tmp_path, "done.yaml", GOOD)), "--json")
    assert code_seen == 0
    finished = events(out)[-1]
    assert (finished["executed"], finished["cached"]) == ([], ["out"])  # nothing ran again


def test_a_second_ctrl_c_under_no_cache_does_not_say_what_finished_is_cached(cli, tmp_path):
    """Under --no-cache nothing outlives the process: the second Ctrl-C said "what had
    finished is cached" all the same."""
    plugin = tmp_path / "stubborn"
    plugin.mkdir()
    (plugin / "stubborn.py").write_text(STUBBORN.format(first="SIGINT", second="SIGINT"))
    path = write(tmp_path, "stop.yaml", GOOD + "  stop: {type: CliStubbornSIGINT, a: sum}\n"
                 "  never: {type: CliWrite, value: stop, name: never}\n")  # fmt: skip
    code, _, err = cli("run", str(path), "--nodes-dir", str(plugin), "--no-cache")
    assert code == 130, err
    assert err.rstrip().splitlines()[-1] == (
        "latentgraph: interrupted again (Ctrl-C): did not wait for node 'stop' "
        "(CliStubbornSIGINT) to stop")  # fmt: skip


SLEEPER = """
import time

from latentgraph.graph import Output, Socket, node


@node("CliSleeper", inputs=[Socket("a", "CLI_INT")], outputs=[Output("value", "CLI_INT")])
def sleeper(ctx, a):
    time.sleep(30)  # checks no step: only a second Ctrl-C ends the run before it returns
    return a
"""


# How a `run` that Ctrl-C stopped ends, in a process of its own (`python -m latentgraph.cli`,
# as the installed command): by SIGINT itself (`exits.end_process`), which a shell shows as
# exit status 130 and Popen as -2.
STOPPED_BY_CTRL_C = -signal.SIGINT


def _run_until_started(tmp_path, node_type: str, plugin_source: str, after: bool = True,
                       json: bool = True):  # fmt: skip
    """`run --json` in its own process of the test workflow with a node `slow` of
    `node_type` (declared by `plugin_source`) and a node `after` writing after it (none when
    not `after`: `slow` an output node, the last to run), returned once `slow` has started
    (its `node_started` line read). Without `json`, the text output: `slow` has started once
    its warning line is read (its node must warn as it starts)."""
    import os
    import subprocess
    import sys

    from .conftest import PLUGIN

    plugin = tmp_path / "plugin"
    plugin.mkdir()
    (plugin / "slow.py").write_text(plugin_source)
    path = write(tmp_path, "slow.yaml", GOOD + f"  slow: {{type: {node_type}, a: sum}}\n"
                 + ("  after: {type: CliWrite, value: slow, name: after}\n" if after else ""))  # fmt: skip
    proc = subprocess.Popen(
        [sys.executable, "-m", "latentgraph.cli", "run", str(path), *(["--json"] if json else []),
         "--nodes-dir", str(PLUGIN), "--nodes-dir", str(plugin), "--cache-dir",
         str(tmp_path / "cache")],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    lines, started = ((proc.stdout, ('"node_started"', '"slow"')) if json
                      else (proc.stderr, ("warning: ", "node 'slow'")))  # fmt: skip
    try:
        for line in lines:
            if all(text in line for text in started):
                return proc
        raise AssertionError(f"the slow node never started: {proc.stderr.read()}")
    except BaseException:
        proc.kill()
        raise


def test_two_ctrl_c_from_the_terminal_end_the_command_at_once(tmp_path):
    """The tester's case, as a terminal sends it to the process: Ctrl-C while a node sleeps
    30 s, again a second later: exit 130 came 28 s later. Now at once, with one line."""
    import signal
    import time

    proc = _run_until_started(tmp_path, "CliSleeper", SLEEPER)
    try:
        proc.send_signal(signal.SIGINT)
        time.sleep(1)
        proc.send_signal(signal.SIGINT)
        asked = time.monotonic()
        code = proc.wait(timeout=20)
        assert time.monotonic() - asked < 10
    finally:
        proc.kill()
    err = proc.stderr.read()
    assert code == STOPPED_BY_CTRL_C, err
    assert err.rstrip().splitlines()[-1] == (
        "latentgraph: interrupted again (Ctrl-C): did not wait for node 'slow' (CliSleeper) to "
        "stop; what had finished is cached")  # fmt: skip
    assert (tmp_path / "output" / "total.txt").read_text() == "5"
    assert not (tmp_path / "output" / "after.txt").exists()


def _wait_for_stderr(proc, text: str) -> None:
    """Read `proc`'s stderr up to the line holding `text` (what the test waits for)."""
    for line in proc.stderr:
        if text in line:
            return
    raise AssertionError(f"no stderr line with {text!r}")


def test_run_json_ends_with_run_finished_after_a_second_ctrl_c(tmp_path):
    """A second Ctrl-C ended `run --json` with no `run_finished` line: a program reading the
    lines never learned how the run ended. Its last line says: interrupted, at the node that
    was running, the nodes after it skipped."""
    import signal

    proc = _run_until_started(tmp_path, "CliSleeper", SLEEPER)
    try:
        proc.send_signal(signal.SIGINT)
        _wait_for_stderr(proc, "press Ctrl-C again to stop now")  # the first one was taken
        proc.send_signal(signal.SIGINT)
        out = proc.stdout.read()
        code = proc.wait(timeout=60)
    finally:
        proc.kill()
    assert code == STOPPED_BY_CTRL_C, proc.stderr.read()
    finished = (events(out) or [{"event": "no line after node_started"}])[-1]
    assert finished["event"] == "run_finished" and finished["status"] == "interrupted"
    assert (finished["interrupted"], finished["interrupted_node"], finished["skipped"]) == (
        ["slow"], "slow", ["after"])  # fmt: skip
    assert sorted(finished["executed"]) == ["a", "b", "out", "sum"]


WAITER = """
import time
from pathlib import Path

from latentgraph.graph import Output, Socket, node


@node("CliWaiter", inputs=[Socket("a", "CLI_INT")], outputs=[Output("value", "CLI_INT")])
def waiter(ctx, a):
    while not (Path(ctx.settings.output_dir).parent / "go").exists():  # the test says when
        time.sleep(0.01)
    return a
"""


def _ctrl_c_then_go(proc, tmp_path) -> tuple[int, str, str]:
    """Ctrl-C while the waiter node runs, then let it finish (`go`): the exit code, stdout and
    the rest of stderr."""
    import signal

    try:
        proc.send_signal(signal.SIGINT)
        _wait_for_stderr(proc, "press Ctrl-C again to stop now")  # taken while it runs
        (tmp_path / "go").touch()
        out = proc.stdout.read()
        code = proc.wait(timeout=60)
    finally:
        proc.kill()
    return code, out, proc.stderr.read()


def test_ctrl_c_during_the_last_node_which_finishes_exits_0(tmp_path):
    """Ctrl-C while the last node runs, which finishes all the same (it checks no step):
    the run made every output, its run_finished said success, yet it exited 130 saying
    "interrupted". It exits 0, as its status says, with a note that nothing was stopped."""

    waiter = WAITER.replace('"CliWaiter",', '"CliLastWaiter", output_node=True,')
    proc = _run_until_started(tmp_path, "CliLastWaiter", waiter, after=False)
    code, out, err = _ctrl_c_then_go(proc, tmp_path)
    assert code == 0, err
    finished = events(out)[-1]
    assert finished["event"] == "run_finished" and finished["status"] == "success"
    assert "slow" in finished["executed"]
    assert err.rstrip().splitlines()[-1] == (
        "latentgraph: note: Ctrl-C came during the last node, which finished: the run "
        "succeeded, nothing was stopped")  # fmt: skip


# A command's process whose teardown takes its time (torch's modules: a second or two), saying
# when it has begun: an exit handler, which runs once the command has decided its exit code.
SLOW_TEARDOWN = """\
import atexit, time
from latentgraph.cli import entry

def teardown():
    print("tearing down", flush=True)
    time.sleep(60)

atexit.register(teardown)
entry()
"""


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_once_the_command_decided_leaves_its_exit_code(tmp_path, sig):
    """A Ctrl-C or SIGTERM in the second or two after a run finished (its `run_finished`
    said success, its image saved) ended the process by that signal: 130 or 143, a completed
    render recorded as stopped. The code the command decided stands (here `validate`'s 2),
    and the process ends at once."""
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-c", SLOW_TEARDOWN, "validate", "nope.yaml"],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)  # fmt: skip
    try:
        assert proc.stdout.readline() == "tearing down\n"
        proc.send_signal(sig)
        code = proc.wait(60)
    finally:
        proc.kill()
    assert code == 2, proc.stderr.read()


@pytest.mark.parametrize("json", [True, False])
def test_ctrl_c_during_a_node_which_finishes_stops_before_the_next_naming_none_interrupted(
        tmp_path, json):  # fmt: skip
    """Ctrl-C while a node that checks no step runs (a plugin's sleep, a big VAEDecode), which
    finishes, a node still after it: the run stops before that one (exit 130), but run_finished
    named as interrupted the node after it, which never started (`"interrupted_node": "after"`,
    skipped), and the text summary named no node. No node was cut short: `interrupted_node`
    is null, the node that finished among `executed`, the one after it skipped, and the
    summary says where it stopped."""

    waiter = WAITER.replace("    while", '    ctx.warn("waiting for go")\n    while')
    proc = _run_until_started(tmp_path, "CliWaiter", waiter, json=json)
    code, out, err = _ctrl_c_then_go(proc, tmp_path)
    assert code == STOPPED_BY_CTRL_C, err
    assert err.rstrip().splitlines()[-1] == "latentgraph: interrupted by Ctrl-C"
    assert not (tmp_path / "output" / "after.txt").exists()
    if json:
        finished = events(out)[-1]
        assert finished["event"] == "run_finished" and finished["status"] == "interrupted"
        assert (finished["interrupted"], finished["interrupted_node"], finished["skipped"]) == (
            [], None, ["after"])  # fmt: skip
        assert sorted(finished["executed"]) == ["a", "b", "out", "slow", "sum"]
    else:
        assert "interrupted: 5 ran, 0 cached, 0 failed, 1 skipped in " in err
        assert "s; stopped after node 'slow' (CliWaiter)\n" in err


def test_run_json_whose_reader_goes_away_stops_and_exits_1_saying_so(tmp_path):
    """`run --json | head -1` exited 0 (the broken pipe taken as `schema | head`'s), the run
    abandoned and nothing after it saved: a script took it for a success. It stops, exit 1,
    one line saying why and what became of the run; no "Exception ignored" at exit."""
    proc = _run_until_started(tmp_path, "CliWaiter", WAITER)
    try:
        proc.stdout.close()  # as `head -1` exits
        (tmp_path / "go").touch()
        code = proc.wait(timeout=60)
    finally:
        proc.kill()
    err = proc.stderr.read()
    assert code == 1, err
    assert err.rstrip().splitlines()[-1] == (
        "latentgraph: error: stdout was closed (its reader went away) before run finished: "
        "the run stopped before finishing; what had finished is cached")  # fmt: skip
    assert "Exception ignored" not in err and "Traceback" not in err
    assert not (tmp_path / "output" / "after.txt").exists()


def test_schema_whose_reader_goes_away_still_exits_0(tmp_path):
    """`latentgraph schema | head`: the text was the product, the reader had what it wanted."""
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-m", "latentgraph.cli", "schema"], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    try:
        proc.stdout.readline()
        proc.stdout.close()
        code = proc.wait(timeout=60)
    finally:
        proc.kill()
    err = proc.stderr.read().decode()
    assert code == 0 and err == "", err


@pytest.mark.parametrize("command", [
    ["validate", "--json"],
    ["run", "--json"],
    ["run", "--json", "--ray", "local", "--ray-workers", "1"],  # refused before Ray starts
])  # fmt: skip
def test_an_invalid_workflow_keeps_exit_2_when_the_json_reader_goes_away(tmp_path, command):
    """The verdict is reached before its text is printed: problems filling more than a pipe
    holds, whose reader left (`validate --json | head -1`), made `validate` exit 0, `run
    --json` exit 1 saying the run stopped (it never started) and `run --ray --json` exit 1
    with a traceback. Each keeps README's 2 for an invalid workflow."""
    import subprocess
    import sys

    path = write(tmp_path, "bad.yaml", "version: 1\nnodes:\n" + "".join(
        f"  n{i}: {{type: NoSuchNode{i}}}\n" for i in range(1000)))  # fmt: skip
    with open(tmp_path / "stderr", "w+") as stderr:  # a file: 1,000 lines would fill a pipe
        proc = subprocess.Popen([sys.executable, "-m", "latentgraph.cli", command[0],
                                 str(path), *command[1:]], cwd=tmp_path,
                                stdout=subprocess.PIPE, stderr=stderr)  # fmt: skip
        try:
            proc.stdout.read(1)  # more than a pipe holds is on its way: it meets a reader gone
            proc.stdout.close()
            code = proc.wait(timeout=120)
        finally:
            proc.kill()
    err = (tmp_path / "stderr").read_text()
    assert code == 2, err[-2000:]
    assert "Traceback" not in err and "Exception ignored" not in err, err[-2000:]
    assert "stdout was closed" not in err, err[-2000:]
