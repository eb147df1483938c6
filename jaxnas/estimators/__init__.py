"""Fitness estimators (protocol in :mod:`jaxnas.estimators.base`; lower is better).

- :class:`TableEstimator`: a benchmark-table column (traceable; test accuracy is an oracle).
- ``RMIEstimator``: representation similarity to a reference after one-batch training
  (METHODS.md 5.1), in :mod:`jaxnas.estimators.rmi`; imported lazily.
- ``SupernetEstimator``: one-shot supernet accuracy, in :mod:`jaxnas.estimators.supernet`;
  imported lazily once it exists.

Registry (DESIGN.md convention 5): :func:`make_estimator` by name (``'table'``, ``'rmi'``,
``'supernet'``).
"""

from __future__ import annotations

import importlib

from jaxnas.estimators.base import (
    CachedEstimator,
    Estimator,
    check_estimator,
    estimator_name,
    fitness_fn,
    is_oracle,
)
from jaxnas.estimators.table import TableEstimator

_LAZY = {
    "RMIEstimator": ("jaxnas.estimators.rmi", "RMIEstimator"),
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


ESTIMATORS = {"table": _make_table}


def make_estimator(name: str, table=None, **kwargs):
    """Build an estimator by registry name.

    ``'table'`` takes ``column=``; ``'rmi'`` and ``'supernet'`` take their own constructor
    arguments (see those classes).

    Raises:
        ValueError: an unknown name (listing the known ones) or bad options.
    """
    if name in ESTIMATORS:
        return ESTIMATORS[name](table=table, **kwargs)
    if name == "rmi":
        return __getattr__("RMIEstimator")(**kwargs)
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
