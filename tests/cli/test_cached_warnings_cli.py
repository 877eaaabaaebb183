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
