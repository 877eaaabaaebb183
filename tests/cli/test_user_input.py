"""What the user types on the command line (`--option`, `--set`, `--sweep`, folders and
devices) is read strictly and refused before anything runs, with the usage exit code."""

import json
import os
import sys
from pathlib import Path

import pytest

from .conftest import write
from .test_cli import GOOD


def events(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines() if line.strip()]


@pytest.mark.parametrize(("option", "message"), [
    ("vae_tilling=true", "--option vae_tilling: no such option; did you mean 'vae_tiling'"),
    ("vram_headroom_gb=abc", "--option vram_headroom_gb: 'abc' is not a number of GB"),
    ("compile=maybe", "--option compile: 'maybe' is not a switch; write true or false"),
    ("compile", "--option 'compile': expected NAME=VALUE"),
])  # fmt: skip
def test_bad_options_are_refused_before_anything_runs(cli, tmp_path, option, message):
    path = write(tmp_path, "good.yaml", GOOD)
    code, out, err = cli("run", str(path), "--json", "--option", option)
    assert code == 2
    assert f"latentgraph: error: {message}" in err and "Traceback" not in err
    assert out == ""  # not one event: nothing ran
    assert not (tmp_path / "output").exists()


def test_good_options_are_accepted(cli, tmp_path):
    path = write(tmp_path, "good.yaml", GOOD)
    code, _, err = cli("run", str(path), "-q", "--option", "compile=off",
                       "--option", "vram_headroom_gb=1.5")  # fmt: skip
    assert code == 0, err


def reads_of(monkeypatch, name: str) -> list:
    """The values option `name`'s declaration is asked to read, from now on."""
    import dataclasses

    from latentgraph.graph.context import OPTIONS

    declared, reads = OPTIONS[name], []
    monkeypatch.setitem(OPTIONS, name, dataclasses.replace(
        declared, parse=lambda value: reads.append(value) or declared.parse(value)))  # fmt: skip
    return reads


def test_run_reads_each_option_once_and_its_settings_keep_the_value_read(cli, tmp_path,
                                                                         monkeypatch):  # fmt: skip
    """The CLI reads `--option` (to name the flag in a refusal); the Settings it makes do not
    read the values again, so the two readings cannot drift apart."""
    from latentgraph.graph.scheduler import Scheduler

    reads, seen = reads_of(monkeypatch, "vram_headroom_gb"), []
    run = Scheduler.run
    monkeypatch.setattr(Scheduler, "run", lambda self, *a, **k: (
        seen.append(self.settings.option("vram_headroom_gb")), run(self, *a, **k))[1])  # fmt: skip
    path = write(tmp_path, "good.yaml", GOOD)
    code, _, err = cli("run", str(path), "-q", "--option", "vram_headroom_gb=1.5")
    assert code == 0, err
    assert reads == ["1.5"] and seen == [1.5]


def test_serve_reads_each_option_once_and_its_server_keeps_the_values_read(cli, tmp_path,
                                                                           monkeypatch):  # fmt: skip
    """`serve --option`: read by the CLI (naming `--option`), kept by the server's Settings
    (and by each worker's copy of them) as read; `previews=off` is off."""
    import dataclasses

    from latentgraph import wiring
    from latentgraph.server import run as server_run
    from latentgraph.server.app import create_app
    from latentgraph.server.workers import WorkerSetup

    from ..server.plugin.toy_nodes import toy_registry

    reads, made = reads_of(monkeypatch, "vram_headroom_gb"), {}

    def serve(config, **_):  # the app the command would serve, without its workers or a port
        config.load_nodes, config.editor = False, False
        app = create_app(config, workers=WorkerSetup(registry=toy_registry))
        state = app.state.lg
        made.update(settings=state.settings, previews=state.dispatcher.previews,
                    worker=dataclasses.replace(state.settings, device="cpu"))  # fmt: skip
        state.store.close()

    monkeypatch.setattr(wiring, "prepare_server", lambda config, errors: None)
    monkeypatch.setattr(server_run, "serve", serve)
    code, _, err = cli("serve", "--data-dir", str(tmp_path / "data"), "--option",
                       "vram_headroom_gb=1.5", "--option", "previews=off")  # fmt: skip
    assert code == 0, err
    assert reads == ["1.5"]
    assert made["settings"].option("vram_headroom_gb") == 1.5
    assert made["worker"].option("vram_headroom_gb") == 1.5
    assert made["previews"] is False
    code, _, err = cli("serve", "--data-dir", str(tmp_path / "data"), "--option", "previews=maybe")
    assert code == 2 and "latentgraph: error: --option previews: 'maybe' is not a switch" in err


NAMED = GOOD.replace("params:\n  x: 2\n", "params:\n  x: 2\n  label: total\n").replace(
    "name: total", "name: $label"
)
API = {
    "a": {"class_type": "CliNumber", "inputs": {"value": 2}},
    "out": {"class_type": "CliWrite", "inputs": {"value": ["a", 0], "name": "x"}},
}


@pytest.mark.parametrize("text", ["[cat:dog:0.5]", "null", "5", "true", "[1, 2]", " spaced "])
def test_set_keeps_the_text_as_written_for_a_text_param(cli, tmp_path, text):
    """`[a:b:0.5]` is prompt syntax, not a list; `null` and `5` are text too."""
    path = write(tmp_path, "named.yaml", NAMED)
    code, _, err = cli("run", str(path), "-q", "--set", f"label={text}")
    assert code == 0, err
    assert (tmp_path / "output" / f"{text}.txt").read_text() == "5"


def test_set_types_a_number_param_and_refuses_text_for_it(cli, tmp_path):
    path = write(tmp_path, "named.yaml", NAMED)
    assert cli("run", str(path), "-q", "--set", "x=7")[0] == 0
    assert (tmp_path / "output" / "total.txt").read_text() == "10"
    code, _, err = cli("validate", str(path), "--set", "x=seven")
    assert code == 2 and "expected an integer (INT), got 'seven'" in err


def test_set_on_an_api_file_types_the_value_by_the_input_it_sets(cli, tmp_path):
    """The same rule as for params: a STRING input keeps `5` as text, an INT input reads 7."""
    path = write(tmp_path, "api.json", json.dumps(API))
    code, _, err = cli("run", str(path), "-q", "--set", "out.name=5", "--set", "a.value=7")
    assert code == 0, err
    assert (tmp_path / "output" / "5.txt").read_text() == "7"
    code, _, err = cli("validate", str(path), "--set", "out.name=[cat:dog:0.5]")
    assert code == 0, err


