"""One local Ray runtime for every Ray test (starting one takes seconds): small, no dashboard,
two logical CPUs, so at most two CPU actors live at once. Each module's server or sweep makes
its own actors and removes them before the next module starts."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="package")
def ray_runtime(cache_dir):
    """The runtime (after `cache_dir`: the actors are handed the session's cache folder)."""
    from latentgraph.server.ray_connect import connect, import_ray

    started = connect("local", num_cpus=2)
    ray = import_ray()
    yield ray
    if started:
        ray.shutdown()
