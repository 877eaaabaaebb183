"""A run's error as web clients see it names the server's folders as they know them (input/,
output/, models/...), never their absolute paths; the server's log keeps the full path."""

from __future__ import annotations

import logging
from pathlib import Path

from latentgraph.server.messages import shown_paths, user_folders

from .conftest import chain


def test_a_failed_runs_error_shows_no_absolute_server_path(server, ws, caplog):
    """A LoadImage of a missing file said "/srv/.../input/cat.png not found" to every client
    (websocket `execution_error`, /history, /api/jobs)."""
    folder = Path(server.config.input_dir)
    assert folder.is_absolute()
    why = f"image file not found: {folder / 'sub' / 'cat.png'} (looked in {folder})"
    prompt = chain(3, fail=True)
    failing = next(n for n in prompt.values() if n["class_type"] == "Fail")
    failing["inputs"]["why"] = why
    client = ws()
    with caplog.at_level(logging.ERROR, logger="latentgraph.server"):
        pid = server.post_prompt(prompt, client.client_id).json()["prompt_id"]
        msgs = client.until_done(pid)
    shown = f"image file not found: {Path('input', 'sub', 'cat.png')} (looked in input)"
    sent = next(m["data"] for m in msgs if m["type"] == "execution_error")
    assert sent["exception_message"] == shown
    assert not any(str(folder) in line for line in sent["traceback"])
    history = server.http.get(f"/history/{pid}").json()[pid]
    kept = next(d for t, d in history["status"]["messages"] if t == "execution_error")
    assert kept["exception_message"] == shown
    job = server.http.get(f"/api/jobs/{pid}").json()
    assert job["execution_error"]["exception_message"] == shown
    assert any(why in r.getMessage() for r in caplog.records)  # the log keeps the full path


def test_the_folder_inside_another_is_named_first(tmp_path):
    from latentgraph.graph import Settings

    settings = Settings(input_dir=tmp_path, output_dir=tmp_path / "out",
                        temp_dir=tmp_path / "tmp", models_dirs=[tmp_path / "m"])  # fmt: skip
    folders = user_folders(settings)
    text = f"{tmp_path / 'out' / 'a.png'}, {tmp_path / 'b.png'}, {tmp_path / 'm' / 'x'}"
    assert shown_paths(text, folders) == (
        f"{Path('output', 'a.png')}, {Path('input', 'b.png')}, {Path('models', 'x')}")  # fmt: skip


def test_a_kind_folder_from_an_extra_model_paths_file_is_shown_as_its_kind(tmp_path):
    """`--extra-model-paths`' per-kind folders stand among the models folders: a run's error
    names one as models/<kind>, as a root's kind folder is named."""
    from latentgraph.graph import Settings
    from latentgraph.graph.paths import KindFolder, resolved_models_dir

    kind = KindFolder("loras", tmp_path / "my-loras")
    settings = Settings(models_dirs=[tmp_path / "m", kind])
    text = f"{tmp_path / 'my-loras' / 'ink.safetensors'} is damaged"
    assert shown_paths(text, user_folders(settings)) == (
        f"{Path('models', 'loras', 'ink.safetensors')} is damaged")  # fmt: skip
    assert resolved_models_dir(kind) == KindFolder("loras", (tmp_path / "my-loras").resolve())
