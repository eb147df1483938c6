"""Reference ("teacher") models for the RMI proxy (METHODS.md 5.1) and their loaders.

A :class:`Reference` bundles a trained network with the input normalisation it was trained
with. **Normalisation is a setting of each reference**: the pretrained CIFAR-10 ResNet-20 uses
ImageNet mean/std (0.485, 0.456, 0.406) / (0.229, 0.224, 0.225), not CIFAR statistics; references
trained with ``jaxnas train-reference`` store the per-channel statistics of their training set.

Conventions for inputs:

- *raw* images: uint8 NHWC in 0..255, or float NHWC already scaled to [0, 1];
- *normalised* images: float32 ``(raw/255 - mean) / std``, what the network consumes and what
  :func:`jaxnas.data.select_lowest_loss_batch` returns.

API::

    ref = pretrained_cifar10_resnet20()          # or load_reference('cifar10_resnet20' | path.npz)
    ref.normalise(x_raw)                         # -> float32 normalised
    ref.apply(x_norm)                            # -> ((f1, f2, f3), logits); jitted, eval mode
    ref.apply_fn(variables, x_norm)              # the same, pure (use inside your own jit)
    ref.features(x_raw)  / ref.features(x_norm, normalised=True)   # -> (f1, f2, f3)
    ref.logits(x_raw)    / ref.logits(x_norm, normalised=True)     # -> (N, num_classes)
    ref.accuracy(x_raw, y, batch_size=500)       # top-1 in [0, 1]; batched, compiled once

For ResNet-20 on 32x32 inputs the features are (N,32,32,16), (N,16,16,32), (N,8,8,64): the
outputs of ``layer1``, ``layer2``, ``layer3`` (post-ReLU), as RMI-NAS uses them.

Files: a reference is stored as an ``.npz`` in PyTorch state_dict layout (the layout of the
pretrained ``resnet20_cifar10.npz``) plus, for trained ones, a JSON sidecar ``<same stem>.json``
with ``dataset``, ``test_accuracy``, ``normalisation`` {mean, std}, ``model`` and ``settings``.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from jaxnas._jaxcfg import cache_root
from jaxnas.data.augment import normalise as _normalise
from jaxnas.data.datasets import default_data_dir
from jaxnas.nets.resnet import load_resnet20

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "PRETRAINED_RESNET20_FILE",
    "REFERENCES",
    "Reference",
    "channel_stats",
    "load_reference",
    "pretrained_cifar10_resnet20",
    "reference_for_dataset",
    "trained_reference_path",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
PRETRAINED_RESNET20_FILE = "resnet20_cifar10.npz"


@functools.lru_cache(maxsize=None)
def _jitted_apply(model):
    def apply(variables, x):
        return model.apply(variables, x, train=False)

    return jax.jit(apply)


@dataclass(frozen=True, eq=False)
class Reference:
    """A trained reference network and its input normalisation.

    Attributes:
      name: e.g. ``'cifar10_resnet20'``.
      model: a flax module called as ``model.apply(variables, x, train=False)`` returning
        ``(features_tuple, logits)``.
      variables: its flax variables (``params``, ``batch_stats``).
      mean, std: per-channel normalisation of [0, 1]-scaled input (a setting of the reference).
      num_classes: number of logits.
      info: provenance and measured numbers (dataset, accuracy, source file, ...).
    """

    name: str
    model: object
    variables: Mapping
    mean: tuple[float, ...]
    std: tuple[float, ...]
    num_classes: int
    info: dict = field(default_factory=dict)

    @property
    def apply_fn(self):
        """Pure, jitted ``(variables, x_normalised) -> (features, logits)`` in eval mode."""
        return _jitted_apply(self.model)

    def normalise(self, x) -> jax.Array:
        """Raw images (uint8 0..255 or float in [0, 1]), NHWC -> float32 normalised."""
        return _normalise(x, self.mean, self.std)

    def apply(self, x_normalised) -> tuple[tuple[jax.Array, ...], jax.Array]:
        """Normalised float32 NHWC -> ``((f1, f2, f3), logits)``, eval mode (running BN stats)."""
        return self.apply_fn(self.variables, jnp.asarray(x_normalised, jnp.float32))

    def __call__(self, x, normalised: bool = False):
        return self.apply(x if normalised else self.normalise(x))

    def features(self, x, normalised: bool = False) -> tuple[jax.Array, ...]:
        """The three stage outputs. ``x`` raw unless ``normalised=True``."""
        return self(x, normalised)[0]

    def logits(self, x, normalised: bool = False) -> jax.Array:
        """(N, num_classes) logits. ``x`` raw unless ``normalised=True``."""
        return self(x, normalised)[1]

    def predict(self, x, batch_size: int = 500, normalised: bool = False) -> np.ndarray:
        """Top-1 class for each image, computed in fixed-size batches (one compilation).

        Args:
          x: (N, H, W, C) raw (uint8 / float [0, 1]) or, with ``normalised=True``, normalised.
          batch_size: images per forward call; the last batch is zero-padded to this size.
        Returns:
          (N,) int32 numpy array.
        """
        n = len(x)
        out = np.empty((n,), np.int32)
        fwd = _jitted_predict(self.model, normalised, self.mean, self.std)
        for i in range(0, n, batch_size):
            xb = np.asarray(x[i:i + batch_size])
            m = len(xb)
            if m < batch_size:
                xb = np.concatenate([xb, np.zeros((batch_size - m, *xb.shape[1:]), xb.dtype)])
            out[i:i + m] = np.asarray(fwd(self.variables, xb))[:m]
        return out

    def accuracy(self, x, y, batch_size: int = 500, normalised: bool = False) -> float:
        """Top-1 accuracy in [0, 1] over ``(x, y)``; see :meth:`predict`."""
        y = np.asarray(y)
        return float(np.mean(self.predict(x, batch_size, normalised) == y))


@functools.lru_cache(maxsize=None)
def _jitted_predict(model, normalised: bool, mean: tuple, std: tuple):
    def fwd(variables, xb):
        xn = xb.astype(jnp.float32) if normalised else _normalise(xb, mean, std)
        return jnp.argmax(model.apply(variables, xn, train=False)[1], axis=-1).astype(jnp.int32)

    return jax.jit(fwd)


def pretrained_cifar10_resnet20(path: str | Path | None = None) -> Reference:
    """The pretrained CIFAR-10 ResNet-20 (akamaster/pytorch_resnet_cifar10, 91.73 % here).

    Args:
      path: the ``resnet20_cifar10.npz`` file, or a folder holding it; default
        ``<data folder>/resnet20_cifar10.npz`` (:func:`default_data_dir`: ``$JAXNAS_DATA_DIR``,
        else a checkout's ``../shared/data``, else ``~/.cache/jaxnas/data``).
    Returns:
      a :class:`Reference` with ImageNet mean/std normalisation (as the checkpoint was trained).
    Raises:
      FileNotFoundError / ValueError from :func:`jaxnas.nets.resnet.load_resnet20`.
    """
    p = Path(path) if path is not None else default_data_dir()
    if p.is_dir() or path is None:
        p = p / PRETRAINED_RESNET20_FILE
    model, variables = load_resnet20(p)
    return Reference(
        name="cifar10_resnet20", model=model, variables=variables,
        mean=IMAGENET_MEAN, std=IMAGENET_STD, num_classes=model.num_classes,
        info={"dataset": "cifar10", "source": "akamaster/pytorch_resnet_cifar10 resnet20-12fca82f.th",
              "file": str(p), "reported_test_accuracy": 0.9173})


def _load_trained(path: Path) -> Reference:
    meta_path = path.with_suffix(".json")
    if not meta_path.is_file():
        raise FileNotFoundError(
            f"reference {path} has no sidecar {meta_path.name} (normalisation is needed); "
            "files from `jaxnas train-reference` come in pairs .npz + .json")
    try:
        meta = json.loads(meta_path.read_text())
        # jaxnas train-reference writes "normalisation"; the shared resnet20_cifar10.json
        # spec calls it "input_preprocessing". Both hold per-channel mean/std of [0, 1] input.
        norm = meta["normalisation"] if "normalisation" in meta else meta["input_preprocessing"]
        mean, std = tuple(float(v) for v in norm["mean"]), tuple(float(v) for v in norm["std"])
    except (ValueError, KeyError, TypeError) as e:
        raise ValueError(f"{meta_path}: not a jaxnas reference description ({e})") from e
    model, variables = load_resnet20(path)
    return Reference(name=meta.get("name", path.stem), model=model, variables=variables,
                     mean=mean, std=std, num_classes=model.num_classes,
                     info={**meta, "file": str(path)})


#: Named references: name -> loader(root folder or None).
REFERENCES = {"cifar10_resnet20": pretrained_cifar10_resnet20}


def trained_reference_path(dataset: str, arch: str = "resnet20", root: str | Path | None = None) -> Path:
    """Where ``jaxnas train-reference`` puts a reference by default: ``<root>/references/<dataset>_<arch>.npz``.

    ``root`` defaults to the jaxnas cache folder (``$JAXNAS_CACHE_DIR`` or ``~/.cache/jaxnas``).
    """
    if root is None:
        root = cache_root()
    return Path(root) / "references" / f"{dataset}_{arch}.npz"


def load_reference(spec: str | Path, root: str | Path | None = None) -> Reference:
    """Load a reference by name (see :data:`REFERENCES`) or from a trained ``.npz`` path.

    Args:
      spec: ``'cifar10_resnet20'`` or a path to an ``.npz`` written by ``jaxnas train-reference``
        (its ``.json`` sidecar gives the normalisation).
      root: data folder for named references (default :func:`default_data_dir`).
    Raises:
      ValueError: unknown name. FileNotFoundError: missing file (says where it should be).
    """
    s = str(spec)
    if s in REFERENCES:
        return REFERENCES[s](root)
    if s.endswith(".npz") or Path(s).exists():
        p = Path(s)
        if not p.is_file():
            raise FileNotFoundError(f"reference file not found: {p}")
        if p.name == PRETRAINED_RESNET20_FILE:
            return pretrained_cifar10_resnet20(p)
        return _load_trained(p)  # needs the .json sidecar for the normalisation
    raise ValueError(f"unknown reference {s!r}; use one of {sorted(REFERENCES)} or a path to an .npz "
                     "written by `jaxnas train-reference`")


def reference_for_dataset(dataset: str, root: str | Path | None = None,
                          cache: str | Path | None = None) -> Reference:
    """The default reference for a dataset.

    CIFAR-10: the pretrained ResNet-20. Other datasets have no published reference here: the
    one trained by ``jaxnas train-reference --dataset <name>`` at
    :func:`trained_reference_path` is used, and a clear error says how to make it if absent.
    """
    if dataset == "cifar10":
        return pretrained_cifar10_resnet20(root)
    p = trained_reference_path(dataset, root=cache)
    if not p.is_file():
        raise FileNotFoundError(
            f"no reference for dataset {dataset!r}: train one with "
            f"`jaxnas train-reference --dataset {dataset}` (writes {p})")
    return _load_trained(p)


def channel_stats(x: np.ndarray, chunk: int = 10000) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std of uint8 NHWC images scaled to [0, 1] (for trained references).

    Args:
      x: (N, H, W, C) uint8.
    Returns:
      (mean, std), tuples of C floats.
    """
    x = np.asarray(x)
    c = x.shape[-1]
    s = np.zeros(c, np.float64)
    s2 = np.zeros(c, np.float64)
    n = 0
    for i in range(0, len(x), chunk):
        xb = x[i:i + chunk].reshape(-1, c).astype(np.float64) / 255.0
        s += xb.sum(0)
        s2 += (xb * xb).sum(0)
        n += xb.shape[0]
    mean = s / n
    std = np.sqrt(np.maximum(s2 / n - mean * mean, 1e-12))
    return tuple(float(v) for v in mean), tuple(float(v) for v in std)

