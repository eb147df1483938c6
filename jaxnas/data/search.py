"""Search data for supernet training: splits, DARTS augmentation, prefetched batches (issue 11).

* :func:`search_split` -- a seeded, class-balanced split of a training set (CIFAR-10: 25k
  search-train / 25k search-valid). NB201's official ``cifar-split.txt`` indexes the original
  CIFAR batch order, which the shared copy does not keep (data/PROVENANCE.md), so the split is
  drawn here and **returned** (record the indices in the run); :func:`load_split_file` reads a
  user-supplied split instead (``.npz`` or ``.json`` with ``train`` and ``valid`` index lists).
* :func:`cifar10_search_data` / :func:`cifar100_search_data` -- the search-train and
  search-valid arrays (METHODS.md 0.2). CIFAR-100 comes through tensorflow-datasets
  (:func:`jaxnas.data.datasets.load_tfds`): search-train is the full 50k train set and
  search-valid a seeded class-balanced half of the test set (NB201's ``xvalid``; the official
  ``cifar100-test-split.txt`` is not available either).
* :func:`augment_batch` -- DARTS's CIFAR training transform on a uint8 batch (numpy, seeded):
  ``RandomCrop(32, padding=4)``, ``RandomHorizontalFlip``, normalisation, ``Cutout(16)``
  (applied after normalisation, so cut pixels are 0 in normalised space, as in DARTS).
* :class:`BatchIterator` -- shuffled mini-batches, prepared (augmented, normalised, put on
  the device) in a background thread while the device trains on the previous one.
"""

from __future__ import annotations

import json
import queue
import threading
from dataclasses import dataclass, field
from pathlib import Path

import jax
import numpy as np

from jaxnas.data.datasets import load_npz_dataset, load_tfds

#: DARTS ``utils._data_transforms_cifar10`` / ``cifar100`` statistics.
CIFAR10_MEAN = (0.49139968, 0.48215827, 0.44653124)
CIFAR10_STD = (0.24703233, 0.24348505, 0.26158768)
CIFAR100_MEAN = (0.5071, 0.4865, 0.4409)
CIFAR100_STD = (0.2673, 0.2564, 0.2762)


@dataclass(frozen=True)
class SearchData:
    """Search-train and search-valid images (uint8 NHWC) and labels (int32).

    ``train_idx`` / ``valid_idx`` are the indices into the source arrays (``None`` where a
    whole split was used); record them with the run.
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_valid: np.ndarray
    y_valid: np.ndarray
    num_classes: int
    mean: tuple = CIFAR10_MEAN
    std: tuple = CIFAR10_STD
    train_idx: np.ndarray | None = None
    valid_idx: np.ndarray | None = None
    source: str = field(default="")


def search_split(y, n_first: int | None = None, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Seeded, class-balanced split of the indices of ``y`` into two parts.

    Every class contributes ``round(count_c * n_first / N)`` indices to the first part (so
    5,000 x 10 classes -> 2,500 per class for 25k/25k); indices within each part are sorted.

    Args:
        y: (N,) int labels. n_first: size of the first part (default N // 2). seed: RNG seed.
    Returns:
        (first, second) int64 index arrays, disjoint, covering all N.
    """
    y = np.asarray(y)
    n = y.shape[0]
    n_first = n // 2 if n_first is None else int(n_first)
    if not 0 < n_first < n:
        raise ValueError(f"n_first must be in 1..{n - 1}, got {n_first}")
    rng = np.random.default_rng(seed)
    first = []
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        k = int(round(len(idx) * n_first / n))
        first.append(rng.permutation(idx)[:k])
    first = np.sort(np.concatenate(first))
    second = np.setdiff1d(np.arange(n), first)
    return first, second


