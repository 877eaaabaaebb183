"""`latentgraph run --ray`: a sweep spread over two actors gives the in-process sweep's images;
`--ray` without Ray installed is a usage error naming the extra."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from latentgraph.cli import main

ROOT = Path(__file__).resolve().parents[2]
TXT2IMG = str(ROOT / "workflows" / "txt2img.yaml")

# Runs the CLI in a process where `import ray` fails, as in an install without the extra.
WITHOUT_RAY = """
import sys

class NoRay:
    def find_spec(self, name, path=None, target=None):
        if name == "ray" or name.startswith("ray."):
            raise ImportError(f"No module named {name!r}")
        return None

sys.meta_path.insert(0, NoRay())
from latentgraph.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.parametrize("command", [
    ["serve", "--ray", "local", "--port", "0"],
    ["run", TXT2IMG, "--ray", "local", "--ray-workers", "2", "--sweep", "seed=1,2"],
])  # fmt: skip
def test_ray_without_the_extra_is_a_usage_error_naming_it(command, tmp_path):
    out = subprocess.run([sys.executable, "-c", WITHOUT_RAY, *command, "--output-dir",
                          str(tmp_path / "out")], capture_output=True, text=True, timeout=120,
                         cwd=tmp_path)  # fmt: skip
    assert out.returncode == 2, out.stderr
    assert "pip install 'latentgraph[ray]'" in out.stderr
    assert "Traceback" not in out.stderr
    assert not (tmp_path / "out").exists()  # nothing ran


def test_ray_with_local_worker_options_is_a_usage_error(capsys):
    assert main(["serve", "--ray", "local", "--workers", "2"]) == 2
    assert "--ray-workers N" in capsys.readouterr().err