def test_sweep_values_may_hold_commas_when_quoted(cli, tmp_path):
    path = write(tmp_path, "named.yaml", NAMED)
    code, out, err = cli("run", str(path), "--json", "--sweep", 'label="a cat, sitting",a dog')
    assert code == 0, err
    assert sum(e["event"] == "run_started" for e in events(out)) == 2
    assert sorted(p.name for p in (tmp_path / "output").iterdir()) == [
        "a cat, sitting.txt", "a dog.txt"]  # fmt: skip


@pytest.mark.parametrize(("sweeps", "message"), [
    (["x=1,2", "label=a,b"],
     "--sweep given 2 times (x=1,2, label=a,b): a run sweeps one param"),
    (['label="a'], "--sweep label: cannot read the values"),
    (["x="], "--sweep 'x=': expected NAME=V1,V2,..."),
    # repr doubled the backslash of a name typed with one; csv's words asked about a file
    ([r"C:\x"], r"--sweep 'C:\x': expected NAME=V1,V2,..."),
    (["label=a\nb,c"], "--sweep label: cannot read the values (a line break outside quotes)"),
])  # fmt: skip
def test_bad_sweeps_are_refused_naming_sweep_before_anything_runs(cli, tmp_path, sweeps, message):
    path = write(tmp_path, "named.yaml", NAMED)
    code, out, err = cli("run", str(path), "--json", *[a for s in sweeps for a in ("--sweep", s)])
    assert code == 2
    assert f"latentgraph: error: {message}" in err and "Traceback" not in err
    assert out == ""


def test_a_swept_param_also_given_to_set_is_refused_naming_both_flags(cli, tmp_path):
    """The --set was silently overridden by each swept value."""
    path = write(tmp_path, "named.yaml", NAMED)
    code, out, err = cli("run", str(path), "--json", "--sweep", "x=1,2", "--set", "x=5")
    assert code == 2 and out == ""
    assert "latentgraph: error: --sweep x=1,2 and --set x=5 both set 'x': give one of them" in err
    assert not (tmp_path / "output").exists()
    code, _, err = cli("run", str(path), "-q", "--sweep", "x=1,2", "--set", "label=y")
    assert code == 0, err  # another param: both apply


def test_each_sweep_run_is_labelled_with_its_value(cli, tmp_path):
    """Three identical-looking blocks were printed, none saying which value it was for."""
    path = write(tmp_path, "named.yaml", NAMED)
    code, _, err = cli("run", str(path), "--sweep", "x=10,11,12")
    assert code == 0, err
    lines = [line.split(":")[0] if line.startswith("success:") else line
             for line in err.splitlines() if line.startswith(("sweep ", "success:"))]  # fmt: skip
    assert lines == ["sweep 1/3: x=10", "success", "sweep 2/3: x=11", "success",
                     "sweep 3/3: x=12", "success"]  # fmt: skip
    _, out, err = cli("run", str(path), "--json", "--sweep", "x=10,11")
    assert "sweep 1/2" not in out + err  # --json: the events alone


def test_a_swept_value_with_a_line_break_is_labelled_on_one_line(cli, tmp_path):
    """`--sweep 'label="a<newline>b",c'` printed "sweep 1/2: label=a", then "b" alone."""
    path = write(tmp_path, "named.yaml", NAMED)
    code, _, err = cli("run", str(path), "--sweep", 'label="a\nb",c')
    assert code == 0, err
    assert [line for line in err.splitlines() if line.startswith("sweep ")] == [
        "sweep 1/2: label=a\\nb", "sweep 2/2: label=c"]  # fmt: skip


def test_a_bad_value_given_on_the_command_line_is_placed_at_its_flag(cli, tmp_path):
    """It pointed at the file's line (`value: $x`), which is right: now the flag that gave the
    value is named, with the line using it, the node and the input kept."""
    path = write(tmp_path, "named.yaml", NAMED)
    said = "node 'a' input 'value': expected an integer (INT), got 'seven'"
    for command in ("validate", "run"):
        code, _, err = cli(command, str(path), "--set", "x=seven")
        assert code == 2
        assert f"error: --set x=seven ($x at {path}:8:12): {said}" in err.splitlines()
    code, out, err = cli("run", str(path), "--sweep", "x=5,seven,6", "--set", "label=y")
    assert code == 2
    assert f"error: --sweep x=seven ($x at {path}:8:12): {said}" in err.splitlines()
    bad = NAMED.replace("x: 2", "x: two")  # the file's own value: its declaration, as a flag
    code, _, err = cli("run", write(tmp_path, "bad.yaml", bad).as_posix(), "--set", "label=y")
    file = tmp_path / "bad.yaml"
    assert f"error: {file}:3:6: param x's default ($x at {file}:8:12): node 'a' input 'value': " \
           "expected an integer (INT), got 'two'" in err.splitlines()  # fmt: skip


@pytest.mark.parametrize("given", [[], ["--set", "x=7"]])
def test_an_input_name_typo_using_a_param_is_said_at_its_line(cli, tmp_path, given):
    """`valeu: $x` was said at x's default ('FILE:3:6: param x's default ($x at FILE:8:12)'),
    the line an editor or CI annotation jumps to; its name is wrong, not the value: the
    input's own line, in text and in --json, given a value or not."""
    path = write(tmp_path, "typo.yaml", NAMED.replace("value: $x", "valeu: $x"))
    said = "node 'a' input 'valeu': CliNumber has no input 'valeu'; did you mean 'value'?"
    code, _, err = cli("validate", str(path), *given)
    assert code == 2 and f"error: {path}:8:12: {said}" in err.splitlines(), err
    code, out, _ = cli("validate", "--json", str(path), *given)
    assert code == 2
    assert [p["location"] for p in json.loads(out)] == [f"{path}:8:12"]


@pytest.mark.parametrize("flag", ["--set", "--sweep"])
def test_a_given_value_is_echoed_with_what_cannot_be_printed_escaped(cli, tmp_path, flag):
    """`--set x=a<U+202E>b`'s echo held the raw U+202E, which turned the rest of the error
    line around on screen; the value it quoted was escaped already. One rule for both
    (`problems.printable`, `quoted`'s): CJK and accents stay as typed."""
    path = write(tmp_path, "named.yaml", NAMED)
    api = write(tmp_path, "api.json", json.dumps(API))
    said = "node 'a' input 'value': expected an integer (INT), got"
    for value, shown in [("a\u202eb", "a\\u202eb"), ("猫é\tx", "猫é\\tx")]:
        code, _, err = cli("run", str(path), flag, f"x={value}")
        assert code == 2
        assert f"error: {flag} x={shown} ($x at {path}:8:12): {said} '{shown}'" in err, err
        assert "\u202e" not in err and "\t" not in err
        code, _, err = cli("run", str(api), flag, f"a.value={value}")
        assert code == 2 and f"{flag} a.value={shown}" in err and "\u202e" not in err, err


