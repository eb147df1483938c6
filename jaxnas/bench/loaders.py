"""Readers for NB201 benchmark tables, and jaxnas's checksummed ``.npz`` cache.

Supported files (DESIGN.md "Data"):

- the compact CSVs of the shared data folder, ``nb201_accuracy.csv.gz`` (NATS-Bench test
  accuracies) and ``nb201_hw_costs.csv.gz`` (HW-NAS-Bench CIFAR-10 latencies of four devices,
  HELP's GPU/CPU/phone latencies); see PROVENANCE.md next to them;
- the official ``HW-NAS-Bench-v1_0.pickle``: ``d['nasbench201'][dataset][metric]`` is a list
  of 15,625 numbers in NB201 index order (plus ``'config'``); it is read with a restricted
  unpickler that only builds plain containers and numbers. The FBNet part is ignored;
- any CSV (optionally gzipped) with an ``arch_index`` or ``arch_str`` column and numeric
  columns. With a ``dataset`` column (long format, one row per architecture and dataset),
  column ``m`` of dataset ``ImageNet16-120`` becomes ``imagenet16_120_m``;
- jaxnas's own ``.npz`` tables, written by :func:`import_table` / ``jaxnas table import``,
  which carry a SHA-256 checksum that is verified on load.

Files are written atomically (a temporary file in the target folder, then a rename), so a
failed import never leaves a half-written table behind.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import os
import pickle
import tempfile
import zipfile
import zlib
from pathlib import Path

import numpy as np

from jaxnas.bench.table import (
    HW_NAS_BENCH_URL,
    NUM_ARCHS,
    BenchTable,
    dataset_key,
    merge_tables,
)
from jaxnas.spaces import nb201

NPZ_FORMAT = "jaxnas.bench.table/1"
#: File name suffixes :func:`read_table_file` understands.
SUPPORTED_SUFFIXES: tuple[str, ...] = (".csv", ".csv.gz", ".pickle", ".pkl", ".npz")
#: Files a folder is scanned for (besides jaxnas ``.npz`` tables and ``HW-NAS-Bench*.pickle``).
KNOWN_CSV_FILES: tuple[str, ...] = ("nb201_accuracy.csv.gz", "nb201_hw_costs.csv.gz")
HW_PICKLE_NAME = "HW-NAS-Bench-v1_0.pickle"
_KEY_COLUMNS = ("arch_index", "arch_str", "op_codes", "dataset")
_NA_STRINGS = frozenset({"", "nan", "na", "n/a", "null", "none", "-"})


class TableFileError(ValueError):
    """A benchmark table file that exists but cannot be used (corrupt, wrong structure,
    unparsable numbers). The message names the file, the problem and where to get a good one."""


# ---------------------------------------------------------------------------- helpers


def default_import_dir() -> Path:
    """Where ``jaxnas table import`` writes by default: ``<jaxnas cache dir>/tables``."""
    from jaxnas._jaxcfg import cache_root

    return cache_root() / "tables"


def _suffix(path: Path) -> str:
    name = path.name.lower()
    for suf in (".csv.gz",) + SUPPORTED_SUFFIXES:
        if name.endswith(suf):
            return suf
    return path.suffix.lower()


def _stem(path: Path) -> str:
    suf = _suffix(path)
    name = path.name
    return name[: -len(suf)] if suf and name.lower().endswith(suf) else path.stem


def where_to_get(path: Path | str) -> str:
    """One sentence saying where the right version of a table file comes from."""
    path = Path(path)
    name, suf = path.name, _suffix(path)
    if name in KNOWN_CSV_FILES:
        return (
            f"{name} is one of the compact NB201 CSVs of the project's shared data folder "
            "(PROVENANCE.md there says where it comes from); point $JAXNAS_DATA_DIR at that folder"
        )
    if suf in (".pickle", ".pkl"):
        return f"download the official {HW_PICKLE_NAME} from {HW_NAS_BENCH_URL}"
    if suf == ".npz":
        return "re-create it from its source with `jaxnas table import SOURCE --out FILE.npz`"
    if suf in (".csv", ".csv.gz"):
        return (
            "a table CSV needs an arch_index or arch_str column and numeric metric columns "
            "(e.g. a NAS-Bench-201/NATS-Bench export)"
        )
    return (
        "expected a table CSV (.csv/.csv.gz with an arch_index or arch_str column), the "
        f"official {HW_PICKLE_NAME} ({HW_NAS_BENCH_URL}), a .npz from `jaxnas table import`, "
        "or a folder of them"
    )


def _fail(path: Path, problem: str) -> TableFileError:
    return TableFileError(f"{path}: {problem}. To fix: {where_to_get(path)}.")


def _missing(path: Path) -> FileNotFoundError:
    hint = where_to_get(path)
    return FileNotFoundError(f"benchmark table file not found: {path}. {hint[:1].upper()}{hint[1:]}.")


_CANONICAL: dict[str, object] = {}


def _canonical_strings() -> list[str]:
    """Canonical arch string of every official index (built once, ~20 ms)."""
    if "strs" not in _CANONICAL:
        ops = nb201.OPS
        _CANONICAL["strs"] = [
            f"|{ops[a]}~0|+|{ops[b]}~0|{ops[c]}~1|+|{ops[d]}~0|{ops[e]}~1|{ops[f]}~2|"
            for a, b, c, d, e, f in nb201.ARCHS.tolist()
        ]
    return _CANONICAL["strs"]  # type: ignore[return-value]


def _string_index() -> dict[str, int]:
    if "idx" not in _CANONICAL:
        _CANONICAL["idx"] = {s: i for i, s in enumerate(_canonical_strings())}
    return _CANONICAL["idx"]  # type: ignore[return-value]


def _read_bytes(path: Path) -> bytes:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise _missing(path) from None
    except IsADirectoryError:
        raise _fail(path, "is a folder, expected a file") from None
    except OSError as e:
        raise _fail(path, f"cannot be read ({e.strerror or e})") from None
    if path.name.lower().endswith(".gz"):
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as e:
            raise _fail(path, f"is not a valid gzip file (truncated or corrupt: {e})") from None
    return raw


# ---------------------------------------------------------------------------- CSV


def _parse_floats(cells, name: str, path: Path) -> np.ndarray:
    try:
        return np.array(cells, dtype=np.float64)
    except ValueError:
        pass
    out = np.empty(len(cells), dtype=np.float64)
    for i, s in enumerate(cells):
        t = s.strip()
        if t.lower() in _NA_STRINGS:
            out[i] = np.nan
            continue
        try:
            out[i] = float(t)
        except ValueError:
            raise _fail(
                path, f"line {i + 2}, column {name!r}: cannot parse {s!r} as a number"
            ) from None
    return out


def _arch_indices(keys: dict[str, list[str]], path: Path) -> np.ndarray:
    """Official index of every row, from arch_index and/or arch_str (checked to agree)."""
    idx = None
    if "arch_index" in keys:
        cells = keys["arch_index"]
        try:
            idx = np.array(cells, dtype=np.int64)
        except ValueError:
            for i, s in enumerate(cells):
                try:
                    int(s)
                except ValueError:
                    raise _fail(path, f"line {i + 2}: arch_index {s!r} is not an integer") from None
        bad = np.flatnonzero((idx < 0) | (idx >= NUM_ARCHS))
        if bad.size:
            i = int(bad[0])
            raise _fail(
                path, f"line {i + 2}: arch_index {int(idx[i])} is outside 0..{NUM_ARCHS - 1}"
            )
    if "arch_str" in keys:
        lookup = _string_index()
        strs = keys["arch_str"]
        from_str = np.fromiter((lookup.get(s.strip(), -1) for s in strs), np.int64, len(strs))
        bad = np.flatnonzero(from_str < 0)
        if bad.size:
            i = int(bad[0])
            try:
                nb201.from_str(strs[i].strip())
                why = "is not a canonical NB201 string"
            except ValueError as e:
                why = f"is not an NB201 architecture ({e})"
            raise _fail(path, f"line {i + 2}: arch_str {strs[i]!r} {why}")
        if idx is None:
            idx = from_str
        else:
            bad = np.flatnonzero(idx != from_str)
            if bad.size:
                i = int(bad[0])
                raise _fail(
                    path,
                    f"line {i + 2}: arch_index {int(idx[i])} does not match arch_str "
                    f"{strs[i]!r} (official index {int(from_str[i])})",
                )
    if "op_codes" in keys:
        codes = keys["op_codes"]
        want = nb201.ARCHS[idx] @ (10 ** np.arange(nb201.NUM_EDGES - 1, -1, -1))
        try:
            got = np.array(codes, dtype=np.int64)
        except ValueError:
            got = np.full(len(codes), -1, dtype=np.int64)
            for i, c in enumerate(codes):
                got[i] = int(c) if c.strip().isdigit() else -1
        bad = np.flatnonzero(got != want)
        if bad.size:
            i = int(bad[0])
            raise _fail(
                path,
                f"line {i + 2}: op_codes {codes[i]!r} do not match architecture "
                f"{int(idx[i])} (expected {int(want[i]):06d})",
            )
    return idx


def _scatter(idx: np.ndarray, values: np.ndarray, path: Path, what: str) -> np.ndarray:
    order = np.argsort(idx, kind="stable")
    dup = np.flatnonzero(np.diff(idx[order]) == 0)
    if dup.size:
        a, b = int(order[dup[0]]), int(order[dup[0] + 1])
        raise _fail(
            path,
            f"architecture {int(idx[a])} appears twice{what} (lines {a + 2} and {b + 2})",
        )
    full = np.full((NUM_ARCHS, values.shape[1]), np.nan, dtype=np.float32)
    full[idx] = values
    return full


def _dataset_prefix(name: str) -> str:
    try:
        return dataset_key(name)
    except ValueError:
        return name.strip().lower().replace("-", "_").replace(" ", "_")


def read_csv_table(path: Path | str) -> BenchTable:
    """A CSV/CSV.gz table keyed by ``arch_index`` and/or ``arch_str`` (see module doc)."""
    path = Path(path)
    raw = _read_bytes(path)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise _fail(path, f"is not UTF-8 text ({e})") from None
    del raw
    lines = text.splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    if not lines:
        raise _fail(path, "is empty")
    header = [h.strip() for h in next(csv.reader([lines[0]]))]
    if "arch_index" not in header and "arch_str" not in header:
        raise _fail(
            path,
            f"has no arch_index or arch_str column (header: {', '.join(header[:8])}"
            + (", ..." if len(header) > 8 else "")
            + ")",
        )
    dups = sorted({h for h in header if header.count(h) > 1})
    if dups:
        raise _fail(path, f"repeats the column(s) {', '.join(dups)}")
    body = lines[1:]
    if not body:
        raise _fail(path, "has a header but no data rows")
    value_names = [h for h in header if h not in _KEY_COLUMNS]
    value_pos = [header.index(h) for h in value_names]
    quoted = '"' in text

    ncols = len(header)
    key_pos = {h: header.index(h) for h in _KEY_COLUMNS if h in header}
    values = None
    keys: dict[str, list[str]] = {}
    if not quoted and text.count(",") == (ncols - 1) * len(lines):
        # Fast path: every row has the right number of fields. Split only up to the last
        # key column, and let numpy's C parser read the numbers.
        maxsplit = max(key_pos.values()) + 1
        parts = [line.split(",", maxsplit) for line in body]
        keys = {h: [r[p] for r in parts] for h, p in key_pos.items()}
        del parts
        if value_pos:
            try:
                values = np.loadtxt(
                    io.StringIO(text), delimiter=",", skiprows=1, usecols=value_pos,
                    dtype=np.float64, comments=None, ndmin=2,
                )
            except ValueError:  # blanks/NA or a bad cell: the careful parser says which
                values = None
        else:
            values = np.zeros((len(body), 0))
        if values is not None and values.shape[0] != len(body):
            values = None
    if values is None:
        rows = list(csv.reader(body)) if quoted else [line.split(",") for line in body]
        for i, r in enumerate(rows):
            if len(r) != ncols:
                raise _fail(path, f"line {i + 2} has {len(r)} fields but the header has {ncols}")
        cols = list(zip(*rows))
        del rows
        keys = {h: list(cols[p]) for h, p in key_pos.items()}
        values = np.stack(
            [_parse_floats(cols[j], h, path) for j, h in zip(value_pos, value_names)], axis=1
        ) if value_pos else np.zeros((len(body), 0))
        del cols
    del text
    idx = _arch_indices(keys, path)
    source = path.name

    if "dataset" not in header:
        full = _scatter(idx, values, path, "")
        return BenchTable(value_names, full, sources={c: source for c in value_names})

    ds_cells = np.array([s.strip() for s in keys["dataset"]])
    tables = []
    for ds in dict.fromkeys(ds_cells.tolist()):
        rows_ds = np.flatnonzero(ds_cells == ds)
        prefix = _dataset_prefix(ds)
        full = _scatter(idx[rows_ds], values[rows_ds], path, f" for dataset {ds!r}")
        names = [f"{prefix}_{c}" for c in value_names]
        tables.append(BenchTable(names, full, sources={c: source for c in names}))
    return merge_tables(tables)


# ---------------------------------------------------------------------------- pickle


def _numeric_dtype(*args, **kwargs):
    dt = np.dtype(*args, **kwargs)
    if dt.kind not in "biufc":
        raise pickle.UnpicklingError(f"forbidden non-numeric numpy dtype {dt}")
    return dt


def _numeric_scalar(dtype, *args):
    if np.dtype(dtype).kind not in "biufc":
        raise pickle.UnpicklingError(f"forbidden non-numeric numpy scalar {dtype}")
    try:
        from numpy._core.multiarray import scalar
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import scalar  # type: ignore[no-redef]
    return scalar(dtype, *args)


def _np_reconstruct(*args):
    try:
        from numpy._core.multiarray import _reconstruct
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import _reconstruct  # type: ignore[no-redef]
    return _reconstruct(*args)


class _RestrictedUnpickler(pickle.Unpickler):
    """Builds only plain containers (dict, list, tuple, set, OrderedDict) and numbers
    (including numeric numpy scalars/arrays); any other global is refused."""

    _BUILTINS = {"dict", "list", "tuple", "set", "frozenset", "int", "float", "complex", "bool",
                 "str", "bytes"}

    def find_class(self, module, name):
        import collections

        if module == "builtins" and name in self._BUILTINS:
            import builtins

            return getattr(builtins, name)
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if module in ("numpy.core.multiarray", "numpy._core.multiarray"):
            if name == "scalar":
                return _numeric_scalar
            if name == "_reconstruct":
                return _np_reconstruct
        if module == "numpy":
            if name == "dtype":
                return _numeric_dtype
            if name == "ndarray":
                return np.ndarray
        raise pickle.UnpicklingError(
            f"refusing to load {module}.{name}: only plain containers and numbers are allowed"
        )

    def persistent_load(self, pid):
        raise pickle.UnpicklingError("refusing to load a persistent id")


def _check_config(config, ds: str, path: Path) -> None:
    """The pickle's per-architecture configs must list NB201 archs in official order."""
    if not isinstance(config, (list, tuple)):
        raise _fail(path, f"nasbench201/{ds}/config is a {type(config).__name__}, expected a list")
    if len(config) != NUM_ARCHS:
        raise _fail(path, f"nasbench201/{ds}/config has {len(config)} entries, expected {NUM_ARCHS}")
    strs = _canonical_strings()
    for i, entry in enumerate(config):
        s = entry.get("arch_str") if isinstance(entry, dict) else None
        if s is not None and s != strs[i]:
            raise _fail(
                path,
                f"nasbench201/{ds}/config[{i}] is {s!r}, but official NB201 index {i} is "
                f"{strs[i]!r} (rows are not in NB201 index order)",
            )


