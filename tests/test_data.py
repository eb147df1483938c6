"""Data layer: npz / tfds / digits loaders, flip-crop augmentation, lowest-loss batch selection."""

from __future__ import annotations

import importlib.util
import sys

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxnas.data import (
    Dataset,
    Reference,
    augment_flip_crop,
    load_dataset,
    load_digits_dataset,
    load_npz_dataset,
    load_npz_split,
    load_tfds,
    normalise,
    select_lowest_loss_batch,
)
from jaxnas.data.selection import per_example_cross_entropy
from tests.conftest import require_data

# ------------------------------------------------------------------------------- digits


def test_digits_is_real_sklearn_data_with_a_fixed_seeded_split():
    from sklearn.datasets import load_digits

    a, b, c = load_digits_dataset(0), load_digits_dataset(0), load_digits_dataset(1)
    assert a.x_train.shape == (1347, 8, 8, 1) and a.x_test.shape == (450, 8, 8, 1)
    assert a.x_train.dtype == np.uint8 and a.y_train.dtype == np.int32
    np.testing.assert_array_equal(a.x_train, b.x_train)
    np.testing.assert_array_equal(a.y_test, b.y_test)
    assert not np.array_equal(a.y_test, c.y_test)
    # Every image of the split is one of sklearn's images (scaled 0..16 -> 0..255, losslessly).
    d = load_digits()
    scaled = np.round(d.images * 255 / 16).astype(np.uint8)
    assert len(np.unique(scaled)) == 17
    allx = np.concatenate([a.x_train, a.x_test])[..., 0]
    ally = np.concatenate([a.y_train, a.y_test])
    key = {img.tobytes(): int(t) for img, t in zip(scaled, d.target)}
    assert len(allx) == 1797
    assert all(key[img.tobytes()] == t for img, t in zip(allx, ally))
    # stratified: test class counts are 25 % of each class, +-1
    full = np.bincount(d.target, minlength=10)
    assert np.all(np.abs(np.bincount(a.y_test, minlength=10) - full * 0.25) <= 1)


def test_load_dataset_by_name_and_unknown_name():
    ds = load_dataset("digits")
    assert isinstance(ds, Dataset) and ds.num_classes == 10 and ds.image_shape == (8, 8, 1)
    with pytest.raises(ValueError, match="unknown dataset 'imagenet'.*cifar10"):
        load_dataset("imagenet")
    with pytest.raises(ValueError, match="unknown source"):
        load_dataset("cifar10", source="web")


# ------------------------------------------------------------------------------- npz


def _write(path, x, y, **extra):
    np.savez(path, x=x, y=y, **extra)


def test_npz_parts_are_concatenated_in_numeric_order(tmp_path):
    d = tmp_path / "toy"
    d.mkdir()
    rng = np.random.default_rng(0)
    parts = []
    for k in (0, 1, 2, 10):  # part10 must come after part2 (numeric, not lexicographic)
        x = rng.integers(0, 256, (3, 4, 4, 3), dtype=np.uint8)
        y = np.full(3, k, np.int64)
        _write(d / f"toy_train_part{k}.npz", x, y)
        parts.append((x, y))
    _write(d / "toy_test.npz", parts[0][0], parts[0][1])
    ds = load_npz_dataset("toy", tmp_path)
    np.testing.assert_array_equal(ds.y_train, [0] * 3 + [1] * 3 + [2] * 3 + [10] * 3)
    np.testing.assert_array_equal(ds.x_train, np.concatenate([p[0] for p in parts]))
    assert ds.y_train.dtype == np.int32 and ds.num_classes == 11
    # grey-scale (N, H, W) files get a channel axis
    _write(tmp_path / "grey_test.npz", np.zeros((2, 5, 5), np.uint8), np.array([0, 1]))
    g = load_npz_dataset("grey", tmp_path, splits=("test",))
    assert g.x_test.shape == (2, 5, 5, 1) and g.x_train is None
    with pytest.raises(ValueError, match="no train split"):
        g.split("train")


