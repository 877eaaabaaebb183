"""/system_stats lists the devices the workers run on, as each worker last reported them (the
HTTP process never imports torch, so it cannot look for itself)."""

from __future__ import annotations

import os
import sys
import time
from types import SimpleNamespace

from latentgraph.server.devices import memory, worker_devices
from latentgraph.server.dispatch import Dispatcher
from latentgraph.server.hub import Hub
from latentgraph.server.store import Store
from latentgraph.server.workers import Device, Died, Done, Ready

from .test_dispatch import RecordingPool, _registry

GiB = 2**30


def fake_torch(cuda: bool, mps: bool = False) -> SimpleNamespace:
    """The few torch calls a worker's device report makes, on a pretend 2-GPU machine (or an
    Apple one, `mps`)."""
    return SimpleNamespace(cuda=SimpleNamespace(
        is_available=lambda: cuda,
        current_device=lambda: 0,
        mem_get_info=lambda i: ((3 + i) * GiB, 8 * GiB),
        memory_stats=lambda i: {"reserved_bytes.all.current": 2 * GiB,
                                "active_bytes.all.current": GiB // 2},
        get_device_name=lambda i: f"Pretend GPU {i}",
    ), backends=SimpleNamespace(mps=SimpleNamespace(is_available=lambda: mps)))  # fmt: skip


def test_a_cuda_worker_reports_its_gpu_memory_as_comfyui_names_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", fake_torch(cuda=True))
    assert worker_devices("cuda:1") == (
        Device("cuda:1 Pretend GPU 1", "cuda", 1, vram_total=8 * GiB, vram_free=4 * GiB,
               torch_vram_total=2 * GiB, torch_vram_free=2 * GiB - GiB // 2),
    )  # fmt: skip
    assert worker_devices("auto")[0].index == 0  # "auto" with CUDA: the current device


def test_a_cpu_worker_reports_the_machine_ram(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", fake_torch(cuda=True))  # a GPU it was not given
    [cpu] = worker_devices("cpu")
    total, _ = memory()
    assert (cpu.type, cpu.index, cpu.vram_total, cpu.torch_vram_total) == ("cpu", None, total,
                                                                           total)  # fmt: skip
    assert 0 < cpu.vram_free <= total
    monkeypatch.delitem(sys.modules, "torch")  # a worker of pure-Python nodes: no torch
    assert worker_devices("cuda:0")[0].type == "cpu"


def test_an_auto_worker_reports_the_device_the_runtime_picks(monkeypatch):
    """ "auto" is CUDA, else MPS, else the CPU (`nodes.runtime.device_name`); a worker on an
    Apple GPU reported the CPU."""
    monkeypatch.setitem(sys.modules, "torch", fake_torch(cuda=False, mps=True))
    assert [d.name for d in worker_devices("auto")] == ["mps"]
    monkeypatch.setitem(sys.modules, "torch", fake_torch(cuda=False))
    assert [d.name for d in worker_devices("auto")] == ["cpu"]


def test_each_worker_process_says_the_device_it_runs_on_once_ready(tmp_path, caplog):
    """The start log said `1 worker process on auto (no CUDA GPU seen: MPS, else the CPU)`:
    which one only the worker knows (this process never imports torch). Each process says it
    when it is first ready (a Ready after a free says nothing), a replacement again."""
    from latentgraph.server.app import _log_start
    from latentgraph.server.workers import WorkerInfo

    class AutoPool(RecordingPool):
        def workers(self) -> list[WorkerInfo]:
            return [WorkerInfo(0, "w0", "auto", None)]

    cpu = Device("cpu", "cpu", None, 16, 8, 16, 8)
    pool = AutoPool([])
    config = SimpleNamespace(ray=False, data_dir="d", users_dir="u", output_dir="o",
                             input_dir="i", temp_dir="t", disk_store=None, auth_token=None)  # fmt: skip
    dispatcher = Dispatcher(Store(tmp_path / "db.sqlite3"), Hub(), _registry(), pool)
    with caplog.at_level("INFO", logger="latentgraph.server"):
        _log_start(config, dispatcher.store, pool)  # type: ignore[arg-type]
        dispatcher.start()
        try:
            pool.deliver(0, Ready(2000, frozenset(), (cpu,)))  # started
            pool.deliver(0, Ready(2000, frozenset(), (cpu,)))  # ready again after a free
            pool.deliver(0, Died("worker process died: signal 9"))
            pool.deliver(0, Ready(2001, frozenset(), (cpu,)))  # its replacement
            deadline = time.monotonic() + 10
            while dispatcher.worker_pids() != [2001] and time.monotonic() < deadline:
                time.sleep(0.01)
        finally:
            dispatcher.stop()
            dispatcher.store.close()
    said = [r.getMessage() for r in caplog.records if r.name == "latentgraph.server"]
    assert said[0] == "1 worker process on auto (the device each finds is logged when it is ready)"
    assert [line for line in said if line.startswith("worker ")] == [
        "worker 0 (pid 2000) is ready on cpu", "worker 0 (pid 2001) is ready on cpu"]  # fmt: skip


def test_the_dispatcher_lists_each_reported_device_once(tmp_path):
    gpu = [Device(f"cuda:{i}", "cuda", i, 8, 4, 2, 1) for i in range(2)]
    cpu = Device("cpu", "cpu", None, 16, 8, 16, 8)
    pool = RecordingPool([frozenset()] * 4)
    dispatcher = Dispatcher(Store(tmp_path / "db.sqlite3"), Hub(), _registry(), pool)
    dispatcher.start()
    try:
        for i, devices in enumerate([(gpu[0],), (gpu[1],), (cpu,), (cpu,)]):
            pool.deliver(i, Ready(2000 + i, frozenset(), devices))
        deadline = time.monotonic() + 10
        while len(dispatcher.devices()) < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert dispatcher.devices() == [*gpu, cpu]
    finally:
        dispatcher.stop()
        dispatcher.store.close()


def test_a_runs_done_brings_the_devices_as_they_are_at_its_end(tmp_path):
    before = Device("cpu", "cpu", None, 16, 8, 16, 8)
    after = Device("cpu", "cpu", None, 16, 3, 16, 3)
    pool = RecordingPool([frozenset()])
    dispatcher = Dispatcher(Store(tmp_path / "db.sqlite3"), Hub(), _registry(), pool)
    dispatcher.start()
    try:
        pool.deliver(0, Ready(2000, frozenset(), (before,)))
        pool.deliver(0, Done("gone", "success", {}, None, frozenset(), (after,)))
        pool.deliver(0, Done("gone-too", "success", {}, None))  # read nothing: kept as it was
        deadline = time.monotonic() + 10
        while dispatcher.devices() != [after] and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.05)
        assert dispatcher.devices() == [after]
    finally:
        dispatcher.stop()
        dispatcher.store.close()


def test_system_stats_lists_the_worker_devices(server):
    deadline = time.monotonic() + 60
    dispatcher = server.app.state.lg.dispatcher
    while not dispatcher.devices() and time.monotonic() < deadline:
        time.sleep(0.05)
    [reported] = dispatcher.devices()  # the toy worker said Ready with its device
    stats = server.http.get("/system_stats").json()
    [device] = stats["devices"]
    assert set(device) == {"name", "type", "index", "vram_total", "vram_free",
                           "torch_vram_total", "torch_vram_free"}  # fmt: skip
    assert (device["type"], device["vram_total"]) == ("cpu", reported.vram_total)
    assert device["vram_total"] == stats["system"]["ram_total"] > 0


class GpuPool(RecordingPool):
    """Two workers, each reporting its GPU when ready."""

    def start(self, deliver) -> None:
        self.deliver = deliver
        for i in range(2):
            deliver(i, Ready(3000 + i, frozenset(), (fake_gpu(i),)))


def fake_gpu(i: int) -> Device:
    return Device(f"cuda:{i} Pretend GPU", "cuda", i, 8 * GiB, 4 * GiB, 2 * GiB, GiB)


def test_system_stats_shows_the_gpus_workers_reported(tmp_path):
    from starlette.testclient import TestClient

    from latentgraph.server.app import create_app
    from latentgraph.server.config import ServerConfig
    from latentgraph.server.workers import WorkerSetup

    config = ServerConfig(data_dir=tmp_path, load_nodes=False, editor=False)
    app = create_app(config, workers=WorkerSetup(registry=_registry),
                     pool=GpuPool([frozenset()] * 2))  # fmt: skip
    with TestClient(app, base_url="http://127.0.0.1") as client:
        deadline = time.monotonic() + 10
        while len(app.state.lg.dispatcher.devices()) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        devices = client.get("/system_stats").json()["devices"]
    assert [(d["name"], d["type"], d["index"], d["vram_free"]) for d in devices] == [
        ("cuda:0 Pretend GPU", "cuda", 0, 4 * GiB), ("cuda:1 Pretend GPU", "cuda", 1, 4 * GiB)]  # fmt: skip


def test_the_machine_ram_is_the_kernels_total_and_what_is_available():
    total, available = memory()
    assert total == os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    assert 0 < available <= total
