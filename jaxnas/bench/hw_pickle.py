"""The official ``HW-NAS-Bench-v1_0.pickle`` (GATECH-EIC/HW-NAS-Bench), read with a restricted
unpickler that only builds plain containers and numbers.

``d['nasbench201'][dataset][metric]`` is a list of 15,625 numbers in NB201 index order (plus
``'config'``, whose arch strings are checked against the official order). The FBNet part is
ignored.
"""

from __future__ import annotations

import builtins
import collections
import pickle
from pathlib import Path

import numpy as np

from jaxnas.bench.csv_table import dataset_prefix
from jaxnas.bench.files import canonical_strings, missing_error, table_error
from jaxnas.bench.table import NUM_ARCHS, BenchTable


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
        if module == "builtins" and name in self._BUILTINS:
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
        raise table_error(path, f"nasbench201/{ds}/config is a {type(config).__name__}, expected a list")
    if len(config) != NUM_ARCHS:
        raise table_error(path, f"nasbench201/{ds}/config has {len(config)} entries, expected {NUM_ARCHS}")
    strs = canonical_strings()
    for i, entry in enumerate(config):
        s = entry.get("arch_str") if isinstance(entry, dict) else None
        if s is not None and s != strs[i]:
            raise table_error(
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
        raise missing_error(path) from None
    except IsADirectoryError:
        raise table_error(path, "is a folder, expected a file") from None
    except pickle.UnpicklingError as e:
        raise table_error(path, f"is not a safe HW-NAS-Bench pickle ({e})") from None
    except (EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError,
            MemoryError, OverflowError, ImportError) as e:
        raise table_error(path, f"is not a readable pickle (truncated or corrupt: {type(e).__name__}: "
                          f"{e})") from None
    if not isinstance(obj, dict) or "nasbench201" not in obj:
        keys = ", ".join(map(str, list(obj)[:6])) if isinstance(obj, dict) else type(obj).__name__
        raise table_error(path, f"has no 'nasbench201' entry (found: {keys}); not an HW-NAS-Bench pickle")
    nb = obj["nasbench201"]
    if not isinstance(nb, dict) or not nb:
        raise table_error(path, "its 'nasbench201' entry is not a non-empty dict of datasets")
    names, cols = [], []
    for ds_name, metrics in nb.items():
        ds = dataset_prefix(str(ds_name))
        if not isinstance(metrics, dict):
            raise table_error(path, f"nasbench201/{ds_name} is a {type(metrics).__name__}, expected a dict")
        if "config" in metrics:
            _check_config(metrics["config"], str(ds_name), path)
        for metric, vals in metrics.items():
            if metric == "config":
                continue
            try:
                arr = np.asarray(vals, dtype=np.float64)
            except (TypeError, ValueError):
                raise table_error(path, f"nasbench201/{ds_name}/{metric} holds non-numbers") from None
            if arr.shape != (NUM_ARCHS,):
                raise table_error(
                    path,
                    f"nasbench201/{ds_name}/{metric} has shape {arr.shape}, expected ({NUM_ARCHS},)",
                )
            if str(metric).endswith(("_latency", "_energy")):
                arr = np.where(arr < 0, np.nan, arr)
            names.append(f"{ds}_{metric}")
            cols.append(arr)
    if not names:
        raise table_error(path, "has no NB201 metrics")
    return BenchTable(names, np.stack(cols, axis=1), sources={c: path.name for c in names})