@pytest.mark.parametrize("flag", ["--set", "--sweep"])
def test_a_typed_escape_is_echoed_apart_from_the_character(cli, tmp_path, flag):
    r"""`--set x=\u202e` typed (a backslash, u, 2, 0, 2, e) was echoed as `\u202e`, as the
    U+202E character is: a text that needs escapes to be read right is shown with every
    backslash doubled (`problems.printable`); a backslash reading as no code-point escape
    stays one (a typed `\t` or `\x64` too: Windows folders start so). A character that cannot
    be printed is shown by its code point (`\u001b`), never as repr's `\x1b`."""
    path = write(tmp_path, "named.yaml", NAMED)
    said = "node 'a' input 'value': expected an integer (INT), got"
    for value, shown in [("\\u202e", "\\\\u202e"), ("\u202e", "\\u202e"),
                         ("a\\tb", "a\\tb"), ("C:\\tools\\x64", "C:\\tools\\x64"),
                         ("a\x1b", "a\\u001b"), ("\\u001b", "\\\\u001b"),
                         ("C:\\models\\sd", "C:\\models\\sd")]:  # fmt: skip
        code, _, err = cli("run", str(path), flag, f"x={value}")
        assert code == 2
        assert f"error: {flag} x={shown} ($x at {path}:8:12): {said} '{shown}'" in err, err


def test_a_set_value_with_a_byte_that_is_not_utf8_is_echoed_apart_from_a_typed_escape(
    cli, tmp_path
):
    r"""A byte that is no UTF-8 is echoed as the shell shows it (`\xff`); the same text typed
    beside it (`\xff`: a backslash, x, f, f) is shown `\\xff`, as `printable` shows it."""
    path = write(tmp_path, "named.yaml", NAMED)
    code, _, err = cli("validate", str(path), "--set", "label=\\xff\udcff")
    assert code == 2
    said = "latentgraph: error: --set label=\\\\xff\\xff: the value is not UTF-8 text (byte 0xff)"
    assert said in err.splitlines(), err


def test_a_set_value_every_swept_run_refuses_is_said_once(cli, tmp_path):
    path = write(tmp_path, "named.yaml", NAMED)
    code, _, err = cli("run", str(path), "--sweep", "label=a,b,c", "--set", "x=seven")
    assert code == 2
    assert sum("--set x=seven" in line for line in err.splitlines()) == 1, err


def test_every_swept_value_is_checked_before_the_first_runs(cli, tmp_path):
    """Bad values anywhere in the sweep: refused with each one's problem, nothing run."""
    path = write(tmp_path, "named.yaml", NAMED)
    code, out, err = cli("run", str(path), "--sweep", "x=5,seven,6,eight")
    assert code == 2, err
    assert "got 'seven'" in err and "got 'eight'" in err and "Traceback" not in err
    assert not (tmp_path / "output").exists()  # 5 did not run before 'seven' was read


def test_sweep_of_an_api_file_is_by_node_input(cli, tmp_path):
    path = write(tmp_path, "api.json", json.dumps(API))
    code, out, err = cli("run", str(path), "--json", "--sweep", "out.name=p,q")
    assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "output").iterdir()) == ["p.txt", "q.txt"]
    code, _, err = cli("run", str(path), "--sweep", "ot.name=p,q")
    assert code == 2
    assert "--sweep ot.name: the workflow has no node 'ot'; did you mean 'out'? (node ids: a, " \
           "out)" in err  # fmt: skip


def test_a_swept_input_its_node_lacks_is_said_once_not_once_per_value(cli, tmp_path):
    """`--sweep out.nme=p,q` (an input node 'out' lacks) said the same problem once per value,
    `--sweep out.nme=p: ...` then `--sweep out.nme=q: ...`: it is about the name, said once."""
    path = write(tmp_path, "api.json", json.dumps(API))
    code, _, err = cli("run", str(path), "--sweep", "out.nme=p,q,r")
    assert code == 2 and not (tmp_path / "output").exists()
    lines = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, err
    assert lines[0].startswith("error: --sweep out.nme: node 'out' input 'nme': "), err


@pytest.mark.parametrize(("file", "name"), [
    ("named.yaml", "nope"), ("named.yaml", "lable"), ("named.yaml", "out.name"),
    ("api.json", "ot.name"), ("api.json", "name"), ("api.json", "9.value"),
])  # fmt: skip
def test_sweep_refuses_the_names_set_refuses_in_the_same_form(cli, tmp_path, file, name):
    """One rule for the names both flags take (`unknown_override`, the workflow loader's): a
    name `--set` refuses, `--sweep` refuses alike, the flag's name aside: the same
    `error: PLACE: ...` line and `--json`'s one `workflow_invalid` line (the sweep's was a
    `latentgraph: error:` line and nothing on stdout)."""
    path = write(tmp_path, file, NAMED if file.endswith(".yaml") else json.dumps(API))
    for json_flag in ([], ["--json"]):
        code, set_out, set_err = cli("run", str(path), *json_flag, "--set", f"{name}=1")
        assert code == 2 and ": --set " in set_err
        code, out, err = cli("run", str(path), *json_flag, "--sweep", f"{name}=1,2")
        assert code == 2 and not (tmp_path / "output").exists()
        assert err == set_err.replace(": --set ", ": --sweep ")
        assert out == set_out.replace('"--set ', '"--sweep ')
        if json_flag:
            [refusal] = events(out)
            assert refusal["event"] == "workflow_invalid"
            assert [p["code"] for p in refusal["problems"]] == ["unknown_param"]


REFUSING = ["--nodes-dir", str(Path(__file__).parent / "refusing_plugin")]
ODD = GOOD.replace("type: CliNumber\n    value: $x", "type: CliEven\n    value: $x")


