"""The README's test command on a machine without chromium: browser tests skip and say what
to install; under CI (`CI=true`, set by .ci/run) they are required and fail instead."""

from __future__ import annotations

import pytest

from . import editor_page


def test_missing_chromium_skips_naming_the_package(monkeypatch, tmp_path):
    monkeypatch.setattr(editor_page, "CHROMIUM", str(tmp_path / "no-chromium"))
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match=r"apt-get install chromium"):
        editor_page.require_browser()


def test_missing_chromium_fails_under_ci(monkeypatch, tmp_path):
    monkeypatch.setattr(editor_page, "CHROMIUM", str(tmp_path / "no-chromium"))
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match=r"chromium.*required under CI"):
        editor_page.require_browser()


def test_ci_script_requires_them():
    from pathlib import Path

    script = (Path(__file__).parents[1] / ".ci" / "run").read_text()
    assert "export CI=true" in script and "apt-get install -y -qq chromium" in script
