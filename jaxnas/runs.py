"""Runs: results as rows and summaries, run directories written atomically, resume caches,
and progress (the only places that print or write, with :mod:`jaxnas.cli` and
:mod:`jaxnas.report`).

A search run directory holds:

- ``result.json``: config, metadata (oracle flag, devices, constraints, timings), the
  summary, every cell row, the final population of each device (seed 0) and the
  per-generation history (strict JSON: NaN/inf are written as null);
- ``cells.csv``: one row per (method, device, seed, constraint);
- ``summary.csv`` and ``summary.md``: aggregated over seeds, the table the CLI prints;
- the plots of :mod:`jaxnas.report`;
- ``fitness_cache.json`` (runs whose estimator is not traceable, e.g. RMI on CPU): every
  architecture scored so far, saved after each generation, with the method and config it
  belongs to. ``jaxnas search --resume`` replays the run from it: the searches are seeded,
  so the replay asks for the same architectures in the same order and trains only those the
  interrupted run had not reached, giving the result an uninterrupted run would have given;
- ``COMPLETE``: written last. A folder without it holds no finished result (a run killed
  while writing); ``--resume`` reruns it and ``report`` refuses it.
"""

from __future__ import annotations

import csv
import datetime
import io
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import jax
import numpy as np

from jaxnas.config import as_dict
from jaxnas.report import describe, pareto_rows
from jaxnas.resume import (  # noqa: F401 - re-exported: resume files belong to run folders
    FITNESS_CACHE,
    _fault,
    clean_json,
    first_difference,
    load_fitness_cache,
    run_fingerprint,
    save_fitness_cache,
    write_text,
)
from jaxnas.spaces import nb201

ORACLE_NOTE = (
    "ORACLE: the fitness is the table's NB201 test accuracy, so this is an optimiser "
    "benchmark against an oracle, not a NAS result"
)
COMPLETE = "COMPLETE"


# ---------------------------------------------------------------------------- progress


class _Bar:
    def update(self, n: int = 1, **postfix) -> None:
        pass

    def close(self) -> None:
        pass


class Progress:
    """Silent progress: log lines and bars go nowhere (library default)."""

    def log(self, msg: str) -> None:
        pass

    def bar(self, desc: str, total: int, unit: str) -> _Bar:
        return _Bar()


class _TqdmBar(_Bar):
    def __init__(self, desc, total, unit):
        from tqdm.auto import tqdm

        self._bar = tqdm(total=total, desc=desc, unit=unit)

    def update(self, n: int = 1, **postfix) -> None:
        post = {k: v for k, v in postfix.items() if v is not None}
        if post:
            self._bar.set_postfix(post, refresh=False)
        self._bar.update(n)

    def close(self) -> None:
        self._bar.close()


class ConsoleProgress(Progress):
    """Log lines on stdout and tqdm bars on stderr (the CLI); ``bars=False``: lines only."""

    def __init__(self, bars: bool = True):
        self.bars = bars

    def log(self, msg: str) -> None:
        print(msg, flush=True)

    def bar(self, desc: str, total: int, unit: str) -> _Bar:
        return _TqdmBar(desc, total, unit) if self.bars else _Bar()


# ---------------------------------------------------------------------------- results

CELL_COLUMNS = (
    "method", "device", "seed", "constraint_q", "T", "arch_index", "arch", "accuracy", "cost",
    "feasible", "best_feasible_accuracy", "regret", "score", "evaluations", "distinct",
    "seconds",
)


@dataclass
class Result:
    """What a grid run returns: per-cell rows, a summary and the run's metadata."""

    method: str
    config: dict
    meta: dict
    rows: list[dict] = field(default_factory=list)
    summary: list[dict] = field(default_factory=list)
    fronts: dict = field(default_factory=dict)
    history: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        return {"method": self.method, "config": self.config, "meta": self.meta,
                "summary": self.summary, "rows": self.rows, "fronts": self.fronts,
                "history": self.history}


def make_result(name: str, cfg, prob, grid, bases: dict | None = None) -> Result:
    """Rows, summary, fronts and history of a method's grid and its baselines' grids."""
    bases = bases or {}
    rows = _rows(name, prob, grid)
    timing = {**grid.timing}
    for b, g in bases.items():
        rows += _rows(b, prob, g)
        timing.update({f"{b}_{k}": v for k, v in g.timing.items()})
    est = prob.estimator
    inner = getattr(est, "estimator", est)
    meta = {
        "oracle": prob.oracle,
        "note": ORACLE_NOTE if prob.oracle else "",
        "estimator": str(getattr(est, "name", type(est).__name__)),
        "estimator_setup": getattr(inner, "setup", None),
        "traceable": bool(est.traceable),
        "devices": list(prob.devices),
        "missing_devices": list(prob.missing_devices),
        "cost_columns": list(prob.cost_columns),
        "cost_unit": prob.cost_unit,
        "cost_info": prob.cost_info,
        "report_column": prob.report_column,
        "score_column": cfg.score_column if cfg.estimator == "table" else None,
        "constraint_quantiles": list(prob.quantiles),
        "constraints": {d: [float(t) for t in prob.constraints[i]]
                        for i, d in enumerate(prob.devices)},
        "best_feasible_accuracy": {d: [float(t) for t in prob.best_feasible[i]]
                                   for i, d in enumerate(prob.devices)},
        "evaluations_per_run": cfg.evaluations,
        "timing": timing,
        "jax": jax.__version__,
        "backend": jax.default_backend(),
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
    }
    if not prob.oracle and meta["score_column"] and prob.report_column:
        meta["protocol"] = (f"search: {_column_words(meta['score_column'])}; report: "
                            f"{_column_words(prob.report_column)}")
    if getattr(est, "evaluations", None) is not None:
        meta["estimator_evaluations"] = int(est.evaluations)
    result = Result(method=name, config=as_dict(cfg), meta=meta, rows=rows)
    result.summary = summarize(rows)
    result.fronts = _fronts(prob, grid)
    result.history = {name: _history(grid)} | {b: _history(g) for b, g in bases.items()}
    return result


