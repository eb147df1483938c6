"""Data for the compression study: MNIST and CIFAR-10 as float images in [0, 1].

Sources, in order (``source='auto'``): local ``.npz`` files with both splits (the shared
CIFAR-10 folder), then tensorflow-datasets; for MNIST, if neither has a training split, the
local official **test** set ``mnist/mnist_test.npz`` (10,000 images) is split, seeded and
class-balanced, into a train and a test part. That is not the official protocol: every MNIST
number from such a run carries :data:`MNIST_TEST_ONLY_CAVEAT`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from jaxnas.data import DATASETS, default_data_dir, load_dataset, load_npz_dataset

__all__ = ["MNIST_TEST_ONLY_CAVEAT", "StudyData", "balanced_indices", "load_study_data"]

MNIST_TEST_ONLY_CAVEAT = (
    "MNIST caveat: offline data is only the official 10,000-image MNIST *test* set, split "
    "(seeded, class-balanced) into train and test parts here; not the official protocol")


@dataclass(frozen=True)
class StudyData:
    """Train/test images (N, H, W, C) float32 in [0, 1] and int32 labels, with provenance."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int
    source: str
    caveat: str = ""

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(int(v) for v in self.x_train.shape[1:])

    def info(self) -> dict:
        return {"dataset": self.name, "source": self.source, "n_train": int(len(self.y_train)),
                "n_test": int(len(self.y_test)), "image_shape": list(self.image_shape),
                "num_classes": self.num_classes, "caveat": self.caveat}


def balanced_indices(y: np.ndarray, n: int, seed: int, num_classes: int) -> np.ndarray:
    """``n`` indices of y with (as near as possible) equal counts per class, seeded, sorted.
    ``n == 0`` or ``n >= len(y)``: all indices."""
    if n <= 0 or n >= len(y):
        return np.arange(len(y))
    rng = np.random.default_rng(seed)
    per = [rng.permutation(np.flatnonzero(y == c)) for c in range(num_classes)]
    base, extra = divmod(n, num_classes)
    take = [p[:base + (1 if c < extra else 0)] for c, p in enumerate(per)]
    return np.sort(np.concatenate(take))


def _split_test_only(x, y, fraction: float, seed: int, num_classes: int):
    rng = np.random.default_rng(seed)
    tr, te = [], []
    for c in range(num_classes):
        idx = rng.permutation(np.flatnonzero(y == c))
        k = int(round(fraction * len(idx)))
        te.append(idx[:k])
        tr.append(idx[k:])
    tr, te = np.sort(np.concatenate(tr)), np.sort(np.concatenate(te))
    return x[tr], y[tr], x[te], y[te]


def _float(x: np.ndarray) -> np.ndarray:
    return (np.asarray(x, np.float32) / 255.0).astype(np.float32)


def load_study_data(dataset: str, source: str = "auto", data_dir: str | Path | None = None,
                    n_train: int = 0, n_test: int = 0, split_seed: int = 0,
                    mnist_test_fraction: float = 0.5) -> StudyData:
    """Load ``'mnist'`` or ``'cifar10'`` for the study (see the module docstring).

    Subsets (``n_train``, ``n_test`` > 0) are class-balanced and seeded by ``split_seed``, the
    same for every seed of a sweep, so seeds differ only in initialisation and batch order.

    Raises:
      FileNotFoundError: no source has the dataset (the message says what to download where).
    """
    if dataset not in ("mnist", "cifar10"):
        raise ValueError(f"dataset must be 'mnist' or 'cifar10', got {dataset!r}")
    root = Path(data_dir) if data_dir else default_data_dir()
    num_classes = DATASETS[dataset][0]
    caveat = ""
    try:
        ds = load_dataset(dataset, root=root, source=source)
        xtr, ytr = ds.split("train")
        xte, yte = ds.split("test")
        src = ds.source
    except FileNotFoundError:
        if dataset != "mnist" or source == "tfds":
            raise
        test_file = root / "mnist" / "mnist_test.npz"
        if not (test_file.is_file() or (root / "mnist_test.npz").is_file()):
            raise FileNotFoundError(
                f"dataset 'mnist' not found: no mnist_train*.npz / mnist_test.npz under {root} "
                f"and tensorflow-datasets has none (prepare it with `tfds build mnist "
                f"--file_format=array_record`, or set data_dir / $JAXNAS_DATA_DIR)") from None
        ds = load_npz_dataset("mnist", root, splits=("test",))
        xtr, ytr, xte, yte = _split_test_only(*ds.split("test"), mnist_test_fraction,
                                              split_seed, num_classes)
        src = f"{ds.source} (official test set, split {1 - mnist_test_fraction:.0%} train / " \
              f"{mnist_test_fraction:.0%} test)"
        caveat = MNIST_TEST_ONLY_CAVEAT
    itr = balanced_indices(ytr, n_train, split_seed, num_classes)
    ite = balanced_indices(yte, n_test, split_seed + 1, num_classes)
    return StudyData(dataset, _float(xtr[itr]), ytr[itr].astype(np.int32), _float(xte[ite]),
                     yte[ite].astype(np.int32), num_classes, src, caveat)