def read_hw_pickle(path: Path | str) -> BenchTable:
    """The official ``HW-NAS-Bench-v1_0.pickle`` -> columns ``<dataset>_<metric>``.

    Latency/energy values below 0 (the benchmark's "not measured" marker, e.g. -1 for
    some Edge TPU entries) become NaN.
    """
    path = Path(path)
    try:
        with open(path, "rb") as f:
            obj = _RestrictedUnpickler(f).load()
    except FileNotFoundError:
        raise _missing(path) from None
    except IsADirectoryError:
        raise _fail(path, "is a folder, expected a file") from None
    except pickle.UnpicklingError as e:
        raise _fail(path, f"is not a safe HW-NAS-Bench pickle ({e})") from None
    except (EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError,
            MemoryError, OverflowError, ImportError) as e:
        raise _fail(path, f"is not a readable pickle (truncated or corrupt: {type(e).__name__}: "
                          f"{e})") from None
    if not isinstance(obj, dict) or "nasbench201" not in obj:
        keys = ", ".join(map(str, list(obj)[:6])) if isinstance(obj, dict) else type(obj).__name__
        raise _fail(path, f"has no 'nasbench201' entry (found: {keys}); not an HW-NAS-Bench pickle")
    nb = obj["nasbench201"]
    if not isinstance(nb, dict) or not nb:
        raise _fail(path, "its 'nasbench201' entry is not a non-empty dict of datasets")
    names, cols = [], []
    for ds_name, metrics in nb.items():
        ds = _dataset_prefix(str(ds_name))
        if not isinstance(metrics, dict):
            raise _fail(path, f"nasbench201/{ds_name} is a {type(metrics).__name__}, expected a dict")
        if "config" in metrics:
            _check_config(metrics["config"], str(ds_name), path)
        for metric, vals in metrics.items():
            if metric == "config":
                continue
            try:
                arr = np.asarray(vals, dtype=np.float64)
            except (TypeError, ValueError):
                raise _fail(path, f"nasbench201/{ds_name}/{metric} holds non-numbers") from None
            if arr.shape != (NUM_ARCHS,):
                raise _fail(
                    path,
                    f"nasbench201/{ds_name}/{metric} has shape {arr.shape}, expected ({NUM_ARCHS},)",
                )
            if str(metric).endswith(("_latency", "_energy")):
                arr = np.where(arr < 0, np.nan, arr)
            names.append(f"{ds}_{metric}")
            cols.append(arr)
    if not names:
        raise _fail(path, "has no NB201 metrics")
    return BenchTable(names, np.stack(cols, axis=1), sources={c: path.name for c in names})