def _column_words(col: str) -> str:
    """``cifar10_valid_acc_hp12`` -> ``12-epoch validation (cifar10_valid_acc_hp12)``."""
    epochs = "12-epoch" if col.endswith("_hp12") else "200-epoch"
    kind = "validation" if "_valid_" in col else "test" if "_test_" in col else col
    return f"{epochs} {kind} ({col})"


def _row(method, prob, d, s, q, arch, score, queries, distinct, seconds):
    found = bool(np.isfinite(score))
    idx = int(nb201.index(np.asarray(arch, np.int64)))
    cost = float(np.asarray(prob.costs[d])[idx])
    T = float(prob.constraints[d, q])
    feasible = found and cost <= T
    acc = float(prob.report[idx]) if found else math.nan
    best = float(prob.best_feasible[d, q])
    return {
        "method": method, "device": prob.devices[d], "seed": prob.cfg.seed_offset + s,
        "constraint_q": prob.quantiles[q], "T": T, "arch_index": idx if found else -1,
        "arch": nb201.to_str(np.asarray(arch)) if found else "", "accuracy": acc,
        "cost": cost if found else math.nan, "feasible": feasible,
        "best_feasible_accuracy": best, "regret": best - acc if feasible else math.nan,
        "score": float(score), "evaluations": int(queries), "distinct": int(distinct),
        "seconds": float(seconds),
    }


def _rows(method, prob, grid) -> list[dict]:
    t = grid.timing
    secs = t.get("cell_seconds") or [t["seconds_per_cell"]] * grid.cells
    o, rows = grid.out, []
    for d in range(grid.devices):
        for s in range(grid.seeds):
            for q in range(grid.constraints):
                c = grid.cell_index(d, s, q)
                j = 0 if grid.per_constraint else q
                rows.append(_row(method, prob, d, s, q, o["arch"][c][j], o["score"][c][j],
                                 o["queries"][c], o["distinct"][c], secs[c]))
    return rows


def _fronts(prob, grid) -> dict:
    """Per device: the final population of seed 0 (first constraint's run), as rows."""
    out = {}
    for d, dev in enumerate(prob.devices):
        c = grid.cell_index(d, 0, 0)
        codes, F = grid.out["population"][c], grid.out["objectives"][c]
        idx = [int(nb201.index(np.asarray(a, np.int64))) for a in codes]
        out[dev] = [{"arch_index": i, "arch": nb201.to_str(nb201.from_index(i)),
                     "score": float(f[0]), "cost": float(f[1]),
                     "accuracy": float(prob.report[i]),
                     "connected": bool(nb201.is_connected(nb201.from_index(i))),
                     **({"diversity": float(-f[2])} if len(f) > 2 else {})}
                    for i, f in zip(idx, F)]
    return out


def _history(grid) -> dict:
    """Per-generation metrics averaged over cells (mean of finite values)."""
    h = grid.out.get("history") or {}
    out = {}
    for k, v in h.items():
        v = np.asarray(v, np.float64)
        if v.ndim != 2:  # (cells, generations) only
            continue
        v = np.where(np.isfinite(v), v, np.nan)
        with np.errstate(all="ignore"):
            out[k] = [None if not np.isfinite(x) else float(x) for x in np.nanmean(v, axis=0)]
    return out


def _mean_std(x):
    x = np.asarray([v for v in x if v is not None and np.isfinite(v)], np.float64)
    if len(x) == 0:
        return math.nan, math.nan
    return float(x.mean()), float(x.std())


