"""The in-memory NB201 benchmark table: one float32 column per metric, rows in official
NAS-Bench-201 index order (DESIGN.md "Public contract").

Column names follow ``<dataset>_<metric>``: ``<dataset>`` is ``cifar10``, ``cifar100`` or
``imagenet16_120`` (the official ``ImageNet16-120``), and ``<metric>`` is ``test_acc`` (200
epochs), ``valid_acc_hp12`` / ``test_acc_hp12`` (12 epochs), or
``<device>_latency`` / ``<device>_energy`` for the six HW-NAS-Bench devices. The pickle's
``eyeriss_arithmetic_intensity`` becomes ``<dataset>_eyeriss_arithmetic_intensity``; other
columns (HELP's ``help_*_latency``) keep their source names.

This module does no file I/O; :mod:`jaxnas.bench.loaders` builds tables from files.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterable, Mapping

import numpy as np

from jaxnas.spaces import nb201

NUM_ARCHS = nb201.NUM_ARCHS
#: The six HW-NAS-Bench devices, in the order of the HW-NAS-Bench paper.
HW_DEVICES: tuple[str, ...] = ("edgegpu", "raspi4", "edgetpu", "pixel3", "eyeriss", "fpga")
HW_METRICS: tuple[str, ...] = ("latency", "energy")
#: Metric names of ``HW-NAS-Bench-v1_0.pickle``'s NB201 part (besides ``config``).
HW_PICKLE_METRICS: tuple[str, ...] = (
    "edgegpu_latency",
    "edgegpu_energy",
    "raspi4_latency",
    "edgetpu_latency",
    "pixel3_latency",
    "eyeriss_latency",
    "eyeriss_energy",
    "eyeriss_arithmetic_intensity",
    "fpga_latency",
    "fpga_energy",
)
DATASETS: tuple[str, ...] = ("cifar10", "cifar100", "imagenet16_120")
_DATASET_ALIASES = {
    "cifar10": "cifar10",
    "cifar-10": "cifar10",
    "cifar100": "cifar100",
    "cifar-100": "cifar100",
    "imagenet16-120": "imagenet16_120",
    "imagenet16_120": "imagenet16_120",
    "imagenet16": "imagenet16_120",
    "in16": "imagenet16_120",
}
HW_NAS_BENCH_URL = "https://github.com/GATECH-EIC/HW-NAS-Bench"


def dataset_key(name: str) -> str:
    """Official or lower-case dataset name -> column prefix (``'ImageNet16-120'`` ->
    ``'imagenet16_120'``). Raises ValueError for an unknown dataset."""
    key = _DATASET_ALIASES.get(str(name).strip().lower())
    if key is None:
        raise ValueError(
            f"unknown dataset {name!r}; expected one of cifar10, cifar100, ImageNet16-120"
        )
    return key


def hw_column(dataset: str, device: str, metric: str = "latency") -> str:
    """Column name of a HW-NAS-Bench cost: ``<dataset>_<device>_<metric>``."""
    return f"{dataset_key(dataset)}_{device}_{metric}"


_ACCURACY = re.compile(r"(?:^|_)(?:acc|accuracy)(?:_|$)")


def is_accuracy(column: str) -> bool:
    """Whether a column holds an accuracy in %: its name has an ``acc`` or ``accuracy`` part
    (``cifar10_test_acc``, ``cifar10_valid_acc_hp12``, NASLib's ``val_accuracy``)."""
    return _ACCURACY.search(column.lower()) is not None


def unit_for(column: str) -> str:
    """Unit of a column, from its name: % for accuracies, ms for latencies, mJ for energies."""
    c = column.lower()
    if is_accuracy(c):
        return "%"
    if c.endswith("_latency"):
        return "ms"
    if c.endswith("_energy"):
        return "mJ"
    if c.endswith("arithmetic_intensity"):
        return "op/B"
    if c.endswith("flops"):
        return "MFLOPs"
    if c.endswith("params"):
        return "M"
    return "-"


class UnknownColumnError(KeyError, ValueError):
    """An unknown column name; the message lists what the table has (also a ValueError)."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


class BenchTable:
    """Per-architecture metrics of the 15,625 NB201 cells.

    Attributes:
        columns: tuple of column names.
        values: float32 ``(15625, len(columns))``, read-only, NaN where unknown; row i is
            official NAS-Bench-201 index i.
        units: column -> unit (``'%'``, ``'ms'``, ``'mJ'``, ...).
        sources: column -> source file name.

    Look-ups are gathers: :meth:`column` gives a jnp ``(15625,)`` array, and
    :meth:`lookup` indexes it by NB201 codes inside ``jit``/``vmap``.
    """

    def __init__(
        self,
        columns: Iterable[str],
        values,
        units: Mapping[str, str] | None = None,
        sources: Mapping[str, str] | None = None,
    ):
        columns = tuple(str(c) for c in columns)
        values = np.array(values, dtype=np.float32, copy=True)
        if values.ndim != 2 or values.shape != (NUM_ARCHS, len(columns)):
            raise ValueError(
                f"table values must have shape ({NUM_ARCHS}, {len(columns)}), got {values.shape}"
            )
        dup = sorted({c for c in columns if columns.count(c) > 1})
        if dup:
            raise ValueError(f"duplicate table columns: {', '.join(dup)}")
        values.setflags(write=False)
        self.columns: tuple[str, ...] = columns
        self.values: np.ndarray = values
        units = dict(units or {})
        sources = dict(sources or {})
        self.units: dict[str, str] = {c: units.get(c) or unit_for(c) for c in columns}
        self.sources: dict[str, str] = {c: sources.get(c, "?") for c in columns}
        self._pos = {c: i for i, c in enumerate(columns)}
        self._jnp: dict[str, object] = {}

    # ------------------------------------------------------------------ queries

    def __len__(self) -> int:
        return NUM_ARCHS

    def __contains__(self, name) -> bool:
        return name in self._pos

    def has(self, name: str) -> bool:
        """Whether the table has column ``name`` (it may still be all NaN; see :meth:`count`)."""
        return name in self._pos

    def _check(self, name: str) -> int:
        if name not in self._pos:
            have = ", ".join(self.columns) if self.columns else "(no columns)"
            raise UnknownColumnError(f"unknown table column {name!r}; the table has: {have}")
        return self._pos[name]

    def numpy(self, name: str) -> np.ndarray:
        """Column as a read-only numpy float32 ``(15625,)`` view."""
        return self.values[:, self._check(name)]

    def column(self, name: str):
        """Column as a jnp float32 ``(15625,)`` array (cached), so a query is a gather.

        Raises:
            UnknownColumnError (a KeyError) listing the columns the table has.
        """
        i = self._check(name)
        if name not in self._jnp:
            import jax.numpy as jnp

            self._jnp[name] = jnp.asarray(self.values[:, i])
        return self._jnp[name]

    def lookup(self, name: str, codes):
        """Traceable look-up: NB201 codes ``(..., 6)`` int -> jnp float32 ``(...)``."""
        return self.column(name)[nb201.index_jax(codes)]

    def count(self, name: str) -> int:
        """Number of architectures with a known (non-NaN) value in column ``name``."""
        return int(np.count_nonzero(~np.isnan(self.numpy(name))))

    def devices(self, dataset: str = "cifar10", metric: str = "latency") -> tuple[str, ...]:
        """HW-NAS-Bench devices with at least one known ``<dataset>_<device>_<metric>`` value."""
        return tuple(
            d
            for d in HW_DEVICES
            if self.has(hw_column(dataset, d, metric)) and self.count(hw_column(dataset, d, metric))
        )

    def missing_devices(self, dataset: str = "cifar10", metric: str = "latency") -> tuple[str, ...]:
        """HW-NAS-Bench devices that this table lacks for ``(dataset, metric)``."""
        have = set(self.devices(dataset, metric))
        return tuple(d for d in HW_DEVICES if d not in have)

    def select(self, names: Iterable[str]) -> BenchTable:
        """A new table with only the given columns, in the given order."""
        names = list(names)
        idx = [self._check(n) for n in names]
        return BenchTable(
            names,
            self.values[:, idx],
            {n: self.units[n] for n in names},
            {n: self.sources[n] for n in names},
        )

    # ------------------------------------------------------------------ report

    def describe(self) -> str:
        """Human-readable coverage: per column the known count, min, max, unit and source,
        then which HW-NAS-Bench devices each dataset has (used by ``jaxnas table info``)."""
        header = ("column", "known", "min", "max", "unit", "source")
        rows = []
        for i, c in enumerate(self.columns):
            col = self.values[:, i]
            known = ~np.isnan(col)
            n = int(known.sum())
            lo = f"{float(col[known].min()):.6g}" if n else "-"
            hi = f"{float(col[known].max()):.6g}" if n else "-"
            rows.append((c, f"{n}/{NUM_ARCHS}", lo, hi, self.units[c], self.sources[c]))
        widths = [max(len(r[k]) for r in rows + [header]) for k in range(len(header))]
        right = (False, True, True, True, False, False)

        def fmt(r):
            cells = [
                (v.rjust(w) if a else v.ljust(w)) for v, w, a in zip(r, widths, right)
            ]
            return "  ".join(cells).rstrip()

        lines = [f"NB201 benchmark table: {NUM_ARCHS} architectures x {len(self.columns)} columns"]
        lines += [fmt(header), fmt(tuple("-" * w for w in widths))]
        lines += [fmt(r) for r in rows]
        lines.append("")
        lines.append("HW-NAS-Bench devices (" + ", ".join(HW_DEVICES) + "):")
        incomplete = False
        for ds in DATASETS:
            for metric in HW_METRICS:
                have = self.devices(ds, metric)
                miss = [d for d in HW_DEVICES if d not in have]
                incomplete |= bool(miss)
                lines.append(
                    f"  {ds} {metric}: "
                    + (", ".join(have) if have else "none")
                    + (f"  (missing: {', '.join(miss)})" if miss else "")
                )
        if incomplete:
            lines.append(
                "  To get all six devices, three datasets and energies, import the official "
                f"pickle: download HW-NAS-Bench-v1_0.pickle from {HW_NAS_BENCH_URL}, then run "
                "`jaxnas table import HW-NAS-Bench-v1_0.pickle`."
            )
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"BenchTable({len(self.columns)} columns: {', '.join(self.columns)})"


def merge_tables(tables: Iterable[BenchTable], rtol: float = 1e-5) -> BenchTable:
    """Merge tables by column name: new columns are appended; when a column appears again,
    the earlier table's values win and the later one only fills NaNs. Values known in both
    that differ by more than ``rtol`` give a warning naming the column and both sources.
    """
    tables = list(tables)
    columns: list[str] = []
    data: dict[str, np.ndarray] = {}
    units: dict[str, str] = {}
    sources: dict[str, str] = {}
    for t in tables:
        for i, c in enumerate(t.columns):
            col = t.values[:, i]
            if c not in data:
                columns.append(c)
                data[c] = col.copy()
                units[c] = t.units[c]
                sources[c] = t.sources[c]
                continue
            old = data[c]
            both = ~np.isnan(old) & ~np.isnan(col)
            if both.any() and not np.allclose(old[both], col[both], rtol=rtol, atol=0.0):
                warnings.warn(
                    f"column {c!r} differs between {sources[c]} and {t.sources[c]}; "
                    f"keeping the values of {sources[c]}",
                    stacklevel=2,
                )
            fill = np.isnan(old) & ~np.isnan(col)
            if fill.any():
                old[fill] = col[fill]
                if t.sources[c] not in sources[c].split(" + "):
                    sources[c] = f"{sources[c]} + {t.sources[c]}"
    values = (
        np.stack([data[c] for c in columns], axis=1)
        if columns
        else np.zeros((NUM_ARCHS, 0), np.float32)
    )
    return BenchTable(columns, values, units, sources)