# ---------------------------------------------------------------------------- npz cache


def _checksum(values: np.ndarray, columns, units, sources) -> str:
    h = hashlib.sha256()
    h.update(NPZ_FORMAT.encode())
    for seq in (columns, units, sources):
        h.update(b"\x1e" + "\x1f".join(seq).encode("utf-8"))
    h.update(np.ascontiguousarray(values, dtype="<f4").tobytes())
    return h.hexdigest()


def save_table(table: BenchTable, out: Path | str) -> Path:
    """Write ``table`` as a checksummed ``.npz`` atomically (temp file + rename)."""
    out = Path(out)
    if out.suffix.lower() != ".npz":
        raise ValueError(f"table cache file must end in .npz, got {out}")
    out.parent.mkdir(parents=True, exist_ok=True)
    columns = list(table.columns)
    units = [table.units[c] for c in columns]
    sources = [table.sources[c] for c in columns]
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez_compressed(
                f,
                format=np.array(NPZ_FORMAT),
                values=np.ascontiguousarray(table.values, dtype="<f4"),
                columns=np.array(columns, dtype=str),
                units=np.array(units, dtype=str),
                sources=np.array(sources, dtype=str),
                sha256=np.array(_checksum(table.values, columns, units, sources)),
            )
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, out)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return out


