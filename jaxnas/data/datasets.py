"""Dataset loaders: local ``.npz`` files, tensorflow-datasets, and scikit-learn's bundled digits.

Every loader returns images as **uint8 NHWC** (grey-scale gets a channel axis of 1) and labels
as **int32**, so augmentation and normalisation are the same for all sources.

Sources (DESIGN.md "Data"):

- ``load_npz_dataset(name, root)``: local files ``<root>/<name>/<name>_train*.npz`` and
  ``<root>/<name>/<name>_test.npz`` (also accepted directly in ``<root>``), each with ``x``
  (N, H, W[, C]) uint8 and ``y`` (N,) integer labels. Several train part files
  (``cifar10_train_part0..4.npz``) are concatenated in sorted order. This is the form of the
  shared CIFAR-10 and MNIST files.
- ``load_tfds(name, split)``: ``tfds.data_source`` (ArrayRecord random access), so TensorFlow
  is not needed. Works for ``cifar10``, ``cifar100`` and ``mnist`` once prepared
  (``tfds build <name> --file_format=array_record``) and under ``tfds.testing.mock_data``.
- ``load_digits_dataset(seed)``: scikit-learn's bundled 8x8 digits (1,797 real images, no
  download), split into train/test by a fixed seeded stratified split. The offline default.
- ``load_dataset(name, ...)``: by name; picks the local npz if present, else tfds.

Missing files or unknown names raise one clear error saying what to download and where to put it.

Data is found in ``root`` if given, else ``$JAXNAS_DATA_DIR``, else a source checkout's
``../shared/data`` if it exists, else ``<cache_root()>/data`` (``~/.cache/jaxnas/data``); see
:func:`default_data_dir`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from jaxnas import _paths

__all__ = [
    "DATASETS",
    "Dataset",
    "default_data_dir",
    "load_dataset",
    "load_digits_dataset",
    "load_npz_dataset",
    "load_npz_split",
    "load_tfds",
]

#: Names ``load_dataset`` knows: name -> (number of classes, image shape HWC).
DATASETS: dict[str, tuple[int, tuple[int, int, int]]] = {
    "cifar10": (10, (32, 32, 3)),
    "cifar100": (100, (32, 32, 3)),
    "mnist": (10, (28, 28, 1)),
    "digits": (10, (8, 8, 1)),
}
_TFDS_NAMES = ("cifar10", "cifar100", "mnist")


@dataclass(frozen=True)
class Dataset:
    """An image classification dataset held in memory.

    Attributes:
      name: dataset name (``'cifar10'``, ``'digits'``, ...).
      x_train, x_test: (N, H, W, C) uint8, or None when that split was not loaded.
      y_train, y_test: (N,) int32, or None.
      num_classes: number of classes.
      source: where it came from (a path, ``'tfds:<name>'`` or ``'sklearn'``).
    """

    name: str
    x_train: np.ndarray | None
    y_train: np.ndarray | None
    x_test: np.ndarray | None
    y_test: np.ndarray | None
    num_classes: int
    source: str = ""

    @property
    def image_shape(self) -> tuple[int, int, int]:
        x = self.x_train if self.x_train is not None else self.x_test
        return tuple(x.shape[1:])

    def split(self, which: str) -> tuple[np.ndarray, np.ndarray]:
        """``(x, y)`` of ``'train'`` or ``'test'``; a clear error if that split is absent."""
        if which not in ("train", "test"):
            raise ValueError(f"unknown split {which!r}; use 'train' or 'test'")
        x, y = getattr(self, f"x_{which}"), getattr(self, f"y_{which}")
        if x is None:
            raise ValueError(f"dataset {self.name!r} ({self.source}) has no {which} split loaded")
        return x, y


def default_data_dir() -> Path:
    """The data folder: ``$JAXNAS_DATA_DIR`` if set, else ``../shared/data`` beside a source
    checkout of jaxnas when it exists (the developer fallback), else ``<jaxnas cache>/data``
    (``~/.cache/jaxnas/data``). One resolver for all loaders: :func:`jaxnas._paths.data_dir`."""
    return _paths.data_dir()


def _as_nhwc_uint8(x: np.ndarray, where: str) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4:
        raise ValueError(f"{where}: images must be (N, H, W) or (N, H, W, C), got shape {x.shape}")
    if x.dtype != np.uint8:
        if np.issubdtype(x.dtype, np.integer) and x.size and (x.min() < 0 or x.max() > 255):
            raise ValueError(f"{where}: integer images must lie in 0..255, got {x.min()}..{x.max()}")
        if np.issubdtype(x.dtype, np.floating):
            raise ValueError(f"{where}: expected uint8 images, got {x.dtype}")
        x = x.astype(np.uint8)
    return x


def _missing_message(name: str, root: Path, detail: str) -> str:
    if name in _TFDS_NAMES:
        how = (f"either put {name}_train*.npz and {name}_test.npz (arrays x uint8 NHWC, y int) "
               f"in {root / name}/ (or set $JAXNAS_DATA_DIR), or prepare it for tensorflow-datasets "
               f"with `tfds build {name} --file_format=array_record` and load with source='tfds'")
    else:
        how = f"put {name}_train*.npz and {name}_test.npz (x uint8 NHWC, y int) in {root / name}/"
    return f"dataset {name!r} not found ({detail}): {how}"


def load_npz_split(files: list[Path] | Path) -> tuple[np.ndarray, np.ndarray]:
    """Read and concatenate ``x``/``y`` from one or more ``.npz`` files (no pickle).

    Returns:
      x (N, H, W, C) uint8 and y (N,) int32.
    Raises:
      FileNotFoundError / ValueError naming the offending file.
    """
    files = [Path(files)] if isinstance(files, str | Path) else [Path(f) for f in files]
    xs, ys = [], []
    for f in files:
        if not f.is_file():
            raise FileNotFoundError(f"no such file: {f}")
        try:
            with np.load(f, allow_pickle=False) as z:
                arrays = {k: z[k] for k in ("x", "y") if k in z.files}
                found = list(z.files)
        except Exception as e:  # BadZipFile, OSError, ValueError (pickled), EOFError ...
            raise ValueError(f"cannot read {f}: corrupt or not an .npz file ({e})") from e
        if set(arrays) != {"x", "y"}:
            raise ValueError(f"{f}: expected arrays 'x' and 'y', found {found}")
        x, y = arrays["x"], arrays["y"]
        x = _as_nhwc_uint8(x, str(f))
        y = np.asarray(y)
        if y.shape != (x.shape[0],) or not np.issubdtype(y.dtype, np.integer):
            raise ValueError(f"{f}: labels y must be (N,) integers, got {y.dtype} {y.shape}")
        xs.append(x)
        ys.append(y.astype(np.int32))
    shapes = {x.shape[1:] for x in xs}
    if len(shapes) > 1:
        raise ValueError(f"image shapes differ between files {[str(f) for f in files]}: {shapes}")
    return np.concatenate(xs), np.concatenate(ys)


def _part_key(p: Path):
    m = re.search(r"(\d+)\.npz$", p.name)
    return (int(m.group(1)) if m else -1, p.name)


def _split_files(name: str, root: Path, split: str) -> list[Path]:
    for folder in (root / name, root):
        exact = folder / f"{name}_{split}.npz"
        if exact.is_file():
            return [exact]
        parts = sorted(folder.glob(f"{name}_{split}_part*.npz"), key=_part_key)
        if parts:
            return parts
    return []


def load_npz_dataset(name: str, root: str | Path | None = None,
                     splits: tuple[str, ...] = ("train", "test"),
                     num_classes: int | None = None) -> Dataset:
    """Load ``name`` from local ``.npz`` files.

    Looks for ``<root>/<name>/<name>_<split>.npz`` or ``<name>_<split>_part*.npz`` (then the same
    names directly in ``root``). The shared CIFAR-10 data is ``cifar10/cifar10_test.npz`` and
    ``cifar10/cifar10_train_part0..4.npz``; MNIST there has only ``mnist/mnist_test.npz``, so
    load it with ``splits=('test',)``.

    Args:
      name: dataset name, used in the file names.
      root: data folder; default :func:`default_data_dir`.
      splits: which of ``'train'``, ``'test'`` to load; the others are None.
      num_classes: default from :data:`DATASETS`, else ``max(y) + 1``.
    Returns:
      a :class:`Dataset` with uint8 NHWC images and int32 labels.
    Raises:
      FileNotFoundError: a requested split has no file; the message says what to put where.
    """
    root = Path(root) if root is not None else default_data_dir()
    bad = [s for s in splits if s not in ("train", "test")]
    if bad:
        raise ValueError(f"unknown split {bad[0]!r}; use 'train' and/or 'test'")
    out: dict[str, tuple[np.ndarray, np.ndarray] | tuple[None, None]] = {}
    for split in ("train", "test"):
        if split not in splits:
            out[split] = (None, None)
            continue
        files = _split_files(name, root, split)
        if not files:
            raise FileNotFoundError(_missing_message(
                name, root, f"no {name}_{split}.npz or {name}_{split}_part*.npz in {root / name} or {root}"))
        out[split] = load_npz_split(files)
    if num_classes is None:
        num_classes = DATASETS[name][0] if name in DATASETS else int(
            max(int(y.max()) for _, y in out.values() if y is not None) + 1)
    return Dataset(name, *out["train"], *out["test"], num_classes=num_classes,
                   source=str(root / name if (root / name).is_dir() else root))


def load_tfds(name: str, split: str, data_dir: str | Path | None = None,
              download: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Read a whole tfds split through ``tfds.data_source`` (no TensorFlow needed).

    Args:
      name: a tfds image classification dataset with ``image`` and ``label`` features
        (``'cifar10'``, ``'cifar100'``, ``'mnist'``).
      split: a tfds split, e.g. ``'train'``, ``'test'``, ``'train[:10%]'``.
      data_dir: the tfds data folder (default: tfds's, ``~/tensorflow_datasets``).
      download: let tfds download and prepare the dataset if it is absent.
    Returns:
      x (N, H, W, C) uint8, y (N,) int32. For cifar100 the fine ``label`` is used.
    Raises:
      FileNotFoundError: the dataset is not prepared (with how to prepare it).
    """
    import tensorflow_datasets as tfds

    kwargs = {"split": split, "download": download}
    if data_dir is not None:
        kwargs["data_dir"] = str(data_dir)
    try:
        src = tfds.data_source(name, **kwargs)
    except Exception as e:  # tfds raises several types for "not prepared"
        where = data_dir if data_dir is not None else "tfds's data_dir (~/tensorflow_datasets)"
        raise FileNotFoundError(
            f"tensorflow-datasets {name!r} split {split!r} is not available in {where}: prepare it "
            f"with `tfds build {name} --file_format=array_record` (or pass download=True); "
            f"tfds said: {str(e).splitlines()[0] if str(e) else type(e).__name__}") from e
    n = len(src)
    if n == 0:
        raise ValueError(f"tfds {name!r} split {split!r} is empty")
    first = src[0]
    x = np.empty((n, *np.shape(first["image"])), np.uint8)
    y = np.empty((n,), np.int32)
    for i in range(n):  # random access by index works on real ArrayRecord sources and mocks
        rec = first if i == 0 else src[i]
        x[i] = rec["image"]
        y[i] = rec["label"]
    return _as_nhwc_uint8(x, f"tfds:{name}"), y


