"""The terminal renderers of a run's events: JSON lines for scripts, rich progress for people."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from rich.console import Console

from latentgraph.graph.console import JsonLines, RichProgress
from latentgraph.graph.events import (
    NodeFailed,
    NodeFinished,
    NodeProgress,
    NodesCached,
    NodeStarted,
    NodeWarning,
    RunFinished,
    RunStarted,
)


def test_json_lines_writes_one_object_a_line_and_flushes():
    class Stream(io.StringIO):
        flushed = 0

        def flush(self) -> None:
            self.flushed += 1
            super().flush()

    stream = Stream()
    out = JsonLines(stream)
    out(NodeStarted("r", node_id="1", node_type="T", timestamp=5))
    assert stream.flushed == 1
    out(NodeFinished("r", node_id="1", node_type="T", seconds=0.5, ui={"path": Path("/x")},
                     timestamp=6))  # fmt: skip
    out.close()
    lines = stream.getvalue().split("\n")
    assert lines[-1] == "" and len(lines) == 3
    assert json.loads(lines[0]) == {"event": "node_started", "run_id": "r", "timestamp": 5,
                                    "node_id": "1", "node_type": "T"}  # fmt: skip
    second = json.loads(lines[1])
    assert second["event"] == "node_finished" and second["ui"] == {"path": "/x"}  # default=str


def test_json_lines_defaults_to_stdout(capsys):
    JsonLines()(RunStarted("r", nodes=["a"], timestamp=1))
    assert json.loads(capsys.readouterr().out) == {"event": "run_started", "run_id": "r",
                                                   "timestamp": 1, "nodes": ["a"]}  # fmt: skip


def _progress(quiet: bool = False, dirs=None) -> tuple[RichProgress, io.StringIO]:
    progress = RichProgress(quiet=quiet, dirs=dirs)
    out = io.StringIO()
    progress.console = Console(file=out, width=300, color_system=None)
    return progress, out


def _tasks(progress: RichProgress) -> dict[str, tuple]:
    return {t.description: (t.completed, t.total) for t in progress.progress.tasks}


def test_progress_bars_follow_the_run():
    progress, out = _progress()
    assert progress.console.file is out and progress.progress.console.stderr
    assert not progress.progress.disable
    progress(RunStarted("r", nodes=["a", "x", "y", "b", "c", "d"]))
    assert progress.progress.live.is_started
    assert _tasks(progress) == {"run": (0, 6)}
    progress(NodesCached("r", nodes=["a"]))
    assert _tasks(progress) == {"run": (1, 6)}
    progress(NodesCached("r", nodes=["x", "y"]))
    assert _tasks(progress) == {"run": (3, 6)}
    progress(NodeStarted("r", node_id="b", node_type="Denoise"))
    assert _tasks(progress) == {"b (Denoise)": (3, 6)}
    progress(NodeProgress("r", node_id="b", value=1, max=20))
    progress(NodeProgress("r", node_id="b", value=5, max=20))
    assert _tasks(progress) == {"b (Denoise)": (3, 6), "  b": (5, 20)}
    assert len(progress.progress.tasks) == 2  # one bar per node, not per step
    progress(NodeFinished("r", node_id="b", node_type="Denoise", seconds=1.234,
                          summary=["LATENT: 1x4x8x8", "x"]))  # fmt: skip
    assert _tasks(progress) == {"b (Denoise)": (4, 6)}
    progress(NodeFinished("r", node_id="c", node_type="T", cached=True))
    assert _tasks(progress) == {"b (Denoise)": (4, 6)}  # counted by NodesCached already
    progress(NodeFinished("r", node_id="d", node_type="T"))
    assert _tasks(progress) == {"b (Denoise)": (5, 6)}
    progress(RunFinished("r", status="success", executed=["b", "d"], cached=["a", "x", "y", "c"],
                         seconds=2.5))  # fmt: skip
    assert not progress.progress.live.is_started
    assert out.getvalue().splitlines() == [
        "cached: a",
        "cached: x, y",
        "done b (Denoise) 1.23s LATENT: 1x4x8x8; x",
        "done d (T) 0.00s",
        "success: 2 ran, 4 cached, 0 failed, 0 skipped in 2.50s",
    ]


def test_the_summary_counts_the_nodes_a_cached_output_did_not_need():
    """A second run served its save from the cache and never looked up the save's inputs: the
    summary counted 1 of the run's 3 nodes (`0 ran, 1 cached, 0 failed, 0 skipped`)."""
    progress, out = _progress()
    progress(RunStarted("r", nodes=["model", "decode", "save"]))
    progress(NodesCached("r", nodes=["save"]))
    progress(NodeFinished("r", node_id="save", node_type="SaveImage", cached=True))
    progress(RunFinished("r", status="success", cached=["save"], seconds=0.01))
    assert out.getvalue().splitlines()[-1] == (
        "success: 0 ran, 1 cached, 2 not needed, 0 failed, 0 skipped in 0.01s")  # fmt: skip


