"""The editor's Logs panel holds `latentgraph serve`'s start-up lines: what it says before the
app runs (a plugin that failed to load, the folders, whether a token is asked) was printed on
stderr only, the panel starting at uvicorn's "Application startup complete"."""

from __future__ import annotations

import logging

from latentgraph.server.api_info import RecentLogs


def test_the_logs_panel_holds_the_start_up_lines_a_plugin_failure_among_them(
    tmp_path, monkeypatch, capsys, caplog
):
    import uvicorn

    from latentgraph.cli import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("LATENTGRAPH_AUTH_TOKEN", raising=False)
    monkeypatch.setenv("LATENTGRAPH_CACHE_DIR", str(tmp_path / "cache"))
    caplog.set_level(logging.INFO, logger="latentgraph.server")  # as `serve` prints them
    panel: list[str] = []

    def run(self, **kw) -> None:  # the app made, not served: the panel as the app starts
        app = self.config.app
        panel.extend(entry["m"] for entry in app.state.logs.entries())
        app.state.lg.store.close()

    monkeypatch.setattr(uvicorn.Server, "run", run)
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    bad = plugins / "bad.py"
    bad.write_text("raise RuntimeError('plugin exploded')\n")
    code = main(["serve", "--port", "0", "--nodes-dir", str(plugins), "--data-dir",
                 str(tmp_path / "data")])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 0, err
    failure = f"node plugin {bad} failed to load: RuntimeError: plugin exploded ({bad}:1)"
    assert f"latentgraph: warning: {failure}\n" in err  # stderr keeps the CLI's form
    assert f"WARNING latentgraph.server: {failure}\n" in panel, panel
    assert any(m.startswith("INFO latentgraph.server: folders: data ") for m in panel), panel
    assert "INFO latentgraph.server: auth token: not required\n" in panel
    # stopped, the server leaves no handler on the process's loggers
    assert not [h for h in logging.getLogger().handlers if isinstance(h, RecentLogs)]