def load_split_file(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """A user-supplied split: ``.npz`` with arrays ``train`` and ``valid``, or ``.json`` with
    lists ``"train"`` and ``"valid"``. Returns (train, valid) int64 index arrays."""
    path = Path(path)
    if path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as z:
            if not {"train", "valid"} <= set(z.files):
                raise ValueError(f"{path}: expected arrays 'train' and 'valid', found {z.files}")
            tr, va = z["train"], z["valid"]
    else:
        with open(path) as fh:
            d = json.load(fh)
        if not isinstance(d, dict) or not {"train", "valid"} <= set(d):
            raise ValueError(f"{path}: expected a JSON object with 'train' and 'valid' lists")
        tr, va = d["train"], d["valid"]
    tr, va = np.asarray(tr, np.int64), np.asarray(va, np.int64)
    if np.intersect1d(tr, va).size:
        raise ValueError(f"{path}: train and valid indices overlap")
    return tr, va


def save_split_file(path: str | Path, train_idx, valid_idx) -> None:
    """Write a split as :func:`load_split_file` reads it (``.npz`` or ``.json``)."""
    path = Path(path)
    if path.suffix == ".npz":
        np.savez(path, train=np.asarray(train_idx), valid=np.asarray(valid_idx))
    else:
        with open(path, "w") as fh:
            json.dump({"train": [int(i) for i in train_idx],
                       "valid": [int(i) for i in valid_idx]}, fh)


def _check_idx(idx, n, path):
    if idx.size and (idx.min() < 0 or idx.max() >= n):
        raise ValueError(f"split {path}: index out of range 0..{n - 1}")


def cifar10_search_data(root=None, seed: int = 0, split_file=None,
                        n_train: int = 25_000) -> SearchData:
    """CIFAR-10 search split (METHODS.md 0.2): ``n_train`` search-train images, the rest of the
    50k training set search-valid; seeded class-balanced (:func:`search_split`) unless a
    ``split_file`` is given. Reads the local npz files (:func:`load_npz_dataset`)."""
    ds = load_npz_dataset("cifar10", root, splits=("train",))
    x, y = ds.split("train")
    if split_file is not None:
        tr, va = load_split_file(split_file)
        for idx in (tr, va):
            _check_idx(idx, len(y), split_file)
    else:
        tr, va = search_split(y, n_train, seed)
    return SearchData("cifar10", x[tr], y[tr], x[va], y[va], 10, CIFAR10_MEAN, CIFAR10_STD,
                      tr, va, source=ds.source)


def cifar100_search_data(tfds_data_dir=None, seed: int = 0, split_file=None) -> SearchData:
    """CIFAR-100 through tensorflow-datasets (METHODS.md 0.2): search-train = the 50k train
    set; search-valid = half of the 10k test set (``xvalid``), seeded and class-balanced, or
    the ``valid`` indices (into the test set) of ``split_file``."""
    xtr, ytr = load_tfds("cifar100", "train", tfds_data_dir)
    xte, yte = load_tfds("cifar100", "test", tfds_data_dir)
    if split_file is not None:
        _, va = load_split_file(split_file)
        _check_idx(va, len(yte), split_file)
    else:
        va, _ = search_split(yte, len(yte) // 2, seed)
    return SearchData("cifar100", xtr, ytr, xte[va], yte[va], 100, CIFAR100_MEAN, CIFAR100_STD,
                      None, va, source="tfds:cifar100")


# ---------------------------------------------------------------------------- augmentation


def normalise_np(x: np.ndarray, mean, std) -> np.ndarray:
    """uint8 (..., C) -> float32 ``(x / 255 - mean) / std``."""
    m = np.asarray(mean, np.float32)
    s = np.asarray(std, np.float32)
    return (x.astype(np.float32) * np.float32(1 / 255) - m) / s


def cutout(rng: np.random.Generator, x: np.ndarray, length: int = 16) -> np.ndarray:
    """DARTS ``Cutout``: zero a ``length`` x ``length`` square (clipped at the border) centred
    at a uniform pixel of each image. ``x`` (B, H, W, C), modified copy returned."""
    b, h, w, _ = x.shape
    out = x.copy()
    cy = rng.integers(0, h, b)
    cx = rng.integers(0, w, b)
    for i in range(b):
        y0, y1 = max(cy[i] - length // 2, 0), min(cy[i] + length // 2, h)
        x0, x1 = max(cx[i] - length // 2, 0), min(cx[i] + length // 2, w)
        out[i, y0:y1, x0:x1] = 0
    return out


def crop_flip(rng: np.random.Generator, x: np.ndarray, pad: int = 4) -> np.ndarray:
    """``RandomCrop(H, padding=pad)`` (zero padding) then ``RandomHorizontalFlip`` on uint8
    (B, H, W, C)."""
    b, h, w, c = x.shape
    xp = np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    oy = rng.integers(0, 2 * pad + 1, b)
    ox = rng.integers(0, 2 * pad + 1, b)
    flip = rng.random(b) < 0.5
    out = np.empty_like(x)
    for i in range(b):
        img = xp[i, oy[i]:oy[i] + h, ox[i]:ox[i] + w]
        out[i] = img[:, ::-1] if flip[i] else img
    return out


def augment_batch(rng: np.random.Generator, x: np.ndarray, mean, std, cutout_length: int = 16,
                  pad: int = 4) -> np.ndarray:
    """DARTS training transform of a uint8 batch -> float32 normalised (B, H, W, C):
    crop (``pad``; 0 disables), flip, normalise, cutout (``cutout_length``; 0 disables)."""
    if pad:
        x = crop_flip(rng, x, pad)
    x = normalise_np(x, mean, std)
    if cutout_length:
        x = cutout(rng, x, cutout_length)
    return x


# ---------------------------------------------------------------------------- batches


class BatchIterator:
    """One epoch of shuffled mini-batches, prepared in a background thread.

    Each batch is ``(x float32 (B, H, W, C) normalised, y int32 (B,))``, already transferred
    with :func:`jax.device_put` (to ``sharding`` if given). A daemon thread keeps up to
    ``prefetch`` batches ready, so the host never stalls the device; the order and the
    augmentation depend on ``seed`` only.

    Args:
        x, y: uint8 (N, H, W, C) images and (N,) labels.
        batch_size: images per batch. mean, std: normalisation statistics.
        seed: shuffling and augmentation seed (use a different one per epoch).
        augment: apply crop/flip/cutout (training) or only normalise (validation).
        cutout_length, pad: see :func:`augment_batch`.
        shuffle: shuffle the order. drop_last: drop the final partial batch (default True,
            so that every batch has one shape and the train step compiles once; DARTS's loader
            keeps it: 25,000 / 64 leaves 40 images out per epoch).
        prefetch: batches prepared ahead. sharding: target sharding of the arrays.
    """

    def __init__(self, x, y, batch_size: int, mean=CIFAR10_MEAN, std=CIFAR10_STD, seed: int = 0,
                 augment: bool = True, cutout_length: int = 16, pad: int = 4, shuffle: bool = True,
                 drop_last: bool = True, prefetch: int = 2, sharding=None):
        self.x, self.y = np.asarray(x), np.asarray(y, np.int32)
        if self.x.shape[0] != self.y.shape[0]:
            raise ValueError(f"{self.x.shape[0]} images but {self.y.shape[0]} labels")
        self.batch_size = int(batch_size)
        self.mean, self.std = mean, std
        self.seed, self.augment = seed, augment
        self.cutout_length, self.pad = cutout_length, pad
        self.shuffle, self.drop_last = shuffle, drop_last
        self.prefetch, self.sharding = max(1, int(prefetch)), sharding
        n = self.x.shape[0]
        self.num_batches = n // self.batch_size if drop_last else -(-n // self.batch_size)
        if self.num_batches == 0:
            raise ValueError(f"batch size {batch_size} is larger than the {n} images")

    def __len__(self) -> int:
        return self.num_batches

    def _prepare(self, rng, idx):
        xb = self.x[idx]
        if self.augment:
            xb = augment_batch(rng, xb, self.mean, self.std, self.cutout_length, self.pad)
        else:
            xb = normalise_np(xb, self.mean, self.std)
        yb = self.y[idx]
        if self.sharding is not None:
            return jax.device_put(xb, self.sharding), jax.device_put(yb, self.sharding)
        return jax.device_put(xb), jax.device_put(yb)

    def __iter__(self):
        rng = np.random.default_rng(self.seed)
        n = self.x.shape[0]
        order = rng.permutation(n) if self.shuffle else np.arange(n)
        q: queue.Queue = queue.Queue(maxsize=self.prefetch)
        stop = threading.Event()
        done = object()

        def work():
            try:
                for b in range(self.num_batches):
                    if stop.is_set():
                        return
                    item = self._prepare(rng, order[b * self.batch_size:(b + 1) * self.batch_size])
                    while not stop.is_set():
                        try:
                            q.put(item, timeout=0.1)
                            break
                        except queue.Full:
                            continue
                q.put(done)
            except BaseException as e:  # hand the error to the consumer
                q.put(e)

        t = threading.Thread(target=work, daemon=True)
        t.start()
        try:
            while True:
                item = q.get()
                if item is done:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            stop.set()
