"""Bad input gets a 4xx JSON answer, and the server keeps serving."""

from __future__ import annotations

import io
import urllib.parse

import pytest

from .conftest import chain


def assert_json_error(r, status: int, type_: str | None = None) -> dict:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    if type_ is not None:
        assert body["error"]["type"] == type_, body
    return body


@pytest.fixture(autouse=True)
def still_serving(server):
    yield
    assert server.http.get("/api/system_stats").status_code == 200


def test_malformed_and_missing_prompt(server):
    assert_json_error(server.http.post("/prompt", content=b"{not json"), 400, "invalid_json")
    assert_json_error(server.http.post("/prompt", content=b""), 400, "invalid_json")
    assert_json_error(server.http.post("/prompt", json=[1, 2]), 400, "invalid_prompt")
    assert_json_error(server.http.post("/prompt", json={"client_id": "x"}), 400, "no_prompt")
    assert_json_error(
        server.http.post("/prompt", json={"prompt": {"1": "x"}}), 400, "invalid_prompt"
    )
    assert_json_error(server.http.post("/prompt", json={"prompt": {"1": {"inputs": {}}}}), 400,
                      "invalid_prompt")  # fmt: skip


def test_every_refusal_of_post_prompt_has_comfyuis_body(server):
    """ComfyUI's clients read `node_errors` beside `error` on a refused prompt (comfyapi's
    `result.get('node_errors', result['error'])`, strict parsers `result["node_errors"]`): the
    refusals made before the prompt is checked had no `node_errors`."""
    for r in (server.http.post("/prompt", content=b"{not json"),
              server.http.post("/prompt", json=[1, 2]),
              server.post_prompt(chain(1), extra_data=[1]),
              server.post_prompt(chain(1), client_id=7),
              server.post_prompt(chain(1), prompt_id="a/b"),
              server.post_prompt(chain(1), number="first")):  # fmt: skip
        body = assert_json_error(r, 400)
        assert set(body) == {"error", "node_errors"} and body["node_errors"] == {}, body
        assert set(body["error"]) == {"type", "message", "details", "extra_info"}, body


def test_unknown_class(server):
    r = server.post_prompt({"1": {"class_type": "NoSuchNode", "inputs": {}}})
    body = assert_json_error(r, 400, "missing_node_type")  # ComfyUI's type, the editor's too
    assert "NoSuchNode" in body["error"]["message"]
    assert body["error"]["extra_info"] == {"node_id": "1", "class_type": "NoSuchNode",
                                           "node_title": "NoSuchNode"}  # fmt: skip


def test_no_outputs(server):
    r = server.post_prompt({"1": {"class_type": "Number", "inputs": {"value": 1}}})
    assert_json_error(r, 400, "prompt_no_outputs")


@pytest.mark.parametrize(
    ("value", "error_type"),
    [("seven", "invalid_input_type"), (5000, "value_bigger_than_max"),
     (-5000, "value_smaller_than_min")],
)  # fmt: skip
def test_wrong_literal_gives_node_errors(server, value, error_type):
    prompt = chain(1)
    prompt["1"]["inputs"]["value"] = value
    body = assert_json_error(server.post_prompt(prompt), 400, "prompt_outputs_failed_validation")
    entry = body["node_errors"]["1"]
    assert entry["class_type"] == "Number"
    assert entry["dependent_outputs"] == ["9"]
    err = entry["errors"][0]
    assert err["type"] == error_type
    assert err["extra_info"]["input_name"] == "value"
    assert err["extra_info"]["received_value"] == value


@pytest.mark.parametrize("sent", ["nan", "inf", "-inf", "1e999", "1" + "0" * 400])
def test_a_float_converting_to_nan_or_infinity_is_a_400_with_the_value_sent(server, sent):
    """Not a 500: the body holds the value from the prompt, as ComfyUI's does, not the NaN or
    infinity it converts to (which JSON cannot carry)."""
    prompt = chain(1, slow_steps=1)
    prompt["3"]["inputs"]["delay"] = sent
    body = assert_json_error(server.post_prompt(prompt), 400, "prompt_outputs_failed_validation")
    [err] = body["node_errors"]["3"]["errors"]
    assert err["type"] == "invalid_input_type"
    class_type = prompt["3"]["class_type"]
    declared = server.http.get(f"/object_info/{class_type}").json()[class_type]["input"]
    assert err["extra_info"] == {"input_name": "delay",
                                 "input_config": declared["required"]["delay"],
                                 "received_value": sent,
                                 "latentgraph_type": "invalid_input_type"}  # fmt: skip


def test_an_unknown_class_is_worded_as_latentgraph_validate_words_it(server):
    r = server.post_prompt({**chain(1), "5": {"class_type": "SaveImageWebsocket", "inputs": {}}})
    body = assert_json_error(r, 400, "missing_node_type")
    [err] = body["node_errors"]["5"]["errors"]
    assert err["message"].startswith("unknown node type 'SaveImageWebsocket': a ComfyUI core or "
                                     "custom node latentgraph does not have")  # fmt: skip