def test_nothing_cached_prints_nothing():
    progress, out = _progress()
    progress(RunStarted("r", nodes=["a"]))
    progress(NodesCached("r", nodes=[]))
    progress.close()
    assert out.getvalue() == "" and _tasks(progress) == {"run": (0, 1)}


@pytest.mark.parametrize("status, colour", [("success", "green"), ("failed", "red"),
                                            ("interrupted", "yellow")])  # fmt: skip
def test_run_summary_colour(status, colour):
    progress = RichProgress()
    out = io.StringIO()
    progress.console = Console(file=out, width=300, color_system="standard", force_terminal=True)
    progress(RunStarted("r", nodes=[]))
    progress(RunFinished("r", status=status, executed=["a"], cached=[], failed=["f", "g"],
                         skipped=["s"], seconds=0.125))  # fmt: skip
    expected = Console(file=io.StringIO(), color_system="standard", force_terminal=True)
    with expected.capture() as capture:
        expected.print(f"[{colour}]{status}[/{colour}]", end="")
    assert out.getvalue().startswith(capture.get())
    assert f"{status}" in out.getvalue()
    assert ": 1 ran, 0 cached, 2 failed, 1 skipped in 0.12s" in out.getvalue()


def test_warnings_failures_and_ui_lines(tmp_path):
    progress, out = _progress(dirs={"output": tmp_path / "out", "temp": tmp_path / "tmp"})
    progress(RunStarted("r", nodes=["s"]))
    progress(NodeWarning("r", node_id="w", message="clipped"))
    ui = {"images": [{"filename": "a.png", "subfolder": "sub", "type": "output"},
                     {"filename": "b.png", "type": "temp"},
                     {"filename": "c.png", "subfolder": "", "type": "input"},
                     {"filename": "d.png"}],
          "text": ["hello", 42]}  # fmt: skip
    progress(NodeFinished("r", node_id="s", node_type="Save", ui=ui))
    progress(NodeFinished("r", node_id="t", node_type="Save", cached=True,
                          ui={"images": [{"filename": "e.png", "type": "output"}]}))  # fmt: skip
    progress(NodeFailed("r", node_id="x", node_type="Load", exception_type="FileNotFoundError",
                        message="no such file " + "/very/long/path/" * 30))  # fmt: skip
    progress.close()
    assert not progress.progress.live.is_started
    lines = out.getvalue().splitlines()
    assert lines == [
        "warning: node 'w': clipped",
        "done s (Save) 0.00s",
        f"saved {tmp_path / 'out' / 'sub' / 'a.png'}",
        f"preview {tmp_path / 'tmp' / 'b.png'}",
        f"saved {Path('input') / 'c.png'}",
        f"saved {tmp_path / 'out' / 'd.png'}",
        "s: hello",
        "s: 42",
        f"kept {tmp_path / 'out' / 'e.png'}",  # a cached node's files: an earlier run's
        "error: node 'x' (Load): FileNotFoundError: no such file " + "/very/long/path/" * 30,
    ]


def test_every_file_a_node_saved_is_named_whatever_its_ui_kind():
    """A saved checkpoint showed only 'done checkpoint (SaveCheckpoint) 0.03s', its name only
    in --json's ui.checkpoints; every ui list of file records is shown like images."""
    progress, out = _progress(dirs={"output": Path("o1")})
    progress(RunStarted("r", nodes=["checkpoint", "c2", "w"]))
    record = {"filename": "merged_00001_.safetensors", "subfolder": "checkpoints",
              "type": "output", "size": 5, "sha256": "ab"}  # fmt: skip
    progress(NodeFinished("r", node_id="checkpoint", node_type="SaveCheckpoint", seconds=0.03,
                          ui={"checkpoints": [record]}))  # fmt: skip
    progress(NodeFinished("r", node_id="c2", node_type="CheckpointSave", cached=True,
                          ui={"checkpoints": [record]}))  # fmt: skip
    webp = {"images": [{"filename": "a.webp", "subfolder": "", "type": "output"}],
            "animated": [True], "gifs": [{"filename": "g.gif", "type": "temp"}]}  # fmt: skip
    progress(NodeFinished("r", node_id="w", node_type="SaveAnimatedWEBP", ui=webp))
    path = Path("o1") / "checkpoints" / "merged_00001_.safetensors"
    assert out.getvalue().splitlines() == [
        "done checkpoint (SaveCheckpoint) 0.03s",
        f"saved {path}",
        f"kept {path}",  # cached: its file is there (nothing written), named too
        "done w (SaveAnimatedWEBP) 0.00s",
        f"saved {Path('o1') / 'a.webp'}",
        f"preview {Path('temp') / 'g.gif'}",
    ]


