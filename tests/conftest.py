"""Shared fixtures. Real data is located as DESIGN.md says, by the library's own resolver
(:func:`jaxnas._paths.data_dir`): ``$JAXNAS_DATA_DIR`` if set, else ``<repo>/../shared/data``
when it exists, else the user's default folder. A test that needs it skips with a message
when it is absent, except under ``CI=true``, where that is an error so the oracle tests can
never skip silently.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from jaxnas import _paths
from jaxnas.data import prepare_rmi_batch

REPO = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path:
    """The data folder the library itself would use (:func:`jaxnas._paths.data_dir`)."""
    return _paths.data_dir()


def require_data(*names: str) -> Path:
    """Return the data dir, skipping (or failing under CI=true) when a file is missing."""
    root = shared_data_dir()
    missing = [n for n in names if not (root / n).exists()]
    if missing:
        msg = (f"real data missing under {_paths.describe_data_dir()}: {', '.join(missing)} "
               "(set JAXNAS_DATA_DIR to the shared data folder)")
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(msg)
        pytest.skip(msg)
    return root


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return require_data()


@pytest.fixture(scope="session")
def rmi_batch():
    """The real RMI batch (METHODS.md 5.1): the 32 lowest-loss of 512 augmented CIFAR-10
    training images under the pretrained ResNet-20, and the reference's 3 stage features.
    Returns numpy ``(x (32, 32, 32, 3), y (32,), [f1, f2, f3])``."""
    root = require_data("cifar10/cifar10_train_part0.npz", "resnet20_cifar10.npz")
    # only the first training part, as these tests' numbers were measured on
    x, y, feats, _ = prepare_rmi_batch({"data_dir": str(root)},
                                       train=root / "cifar10" / "cifar10_train_part0.npz")
    return x, y, feats