def test_a_node_refusing_its_input_is_shown_like_a_validation_problem(cli, tmp_path):
    """file:line:col of the input (and the flag that gave its value), the message naming node
    and input; no class, no traceback."""
    path = write(tmp_path, "odd.yaml", ODD)
    code, out, err = cli("run", str(path), "-q", "--set", "x=3", *REFUSING)
    assert code == 2
    assert f"error: --set x=3 ($x at {path}:7:12): node 'a' (CliEven) input 'value': 3 is odd" \
        in err  # fmt: skip
    assert "InputError" not in err and "Traceback" not in err


def test_a_sweep_stopped_by_a_failed_run_says_which_values_did_not_run(cli, tmp_path):
    """A sweep stops at its first failed run; the values after it were skipped with nothing
    saying so, in the text or in the JSON stream."""
    path = write(tmp_path, "odd.yaml", ODD)
    code, _, err = cli("run", str(path), "-q", "--sweep", "x=4,3,6,8", *REFUSING)
    assert code == 2
    assert err.splitlines()[-1] == (
        "latentgraph: error: sweep stopped after run 2 of 4 failed: 2 not run")  # fmt: skip
    assert (tmp_path / "output" / "total.txt").read_text() == "7"  # 4 ran, 6 and 8 did not
    code, out, _ = cli("run", str(path), "--json", "--sweep", "x=4,3,6,8", *REFUSING)
    assert code == 2
    *_, finished, stopped = events(out)
    assert finished["event"] == "run_finished" and finished["status"] == "failed"
    assert stopped == {"event": "sweep_stopped", "name": "x", "index": 2, "of": 4,
                       "not_run": ["6", "8"]}  # fmt: skip
    code, out, err = cli("run", str(path), "--json", "--sweep", "x=4,3", *REFUSING)
    assert code == 2 and events(out)[-1]["event"] == "run_finished"  # the last: none skipped
    assert "sweep stopped" not in err


def test_json_says_a_nodes_failure_on_stderr_too_as_text_mode_and_a_refusal_do(cli, tmp_path):
    """With `--json` a node's failure was on stdout only, while a refused workflow is on both:
    a CI log keeping stderr had no reason for a failed run (exit 1 or 2). Its line is on stderr
    as in text mode, placed alike, the JSON on stdout unchanged."""
    odd = write(tmp_path, "odd.yaml", ODD)
    crash = write(tmp_path, "crash.yaml", GOOD + "  boom:\n    type: CliFail\n    a: a\n"
                  "  out2:\n    type: CliWrite\n    value: boom\n")  # fmt: skip
    for wf, args in ((odd, ["--set", "x=3", *REFUSING]), (crash, [])):
        code, _, text_err = cli("run", str(wf), "-q", *args)
        errors = [line for line in text_err.splitlines() if line.startswith("error: ")]
        assert code in (1, 2) and len(errors) == 1, text_err
        json_code, out, err = cli("run", str(wf), "--json", *args)
        assert json_code == code and errors[0] in err.splitlines(), err
        assert all(json.loads(line) for line in out.splitlines())  # stdout: JSON lines only


def test_a_user_error_in_json_has_no_traceback_and_a_crash_keeps_its_own(cli, tmp_path):
    path = write(tmp_path, "odd.yaml", ODD)
    code, out, _ = cli("run", str(path), "--json", "--set", "x=3", *REFUSING)
    (failed,) = [e for e in events(out) if e["event"] == "node_failed"]
    assert code == 2
    assert (failed["user_error"], failed["input"], failed["traceback"]) == (
        True, "value", [])  # fmt: skip
    crash = GOOD + "  boom:\n    type: CliFail\n    a: a\n  out2:\n    type: CliWrite\n" \
                   "    value: boom\n"  # fmt: skip
    path = write(tmp_path, "crash.yaml", crash)
    code, out, _ = cli("run", str(path), "--json")
    (failed,) = [e for e in events(out) if e["event"] == "node_failed"]
    assert code == 1
    assert failed["user_error"] is False and "Traceback" in failed["traceback"][0]


def test_an_output_dir_that_is_a_file_is_refused_before_anything_runs(cli, tmp_path):
    path = write(tmp_path, "good.yaml", GOOD)
    write(tmp_path, "afile", "x")
    code, out, err = cli("run", str(path), "--json", "--output-dir", "afile")
    assert code == 2 and out == ""
    assert "latentgraph: error: --output-dir afile: a file is there; expected a folder" in err
    code, out, err = cli("run", str(path), "--json", "--output-dir", "afile/sub")
    assert code == 2 and out == ""
    assert (
        f"latentgraph: error: --output-dir afile/sub: {tmp_path / 'afile'} is a file; expected a "
        "folder" in err
    )


@pytest.mark.parametrize("command", ["run", "submit"])
def test_the_default_output_folder_refused_is_named_as_the_default_not_as_a_flag(cli, tmp_path,
                                                                                 command):  # fmt: skip
    """A working folder where ./output cannot be (read-only, or a file there) was refused as
    `--output-dir output: ...`, a flag the user never typed: it is named as the default
    folder, with the flag choosing another; a folder the flag gave is still named by it."""
    path = write(tmp_path, "good.yaml", GOOD)
    write(tmp_path, "output", "x")
    server = ["--server", "http://127.0.0.1:9"] if command == "submit" else []
    code, _, err = cli(command, str(path), *server)
    assert code == 2, err
    assert err == ("latentgraph: error: the output folder ./output (the default; --output-dir "
                   "DIR chooses another): a file is there; expected a folder\n")  # fmt: skip
    code, _, err = cli(command, str(path), *server, "--output-dir", str(tmp_path / "output"))
    assert code == 2 and f"error: --output-dir {tmp_path / 'output'}: a file is" in err, err


@pytest.mark.parametrize("flag", ["--temp-dir", "--input-dir"])
def test_a_temp_or_input_dir_that_is_a_file_is_refused_before_anything_runs(cli, tmp_path, flag):
    """As --output-dir is: the whole graph ran, then PreviewImage (LoadImage) failed on it.
    Missing, they are fine: a workflow using neither never makes them."""
    path = write(tmp_path, "good.yaml", GOOD)
    write(tmp_path, "afile", "x")
    for folder, said in [("afile", "a file is there; expected a folder"),
                         ("afile/sub", f"{tmp_path / 'afile'} is a file; expected a folder")]:  # fmt: skip
        code, out, err = cli("run", str(path), "--json", flag, folder)
        assert code == 2 and out == ""
        assert err.splitlines() == [f"latentgraph: error: {flag} {folder}: {said}"]
        assert not (tmp_path / "output").exists()
    code, _, err = cli("run", str(path), "-q", flag, "new/folder")
    assert code == 0, err
    assert not (tmp_path / "new").exists()


