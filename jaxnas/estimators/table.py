"""Benchmark look-up estimator: a column of a :class:`~jaxnas.bench.BenchTable`.

Accuracy columns (``*_acc``, also the 12-epoch ``*_valid_acc_hp12``) score ``100 - accuracy``
(lower is better, as every estimator); latency, energy and any other column are returned as
they are. The look-up is one gather, so the estimator is traceable and a whole search over it
compiles.

**Oracle label.** A search whose fitness is a *test* accuracy selects on the test set, so it
is an optimiser benchmark against an oracle, not a NAS result: ``oracle`` is True for
``*test_acc*`` columns and every report written from such a run says so (DESIGN.md). The
12-epoch validation accuracies (``<dataset>_valid_acc_hp12``, ``nb201_hp12_accuracy.csv.gz``)
are the non-oracle protocol: search on them, report the 200-epoch test accuracy.
"""

from __future__ import annotations

import jax.numpy as jnp

from jaxnas.bench.table import dataset_key, is_accuracy
from jaxnas.spaces import nb201


def _kind(column: str) -> str:
    # ``*_acc``, ``*_accuracy`` and the 12-epoch ``*_valid_acc_hp12`` / ``*_test_acc_hp12``
    return "accuracy" if is_accuracy(column) else "cost"


class TableEstimator:
    """Scores NB201 architectures by a table column.

    Args:
        table: a loaded benchmark table.
        column: e.g. ``'cifar10_test_acc'`` (scores ``100 - acc``) or
            ``'cifar10_pixel3_latency'`` (scores the latency).

    Attributes:
        traceable: True.
        oracle: True when the column is a test accuracy.
        name, column, unit, kind (``'accuracy'`` or ``'cost'``).

    Raises:
        KeyError/ValueError (``UnknownColumnError``) naming the columns the table has.
    """

    traceable = True

    def __init__(self, table, column: str = "cifar10_test_acc"):
        self.table = table
        self.column = column
        self.values = table.column(column)  # raises UnknownColumnError listing the columns
        self.kind = _kind(column)
        self.unit = table.units.get(column, "")
        self.oracle = self.kind == "accuracy" and "test" in column.lower()
        self.name = f"table:{column}" + (" (oracle: test accuracy)" if self.oracle else "")
        self.scores = 100.0 - self.values if self.kind == "accuracy" else self.values

    @classmethod
    def for_dataset(cls, table, dataset: str = "cifar10", metric: str = "test_acc"):
        """``TableEstimator(table, f'{dataset}_{metric}')`` with dataset names normalised."""
        return cls(table, f"{dataset_key(dataset)}_{metric}")

    def evaluate(self, key, archs) -> jnp.ndarray:
        """NB201 codes ``(P, 6)`` -> float32 ``(P,)`` scores, lower is better (NaN if unknown)."""
        return self.scores[nb201.index_jax(jnp.asarray(archs))]

    def by_index(self, idx) -> jnp.ndarray:
        """Scores of official NB201 indices."""
        return self.scores[idx]

    def to_metric(self, score):
        """Score back to the column's own unit (accuracy in %, cost as is)."""
        return 100.0 - score if self.kind == "accuracy" else score

    def __repr__(self) -> str:
        return f"TableEstimator({self.column!r}{', oracle' if self.oracle else ''})"