def is_table_npz(path: Path | str) -> bool:
    """Whether ``path`` is an ``.npz`` written by :func:`save_table` (cheap header check)."""
    try:
        with zipfile.ZipFile(path) as z:
            return "format.npy" in z.namelist() and "sha256.npy" in z.namelist()
    except (OSError, zipfile.BadZipFile):
        return False


def read_npz_table(path: Path | str) -> BenchTable:
    """A jaxnas ``.npz`` table; the SHA-256 checksum is verified."""
    path = Path(path)
    if not path.exists():
        raise _missing(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            need = ("format", "values", "columns", "units", "sources", "sha256")
            missing = [k for k in need if k not in z.files]
            if missing:
                raise _fail(path, f"is not a jaxnas table (missing arrays: {', '.join(missing)})")
            fmt = str(z["format"])
            values = z["values"]
            columns = [str(c) for c in z["columns"]]
            units = [str(u) for u in z["units"]]
            sources = [str(s) for s in z["sources"]]
            digest = str(z["sha256"])
    except TableFileError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile, EOFError, zlib.error, KeyError) as e:
        raise _fail(path, f"is not a readable .npz file (truncated or corrupt: {e})") from None
    if fmt != NPZ_FORMAT:
        raise _fail(path, f"has format {fmt!r}, this jaxnas reads {NPZ_FORMAT!r}")
    if values.shape != (NUM_ARCHS, len(columns)) or not (len(units) == len(sources) == len(columns)):
        raise _fail(path, f"has inconsistent shapes (values {values.shape}, {len(columns)} columns)")
    if _checksum(values, columns, units, sources) != digest:
        raise _fail(path, "failed its SHA-256 checksum (the file is corrupt or was modified)")
    via = {c: (s if s.endswith(f"via {path.name}") else f"{s} via {path.name}")
           for c, s in zip(columns, sources)}
    return BenchTable(columns, values, dict(zip(columns, units)), via)