@pytest.mark.parametrize(("folder", "said"), [
    ("afile", "--cache-dir afile: a file is there; expected a folder"),
    pytest.param("/proc/nope", "--cache-dir /proc/nope: cannot write in /proc",
                 marks=pytest.mark.skipif(sys.platform != "linux", reason="/proc is Linux's")),
])  # fmt: skip
def test_an_unusable_cache_dir_is_refused_as_the_output_dir_is(tmp_path, monkeypatch, capsys,
                                                                 folder, said):  # fmt: skip
    """It was silently ignored: every run ran everything again, with no word of why."""
    from latentgraph.cli import main

    from .conftest import PLUGIN

    monkeypatch.chdir(tmp_path)
    path = write(tmp_path, "good.yaml", GOOD)
    write(tmp_path, "afile", "x")
    code = main(["run", str(path), "--json", "--nodes-dir", str(PLUGIN), "--cache-dir", folder])
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    assert f"latentgraph: error: {said}" in err
    assert not (tmp_path / "output").exists()


def test_a_run_refused_before_it_starts_creates_no_output_folder(cli, tmp_path):
    path = write(tmp_path, "good.yaml", GOOD)
    code, _, _ = cli("run", str(path), "--output-dir", "new/out", "--device", "cuda")
    assert code == 2
    assert not (tmp_path / "new").exists()


@pytest.mark.parametrize("device", ["cuda", "mps"])
def test_a_device_this_machine_lacks_is_a_usage_error_before_anything_runs(
    cli, tmp_path, device, monkeypatch
):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    path = write(tmp_path, "good.yaml", GOOD)
    code, out, err = cli("run", str(path), "--json", "--device", device)
    assert code == 2 and out == ""
    assert f"latentgraph: error: --device: device {device!r}: this torch sees no" in err


def test_set_on_an_api_file_naming_no_node_says_so_with_did_you_mean(cli, tmp_path):
    path = write(tmp_path, "api.json", json.dumps(API))
    code, _, err = cli("validate", str(path), "--set", "ot.name=x")
    assert code == 2
    assert "--set ot.name: the workflow has no node 'ot'; did you mean 'out'? (node ids: a, out)" \
        in err and "have no params" not in err  # fmt: skip


def test_set_on_an_api_file_naming_no_node_hides_no_other_set_problem(cli, tmp_path):
    """Every problem at once: the unknown node was the only one reported, the bad input name
    and value of the other two --set flags said only once it was fixed."""
    path = write(tmp_path, "api.json", json.dumps(API))
    sets = ["--set", "out.nope=1", "--set", "nonode.x=1", "--set", "a.value=abc"]
    code, out, err = cli("validate", str(path), "--json", *sets)
    assert code == 2
    assert sorted((p["code"], p["node"], p["input"]) for p in json.loads(out)) == [
        ("invalid_input_type", "a", "value"), ("unknown_input", "out", "nope"),
        ("unknown_param", None, None)]  # fmt: skip
    code, out, err = cli("run", str(path), "-q", *sets)
    assert code == 2 and not (tmp_path / "output").exists()
    assert "--set nonode.x: the workflow has no node 'nonode'" in err
    assert "error: --set out.nope=1: node 'out' input 'nope': " in err
    assert "error: --set a.value=abc: node 'a' input 'value': expected an integer" in err


@pytest.mark.parametrize("command", ["validate", "run", "convert"])
def test_a_folder_named_as_the_workflow_is_called_a_folder(cli, tmp_path, command):
    (tmp_path / "flows").mkdir()
    args = [command, "flows"] + (["out.json"] if command == "convert" else [])
    code, _, err = cli(*args)
    assert code == 2
    assert "error: flows: is a folder; name a workflow file in it" in err


TOO_LONG = "ワ" * 90  # 270 bytes in UTF-8: over the 255 a file name may have
NAME_TOO_LONG = "a name in the path is longer than the 255 bytes a file system allows"


@pytest.mark.parametrize("command", ["validate", "run", "convert"])
def test_a_workflow_name_too_long_is_said_in_words_as_a_missing_one(cli, tmp_path, command):
    """It said `latentgraph: error: [Errno 36] File name too long: '...'`: a name the OS
    refuses is the workflow's problem at its path, in words, exit 2 (validate counts it)."""
    name = f"{TOO_LONG}.yaml"
    code, _, err = cli(command, name, *(["out.json"] if command == "convert" else []))
    assert code == 2, err
    assert f"error: {name}: {NAME_TOO_LONG} (File name too long)" in err
    assert "Errno" not in err
    assert (f"{name}: 1 error(s)" in err) == (command == "validate")


def test_a_file_or_folder_to_write_whose_name_is_too_long_is_said_in_words(cli, tmp_path):
    """`convert`'s DEST and `run --output-dir`: a usage error naming the argument and why."""
    write(tmp_path, "w.yaml", GOOD)
    code, _, err = cli("convert", "w.yaml", f"{TOO_LONG}.json")
    assert code == 2 and f"error: dest {TOO_LONG}.json: {NAME_TOO_LONG}" in err
    code, _, err = cli("run", "w.yaml", "--output-dir", TOO_LONG)
    assert code == 2 and f"error: --output-dir {TOO_LONG}: {NAME_TOO_LONG}" in err
    assert "Errno" not in err


def test_run_json_of_a_missing_workflow_file_says_so_in_its_event_line(cli, tmp_path):
    """A JSON-lines reader got nothing on stdout for a file that is not there (the message
    went to stderr only): it is refused as an unreadable workflow is, one event line."""
    code, out, err = cli("run", "nope.yaml", "--json")
    assert code == 2 and "error: nope.yaml: no such file" in err
    [line] = out.splitlines()
    event = json.loads(line)
    assert event["event"] == "workflow_invalid"
    assert [(p["location"], p["message"]) for p in event["problems"]] == [
        ("nope.yaml", "no such file")]  # fmt: skip


def test_run_json_refusing_a_workflow_says_so_in_one_event_line(cli, tmp_path):
    path = write(tmp_path, "bad.yaml", "version: 1\nnodes:\n  a: {type: 5}\n")
    code, out, err = cli("run", str(path), "--json")
    assert code == 2
    [line] = events(out)
    assert line["event"] == "workflow_invalid"
    assert [(p["node"], p["location"]) for p in line["problems"]] == [("a", f"{path}:3:3")]
    assert "error:" in err  # people still read it on stderr


