"""Shared fixtures. Real data is located as DESIGN.md says:

``$JAXNAS_DATA_DIR`` if set, else ``<repo>/../shared/data``. A test that needs it skips
with a message when it is absent, except under ``CI=true``, where that is an error so the
oracle tests can never skip silently.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path:
    env = os.environ.get("JAXNAS_DATA_DIR")
    return Path(env) if env else REPO.parent / "shared" / "data"


def require_data(*names: str) -> Path:
    """Return the data dir, skipping (or failing under CI=true) when a file is missing."""
    root = shared_data_dir()
    missing = [n for n in names if not (root / n).exists()]
    if missing:
        msg = f"real data missing under {root}: {', '.join(missing)} (set JAXNAS_DATA_DIR)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(msg)
        pytest.skip(msg)
    return root


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return require_data()
