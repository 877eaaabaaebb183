"""SaveImage's filename_prefix: the variables ComfyUI's back end expands in it are expanded, a
%...% it leaves to its editor is refused by name, and characters file names cannot hold are
named (not reported as leaving the output folder)."""

from __future__ import annotations

import re
import time

import pytest
import torch

import latentgraph.nodes  # noqa: F401 - registers the node types these prompts use
from latentgraph.graph.comfy_api import graph_from_prompt
from latentgraph.graph.problems import quoted
from latentgraph.graph.validate import validate
from latentgraph.nodes import images
from latentgraph.nodes.values import NodeInputError


def problems(prefix: str) -> list[str]:
    graph = graph_from_prompt({
        "1": {"class_type": "LoadImage", "inputs": {"image": "example.png"}},
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": prefix}},
    })  # fmt: skip
    found = [p for p in validate(graph) if p.severity == "error"]
    assert all((p.node_id, p.input_name) == ("2", "filename_prefix") for p in found)
    return [p.message for p in found]


def test_size_and_date_variables_are_expanded(make_ctx, tmp_path):
    before = time.localtime()
    ctx = make_ctx("SaveImage")
    prefix = "%year%-%month%-%day%/fox_%width%x%height%_%hour%%minute%%second%"
    assert problems(prefix) == []
    [record] = images.save_image(ctx, torch.zeros(1, 24, 40, 3), prefix).ui["images"]
    after = time.localtime()
    day = f"{before.tm_year}-{before.tm_mon:02d}-{before.tm_mday:02d}"
    assert record["subfolder"] == day or before.tm_mday != after.tm_mday
    name = record["filename"]
    assert name.startswith("fox_40x24_") and name.endswith("_00001_.png")
    clock = name.removeprefix("fox_40x24_").removesuffix("_00001_.png")
    assert len(clock) == 6 and clock.isdigit()
    assert (tmp_path / "output" / record["subfolder"] / name).is_file()


def test_animated_webp_expands_its_frames_size(make_ctx, tmp_path):
    from latentgraph.nodes import animation

    ctx = make_ctx("SaveAnimatedWEBP")
    result = animation.save_animated_webp(ctx, torch.zeros(2, 24, 40, 3), "loop_%width%x%height%")
    assert result.ui["images"][0]["filename"] == "loop_40x24_00001_.webp"


def test_the_editors_date_format_is_expanded(make_ctx, tmp_path, monkeypatch):
    """A prompt written by hand or by an API client may hold the %date:FORMAT% the editor
    expands before queueing: its tokens (yyyy yy MM M dd d hh h mm m ss s) are replaced."""
    moment = time.struct_time((2026, 3, 7, 9, 5, 4, 5, 66, 0))
    monkeypatch.setattr(images.time, "localtime", lambda: moment)
    prefix = "%date:yyyy-MM-dd%/fox_%date:yy.M.d_hhmmss%_%date:h-m-s%"
    assert problems(prefix) == []
    [record] = images.save_image(make_ctx("SaveImage"), torch.zeros(1, 8, 8, 3),
                                 prefix).ui["images"]  # fmt: skip
    assert record["subfolder"] == "2026-03-07"
    assert record["filename"] == "fox_26.3.7_090504_9-5-4_00001_.png"


@pytest.mark.parametrize("prefix", ["%date:..%/escaped", "%date:../..%/x",
                                    "x/%date:..%/%date:..%/y", "%date:/tmp%/x"])  # fmt: skip
def test_a_date_format_leaving_the_output_folder_is_refused_at_validation(make_ctx, tmp_path,
                                                                          prefix):  # fmt: skip
    """A %date:FORMAT%'s characters other than its tokens stay: `%date:..%/escaped` is
    `../escaped` when the run names the file. Validation said ok and only the run refused it."""
    assert problems(prefix) == [f"{quoted(prefix)} would write outside the output directory"]
    ctx = make_ctx("SaveImage", output_dir=tmp_path / "a" / "b" / "output")
    with pytest.raises(NodeInputError, match="would write outside the output directory"):
        images.save_image(ctx, torch.zeros(1, 8, 8, 3), prefix)
    assert not list(tmp_path.rglob("*.png"))


