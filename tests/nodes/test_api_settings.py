"""The Python API configures the built-in nodes from its Settings (input and models folders)."""

from PIL import Image

from latentgraph import api
from latentgraph.graph import Settings
from latentgraph.graph.cache import Cache

WORKFLOW = """\
version: 1
nodes:
  picture:
    type: LoadImage
    image: red.png
  save:
    type: SaveImage
    images: picture.IMAGE
    filename_prefix: copy
"""


def test_api_run_reads_images_from_the_settings_input_dir(tmp_path):
    inputs = tmp_path / "pictures"
    inputs.mkdir()
    Image.new("RGB", (8, 6), (255, 0, 0)).save(inputs / "red.png")
    path = tmp_path / "copy.yaml"
    path.write_text(WORKFLOW)
    settings = Settings(input_dir=inputs, output_dir=tmp_path / "out")
    result = api.run(path, settings=settings, cache=Cache(disk_dir=None))
    assert result.status == "success", result.failures
    [record] = result.ui["save"]["images"]
    copy = Image.open(tmp_path / "out" / record["filename"])
    assert copy.size == (8, 6) and copy.getpixel((0, 0))[:3] == (255, 0, 0)
