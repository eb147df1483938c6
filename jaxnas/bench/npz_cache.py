"""jaxnas's own benchmark-table cache: a ``.npz`` (no pickle) written atomically (a temporary
file in the target folder, then a rename, so a failed import never leaves a half-written
table) and carrying a SHA-256 checksum of its contents that is verified on load."""

from __future__ import annotations

import hashlib
import os
import tempfile
import zipfile
import zlib
from pathlib import Path

import numpy as np

from jaxnas.bench.files import TableFileError, missing_error, table_error
from jaxnas.bench.table import NUM_ARCHS, BenchTable

NPZ_FORMAT = "jaxnas.bench.table/1"


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
        raise missing_error(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            need = ("format", "values", "columns", "units", "sources", "sha256")
            missing = [k for k in need if k not in z.files]
            if missing:
                raise table_error(path, f"is not a jaxnas table (missing arrays: {', '.join(missing)})")
            fmt = str(z["format"])
            values = z["values"]
            columns = [str(c) for c in z["columns"]]
            units = [str(u) for u in z["units"]]
            sources = [str(s) for s in z["sources"]]
            digest = str(z["sha256"])
    except TableFileError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile, EOFError, zlib.error, KeyError) as e:
        raise table_error(path, f"is not a readable .npz file (truncated or corrupt: {e})") from None
    if fmt != NPZ_FORMAT:
        raise table_error(path, f"has format {fmt!r}, this jaxnas reads {NPZ_FORMAT!r}")
    if values.shape != (NUM_ARCHS, len(columns)) or not (len(units) == len(sources) == len(columns)):
        raise table_error(path, f"has inconsistent shapes (values {values.shape}, {len(columns)} columns)")
    if _checksum(values, columns, units, sources) != digest:
        raise table_error(path, "failed its SHA-256 checksum (the file is corrupt or was modified)")
    via = {c: (s if s.endswith(f"via {path.name}") else f"{s} via {path.name}")
           for c, s in zip(columns, sources)}
    return BenchTable(columns, values, dict(zip(columns, units)), via)