@pytest.mark.parametrize("prefix", ["%date:%", "%date:.%", "a/%date:/%", "%date: %"])
def test_a_date_format_leaving_no_file_name_is_refused_at_validation(make_ctx, prefix):
    """`%date:%` expands to no name at all: the run failed with a ValueError (exit 1)."""
    expected = "expected a file name prefix, e.g. 'astronaut' or 'portraits/astronaut'"
    assert problems(prefix) == [expected]
    with pytest.raises(NodeInputError, match="expected a file name prefix"):
        images.save_image(make_ctx("SaveImage"), torch.zeros(1, 8, 8, 3), prefix)


def test_a_date_format_with_characters_file_names_cannot_hold_is_refused():
    [message] = problems("fox_%date:hh:mm%")
    assert "contains ':';" in message


@pytest.mark.parametrize("prefix, pattern", [
    ("fox_%Empty Latent Image.width%", "%Empty Latent Image.width%"),
    ("fox_%seed%", "%seed%"),
])  # fmt: skip
def test_a_pattern_no_save_node_expands_is_refused_by_name(make_ctx, tmp_path, prefix, pattern):
    [message] = problems(prefix)
    assert f"{pattern} is not expanded here" in message and "%width%" in message
    with pytest.raises(NodeInputError, match="is not expanded here"):
        images.save_image(make_ctx("SaveImage"), torch.zeros(1, 8, 8, 3), prefix)
    assert not (tmp_path / "output").exists() or not any((tmp_path / "output").rglob("*"))


def test_a_lone_percent_sign_is_kept(make_ctx, tmp_path):
    assert problems("100%_fox") == []
    [record] = images.save_image(make_ctx("SaveImage"), torch.zeros(1, 8, 8, 3),
                                 "100%_fox").ui["images"]  # fmt: skip
    assert record["filename"] == "100%_fox_00001_.png"


@pytest.mark.parametrize("prefix, named", [("a:b*c?", "':', '*', '?'"), ('say "hi"', "'\"'"),
                                           ("x<y>|z", "'<', '>', '|'"), ("a:b", "':'")])  # fmt: skip
def test_characters_file_names_cannot_hold_are_named(prefix, named):
    """Each quoted: "'a:b' contains :: file names ..." doubled the colon."""
    [message] = problems(prefix)
    assert f"contains {named}; file names cannot hold any of" in message
    assert "outside" not in message


@pytest.mark.parametrize("prefix", ["C:/x", "c:\\x", "/etc/x"])
def test_absolute_paths_still_leave_the_output_folder(prefix):
    [message] = problems(prefix)
    assert "would write outside the output directory" in message


def test_a_refused_prefix_is_shown_with_one_backslash():
    """The prefix is quoted as it was written (`graph.problems.quoted`): repr doubled the
    backslash of a Windows-style `portraits\\fox`."""
    assert problems("portraits\\fox<1>") == [
        "'portraits\\fox<1>' contains '<', '>'; file names cannot hold any of < > : \" | ? *"
    ]
    assert problems("portraits\\%Node.seed%") == [
        "'portraits\\%Node.seed%': %Node.seed% is not expanded here (ComfyUI's editor replaces "
        f"%Node.widget% before it queues a prompt); a save node expands only "
        f"{images.PREFIX_VARIABLES_TEXT}"
    ]


