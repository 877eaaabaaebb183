"""Real symlinks in input/ and output/: a sibling folder sharing the prefix (`input_evil/`) and
/etc are outside, whatever a string comparison of the paths would say. Also: the final
`executing` message waits for the history entry even when writing it is slow."""

from __future__ import annotations

import io
import threading
import time

import pytest

from .conftest import chain


def _png(color=(10, 20, 30)) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (4, 4), color).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def links(server):
    """Each of input/ and output/ gets: evil -> ../<kind>_evil, etc -> /etc,
    leak.png -> ../<kind>_evil/secret.png, and a good link alias.png -> real.png inside."""
    made = {}
    for kind in ("input", "output"):
        folder = server.config.dir_for(kind)
        folder.mkdir(parents=True, exist_ok=True)
        evil = folder.parent / f"{kind}_evil"  # same prefix as the folder's own name
        evil.mkdir(exist_ok=True)
        (evil / "secret.png").write_bytes(_png((200, 0, 0)))
        (folder / "real.png").write_bytes(_png((0, 200, 0)))
        for name, target in (("evil", evil), ("etc", "/etc"), ("leak.png", evil / "secret.png"),
                             ("alias.png", folder / "real.png")):  # fmt: skip
            link = folder / name
            if not link.is_symlink():
                link.symlink_to(target)
        made[kind] = evil
    return made


@pytest.mark.parametrize("kind", ["input", "output"])
@pytest.mark.parametrize(
    "params",
    [{"subfolder": "evil", "filename": "secret.png"}, {"filename": "leak.png"},
     {"subfolder": "etc", "filename": "hostname"}, {"subfolder": "etc", "filename": "passwd"}],
)  # fmt: skip
def test_view_refuses_symlinks_that_leave_the_folder(server, links, kind, params):
    r = server.http.get("/view", params={**params, "type": kind})
    assert r.status_code == 400, (r.status_code, r.content[:80])
    assert r.json()["error"]["type"] == "invalid_path"


@pytest.mark.parametrize("kind", ["input", "output"])
def test_view_follows_a_symlink_that_stays_inside(server, links, kind):
    r = server.http.get("/view", params={"filename": "alias.png", "type": kind})
    assert r.status_code == 200 and r.content == _png((0, 200, 0))


@pytest.mark.parametrize(
    "name, data",
    [("new.png", {"subfolder": "evil"}), ("new.png", {"subfolder": "etc"}),
     ("leak.png", {"overwrite": "true"}), ("secret.png", {"subfolder": "evil", "overwrite": "1"})],
)  # fmt: skip
def test_upload_refuses_symlinks_that_leave_the_folder(server, links, name, data):
    before = sorted(p.name for p in links["input"].iterdir())
    secret = (links["input"] / "secret.png").read_bytes()
    r = server.http.post("/upload/image", files={"image": (name, _png((1, 1, 1)), "image/png")},
                         data=data)  # fmt: skip
    assert r.status_code == 400, r.text
    assert sorted(p.name for p in links["input"].iterdir()) == before
    assert (links["input"] / "secret.png").read_bytes() == secret


def test_final_executing_waits_for_a_slow_history_write(server, ws, monkeypatch):
    """A client that asks /history/{id} on the final `executing` finds the entry, even when
    the store takes its time writing it."""
    store = server.app.state.lg.store
    real_finish = store.finish
    writing = threading.Event()

    def slow_finish(*args, **kwargs):
        writing.set()
        time.sleep(0.5)
        return real_finish(*args, **kwargs)

    monkeypatch.setattr(store, "finish", slow_finish)
    client = ws()
    pid = server.post_prompt(chain(4, prefix="slow-history"), client.client_id).json()["prompt_id"]
    client.until_done(pid)
    assert writing.is_set()
    entry = server.http.get(f"/history/{pid}").json()
    assert pid in entry and entry[pid]["status"]["completed"] is True
