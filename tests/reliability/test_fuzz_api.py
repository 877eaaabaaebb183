"""Schemathesis against the server's OpenAPI document: generated requests for every documented
route and method, sent to a real server. No answer may be a 5xx, and every error answer must be
JSON that parses (the editor and API clients parse every answer).

Schemathesis' own pytest plugin does not work with pytest 9 (it reads a private attribute), so
its case strategy is driven by plain hypothesis `@given` instead; the generation is the same.
"""

from __future__ import annotations

import json

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from ..server.conftest import RunningServer, free_port
from ..server.plugin.toy_nodes import register

MAX_EXAMPLES = 300  # a few seconds; spread over every operation of the document


def _schema():
    from latentgraph.server.openapi import document

    return schemathesis.openapi.from_dict(document())


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory):
    from latentgraph.graph import Registry
    from latentgraph.server.config import ServerConfig

    config = ServerConfig(data_dir=tmp_path_factory.mktemp("fuzz"), port=free_port(),
                          disk_cache=False, load_nodes=False, editor=False,
                          max_body_bytes=200_000, max_upload_bytes=100_000)  # fmt: skip
    running = RunningServer(config, register(Registry())).start()
    yield running
    running.http.post("/queue", json={"clear": True})
    running.stop()


SEEN: dict[str, int] = {}


@settings(max_examples=MAX_EXAMPLES, deadline=None,
          suppress_health_check=list(HealthCheck))  # fmt: skip
@given(case=_schema().as_strategy())
def test_api_never_5xx_and_errors_are_json(fuzz_server, case):
    response = case.call(base_url=fuzz_server.url, timeout=30)
    key = f"{case.method} {case.path}"
    SEEN[key] = SEEN.get(key, 0) + 1
    assert response.status_code < 500, (key, case.formatted_path, response.text[:500])
    if response.status_code >= 400:
        ctype = response.headers.get("content-type") or [""]
        ctype = ctype[0] if isinstance(ctype, list) else ctype
        assert ctype.startswith("application/json"), (key, ctype)
        assert "error" in json.loads(response.text), key


def test_fuzzer_reached_every_operation(fuzz_server):
    """Runs after the fuzz test (file order): it must have exercised most operations."""
    if not SEEN:
        pytest.skip("run together with the fuzz test")
    operations = {f"{m.upper()} {p}" for p, ops in _schema().raw_schema["paths"].items()
                  for m in ops}  # fmt: skip
    assert len(set(SEEN) & operations) >= 0.8 * len(operations), sorted(operations - set(SEEN))
    assert fuzz_server.http.get("/queue").status_code == 200
