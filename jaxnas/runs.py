"""Run directories and result files (the only place, with the CLI, that writes them).

A search run directory holds:

- ``result.json``: config, metadata (oracle flag, devices, constraints, timings), the
  summary and every cell row (strict JSON: NaN/inf are written as null);
- ``cells.csv``: one row per (method, device, seed, constraint);
- ``summary.csv`` and ``summary.md``: aggregated over seeds, the table the CLI prints;
- ``fitness_cache.json`` (runs whose estimator is not traceable, e.g. RMI on CPU): every
  architecture scored so far, saved after each generation, with the method and config it
  belongs to. ``jaxnas search --resume`` replays the run from it: the searches are seeded,
  so the replay asks for the same architectures in the same order and trains only those the
  interrupted run had not reached, giving the result an uninterrupted run would have given.
"""

from __future__ import annotations

import csv
import datetime
import json
import math
import os
from pathlib import Path

SUMMARY_COLUMNS = (
    ("method", "method", None),
    ("device", "device", None),
    ("constraint_q", "q", "{:.2f}"),
    ("T", "T", "{:.3f}"),
    ("feasible_rate", "feasible", "{:.0%}"),
    ("accuracy_mean", "acc %", "{:.2f}"),
    ("accuracy_std", "± std", "{:.2f}"),
    ("best_feasible_accuracy", "best feasible %", "{:.2f}"),
    ("regret_mean", "regret", "{:.2f}"),
    ("evaluations", "evals", "{}"),
    ("distinct_mean", "distinct", "{:.0f}"),
    ("seconds_mean", "s/run", "{:.2g}"),
)


def default_out_dir(method: str) -> Path:
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path("jaxnas-runs") / f"{method}-{stamp}"


def _clean(x):
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {str(k): _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    if hasattr(x, "item") and callable(x.item):  # numpy scalars
        return _clean(x.item())
    return x


def _fmt(value, spec):
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    return spec.format(value) if spec else str(value)


def markdown_table(rows: list[dict], columns=SUMMARY_COLUMNS) -> str:
    """Rows as a GitHub Markdown table with the given ``(key, header, format)`` columns."""
    head = "| " + " | ".join(h for _, h, _ in columns) + " |"
    sep = "|" + "|".join("---" for _ in columns) + "|"
    body = ["| " + " | ".join(_fmt(r.get(k), f) for k, _, f in columns) + " |" for r in rows]
    return "\n".join([head, sep, *body])


def describe(result) -> str:
    """Header lines plus the summary table, as printed and as written to summary.md."""
    data = result.to_json() if hasattr(result, "to_json") else result
    meta, cfg = data["meta"], data["config"]
    lines = [f"# {data['method']} results", ""]
    if meta.get("oracle"):
        lines += [f"**{meta['note']}.**", ""]
    lines += [
        f"- estimator: {meta['estimator']}",
        f"- devices: {', '.join(meta['devices'])}"
        + (f" (missing from the table: {', '.join(meta['missing_devices'])})"
           if meta.get("missing_devices") else ""),
        f"- constraints: cost quantiles {meta['constraint_quantiles']} per device; "
        f"accuracy column: {meta.get('report_column')}",
        f"- seeds: {cfg.get('seeds')}; evaluations per run: {meta['evaluations_per_run']} "
        "(random search uses the same number)",
    ]
    t = meta.get("timing", {})
    if "compile_seconds" in t:
        lines.append(
            f"- time: compile {t['compile_seconds']:.1f} s, run {t['run_seconds']:.2f} s for "
            f"{t['cells']} cells ({t['mode']})"
        )
    elif "run_seconds" in t:
        lines.append(f"- time: {t['run_seconds']:.1f} s for {t['cells']} cells ({t['mode']})")
    lines += ["", markdown_table(data["summary"]), ""]
    lines.append("regret = best feasible accuracy in the table - accuracy found, over feasible "
                 "answers; acc % is the mean over feasible answers.")
    return "\n".join(lines)


def write_result(result, out_dir) -> dict[str, Path]:
    """Write result.json, cells.csv, summary.csv and summary.md into ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    data = _clean(result.to_json())
    paths = {
        "json": out / "result.json",
        "cells": out / "cells.csv",
        "summary_csv": out / "summary.csv",
        "summary_md": out / "summary.md",
    }
    tmp = paths["json"].with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=1, allow_nan=False))
    os.replace(tmp, paths["json"])
    _write_csv(paths["cells"], data["rows"])
    _write_csv(paths["summary_csv"], data["summary"])
    paths["summary_md"].write_text(describe(data) + "\n")
    return paths


def _write_csv(path: Path, rows: list[dict]) -> None:
    if not rows:
        path.write_text("")
        return
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        for r in rows:
            w.writerow({k: ("" if v is None else v) for k, v in r.items()})


FITNESS_CACHE = "fitness_cache.json"


def run_fingerprint(method: str, config: dict) -> dict:
    """What a fitness cache belongs to: the method and its config (JSON-normalised)."""
    return json.loads(json.dumps({"method": method, "config": _clean(dict(config))},
                                 sort_keys=True))


def save_fitness_cache(out_dir, fingerprint: dict, cache: dict) -> Path:
    """Write ``fitness_cache.json`` atomically (``cache``: NB201 index -> score)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / FITNESS_CACHE
    data = {"fingerprint": fingerprint, "scores": {str(int(k)): float(v) for k, v in cache.items()}}
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)
    return path


def load_fitness_cache(out_dir, fingerprint: dict) -> dict[int, float] | None:
    """The scores saved in ``out_dir`` (None if there is no cache file).

    Raises:
        ValueError: the file is unreadable, or belongs to another method or config (one line
            naming the file).
    """
    path = Path(out_dir) / FITNESS_CACHE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
        scores = {int(k): float(v) for k, v in data["scores"].items()}
        saved = data["fingerprint"]
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise ValueError(f"{path} is not a jaxnas fitness cache ({e})") from e
    if saved != fingerprint:
        diff = sorted(k for k in set(saved.get("config", {})) | set(fingerprint["config"])
                      if saved.get("config", {}).get(k) != fingerprint["config"].get(k))
        what = f"config keys differ: {', '.join(diff)}" if diff else "the method differs"
        raise ValueError(f"{path} belongs to another run ({what}); resume with the same "
                         "config, or choose another --out")
    return scores


def load_result(path) -> dict:
    """Read a run's ``result.json`` (``path`` is the run folder or the file).

    Raises:
        FileNotFoundError / ValueError with the offending path.
    """
    p = Path(path)
    f = p / "result.json" if p.is_dir() else p
    if not f.exists():
        raise FileNotFoundError(f"no result.json in {p}")
    try:
        data = json.loads(f.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{f} is not a valid result file: {e}") from e
    for k in ("method", "config", "meta", "summary", "rows"):
        if k not in data:
            raise ValueError(f"{f} is not a jaxnas result file (no {k!r})")
    return data
