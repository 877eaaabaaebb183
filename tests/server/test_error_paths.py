"""An error as web clients see it (a run's, POST /prompt's refusal) names the server's folders
as they know them (input/, output/, models/...), and no other absolute path of the server; a
value the client sent is quoted as it was sent. The server's log keeps the full path."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from latentgraph.server.messages import shown_paths, user_folders

from .conftest import RunningServer, chain, free_port


def opening(name: str) -> dict:
    """`chain` with a toy Open node failing on `name` as a file reader does."""
    prompt = chain(3)
    prompt["5"] = {"class_type": "Open", "inputs": {"x": ["2", 0], "name": name}}
    prompt["9"]["inputs"]["x"] = ["5", 0]
    return prompt


def test_a_failed_runs_error_shows_no_absolute_server_path(server, ws, caplog):
    """A run's error said "/srv/.../input/sub/cat.png ..." to every client (websocket
    `execution_error`, /history, /api/jobs), and a link's target outside every folder in
    full."""
    folder = Path(server.config.input_dir).absolute()
    client = ws()
    with caplog.at_level(logging.ERROR, logger="latentgraph.server"):
        pid = server.post_prompt(opening("sub/cat.png"), client.client_id).json()["prompt_id"]
        msgs = client.until_done(pid)
    shown = (f"cannot read 'sub/cat.png': {Path('input', 'sub', 'cat.png')} is a link to a "
             "missing file, cat.png (looked in input)")  # fmt: skip
    sent = next(m["data"] for m in msgs if m["type"] == "execution_error")
    assert sent["exception_message"] == shown
    assert not any(str(folder) in line for line in sent["traceback"])
    history = server.http.get(f"/history/{pid}").json()[pid]
    kept = next(d for t, d in history["status"]["messages"] if t == "execution_error")
    assert kept["exception_message"] == shown
    job = server.http.get(f"/api/jobs/{pid}").json()
    assert job["execution_error"]["exception_message"] == shown
    full = f"{folder / 'sub' / 'cat.png'} is a link to a missing file, /elsewhere/cat.png"
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert full in logged  # the log keeps the server's paths: the message's and the traceback's
    assert f'File "{Path(__file__).parent / "plugin" / "toy_nodes.py"}", line' in logged


def test_a_value_the_client_sent_is_quoted_as_sent(server, ws):
    """LoadImage of "/srv/.../input/bad.png" said "cannot read 'input/bad.png'" while its
    current_inputs showed what was sent: a message quoted a value the client never sent."""
    folder = Path(server.config.input_dir).absolute()
    name = str(folder / "bad.png")
    client = ws()
    pid = server.post_prompt(opening(name), client.client_id).json()["prompt_id"]
    sent = next(m["data"] for m in client.until_done(pid) if m["type"] == "execution_error")
    assert sent["exception_message"] == (f"cannot read {name!r}: {name} is a link to a missing "
                                         "file, bad.png (looked in input)")  # fmt: skip
    assert server.http.get(f"/api/jobs/{pid}").json()["execution_error"] == sent


def broken_models(root: Path) -> Path:
    """`root`/models, holding loras/broken.safetensors, a link to a file outside every folder
    that is not there."""
    models = root / "models"
    (models / "loras").mkdir(parents=True)
    (models / "loras" / "broken.safetensors").symlink_to(root / "gone" / "x.safetensors")
    return models


@pytest.fixture
def broken_lora(tmp_path):
    """A server's settings whose models folder is `broken_models`'."""
    from latentgraph.graph import Settings

    models = broken_models(tmp_path)
    return Settings(input_dir=tmp_path / "input", output_dir=tmp_path / "output",
                    temp_dir=tmp_path / "temp", models_dirs=[models])  # fmt: skip


def lora_prompt(name: str) -> dict:
    """Checkpoint -> LoraLoader(`name`) -> ... -> SaveImage, as the editor sends it."""
    return {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "builtin:tiny-sd"}},
        "2": {"class_type": "LoraLoader", "inputs": {
            "model": ["1", 0], "clip": ["1", 1], "lora_name": name, "strength_model": 1.0,
            "strength_clip": 1.0}},
        "4": {"class_type": "EmptyLatentImage",
              "inputs": {"width": 64, "height": 64, "batch_size": 1}},
        "5": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["2", 1], "text": "x"}},
        "6": {"class_type": "KSampler", "inputs": {
            "model": ["2", 0], "positive": ["5", 0], "negative": ["5", 0],
            "latent_image": ["4", 0], "seed": 1, "steps": 1, "cfg": 1.0,
            "sampler_name": "euler", "scheduler": "normal", "denoise": 1.0}},
        "7": {"class_type": "VAEDecode", "inputs": {"samples": ["6", 0], "vae": ["1", 2]}},
        "8": {"class_type": "SaveImage", "inputs": {"images": ["7", 0], "filename_prefix": "x"}},
    }  # fmt: skip


@pytest.mark.parametrize("name", ["broken.safetensors", "BROKEN"])
def test_a_refused_prompt_shows_no_absolute_server_path(broken_lora, tmp_path, caplog, name):
    """POST /prompt's refusal named the models folder and the link's target in full
    ('broken.safetensors' (/srv/.../models/loras/broken.safetensors) is a link to a missing
    file, /srv/.../gone/x.safetensors; ... looked in /srv/.../models/loras), where a run's
    error names them as a web client knows them."""
    from latentgraph.server.prompts import PromptRejected, check_prompt, log_refusal
    from latentgraph.wiring import node_registry

    with caplog.at_level(logging.WARNING, logger="latentgraph.server"):
        with pytest.raises(PromptRejected) as refused:
            check_prompt(lora_prompt(name), node_registry(), broken_lora)
        log_refusal(refused.value)  # as ServerState.enqueue logs every refusal
    body = refused.value.body
    error = body["node_errors"]["2"]["errors"][0]
    texts = [body["error"]["message"], body["error"]["details"], error["message"], error["details"]]
    assert not any(str(tmp_path) in t for t in texts), texts
    assert f"looked in {Path('models', 'loras')}" in error["message"]
    if name == "broken.safetensors":
        assert (f"'broken.safetensors' ({Path('models', 'loras', 'broken.safetensors')}) is a "
                "link to a missing file, x.safetensors;") in error["message"]  # fmt: skip
    assert error["extra_info"]["received_value"] == name
    assert any(str(tmp_path / "models") in r.getMessage() for r in caplog.records)  # the log


def test_a_refusal_quotes_a_value_as_the_client_sent_it(broken_lora, tmp_path):
    """A lora_name given as the server's absolute path is quoted as sent (a long one cut
    short, '/srv/lg/mo...'), not rewritten into a value the client never sent ('mo...')."""
    from latentgraph.server.prompts import PromptRejected, check_prompt
    from latentgraph.wiring import node_registry

    sent = str(tmp_path / "models" / "loras" / "nope.safetensors")
    with pytest.raises(PromptRejected) as refused:
        check_prompt(lora_prompt(sent), node_registry(), broken_lora)
    message = refused.value.body["node_errors"]["2"]["errors"][0]["message"]
    quoted = message.split("'")[1]
    assert quoted.endswith("...") and sent.startswith(quoted[:-3]) and len(quoted) > 20, message
    assert f"looked in {Path('models', 'loras')}" in message


def test_latentgraph_run_refuses_naming_no_absolute_server_path(tmp_path, caplog):
    """POST /latentgraph/run refused a workflow with the models folder and the link's target
    in full, where POST /prompt names them as a web client knows them; a value the client
    sent (an absolute lora_name) is quoted as sent. The server's log keeps the full paths."""
    from latentgraph.server.config import ServerConfig
    from latentgraph.wiring import worker_setup

    config = ServerConfig(data_dir=tmp_path / "data", port=free_port(), disk_cache=False,
                          editor=False, models_dirs=[broken_models(tmp_path)])  # fmt: skip
    sent = str(tmp_path / "models" / "loras" / "nope.safetensors")
    running = RunningServer(config, worker_setup()).start()
    try:
        with caplog.at_level(logging.WARNING, logger="latentgraph.server"):
            answers = [running.http.post("/latentgraph/run", json={"workflow": lora_prompt(name)})
                       for name in ("broken.safetensors", sent)]  # fmt: skip
    finally:
        running.stop()
    assert [r.status_code for r in answers] == [400, 400]
    broken, absolute = (r.json() for r in answers)
    [problem] = broken["problems"]
    texts = [broken["error"]["message"], problem["message"], problem["text"]]
    assert not any(str(tmp_path) in t for t in texts), texts
    assert (f"'broken.safetensors' ({Path('models', 'loras', 'broken.safetensors')}) is a "
            "link to a missing file, x.safetensors;") in problem["message"]  # fmt: skip
    assert f"looked in {Path('models', 'loras')}" in problem["message"]
    assert problem["message"] in problem["text"] and problem["text"] in broken["error"]["message"]
    quoted = absolute["problems"][0]["message"].split("'")[1]
    assert quoted.endswith("...") and sent.startswith(quoted[:-3]) and len(quoted) > 20, quoted
    assert any(str(tmp_path / "models") in r.getMessage() for r in caplog.records)  # the log