def _images(folder: Path) -> dict[str, str]:
    """sha256 of each PNG, by its seed (the files' order of finishing may differ)."""
    from PIL import Image

    found = {}
    for path in sorted(folder.glob("*.png")):
        with Image.open(path) as image:
            prompt = json.loads(image.text["prompt"])
        found[str(_seed_of(prompt))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


def _seed_of(prompt: dict) -> int:
    seeds = {spec["inputs"]["seed"] for spec in prompt.values() if "seed" in spec["inputs"]}
    [seed] = seeds
    return seed


def test_a_sweep_spread_over_two_actors_makes_the_in_process_sweeps_images(
    ray_runtime, tiny_folder, tmp_path, capsys
):
    common = [TXT2IMG, "--sweep", "seed=1,2,3", "--set", "steps=2", "--set", "width=64",
              "--set", "height=64"]  # fmt: skip
    assert main(["run", *common, "-q", "--output-dir", str(tmp_path / "local")]) == 0
    capsys.readouterr()
    assert main(["run", *common, "--output-dir", str(tmp_path / "ray"), "--ray", "local",
                 "--ray-workers", "2"]) == 0  # fmt: skip
    lines = [line for line in capsys.readouterr().err.splitlines() if " on latentgraph-" in line]
    assert len(lines) == 3 and all(": success" in line for line in lines), lines
    workers = {line.split(" on ")[1].split(":")[0] for line in lines}
    assert len(workers) == 2, lines  # both actors took runs
    local, on_ray = _images(tmp_path / "local"), _images(tmp_path / "ray")
    assert sorted(local) == ["1", "2", "3"]
    assert on_ray == local  # the same bytes: pixels and the embedded workflow
    assert len(set(local.values())) == 3


def test_an_actor_names_the_shared_folders_it_cannot_see(tmp_path):
    """The start-up check behind "every node sees the server's folders" (run inside each
    actor; here called directly): a marker missing, or not as the server wrote it."""
    from latentgraph.server.ray_workers import unseen_folders

    seen, unseen, other = tmp_path / "out", tmp_path / "cache", tmp_path / "in"
    for folder in (seen, unseen, other):
        folder.mkdir()
    (seen / ".m").write_text("token")
    (other / ".m").write_text("another server's token")
    markers = {str(seen / ".m"): "token", str(unseen / ".m"): "token", str(other / ".m"): "token"}
    assert unseen_folders(markers) == [str(unseen), str(other)]


def test_a_cpu_only_cluster_needs_the_actor_count(ray_runtime):
    """Without --ray-workers the actors follow the cluster's GPUs; this one has none."""
    from latentgraph.server.config import ServerConfig
    from latentgraph.server.ray_connect import RayUnavailable
    from latentgraph.server.ray_workers import actor_shape

    with pytest.raises(RayUnavailable, match="--ray-workers N"):
        actor_shape(ServerConfig(ray="local"))
    shape = actor_shape(ServerConfig(ray="local", ray_workers=3, ray_cpus_per_actor=2))
    assert (shape.count, shape.num_cpus, shape.num_gpus) == (3, 2, 0)


def test_the_run_line_names_every_file_saved_not_only_images(ray_runtime, tiny_folder, tmp_path,
                                                             capsys):  # fmt: skip
    """merge.yaml saves a PNG and a checkpoint: the line a run ends with names both."""
    merge = str(ROOT / "workflows" / "merge.yaml")
    assert main(["run", merge, "--set", "steps=2", "--output-dir", str(tmp_path), "--ray",
                 "local", "--ray-workers", "1"]) == 0  # fmt: skip
    err = capsys.readouterr().err
    [line] = [line for line in err.splitlines() if " on latentgraph-" in line]
    assert ": success" in line and "merged_00001_.safetensors" in line and ".png" in line, line
    # said while the actors start (seconds without a word before the run's line)
    assert err.startswith("latentgraph: starting 1 Ray worker(s) (1 CPU and 0 GPU each)...\n"), err
    assert (tmp_path / "checkpoints" / "merged_00001_.safetensors").is_file()


def test_a_ray_run_keeps_its_disk_cache_where_a_local_run_does(ray_runtime, tiny_folder,
                                                                tmp_path):  # fmt: skip
    """`run --cache-dir DIR` keeps the entries directly in DIR, on Ray actors as in this
    process (`graph.cache.disk_store_dir`, handed to each actor in its spec): the actors used
    to be told LATENTGRAPH_CACHE_DIR=DIR, through this process's environment, and put them in
    DIR/outputs."""
    common = [TXT2IMG, "-q", "--set", "steps=2", "--set", "width=64", "--set", "height=64",
              "--output-dir", str(tmp_path / "out")]  # fmt: skip
    local, on_ray = tmp_path / "local", tmp_path / "ray"
    before = os.environ.get("LATENTGRAPH_CACHE_DIR")
    assert main(["run", *common, "--cache-dir", str(local)]) == 0
    assert main(["run", *common, "--cache-dir", str(on_ray), "--ray", "local",
                 "--ray-workers", "1"]) == 0  # fmt: skip
    assert os.environ.get("LATENTGRAPH_CACHE_DIR") == before

    def entries(folder: Path) -> list[Path]:
        return [p for p in folder.glob("??/*") if p.is_file()]

    assert entries(local) and not (local / "outputs").exists()
    assert entries(on_ray), sorted(str(p.relative_to(on_ray)) for p in on_ray.rglob("*"))
    assert not (on_ray / "outputs").exists()


def test_a_node_refusing_its_input_exits_and_reads_as_in_process(ray_runtime, tiny_folder,
                                                                 tmp_path, capsys):  # fmt: skip
    """steps=1000 is more than the scheduler makes: a user error, exit code 2 and the same
    error and summary lines in this process and on an actor (rc was 1, no summary, on Ray),
    the error placed at the --set that gave the value (on Ray it named the node's line)."""
    common = [TXT2IMG, "--set", "steps=1000", "--set", "width=64", "--set", "height=64",
              "--output-dir", str(tmp_path)]  # fmt: skip
    assert main(["run", *common]) == 2
    local = capsys.readouterr().err.splitlines()
    assert main(["run", *common, "--ray", "local", "--ray-workers", "1"]) == 2
    on_ray = capsys.readouterr().err.splitlines()
    for lines in (local, on_ray):
        [error] = [line for line in lines if line.startswith("error: ")]
        assert "node 'denoise' (UNetDenoise) input 'steps'" in error and "got 1000" in error, lines
        assert error.startswith("error: --set steps=1000 ($steps at "), lines
        [summary] = [line for line in lines if line.startswith("failed: ")]
        assert re.fullmatch(r"failed: \d ran, \d cached, 1 failed, 2 skipped in [\d.]+s",
                            summary), lines  # fmt: skip


def test_ctrl_c_says_which_sweep_runs_finished_and_which_were_interrupted(
    ray_runtime, tiny_folder, tmp_path, capsys, monkeypatch
):
    """One actor, three runs: the first (1 step) finishes, Ctrl-C comes when the second
    reports its first denoising step, the third never starts. Each says so (the finished one
    with its file), and the exit code is 130 (it used to print only "latentgraph:
    interrupted")."""
    from latentgraph.server import pool_batch
    from latentgraph.server.workers import RunMessages

    on = pool_batch.Batches._on

    def ctrl_c_at_the_second_runs_first_step(self, worker, message):
        on(self, worker, message)
        if (
            isinstance(message, RunMessages)
            and message.prompt_id == "run-1"
            and any(kind == "progress" for kind, _ in message.messages)
        ):
            raise KeyboardInterrupt  # as Python raises it for SIGINT, in this loop

    monkeypatch.setattr(pool_batch.Batches, "_on", ctrl_c_at_the_second_runs_first_step)
    out = tmp_path / "out"
    code = main(["run", TXT2IMG, "--sweep", "steps=1,200,2", "--set", "width=64", "--set",
                 "height=64", "--output-dir", str(out), "--ray", "local", "--ray-workers", "1"])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 130, err
    [png] = [p.name for p in out.glob("*.png")]
    assert "sweep 1/3: steps=1 on latentgraph-" in err and f": success ({png})" in err, err
    assert "sweep 2/3: steps=200 on latentgraph-" in err and ": interrupted" in err, err
    assert "1 interrupted (node 'denoise' (UNetDenoise))" in err, err
    assert "sweep 3/3: steps=2: not started (Ctrl-C)" in err, err
    assert "latentgraph: interrupted (Ctrl-C): 1 of 3 run(s) had finished" in err, err


def test_a_ray_run_gives_its_actors_the_cache_bounds(ray_runtime, tiny_folder, tmp_path):
    """`run --ray --cache-disk-mb N --cache-memory-mb M`: each actor's cache keeps to them (in
    its WorkerSpec), as an in-process run's does: the store records the bound it was written
    with, and `cache` reports it."""
    from latentgraph.graph.cache import DiskCache

    store = tmp_path / "store"
    assert main(["run", TXT2IMG, "-q", "--set", "steps=2", "--set", "width=64", "--set",
                 "height=64", "--output-dir", str(tmp_path / "out"), "--cache-dir", str(store),
                 "--cache-disk-mb", "300", "--cache-memory-mb", "64", "--ray", "local",
                 "--ray-workers", "1"]) == 0  # fmt: skip
    assert DiskCache(store).recorded_limit() == (True, 300 << 20)


def test_each_sweep_run_is_shown_as_it_ends_not_once_the_sweep_has(ray_runtime, tiny_folder,
                                                                   tmp_path, capsys,
                                                                   monkeypatch):  # fmt: skip
    """One actor, two runs: the first run's line is printed before the second run ends (every
    line used to come once the whole sweep had finished). What was printed is looked at as the
    last run's end reaches the batch, before it is handled."""
    from latentgraph.server import pool_batch
    from latentgraph.server.workers import Done

    on, printed = pool_batch.Batches._on, []

    def look_at_the_last_runs_end(self, worker, message):
        if isinstance(message, Done) and message.prompt_id == "run-1":
            printed.append(capsys.readouterr().err)
        on(self, worker, message)

    monkeypatch.setattr(pool_batch.Batches, "_on", look_at_the_last_runs_end)
    assert main(["run", TXT2IMG, "--sweep", "seed=41,42", "--set", "steps=1", "--set",
                 "width=64", "--set", "height=64", "--output-dir", str(tmp_path), "--ray",
                 "local", "--ray-workers", "1"]) == 0  # fmt: skip
    [before_the_last] = printed
    assert "sweep 1/2: seed=41 on latentgraph-" in before_the_last, before_the_last
    assert "sweep 2/2" not in before_the_last, before_the_last
    assert "sweep 2/2: seed=42 on latentgraph-" in capsys.readouterr().err


def test_a_json_sweep_names_each_value_with_the_prompt_id_its_messages_carry(ray_runtime,
                                                                            tiny_folder, tmp_path,
                                                                            capsys):  # fmt: skip
    """`run --ray --json --sweep` printed the runs' messages, interleaved, with nothing saying
    which value a prompt id was for: the images could be matched to values only by order."""
    assert main(["run", TXT2IMG, "--sweep", "seed=41,42", "--set", "steps=1", "--set",
                 "width=64", "--set", "height=64", "--output-dir", str(tmp_path), "--json",
                 "--ray", "local", "--ray-workers", "1"]) == 0  # fmt: skip
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    sweeps = [line for line in lines if line.get("event") == "sweep"]
    assert sweeps == [
        {"event": "sweep", "name": "seed", "value": "41", "index": 1, "of": 2, "prompt_id": "run-0"},
        {"event": "sweep", "name": "seed", "value": "42", "index": 2, "of": 2, "prompt_id": "run-1"},
    ]  # fmt: skip
    saved = {line["data"]["prompt_id"]: line["data"]["output"]["images"][0]["filename"]
             for line in lines if line.get("type") == "executed"}  # fmt: skip
    assert sorted(saved) == ["run-0", "run-1"]  # every run's messages carry an id named above


@pytest.mark.parametrize("value", ["", " "])
def test_an_empty_ray_value_is_a_usage_error(value, tmp_path, capsys):
    """`--ray ""` ran in this process, no Ray and no word of it."""
    out = tmp_path / "out"
    assert main(["run", TXT2IMG, "--ray", value, "--output-dir", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"--ray {value!r}: expected local" in err and "ADDRESS" in err, err
    assert not out.exists()


TICKER = """
import itertools
import time
from pathlib import Path

from latentgraph.graph import Int, Output, Socket, node


@node("RayTicker", inputs=[Int("n", 0)], outputs=[Output("value", "INT")])
def ticker(ctx, n):
    (Path(ctx.settings.output_dir) / f"ticking-{n}").touch()  # for a test to wait on
    for step in itertools.count():  # reports progress until its actor is killed
        ctx.progress(step % 100, 100)
        time.sleep(0.05)


@node("RayAfter", inputs=[Socket("value", "INT")], outputs=[], output_node=True)
def after(ctx, value):
    (Path(ctx.settings.output_dir) / "after.txt").write_text(str(value))
"""


def test_a_ray_run_whose_json_reader_goes_away_stops_as_a_local_run_does(ray_runtime, tmp_path):
    """`run --ray --json | head -1` said only "the run stopped before finishing" (a broken pipe
    `cli.main` took for any command's): it now stops as `run --json | head -1` does, through
    the same rule, naming the node the run was at (from the run's events), exit 1, one line;
    the actor is stopped, so nothing after that node is saved. The CLI joins this session's
    Ray runtime (no second runtime to start)."""
    plugin = tmp_path / "plugin"
    plugin.mkdir()
    (plugin / "ticker.py").write_text(TICKER)
    (tmp_path / "tick.yaml").write_text("version: 1\nnodes:\n  tick: {type: RayTicker}\n"
                                        "  after: {type: RayAfter, value: tick}\n")  # fmt: skip
    proc = subprocess.Popen(
        [sys.executable, "-m", "latentgraph.cli", "run", "tick.yaml", "--json", "--nodes-dir",
         str(plugin), "--cache-dir", str(tmp_path / "cache"), "--ray",
         ray_runtime.get_runtime_context().gcs_address, "--ray-workers", "1"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        for line in proc.stdout:  # until the ticking node has started
            if json.loads(line) == {"type": "executing", "data": {
                    "node": "tick", "display_node": "tick", "prompt_id": "run-0"}}:  # fmt: skip
                break
        proc.stdout.close()  # as `head -1` exits
        code = proc.wait(timeout=120)
    finally:
        proc.kill()
    err = proc.stderr.read()
    assert code == 1, err
    assert err.rstrip().splitlines()[-1] == (
        "latentgraph: error: stdout was closed (its reader went away) before run finished: "
        "the run stopped at node 'tick' (RayTicker) before finishing; what had finished is "
        "cached")  # fmt: skip
    assert "Exception ignored" not in err and "Traceback" not in err
    assert not (tmp_path / "output" / "after.txt").exists()


def test_sigterm_stops_a_ray_sweep_as_ctrl_c_does_and_ends_by_it(tmp_path):
    """README: SIGTERM makes `run` stop as after Ctrl-C, say `latentgraph: interrupted by
    SIGTERM` and end by the signal. On Ray it was taken by Ray's C++ failure-signal handler
    (installed by `ray.init`): a "*** SIGTERM received" dump, exit status 15, no run's line.
    Its own runtime (`--ray local`), as a user runs it: `ray.init` happens in that process."""
    plugin = tmp_path / "plugin"
    plugin.mkdir()
    (plugin / "ticker.py").write_text(TICKER)
    (tmp_path / "tick.yaml").write_text("version: 1\nparams: {n: 0}\nnodes:\n"
                                        "  tick: {type: RayTicker, n: $n}\n"
                                        "  after: {type: RayAfter, value: tick}\n")  # fmt: skip
    out = tmp_path / "out"
    ray_tmp = Path(tempfile.mkdtemp(prefix="lgray", dir="/tmp"))  # short: Ray's socket paths
    env = {**os.environ, "RAY_TMPDIR": str(ray_tmp)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "latentgraph.cli", "run", "tick.yaml", "--sweep", "n=1,2",
         "--nodes-dir", str(plugin), "--output-dir", str(out), "--cache-dir",
         str(tmp_path / "cache"), "--ray", "local", "--ray-workers", "1"],
        cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env,
        # a terminal's defaults: a suite started with & hands its children SIGINT ignored
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 240
        while not (out / "ticking-1").exists():  # the first run's node is running
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()
            time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
        shutil.rmtree(ray_tmp, ignore_errors=True)
    assert proc.returncode == -signal.SIGTERM, err
    assert "SIGTERM received" not in err, err
    assert re.search(r"^sweep 1/2: n=1 on latentgraph-\S+: interrupted by SIGTERM$", err,
                     re.MULTILINE), err  # fmt: skip
    assert "sweep 2/2: n=2: not started (SIGTERM)" in err, err
    assert err.rstrip().splitlines()[-1] == (
        "latentgraph: interrupted by SIGTERM: 0 of 2 run(s) had finished"), err  # fmt: skip


# Runs the CLI with the actors' start bounded at 6 s (300 s in ray_workers), saying what it
# waits for after 1 s (10 s).
SHORT_PLACEMENT = """
import sys

from latentgraph.server import ray_workers

ray_workers.PLACEMENT_SECONDS, ray_workers.PLACEMENT_NOTICE_SECONDS = 6.0, 1.0
from latentgraph.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_a_cluster_that_cannot_place_the_actors_says_so_while_waiting_and_then(ray_runtime,
                                                                               tmp_path):  # fmt: skip
    """Three 1-CPU actors on this package's 2-CPU runtime, joined by its address (as `ray
    start`'s cluster is): the start says which cluster it joined, what it waits for, then the
    error naming what is free. It waited 300 s without a word, then failed with "internal
    error: RaySystemError ... before ray.init()" (exit 70): the cluster's free resources were
    asked for after Ray was shut down."""
    address = ray_runtime.get_runtime_context().gcs_address
    out = subprocess.run(
        [sys.executable, "-c", SHORT_PLACEMENT, "run", TXT2IMG, "--output-dir",
         str(tmp_path / "out"), "--cache-dir", str(tmp_path / "cache"), "--ray", address,
         "--ray-workers", "3"],
        capture_output=True, text=True, timeout=180, cwd=tmp_path,
    )  # fmt: skip
    lines = out.stderr.rstrip().splitlines()
    assert out.returncode == 2, out.stderr
    assert f"latentgraph: joined the Ray cluster at {address} (1 node(s), 2 CPU and 0 GPU)" in lines
    assert any(re.fullmatch(
        r"latentgraph: waiting for the Ray cluster to place and start \d of 3 actor\(s\) \(each "
        r"needs 1 CPU and 0 GPU; it has [\d.]+ CPU and 0 GPU free\), up to 6 s", line)
        for line in lines), lines  # fmt: skip
    assert re.fullmatch(
        r"latentgraph: error: the Ray cluster did not start 3 actor\(s\) of 1 CPU and 0 GPU "
        r"within 6 s \(it has [\d.]+ CPU and 0 GPU free\): give fewer --ray-workers or add "
        r"nodes", lines[-1]), lines  # fmt: skip
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())
