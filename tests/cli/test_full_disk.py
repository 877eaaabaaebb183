"""`latentgraph run` on an output disk that fills: the failed SaveImage names the file it could
not write, in the text and in --json, and leaves none of its batch; exit 1 (a run failure: the
workflow is right, the machine refused; a re-run after space is freed saves from the cache)."""

from __future__ import annotations

import json
import subprocess
import sys

from ..full_disk import fill
from .conftest import write

FOUR = """
version: 1
nodes:
  pic:
    type: EmptyImage
    width: 8
    height: 8
    batch_size: 4
    color: 123456
  save:
    type: SaveImage
    images: pic
    filename_prefix: t
"""


def test_a_disk_full_after_two_saves_names_what_was_not_and_leaves_none(cli, tmp_path,
                                                                        monkeypatch):  # fmt: skip
    """The batch's first two were kept, and the re-run once there was room saved four more
    (t_00003_ to t_00006_): two copies of the first two. None is kept, the re-run saves four."""
    path = write(tmp_path, "wf.yaml", FOUR)
    assert cli("run", str(path), "--output-dir", "probe", "--no-cache")[0] == 0
    size = (tmp_path / "probe" / "t_00001_.png").stat().st_size
    out = tmp_path / "output"
    out.mkdir()
    with monkeypatch.context() as patched:
        fill(patched, out, 2 * size + 1)
        code, stdout, stderr = cli("run", str(path))
    said = f"cannot write {out / 't_00003_.png'}: the disk is full (No space left on device)"
    assert code == 1
    assert f"error: {path}:" in stderr and f": node 'save' (SaveImage): {said}" in stderr
    assert "Traceback" not in stdout + stderr and "Errno" not in stdout + stderr
    assert list(out.iterdir()) == []

    with monkeypatch.context() as patched:
        fill(patched, out, 0)
        code, stdout, _ = cli("run", str(path), "--json")
    [failed] = [e for e in map(json.loads, stdout.splitlines()) if e["event"] == "node_failed"]
    assert code == 1 and failed["node_id"] == "save" and failed["user_error"] is False
    assert failed["message"] == (f"cannot write {out / 't_00001_.png'}: the disk is full "
                                 "(No space left on device)")  # fmt: skip
    assert list(out.iterdir()) == []

    assert cli("run", str(path))[0] == 0  # room again
    assert sorted(p.name for p in out.iterdir()) == [f"t_0000{i}_.png" for i in range(1, 5)]


TINY = """
version: 1
nodes:
  model:
    type: LoadModel
    source: builtin:tiny-sd
  out:
    type: PreviewAny
    source: model.clip
"""


def test_a_full_cache_disk_fails_the_built_in_models_build_as_a_run_failure(cli, tmp_path,
                                                                            monkeypatch):  # fmt: skip
    """The built-in model is built into the cache folder on first use: a full disk there is a
    run failure (exit 1) naming the model's folder, in words, not the input's fault (exit 2)
    with safetensors' or the OS's raw text; nothing is left in the cache folder."""
    from latentgraph.nodes import free_models

    free_models()  # the tiny model loaded by an earlier test would not be built again
    cache = tmp_path / "lgcache"
    monkeypatch.setenv("LATENTGRAPH_CACHE_DIR", str(cache))
    fill(monkeypatch, cache)
    path = write(tmp_path, "wf.yaml", TINY)
    code, stdout, stderr = cli("run", str(path), "--json")
    [failed] = [e for e in map(json.loads, stdout.splitlines()) if e["event"] == "node_failed"]
    folder = cache / "models" / "tiny-sd-v2"
    assert code == 1 and failed["node_id"] == "model" and failed["user_error"] is False
    assert failed["message"] == f"cannot write {folder}: the disk is full (No space left on device)"
    assert not cache.exists()


FULL = "the disk is full (No space left on device)"


def test_tiny_model_on_a_full_disk_exits_1_as_run_does(cli, tmp_path, monkeypatch, tiny_folder):
    """`tiny-model` exited 2, a usage error, where `run` exits 1 for the same full disk: a
    write the machine refuses fails the work (README's exit codes), whichever command did it;
    a place refused before any work stays 2 (test_user_input's tiny-model refusals)."""
    import safetensors.torch
    from safetensors import SafetensorError

    def full(*args, **kwargs):  # safetensors writes from Rust: its error carries the OS's code
        raise SafetensorError("Error while serializing: I/O error: No space left on device "
                              "(os error 28)")  # fmt: skip

    with monkeypatch.context() as patched:
        patched.setattr(safetensors.torch, "save_file", full)  # the built model is there
        code, out, err = cli("tiny-model", "--single-file", "sf/m.safetensors")
        assert code == 1 and out == f"built-in model: {tiny_folder}\n"
        assert f"latentgraph: error: cannot write sf/m.safetensors: {FULL}" in err
        code, _, err = cli("tiny-model", "--addons", "models")
        assert code == 1 and "latentgraph: error: cannot write models/" in err and FULL in err

    cache = tmp_path / "lgcache"  # the built model's own folder, on a full disk
    monkeypatch.setenv("LATENTGRAPH_CACHE_DIR", str(cache))
    fill(monkeypatch, cache)
    code, out, err = cli("tiny-model")
    assert code == 1 and out == ""
    assert err == f"latentgraph: error: cannot write {cache / 'models' / 'tiny-sd-v2'}: {FULL}\n"
    assert "Traceback" not in err and not cache.exists()