def test_npz_missing_and_corrupt_files_give_one_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"cifar10.*put cifar10_train\*\.npz.*tfds build cifar10"):
        load_npz_dataset("cifar10", tmp_path)
    with pytest.raises(FileNotFoundError, match="cifar100"):
        load_dataset("cifar100", root=tmp_path, source="npz")
    bad = tmp_path / "bad_test.npz"
    bad.write_bytes(b"not a zip file")
    with pytest.raises(ValueError, match="bad_test.npz.*corrupt"):
        load_npz_split(bad)
    _write(tmp_path / "nox_test.npz", x=np.zeros((2, 4, 4, 1), np.uint8), y=np.zeros(2))
    with pytest.raises(ValueError, match="labels y must be"):
        load_npz_split(tmp_path / "nox_test.npz")
    np.savez(tmp_path / "keys_test.npz", images=np.zeros((2, 4, 4, 1), np.uint8))
    with pytest.raises(ValueError, match="expected arrays 'x' and 'y'"):
        load_npz_split(tmp_path / "keys_test.npz")


def test_shared_cifar10_npz_loads_with_official_counts():
    root = require_data("cifar10/cifar10_test.npz", "cifar10/cifar10_train_part0.npz")
    ds = load_dataset("cifar10", root=root)
    assert ds.x_train.shape == (50000, 32, 32, 3) and ds.x_test.shape == (10000, 32, 32, 3)
    assert ds.x_train.dtype == np.uint8
    np.testing.assert_array_equal(np.bincount(ds.y_train), [5000] * 10)
    np.testing.assert_array_equal(np.bincount(ds.y_test), [1000] * 10)
    m = load_dataset("mnist", root=root, splits=("test",))
    np.testing.assert_array_equal(np.bincount(m.y_test),
                                  [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009])
    assert m.x_test.shape == (10000, 28, 28, 1)


# ------------------------------------------------------------------------------- tfds


def test_tfds_data_source_under_mock_data_without_tensorflow():
    import tensorflow_datasets as tfds

    for name, shape in (("cifar10", (32, 32, 3)), ("cifar100", (32, 32, 3)), ("mnist", (28, 28, 1))):
        with tfds.testing.mock_data(num_examples=7):
            x, y = load_tfds(name, "train")
            # the same records, read directly
            src = tfds.data_source(name, split="train")
            np.testing.assert_array_equal(x[3], src[3]["image"])
            assert y[5] == src[5]["label"]
        assert x.shape == (7, *shape) and x.dtype == np.uint8 and y.dtype == np.int32
    with tfds.testing.mock_data(num_examples=5):
        ds = load_dataset("mnist", source="tfds")
    assert ds.source == "tfds:mnist" and ds.x_train.shape == (5, 28, 28, 1)
    if importlib.util.find_spec("tensorflow") is None:
        assert "tensorflow" not in sys.modules  # tfds.data_source and mock_data need no TensorFlow


def test_tfds_not_prepared_says_how_to_prepare(tmp_path):
    with pytest.raises(FileNotFoundError, match="tfds build cifar10"):
        load_tfds("cifar10", "test", data_dir=tmp_path)
    with pytest.raises(FileNotFoundError, match=r"put cifar10_train\*\.npz"):
        load_dataset("cifar10", root=tmp_path, tfds_data_dir=tmp_path)


# ------------------------------------------------------------------------------- augmentation


def test_augment_flip_crop_is_seeded_jittable_and_each_output_is_a_shifted_window():
    rng = np.random.default_rng(0)
    x = rng.integers(1, 256, (64, 8, 8, 3), dtype=np.uint8)  # no zeros, so padding is visible
    k = jax.random.key(3)
    a = augment_flip_crop(k, x, pad=2)
    b = jax.jit(augment_flip_crop, static_argnames=("pad", "flip"))(k, x, pad=2)
    np.testing.assert_array_equal(a, b)
    assert a.dtype == jnp.uint8 and a.shape == x.shape
    assert not np.array_equal(a, augment_flip_crop(jax.random.key(4), x, pad=2))
    xp = np.pad(x, ((0, 0), (2, 2), (2, 2), (0, 0)))
    seen = set()
    a = np.asarray(a)
    for i in range(len(x)):
        windows = {(dy, dx): xp[i, dy:dy + 8, dx:dx + 8] for dy in range(5) for dx in range(5)}
        hits = [(dy, dx, f) for (dy, dx), w in windows.items() for f in (0, 1)
                if np.array_equal(a[i], w[:, ::-1] if f else w)]
        assert hits, f"image {i} is not a flipped/unflipped window of the padded input"
        seen.update(hits)
    assert {h[2] for h in seen} == {0, 1}
    assert len({h[:2] for h in seen}) > 10


