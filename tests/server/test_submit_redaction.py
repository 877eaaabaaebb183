"""`latentgraph submit` hides the server's token in the errors it prints by the rule the
server's log uses: every spelling of it, percent-encoded too."""

from __future__ import annotations

import pytest

from latentgraph.server import submit as remote

TOKEN = "s3cr3t tok/én"


def submitted(tmp_path, monkeypatch, capsys, connect, server: str, **options) -> tuple[int, str]:
    """`submit` of a small workflow to `server`, its websocket opened by `connect` (which
    fails): (exit code, what it printed on stderr)."""
    workflow = tmp_path / "w.yaml"
    workflow.write_text("nodes: {}\n")
    monkeypatch.setattr("websockets.sync.client.connect", connect)
    code = remote.submit(workflow, server, **options)
    return code, capsys.readouterr().err


@pytest.mark.parametrize("spelling", [
    TOKEN,
    "s3cr3t%20tok%2F%C3%A9n",  # as a URL's path carries it
    "s3cr3t+tok%2f%c3%a9n",  # a query's spelling, lower-case hex
])  # fmt: skip
def test_an_unreachable_servers_error_never_shows_the_token(tmp_path, monkeypatch, capsys,
                                                           spelling):  # fmt: skip
    """The error text quoted the token percent-encoded (`_hidden` replaced the raw token
    only), where the server's log redacted it."""

    def refuse(url, **kwargs):
        raise OSError(f"cannot open ws://127.0.0.1:9/{spelling}/ws: connection refused")

    code, err = submitted(tmp_path, monkeypatch, capsys, refuse, "http://127.0.0.1:9",
                          auth_token=TOKEN)  # fmt: skip
    assert code == remote.EXIT_UNREACHABLE
    assert err == ("latentgraph: error: cannot reach the server at http://127.0.0.1:9: cannot open "
                   "ws://127.0.0.1:9/<redacted>/ws: connection refused\n")  # fmt: skip


def test_the_token_is_hidden_wherever_the_server_url_holds_it(tmp_path, monkeypatch, capsys):
    """`--server 'http://h/?token=abc&x=TOKEN#TOKEN' --auth-token TOKEN` printed TOKEN twice:
    only the `token` parameter was hidden, not the token in use where else the URL holds it."""

    def refuse(url, **kwargs):
        raise OSError("connection refused")

    code, err = submitted(tmp_path, monkeypatch, capsys, refuse,
                          "http://127.0.0.1:9/?token=abc&x=s3cr3t%20tok%2F%C3%A9n#" + TOKEN,
                          auth_token=TOKEN)  # fmt: skip
    assert code == remote.EXIT_UNREACHABLE
    assert err == ("latentgraph: error: cannot reach the server at http://127.0.0.1:9/?token=<redacted>&"
                   "x=<redacted>#<redacted>: connection refused\n")  # fmt: skip


def test_a_refused_handshake_is_a_usage_error_that_hides_the_urls_credentials(tmp_path,
                                                                              monkeypatch,
                                                                              capsys):  # fmt: skip
    """`--server http://u:PASSWORD@HOST/` refused at the websocket handshake (HTTP 403), the
    server not answering the HTTP request asked after it: it printed 'cannot reach the server
    at http://u:PASSWORD@...' with exit 3. A refusal is a usage error (2) as the HTTP one is,
    its line prefixed as the other errors, the credentials hidden in every line."""
    from websockets.datastructures import Headers
    from websockets.exceptions import InvalidStatus
    from websockets.http11 import Response

    def refuse(url, **kwargs):
        assert "u:sekrit123@" in url  # the credentials are used, only never printed
        raise InvalidStatus(Response(403, "Forbidden", Headers(), b""))

    code, err = submitted(tmp_path, monkeypatch, capsys, refuse, "http://u:sekrit123@127.0.0.1:9/")
    assert code == remote.EXIT_USAGE, err
    assert err == ("latentgraph: error: the server at http://<redacted>@127.0.0.1:9/ refused "
                   "the request: HTTP 403\n")  # fmt: skip


def test_the_websocket_carries_the_token_in_a_header_not_its_address(tmp_path, monkeypatch,
                                                                     capsys):  # fmt: skip
    """`submit` opened `/ws?clientId=...&token=TOKEN`: the server's log hid it, but a reverse
    proxy's access log kept it in clear on every run. It goes as every HTTP request's does."""
    opened: list = []

    def refuse(url, **kwargs):
        opened.append((url, kwargs.get("additional_headers")))
        raise OSError("connection refused")

    submitted(tmp_path, monkeypatch, capsys, refuse, "http://127.0.0.1:9/comfy", auth_token=TOKEN)
    ((url, headers),) = opened
    assert url.startswith("ws://127.0.0.1:9/comfy/ws?clientId=") and "token" not in url
    assert headers == {"Authorization": f"Bearer {TOKEN}"}
    submitted(tmp_path, monkeypatch, capsys, refuse, "http://127.0.0.1:9")  # no token: no header
    assert opened[1][1] is None


def test_an_unreachable_servers_error_hides_the_urls_credentials(tmp_path, monkeypatch, capsys):
    """An exception quoting the URL with its user:password@ (no token in use)."""

    def unreachable(url, **kwargs):
        raise OSError(f"cannot open {url}: connection refused")

    code, err = submitted(tmp_path, monkeypatch, capsys, unreachable,
                          "http://u:sekrit123@127.0.0.1:9")  # fmt: skip
    assert code == remote.EXIT_UNREACHABLE
    assert "sekrit123" not in err and err.startswith(
        "latentgraph: error: cannot reach the server at http://<redacted>@127.0.0.1:9: "
        "cannot open ws://<redacted>@127.0.0.1:9/ws?clientId="
    ), err


def test_an_unreachable_servers_error_keeps_the_colon_after_a_hidden_token(tmp_path,
                                                                            monkeypatch, capsys):  # fmt: skip
    """The server URL, its token hidden once, was hidden again within the whole line, and the
    second pass took the `:` after `<redacted>` as part of the token's value."""

    def refuse(url, **kwargs):
        raise OSError("connection refused")

    code, err = submitted(tmp_path, monkeypatch, capsys, refuse, "http://127.0.0.1:9/?token=abc",
                          auth_token=None)  # fmt: skip
    assert code == remote.EXIT_UNREACHABLE
    assert err == ("latentgraph: error: cannot reach the server at "
                   "http://127.0.0.1:9/?token=<redacted>: connection refused\n")  # fmt: skip
