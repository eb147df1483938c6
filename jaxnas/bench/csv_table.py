"""CSV benchmark tables (optionally gzipped): the compact CSVs of the shared data folder
(``nb201_accuracy.csv.gz``, ``nb201_hp12_accuracy.csv.gz``, ``nb201_hw_costs.csv.gz``; see
PROVENANCE.md next to them) and any CSV with an ``arch_index`` or ``arch_str`` column and
numeric columns. With a ``dataset`` column (long format, one row per architecture and
dataset), column ``m`` of dataset ``ImageNet16-120`` becomes ``imagenet16_120_m``."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np

from jaxnas.bench.files import read_bytes, string_index, table_error
from jaxnas.bench.table import NUM_ARCHS, BenchTable, dataset_key, merge_tables
from jaxnas.spaces import nb201

_KEY_COLUMNS = ("arch_index", "arch_str", "op_codes", "dataset")
_NA_STRINGS = frozenset({"", "nan", "na", "n/a", "null", "none", "-"})


def _first(bad: np.ndarray) -> int | None:
    """The first row where the bool mask ``bad`` is set, or None."""
    rows = np.flatnonzero(bad)
    return int(rows[0]) if rows.size else None


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
            raise table_error(
                path, f"line {i + 2}, column {name!r}: cannot parse {s!r} as a number"
            ) from None
    return out


def _parse_ints(cells) -> tuple[np.ndarray, int | None]:
    """Integers of ``cells``, and the first row that is not an integer (None if all are)."""
    try:
        return np.array(cells, dtype=np.int64), None
    except ValueError:
        pass
    out = np.full(len(cells), -1, dtype=np.int64)
    bad = None
    for i, c in enumerate(cells):
        try:
            out[i] = int(c)
        except ValueError:
            bad = i if bad is None else bad
    return out, bad


def _arch_indices(keys: dict[str, list[str]], path: Path) -> np.ndarray:
    """Official index of every row, from arch_index and/or arch_str (checked to agree), and
    checked against op_codes when the file has them."""
    idx = None
    if "arch_index" in keys:
        cells = keys["arch_index"]
        idx, i = _parse_ints(cells)
        if i is not None:
            raise table_error(path, f"line {i + 2}: arch_index {cells[i]!r} is not an integer")
        i = _first((idx < 0) | (idx >= NUM_ARCHS))
        if i is not None:
            raise table_error(
                path, f"line {i + 2}: arch_index {int(idx[i])} is outside 0..{NUM_ARCHS - 1}"
            )
    if "arch_str" in keys:
        lookup = string_index()
        strs = keys["arch_str"]
        from_str = np.fromiter((lookup.get(s.strip(), -1) for s in strs), np.int64, len(strs))
        i = _first(from_str < 0)
        if i is not None:
            try:
                nb201.from_str(strs[i].strip())
                why = "is not a canonical NB201 string"
            except ValueError as e:
                why = f"is not an NB201 architecture ({e})"
            raise table_error(path, f"line {i + 2}: arch_str {strs[i]!r} {why}")
        if idx is None:
            idx = from_str
        else:
            i = _first(idx != from_str)
            if i is not None:
                raise table_error(
                    path,
                    f"line {i + 2}: arch_index {int(idx[i])} does not match arch_str "
                    f"{strs[i]!r} (official index {int(from_str[i])})",
                )
    if "op_codes" in keys:
        codes = keys["op_codes"]
        want = nb201.ARCHS[idx] @ (10 ** np.arange(nb201.NUM_EDGES - 1, -1, -1))
        got, _ = _parse_ints(codes)
        i = _first(got != want)
        if i is not None:
            raise table_error(
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
        raise table_error(
            path,
            f"architecture {int(idx[a])} appears twice{what} (lines {a + 2} and {b + 2})",
        )
    full = np.full((NUM_ARCHS, values.shape[1]), np.nan, dtype=np.float32)
    full[idx] = values
    return full


def dataset_prefix(name: str) -> str:
    """Column prefix of a dataset name (``'ImageNet16-120'`` -> ``'imagenet16_120'``); an
    unknown name is lower-cased with ``-`` and spaces made ``_``."""
    try:
        return dataset_key(name)
    except ValueError:
        return name.strip().lower().replace("-", "_").replace(" ", "_")


def _fast_parse(text, body, header, key_pos, value_pos):
    """Keys and values when every row has the right number of fields and nothing is quoted:
    split only up to the last key column and let numpy's C parser read the numbers. Returns
    ``(keys, values)``, values None when the careful parser must run."""
    maxsplit = max(key_pos.values()) + 1
    parts = [line.split(",", maxsplit) for line in body]
    keys = {h: [r[p] for r in parts] for h, p in key_pos.items()}
    del parts
    if not value_pos:
        return keys, np.zeros((len(body), 0))
    try:
        values = np.loadtxt(
            io.StringIO(text), delimiter=",", skiprows=1, usecols=value_pos,
            dtype=np.float64, comments=None, ndmin=2,
        )
    except ValueError:  # blanks/NA or a bad cell: the careful parser says which
        return keys, None
    return keys, (values if values.shape[0] == len(body) else None)


def _careful_parse(body, header, key_pos, value_pos, value_names, quoted, path):
    """Keys and values, row by row, with an error naming the first bad line or cell."""
    ncols = len(header)
    rows = list(csv.reader(body)) if quoted else [line.split(",") for line in body]
    for i, r in enumerate(rows):
        if len(r) != ncols:
            raise table_error(path, f"line {i + 2} has {len(r)} fields but the header has {ncols}")
    cols = list(zip(*rows))
    del rows
    keys = {h: list(cols[p]) for h, p in key_pos.items()}
    if not value_pos:
        return keys, np.zeros((len(body), 0))
    return keys, np.stack(
        [_parse_floats(cols[j], h, path) for j, h in zip(value_pos, value_names)], axis=1
    )


def _header(lines: list[str], path: Path) -> list[str]:
    if not lines:
        raise table_error(path, "is empty")
    header = [h.strip() for h in next(csv.reader([lines[0]]))]
    if "arch_index" not in header and "arch_str" not in header:
        raise table_error(
            path,
            f"has no arch_index or arch_str column (header: {', '.join(header[:8])}"
            + (", ..." if len(header) > 8 else "")
            + ")",
        )
    dups = sorted({h for h in header if header.count(h) > 1})
    if dups:
        raise table_error(path, f"repeats the column(s) {', '.join(dups)}")
    if len(lines) < 2:
        raise table_error(path, "has a header but no data rows")
    return header


def read_csv_table(path: Path | str) -> BenchTable:
    """A CSV/CSV.gz table keyed by ``arch_index`` and/or ``arch_str`` (see module doc)."""
    path = Path(path)
    raw = read_bytes(path)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise table_error(path, f"is not UTF-8 text ({e})") from None
    del raw
    lines = text.splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    header = _header(lines, path)
    body = lines[1:]
    value_names = [h for h in header if h not in _KEY_COLUMNS]
    value_pos = [header.index(h) for h in value_names]
    key_pos = {h: header.index(h) for h in _KEY_COLUMNS if h in header}
    quoted = '"' in text
    values = None
    if not quoted and text.count(",") == (len(header) - 1) * len(lines):
        keys, values = _fast_parse(text, body, header, key_pos, value_pos)
    if values is None:
        keys, values = _careful_parse(body, header, key_pos, value_pos, value_names, quoted, path)
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
        prefix = dataset_prefix(ds)
        full = _scatter(idx[rows_ds], values[rows_ds], path, f" for dataset {ds!r}")
        names = [f"{prefix}_{c}" for c in value_names]
        tables.append(BenchTable(names, full, sources={c: source for c in names}))
    return merge_tables(tables)
