"""Table-backed hardware costs: HW-NAS-Bench device latency/energy as a traceable gather.

A cost is addressed as ``(device, metric, dataset)`` and maps onto the table column
``<dataset>_<device>_<metric>`` (DESIGN.md "Public contract"). The table is a
:class:`jaxnas.bench.BenchTable` that the caller loaded; this module does no I/O.
"""

from __future__ import annotations

import numpy as np

from jaxnas.bench.table import (
    DATASETS,
    HW_DEVICES,
    HW_NAS_BENCH_URL,
    BenchTable,
    UnknownColumnError,
    dataset_key,
    hw_column,
)
from jaxnas.spaces import nb201

#: Metrics a TableCost can address on a HW-NAS-Bench device.
TABLE_METRICS: tuple[str, ...] = ("latency", "energy", "arithmetic_intensity")


class MissingCostError(UnknownColumnError):
    """The loaded table lacks the requested device/metric/dataset (a KeyError and a
    ValueError); the message names what is missing and how to get it."""


class TableCost:
    """Per-architecture cost looked up in a benchmark table.

    ``cost(codes)`` maps NB201 codes ``(..., 6)`` to jnp float32 ``(...)`` with one gather,
    so it works under ``jit``/``vmap``. Values are as tabulated (ms for latency, mJ for
    energy); NaN marks architectures the table does not know.

    Args:
        table: a loaded :class:`~jaxnas.bench.BenchTable`.
        device: one of the HW-NAS-Bench devices ``edgegpu, raspi4, edgetpu, pixel3,
            eyeriss, fpga``.
        metric: ``'latency'`` (default), ``'energy'`` or ``'arithmetic_intensity'``.
        dataset: ``'cifar10'`` (default), ``'cifar100'`` or ``'ImageNet16-120'``.

    Raises:
        ValueError: an unknown device, metric or dataset.
        MissingCostError: the table has no such column, or only NaNs in it; the message
            lists the devices the table has for that dataset and metric, and says to import
            the official HW-NAS-Bench pickle.
    """

    traceable = True

    def __init__(self, table: BenchTable, device: str, metric: str = "latency",
                 dataset: str = "cifar10"):
        if device not in HW_DEVICES:
            raise ValueError(
                f"unknown HW-NAS-Bench device {device!r}; devices are {', '.join(HW_DEVICES)} "
                "(for other columns use TableCost.from_column)"
            )
        if metric not in TABLE_METRICS:
            raise ValueError(f"unknown cost metric {metric!r}; expected one of {TABLE_METRICS}")
        ds = dataset_key(dataset)
        name = hw_column(ds, device, metric)
        if not table.has(name) or table.count(name) == 0:
            have = table.devices(ds, metric) if metric in ("latency", "energy") else ()
            state = "has no column" if not table.has(name) else "has only NaN in column"
            raise MissingCostError(
                f"the loaded table {state} {name!r} ({device} {metric} on {ds}); "
                f"devices with {ds} {metric} in it: {', '.join(have) if have else 'none'}. "
                f"Download HW-NAS-Bench-v1_0.pickle from {HW_NAS_BENCH_URL} and run "
                "`jaxnas table import HW-NAS-Bench-v1_0.pickle` (or pass the pickle to "
                "load_table) to get all six devices, three datasets and energies"
            )
        self._init(table, name)
        self.device, self.metric, self.dataset = device, metric, ds

    def _init(self, table: BenchTable, name: str) -> None:
        self.table = table
        self.column_name = name
        self.name = name
        self.unit = table.units[name]
        self.values = table.column(name)  # jnp float32 (15625,)
        self.coverage = table.count(name)

    @classmethod
    def from_column(cls, table: BenchTable, column: str) -> TableCost:
        """A cost over any table column (e.g. HELP's ``help_gold_6226_latency``)."""
        table.numpy(column)  # raises UnknownColumnError listing the columns
        self = cls.__new__(cls)
        self._init(table, column)
        self.device = self.metric = self.dataset = None
        return self

    def __call__(self, codes):
        """NB201 codes ``(..., 6)`` int -> jnp float32 ``(...)`` (a gather)."""
        return self.values[nb201.index_jax(codes)]

    def by_index(self, idx):
        """Official NB201 indices ``(...)`` -> jnp float32 ``(...)``."""
        return self.values[idx]

    def quantiles(self, q) -> np.ndarray:
        """Quantiles of the cost over all known architectures (e.g. constraint grids)."""
        col = self.table.numpy(self.column_name)
        return np.nanquantile(col.astype(np.float64), q)

    def __repr__(self) -> str:
        return f"TableCost({self.column_name!r}, {self.coverage}/{nb201.NUM_ARCHS} known)"


def available_costs(table: BenchTable) -> dict[str, tuple[str, ...]]:
    """``{'<dataset> <metric>': devices}`` for every HW-NAS-Bench (dataset, metric) pair."""
    return {
        f"{ds} {m}": table.devices(ds, m) for ds in DATASETS for m in ("latency", "energy")
    }
