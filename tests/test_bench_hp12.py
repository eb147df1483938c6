"""The 12-epoch NB201 accuracies (``nb201_hp12_accuracy.csv.gz``, PROVENANCE.md; issue 10):
read by name (a folder's default files) or by path, named ``<dataset>_{valid,test}_acc_hp12``,
merged by architecture index with the other tables, and usable as a config's score column."""

from __future__ import annotations

import csv
import gzip

import numpy as np
import pytest

from jaxnas.bench import load_table, read_table_file
from jaxnas.estimators import TableEstimator
from tests.conftest import require_data

ACC = "nb201_accuracy.csv.gz"
HP12 = "nb201_hp12_accuracy.csv.gz"
HP12_COLUMNS = tuple(f"{ds}_{split}_acc_hp12" for ds in ("cifar10", "cifar100", "imagenet16_120")
                     for split in ("valid", "test"))
ARCH0 = "|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_1x1~0|skip_connect~1|skip_connect~2|"
ARCH1 = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("JAXNAS_CACHE_DIR", str(tmp_path / "cache"))


def _write(path, header, rows):
    with gzip.open(path, "wt", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)


@pytest.fixture
def small_folder(tmp_path):
    """A folder with a 2-row 12-epoch file (the real file's header) and a 2-row 200-epoch one."""
    _write(tmp_path / HP12, ("arch_index", "arch_str") + HP12_COLUMNS,
           [(0, ARCH0, "63.364", "69.55", "31.84", "31.26", "18.4667", "17"),
            (1, ARCH1, "82.834", "88.22", "57.8", "58.26", "35.4333", "33.8")])
    _write(tmp_path / ACC, ("arch_index", "cifar10_test_acc"), [(1, "93.5"), (5, "90.25")])
    return tmp_path


def test_small_hp12_file_by_path_and_by_name(small_folder):
    by_path = load_table(small_folder / HP12)
    assert by_path.columns == HP12_COLUMNS
    assert all(by_path.units[c] == "%" and by_path.sources[c] == HP12 for c in HP12_COLUMNS)
    assert by_path.numpy("cifar10_valid_acc_hp12")[0] == np.float32(63.364)
    assert by_path.numpy("imagenet16_120_test_acc_hp12")[1] == np.float32(33.8)
    assert by_path.count("cifar100_valid_acc_hp12") == 2
    # by name: a folder's default files include it, merged by arch index with the others
    merged = load_table(small_folder)
    assert set(HP12_COLUMNS) | {"cifar10_test_acc"} == set(merged.columns)
    np.testing.assert_array_equal(merged.numpy("cifar10_valid_acc_hp12")[:2],
                                  np.float32([63.364, 82.834]))
    assert merged.numpy("cifar10_test_acc")[1] == np.float32(93.5)
    assert np.isnan(merged.numpy("cifar10_test_acc")[0]) and np.isnan(merged.numpy("cifar10_test_acc_hp12")[5])


def test_hp12_columns_are_score_columns(small_folder):
    """Accuracy by name: the estimator scores 100 - acc; validation is not an oracle, test is."""
    table = load_table(small_folder)
    valid = TableEstimator(table, "cifar10_valid_acc_hp12")
    assert valid.kind == "accuracy" and not valid.oracle
    np.testing.assert_allclose(np.asarray(valid.by_index(np.array([0, 1]))),
                               [100 - 63.364, 100 - 82.834], rtol=1e-6)
    test = TableEstimator.for_dataset(table, "ImageNet16-120", "test_acc_hp12")
    assert test.column == "imagenet16_120_test_acc_hp12" and test.oracle


def test_real_hp12_file_spot_values_against_an_independent_read():
    root = require_data(HP12, ACC)
    with gzip.open(root / HP12, "rt", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 15625 and tuple(rows[0])[2:] == HP12_COLUMNS
    table = load_table(root)  # the folder: by name, merged with the other shared tables
    alone = read_table_file(root / HP12)
    assert alone.columns == HP12_COLUMNS
    assert table.has("cifar10_test_acc") and set(HP12_COLUMNS) <= set(table.columns)
    for c in HP12_COLUMNS:
        assert table.count(c) == 15625 and table.units[c] == "%" and table.sources[c] == HP12
        np.testing.assert_array_equal(table.numpy(c), alone.numpy(c))
    for i in (0, 1, 857, 6111, 9930, 15624):
        r = rows[i]
        assert int(r["arch_index"]) == i
        for c in HP12_COLUMNS:
            assert table.numpy(c)[i] == np.float32(float(r[c])), (i, c)
    # PROVENANCE.md: arch 0 has 69.55 % 12-epoch CIFAR-10 test accuracy (85.86 % at 200
    # epochs), and the best 12-epoch CIFAR-10 test accuracy is 89.16 %
    assert table.numpy("cifar10_test_acc_hp12")[0] == np.float32(69.55)
    assert abs(float(table.numpy("cifar10_test_acc")[0]) - 85.8633) < 1e-4
    assert abs(float(table.numpy("cifar10_test_acc_hp12").max()) - 89.16) < 5e-3