def test_missing_input_and_bad_link(server):
    prompt = chain(1)
    del prompt["2"]["inputs"]["b"]
    prompt["10"] = {"class_type": "Show", "inputs": {"x": ["77", 0], "prefix": "p"}}
    body = assert_json_error(server.post_prompt(prompt), 400, "prompt_outputs_failed_validation")
    assert body["node_errors"]["2"]["errors"][0]["type"] == "required_input_missing"
    assert body["node_errors"]["2"]["dependent_outputs"] == ["9"]
    assert body["node_errors"]["10"]["errors"][0]["type"] == "bad_linked_input"


def test_unknown_inputs_and_meta_are_ignored(server):
    prompt = chain(2, prefix="extra")
    prompt["1"]["inputs"]["seed_control"] = "randomize"
    prompt["1"]["_meta"] = {"title": "anything"}
    assert server.post_prompt(prompt).status_code == 200


def test_huge_body(server):
    big = b'{"prompt": "' + b"x" * 3_000_000 + b'"}'
    assert_json_error(server.http.post("/prompt", content=big), 413, "too_large")


def test_bad_query_parameters(server):
    assert_json_error(server.http.get("/history?max_items=abc"), 400)
    assert_json_error(server.http.get("/jobs?status=bogus"), 400)
    assert_json_error(server.http.get("/jobs/none-such"), 404, "not_found")
    assert server.http.get("/history/none-such").json() == {}
    assert_json_error(server.http.get("/api/no/such/route"), 404, "not_found")
    assert_json_error(server.http.delete("/prompt"), 405)


@pytest.mark.parametrize(
    "params",
    [
        {"filename": "../server.sqlite3"},
        {"filename": "x.png", "subfolder": "../.."},
        {"filename": "/etc/passwd"},
        {"filename": "..\\..\\server.sqlite3"},
        {"filename": "x.png", "type": "secret"},
        {"filename": "a\x00b"},
    ],
)
def test_view_traversal(server, params):
    assert_json_error(server.http.get("/view", params=params), 400)


def test_view_missing_file(server):
    assert_json_error(server.http.get("/view", params={"filename": "nope.png"}), 404)


def _png(color=(10, 20, 30), size=(4, 4)) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, format="PNG")
    return buf.getvalue()


def test_upload_renames_on_clash_and_view_returns_it(server):
    files = {"image": ("pic.png", _png((1, 2, 3)), "image/png")}
    first = server.http.post("/upload/image", files=files)
    assert first.status_code == 200 and first.json() == {"name": "pic.png", "subfolder": "",
                                                         "type": "input"}  # fmt: skip
    same = server.http.post("/upload/image", files=files).json()
    assert same["name"] == "pic.png"  # identical content: same file
    other = server.http.post("/api/upload/image",
                             files={"image": ("pic.png", _png((9, 9, 9)), "image/png")}).json()  # fmt: skip
    assert other["name"] == "pic (1).png"
    sub = server.http.post("/upload/image", files={"image": ("s.png", _png(), "image/png")},
                           data={"subfolder": "masks", "overwrite": "true"}).json()  # fmt: skip
    assert sub == {"name": "s.png", "subfolder": "masks", "type": "input"}
    back = server.http.get("/view", params={"filename": "pic (1).png", "type": "input"})
    assert back.content == _png((9, 9, 9))
    assert (server.config.input_dir / "masks" / "s.png").is_file()


@pytest.mark.parametrize(
    ("name", "data"),
    [("../evil.png", {}), ("ok.png", {"subfolder": "../../outside"}),
     ("ok.png", {"subfolder": "/tmp"}), ("ok.png", {"type": "nowhere"})],
)  # fmt: skip
def test_upload_traversal(server, name, data):
    r = server.http.post("/upload/image", files={"image": (name, _png(), "image/png")}, data=data)
    assert_json_error(r, 400)
    assert not (server.config.data_dir.parent / "outside").exists()


def test_upload_not_an_image_or_too_big(server):
    r = server.http.post("/upload/image", files={"image": ("x.png", b"not an image", "image/png")})
    assert_json_error(r, 400, "invalid_image")
    lying = b"\x89PNG\r\n\x1a\n" + b"\x00" * 100
    assert_json_error(server.http.post("/upload/image", files={"image": ("y.png", lying)}), 400)
    big = server.http.post("/upload/image", files={"image": ("b.png", b"\x00" * 600_000)})
    assert_json_error(big, 413, "too_large")
    assert_json_error(server.http.post("/upload/image", data={"type": "input"}), 400)
    assert_json_error(server.http.post("/upload/image", content=b"garbage",
                                       headers={"content-type": "multipart/form-data; boundary=zz"}),
                      400)  # fmt: skip
    assert not (server.config.input_dir / "x.png").exists()