def test_run_takes_the_limits_its_messages_name(cli, tmp_path):
    """A limit refusal names its flag (--max-steps, ...): `run` takes them as `serve` does,
    and refuses before anything runs."""
    workflow = Path(__file__).resolve().parents[2] / "workflows" / "txt2img.yaml"
    code, out, err = cli("run", str(workflow), "--json", "--max-steps", "1", "--set", "steps=2")
    assert code == 2
    assert "steps 2 is over the limit of 1 (--max-steps)" in err
    assert [e["event"] for e in events(out)] == ["workflow_invalid"]


def test_the_cli_takes_max_batch_pixels_and_names_it(cli):
    """--max-batch-pixels bounds width x height x batch, named in the refusal."""
    workflow = Path(__file__).resolve().parents[2] / "workflows" / "txt2img.yaml"
    code, _, err = cli("validate", str(workflow), "--set", "width=1024", "--set", "height=1024",
                       "--max-batch-pixels", "1000x1000")  # fmt: skip
    assert code == 2, err
    assert "over the limit of 1000000 (--max-batch-pixels)" in err
    code, _, err = cli("validate", str(workflow), "--set", "width=1024", "--set", "height=1024",
                       "--max-batch-pixels", "1024x1024")  # fmt: skip
    assert code == 0, err


def test_validate_takes_the_limits_run_takes(cli):
    """`validate --max-steps 5000` was a usage error: a workflow valid for `run --max-steps
    5000` could never pass validate."""
    workflow = Path(__file__).resolve().parents[2] / "workflows" / "txt2img.yaml"
    code, _, err = cli("validate", str(workflow), "--set", "steps=2000")
    assert code == 2 and "steps 2000 is over the limit of 1000 (--max-steps)" in err
    code, out, err = cli("validate", str(workflow), "--set", "steps=2000", "--max-steps", "5000",
                         "--max-batch", "2", "--max-pixels", "256x256")  # fmt: skip
    assert code == 0, err
    assert "ok (8 nodes)" in out
    code, _, err = cli("validate", str(workflow), "--max-pixels", "64x64")
    assert code == 2 and "(--max-pixels)" in err


@pytest.mark.parametrize("item", ["seed", "=5", "bad name=1"])
def test_every_malformed_set_gets_one_message_naming_the_flag(cli, tmp_path, item):
    """`--set seed` said 'latentgraph: error: --set 'seed': expected NAME=VALUE' and `--set
    =5` 'cannot read override '=5': ...': two checks of one rule, two wordings."""
    path = write(tmp_path, "w.yaml", "version: 1\nparams: {seed: 1}\nnodes:\n"
                 "  n: {type: CliNumber, value: $seed}\n  out: {type: CliWrite, value: n}\n")  # fmt: skip
    code, _, err = cli("run", str(path), "--set", item)
    assert code == 2
    assert f"--set {item!r}: expected NAME=VALUE with NAME a param (ASCII letters, digits and '_') " \
        "or, for ComfyUI workflows, <node id>.<input>" in err  # fmt: skip


def test_convert_refuses_a_dest_it_cannot_write_before_converting(cli, tmp_path):
    """A folder as DEST said "[Errno 21] Is a directory: '/.tmp.c7a0....tmp' -> '/tmp'" (a temp
    file's name in its parent), a DEST under a file "[Errno 17] File exists": run's folder
    rule, naming the argument, and nothing left behind."""
    path = write(tmp_path, "good.yaml", GOOD)
    write(tmp_path, "afile", "x")
    (tmp_path / "outs").mkdir()
    code, _, err = cli("convert", str(path), "outs", "--to", "api")
    assert code == 2
    assert "latentgraph: error: dest outs: a folder is there; name the file to write" in err
    code, _, err = cli("convert", str(path), "afile/x.json")
    assert code == 2
    assert f"latentgraph: error: dest afile/x.json: {tmp_path / 'afile'} is a file; expected a " \
           "folder" in err  # fmt: skip
    assert "Errno" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile", "good.yaml", "outs"]
    assert list((tmp_path / "outs").iterdir()) == []
    if hasattr(os, "mkfifo"):  # what is there is replaced by the file: never a device or pipe
        os.mkfifo(tmp_path / "pipe")
        code, _, err = cli("convert", str(path), "pipe", "--to", "api")
        assert code == 2 and "dest pipe: not a regular file; name the file to write" in err
        assert (tmp_path / "pipe").is_fifo()


def test_tiny_model_refuses_destinations_it_cannot_write_before_building(cli, tmp_path):
    """'[Errno 17] File exists: 'afile'' and '[Errno 20] Not a directory: 'afile/loras''."""
    write(tmp_path, "afile", "x")
    code, out, err = cli("tiny-model", "--single-file", "afile/x.safetensors")
    assert code == 2 and out == ""  # refused before the built-in model was looked at
    assert f"latentgraph: error: --single-file afile/x.safetensors: {tmp_path / 'afile'} is a " \
           "file; expected a folder" in err  # fmt: skip
    (tmp_path / "dir.safetensors").mkdir()
    code, out, err = cli("tiny-model", "--single-file", "dir.safetensors")
    assert code == 2 and out == ""
    assert "--single-file dir.safetensors: a folder is there; name the file to write" in err
    code, out, err = cli("tiny-model", "--addons", "afile")
    assert code == 2 and out == ""
    assert "latentgraph: error: --addons afile: a file is there; expected a folder" in err
    assert "Errno" not in err