@pytest.mark.parametrize("prefix, shown, named", [
    ("a\u202egnp.exe", "'a\\u202egnp.exe'", "a format character, U+202E"),  # shows 'aexe.png'
    ("\u200b", "'\\u200b'", "a format character, U+200B"),  # looks like no name
    ("fox\ufeff", "'fox\\ufeff'", "a format character, U+FEFF"),
    ("fox\nbar", "'fox\\nbar'", "a control character, U+000A"),
    ("a\x85b", "'a\\u0085b'", "a control character, U+0085"),  # C1
    ("\u200dfox", "'\\u200dfox'", "a format character, U+200D"),  # a joiner joins nothing
    ("fox\u200c/x", "'fox\\u200c/x'", "a format character, U+200C"),  # at a folder's end
])  # fmt: skip
def test_invisible_and_control_characters_are_refused_by_code_point(make_ctx, tmp_path, prefix,
                                                                    shown, named):  # fmt: skip
    """A bidi override saved a file whose name displays reversed, a zero-width space one that
    looks empty: Unicode format characters (category Cf) are refused as control characters
    are, by one rule, each named by its code point, the prefix quoted with it escaped."""
    [message] = problems(prefix)
    assert message == (f"{shown} contains {named}; file names cannot hold control characters "
                       "(NUL, newline, ...) nor invisible Unicode format characters (bidi "
                       "overrides, zero-width characters)")  # fmt: skip
    with pytest.raises(NodeInputError, match=re.escape(named)):
        images.save_image(make_ctx("SaveImage"), torch.zeros(1, 8, 8, 3), prefix)
    assert not (tmp_path / "output").exists() or not any((tmp_path / "output").rglob("*"))


def test_characters_of_cjk_and_accented_prefixes_are_kept(make_ctx, tmp_path):
    """Joiners inside a name shape its letters (a Persian word, an emoji family)."""
    for prefix in ("夕焼け/猫", "café", "e\u0301", "می\u200cخواهم", "\U0001f468\u200d\U0001f469"):
        assert problems(prefix) == [], prefix


@pytest.mark.parametrize("prefix, said", [
    (".hidden", "'.hidden': the file name starts with '.'"),
    ("portraits/.drafts/fox", "'portraits/.drafts/fox': the folder '.drafts' starts with '.'"),
    ("%date:.yyyy%/fox", "'%date:.yyyy%/fox': the folder '.2"),  # as the run expands it
    ("a/" * 33 + "x", f"{quoted('a/' * 33 + 'x')} saves 33 folders deep; the server serves "
                      "files at most 32 folders deep"),
])  # fmt: skip
def test_a_prefix_saving_where_the_server_serves_nothing_is_refused(make_ctx, tmp_path, prefix,
                                                                   said):  # fmt: skip
    """/view refuses a name starting with '.' (`paths.hidden`) and a subfolder deeper than
    `MAX_DEPTH` (`server/safepath.py`): `.hidden` and a prefix 40 folders deep were saved,
    the run said so, and the editor showed a broken image. Refused at validation (POST
    /prompt, `latentgraph validate`) and by the run, nothing written."""
    [message] = problems(prefix)
    assert message.startswith(said)
    with pytest.raises(NodeInputError, match=re.escape(said)):
        images.save_image(make_ctx("SaveImage"), torch.zeros(1, 8, 8, 3), prefix)
    assert not (tmp_path / "output").exists() or not any((tmp_path / "output").rglob("*"))


def test_a_prefix_as_deep_as_the_server_serves_is_saved(make_ctx, tmp_path):
    """The limit is the server's (`graph.files.MAX_DEPTH`, which `server/safepath.py` refuses
    a deeper subfolder by), not a second number; a `.` folder is no name and stays allowed."""
    from latentgraph.graph.files import MAX_DEPTH
    from latentgraph.server.safepath import clean_relative

    prefix = "./" + "a/" * MAX_DEPTH + "x"
    assert problems(prefix) == []
    [record] = images.save_image(make_ctx("SaveImage"), torch.zeros(1, 8, 8, 3),
                                 prefix).ui["images"]  # fmt: skip
    assert len(clean_relative(record["subfolder"], "subfolder").parts) == MAX_DEPTH
    assert (tmp_path / "output" / record["subfolder"] / record["filename"]).is_file()