def test_the_folder_inside_another_is_named_first(tmp_path):
    from latentgraph.graph import Settings

    settings = Settings(input_dir=tmp_path, output_dir=tmp_path / "out",
                        temp_dir=tmp_path / "tmp", models_dirs=[tmp_path / "m"])  # fmt: skip
    folders = user_folders(settings)
    text = f"{tmp_path / 'out' / 'a.png'}, {tmp_path / 'b.png'}, {tmp_path / 'm' / 'x'}"
    assert shown_paths(text, folders) == (
        f"{Path('output', 'a.png')}, {Path('input', 'b.png')}, {Path('models', 'x')}")  # fmt: skip


def test_a_path_outside_every_folder_is_named_by_its_file_name_alone(tmp_path):
    folders = {str(tmp_path / "in"): "input"}
    text = (f"a link to /srv/x/gone.safetensors; {tmp_path / 'in2' / 'a.png'} "
            f"(http://host/a/b, sub/c.png, ./d, 1/2)")  # fmt: skip
    assert shown_paths(text, folders) == (
        "a link to gone.safetensors; a.png (http://host/a/b, sub/c.png, ./d, 1/2)"
    )


def test_a_sent_value_is_left_whole_not_where_it_begins_a_longer_path(tmp_path):
    folders = {str(tmp_path / "in"): "input"}
    sent = str(tmp_path / "in" / "a")
    text = f"cannot read {sent!r}: {sent}/b.png and {sent}"
    assert shown_paths(text, folders, [sent, "other"]) == (
        f"cannot read {sent!r}: {Path('input', 'a')}/b.png and {sent}"
    )


