"""Server limits at their boundaries, by HTTP status: a request exactly at a limit is served,
one byte (prompt, step) more is refused with the documented status."""

from __future__ import annotations

import http.client
import io
import json
import socket
import time
import urllib.error
import urllib.request

import pytest

from .conftest import RunningServer, chain, free_port

BODY = 100_000
UPLOAD = 50_000
QUEUE = 3
STEPS = 5
NODES = 10
CHARS = 50
EXTRA = 1000


@pytest.fixture(scope="module")
def limited(tmp_path_factory, toy_workers):
    from latentgraph.server.config import ServerConfig

    config = ServerConfig(data_dir=tmp_path_factory.mktemp("limits"), port=free_port(),
                          disk_cache=False, load_nodes=False, editor=False, max_body_bytes=BODY,
                          max_upload_bytes=UPLOAD, max_queue=QUEUE, max_steps=STEPS,
                          max_prompt_nodes=NODES, max_string_chars=CHARS,
                          max_extra_data_bytes=EXTRA)  # fmt: skip
    running = RunningServer(config, toy_workers).start()
    yield running
    running.http.post("/queue", json={"clear": True})
    running.http.post("/interrupt")
    running.stop()


def drain(server, timeout: float = 30) -> None:
    """Wait until nothing is queued or running (the limits below count queued prompts)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        queue = server.http.get("/queue").json()
        if not queue["queue_running"] and not queue["queue_pending"]:
            return
        time.sleep(0.05)
    raise AssertionError("the queue did not drain")


def body_of_size(size: int) -> bytes:
    """A POST /prompt body of exactly `size` bytes (valid JSON, a prompt with no outputs)."""
    head, tail = b'{"prompt": {}, "pad": "', b'"}'
    return head + b"x" * (size - len(head) - len(tail)) + tail


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_body_at_the_limit_is_read_and_one_byte_more_is_413(limited, chunked):
    def post(body: bytes):
        content = iter([body[: len(body) // 2], body[len(body) // 2 :]]) if chunked else body
        return limited.http.post("/prompt", content=content,
                                 headers={"content-type": "application/json"})  # fmt: skip

    at = post(body_of_size(BODY))
    assert at.status_code == 400 and at.json()["error"]["type"] != "too_large"  # read, judged
    over = post(body_of_size(BODY + 1))
    assert over.status_code == 413 and over.json()["error"]["type"] == "too_large"
    # each refusal names the flag the operator can raise (`server.config.server_limit_label`)
    assert over.json()["error"]["message"] == \
        f"request body larger than {BODY} bytes (the server's --max-body-mb)"  # fmt: skip


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_a_body_over_the_limit_is_logged_with_why(limited, chunked):
    """A POST /prompt body over --max-body-mb left only uvicorn's access line in the log,
    while other refused prompts are logged with why: logged as they are, with the request,
    its client and the flag that raises the limit."""
    said = (f" refused (too_large): request body larger than {BODY} bytes (the server's "
            "--max-body-mb)\n")  # fmt: skip

    def logged() -> list[str]:
        lines = [e["m"] for e in limited.http.get("/internal/logs/raw").json()["entries"]]
        return [m for m in lines if m.endswith(said)]

    before = len(logged())
    body = body_of_size(BODY + 1)
    content = iter([body[: len(body) // 2], body[len(body) // 2 :]]) if chunked else body
    over = limited.http.post("/prompt", content=content,
                             headers={"content-type": "application/json"})  # fmt: skip
    assert over.status_code == 413
    lines = logged()
    assert len(lines) == before + 1, lines
    assert lines[-1].startswith("WARNING latentgraph.server: POST /prompt from 127.0.0.1:")


# More than the sockets of both ends buffer: a client sends it whole only if the server reads it.
HUGE = 20_000_000


def sent_whole_then_read(port: int, head: bytes, parts) -> tuple[int, bytes]:
    """The answer's status and body, to a client that sends its whole request before reading
    any answer, as urllib, requests and a proxy passing a buffered body on do."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    try:
        sock.sendall(head)
        for part in parts:
            sock.sendall(part)
        answer = http.client.HTTPResponse(sock)
        answer.begin()
        return answer.status, answer.read()
    finally:
        sock.close()


def assert_too_large(body: bytes) -> None:
    error = json.loads(body)["error"]
    assert error["type"] == "too_large"
    assert error["message"] == f"request body larger than {BODY} bytes (the server's --max-body-mb)"


@pytest.mark.parametrize(("chunked", "close"), [(False, True), (False, False), (True, True)],
                         ids=["content-length", "content-length-kept-alive", "chunked"])  # fmt: skip