@pytest.mark.parametrize(
    "path",
    ["/userdata/..%2Fserver.sqlite3", "/userdata/..%2F..%2Fetc%2Fpasswd",
     "/api/userdata/workflows%2F..%2F..%2F..%2Fx.json", "/userdata/%2Fetc%2Fpasswd"],
)  # fmt: skip
def test_userdata_traversal(server, path):
    assert_json_error(server.http.get(path), 400)
    assert_json_error(server.http.post(path, content=b"{}"), 400)
    assert_json_error(server.http.delete(path), 400)
    assert_json_error(server.http.get("/userdata", params={"dir": "../.."}), 400)


@pytest.mark.parametrize("under", ["", "/api"])
@pytest.mark.parametrize("char, code", [("%0A", "U+000A"), ("%0D", "U+000D"), ("%09", "U+0009")])
def test_a_userdata_name_with_a_line_break_gets_the_400_naming_it(server, under, char, code):
    """/userdata/workflows%2Fa%0Ab.json answered a bare 404 "Not Found": Starlette's `path`
    parameter (and the /api mount's) stopped at the newline, so no route matched, where a tab
    got the 400 naming the character. Every route now matches it and its handler judges it."""
    name = f"workflows%2Fa{char}b.json"
    for r in (server.http.post(f"{under}/userdata/{name}", content=b"{}"),
              server.http.post(f"{under}/userdata/workflows%2Fx.json/move/{name}")):  # fmt: skip
        body = assert_json_error(r, 400, "invalid_path")
        assert f"contains a control character, {code}" in body["error"]["message"]
    missing = assert_json_error(server.http.get(f"{under}/userdata/{name}"), 404, "not_found")
    assert missing["error"]["message"].startswith("no user file 'workflows/a")


@pytest.mark.parametrize(
    ("prompt_id", "says"),
    [("slash/id-1", "contains '/'"), ("x" * 300, "300 characters long; at most 200"),
     ("line\nbreak", "'line\\nbreak' contains U+000A, a control character"),
     ("tab\tid", "contains U+0009, a control character"),
     ("nul\x00id", "contains U+0000, a control character"),
     ("del\x7f", "contains U+007F, a control character"),
     ("next-line\x85", "contains U+0085, a control character"),
     (".", "is a dot segment"), ("..", "is a dot segment"),
     pytest.param(10**300, "301 characters long; at most 200", id="a-301-digit-number"),
     (True, "must be a string or a number, got true"),
     (False, "must be a string or a number, got false"),
     (["x"], "must be a string or a number, got a list"),
     ({"id": 7}, "must be a string or a number, got an object")],
)  # fmt: skip
def test_a_prompt_id_history_cannot_name_is_refused_saying_why(server, prompt_id, says):
    """A prompt_id that cannot come back as one URL path segment is refused: one with a newline
    ran, /history/{id} named it, and /api/jobs/{id} answered 404 for good (the /api mount
    matches no newline)."""
    r = server.post_prompt(chain(1), prompt_id=prompt_id)
    body = assert_json_error(r, 400, "invalid_prompt")
    assert says in body["error"]["message"]
    assert "\n" not in body["error"]["message"]


@pytest.mark.parametrize("prompt_id", ["a b?c#d%e\\f&g", "ünïcode-€", "...", ".hidden"])
def test_a_prompt_id_with_any_other_text_is_named_by_api_jobs(server, prompt_id):
    """Every rule above refuses only what a path segment cannot carry: these are taken, and
    /api/jobs/{id} (quoted as a path segment) names them."""
    r = server.post_prompt(chain(1), prompt_id=prompt_id)
    assert r.status_code == 200, r.text
    segment = urllib.parse.quote(prompt_id, safe="")
    assert server.http.get(f"/api/jobs/{segment}").json()["id"] == prompt_id
    assert server.http.get(f"/jobs/{segment}").json()["id"] == prompt_id


@pytest.mark.parametrize(("sent", "taken"), [(7351, "7351"), (0, "0"), (-12, "-12"),
                                             (73.5, "73.5"), (7352.0, "7352.0")])  # fmt: skip
def test_a_numeric_prompt_id_is_taken_as_its_text(server, sent, taken):
    """ComfyUI queues `str(prompt_id)`: a client sending its integer job ids worked there and
    got 400 "prompt_id must be a string" here. /history/{id} and /api/jobs/{id} name it."""
    r = server.post_prompt(chain(1), prompt_id=sent)
    assert r.status_code == 200, r.text
    assert r.json()["prompt_id"] == taken
    assert server.http.get(f"/api/jobs/{taken}").json()["id"] == taken


@pytest.mark.parametrize("sent", [None, ""])
def test_a_null_or_empty_prompt_id_gets_a_new_one(server, sent):
    """JSON null is no id, as an absent one (ComfyUI would queue the text "None")."""
    first, second = (server.post_prompt(chain(1), prompt_id=sent) for _ in range(2))
    ids = [r.json()["prompt_id"] for r in (first, second)]
    assert ids[0] != ids[1] and all(len(i) == 36 for i in ids)
