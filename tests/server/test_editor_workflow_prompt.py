"""An editor workflow POSTed to /prompt, which takes the API format, as the prompt or as the
whole body (as an API prompt sent without its {"prompt": ...}): refused in ComfyUI's shape, the
message saying what was sent and where it goes, however large the body."""

from __future__ import annotations

import pytest

from latentgraph.server import prompt_body

from .conftest import chain

SAID = ('Cannot execute because node \'{}\' has no class_type: this is an editor workflow (a '
        '"nodes" list); POST /prompt takes the API format (the editor\'s Export (API)), POST '
        "/latentgraph/run takes this one")  # fmt: skip


def editor_workflow(newer: bool, note: str = "") -> dict:
    """A two-node editor workflow, as the editor saves it (`newer`: as frontends since 1.x
    do, its `id` and `revision` first)."""
    nodes = [{"id": 1, "type": "Number", "pos": [0, 0], "size": [200, 60], "flags": {},
              "order": 0, "mode": 0, "outputs": [{"name": "INT", "type": "INT", "links": [1]}],
              "widgets_values": [3]},
             {"id": 2, "type": "Note", "pos": [0, 100], "size": [200, 60], "flags": {},
              "order": 1, "mode": 0, "widgets_values": [note]}]  # fmt: skip
    first = {"id": "9e1e4cde-2f6c-4a83-9d2e-6d7f3c1b2a10", "revision": 0} if newer else {}
    return {**first, "last_node_id": 2, "last_link_id": 1, "nodes": nodes, "links": [],
            "groups": [], "config": {}, "extra": {}, "version": 0.4}  # fmt: skip


@pytest.mark.parametrize("newer", [False, True], ids=["last_node_id-first", "id-first"])
@pytest.mark.parametrize("size", ["small", "walked"])
def test_an_editor_workflow_is_refused_saying_so(server, newer, size):
    """It said "Cannot execute because node 'last_node_id' has no class_type", true but no
    help: the answer keeps ComfyUI's type and shape and says it is an editor workflow, that
    POST /prompt takes the editor's Export (API) and that POST /latentgraph/run takes this.
    A body over `WHOLE_PARSE_CHARS` (a long note) is read node by node, and says the same."""
    note = "x" * (prompt_body.WHOLE_PARSE_CHARS if size == "walked" else 10)
    r = server.post_prompt(editor_workflow(newer, note))
    assert r.status_code == 400, r.text
    first = "id" if newer else "last_node_id"
    assert r.json() == {"error": {"type": "invalid_prompt", "message": SAID.format(first),
                                  "details": f"Node ID '#{first}'", "extra_info": {}},
                        "node_errors": {}}  # fmt: skip


@pytest.mark.parametrize("size", ["small", "walked"])
def test_an_api_prompt_without_a_class_type_is_refused_as_before(server, size):
    """A prompt that is no editor workflow keeps ComfyUI's words alone, naming the first
    member that is no node (a short scalar read on, when walked, to see what follows)."""
    pad = "x" * (prompt_body.WHOLE_PARSE_CHARS if size == "walked" else 10)
    prompt = {**chain(1), "count": 3, "links": [], "5": {"inputs": {"text": pad}}}
    r = server.post_prompt(prompt)
    assert r.status_code == 400, r.text
    assert r.json()["error"] == {"type": "invalid_prompt", "details": "Node ID '#count'",
                                 "message": "Cannot execute because node 'count' has no "
                                            "class_type", "extra_info": {}}  # fmt: skip


NO_PROMPT = "'prompt' must be a non-empty object of node id -> node"


@pytest.mark.parametrize("size", ["small", "walked"])
@pytest.mark.parametrize("sent", ["editor", "api", "other"])
def test_a_document_posted_as_the_whole_body_is_named(server, sent, size):
    """`curl -d @workflow.json` sends the document as the body, with no "prompt": it said
    "No prompt provided" alone. The answer keeps ComfyUI's type and shape, and the message
    says that an editor workflow is one (as inside "prompt"), or that an API prompt needs
    its {"prompt": ...}. A body read node by node (over `WHOLE_PARSE_CHARS`) says the same;
    any other body keeps ComfyUI's words alone."""
    pad = "x" * (prompt_body.WHOLE_PARSE_CHARS if size == "walked" else 10)
    body, said = {
        "editor": (editor_workflow(True, pad), SAID.split(": ", 1)[1]),
        "api": ({**chain(1), "5": {"class_type": "Number", "inputs": {"note": pad}}},
                'POST /prompt takes {"prompt": <API prompt>}; this body is the API prompt itself'),
        "other": ({"client_id": "c", "note": pad}, None),
    }[sent]  # fmt: skip
    r = server.http.post("/prompt", json=body)
    assert r.status_code == 400, r.text
    message = "No prompt provided" + (f": {said}" if said else "")
    assert r.json() == {"error": {"type": "no_prompt", "message": message,
                                  "details": NO_PROMPT, "extra_info": {}},
                        "node_errors": {}}  # fmt: skip
