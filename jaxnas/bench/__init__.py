"""Tabulated NB201 benchmarks: NAS-Bench-201/NATS accuracies and HW-NAS-Bench device costs.

``load_table(path=None) -> BenchTable`` reads the compact CSVs of the shared data folder
(NATS-Bench 200-epoch test accuracies, 12-epoch validation/test accuracies, HW-NAS-Bench and
HELP latencies), the official ``HW-NAS-Bench-v1_0.pickle`` (restricted unpickler), any CSV
keyed by ``arch_index`` or ``arch_str``, and jaxnas's checksummed ``.npz`` (written by
``import_table`` / ``jaxnas table import``), and merges them by architecture index.

Modules: :mod:`~jaxnas.bench.table` (the in-memory table, no I/O), :mod:`~jaxnas.bench.files`
(shared file helpers), :mod:`~jaxnas.bench.csv_table`, :mod:`~jaxnas.bench.hw_pickle`,
:mod:`~jaxnas.bench.npz_cache` (one reader each) and :mod:`~jaxnas.bench.loaders` (entry
points: ``load_table``, ``import_table``).
"""

from jaxnas.bench.csv_table import read_csv_table
from jaxnas.bench.files import SUPPORTED_SUFFIXES, TableFileError, default_import_dir
from jaxnas.bench.hw_pickle import read_hw_pickle
from jaxnas.bench.loaders import import_table, load_table, read_table_file, table_files
from jaxnas.bench.npz_cache import read_npz_table, save_table
from jaxnas.bench.table import (
    DATASETS,
    HW_DEVICES,
    HW_METRICS,
    HW_PICKLE_METRICS,
    NUM_ARCHS,
    BenchTable,
    UnknownColumnError,
    dataset_key,
    hw_column,
    merge_tables,
    unit_for,
)

__all__ = [
    "BenchTable",
    "DATASETS",
    "HW_DEVICES",
    "HW_METRICS",
    "HW_PICKLE_METRICS",
    "NUM_ARCHS",
    "SUPPORTED_SUFFIXES",
    "TableFileError",
    "UnknownColumnError",
    "dataset_key",
    "default_import_dir",
    "hw_column",
    "import_table",
    "load_table",
    "merge_tables",
    "read_csv_table",
    "read_hw_pickle",
    "read_npz_table",
    "read_table_file",
    "save_table",
    "table_files",
    "unit_for",
]