@pytest.mark.parametrize(("text", "shown"), [
    # a path at the end of the message, and followed by ":" (the reporter's LoadModel error)
    ("cannot write /home/jane doe/.cache/latentgraph/models/tiny-sd-v2: /home/jane doe/.cache "
     "is a file", "cannot write tiny-sd-v2: .cache is a file"),
    ("looked in /srv/oddü user/図 models", "looked in 図 models"),
    ("cannot read /srv/oddü user/図 models/a.png", "cannot read a.png"),
    # followed by ")", and a blank in the file name itself
    ("missing (/opt/my models/sd x.safetensors)", "missing (sd x.safetensors)"),
    # quoted, as an OSError and a traceback quote them: all of it up to the quote
    ("[Errno 13] Permission denied: '/srv/my data/ü 図/out.png'",
     "[Errno 13] Permission denied: 'out.png'"),
    ('File "/home/jane doe/venv/lib/python3.11/site-packages/x y.py", line 5, in f',
     'File "x y.py", line 5, in f'),
    # two paths a blank apart stay two paths; a word without "/" after a path is no part of it
    ("copy /a b/c /d/e f failed", "copy c e f failed"),
    # a folder named with two or more words, or a tab: it showed "My Stable Diffusion/models/x"
    ("cannot read /home/bob/My Stable Diffusion/models/secret.safetensors",
     "cannot read secret.safetensors"),
    ("at /Users/a/Library/CloudStorage/OneDrive - Contoso Ltd/models/x.pt", "at x.pt"),
    ("/home/jane/a b c/d e/f.txt", "f.txt"),
    ("cannot read /home/jane\tdoe/x/y", "cannot read y"),
    ("missing C:\\Users\\Jo Q Public\\My Models\\x.pt", "missing x.pt"),
    # words up to a ": " are the message's, not a folder's
    ("cannot read /a/b file: out/c", "cannot read b file: out/c"),
])  # fmt: skip
def test_a_path_with_blanks_or_unicode_is_named_by_its_file_name_alone(text, shown):
    """The path stopped at the first blank: "/home/jane doe/.cache/x" was shown as
    "jane doe/.cache/x", part of the server's layout, read as a relative path."""
    assert shown_paths(text, {"/srv/lg/input": "input"}) == shown


