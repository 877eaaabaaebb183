"""The workflows README.md and docs/workflows.md show are complete: copied into a file, each
passes `latentgraph validate` and workflows/schema.json."""

import json
import re
from pathlib import Path

import jsonschema
import pytest

from latentgraph.graph.workflow.positions import parse_yaml

from .conftest import write

ROOT = Path(__file__).resolve().parents[2]


def blocks(doc: str) -> list[tuple[str, str]]:
    """(id, text) of each ```yaml / ```json block of a document in the repository."""
    text = (ROOT / doc).read_text()
    found = re.findall(r"^```(yaml|json)\n(.*?)^```$", text, flags=re.S | re.M)
    return [(f"{doc}#{n}.{kind}", body) for n, (kind, body) in enumerate(found, 1)]


BLOCKS = blocks("README.md") + blocks("docs/workflows.md")


def test_the_readme_and_the_format_doc_show_workflows():
    assert [name for name, _ in BLOCKS if name.startswith("README")] == ["README.md#1.yaml"]
    assert len(BLOCKS) >= 5


@pytest.mark.parametrize(("name", "text"), BLOCKS, ids=[name for name, _ in BLOCKS])
def test_a_documented_workflow_validates(cli, tmp_path, name, text):
    path = write(tmp_path, "copied" + Path(name).suffix, text)
    code, out, err = cli("validate", str(path), plugin=False)
    assert (code, err) == (0, ""), err
    assert "ok (" in out
    value = json.loads(text) if name.endswith(".json") else parse_yaml(text, name)[0]
    schema = json.loads((ROOT / "workflows" / "schema.json").read_text())
    assert [e.message for e in jsonschema.Draft7Validator(schema).iter_errors(value)] == []


@pytest.mark.parametrize(("flag", "shown"), [
    ("--sweep", r"`(error: my\.yaml:\d+:\d+: --sweep sed: [^`]*?); \.\.\.`"),
    ("--set", r"`(error: --set seed=abc \(\$seed at my\.yaml:\d+:\d+\)[^`]*)`"),
])  # fmt: skip
def test_the_readmes_messages_about_my_yaml_are_what_it_prints(cli, tmp_path, flag, shown):
    """The README quotes `run my.yaml`'s refusals of its own my.yaml; the sweep's said line 4,
    but the file's three comment lines put its params at line 6."""
    write(tmp_path, "my.yaml", dict(BLOCKS)["README.md#1.yaml"])
    readme = " ".join((ROOT / "README.md").read_text().split())  # its lines joined
    quoted = re.search(shown, readme)
    assert quoted, shown
    value = "sed=1,2" if flag == "--sweep" else "seed=abc"
    code, _, err = cli("run", "my.yaml", flag, value, plugin=False)
    assert code == 2 and err.startswith(quoted.group(1)), err