def test_tiny_model_addons_on_a_disk_that_fills_names_what_it_wrote(cli, tmp_path, monkeypatch,
                                                                      tiny_folder):  # fmt: skip
    """`tiny-model --addons` on a disk filling after the first two add-ons kept them (each
    works alone) but printed none of them and named only the one that failed: the user could
    not tell what was there. Each is printed as written, and the error names them."""
    import safetensors.torch
    from safetensors import SafetensorError

    real, calls = safetensors.torch.save_file, []

    def filling(*args, **kwargs):
        calls.append(args[1])
        if len(calls) > 2:
            raise SafetensorError("Error while serializing: I/O error: No space left on device "
                                  "(os error 28)")  # fmt: skip
        return real(*args, **kwargs)

    monkeypatch.setattr(safetensors.torch, "save_file", filling)
    code, out, err = cli("tiny-model", "--addons", "models")
    kept = ["models/loras/tiny-lora-kohya.safetensors",
            "models/loras/tiny-lora-diffusers.safetensors"]  # fmt: skip
    assert code == 1
    assert out == f"built-in model: {tiny_folder}\n" + "".join(f"tiny add-on: {p}\n" for p in kept)
    assert err == (f"latentgraph: error: saved 2 of 12: {', '.join(kept)}; cannot write "
                   f"models/loras/tiny-sdxl-lora-kohya.safetensors: {FULL}\n")  # fmt: skip
    assert sorted(str(p.relative_to(tmp_path)) for p in (tmp_path / "models").rglob("*.*")) == (
        sorted(kept))  # fmt: skip


def test_tiny_model_addons_diffusers_folder_is_whole_or_not_there(cli, tmp_path, monkeypatch,
                                                                    tiny_folder):  # fmt: skip
    """The ControlNet's diffusers folder was written file by file: a disk filling at its
    weights left its config.json, a folder that looks like a model and fails to load. It is
    filled beside its place and renamed in: a failure leaves none of it (nor the one beside),
    and a folder an earlier run wrote stays whole."""
    import shutil

    real = shutil.copyfile

    def filling(src, dst, *args, **kwargs):  # the folder's files are copied in one by one
        if "diffusion_pytorch_model" in str(dst):
            raise OSError(28, "No space left on device")
        return real(src, dst, *args, **kwargs)

    folder = tmp_path / "models" / "controlnet" / "tiny-controlnet-diffusers"
    with monkeypatch.context() as patched:
        patched.setattr(shutil, "copyfile", filling)
        code, _, err = cli("tiny-model", "--addons", "models")
    assert code == 1
    assert sorted(p.name for p in folder.parent.iterdir() if "diffusers" in p.name) == []
    assert err.startswith("latentgraph: error: saved 11 of 12: ")
    assert err.endswith(f"; cannot write {folder.relative_to(tmp_path)}: {FULL}\n")

    assert cli("tiny-model", "--addons", "models")[0] == 0
    whole = {p.name: p.read_bytes() for p in folder.iterdir()}
    assert sorted(whole) == ["config.json", "diffusion_pytorch_model.safetensors"]
    with monkeypatch.context() as patched:
        patched.setattr(shutil, "copyfile", filling)
        assert cli("tiny-model", "--addons", "models")[0] == 1
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == whole
    assert sorted(p.name for p in folder.parent.iterdir() if "diffusers" in p.name) == [
        folder.name]  # fmt: skip


def test_serve_refused_at_start_by_a_full_disk_stays_a_usage_error(cli, tmp_path, monkeypatch):
    """A folder whose disk refuses what `serve` writes at start (example.png; on Ray the
    shared folders' marker) is a folder that cannot be used, refused before any worker starts
    (exit 2, README), not a failed run's exit 1."""
    fill(monkeypatch, tmp_path / "in")
    code, _, err = cli("serve", "--port", "0", "--data-dir", "data", "--input-dir", "in")
    assert code == 2
    assert f"latentgraph: error: cannot write {tmp_path / 'in' / 'example.png'}: {FULL}" in err


def test_stdout_on_a_full_disk_is_a_failure_said_in_words(tmp_path):
    """`latentgraph validate wf.yaml > /dev/full` exited 2 (a usage error) with a bare
    "[Errno 28]"; README's table gives 1 for a full disk. Python's own flush of stdout at exit
    must not fail again (an "Exception ignored" and exit 120)."""
    path = write(tmp_path, "wf.yaml", FOUR)
    with open("/dev/full", "w") as full:
        proc = subprocess.run([sys.executable, "-m", "latentgraph.cli", "validate", str(path)],
                              stdout=full, stderr=subprocess.PIPE, text=True, timeout=120,
                              cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr == ("latentgraph: error: cannot write the output: the disk is full "
                           "(No space left on device)\n")  # fmt: skip