def test_tiny_model_writes_its_checkpoint_over_no_file_unless_forced(cli, tmp_path,
                                                                      tiny_folder):  # fmt: skip
    """`tiny-model --single-file victim.json` replaced a JSON file with a 14 MB checkpoint,
    silently, exit 0: a name the loaders do not load is refused, and a file there (a link to
    nothing too) is kept, the command refused before any work, unless --force."""
    write(tmp_path, "victim.json", '{"a": 1}')
    code, out, err = cli("tiny-model", "--single-file", "victim.json", "--force")
    assert code == 2 and out == ""
    assert err == ("latentgraph: error: --single-file victim.json: a checkpoint's name ends in "
                   ".safetensors or .sft, the files LoadModel loads\n")  # fmt: skip
    write(tmp_path, "mine.safetensors", "my own checkpoint")
    (tmp_path / "gone.safetensors").symlink_to(tmp_path / "nowhere")
    for name in ("mine.safetensors", "gone.safetensors"):
        code, out, err = cli("tiny-model", "--single-file", name)
        assert code == 2 and out == ""
        assert err == (f"latentgraph: error: --single-file {name}: a file is there; give "
                       "--force to replace it, or name a new file\n")  # fmt: skip
    assert (tmp_path / "victim.json").read_text() == '{"a": 1}'
    assert (tmp_path / "mine.safetensors").read_text() == "my own checkpoint"
    assert not (tmp_path / "gone.safetensors").exists()
    code, out, err = cli("tiny-model", "--force")
    assert code == 2 and out == "", err
    assert "--force replaces a file at the --single-file PATH: give --single-file" in err

    code, out, err = cli("tiny-model", "--single-file", "mine.safetensors", "--force")
    assert code == 0, err
    assert out == f"built-in model: {tiny_folder}\nsingle-file checkpoint: mine.safetensors\n"
    assert (tmp_path / "mine.safetensors").stat().st_size > 1_000_000
    code, out, err = cli("tiny-model", "--single-file", "new.SafeTensors")  # no file there
    assert code == 0, err
    size = (tmp_path / "mine.safetensors").stat().st_size  # the checkpoint (metadata in any order)
    assert (tmp_path / "new.SafeTensors").stat().st_size == size


@pytest.mark.parametrize("there", ["nothing", "a file", "a folder"])
def test_tiny_model_refuses_a_checkpoint_name_whatever_is_there(cli, tmp_path, there):
    """A name the loaders do not load is refused first: `--single-file v2.json` on a file
    said "give --force", and with --force that the name must end in .safetensors, so the
    user was sent to --force for nothing. Nothing there is touched."""
    if there == "a file":
        write(tmp_path, "v2.json", '{"a": 1}')
    elif there == "a folder":
        (tmp_path / "v2.json").mkdir()
    code, out, err = cli("tiny-model", "--single-file", "v2.json")
    assert code == 2 and out == ""
    assert err == ("latentgraph: error: --single-file v2.json: a checkpoint's name ends in "
                   ".safetensors or .sft, the files LoadModel loads\n")  # fmt: skip
    if there == "a file":
        assert (tmp_path / "v2.json").read_text() == '{"a": 1}'
    assert (tmp_path / "v2.json").exists() == (there != "nothing")


@pytest.mark.parametrize(("command", "flag"), [("validate", "--set"), ("run", "--set"),
                                                ("run", "--sweep")])  # fmt: skip
def test_a_value_holding_bytes_that_are_not_utf8_is_a_usage_error_naming_its_flag(
    cli, tmp_path, command, flag
):
    """Python reads a non-UTF-8 argv byte as a lone surrogate: `validate` passed it and `run`
    died on its cache key with a bare "surrogates not allowed"."""
    path = write(tmp_path, "named.yaml", NAMED)
    code, out, err = cli(command, str(path), flag, "label=a\udcff")
    assert code == 2 and out == ""
    said = f"latentgraph: error: {flag} label=a\\xff: the value is not UTF-8 text (byte 0xff)"
    assert said in err.splitlines(), err
    assert "surrogates" not in err and not (tmp_path / "output").exists()


def test_a_refused_flag_value_is_quoted_as_typed(cli, tmp_path, capsys):
    r"""The flags' own refusals showed the value by repr (`'C:\\x'`, a value nobody typed), not
    by the rule every other message quotes a value with (`problems.quoted`): one backslash."""
    path = write(tmp_path, "good.yaml", GOOD)
    code, _, err = cli("run", str(path), "--option", "a\\b")
    assert code == 2 and "latentgraph: error: --option 'a\\b': expected NAME=VALUE" in err, err
    code, _, err = cli("run", str(path), "--ray", " \t")
    assert code == 2 and "latentgraph: error: --ray ' \\t': expected local" in err, err
    for flag, said in [("--max-steps", "an integer of at least 1"),
                       ("--max-pixels", "a pixel count or WIDTHxHEIGHT (e.g. 1024x1024) of at "
                                        "least 1")]:  # fmt: skip
        with pytest.raises(SystemExit) as exc:
            cli("run", str(path), flag, "C:\\x")
        assert exc.value.code == 2
        err = capsys.readouterr().err
        assert err == f"latentgraph: error: {flag}: expected {said}, got 'C:\\x'\n"


# --- a workflow read from a pipe ----------------------------------------------------------


def stdin_of(monkeypatch, data: bytes) -> None:
    import io

    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))


def test_run_reads_the_workflow_from_stdin_as_dash(cli, tmp_path, monkeypatch):
    """`latentgraph run - < wf.yaml` was "-: no such file"; its format is read from its
    content (no suffix to go by), and its problems are placed in `<stdin>`."""
    stdin_of(monkeypatch, GOOD.replace("x: 2", "x: 5").encode())
    code, _, err = cli("run", "-", "-q")
    assert code == 0, err
    assert (tmp_path / "output" / "total.txt").read_text() == "8"
    stdin_of(monkeypatch, json.dumps({"version": 1, "nodes": {"a": {"type": "Nope"}}}).encode())
    code, _, err = cli("validate", "-")
    assert code == 2 and "error: <stdin>:1:" in err and "'Nope'" in err, err
    stdin_of(monkeypatch, b"#" * (5 * 1024 * 1024 + 1))
    code, _, err = cli("validate", "-")
    assert code == 2 and "error: <stdin>: the workflow is larger than 5 MB" in err, err


def test_validate_reads_stdin_once_among_several_files(cli, tmp_path, monkeypatch):
    """`-` may be one of the files; given twice it is refused before anything is read (the
    second would find stdin empty)."""
    good = write(tmp_path, "good.yaml", GOOD)
    stdin_of(monkeypatch, GOOD.replace("CliAdd", "CliAd").encode())
    code, out, err = cli("validate", str(good), "-")
    assert code == 2 and f"{good}: ok (4 nodes)" in out and "error: <stdin>:" in err, err
    assert "<stdin>: 1 error(s)" in err
    stdin_of(monkeypatch, GOOD.encode())
    code, out, err = cli("validate", "-", str(good), "-")
    assert code == 2 and out == "", out
    assert err.strip() == ("latentgraph: error: '-' (stdin) given 2 times: stdin holds one "
                           "workflow; name the others by their files")  # fmt: skip