def test_flip_probability_and_pad0_is_flip_only():
    x = np.arange(4 * 4, dtype=np.float32).reshape(1, 4, 4, 1).repeat(2000, 0)
    out = np.asarray(augment_flip_crop(jax.random.key(0), x, pad=0))
    flipped = np.all(out == x[:, :, ::-1], axis=(1, 2, 3))
    same = np.all(out == x, axis=(1, 2, 3))
    assert np.all(flipped | same)
    assert 0.45 < flipped.mean() < 0.55
    np.testing.assert_array_equal(augment_flip_crop(jax.random.key(0), x, pad=0, flip=False), x)


def test_normalise_uint8_and_unit_float_agree():
    x = np.array([[[[0, 128, 255]]]], np.uint8)
    a = normalise(x, (0.5, 0.5, 0.5), (0.25, 0.5, 1.0))
    b = normalise(x.astype(np.float32) / 255, (0.5, 0.5, 0.5), (0.25, 0.5, 1.0))
    np.testing.assert_allclose(a, b, rtol=1e-6)
    np.testing.assert_allclose(a[0, 0, 0], [-2.0, (128 / 255 - 0.5) / 0.5, 0.5], atol=1e-6)


# ------------------------------------------------------------------------------- batch selection


class _TinyNet(nn.Module):
    @nn.compact
    def __call__(self, x, train=False):
        f1 = nn.relu(nn.Conv(4, (3, 3))(x))
        f2 = nn.relu(nn.Conv(4, (3, 3), strides=2)(f1))
        f3 = nn.relu(nn.Conv(4, (3, 3), strides=2)(f2))
        return (f1, f2, f3), nn.Dense(10)(f3.mean((1, 2))) * 5.0


def _tiny_reference():
    m = _TinyNet()
    v = m.init(jax.random.key(0), jnp.zeros((1, 8, 8, 3)))
    return Reference("tiny", m, v, mean=(0.4, 0.5, 0.6), std=(0.2, 0.25, 0.3), num_classes=10)


def test_select_lowest_loss_batch_keeps_the_lowest_ce_of_the_augmented_pool():
    ref = _tiny_reference()
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (300, 8, 8, 3), dtype=np.uint8)
    labels = rng.integers(0, 10, 300)
    key = jax.random.key(7)
    x, y, info = select_lowest_loss_batch(key, images, labels, ref, batch_size=8, pool_factor=16,
                                          return_details=True)
    assert x.shape == (8, 8, 8, 3) and x.dtype == jnp.float32 and y.dtype == jnp.int32
    pool = np.asarray(info["pool_loss"])
    assert pool.shape == (128,)
    np.testing.assert_allclose(np.sort(pool)[:8], info["loss"], rtol=1e-6)
    assert np.all(np.sort(pool)[8:] >= np.max(info["loss"]))
    np.testing.assert_array_equal(y, labels[info["indices"]])
    assert len(set(info["indices"].tolist())) == 8
    # x is the *normalised augmented* image: recomputing the loss on it gives the same numbers
    ce = per_example_cross_entropy(ref.logits(x, normalised=True), y)
    np.testing.assert_allclose(ce, info["loss"], rtol=1e-5, atol=1e-7)
    # un-normalising gives an augmented version of the source images (crop window / flip)
    raw = np.asarray(x) * np.array(ref.std) + np.array(ref.mean)
    assert np.all(raw > -1e-5) and np.all(raw < 1 + 1e-5)
    # same key -> same batch; other key -> other batch
    x2, y2 = select_lowest_loss_batch(key, images, labels, ref, batch_size=8)
    np.testing.assert_array_equal(x, x2)
    x3, _ = select_lowest_loss_batch(jax.random.key(8), images, labels, ref, batch_size=8)
    assert not np.array_equal(x, x3)
    with pytest.raises(ValueError, match="exceeds"):
        select_lowest_loss_batch(key, images, labels, ref, batch_size=32, pool_factor=16)


def test_per_example_cross_entropy_matches_float64_and_does_not_saturate():
    z = np.array([[40.0, 0.0, -3.0], [0.0, 2.0, 1.0], [100.0, -100.0, 0.0]], np.float32)
    y = np.array([0, 0, 1])
    got = np.asarray(per_example_cross_entropy(jnp.asarray(z), jnp.asarray(y)), np.float64)
    zz = z.astype(np.float64)
    want = [np.log1p(np.exp(-40.0) + np.exp(-43.0)),
            np.log(np.exp(zz[1]).sum()) - 0.0,
            200.0 + np.log1p(np.exp(-200.0) + np.exp(-100.0))]
    np.testing.assert_allclose(got, want, rtol=1e-5)
    assert got[0] > 0  # float32 log-softmax gives exactly 0 here
