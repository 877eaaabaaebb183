"""`latentgraph submit` hides the server's token in the errors it prints by the rule the
server's log uses: every spelling of it, percent-encoded too."""

from __future__ import annotations

import pytest

from latentgraph.server import submit as remote

TOKEN = "s3cr3t tok/én"


@pytest.mark.parametrize("spelling", [
    TOKEN,
    "s3cr3t%20tok%2F%C3%A9n",  # as a URL's path carries it
    "s3cr3t+tok%2f%c3%a9n",  # a query's spelling, lower-case hex
])  # fmt: skip
def test_an_unreachable_servers_error_never_shows_the_token(tmp_path, monkeypatch, capsys,
                                                           spelling):  # fmt: skip
    """The error text quoted the token percent-encoded (`_hidden` replaced the raw token
    only), where the server's log redacted it."""
    workflow = tmp_path / "w.yaml"
    workflow.write_text("nodes: {}\n")

    def refuse(url, **kwargs):
        raise OSError(f"cannot open ws://127.0.0.1:9/{spelling}/ws: connection refused")

    monkeypatch.setattr("websockets.sync.client.connect", refuse)
    code = remote.submit(workflow, "http://127.0.0.1:9", auth_token=TOKEN)
    err = capsys.readouterr().err
    assert code == remote.EXIT_UNREACHABLE
    assert err == ("cannot reach the server at http://127.0.0.1:9: cannot open "
                   "ws://127.0.0.1:9/<redacted>/ws: connection refused\n")  # fmt: skip


def test_the_token_is_hidden_wherever_the_server_url_holds_it(tmp_path, monkeypatch, capsys):
    """`--server 'http://h/?token=abc&x=TOKEN#TOKEN' --auth-token TOKEN` printed TOKEN twice:
    only the `token` parameter was hidden, not the token in use where else the URL holds it."""
    workflow = tmp_path / "w.yaml"
    workflow.write_text("nodes: {}\n")

    def refuse(url, **kwargs):
        raise OSError("connection refused")

    monkeypatch.setattr("websockets.sync.client.connect", refuse)
    code = remote.submit(workflow, "http://127.0.0.1:9/?token=abc&x=s3cr3t%20tok%2F%C3%A9n#"
                         + TOKEN, auth_token=TOKEN)  # fmt: skip
    err = capsys.readouterr().err
    assert code == remote.EXIT_UNREACHABLE
    assert err == ("cannot reach the server at http://127.0.0.1:9/?token=<redacted>&"
                   "x=<redacted>#<redacted>: connection refused\n")  # fmt: skip
