"""Fitness estimators (protocol in :mod:`jaxnas.estimators.base`; lower is better).

- :class:`TableEstimator`: a benchmark-table column (traceable; test accuracy is an oracle).
- :class:`RMIEstimator`: representation similarity to a reference after one-batch training
  (METHODS.md 5.1), the package :mod:`jaxnas.estimators.rmi`.
- ``SupernetEstimator``: one-shot supernet accuracy, in :mod:`jaxnas.estimators.supernet`;
  imported lazily once it exists.

Registry (DESIGN.md convention 5): :func:`make_estimator` by name (``'table'``, ``'rmi'``,
``'supernet'``).
"""

from __future__ import annotations

import importlib

from jaxnas.data import prepare_rmi_batch
from jaxnas.estimators.base import (
    CachedEstimator,
    Estimator,
    check_estimator,
    estimator_name,
    fitness_fn,
    is_oracle,
)
from jaxnas.estimators.rmi import RMIEstimator, merge_settings
from jaxnas.estimators.table import TableEstimator

_LAZY = {
    "SupernetEstimator": ("jaxnas.estimators.supernet", "SupernetEstimator"),
}


def __getattr__(name: str):
    if name in _LAZY:
        module, attr = _LAZY[name]
        try:
            return getattr(importlib.import_module(module), attr)
        except ModuleNotFoundError as e:
            if e.name != module:
                raise
            raise ImportError(f"{name} is not available in this version of jaxnas "
                              f"({module} is missing)") from e
    raise AttributeError(f"module 'jaxnas.estimators' has no attribute {name!r}")


def _make_table(table=None, column: str = "cifar10_test_acc", **kwargs):
    if table is None:
        raise ValueError("the 'table' estimator needs a loaded benchmark table")
    if kwargs:
        raise ValueError(f"unknown options for the 'table' estimator: {', '.join(sorted(kwargs))}")
    return TableEstimator(table, column)


def _make_rmi(table=None, settings=None, log=None, x=None, y=None, teacher_features=None,
              **overrides):
    """``'rmi'`` from settings (the batch is loaded by :func:`jaxnas.data.prepare_rmi_batch`;
    ``setup`` holds its info, the strategy and the workers) or from arrays ``x``, ``y``,
    ``teacher_features`` (``overrides``: :class:`RMIEstimator` keywords)."""
    if table is not None:
        raise ValueError("the 'rmi' estimator takes no benchmark table")
    if x is not None or y is not None or teacher_features is not None:
        if x is None or y is None or teacher_features is None:
            raise ValueError("the 'rmi' estimator from arrays needs x, y and teacher_features")
        return RMIEstimator(x, y, teacher_features, settings, **overrides)
    s = merge_settings(settings, **overrides)
    x, y, feats, info = prepare_rmi_batch(s, log)
    est = RMIEstimator(x, y, feats, s, num_classes=info["num_classes"])
    est.setup = {**info, "strategy": est.strategy, "workers": est.workers}
    return est


ESTIMATORS = {"table": _make_table, "rmi": _make_rmi}


def make_estimator(name: str, table=None, **kwargs):
    """Build an estimator by registry name.

    ``'table'`` takes ``column=``. ``'rmi'`` takes ``settings=`` (a
    :class:`jaxnas.config.RMISettings` or a mapping; the batch is loaded from its data
    settings) and ``log=``, or ``x=, y=, teacher_features=`` arrays; further keywords are
    :class:`RMISettings` fields (and ``num_classes``, ``warmup`` with arrays). ``'supernet'``
    takes its constructor arguments.

    Raises:
        ValueError: an unknown name (listing the known ones) or bad options.
    """
    if name in ESTIMATORS:
        return ESTIMATORS[name](table=table, **kwargs)
    if name == "supernet":
        return __getattr__("SupernetEstimator")(**kwargs)
    raise ValueError(f"unknown estimator {name!r}; known: table, rmi, supernet")


__all__ = [
    "CachedEstimator",
    "ESTIMATORS",
    "Estimator",
    "RMIEstimator",
    "SupernetEstimator",
    "TableEstimator",
    "check_estimator",
    "estimator_name",
    "fitness_fn",
    "is_oracle",
    "make_estimator",
]
