"""Search quality against tools users already trust, at the same evaluation budget.

One grid: every HW-NAS-Bench device in the shared table x cost constraints (25/50/75 %
quantiles) x seeds, budget ``population x (generations + 1)`` evaluations (default 50 x 51 =
2,550). Contenders:

- jaxnas ``hw_evrsnas`` and ``mo_hdnas`` (each in the variants named in ``VARIANTS``),
- random search and REA (jaxnas baselines, same budget),
- pymoo's GA (integer genome as pymoo documents it: integer sampling, SBX + PM with rounding
  repair, duplicates eliminated; the constraint as ``G = c - T <= 0``; binary tournament),
- pymoo's NSGA2 on ``[s, c]`` (same operators), answering each T from its final population.

Two protocols: ``oracle`` (search on the NB201 200-epoch test accuracy, the shared table's
column) and ``hp12`` (search on the 12-epoch validation accuracy, report the 200-epoch test
accuracy, as NAS papers do). Per cell: median regret and the fraction of feasible answers;
over the grid: median and mean regret, cells where a contender's median regret is worse than
random search's, distinct architectures per run.

``--timing`` also measures the time to the first results table (the mo_hdnas grid with its
random baseline) from a cold and a warm compilation cache, against pymoo's loop over the same
grid, each in a fresh process.

Run from the repo root: ``python benchmarks/search_quality.py [--quick] [--timing]``.
Ends with ``RESULT`` lines (ratio = pymoo seconds / jaxnas seconds for the timing).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

#: jaxnas variants: name -> (method, config overrides)
VARIANTS = {
    "hw_evrsnas (default: hinge, lam 10, tournament 2, 10 elites, dedup, history)": (
        "hw_evrsnas", {}),
    "hw_evrsnas (EvNAS GA: two-sided, lam 1, tournament 10, 1 elite, elite answer)": (
        "hw_evrsnas", {"penalty": "two_sided", "lam": 1.0, "tournament_size": 10,
                       "num_elites": 1, "eliminate_duplicates": False, "answer": "objective"}),
    "mo_hdnas (default: categorical, chi nearest, history)": ("mo_hdnas", {}),
    "mo_hdnas (METHODS.md 6: alpha SBX/PM, chi 5-NN, final population)": (
        "mo_hdnas", {"genome": "alpha", "chi_mode": "knn", "select_from": "population"}),
}
PROTOCOLS = {"oracle": "cifar10_test_acc", "hp12": "cifar10_valid_acc_hp12"}


def data_dir() -> Path:
    env = os.environ.get("JAXNAS_DATA_DIR")
    return Path(env) if env else REPO.parent / "shared" / "data"


# ---------------------------------------------------------------------------- pymoo


def pymoo_rows(table, score_col, devices, quantiles, seeds, pop, gens, nb201, T_of,
               ga: bool = True):
    """pymoo GA (per device x T x seed; unless ``ga`` is False) and NSGA2 (per device x seed)
    rows."""
    from pymoo.algorithms.moo.nsga2 import NSGA2
    from pymoo.algorithms.soo.nonconvex.ga import GA
    from pymoo.core.problem import Problem
    from pymoo.operators.crossover.sbx import SBX
    from pymoo.operators.mutation.pm import PM
    from pymoo.operators.repair.rounding import RoundingRepair
    from pymoo.operators.sampling.rnd import IntegerRandomSampling
    from pymoo.optimize import minimize

    score = 100.0 - table.numpy(score_col).astype(np.float64)
    pow5 = 5 ** np.arange(5, -1, -1)
    lut = np.asarray(nb201._INDEX_OF_CODE)
    budget = pop * (gens + 1)

    class NB201(Problem):
        def __init__(self, cost, T=None):
            super().__init__(n_var=6, n_obj=1 if T is not None else 2,
                             n_ieq_constr=1 if T is not None else 0, xl=0, xu=4, vtype=int)
            self.cost, self.T, self.seen = cost, T, set()

        def _evaluate(self, x, out, *a, **k):
            i = lut[np.asarray(x, np.int64) @ pow5]
            self.seen.update(i.tolist())
            if self.T is None:
                out["F"] = np.stack([score[i], self.cost[i]], axis=1)
            else:
                out["F"] = score[i]
                out["G"] = self.cost[i] - self.T

    def ops():
        return dict(sampling=IntegerRandomSampling(),
                    crossover=SBX(prob=1.0, eta=3.0, vtype=float, repair=RoundingRepair()),
                    mutation=PM(prob=1.0, eta=3.0, vtype=float, repair=RoundingRepair()),
                    eliminate_duplicates=True)

    rows = []
    for dev in devices:
        cost = table.numpy(f"cifar10_{dev}_latency").astype(np.float64)
        for s in range(seeds):
            for q in quantiles if ga else ():
                prob = NB201(cost, T_of(dev, q))
                res = minimize(prob, GA(pop_size=pop, **ops()), ("n_eval", budget), seed=s)
                idx = -1 if res.X is None else int(lut[np.asarray(res.X, np.int64) @ pow5])
                rows.append(("pymoo GA", dev, s, q, idx, len(prob.seen)))
            prob = NB201(cost)
            res = minimize(prob, NSGA2(pop_size=pop, **ops()), ("n_eval", budget), seed=s)
            idx_pop = lut[np.asarray(res.pop.get("X"), np.int64) @ pow5]
            for q in quantiles:
                T = T_of(dev, q)
                ok = cost[idx_pop] <= T
                idx = int(idx_pop[ok][np.argmin(score[idx_pop][ok])]) if ok.any() else -1
                rows.append(("pymoo NSGA2", dev, s, q, idx, len(prob.seen)))
    return rows


# ---------------------------------------------------------------------------- evaluation


def summarise(rows, acc, cost_of, T_of, best_of, name_order):
    """rows: (contender, device, seed, q, arch_index, distinct) -> per-cell and grid stats."""
    by = {}
    for c, dev, s, q, idx, distinct in rows:
        feas = idx >= 0 and cost_of(dev)[idx] <= T_of(dev, q)
        regret = best_of(dev, q) - acc[idx] if feas else np.nan
        by.setdefault(c, {}).setdefault((dev, q), []).append((regret, feas, distinct))
    cells = sorted(next(iter(by.values())).keys())
    out = {}
    for c in name_order:
        if c not in by:
            continue
        med = {k: float(np.nanmedian([r for r, _, _ in v])) if any(f for _, f, _ in v)
               else np.nan for k, v in by[c].items()}
        feas = {k: float(np.mean([f for _, f, _ in v])) for k, v in by[c].items()}
        allr = [r for v in by[c].values() for r, _, _ in v]
        out[c] = {"cell_median": med, "cell_feasible": feas,
                  "median": float(np.nanmedian(allr)), "mean": float(np.nanmean(allr)),
                  "feasible": float(np.mean([f for v in by[c].values() for _, f, _ in v])),
                  "distinct": float(np.mean([d for v in by[c].values() for _, _, d in v]))}
    rnd = out.get("random search")
    for c, o in out.items():
        if rnd is not None:
            o["cells_worse_than_random"] = int(sum(
                1 for k in cells if not (o["cell_median"][k] <= rnd["cell_median"][k] + 1e-9)))
    return out, cells


def run_protocol(protocol, args):
    from jaxnas import methods
    from jaxnas.bench import load_table
    from jaxnas.spaces import nb201

    table = load_table(data_dir())
    score_col = PROTOCOLS[protocol]
    acc = table.numpy("cifar10_test_acc").astype(np.float64)
    base = {"score_column": score_col, "report_column": "cifar10_test_acc", "seeds": args.seeds,
            "population": args.population, "generations": args.generations,
            "constraint_quantiles": list(args.quantiles)}
    rows, meta = [], None
    for i, (label, (method, over)) in enumerate(VARIANTS.items()):
        cfg = {**base, **over, "baselines": ["random", "rea"] if i == 0 else []}
        t0 = time.perf_counter()
        r = methods.run(method, cfg, table=table)
        print(f"  {label}: {time.perf_counter() - t0:.1f} s", flush=True)
        meta = r.meta
        for row in r.rows:
            name = {"random": "random search", "rea": "REA"}.get(row["method"], label)
            rows.append((name, row["device"], row["seed"], row["constraint_q"],
                         row["arch_index"], row["distinct"]))
    devices = meta["devices"]
    T = {(d, q): t for d in devices for q, t in zip(args.quantiles, meta["constraints"][d])}
    best = {(d, q): b for d in devices
            for q, b in zip(args.quantiles, meta["best_feasible_accuracy"][d])}
    costs = {d: table.numpy(f"cifar10_{d}_latency").astype(np.float64) for d in devices}
    t0 = time.perf_counter()
    rows += pymoo_rows(table, score_col, devices, args.quantiles, args.seeds, args.population,
                       args.generations, nb201, lambda d, q: T[(d, q)])
    print(f"  pymoo GA + NSGA2: {time.perf_counter() - t0:.1f} s", flush=True)
    order = list(VARIANTS) + ["random search", "REA", "pymoo GA", "pymoo NSGA2"]
    stats, cells = summarise(rows, acc, costs.get, lambda d, q: T[(d, q)],
                             lambda d, q: best[(d, q)], order)
    return stats, cells


def print_protocol(protocol, stats, cells):
    print(f"\n## protocol {protocol} (search: {PROTOCOLS[protocol]}; report: cifar10_test_acc)")
    head = "| contender | " + " | ".join(f"{d} q{q:.2f}" for d, q in cells) + \
        " | median | mean | feasible | worse than random | distinct |"
    print(head)
    print("|" + "---|" * (len(cells) + 6))
    for c, o in stats.items():
        cell = " | ".join(f"{o['cell_median'][k]:.2f} ({o['cell_feasible'][k]:.0%})"
                          for k in cells)
        print(f"| {c} | {cell} | {o['median']:.3f} | {o['mean']:.3f} | {o['feasible']:.1%} | "
              f"{o.get('cells_worse_than_random', 0)}/{len(cells)} | {o['distinct']:.0f} |")


# ---------------------------------------------------------------------------- timing

_JAX_GRID = """
import json, sys, time
from jaxnas import methods
from jaxnas.bench import load_table
table = load_table(sys.argv[1])
t0 = time.perf_counter()
r = methods.run("mo_hdnas", json.loads(sys.argv[2]), table=table)
print(json.dumps({"seconds": time.perf_counter() - t0}))
"""


def timing(args):
    cfg = json.dumps({"seeds": args.seeds, "population": args.population,
                      "generations": args.generations})
    env = dict(os.environ)
    out = {}
    cache_dir = args.cache_dir or tempfile.mkdtemp(prefix="jaxnas-sq-cache-")
    with_cache = dict(env, JAXNAS_CACHE_DIR=str(Path(cache_dir).resolve()))
    for label, e in (("cold", dict(env, JAXNAS_NO_COMPILATION_CACHE="1")),
                     ("warm-fill", with_cache), ("warm", with_cache)):
        p = subprocess.run([sys.executable, "-c", _JAX_GRID, str(data_dir()), cfg], env=e,
                           capture_output=True, text=True, check=True)
        out[label] = json.loads(p.stdout.strip().splitlines()[-1])["seconds"]
        print(f"  jaxnas mo_hdnas grid + random baseline, {label}: {out[label]:.2f} s", flush=True)
    from jaxnas.bench import load_table
    from jaxnas.spaces import nb201

    table = load_table(data_dir())
    meta_T = {}
    for d in ("raspi4", "pixel3", "eyeriss", "fpga"):
        c = table.numpy(f"cifar10_{d}_latency").astype(np.float64)
        for q in args.quantiles:
            meta_T[(d, q)] = float(np.quantile(c, q))
    t0 = time.perf_counter()
    pymoo_rows(table, "cifar10_test_acc", ["raspi4", "pixel3", "eyeriss", "fpga"],
               args.quantiles, args.seeds, args.population, args.generations, nb201,
               lambda d, q: meta_T[(d, q)], ga=False)
    out["pymoo"] = time.perf_counter() - t0
    print(f"  pymoo NSGA2 over the same grid: {out['pymoo']:.2f} s", flush=True)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="3 seeds, 20 generations")
    ap.add_argument("--seeds", type=int, default=None)
    ap.add_argument("--population", type=int, default=50)
    ap.add_argument("--generations", type=int, default=None)
    ap.add_argument("--protocols", default="oracle,hp12")
    ap.add_argument("--timing", action="store_true", help="time to the first results table")
    ap.add_argument("--cache-dir", default=None,
                    help="compilation cache of the warm runs (default: a fresh temporary folder)")
    ap.add_argument("--json", default=None, help="write the statistics to this file")
    args = ap.parse_args()
    args.seeds = args.seeds or (3 if args.quick else 10)
    args.generations = args.generations or (20 if args.quick else 50)
    args.quantiles = (0.25, 0.5, 0.75)
    import jax

    print(f"machine: {platform.processor() or platform.machine()}, nproc {os.cpu_count()}; "
          f"jax {jax.__version__} {jax.default_backend()}; budget {args.population} x "
          f"{args.generations + 1} = {args.population * (args.generations + 1)} evaluations, "
          f"{args.seeds} seeds")
    allstats = {}
    for protocol in filter(None, args.protocols.split(",")):
        print(f"\nprotocol {protocol}:", flush=True)
        stats, cells = run_protocol(protocol, args)
        print_protocol(protocol, stats, cells)
        allstats[protocol] = {c: {k: v for k, v in o.items() if not k.startswith("cell_")}
                              for c, o in stats.items()}
        for c, o in stats.items():
            tag = c.split(" (")[0].replace(" ", "_")
            print(f"RESULT name=search_quality_{protocol}_{tag} jaxnas={o['mean']:.4f} "
                  f"peer={stats['random search']['mean']:.4f} ratio=nan unit=mean_regret "
                  f"variant={c!r}")
    if args.json:
        Path(args.json).write_text(json.dumps(allstats, indent=1))
    if args.timing:
        t = timing(args)
        print(f"RESULT name=time_to_table_cold jaxnas={t['cold']:.2f} peer={t['pymoo']:.2f} "
              f"ratio={t['pymoo'] / t['cold']:.2f} unit=s")
        print(f"RESULT name=time_to_table_warm jaxnas={t['warm']:.2f} peer={t['pymoo']:.2f} "
              f"ratio={t['pymoo'] / t['warm']:.2f} unit=s")


if __name__ == "__main__":
    main()