def test_a_body_over_the_limit_sent_whole_before_reading_gets_its_413(limited, chunked, close):
    """The 413 is answered before the body is read (from Content-Length, or where a chunked
    body passes the limit); the connection closed at once with the body unread made the
    kernel reset it, and a client still sending got "Connection reset by peer" (nginx: 502)
    instead of the answer. The server reads the rest and throws it away, then closes."""
    head = b"POST /prompt HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
    if close:
        head += b"Connection: close\r\n"
    piece = b"x" * 1_000_000
    if chunked:
        head += b"Transfer-Encoding: chunked\r\n\r\n"
        parts = [*[b"%x\r\n%s\r\n" % (len(piece), piece)] * (HUGE // len(piece)), b"0\r\n\r\n"]
    else:
        head += b"Content-Length: %d\r\n\r\n" % HUGE
        parts = [piece] * (HUGE // len(piece))
    status, body = sent_whole_then_read(limited.config.port, head, parts)
    assert status == 413
    assert_too_large(body)


def test_urllib_posting_a_body_over_the_limit_gets_the_413(limited):
    """urllib sends `Connection: close` and the whole body before reading."""
    request = urllib.request.Request(limited.url + "/prompt", data=b"x" * HUGE,
                                     headers={"Content-Type": "application/json"})  # fmt: skip
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=30)
    assert refused.value.code == 413
    assert_too_large(refused.value.read())


def png_of_size(size: int) -> bytes:
    """A valid PNG padded (a private ancillary chunk) to exactly `size` bytes."""
    import struct
    import zlib

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (4, 4), (1, 2, 3)).save(buf, format="PNG")
    png = buf.getvalue()
    pad = size - len(png) - 12  # chunk length + type + CRC
    chunk = b"prVt" + b"\0" * pad
    extra = struct.pack(">I", pad) + chunk + struct.pack(">I", zlib.crc32(chunk))
    iend = png.rindex(b"IEND") - 4
    data = png[:iend] + extra + png[iend:]
    assert len(data) == size
    return data


def test_upload_at_the_limit_is_stored_and_one_byte_more_is_413(limited):
    at = limited.http.post("/upload/image", files={"image": ("at.png", png_of_size(UPLOAD))})
    assert at.status_code == 200, at.text
    assert (limited.config.input_dir / "at.png").stat().st_size == UPLOAD
    over = limited.http.post(
        "/upload/image", files={"image": ("over.png", png_of_size(UPLOAD + 1))}
    )
    assert over.status_code == 413 and over.json()["error"]["type"] == "too_large"
    assert over.json()["error"]["message"] == \
        f"the image is larger than {UPLOAD} bytes (the server's --max-body-mb)"  # fmt: skip
    assert not (limited.config.input_dir / "over.png").exists()


def test_steps_at_the_limit_are_queued_and_one_more_refused(limited):
    def slow(steps: int) -> dict:
        prompt = chain(1, slow_steps=steps, delay=0.0, prefix="steps")
        return prompt

    assert limited.post_prompt(slow(STEPS)).status_code == 200
    over = limited.post_prompt(slow(STEPS + 1))
    assert over.status_code == 400
    errors = over.json()["node_errors"]["3"]["errors"]
    assert [e["extra_info"]["input_name"] for e in errors] == ["steps"]


def test_object_info_advertises_the_step_limit_this_server_enforces(limited, server):
    """The editor offers no steps the server refuses: max is --max-steps where that is below
    the declared 10000; a server with the default limit advertises its 1000."""
    options = limited.http.get("/object_info/Slow").json()["Slow"]["input"]["required"]["steps"][1]
    assert (options["min"], options["max"]) == (1, STEPS)
    everything = limited.http.get("/object_info").json()
    assert everything["Slow"]["input"]["required"]["steps"][1]["max"] == STEPS
    default = server.http.get("/object_info/Slow").json()["Slow"]["input"]["required"]["steps"]
    assert default[1]["max"] == server.config.max_steps == 1000


def test_prompt_id_at_the_limit_is_kept_and_one_character_more_refused(limited):
    at = limited.post_prompt(chain(2), prompt_id="p" * 200)
    assert at.status_code == 200 and at.json()["prompt_id"] == "p" * 200
    assert limited.post_prompt(chain(2), prompt_id="q" * 201).status_code == 400


def test_prompt_node_count_at_the_limit_is_queued_and_one_more_is_413(limited):
    def prompt_of(count: int) -> dict:
        prompt = chain(3, prefix="nodes")  # 3 nodes, and unused Numbers up to `count`
        for i in range(count - len(prompt)):
            prompt[f"extra{i}"] = {"class_type": "Number", "inputs": {"value": i}}
        assert len(prompt) == count
        return prompt

    drain(limited)  # the queue limit (3) must not answer first: the worker may still be starting
    assert limited.post_prompt(prompt_of(NODES)).status_code == 200
    over = limited.post_prompt(prompt_of(NODES + 1))
    assert over.status_code == 413 and over.json()["error"]["type"] == "too_many_nodes"
    assert over.json()["error"]["message"].endswith(
        f"at most {NODES:,} (the server's --max-prompt-nodes)")  # fmt: skip


def test_string_at_the_limit_is_queued_and_one_character_more_refused(limited):
    drain(limited)
    assert limited.post_prompt(chain(4, prefix="p" * CHARS)).status_code == 200
    over = limited.post_prompt(chain(4, prefix="p" * (CHARS + 1)))
    assert over.status_code == 400
    [error] = over.json()["node_errors"]["9"]["errors"]
    assert error["type"] == "custom_validation_failed" and "'prefix'" in error["message"]
    assert f"the limit is {CHARS} (the server's --max-string-chars)" in error["message"]
    assert error["extra_info"]["latentgraph_type"] == "value_too_long"
    assert over.json()["node_errors"]["9"]["dependent_outputs"] == ["9"]  # as other errors do


def test_a_prompt_shorter_than_the_string_limit_is_not_walked_for_long_strings(
    limited, monkeypatch
):
    """A JSON text holds no string longer than itself: a prompt whose text is within the limit
    skips the walk (a tenth of a 200-node prompt's check); one longer is still walked."""
    from latentgraph.server import prompts

    walked: list[int] = []
    monkeypatch.setattr(prompts, "_holds_longer",
                        lambda prompt, limit: walked.append(len(prompt)))  # fmt: skip
    monkeypatch.setattr(limited.app.state.lg.config, "max_string_chars", 10_000)
    drain(limited)
    assert limited.post_prompt(chain(4)).status_code == 200
    assert walked == []
    long = chain(4, prefix="p" * 10_001)
    assert limited.post_prompt(long).status_code == 200  # (the stand-in walk refuses nothing)
    assert walked == [len(long)]


def test_extra_data_at_the_limit_is_queued_and_one_byte_more_is_413(limited):
    def extra_of(size: int) -> dict:
        extra = {"pad": "x" * (size - len(json.dumps({"pad": ""})))}
        assert len(json.dumps(extra)) == size
        return extra

    drain(limited)
    assert limited.post_prompt(chain(5), extra_data=extra_of(EXTRA)).status_code == 200
    over = limited.post_prompt(chain(5), extra_data=extra_of(EXTRA + 1))
    assert over.status_code == 413 and over.json()["error"]["type"] == "too_large"
    assert over.json()["error"]["message"] == \
        f"extra_data is larger than {EXTRA:,} bytes (the server's --max-extra-data-mb)"  # fmt: skip


# Last: it fills the queue.
def test_queue_holds_its_limit_and_refuses_one_more(limited):
    """The running prompt counts: QUEUE prompts are taken, the next one gets 429."""
    drain(limited)
    busy = chain(1, slow_steps=STEPS, delay=2.0, prefix="busy")  # ~10 s unless interrupted
    ids = []
    for i in range(QUEUE):
        r = limited.post_prompt({**busy, "1": {**busy["1"], "inputs": {"value": 10 + i}}})
        assert r.status_code == 200, (i, r.text)
        ids.append(r.json()["prompt_id"])
    over = limited.post_prompt(chain(99))
    assert over.status_code == 429 and over.json()["error"]["type"] == "queue_full"
    assert over.json()["error"]["message"] == \
        f"the queue is full ({QUEUE} prompts, the server's --max-queue)"  # fmt: skip
    limited.http.post("/queue", json={"delete": ids})
    limited.http.post("/interrupt")
    drain(limited)


def test_a_queue_of_one_is_said_in_the_singular(tmp_path, toy_workers):
    """`--max-queue 1` refused with "the queue is full (1 prompts, ...)"; the refusal is
    logged as each refused prompt is (it left only uvicorn's access line)."""
    from latentgraph.server.config import ServerConfig

    config = ServerConfig(data_dir=tmp_path, port=free_port(), disk_cache=False,
                          load_nodes=False, editor=False, max_queue=1)  # fmt: skip
    running = RunningServer(config, toy_workers).start()
    try:
        first = running.post_prompt(chain(1, slow_steps=STEPS, delay=2.0, prefix="busy"))
        assert first.status_code == 200, first.text
        over = running.post_prompt(chain(99))
        assert over.status_code == 429
        assert over.json()["error"]["message"] == (
            "the queue is full (1 prompt, the server's --max-queue)")  # fmt: skip
        # logged as every refused prompt is (docs/comfy-compat.md), not by its access line only
        lines = [e["m"] for e in running.http.get("/internal/logs/raw").json()["entries"]]
        assert ("WARNING latentgraph.server: prompt refused (queue_full): the queue is full "
                "(1 prompt, the server's --max-queue)\n") in lines, lines  # fmt: skip
    finally:
        running.http.post("/queue", json={"clear": True})
        running.http.post("/interrupt")
        running.stop()
