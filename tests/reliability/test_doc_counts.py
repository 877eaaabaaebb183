"""docs/reliability.md's counts of the bad-input cases are the corpora's: it said 222 cases
(its parts, 83 + 144, made 227; the server corpus held 146), so each count it gives is read
from the page and compared with the case lists here."""

from __future__ import annotations

import re
from pathlib import Path

from .corpus_cli import CASES as CLI_CASES
from .corpus_server import CASES as SERVER_CASES
from .test_cli_corpus import SUBPROCESS_CASES

DOC = Path(__file__).resolve().parents[2] / "docs" / "reliability.md"


def _count(pattern: str) -> int:
    """The number `pattern`'s group finds in the page, its lines joined (a count may be
    written across a line break)."""
    text = " ".join(DOC.read_text().split())
    found = re.findall(pattern, text)
    assert len(found) == 1, (pattern, found)
    return int(found[0])


def test_the_reliability_page_counts_the_cases_the_corpora_hold():
    validate = [c for c in CLI_CASES if c.command == "validate"]
    run = [c for c in CLI_CASES if c.command == "run"]
    assert len(validate) + len(run) == len(CLI_CASES)
    assert {
        "total": _count(r"## Bad input: (\d+) cases"),
        "cli": _count(r"\*\*CLI, (\d+) workflow files\*\*"),
        "validate": _count(r"`latentgraph validate` \((\d+) cases\)"),
        "run": _count(r"`latentgraph run` \((\d+) cases"),
        "subprocess": _count(r"(\d+) of them are also run as a subprocess"),
        "server": _count(r"\*\*Server, (\d+) requests\*\*"),
    } == {
        "total": len(CLI_CASES) + len(SERVER_CASES),
        "cli": len(CLI_CASES),
        "validate": len(validate),
        "run": len(run),
        "subprocess": len(SUBPROCESS_CASES),
        "server": len(SERVER_CASES),
    }