def test_a_servers_run_names_its_files_where_the_server_saved_them():
    """`submit`'s renderer: the files are on the server, in its folders (output/, temp/), not
    yet in the local --output-dir it printed as 'saved sub3/a.png' before downloading."""
    progress = RichProgress(on_server=True)
    out = io.StringIO()
    progress.console = Console(file=out, width=300, color_system=None)
    files = {"images": [{"filename": "a.png", "subfolder": "", "type": "output"},
                        {"filename": "p.png", "subfolder": "", "type": "temp"}]}  # fmt: skip
    progress(RunStarted("r", nodes=["s", "k"]))
    progress(NodeFinished("r", node_id="s", node_type="SaveImage", ui=files))
    progress(NodeFinished("r", node_id="k", node_type="SaveImage", cached=True,
                          ui={"images": files["images"][:1]}))  # fmt: skip
    assert out.getvalue().splitlines()[1:] == [
        f"saved on the server: {Path('output') / 'a.png'}",
        f"preview on the server: {Path('temp') / 'p.png'}",
        f"kept on the server: {Path('output') / 'a.png'}",
    ]


def test_an_image_without_a_filename_names_its_folder():
    progress, out = _progress()
    progress(NodeFinished("r", node_id="s", node_type="Save", cached=True,
                          ui={"images": [{"type": "temp", "subfolder": None}]}))  # fmt: skip
    assert out.getvalue() == f"preview {Path('temp')}\n"


def test_quiet_prints_only_failures():
    progress, out = _progress(quiet=True)
    assert progress.progress.disable
    progress(RunStarted("r", nodes=["a"]))
    progress(NodesCached("r", nodes=["a"]))
    progress(NodeWarning("r", node_id="w", message="clipped"))
    progress(NodeFinished("r", node_id="s", node_type="Save", ui={"text": ["hi"]}))
    progress(NodeFailed("r", node_id="x", node_type="Load", exception_type="E", message="m"))
    progress(RunFinished("r", status="failed"))
    assert out.getvalue() == "error: node 'x' (Load): E: m\n"


def test_close_before_a_run_and_twice_is_harmless():
    progress, _ = _progress()
    progress.close()
    progress(RunStarted("r", nodes=[]))
    progress.close()
    progress.close()
    assert not progress.progress.live.is_started


def test_a_node_bar_follows_a_changing_step_count():
    """A node that samples twice (e.g. a second pass) restarts its bar with the new total."""
    progress, _ = _progress()
    progress(RunStarted("r", nodes=["k"]))
    progress(NodeProgress("r", node_id="k", value=20, max=20))
    progress(NodeProgress("r", node_id="k", value=3, max=30))
    assert _tasks(progress) == {"run": (0, 1), "  k": (3, 30)}
    progress.close()


def test_the_display_columns_and_that_it_clears_after_the_run():
    progress, _ = _progress()
    columns = progress.progress.columns
    assert [type(c).__name__ for c in columns] == [
        "TextColumn", "BarColumn", "MofNCompleteColumn", "TimeElapsedColumn"]  # fmt: skip
    progress(RunStarted("r", nodes=["a", "b"]))
    (task,) = progress.progress.tasks
    assert str(columns[0].render(task)) == "run"
    assert str(columns[2].render(task)) == "0/2"
    assert progress.progress.live.transient  # the bars vanish, the printed lines stay
    progress.close()


def test_the_bars_are_stopped_once(capsys):
    """Stopping rich's progress when it is not running prints a blank line on a non-terminal:
    close() before a run, or a second time, prints nothing."""
    progress = RichProgress()
    progress.close()
    assert capsys.readouterr().err == ""
    progress(RunStarted("r", nodes=[]))
    progress.close()
    capsys.readouterr()
    progress.close()
    progress(RunFinished("r"))  # closes too: nothing left to stop
    assert capsys.readouterr().err.count("\n") == 1  # the run's summary line only