def load_digits_dataset(seed: int = 0, test_fraction: float = 0.25) -> Dataset:
    """scikit-learn's bundled 8x8 handwritten digits as a dataset (offline, real data).

    The 1,797 images (grey levels 0..16) are mapped to uint8 by ``round(v * 255 / 16)``
    (lossless: the 17 levels stay distinct) and split by a stratified, seeded split.

    Args:
      seed: split seed; the same seed always gives the same split.
      test_fraction: fraction of images in the test split.
    Returns:
      a :class:`Dataset` with x (N, 8, 8, 1) uint8 and y int32, 10 classes.
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    d = load_digits()
    x = np.round(d.images * (255.0 / 16.0)).astype(np.uint8)[..., None]
    y = d.target.astype(np.int32)
    xtr, xte, ytr, yte = train_test_split(x, y, test_size=test_fraction, random_state=seed,
                                          stratify=y)
    return Dataset("digits", xtr, ytr, xte, yte, num_classes=10, source="sklearn")


def load_dataset(name: str, root: str | Path | None = None, source: str = "auto",
                 splits: tuple[str, ...] = ("train", "test"), seed: int = 0,
                 tfds_data_dir: str | Path | None = None) -> Dataset:
    """Load a dataset by name: ``'digits'``, ``'cifar10'``, ``'cifar100'`` or ``'mnist'``.

    Args:
      name: dataset name (see :data:`DATASETS`).
      root: folder of local ``.npz`` files (default :func:`default_data_dir`).
      source: ``'auto'`` (local npz if its files exist, else tensorflow-datasets), ``'npz'``
        or ``'tfds'``. ``'digits'`` always comes from scikit-learn.
      splits: splits to load (``'train'``, ``'test'``).
      seed: the digits train/test split seed.
      tfds_data_dir: tfds's data folder.
    Returns:
      a :class:`Dataset`.
    Raises:
      ValueError: unknown name or source. FileNotFoundError: data absent (says what to do).
    """
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}")
    if source not in ("auto", "npz", "tfds"):
        raise ValueError(f"unknown source {source!r}; use 'auto', 'npz' or 'tfds'")
    if name == "digits":
        return load_digits_dataset(seed)
    root_p = Path(root) if root is not None else default_data_dir()
    have_npz = all(_split_files(name, root_p, s) for s in splits)
    if source == "npz" or (source == "auto" and have_npz):
        return load_npz_dataset(name, root_p, splits)
    try:
        arrays = {s: load_tfds(name, s, tfds_data_dir) for s in splits}
    except FileNotFoundError as e:
        if source == "tfds":
            raise
        raise FileNotFoundError(_missing_message(
            name, root_p, f"no local npz under {root_p} and tensorflow-datasets has none")) from e
    tr = arrays.get("train", (None, None))
    te = arrays.get("test", (None, None))
    return Dataset(name, *tr, *te, num_classes=DATASETS[name][0], source=f"tfds:{name}")