def test_a_folder_with_blanks_is_named_and_a_path_beside_it_by_its_file_name():
    """The folders the server knows are replaced first, as they are spelled; the path beside
    one, outside it, showed "my lg/other/x y/z.png"."""
    folders = {"/srv/my lg/in ü": "input"}
    text = "cannot read /srv/my lg/in ü/a b/c.png: /srv/my lg/other/x y/z.png is missing"
    assert shown_paths(text, folders) == "cannot read input/a b/c.png: z.png is missing"


@pytest.mark.parametrize(("text", "shown"), [
    ("cannot read /home/bob/Downloads (1)/models/x.safetensors: bad",
     "cannot read x.safetensors: bad"),
    ("from /home/bob/Stable Diffusion (old)/models/x.bin", "from x.bin"),
    ("cannot read C:\\Program Files (x86)\\SD\\models\\x.safetensors: bad",
     "cannot read x.safetensors: bad"),
    ("open /home/bob/Stable-Diffusion, WebUI/x.bin", "open x.bin"),
    ("at /srv/SD [old]/x.pt", "at x.pt"),
    # a bracket opening the message's own words is no folder's: the path ends before it
    ("cannot read /srv/a/x.pt (looked in models/loras)", "cannot read x.pt (looked in models/loras)"),
])  # fmt: skip
def test_a_folder_named_with_brackets_or_a_comma_is_hidden(text, shown):
    """A folder name holding "(1)", "(x86)" or ", " ended the path there, and a new one began
    after its ")": "Downloads (1)x.safetensors", "Program Files (x86)\\SD\\models\\x...",
    "Stable-Diffusion, WebUI/x.bin" showed the folders and lost the slash."""
    assert shown_paths(text, {"/srv/lg/input": "input"}) == shown


def test_the_servers_own_folders_are_known_as_spelled(tmp_path, monkeypatch):
    """The home, cache and data folders were guessed from their shape: a name the shape rule
    cannot read ("Jane O'Neil", whose quote ended a quoted path, "x; y") showed the rest of the
    server's layout. They are known as spelled now, a path in one shown by its file name,
    the client's folders inside them by their names."""
    home = tmp_path / "Jane O'Neil"
    cache = tmp_path / "cache; shared"
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("LATENTGRAPH_CACHE_DIR", str(cache))
    from latentgraph.graph import Settings

    folders = user_folders(Settings(input_dir=home / "lg" / "input", models_dirs=[]))
    assert folders[str(home)] == folders[str(cache)] == ""
    text = (f"[Errno 2] No such file or directory: '{home}/x y/a.png'; cannot write "
            f"{cache}/models/tiny-sd-v2: {home}/lg/input/b.png is open")  # fmt: skip
    assert shown_paths(text, folders) == (
        "[Errno 2] No such file or directory: 'a.png'; cannot write tiny-sd-v2: "
        f"{Path('input', 'b.png')} is open"
    )
    monkeypatch.setenv("HOME", "/")  # a service's: never every path's beginning
    assert "/" not in user_folders(Settings(models_dirs=[]))


def test_words_after_a_path_in_a_known_folder_are_kept():
    """Where the server knows the folder, a path's end is not guessed from its shape: the
    message's words after it stay ("lost ok" when read by shape alone)."""
    text = "lost /home/x/foo bar/baz and more words here/ok"
    assert shown_paths(text, {"/home/x/foo bar": "input"}) == (
        "lost input/baz and more words here/ok"
    )
