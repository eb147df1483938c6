"""Tabulated NB201 benchmarks: NAS-Bench-201/NATS accuracies and HW-NAS-Bench device costs.

``load_table(path=None) -> BenchTable`` reads the compact CSVs of the shared data folder, the
official ``HW-NAS-Bench-v1_0.pickle`` (restricted unpickler), any CSV keyed by ``arch_index``
or ``arch_str``, and jaxnas's checksummed ``.npz`` (written by ``import_table`` /
``jaxnas table import``), and merges them by architecture index.
"""

from jaxnas.bench.loaders import (
    SUPPORTED_SUFFIXES,
    TableFileError,
    default_import_dir,
    import_table,
    load_table,
    read_csv_table,
    read_hw_pickle,
    read_npz_table,
    read_table_file,
    save_table,
    table_files,
)
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
