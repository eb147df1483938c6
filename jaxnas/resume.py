"""Resuming runs: the fitness cache of a non-traceable search, the fingerprint that ties a
run folder to its method and config, atomic file writes, and the fault points of the
kill-and-resume tests.

``fitness_cache.json`` holds every architecture scored so far, saved after each generation
with the fingerprint of its run. ``jaxnas search --resume`` replays the run from it: the
searches are seeded, so the replay asks for the same architectures in the same order and
trains only those the interrupted run had not reached, giving the result an uninterrupted run
would have given.
"""

from __future__ import annotations

import json
import math
import os
import signal
from pathlib import Path

import numpy as np

FITNESS_CACHE = "fitness_cache.json"


def clean_json(x):
    """JSON-ready copy: non-finite floats become null, numpy scalars plain numbers."""
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {str(k): clean_json(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [clean_json(v) for v in x]
    if isinstance(x, np.ndarray):
        return clean_json(x.tolist())
    if hasattr(x, "item") and callable(x.item):  # numpy scalars
        return clean_json(x.item())
    return x


def write_text(path: Path, text: str) -> None:
    """Write a file atomically (a temporary file renamed over it)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


_SAVES = {"cache": 0}


def _fault(point: str) -> None:
    """Fault injection for the kill-and-resume tests: ``JAXNAS_FAULT=<point>`` SIGKILLs this
    process when it reaches ``point`` (``write:<file>``, ``write:complete``, ``cache:<n>``)."""
    if os.environ.get("JAXNAS_FAULT") == point:
        os.kill(os.getpid(), signal.SIGKILL)



def run_fingerprint(method: str, config: dict) -> dict:
    """What a run folder belongs to: the method and its config (JSON-normalised)."""
    return json.loads(json.dumps({"method": method, "config": clean_json(dict(config))}, allow_nan=False,
                                 sort_keys=True))


def first_difference(saved: dict, fingerprint: dict) -> str:
    """One line naming how a saved fingerprint differs from this run's."""
    if saved.get("method") != fingerprint.get("method"):
        return f"the method differs ({saved.get('method')!r} vs {fingerprint.get('method')!r})"
    a, b = saved.get("config", {}) or {}, fingerprint.get("config", {}) or {}
    diff = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
    if not diff:
        return "the config differs"
    k = diff[0]
    return f"config keys differ: {', '.join(diff)} (first: {k} saved {a.get(k)!r}, now {b.get(k)!r})"


def save_fitness_cache(out_dir, fingerprint: dict, cache: dict) -> Path:
    """Write ``fitness_cache.json`` atomically (``cache``: NB201 index -> score)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / FITNESS_CACHE
    scores = {str(int(k)): (float(v) if math.isfinite(float(v)) else None)
              for k, v in cache.items()}
    write_text(path, json.dumps({"fingerprint": fingerprint, "scores": scores},
                                allow_nan=False))
    _SAVES["cache"] += 1
    _fault(f"cache:{_SAVES['cache']}")
    return path


def load_fitness_cache(out_dir, fingerprint: dict) -> dict[int, float] | None:
    """The scores saved in ``out_dir`` (None if there is no cache file).

    Raises:
        ValueError: the file is unreadable, or belongs to another method or config (one line
            naming the file and the first difference).
    """
    path = Path(out_dir) / FITNESS_CACHE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        scores = {int(k): (math.inf if v is None else float(v))
                  for k, v in data["scores"].items()}
        saved = data["fingerprint"]
    except (ValueError, KeyError, TypeError, AttributeError, UnicodeDecodeError) as e:
        raise ValueError(f"{path} is not a jaxnas fitness cache ({e})") from e
    if saved != fingerprint:
        raise ValueError(f"{path} belongs to another run ({first_difference(saved, fingerprint)}); "
                         "resume with the same config, or choose another --out")
    return scores


