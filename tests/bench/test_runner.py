"""Smoke tests for the benchmark runner: the cheap suites run and print one table, and the
helpers the suites rely on measure what they claim. No timing is asserted."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_quick_cheap_suites_print_one_table_and_write_json(tmp_path):
    out = tmp_path / "rows.json"
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--only", "engine", "--only", "server",
         "--json", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.splitlines()
    assert lines[0].split() == ["suite", "name", "value", "unit", "target", "met", "note"]
    assert set(lines[1]) <= {"-", " "}
    assert any(line.startswith("engine") and "chain 10000 nodes" in line for line in lines)
    assert any(line.startswith("server") and "complete message sequences" in line
               for line in lines)  # fmt: skip
    doc = json.loads(out.read_text())
    assert doc["quick"] is True
    suites = {r["suite"] for r in doc["rows"]}
    assert suites == {"engine", "server"}
    for r in doc["rows"]:
        assert r["met"] in ("yes", "no", "-")
        assert "error" not in r
    engine = [r for r in doc["rows"] if r["suite"] == "engine"]
    assert {r["nodes"] for r in engine} == {10, 100, 1000, 10_000}


def test_a_failing_suite_is_a_row_and_a_nonzero_exit(monkeypatch, capsys):
    import bench.__main__ as runner

    def broken(name):
        raise ImportError(f"no {name} today")

    monkeypatch.setattr(runner.importlib, "import_module", broken)
    assert runner.main(["--quick", "--only", "engine"]) == 1
    out = capsys.readouterr().out
    assert "error" in out.splitlines()[0] and "no bench.engine today" in out


def test_an_unknown_suite_is_refused_up_front_naming_the_known_ones(capsys):
    """`--only nonsense` put a ModuleNotFoundError traceback into the table."""
    from bench.__main__ import main

    with pytest.raises(SystemExit) as stop:
        main(["--only", "nonsense"])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert "invalid choice: 'nonsense'" in err and "'denoise'" in err and "Traceback" not in err
    assert "'paired'" not in err  # a helper, no suite: it has no run()


def test_the_help_lists_the_suites(capsys):
    from bench.__main__ import main

    with pytest.raises(SystemExit):
        main(["--help"])
    assert "cache, denoise, engine" in " ".join(capsys.readouterr().out.split())


@pytest.mark.parametrize(
    ("value", "target", "met", "text"),
    [(1.0195, "< 1.02", "yes", "1.0195"), (2.998, "<= 3", "yes", "2.998"),
     (3.0204, "<= 3", "no", "3.02"), (3.004, "<= 3", "no", "3.004"), (1.0205, "< 1.02", "no", "1.0205"),
     (0.7812, "< 2", "yes", "0.781"), (1.23456, "", "-", "1.23"), (12345.6, "< 20000", "yes", "12346")],
)  # fmt: skip
def test_a_shown_value_agrees_with_its_verdict(value, target, met, text):
    """`1.02 x < 1.02 yes` and `3 x <= 3 yes` beside `3.02 no`: 3 significant digits, more
    where fewer would read as the other verdict."""
    from bench.__main__ import markdown, table

    row = {"suite": "s", "name": "n", "value": value, "unit": "x", "target": target, "met": met,
           "note": ""}  # fmt: skip
    assert table([row]).splitlines()[2].split()[2] == text
    assert markdown([row]).splitlines()[2].split(" | ")[2] == text


def test_table_keeps_standard_columns_only():
    from bench.__main__ import table

    text = table([{"suite": "s", "name": "n", "value": 1.23456, "unit": "x", "target": "< 2",
                   "met": "yes", "note": "", "detail": 99}])  # fmt: skip
    head, rule, body = text.splitlines()
    assert head.split() == ["suite", "name", "value", "unit", "target", "met", "note"]
    assert "99" not in body and "1.23" in body


def test_row_flags_and_skips():
    from bench._common import row, skipped

    assert row("s", "n", 1, met=True)["met"] == "yes"
    assert row("s", "n", 1, met=False)["met"] == "no"
    assert row("s", "n", 1)["met"] == "-"
    skip = skipped("s", "fp16", "needs cuda")
    assert skip["value"] is None and skip["met"] == "-" and skip["note"] == "skipped: needs cuda"


def test_interleaved_rotates_the_order():
    from bench._common import interleaved

    calls: list[str] = []
    times = interleaved({"a": lambda: calls.append("a"), "b": lambda: calls.append("b"),
                         "c": lambda: calls.append("c")}, 3)  # fmt: skip
    assert calls == list("abcbcacab")
    assert {k: len(v) for k, v in times.items()} == {"a": 3, "b": 3, "c": 3}


def test_run_child_reads_that_childs_peak_rss():
    from bench._common import run_child

    small = run_child([sys.executable, "-c", "pass"])[1]
    wall, big, rc, out, _ = run_child(
        [sys.executable, "-c", "import time; b = bytearray(200 * 2**20);"
         "b[::4096] = b'x' * len(b[::4096]); time.sleep(0.1); print('done')"])  # fmt: skip
    assert rc == 0 and out.strip() == "done" and wall > 0
    assert big - small > 150  # MB: the 200 MB buffer
    assert small < 40  # a bare interpreter, not the pytest process it was forked from


def test_model_timer_counts_only_wrapped_calls_and_restores():
    import time

    from bench._common import ModelTimer

    class Model:
        def forward(self, x):
            time.sleep(0.02)
            return x + 1

    m = Model()
    timer = ModelTimer(clock=time.perf_counter)
    timer.wrap(m, "forward")
    assert m.forward(1) == 2 and timer.calls == 1 and timer.seconds >= 0.02
    timer.restore()
    assert "forward" not in vars(m)
    m.forward(1)
    assert timer.calls == 1


def test_markdown_table_escapes_pipes():
    from bench.__main__ import markdown

    text = markdown([{"suite": "s", "name": "a|b", "value": None, "unit": "", "target": "",
                      "met": "-", "note": "skipped: needs cuda"}])  # fmt: skip
    head, rule, body = text.splitlines()
    assert head == "| suite | name | value | unit | target | met | note |"
    assert body == "| s | a\\|b |  |  |  | - | skipped: needs cuda |"


def test_paired_alternates_two_servers_and_reports_cpu_per_run(tmp_path):
    """`bench.paired` against a bench server (the same one twice): the paired line and the
    per-process CPU line are printed. No timing is asserted."""
    from bench.server import _port

    port = _port()
    server = subprocess.Popen([sys.executable, "-m", "bench.server", "--serve", str(port),
                               str(tmp_path)], cwd=ROOT)  # fmt: skip
    try:
        args = [sys.executable, "-m", "bench.paired", "chain", "10", "--runs", "3"]
        deadline = time.monotonic() + 90
        while True:  # until the server (and its worker) answer
            paired = subprocess.run([*args, str(port), str(port)], cwd=ROOT,
                                    capture_output=True, text=True, timeout=120)  # fmt: skip
            if paired.returncode == 0 or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert paired.returncode == 0, paired.stderr[-2000:]
        assert f"paired ({port} - {port}): median" in paired.stdout
        cpu = subprocess.run([*args, "--cpu", str(port)], cwd=ROOT, capture_output=True,
                             text=True, timeout=120)  # fmt: skip
        assert cpu.returncode == 0, cpu.stderr[-2000:]
        [line] = cpu.stdout.splitlines()
        for part in ("wall", "client", "server", "worker", "CPU in all"):
            assert part in line
    finally:
        server.terminate()
        server.wait(15)


def test_load_rows_with_no_polls_say_they_measured_nothing():
    """`--only load --quick` printed `GET /queue p99 under load 0 ms < 100 ms yes ... 0 of 0
    polls` and `RSS max under load 0 MB`: a row with no samples says so, never "yes"."""
    from bench.load import LoadResult, rows

    load_row = LoadResult(10, 30, seconds=0.04, complete=30).row("toy")
    load_row["clients_process"] = "child"
    soak_row = {"prompts": 200, "rss_growth_mb": 0.5, "ok": True, "history": 200, "seconds": 1.0}
    by_name = {r["name"]: r for r in rows(load_row, soak_row)}
    for name in ("GET /queue p99 under load", "GET /history p99 under load",
                 "RSS max under load"):  # fmt: skip
        assert by_name[name]["met"] == "n/a" and by_name[name]["value"] is None, by_name[name]
        assert by_name[name]["note"].startswith("no samples")
    assert by_name["delivery, 10 clients x 30 prompts (toy)"]["met"] == "yes"


def test_the_load_poller_says_when_it_polls_so_the_clients_start_after(tmp_path):
    """The quick load run's clients could finish before the poller process had started: 0
    polls. The poller prints `polling` once its first poll is answered; the bench waits for it."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Answer(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's name
            self.send_response(200)
            self.send_header("content-length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Answer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        poller = subprocess.Popen([sys.executable, "-m", "bench.load", "--poll", base, str(os.getpid())],
                                  cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  text=True)  # fmt: skip
        first: list[str] = []  # read aside: the old poller printed nothing until stdin closed
        reading = threading.Thread(target=lambda: first.append(poller.stdout.readline()))
        reading.start()
        reading.join(60)  # a guard against a hang, not a measurement
        out, _ = poller.communicate("", timeout=60)
        reading.join()
        assert first[:1] == ["polling\n"], (first, out)
        assert len(json.loads(out.strip().splitlines()[-1])) >= 1
    finally:
        server.shutdown()


def test_workers_wait_says_how_many_were_ready_when_it_gives_up():
    """`bench.workers` waiting on workers still importing torch said only "never became ready"."""
    from types import SimpleNamespace

    from bench.workers import _wait_ready

    dispatcher = SimpleNamespace(worker_pids=lambda: [4321, 0])
    srv = SimpleNamespace(app=SimpleNamespace(state=SimpleNamespace(lg=SimpleNamespace(
        dispatcher=dispatcher))))  # fmt: skip
    with pytest.raises(RuntimeError, match=r"^1 of 2 worker\(s\) ready after 0.1 s \(each imports"):
        _wait_ready(srv, 2, timeout=0.1)
    dispatcher.worker_pids = lambda: [4321, 4322]
    assert _wait_ready(srv, 2, timeout=0.1) == [4321, 4322]