# ---------------------------------------------------------------------------- entry points


def read_table_file(path: Path | str) -> BenchTable:
    """One table file, by type: ``.csv``/``.csv.gz``, ``.pickle``/``.pkl``, ``.npz``."""
    path = Path(path)
    suf = _suffix(path)
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
        if p.is_file() and p.name.startswith("HW-NAS-Bench") and _suffix(p) in (".pickle", ".pkl")
    )
    files += sorted(p for p in folder.glob("*.npz") if p.is_file() and is_table_npz(p))
    return files


def _no_table_message(where: str) -> str:
    return (
        f"no benchmark table found {where}. Expected {', '.join(KNOWN_CSV_FILES)} (the compact "
        f"NB201 CSVs of the shared data folder), the official {HW_PICKLE_NAME} ({HW_NAS_BENCH_URL}) "
        "or a .npz written by `jaxnas table import`"
    )


def load_table(path: Path | str | None = None) -> BenchTable:
    """Load and merge NB201 benchmark tables (DESIGN.md "Public contract").

    Args:
        path: a table file, or a folder (see :func:`table_files`). ``None`` reads the folder
            ``$JAXNAS_DATA_DIR`` plus the tables imported into :func:`default_import_dir`.

    Returns:
        A :class:`BenchTable`; all columns of all files, merged by architecture index (an
        earlier file wins where two know the same value), NaN where unknown.

    Raises:
        FileNotFoundError: the path (or, for ``None``, every default place) has no table;
            the message says what to set and where to get the files.
        TableFileError: a file is corrupt or malformed (a ValueError naming the file).
    """
    if path is None:
        files: list[Path] = []
        env = os.environ.get("JAXNAS_DATA_DIR")
        if env:
            folder = Path(env).expanduser()
            if not folder.is_dir():
                raise FileNotFoundError(
                    f"$JAXNAS_DATA_DIR is {env!r}, which is not a folder. "
                    + _no_table_message("there")
                )
            files += table_files(folder)
        imported = default_import_dir()
        if imported.is_dir():
            files += table_files(imported)
        if not files:
            where = (f"in $JAXNAS_DATA_DIR={env}" if env else "($JAXNAS_DATA_DIR is not set)")
            raise FileNotFoundError(
                _no_table_message(where + f" or in {imported}")
                + ". Set $JAXNAS_DATA_DIR to the data folder, pass a path, or run "
                "`jaxnas table import PATH`"
            )
    else:
        p = Path(path).expanduser()
        if p.is_dir():
            files = table_files(p)
            if not files:
                raise FileNotFoundError(_no_table_message(f"in folder {p}"))
        elif p.exists():
            files = [p]
        else:
            raise _missing(p)
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
        name = src.name if src.is_dir() else _stem(src)
        out = default_import_dir() / f"{name}.npz"
    return save_table(table, Path(out).expanduser())
