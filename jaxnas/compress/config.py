"""Settings of a compression study (``jaxnas compress --config FILE``), validated once.

A TOML file (or a dict) is parsed into the frozen :class:`CompressConfig` before any work:
unknown keys, wrong types, out-of-range or non-finite numbers and seeds outside [0, 2^32) are
refused with a ``ValueError`` whose one-line message names the key and the accepted range (the
CLI turns it into exit status 2). The lead's shared ``jaxnas/config.py`` may replace this later.

Every choice the paper (arXiv 2307.09994, METHODS.md section 7) leaves open is a key here; the
defaults are this project's choices, documented next to each field.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

__all__ = ["CompressConfig", "DATASET_NAMES", "config_from_dict"]

DATASET_NAMES = ("mnist", "cifar10")
_SOURCES = ("auto", "npz", "tfds")
_RECON = ("bernoulli", "gaussian")
_SCHEDULES = ("oneshot", "iterative")
_SCOPES = ("classifier", "all")


@dataclass(frozen=True)
class CompressConfig:
    """Every setting of a beta x sparsity sweep (all written to ``run.json``).

    Data:
      dataset: ``'mnist'`` or ``'cifar10'``.
      source: ``'auto'`` (local ``.npz`` under ``data_dir``, else tensorflow-datasets), ``'npz'``
        or ``'tfds'``. Offline MNIST is the official *test* set only, split in two (see
        :mod:`jaxnas.compress.data`); every MNIST number then carries that caveat.
      data_dir: folder of the local ``.npz`` files (default ``$JAXNAS_DATA_DIR``).
      n_train, n_test: class-balanced subsets (0 = all images).
      mnist_test_fraction: offline MNIST: fraction of the 10,000 test images held out for test.
    Model (choices; the paper's architecture is not public):
      latent_dim: size of z. channels: strided 4x4 conv widths of the encoder (the decoder
        mirrors them with transposed convs). hidden: width of the dense layer on each side.
      betas: the beta grid (each > 0). control: also train the plain classifier (no VAE).
      cls_weight: weight of the classification cross-entropy on z. recon: ``'bernoulli'``
        (sigmoid cross-entropy summed over pixels) or ``'gaussian'`` (half squared error).
    Training: epochs, batch_size, lr (Adam), seeds (each in [0, 2^32)).
    Pruning: sparsities (each in [0, 1)); schedule ``'oneshot'`` (one global magnitude step from
      the trained network) or ``'iterative'`` (``iterative_steps`` steps, equal pruning ratio
      each); finetune_steps after each step (0 = none); prune_scope ``'classifier'`` (the
      inference path: encoder, latent head, classifier) or ``'all'`` (the decoder too).
    Diagnostics: traversal_range (z values in [-r, r]), traversal_steps, traversal_latents
      (rows of the grid, the most active latents first), diag_images (test images used for
      per-latent KL, active units and total correlation), active_threshold (Burda et al. 2016:
      a unit is active when Cov_x(E[z|x]) exceeds it).
    """

    dataset: str = "mnist"
    source: str = "auto"
    data_dir: str | None = None
    n_train: int = 0
    n_test: int = 0
    mnist_test_fraction: float = 0.5
    latent_dim: int = 10
    channels: tuple[int, ...] = (32, 64)
    hidden: int = 256
    betas: tuple[float, ...] = (1.0, 4.0, 16.0)
    control: bool = True
    cls_weight: float = 10.0
    recon: str = "bernoulli"
    epochs: int = 5
    batch_size: int = 128
    lr: float = 1e-3
    seeds: tuple[int, ...] = (0, 1, 2)
    sparsities: tuple[float, ...] = (0.0, 0.5, 0.8, 0.9, 0.95)
    schedule: str = "oneshot"
    iterative_steps: int = 3
    finetune_steps: int = 100
    prune_scope: str = "classifier"
    traversal_range: float = 3.0
    traversal_steps: int = 9
    traversal_latents: int = 10
    diag_images: int = 1000
    active_threshold: float = 0.01
    name: str = field(default="", compare=False)

    def __post_init__(self):
        _validate(self)

    def as_dict(self) -> dict:
        d = dataclasses.asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}


_INT_MIN = {"n_train": 0, "n_test": 0, "latent_dim": 1, "hidden": 1, "epochs": 1,
            "batch_size": 2, "iterative_steps": 1, "finetune_steps": 0, "traversal_steps": 2,
            "traversal_latents": 1, "diag_images": 2}
_CHOICES = {"dataset": DATASET_NAMES, "source": _SOURCES, "recon": _RECON,
            "schedule": _SCHEDULES, "prune_scope": _SCOPES}


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v) -> bool:
    return (isinstance(v, (int, float)) and not isinstance(v, bool))


def _num(name: str, v, lo: float | None = None, hi: float | None = None, lo_open=False,
         hi_open=False, what: str = "") -> None:
    rng = (("(" if lo_open else "[") + ("-inf" if lo is None else f"{lo:g}") + ", "
           + ("inf" if hi is None else f"{hi:g}") + (")" if hi_open else "]"))
    if not _is_num(v) or not math.isfinite(v):
        raise ValueError(f"{name} must be a finite number in {rng}{what}, got {v!r}")
    bad = ((lo is not None and (v < lo or (lo_open and v == lo)))
           or (hi is not None and (v > hi or (hi_open and v == hi))))
    if bad:
        raise ValueError(f"{name} must be in {rng}{what}, got {v!r}")


def _validate(c: CompressConfig) -> None:
    for k, choices in _CHOICES.items():
        v = getattr(c, k)
        if v not in choices:
            raise ValueError(f"{k} must be one of {', '.join(choices)}, got {v!r}")
    if c.data_dir is not None and not isinstance(c.data_dir, str):
        raise ValueError(f"data_dir must be a string path, got {c.data_dir!r}")
    for k, lo in _INT_MIN.items():
        v = getattr(c, k)
        if not _is_int(v) or v < lo:
            raise ValueError(f"{k} must be an integer >= {lo}, got {v!r}")
    if not isinstance(c.control, bool):
        raise ValueError(f"control must be true or false, got {c.control!r}")
    _num("mnist_test_fraction", c.mnist_test_fraction, 0.0, 1.0, True, True)
    _num("cls_weight", c.cls_weight, 0.0, None, lo_open=False)
    _num("lr", c.lr, 0.0, 1.0, lo_open=True)
    _num("traversal_range", c.traversal_range, 0.0, None, lo_open=True)
    _num("active_threshold", c.active_threshold, 0.0, None)
    if not c.channels or not all(_is_int(v) and v >= 1 for v in c.channels) or len(c.channels) > 4:
        raise ValueError(f"channels must be a list of 1 to 4 positive integers, got {list(c.channels)!r}")
    if not c.betas and not c.control:
        raise ValueError("betas is empty and control is false: nothing to train")
    for b in c.betas:
        _num("betas", b, 0.0, None, lo_open=True, what=" (beta must be > 0)")
    if not c.seeds:
        raise ValueError("seeds must list at least one seed")
    for s in c.seeds:
        if not _is_int(s) or not 0 <= s < 2**32:
            raise ValueError(f"seeds must be integers in [0, 2^32), got {s!r}")
    if len(set(c.seeds)) != len(c.seeds):
        raise ValueError(f"seeds must be distinct, got {list(c.seeds)!r}")
    if not c.sparsities:
        raise ValueError("sparsities must list at least one sparsity in [0, 1)")
    for s in c.sparsities:
        _num("sparsities", s, 0.0, 1.0, hi_open=True)
    if len(set(c.sparsities)) != len(c.sparsities):
        raise ValueError(f"sparsities must be distinct, got {list(c.sparsities)!r}")


_TUPLES = {"channels", "betas", "seeds", "sparsities"}


def config_from_dict(data: dict, name: str = "") -> CompressConfig:
    """Build a :class:`CompressConfig` from a TOML-like dict.

    Raises:
      ValueError: one line naming the offending key (unknown keys, types, ranges).
    """
    if not isinstance(data, dict):
        raise ValueError(f"a compress config must be a table of keys, got {type(data).__name__}")
    known = {f.name for f in dataclasses.fields(CompressConfig)} - {"name"}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"unknown config key {unknown[0]!r}; known keys: {', '.join(sorted(known))}")
    kw = {}
    for k, v in data.items():
        if k in _TUPLES:
            if not isinstance(v, (list, tuple)):
                raise ValueError(f"{k} must be a list, got {v!r}")
            v = tuple(v)
        kw[k] = v
    return CompressConfig(**kw, name=name)