def test_failures_are_printed_without_rich_highlighting():
    """Numbers, quotes and paths in an error stay plain (rich would colour them)."""
    progress = RichProgress()
    out = io.StringIO()
    progress.console = Console(file=out, width=300, color_system="standard", force_terminal=True)
    progress(NodeFailed("r", node_id="7", node_type="Load", exception_type="E",
                        message="file /a/b.png has 3 'frames'"))  # fmt: skip
    plain = Console(file=io.StringIO(), width=300, color_system="standard", force_terminal=True)
    with plain.capture() as capture:
        plain.print("[red]error[/red]: node '7' (Load): E: file /a/b.png has 3 'frames'",
                    highlight=False)  # fmt: skip
    assert out.getvalue() == capture.get()


def test_a_long_done_line_is_never_broken_at_the_console_width():
    """LoadModel's summary wrapped mid-way, its rest on an unindented line of its own."""
    progress = RichProgress()
    out = io.StringIO()
    progress.console = Console(file=out, width=40, color_system=None)
    summary = ["unet: UNetModel", "clip: ClipModel", "vae: VAEModel", "scheduler: SchedulerSpec"]
    progress(RunStarted("r", nodes=["m", "s"], timestamp=1))
    progress(NodeFinished("r", node_id="m", node_type="LoadModel", seconds=8.73, summary=summary))
    progress(NodeFinished("r", node_id="s", node_type="SaveImage", seconds=0.1,
                          ui={"images": [{"filename": "a" * 60 + ".png"}]}))  # fmt: skip
    assert out.getvalue().splitlines() == [
        "done m (LoadModel) 8.73s unet: UNetModel; clip: ClipModel; vae: VAEModel; "
        "scheduler: SchedulerSpec",
        "done s (SaveImage) 0.10s",
        f"saved output/{'a' * 60}.png",
    ]


def test_debug_prints_a_crashed_nodes_traceback_after_its_error_line():
    """`latentgraph --debug run` printed only the one line: the traceback a plugin author
    needs was in --json, the API and the server's messages, never on the terminal. A user
    error has none to print; without --debug the line stays alone."""
    crash = NodeFailed("r", node_id="n", node_type="Raiser", exception_type="RuntimeError",
                       message="boom with x=3",
                       traceback=["Traceback (most recent call last):\n",
                                  '  File "rt/raiser.py", line 9, in raiser\n    raise [x]\n',
                                  "RuntimeError: boom with x=3\n"])  # fmt: skip
    refused = NodeFailed("r", node_id="m", node_type="Load", message="no such model",
                         user_error=True)  # fmt: skip
    for debug in (True, False):
        progress = RichProgress(quiet=True, debug=debug)
        out = io.StringIO()
        progress.console = Console(file=out, width=40, color_system=None)
        progress(crash)
        progress(refused)
        expected = ["error: node 'n' (Raiser): RuntimeError: boom with x=3"]
        if debug:  # as written, markup-like text kept
            expected += ["Traceback (most recent call last):", '  File "rt/raiser.py", line 9, '
                         "in raiser", "    raise [x]", "RuntimeError: boom with x=3"]  # fmt: skip
        assert out.getvalue().splitlines() == [*expected, "error: no such model"]


def test_a_node_the_user_titled_in_an_editor_file_is_named_with_its_title():
    """A crash and an interrupt name a node as problems do: its title from the editor file
    beside its id and type (`node_name`); a node without one, as before."""
    from latentgraph.graph import Graph, Node
    from latentgraph.graph.problems import EditorLocation

    graph = Graph()
    graph.add(Node("7", "Load", location=EditorLocation("wf.json", title="My photo",
                                                         node_type="Load")))  # fmt: skip
    graph.add(Node("8", "Save", location=EditorLocation("wf.json")))
    progress = RichProgress(graph=graph)
    out = io.StringIO()
    progress.console = Console(file=out, width=300, color_system=None)
    progress(RunStarted("r", nodes=["7", "8"]))
    progress(NodeFailed("r", node_id="7", node_type="Load", exception_type="E", message="m"))
    progress(RunFinished("r", status="interrupted", executed=[], cached=[], failed=["7"],
                         skipped=[], interrupted=["7", "8"], seconds=0.5))  # fmt: skip
    text = out.getvalue()
    assert "error: wf.json: node '7' \"My photo\" (Load): E: m" in text
    assert "2 interrupted (node '7' \"My photo\" (Load), node '8' (Save))" in text


