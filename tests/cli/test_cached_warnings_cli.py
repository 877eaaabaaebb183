"""`latentgraph run` a second time, its node served from the disk cache, still prints the
warning the node gave when it ran (text and `--json`)."""

from __future__ import annotations

import json

from .conftest import write

PLUGIN = """
from latentgraph.graph import NodeResult, Output, Socket, node
from latentgraph.graph import Int as IntInput


@node("CliCropped", inputs=[IntInput("value", 0)], outputs=[Output("value", "CLI_INT")])
def cropped(ctx, value):
    ctx.warn(f"{value} is odd: cropped to {value - value % 2}")
    return value - value % 2


@node("CliShow", inputs=[Socket("value", "CLI_INT")], outputs=[], output_node=True)
def show(ctx, value):
    return NodeResult(values=(), ui={"text": [str(value)]})
"""


def test_a_warning_is_printed_again_when_its_node_is_served_from_the_disk_cache(cli, tmp_path):
    (tmp_path / "warn_plugin").mkdir()
    write(tmp_path / "warn_plugin", "cli_cropped.py", PLUGIN)
    path = write(tmp_path, "wf.yaml", """version: 1
nodes:
  crop: {type: CliCropped, value: 7}
  show: {type: CliShow, value: crop}
""")  # fmt: skip
    plugin = ("--nodes-dir", str(tmp_path / "warn_plugin"))
    said = f"warning: {path}:3:3: node 'crop' (CliCropped): 7 is odd: cropped to 6\n"
    for _ in range(2):
        code, _, err = cli("run", str(path), *plugin)
        assert code == 0 and said in err, err
    code, out, err = cli("run", str(path), "--json", *plugin)
    events = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and [e["nodes"] for e in events if e["event"] == "nodes_cached"] == [["show"]]
    [warning] = [e for e in events if e["event"] == "node_warning"]
    assert (warning["node_id"], warning["message"]) == ("crop", "7 is odd: cropped to 6")


def test_two_identical_nodes_each_print_their_warning_again_from_the_disk_cache(cli, tmp_path):
    """`crop` and `crop_again` have the same inputs, so one cache key: the cached run printed
    the warning of `crop` alone, `crop_again`'s (line 5) lost in text and --json. Each is
    printed at its own line, as the fresh run prints them."""
    (tmp_path / "warn_plugin").mkdir()
    write(tmp_path / "warn_plugin", "cli_cropped.py", PLUGIN)
    path = write(tmp_path, "wf.yaml", """version: 1
nodes:
  crop: {type: CliCropped, value: 7}
  show: {type: CliShow, value: crop}
  crop_again: {type: CliCropped, value: 7}
  show_again: {type: CliShow, value: crop_again}
""")  # fmt: skip
    plugin = ("--nodes-dir", str(tmp_path / "warn_plugin"))
    said = [f"warning: {path}:{line}:3: node '{nid}' (CliCropped): 7 is odd: cropped to 6"
            for line, nid in ((3, "crop"), (5, "crop_again"))]  # fmt: skip
    for cached in ([], ["show", "show_again"]):
        code, _, err = cli("run", str(path), *plugin)
        assert code == 0 and [ln for ln in err.splitlines() if "odd" in ln] == said, err
        assert ("cached: show, show_again" in err) == bool(cached), err
    code, out, _ = cli("run", str(path), "--json", *plugin)
    events = [json.loads(line) for line in out.splitlines()]
    assert [e["nodes"] for e in events if e["event"] == "nodes_cached"] == [cached]
    assert [(e["node_id"], e["message"]) for e in events if e["event"] == "node_warning"] == [
        ("crop", "7 is odd: cropped to 6"), ("crop_again", "7 is odd: cropped to 6")]  # fmt: skip
