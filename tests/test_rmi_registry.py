"""The RMI estimator through the registry and the one settings class, and the data layer's
selected batch (jaxnas.data.prepare_rmi_batch)."""

from __future__ import annotations

import numpy as np
import pytest

from jaxnas.config import ConfigError, RMISettings
from jaxnas.data import load_npz_split, prepare_rmi_batch
from jaxnas.estimators import RMIEstimator, make_estimator
from tests.conftest import require_data


def test_make_estimator_from_arrays_takes_settings_and_overrides(rmi_batch):
    x, y, f = rmi_batch
    est = make_estimator("rmi", x=x, y=y, teacher_features=f, settings=RMISettings(C=4, N=1),
                         steps=2, workers=1, strategy="composed", warmup=False)
    assert isinstance(est, RMIEstimator)
    assert est.settings == RMISettings(C=4, N=1, steps=2, workers=1, strategy="composed")
    assert est.steps == 2 and est.strategy == "composed" and est.workers == 1
    with pytest.raises(ConfigError, match="stepz"):
        make_estimator("rmi", x=x, y=y, teacher_features=f, stepz=2, warmup=False)
    with pytest.raises(ConfigError, match="lr"):
        RMIEstimator(x, y, f, {"lr": -1.0}, warmup=False)


def test_prepare_rmi_batch_from_arrays_equals_from_file():
    root = require_data("cifar10/cifar10_train_part0.npz", "resnet20_cifar10.npz")
    part = root / "cifar10" / "cifar10_train_part0.npz"
    s = {"data_dir": str(root), "batch_size": 8, "pool_factor": 4, "batch_seed": 3}
    x1, y1, f1, info1 = prepare_rmi_batch(s, train=part)
    x2, y2, f2, info2 = prepare_rmi_batch(s, train=load_npz_split(part))
    np.testing.assert_array_equal(x1, x2)
    np.testing.assert_array_equal(y1, y2)
    for a, b in zip(f1, f2):
        np.testing.assert_array_equal(a, b)
    assert x1.shape == (8, 32, 32, 3) and [a.shape[0] for a in f1] == [8, 8, 8]
    assert info1["batch_indices"] == info2["batch_indices"] and info2["data_source"] == "arrays"
    assert info1["reference"] == "cifar10_resnet20" and info1["num_classes"] == 10
