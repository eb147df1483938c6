"""Search data (issue 11): seeded class-balanced split, split files, DARTS augmentation,
the prefetching batch iterator, CIFAR-10 (real data) and CIFAR-100 (tfds mock) loaders."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from jaxnas.data.search import (
    CIFAR10_MEAN,
    CIFAR10_STD,
    BatchIterator,
    augment_batch,
    cifar10_search_data,
    cifar100_search_data,
    crop_flip,
    cutout,
    load_split_file,
    normalise_np,
    save_split_file,
    search_split,
)
from tests.conftest import require_data


def test_search_split_is_seeded_balanced_and_disjoint():
    y = np.repeat(np.arange(10), 50)
    a, b = search_split(y, 250, seed=3)
    assert len(a) == 250 and len(b) == 250 and np.intersect1d(a, b).size == 0
    np.testing.assert_array_equal(np.bincount(y[a]), 25)
    a2, _ = search_split(y, 250, seed=3)
    a3, _ = search_split(y, 250, seed=4)
    np.testing.assert_array_equal(a, a2)
    assert not np.array_equal(a, a3)
    with pytest.raises(ValueError):
        search_split(y, 0)


@pytest.mark.parametrize("suffix", [".npz", ".json"])
def test_split_file_roundtrip(tmp_path, suffix):
    path = tmp_path / f"split{suffix}"
    save_split_file(path, [0, 2, 4], [1, 3])
    tr, va = load_split_file(path)
    np.testing.assert_array_equal(tr, [0, 2, 4])
    np.testing.assert_array_equal(va, [1, 3])
    save_split_file(path, [0, 1], [1, 3])
    with pytest.raises(ValueError, match="overlap"):
        load_split_file(path)


def test_cutout_crop_flip_and_normalisation():
    rng = np.random.default_rng(0)
    x = np.full((6, 32, 32, 3), 200, np.uint8)
    c = cutout(rng, normalise_np(x, CIFAR10_MEAN, CIFAR10_STD), 16)
    zeros = (c == 0).all(-1).sum(axis=(1, 2))
    assert np.all(zeros <= 256) and np.all(zeros >= 64)  # a 16x16 square clipped at the border
    cf = crop_flip(rng, x, 4)
    assert cf.shape == x.shape and cf.dtype == np.uint8
    assert np.all(cf[:, 4:-4, 4:-4] == 200)  # the padding never reaches the centre
    out = augment_batch(np.random.default_rng(1), x, CIFAR10_MEAN, CIFAR10_STD)
    again = augment_batch(np.random.default_rng(1), x, CIFAR10_MEAN, CIFAR10_STD)
    assert out.dtype == np.float32 and np.array_equal(out, again)


def test_batch_iterator_prefetches_in_a_thread_and_is_seeded():
    x = np.random.default_rng(0).integers(0, 255, (50, 8, 8, 3), dtype=np.uint8)
    y = np.arange(50) % 10
    it = BatchIterator(x, y, 8, seed=2)
    assert len(it) == 6
    threads = []
    orig = it._prepare

    def spy(rng, idx):
        threads.append(threading.current_thread())
        return orig(rng, idx)

    it._prepare = spy
    a = [(np.asarray(xb), np.asarray(yb)) for xb, yb in it]
    assert len(a) == 6 and a[0][0].shape == (8, 8, 8, 3) and a[0][1].dtype == np.int32
    assert all(t is not threading.main_thread() for t in threads)
    b = list(BatchIterator(x, y, 8, seed=2))
    np.testing.assert_array_equal(a[3][0], np.asarray(b[3][0]))
    assert len(list(BatchIterator(x, y, 8, drop_last=False, augment=False))) == 7
    plain = next(iter(BatchIterator(x, y, 8, augment=False, shuffle=False)))
    np.testing.assert_allclose(plain[0], normalise_np(x[:8], CIFAR10_MEAN, CIFAR10_STD))
    for _ in zip(range(2), BatchIterator(x, y, 8)):  # abandoning an epoch stops the thread
        pass


def test_cifar10_search_split_on_real_data():
    root = require_data("cifar10/cifar10_train_part0.npz")
    d = cifar10_search_data(root, seed=0)
    assert d.x_train.shape == (25_000, 32, 32, 3) and d.x_valid.shape == (25_000, 32, 32, 3)
    np.testing.assert_array_equal(np.bincount(d.y_train), 2_500)
    assert np.intersect1d(d.train_idx, d.valid_idx).size == 0


def test_cifar100_through_tfds_mock():
    tfds = pytest.importorskip("tensorflow_datasets")
    with tfds.testing.mock_data(num_examples=20):
        d = cifar100_search_data(seed=0)
    assert d.num_classes == 100 and d.x_train.shape == (20, 32, 32, 3)
    assert d.x_valid.shape[0] == len(d.valid_idx) and 0 < d.x_valid.shape[0] < 20
