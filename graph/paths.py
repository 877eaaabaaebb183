"""Where latentgraph keeps its files, per user, overridable by environment variables.

LATENTGRAPH_CACHE_DIR   output cache and the built-in tiny model (default: user cache dir)
LATENTGRAPH_DATA_DIR    server database, user settings and saved workflows (default: user data dir)
"""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs


def cache_dir() -> Path:
    env = os.environ.get("LATENTGRAPH_CACHE_DIR")
    return Path(env) if env else Path(platformdirs.user_cache_dir("latentgraph"))


def data_dir() -> Path:
    env = os.environ.get("LATENTGRAPH_DATA_DIR")
    return Path(env) if env else Path(platformdirs.user_data_dir("latentgraph"))