@pytest.mark.parametrize(("image", "head"), [
    ("PNG", b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR"), ("WEBP", b"RIFF\x10\x00\x00\x00WEBPVP8 "),
    ("JPEG", b"\xff\xd8\xff\xe0\x00\x10JFIF\x00"),
])  # fmt: skip
def test_an_image_piped_in_is_named_as_one(cli, monkeypatch, image, head):
    """`latentgraph validate - < x.png` said "<stdin>:1:1: the file is not UTF-8 text (byte
    0x89 at offset 0)": a pipe is read as text; an image's workflow is read from its file,
    which the message now says, before the size limit (an image is often larger)."""
    for data in (head, head + bytes(5 * 1024 * 1024)):
        stdin_of(monkeypatch, data)
        code, _, err = cli("validate", "-")
        said = (f"error: <stdin>: is a {image} image: stdin or a pipe is read as a workflow's "
                "text; give the image's path to read the workflow in it\n")  # fmt: skip
        assert code == 2 and said in err, err


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes")
def test_validate_and_run_read_a_pipe_named_by_its_path(cli, tmp_path):
    """`cat wf.yaml | latentgraph run /dev/stdin` and `validate <(cat wf.yaml)` name a pipe:
    it was "no such file"; it is read as its text, its places named by its path."""
    import threading

    pipe = tmp_path / "fd63"
    os.mkfifo(pipe)

    def feed(text: str) -> threading.Thread:
        def write_it() -> None:
            with open(pipe, "w") as stream:
                stream.write(text)

        thread = threading.Thread(target=write_it, daemon=True)
        thread.start()
        return thread

    def done(feeding: threading.Thread) -> None:
        """The writer let go, whether the command read the pipe or not (it waits for a
        reader to open it)."""
        reader = os.open(pipe, os.O_RDONLY | os.O_NONBLOCK)
        feeding.join()
        os.close(reader)

    feeding = feed(GOOD)
    code, out, err = cli("validate", str(pipe))
    done(feeding)
    assert code == 0 and "ok (4 nodes)" in out, err
    feeding = feed(GOOD.replace("value: 3", "value: 5000"))
    code, _, err = cli("run", str(pipe), "-q")
    done(feeding)
    assert code == 2 and f"error: {pipe}:10:" in err and "no such file" not in err, err


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes")
def test_convert_and_submit_say_a_pipe_is_no_file_not_that_it_is_missing(cli, tmp_path):
    pipe = tmp_path / "fd63"
    os.mkfifo(pipe)
    code, _, err = cli("convert", str(pipe), "out.json")
    assert code == 2 and f"error: {pipe}: is a pipe or device, not a file" in err, err
    code, _, err = cli("convert", "-", "out.json")
    assert code == 2 and "error: -: stands for stdin, which only `run` and `validate`" in err
    code, _, err = cli("submit", str(pipe), "--server", "http://127.0.0.1:9")
    assert code == 2 and f"error: {pipe}: is a pipe or device, not a file" in err, err


def test_run_json_says_which_sweep_value_each_run_is_for(cli, tmp_path):
    """`run --sweep seed=201,202 --json` never said which run was which value: text mode's
    "sweep 1/2: seed=201" line is for people, on stderr. A `sweep` event line now comes
    before each run's events; the value as typed."""
    path = write(tmp_path, "named.yaml", NAMED)
    code, out, err = cli("run", str(path), "--json", "--sweep", 'x=10,"11"')
    assert code == 0, err
    lines = [(e["event"], e.get("value"), e.get("index"), e.get("of")) for e in events(out)
             if e["event"] in ("sweep", "run_started", "run_finished")]  # fmt: skip
    assert lines == [("sweep", "10", 1, 2), ("run_started", None, None, None),
                     ("run_finished", None, None, None), ("sweep", "11", 2, 2),
                     ("run_started", None, None, None), ("run_finished", None, None, None)]  # fmt: skip
    assert {e["name"] for e in events(out) if e["event"] == "sweep"} == {"x"}
    code, out, _ = cli("run", str(path), "--json", "--set", "x=3")
    assert code == 0 and "sweep" not in {e["event"] for e in events(out)}  # a single run


def test_names_the_user_gave_are_printed_with_control_characters_escaped(cli, tmp_path,
                                                                        monkeypatch):  # fmt: skip
    """A workflow file, a model or an image named with ESC (or U+202E) went to the terminal
    raw in the parts of a message that were not quoted: the file before `: ok`, `: no such
    file` and `: N error(s)`, a model's "looked at" list, LoadImage's hint. An escape
    sequence could drive the terminal."""
    from latentgraph.graph import Settings
    from latentgraph.nodes.input_files import refusal_hint
    from latentgraph.nodes.loaders import find_source

    path = write(tmp_path, "wf\x1bx.yaml", GOOD)
    code, out, err = cli("validate", str(path))
    assert code == 0 and out.endswith("wf\\u001bx.yaml: ok (4 nodes)\n"), out + err
    code, _, err = cli("validate", str(tmp_path / "nope\u202e.yaml"))
    assert code == 2 and "nope\\u202e.yaml: no such file" in err
    assert "\x1b" not in out + err and "\u202e" not in err
    stdin_of(monkeypatch, b'{"version": 1, "nodes": {"a": {"type": "Nope"}}}')
    code, _, err = cli("validate", "-")  # one name for stdin, in the count line too
    assert code == 2 and err.endswith("<stdin>: 1 error(s)\n"), err
    with pytest.raises(ValueError) as caught:
        find_source("a\x1bb.safetensors", [])
    assert "\x1b" not in str(caught.value) and "(looked at: a\\u001bb.safetensors" in str(
        caught.value)  # fmt: skip
    hint = refusal_hint("in\x1bx.png", Settings(output_dir=str(tmp_path / "out")))
    assert "\x1b" not in hint and hint.endswith("in\\u001bx.png")


def test_a_file_name_that_is_not_utf8_is_printed_as_the_shell_shows_it(cli, tmp_path):
    r"""A workflow file from a Latin-1 zip (`caf\xe9.yaml` on disk) was printed with Python's
    surrogate escape, `caf\udce9.yaml: ok`: its bytes are shown as the shell shows them, in
    the `ok` line and in a problem's place alike (`graph.problems.printable`)."""
    path = write(tmp_path, os.fsdecode(b"caf\xe9 latin1.yaml"), GOOD)
    shown = str(tmp_path / "caf\\xe9 latin1.yaml")
    code, out, err = cli("validate", str(path))
    assert code == 0 and out == f"{shown}: ok (4 nodes)\n", out + err
    code, _, err = cli("validate", str(path), "--set", "x=abc")
    assert code == 2 and f"($x at {shown}:7:12)" in err and "udce9" not in err, err
