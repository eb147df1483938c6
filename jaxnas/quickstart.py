"""``jaxnas quickstart``: MO-HDNAS on real data and real local hardware costs, offline.

The quickstart is a config, ``configs/quickstart.toml`` (shipped in the package as
``jaxnas/quickstart.toml``), run through the same pipeline as every search
(``methods.run('mo_hdnas', ...)``) and written by the same writers. Its pieces are registry
entries of the library:

1. **data**: ``[rmi] dataset = "digits"``: scikit-learn's bundled 8x8 handwritten digits (real
   images, no download), a seeded stratified split, grey levels repeated to 3 channels;
2. **reference**: ``reference = "digits_resnet8"``: a ResNet-8 trained on the digits on first
   use (:func:`jaxnas.data.train.ensure_reference`, seconds) and cached;
3. **similarity**: the RMI estimator (METHODS.md 5.1) with NB201 TinyNetworks scaled to the
   data (C=8, N=1) and 50 SGD steps;
4. **hardware cost**: ``cost = "local_latency"``: a per-op latency table measured on this
   machine, validated against whole networks and cached per machine (``--no-measure``:
   analytic FLOPs);
5. **search**: MO-HDNAS (NSGA-II over similarity, cost and cost diversity), one run answering
   every constraint.
"""

from __future__ import annotations

import copy
import math
import tomllib
from pathlib import Path

from jaxnas import methods
from jaxnas.data.train import ensure_reference

CONFIG_FILE = Path(__file__).with_name("quickstart.toml")


def defaults() -> dict:
    """The shipped quickstart config (a parsed TOML mapping)."""
    return tomllib.loads(CONFIG_FILE.read_text(encoding="utf-8"))


def config(generations: int | None = None, population: int | None = None, seed: int = 0,
           measure: bool = True, steps: int | None = None) -> dict:
    """The quickstart config with the CLI's overrides (a mapping for ``methods.run``)."""
    cfg = copy.deepcopy(defaults())
    cfg.pop("method", None)
    if generations is not None:
        cfg["generations"] = generations
    if population is not None:
        cfg["population"] = population
    if steps is not None:
        cfg["rmi"]["steps"] = steps
    cfg["seed_offset"] = seed
    cfg["rmi"]["batch_seed"] = seed
    if not measure:
        cfg["cost"] = "flops"
    return cfg


def run(cfg: dict, progress=None):
    """Train the reference if it is not cached yet, then run MO-HDNAS on ``cfg``."""
    ref = cfg.get("rmi", {}).get("reference")
    if ref == "digits_resnet8":
        ensure_reference(ref, log=progress.log if progress is not None else None)
    return methods.run("mo_hdnas", cfg, progress=progress)


def describe(result) -> str:
    """The Pareto set and the answer per constraint, as the quickstart prints them."""
    data = result.to_json()
    unit = data["meta"].get("cost_unit", "")
    front = [r for r in data["fronts"].get("local_cpu", data["fronts"].get("flops", []))
             if r.get("connected", True)]
    lines = [f"Final population: {len(front)} connected members "
             f"({data['meta'].get('estimator_evaluations', '?')} distinct architectures trained)",
             f"  {'RMI loss':>9}  {'cost (' + unit + ')':>12}  {'diversity':>9}  architecture"]
    for r in sorted(front, key=lambda r: r["cost"]):
        if r["score"] is not None and math.isfinite(r["score"]):
            lines.append(f"  {r['score']:>9.4f}  {r['cost']:>12.4f}  "
                         f"{r.get('diversity', float('nan')):>9.3f}  {r['arch']}")
    lines.append("\nOne run covers every constraint: lowest RMI loss with cost <= T, "
                 "T = cost quantile:")
    for r in data["rows"]:
        if r["method"] != "mo_hdnas":
            continue
        found = f"RMI loss {r['score']:.4f}  {r['arch']}" if r["arch"] else "none feasible"
        lines.append(f"  q={r['constraint_q']:.2f}  T={r['T']:.4f} {unit}: {found}")
    return "\n".join(lines)