def test_a_runs_warnings_and_failures_are_lines_as_validation_prints_problems():
    """A run said `warning encode: ...` and `error in node ...`, where validation says
    `warning: PLACE: ...` and `error: PLACE: ...` (README): one format (`problem_line`), the
    place the node's (a refused input's), the node named with its type."""
    from latentgraph.graph import Graph, Node
    from latentgraph.graph.model import Location

    graph = Graph()
    node = Node("encode", "VAEEncode", location=Location("wf.yaml", 25, 3))
    node.input_locations["pixels"] = Location("wf.yaml", 27, 13)
    graph.add(node)
    progress = RichProgress(graph=graph)
    out = io.StringIO()
    progress.console = Console(file=out, width=300, color_system=None)
    progress(NodeWarning("r", node_id="encode", message="cropped to 96x96"))
    progress(NodeFailed("r", node_id="encode", node_type="VAEEncode", exception_type="E",
                        message="m"))  # fmt: skip
    progress(NodeFailed("r", node_id="encode", node_type="VAEEncode", input_name="pixels",
                        message="node 'encode' (VAEEncode) input 'pixels': too small",
                        user_error=True))  # fmt: skip
    assert out.getvalue().splitlines() == [
        "warning: wf.yaml:25:3: node 'encode' (VAEEncode): cropped to 96x96",
        "error: wf.yaml:25:3: node 'encode' (VAEEncode): E: m",
        "error: wf.yaml:27:13: node 'encode' (VAEEncode) input 'pixels': too small",
    ]


def test_a_servers_failure_at_no_node_is_named_without_a_node():
    """A server's `execution_error` outside any node (a worker died before its first node, a
    shutdown): its `node_id` is "" (null from an older server), and `submit` said
    "node '' (): ..." / "node 'None'", and counted a failed node named ''."""
    from latentgraph.server.submit import PromptEvents

    progress = RichProgress(on_server=True)
    out = io.StringIO()
    progress.console = Console(file=out, width=300, color_system=None)
    for node_id in ("", None):
        events = PromptEvents("p", {"1": {"class_type": "SaveImage"}}, progress)
        events.handle("execution_start", {"prompt_id": "p"})
        events.handle("execution_error", {"prompt_id": "p", "node_id": node_id, "node_type": "",
                                          "exception_type": "WorkerDied",
                                          "exception_message": "the worker process ended"})  # fmt: skip
        assert [f.node_id for f in events.failures] == [""]
    failures = [line for line in out.getvalue().splitlines() if line.startswith("error")]
    assert failures == ["error: WorkerDied: the worker process ended"] * 2, out.getvalue()
    assert "0 ran, 0 cached, 0 failed" in out.getvalue()


def test_submit_counts_the_node_a_stop_between_two_nodes_came_after_as_ran():
    """A server's `execution_interrupted` between two nodes names no node; its `executed`
    lists the node that ran last, which `submit` had counted as skipped."""
    from latentgraph.server.submit import PromptEvents

    progress, out = _progress()
    prompt = {"1": {"class_type": "Slow"}, "2": {"class_type": "SaveImage"}}
    events = PromptEvents("p", prompt, progress)
    events.handle("execution_start", {"prompt_id": "p"})
    events.handle("executing", {"node": "1", "prompt_id": "p"})
    events.handle("execution_interrupted", {"prompt_id": "p", "node_id": None, "node_type": None,
                                            "executed": ["1"]})  # fmt: skip
    assert events.executed == ["1"]
    assert out.getvalue().rstrip().splitlines()[-1].startswith(
        "interrupted: 1 ran, 0 cached, 0 failed, 1 skipped")  # fmt: skip


def test_a_run_stopped_between_two_nodes_says_after_which_it_stopped():
    """A run interrupted once a node that checks no step had finished, before the next one,
    named no node: its summary says where it stopped (no node was cut short), or that it
    stopped before any node ran (a sweep's next run after a Ctrl-C)."""
    progress, out = _progress()
    progress(RunStarted("r", nodes=["a", "slow", "save"]))
    progress(NodesCached("r", nodes=["a"]))
    progress(NodeStarted("r", node_id="slow", node_type="Sleeper"))
    progress(NodeFinished("r", node_id="slow", node_type="Sleeper", seconds=4.0))
    progress(RunFinished("r", status="interrupted", executed=["slow"], cached=["a"],
                         skipped=["save"], seconds=4.5))  # fmt: skip
    assert out.getvalue().rstrip().splitlines()[-1] == (
        "interrupted: 1 ran, 1 cached, 0 failed, 1 skipped in 4.50s; stopped after node "
        "'slow' (Sleeper)")  # fmt: skip
    progress, out = _progress()
    progress(RunStarted("r2", nodes=["a", "save"]))
    progress(RunFinished("r2", status="interrupted", cached=["a"], skipped=["save"]))
    assert out.getvalue().rstrip().splitlines()[-1] == (
        "interrupted: 0 ran, 1 cached, 0 failed, 1 skipped in 0.00s; stopped before any node ran"
    )
