"""Where jaxnas finds real data: one resolver for the data and benchmark loaders and the tests.

The data folder (datasets as ``.npz``, the pretrained reference, the compact NB201 tables) is,
in this order (DESIGN.md "Where data is found"):

1. ``$JAXNAS_DATA_DIR``, if it is set (and not empty);
2. ``<checkout>/../shared/data``, the developer-checkout fallback: used only when jaxnas runs
   from a source checkout (a folder with ``pyproject.toml`` above the package) and that
   folder exists;
3. the user's default, ``<jaxnas cache>/data`` (``~/.cache/jaxnas/data``; see
   :func:`jaxnas._jaxcfg.cache_root`), which may not exist yet.

This module imports nothing of jaxnas but :mod:`jaxnas._jaxcfg` (no JAX either), so every
layer can use it.
"""

from __future__ import annotations

import os
from pathlib import Path

from jaxnas._jaxcfg import cache_root

DATA_ENV = "JAXNAS_DATA_DIR"
#: The folder that holds the ``jaxnas`` package (a source checkout when it has pyproject.toml).
PACKAGE_PARENT = Path(__file__).resolve().parents[1]


def checkout_data_dir() -> Path | None:
    """``<checkout>/../shared/data`` when jaxnas runs from a source checkout and that folder
    exists, else ``None``."""
    root = PACKAGE_PARENT
    if not (root / "pyproject.toml").is_file():
        return None
    folder = root.parent / "shared" / "data"
    return folder if folder.is_dir() else None


def user_data_dir() -> Path:
    """The user's default data folder, ``<jaxnas cache>/data`` (may not exist)."""
    return cache_root() / "data"


def data_dir() -> Path:
    """The data folder: ``$JAXNAS_DATA_DIR``, else the checkout's ``../shared/data`` if it
    exists, else :func:`user_data_dir` (see the module doc)."""
    env = os.environ.get(DATA_ENV)
    if env:
        return Path(env).expanduser()
    return checkout_data_dir() or user_data_dir()


def describe_data_dir() -> str:
    """:func:`data_dir` and why it was chosen, for messages, e.g.
    ``'/data (from $JAXNAS_DATA_DIR)'``."""
    if os.environ.get(DATA_ENV):
        return f"{data_dir()} (from ${DATA_ENV})"
    dev = checkout_data_dir()
    if dev is not None:
        return f"{dev} (the checkout's ../shared/data; ${DATA_ENV} is not set)"
    return f"{user_data_dir()} (the default; ${DATA_ENV} is not set)"
