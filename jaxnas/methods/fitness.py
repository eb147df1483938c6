"""The fitness source a config names (DESIGN.md convention 5, registries by name).

- ``estimator = "table"``: a column of the loaded benchmark table
  (:class:`~jaxnas.estimators.TableEstimator`; an oracle when it is a test accuracy).
- ``estimator = "rmi"``: the RMI proxy of METHODS.md 5.1 on real data, set up from the
  ``[rmi]`` table of the config (:class:`RMISettings`): the dataset's training images, its
  reference network (CIFAR-10: the pretrained ResNet-20; others: the one written by
  ``jaxnas train-reference``), the lowest-loss batch of ``batch_size`` out of
  ``pool_factor * batch_size`` augmented images, and an
  :class:`~jaxnas.estimators.RMIEstimator` trained for ``steps`` steps on it.

Files are read by the :mod:`jaxnas.data` loaders; nothing here writes any.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Mapping

from jaxnas.config import RMISettings as ConfigRMISettings
from jaxnas.config import parse

ESTIMATORS = ("table", "rmi")


@dataclass(frozen=True)
class RMISettings:
    """The ``[rmi]`` table of a search config (METHODS.md 5.1 defaults).

    Attributes:
        dataset: images of the selected batch: ``'cifar10'``, ``'cifar100'``, ``'mnist'`` or
            ``'digits'`` (see :data:`jaxnas.data.DATASETS`).
        source: ``'auto'`` (local ``.npz`` under ``data_dir`` if present, else
            tensorflow-datasets), ``'npz'`` or ``'tfds'``.
        data_dir: folder of the local ``.npz`` files and of named references (default
            ``$JAXNAS_DATA_DIR``, else the shared data folder).
        reference: ``'cifar10_resnet20'`` or a ``.npz`` from ``jaxnas train-reference``
            (default: the dataset's own reference).
        batch_size, pool_factor: the selected batch B (32) out of ``pool_factor * B`` (16 B).
        batch_seed: seed of the pool draw and its augmentation.
        steps: training steps; the score is the loss of forward ``steps`` (paper: 150).
        C, N: TinyNetwork width and cells per stage (paper: 16, 5).
        strategy: ``'auto'`` (measured default per backend), ``'composed'`` or ``'mask'``.
        workers: processes training members in parallel (``'composed'``; 0 = one per core).
        beta, lr, momentum, weight_decay, debiased: the loss and optimiser of METHODS.md 5.1.
    """

    dataset: str = "cifar10"
    source: str = "auto"
    data_dir: str | None = None
    reference: str | None = None
    batch_size: int = 32
    pool_factor: int = 16
    batch_seed: int = 0
    steps: int = 150
    C: int = 16
    N: int = 5
    strategy: str = "auto"
    workers: int = 0
    beta: float = 0.8
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    debiased: bool = False

    def validate(self):
        from jaxnas.data import DATASETS

        if self.dataset not in DATASETS:
            raise ValueError(f"rmi: unknown dataset {self.dataset!r}; known: {', '.join(DATASETS)}")
        for name in ("pool_factor", "C", "N"):
            if getattr(self, name) < 1:
                raise ValueError(f"rmi: {name} must be >= 1, got {getattr(self, name)}")
        if self.steps < 0 or self.workers < 0:
            raise ValueError(f"rmi: steps and workers must be >= 0, got {self.steps}, {self.workers}")
        if self.batch_size < 2:
            raise ValueError(f"rmi: CKA needs a batch of at least 2 images, got {self.batch_size}")


def rmi_settings(values: Mapping[str, Any] | None) -> RMISettings:
    """Parse and check the ``[rmi]`` table of a config (one-line ``ValueError`` on bad keys)."""
    from jaxnas.methods.common import parse_config

    s = parse_config(RMISettings, values, "rmi")
    s.validate()
    return s


def _settings(s: RMISettings):
    """This module's settings as the one settings class, :class:`jaxnas.config.RMISettings`."""
    return parse(ConfigRMISettings, dataclasses.asdict(s), "rmi")


def rmi_batch(s: RMISettings, log=None):
    """The selected batch: :func:`jaxnas.data.prepare_rmi_batch` of these settings."""
    from jaxnas.data import prepare_rmi_batch

    return prepare_rmi_batch(_settings(s), log)


def build_rmi_estimator(values: Mapping[str, Any] | RMISettings | None, log=None):
    """An :class:`~jaxnas.estimators.RMIEstimator` from the ``[rmi]`` settings of a config
    (``make_estimator('rmi', settings=...)``; its ``setup`` attribute holds the batch info,
    the strategy and the workers).

    Raises:
        ValueError: bad settings. FileNotFoundError: data or reference absent (says where).
    """
    from jaxnas.estimators import make_estimator

    s = values if isinstance(values, RMISettings) else rmi_settings(values)
    return make_estimator("rmi", settings=_settings(s), log=log)


def build_estimator(name: str, table, score_column: str, rmi: Mapping[str, Any] | None, log=None):
    """The estimator a config names: ``'table'`` or ``'rmi'`` (see the module docstring)."""
    from jaxnas.estimators import TableEstimator

    if name == "table":
        if rmi:
            raise ValueError("an [rmi] table is given but estimator is 'table'; set estimator = 'rmi'")
        if not table.has(score_column):
            raise ValueError(
                f"score_column {score_column!r} is not in the table; it has: "
                + ", ".join(c for c in table.columns if not c.startswith("help_"))
            )
        return TableEstimator(table, score_column)
    if name == "rmi":
        return build_rmi_estimator(rmi, log)
    raise ValueError(f"unknown estimator {name!r}; known: {', '.join(ESTIMATORS)}")