def summarize(rows: list[dict]) -> list[dict]:
    """Aggregate over seeds per (method, device, constraint)."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["method"], r["device"], r["constraint_q"]), []).append(r)
    out = []
    for (method, device, q), rs in groups.items():
        acc_m, acc_s = _mean_std([r["accuracy"] for r in rs if r["feasible"]])
        reg_m, reg_s = _mean_std([r["regret"] for r in rs])
        out.append({
            "method": method, "device": device, "constraint_q": q, "T": rs[0]["T"],
            "runs": len(rs), "feasible_rate": float(np.mean([r["feasible"] for r in rs])),
            "accuracy_mean": acc_m, "accuracy_std": acc_s,
            "best_feasible_accuracy": rs[0]["best_feasible_accuracy"],
            "regret_mean": reg_m, "regret_std": reg_s,
            "evaluations": int(np.mean([r["evaluations"] for r in rs])),
            "distinct_mean": float(np.mean([r["distinct"] for r in rs])),
            "seconds_mean": float(np.mean([r["seconds"] for r in rs])),
        })
    order = {"random": 1, "rea": 2}
    out.sort(key=lambda r: (r["device"], r["constraint_q"], order.get(r["method"], 0), r["method"]))
    return out


# ---------------------------------------------------------------------------- files

def default_out_dir(method: str) -> Path:
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path("jaxnas-runs") / f"{method}-{stamp}"


def check_out_dir(out) -> Path:
    """``--out`` must be a folder or not exist yet (checked before any work starts).

    Raises:
        ValueError: it is a file, or lies under a file, or cannot be created.
    """
    p = Path(out)
    for parent in (p, *p.parents):
        if parent.exists() and not parent.is_dir():
            raise ValueError(f"--out {out}: {parent} exists and is not a folder")
    if p.exists() and not os.access(p, os.W_OK):
        raise ValueError(f"--out {out}: the folder is not writable")
    return p


def write_json(path: Path, data) -> None:
    """Strict JSON (no NaN/Infinity), atomically."""
    write_text(path, json.dumps(clean_json(data), indent=1, allow_nan=False) + "\n")


def is_complete(out_dir) -> bool:
    return (Path(out_dir) / COMPLETE).is_file()


def write_result(result, out_dir, extra_files=None) -> dict[str, Path]:
    """Write result.json, cells.csv, summary.csv, summary.md (and ``extra_files(out)``, e.g.
    plots) into ``out_dir``, then the ``COMPLETE`` marker. The marker is removed first, so a
    run killed anywhere in here leaves a folder that ``--resume`` finishes."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / COMPLETE).unlink(missing_ok=True)
    data = clean_json(result.to_json())
    paths = {"json": out / "result.json", "cells": out / "cells.csv",
             "summary_csv": out / "summary.csv", "summary_md": out / "summary.md"}
    write_json(paths["json"], data)
    _fault("write:result.json")
    write_text(paths["cells"], _csv(data["rows"]))
    _fault("write:cells.csv")
    write_text(paths["summary_csv"], _csv(data["summary"]))
    write_text(paths["summary_md"], describe(data) + "\n")
    front = pareto_rows(data)
    paths["pareto_json"], paths["pareto_csv"] = out / "pareto.json", out / "pareto.csv"
    write_json(paths["pareto_json"], front)
    write_text(paths["pareto_csv"], _csv(front))
    paths["run_json"] = out / "run.json"
    write_json(paths["run_json"], {"method": data["method"], "seed": data["config"].get("seed_offset"),
                                   "config": data["config"],
                                   **(data["meta"].get("estimator_setup") or {}),
                                   "meta": data["meta"]})
    if extra_files is not None:
        paths.update(extra_files(out))
    _fault("write:complete")
    write_text(out / COMPLETE, json.dumps({"files": sorted(p.name for p in paths.values())},
                                          allow_nan=False))
    return paths


def _csv(rows: list[dict]) -> str:
    if not rows:
        return ""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: ("" if v is None else v) for k, v in r.items()})
    return buf.getvalue()


_RESULT_TYPES = {"method": str, "config": dict, "meta": dict, "summary": list, "rows": list}


def load_result(path) -> dict:
    """Read a finished run's ``result.json`` (``path``: the run folder or the file).

    Raises:
        FileNotFoundError: no result there. ValueError: not a complete jaxnas result (one
        line with the path and what is wrong).
    """
    p = Path(path)
    f = p / "result.json" if p.is_dir() else p
    if not f.exists():
        raise FileNotFoundError(f"no result.json in {p}")
    try:
        data = json.loads(f.read_text(encoding="utf-8"))
    except UnicodeDecodeError as e:
        raise ValueError(f"{f} is not UTF-8 text ({e.reason})") from e
    except json.JSONDecodeError as e:
        raise ValueError(f"{f} is not a valid result file: {e}") from e
    if not isinstance(data, dict):
        raise ValueError(f"{f} is not a jaxnas result file (a JSON object is expected)")
    for k, typ in _RESULT_TYPES.items():
        if not isinstance(data.get(k), typ):
            raise ValueError(f"{f} is not a jaxnas result file ({k!r} missing or not a "
                             f"{typ.__name__})")
    if not all(isinstance(r, dict) for r in data["summary"] + data["rows"]):
        raise ValueError(f"{f} is not a jaxnas result file (rows must be objects)")
    if f.parent.joinpath(COMPLETE).exists() is False and p.is_dir():
        raise ValueError(f"{p} holds an unfinished run (no {COMPLETE} marker); finish it with "
                         "`jaxnas search METHOD --config FILE --out DIR --resume`")
    return data
