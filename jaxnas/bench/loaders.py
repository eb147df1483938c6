"""Entry points of the NB201 benchmark-table readers: one file by type, a folder, the default
places, and ``jaxnas table import`` (DESIGN.md "Data").

Supported files:

- CSV/CSV.gz tables (:mod:`jaxnas.bench.csv_table`): the compact CSVs of the shared data
  folder (``nb201_accuracy.csv.gz``, NATS-Bench 200-epoch test accuracies;
  ``nb201_hp12_accuracy.csv.gz``, 12-epoch validation and test accuracies;
  ``nb201_hw_costs.csv.gz``, HW-NAS-Bench and HELP latencies; see PROVENANCE.md there) and
  any CSV keyed by ``arch_index`` or ``arch_str``;
- the official ``HW-NAS-Bench-v1_0.pickle`` (:mod:`jaxnas.bench.hw_pickle`);
- jaxnas's checksummed ``.npz`` tables (:mod:`jaxnas.bench.npz_cache`), written by
  :func:`import_table` / ``jaxnas table import``.

Without a path, tables are read from the data folder of :func:`jaxnas._paths.data_dir`
(``$JAXNAS_DATA_DIR``, else a source checkout's ``../shared/data``, else
``~/.cache/jaxnas/data``) plus the tables imported into :func:`default_import_dir`.
"""

from __future__ import annotations

import os
from pathlib import Path

from jaxnas import _paths
from jaxnas.bench.csv_table import read_csv_table
from jaxnas.bench.files import (
    HW_PICKLE_NAME,
    KNOWN_CSV_FILES,
    SUPPORTED_SUFFIXES,
    default_import_dir,
    file_stem,
    file_suffix,
    missing_error,
)
from jaxnas.bench.hw_pickle import read_hw_pickle
from jaxnas.bench.npz_cache import is_table_npz, read_npz_table, save_table
from jaxnas.bench.table import HW_NAS_BENCH_URL, BenchTable, merge_tables


def read_table_file(path: Path | str) -> BenchTable:
    """One table file, by type: ``.csv``/``.csv.gz``, ``.pickle``/``.pkl``, ``.npz``."""
    path = Path(path)
    suf = file_suffix(path)
    if suf in (".csv", ".csv.gz"):
        return read_csv_table(path)
    if suf in (".pickle", ".pkl"):
        return read_hw_pickle(path)
    if suf == ".npz":
        return read_npz_table(path)
    raise ValueError(
        f"unsupported table file type: {path} (expected one of {', '.join(SUPPORTED_SUFFIXES)})"
    )


def table_files(folder: Path | str) -> list[Path]:
    """The table files :func:`load_table` reads from a folder: the known compact CSVs,
    ``HW-NAS-Bench*.pickle`` and jaxnas ``.npz`` tables (other CSVs: pass them explicitly
    or import them)."""
    folder = Path(folder)
    files = [folder / n for n in KNOWN_CSV_FILES if (folder / n).is_file()]
    files += sorted(
        p for p in folder.iterdir()
        if p.is_file() and p.name.startswith("HW-NAS-Bench") and file_suffix(p) in (".pickle", ".pkl")
    )
    files += sorted(p for p in folder.glob("*.npz") if p.is_file() and is_table_npz(p))
    return files


def _no_table_message(where: str) -> str:
    return (
        f"no benchmark table found {where}. Expected {', '.join(KNOWN_CSV_FILES)} (the compact "
        f"NB201 CSVs of the shared data folder), the official {HW_PICKLE_NAME} ({HW_NAS_BENCH_URL}) "
        "or a .npz written by `jaxnas table import`"
    )


def _default_files() -> list[Path]:
    """The table files of the data folder (:func:`jaxnas._paths.data_dir`) and the imported
    tables; a FileNotFoundError saying where it looked when there are none."""
    folder = _paths.data_dir()
    env = os.environ.get(_paths.DATA_ENV)
    if env and not folder.is_dir():
        raise FileNotFoundError(
            f"${_paths.DATA_ENV} is {env!r}, which is not a folder. " + _no_table_message("there")
        )
    files = table_files(folder) if folder.is_dir() else []
    imported = default_import_dir()
    if imported.is_dir():
        files += table_files(imported)
    if not files:
        raise FileNotFoundError(
            _no_table_message(f"in {_paths.describe_data_dir()} or in {imported}")
            + f". Set ${_paths.DATA_ENV} to the data folder, pass a path, or run "
            "`jaxnas table import PATH`"
        )
    return files


def load_table(path: Path | str | None = None) -> BenchTable:
    """Load and merge NB201 benchmark tables (DESIGN.md "Public contract").

    Args:
        path: a table file, or a folder (see :func:`table_files`). ``None`` reads the data
            folder (``$JAXNAS_DATA_DIR``, else a source checkout's ``../shared/data``, else
            ``~/.cache/jaxnas/data``) plus the tables imported into :func:`default_import_dir`.

    Returns:
        A :class:`BenchTable`; all columns of all files, merged by architecture index (an
        earlier file wins where two know the same value), NaN where unknown.

    Raises:
        FileNotFoundError: the path (or, for ``None``, every default place) has no table;
            the message says what to set and where to get the files.
        TableFileError: a file is corrupt or malformed (a ValueError naming the file).
    """
    if path is None:
        files = _default_files()
    else:
        p = Path(path).expanduser()
        if p.is_dir():
            files = table_files(p)
            if not files:
                raise FileNotFoundError(_no_table_message(f"in folder {p}"))
        elif p.exists():
            files = [p]
        else:
            raise missing_error(p)
    tables = [read_table_file(f) for f in files]
    return tables[0] if len(tables) == 1 else merge_tables(tables)


def import_table(path: Path | str, out: Path | str | None = None) -> Path:
    """Read ``path`` (any supported file, or a folder) and write jaxnas's checksummed
    ``.npz`` to ``out`` (default ``<cache dir>/tables/<name>.npz``, which
    ``load_table()`` picks up). Writing is atomic. Returns the written path."""
    src = Path(path).expanduser()
    if out is not None and Path(out).suffix.lower() != ".npz":
        raise ValueError(f"--out must name a .npz file, got {out}")
    table = load_table(src)
    if out is None:
        name = src.name if src.is_dir() else file_stem(src)
        out = default_import_dir() / f"{name}.npz"
    return save_table(table, Path(out).expanduser())
