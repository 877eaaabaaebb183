"""The editor's first screen: a first visit (no `Comfy.TutorialCompleted` in the user's
settings, or a browser without the `latentgraph_visited_PORT` cookie) is sent to `?template=default`, ComfyUI's classic default graph on the built-in
tiny model, instead of the frontend's built-in Z-Image graph that latentgraph cannot run; a
user who has opened the editor before gets the page as it is. The routes read only the
config and the registry, so they are mounted alone (test_browser_classic.py opens the page)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from latentgraph.graph.editor_layout import fitted_view
from latentgraph.server import api_info, api_templates, api_user, editor
from latentgraph.server.config import ServerConfig
from latentgraph.server.errors import exception_handlers

from ..comfy.test_comfy_editor_document import rectangles_overlap
from ..editor_page import LOW_QUALITY_SCALE, WINDOW

CLASSIC_TYPES = {"CheckpointLoaderSimple", "CLIPTextEncode", "EmptyLatentImage", "KSampler",
                 "VAEDecode", "SaveImage"}  # fmt: skip


def fitted_scale(workflow: dict, canvas: tuple[int, int]) -> float:
    """The scale the editor opens a template at (its `fitView`), the rule a written document's
    view follows too."""
    return fitted_view(workflow["nodes"], canvas)["scale"]


@pytest.fixture(scope="module")
def registry():
    from latentgraph.wiring import node_registry

    return node_registry()


@pytest.fixture
def config(tmp_path) -> ServerConfig:
    config = ServerConfig(data_dir=tmp_path / "data")
    config.ensure_dirs()
    return config


@pytest.fixture
def client(config, registry):
    if editor.static_dir() is None:
        pytest.skip(f"needs the editor ({editor.PINNED})")
    app = Starlette(routes=[*api_user.routes, *api_info.routes, *api_templates.static_routes,
                            *editor.routes(True)],
                    exception_handlers=exception_handlers)  # fmt: skip
    app.state.lg = SimpleNamespace(config=config, registry=registry)
    with TestClient(app, base_url="http://127.0.0.1:8188", raise_server_exceptions=False) as c:
        yield c


def test_a_first_visit_opens_the_classic_default_graph(client):
    first = client.get("/", follow_redirects=False)
    assert first.status_code == 307
    assert first.headers["location"] == "?template=default"
    page = client.get("/")  # followed: the editor's page, which loads the template named
    assert page.status_code == 200 and "<html" in page.text.lower()
    assert str(page.url).endswith("/?template=default")
    # the address's token (its cookie is set on the answer) does not keep the first visit
    # from the classic graph; the redirect leaves it out of the address
    client.cookies.clear()
    with_token = client.get("/?token=abc", follow_redirects=False)
    assert with_token.status_code == 307 and with_token.headers["location"] == "?template=default"


VISITED = "latentgraph_visited_8188=1; HttpOnly; Max-Age=34560000; Path=/; SameSite=lax"


def test_a_returning_user_gets_the_page_and_what_they_had_open(client):
    assert client.get("/", follow_redirects=False).status_code == 307  # this browser's first
    assert client.post("/settings", json={"Comfy.TutorialCompleted": True}).status_code == 200
    page = client.get("/", follow_redirects=False)
    assert page.status_code == 200 and "<html" in page.text.lower()
    # their setting wins even when false (the editor then shows its templates, as ComfyUI's)
    client.post("/settings", json={"Comfy.TutorialCompleted": False})
    assert client.get("/", follow_redirects=False).status_code == 200


def test_each_new_browser_is_sent_to_the_classic_graph_once(client):
    """`Comfy.TutorialCompleted` is in the data dir's settings, one for every browser: a
    second browser (a colleague's, a private window, cleared site data) is sent to the
    classic graph too, by the cookie the redirect sets (per port, as the token's)."""
    assert client.post("/settings", json={"Comfy.TutorialCompleted": True}).status_code == 200
    for _ in range(2):  # two browsers
        client.cookies.clear()
        first = client.get("/", follow_redirects=False)
        assert first.status_code == 307 and first.headers["location"] == "?template=default"
        assert first.headers.get_list("set-cookie") == [VISITED]
        again = client.get("/", follow_redirects=False)
        assert again.status_code == 200 and "set-cookie" not in again.headers
    # the cookie of a server on another port of this host is not this one's
    client.cookies.clear()
    other = client.get("/", headers={"cookie": "latentgraph_visited_8189=1"},
                       follow_redirects=False)  # fmt: skip
    assert other.status_code == 307


def test_an_address_with_its_own_request_is_not_redirected(client):
    for query in ("template=txt2img", "share=abc"):
        r = client.get(f"/?{query}", follow_redirects=False)
        assert r.status_code == 200, query


def test_the_default_template_is_comfyuis_classic_graph_with_types_we_serve(client, registry):
    from latentgraph.graph.comfy_editor import graph_from_editor
    from latentgraph.graph.object_info import object_info

    [category] = client.get("/templates/index.json").json()
    assert category["templates"][0]["name"] == "default"
    assert category["templates"][0]["title"] == "Image Generation"
    workflow = client.get("/templates/default.json").json()
    types = {n["type"] for n in workflow["nodes"]}
    assert types == CLASSIC_TYPES and types <= set(object_info(registry))
    graph = graph_from_editor(workflow, registry)
    assert graph["4"].inputs["ckpt_name"] == "builtin:tiny-sd"
    assert graph["5"].inputs == {"width": 512, "height": 512, "batch_size": 1}
    assert graph["9"].inputs["filename_prefix"] == "ComfyUI"
    assert client.get("/templates/default-1.png").headers["content-type"] == "image/png"


def test_the_default_template_opens_readable_in_a_laptops_window_without_overlaps(client):
    """The editor fits a template into its window on opening. The classic graph was laid out
    in five columns by depth, 1,840 px across: a 1400x900 window opened it at 56%, below the
    low-quality threshold, every node an untitled grey box. It is laid out as ComfyUI's
    default graph is (the encoders and the empty latent stacked, VAE Decode over Save Image)."""
    workflow = client.get("/templates/default.json").json()
    assert fitted_scale(workflow, WINDOW) >= LOW_QUALITY_SCALE
    nodes = workflow["nodes"]
    for k, a in enumerate(nodes):
        for b in nodes[k + 1 :]:
            assert not rectangles_overlap(a, b), (a["type"], a["pos"], b["type"], b["pos"])


def test_every_example_template_opens_readable_in_a_laptops_window_without_overlaps(client):
    """The example workflows laid out one column per depth were 5 to 8 columns across: the
    editor, fitting each into a 1400x900 window, opened them at 27-56%, untitled grey boxes.
    Flowed into the columns that window holds readable, each fits at 60% or more
    (test_browser_classic.py opens them in the editor)."""
    [category] = client.get("/templates/index.json").json()
    names = [template["name"] for template in category["templates"]][1:]  # after the classic
    assert "scheduler_comparison" in names and "hires_fix" in names
    for name in names:
        workflow = client.get(f"/templates/{name}.json").json()
        assert fitted_scale(workflow, WINDOW) >= LOW_QUALITY_SCALE, name
        nodes = workflow["nodes"]
        for k, a in enumerate(nodes):
            for b in nodes[k + 1 :]:
                assert not rectangles_overlap(a, b), (name, a["pos"], b["pos"])


def test_the_default_templates_seed_is_randomized_as_comfyuis_examples_keep_theirs(client):
    """ComfyUI's default graph (and the editor, for a new node) randomizes the KSampler's seed
    after each run; ours said `fixed`, so a second Run made nothing new. An example keeps its
    seed, as `latentgraph convert --to editor` writes it."""
    workflow = client.get("/templates/default.json").json()
    [sampler] = [n for n in workflow["nodes"] if n["type"] == "KSampler"]
    assert sampler["widgets_values"][:3] == [156680208700286, "randomize", 20]  # ComfyUI's
    example = client.get("/templates/txt2img.json").json()  # workflows/txt2img.yaml
    controls = [v for n in example["nodes"] for v in n["widgets_values"]
                if v in ("fixed", "randomize")]  # fmt: skip
    assert controls and set(controls) == {"fixed"}


def test_the_default_template_needs_no_examples_folder(config, client):
    config.templates_dir = None  # an installed wheel has no workflows/ folder
    [category] = client.get("/templates/index.json").json()
    assert [t["name"] for t in category["templates"]] == ["default"]
    assert client.get("/templates/default.json").status_code == 200
