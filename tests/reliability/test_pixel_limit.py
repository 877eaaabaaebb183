"""Images whose header claims more pixels than max_image_pixels are refused by our limit, with
our message, whatever the size: Pillow's own decompression-bomb check (a warning above ~89
million pixels, DecompressionBombError above twice that) ran first inside Image.open, so a
69-byte PNG of 14000x14000 failed LoadImage with Pillow's error (exit 1) and 13000x13000
printed Pillow's warning before our refusal. Pillow's bound stays in force everywhere else."""

from __future__ import annotations

import io
import json
import warnings

import pytest

from ..image_headers import header_only_png

OUR_LIMIT = 4096 * 4096  # the default --max-pixels


def _run_load_image(tmp_path, monkeypatch, capsys, side: int, *flags: str):
    """`latentgraph run` of LoadImage -> SaveImage on a `side` x `side` header-only PNG:
    (exit code, stdout, stderr, the warnings raised meanwhile)."""
    from latentgraph.cli import main

    monkeypatch.chdir(tmp_path)
    (tmp_path / "input").mkdir()
    (tmp_path / "input" / "big.png").write_bytes(header_only_png(side, side))
    (tmp_path / "flow.yaml").write_text("version: 1\nnodes:\n"
                                        "  picture: {type: LoadImage, image: big.png}\n"
                                        "  save: {type: SaveImage, images: picture.IMAGE}\n")  # fmt: skip
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        code = main(["run", "flow.yaml", "--cache-dir", str(tmp_path / "cache"), *flags])
    out, err = capsys.readouterr()
    return code, out, err, [str(w.message) for w in caught]


@pytest.mark.parametrize("side", [13000, 14000, 60000])
def test_load_image_refuses_any_header_over_the_limit_with_our_message(tmp_path, monkeypatch,
                                                                       capsys, side):  # fmt: skip
    code, _out, err, caught = _run_load_image(tmp_path, monkeypatch, capsys, side)
    assert code == 2, err
    assert (f"node 'picture' (LoadImage) input 'image': 'big.png' is {side}x{side} = "
            f"{side * side:,} pixels, over the limit of {OUR_LIMIT:,} "
            "(--max-pixels)") in err  # fmt: skip
    assert "DecompressionBomb" not in err and "Traceback" not in err
    assert not [w for w in caught if "decompression bomb" in w], caught
    assert not list((tmp_path / "output").glob("*.png"))


def test_load_image_refusal_in_json_events_is_a_user_error(tmp_path, monkeypatch, capsys):
    code, out, err, _caught = _run_load_image(tmp_path, monkeypatch, capsys, 14000, "--json")
    assert code == 2, err
    [failed] = [e for e in map(json.loads, out.splitlines()) if e["event"] == "node_failed"]
    assert failed["user_error"] is True and failed["traceback"] == []
    assert failed["exception_type"] == "latentgraph.nodes.values.NodeInputError"
    assert failed["message"].endswith("'big.png' is 14000x14000 = 196,000,000 pixels, over the "
                                      "limit of 16,777,216 (--max-pixels)")  # fmt: skip


def test_our_limit_speaks_above_pillows_too_and_pillows_bound_stays_in_force():
    """Our limit may be set above Pillow's: then ours alone decides, without Pillow's warning;
    outside `open_image` Pillow's check is untouched."""
    from PIL import Image

    from latentgraph.graph.pictures import ImageTooLarge, open_image

    data = header_only_png(14000, 14000)
    bound = Image.MAX_IMAGE_PIXELS
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any warning fails the test
        with open_image(io.BytesIO(data), 14000 * 14000) as img:
            assert img.size == (14000, 14000)
        with pytest.raises(ImageTooLarge, match=r"^14000x14000 = 196,000,000 pixels, over the "
                                                r"limit of 195,999,999$"):  # fmt: skip
            with open_image(io.BytesIO(data), 14000 * 14000 - 1):
                pass
    assert Image.MAX_IMAGE_PIXELS == bound
    with pytest.raises(Image.DecompressionBombError):
        Image.open(io.BytesIO(data))
