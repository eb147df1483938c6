"""Shared pieces of the benchmark-table readers: file kinds, the one error type, where each
file comes from (for messages), reading (optionally gzipped) bytes, and the canonical NB201
strings by official index."""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

from jaxnas._jaxcfg import cache_root
from jaxnas.bench.table import HW_NAS_BENCH_URL
from jaxnas.spaces import nb201

#: File name suffixes :func:`jaxnas.bench.read_table_file` understands.
SUPPORTED_SUFFIXES: tuple[str, ...] = (".csv", ".csv.gz", ".pickle", ".pkl", ".npz")
#: Files a folder is scanned for (besides jaxnas ``.npz`` tables and ``HW-NAS-Bench*.pickle``).
KNOWN_CSV_FILES: tuple[str, ...] = (
    "nb201_accuracy.csv.gz",
    "nb201_hp12_accuracy.csv.gz",
    "nb201_hw_costs.csv.gz",
)
HW_PICKLE_NAME = "HW-NAS-Bench-v1_0.pickle"


class TableFileError(ValueError):
    """A benchmark table file that exists but cannot be used (corrupt, wrong structure,
    unparsable numbers). The message names the file, the problem and where to get a good one."""


def default_import_dir() -> Path:
    """Where ``jaxnas table import`` writes by default: ``<jaxnas cache dir>/tables``."""
    return cache_root() / "tables"


def file_suffix(path: Path) -> str:
    """The table-file suffix of ``path`` (``.csv.gz`` counts as one), lower case."""
    name = path.name.lower()
    for suf in (".csv.gz",) + SUPPORTED_SUFFIXES:
        if name.endswith(suf):
            return suf
    return path.suffix.lower()


def file_stem(path: Path) -> str:
    """``path``'s name without its table-file suffix."""
    suf = file_suffix(path)
    name = path.name
    return name[: -len(suf)] if suf and name.lower().endswith(suf) else path.stem


def where_to_get(path: Path | str) -> str:
    """One sentence saying where the right version of a table file comes from."""
    path = Path(path)
    name, suf = path.name, file_suffix(path)
    if name in KNOWN_CSV_FILES:
        return (
            f"{name} is one of the compact NB201 CSVs of the project's shared data folder "
            "(PROVENANCE.md there says where it comes from); point $JAXNAS_DATA_DIR at that folder"
        )
    if suf in (".pickle", ".pkl"):
        return (
            f"download the official {HW_PICKLE_NAME} from {HW_NAS_BENCH_URL}, then run "
            f"`jaxnas table import {HW_PICKLE_NAME}`"
        )
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


def table_error(path: Path, problem: str) -> TableFileError:
    """``<path>: <problem>. To fix: <where to get it>.``"""
    return TableFileError(f"{path}: {problem}. To fix: {where_to_get(path)}.")


def missing_error(path: Path) -> FileNotFoundError:
    """A missing table file: what it is and where to get it, in one line."""
    hint = where_to_get(path)
    return FileNotFoundError(f"benchmark table file not found: {path}. {hint[:1].upper()}{hint[1:]}.")


def read_bytes(path: Path) -> bytes:
    """The file's bytes, gunzipped when its name ends in ``.gz``; clear errors otherwise."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise missing_error(path) from None
    except IsADirectoryError:
        raise table_error(path, "is a folder, expected a file") from None
    except OSError as e:
        raise table_error(path, f"cannot be read ({e.strerror or e})") from None
    if path.name.lower().endswith(".gz"):
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as e:
            raise table_error(path, f"is not a valid gzip file (truncated or corrupt: {e})") from None
    return raw


_CANONICAL: dict[str, object] = {}


def canonical_strings() -> list[str]:
    """Canonical arch string of every official index (built once, ~20 ms)."""
    if "strs" not in _CANONICAL:
        ops = nb201.OPS
        _CANONICAL["strs"] = [
            f"|{ops[a]}~0|+|{ops[b]}~0|{ops[c]}~1|+|{ops[d]}~0|{ops[e]}~1|{ops[f]}~2|"
            for a, b, c, d, e, f in nb201.ARCHS.tolist()
        ]
    return _CANONICAL["strs"]  # type: ignore[return-value]


def string_index() -> dict[str, int]:
    """Canonical arch string -> official index."""
    if "idx" not in _CANONICAL:
        _CANONICAL["idx"] = {s: i for i, s in enumerate(canonical_strings())}
    return _CANONICAL["idx"]  # type: ignore[return-value]
