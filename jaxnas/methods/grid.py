"""Results-table runner: every HW-NAS-Bench device in the table x seeds (x constraints).

- **hw_evrsnas**: one GA run per (device, seed, constraint); constraints are cost
  quantiles per device (25/50/75 % by default).
- **mo_hdnas**: one NSGA-II run per (device, seed), which answers every constraint.
- **random search** with the same number of evaluations is a row of the same table.

With a traceable estimator (a table column) the whole grid is **one** ``jit(vmap(cell))``
call, and random search one more; compile time and run time are measured separately, and a
cell's seconds are the call's run time divided by the number of cells. With a non-traceable
estimator (RMI on CPU) the cells run one after another as Python loops (ask -> evaluate ->
tell), sharing one architecture-fitness cache, with a progress bar.

For each cell and constraint a row gives: the found architecture, its accuracy (the
table's ``<dataset>_test_acc``) and cost, whether it meets the constraint, the best
feasible accuracy in the whole table, the regret (best feasible - found, for feasible
answers), the evaluations used (queries, and distinct architectures) and the seconds.
No file is written here (see :mod:`jaxnas.runs`).
"""

from __future__ import annotations

import datetime
import importlib
import math
import time
from dataclasses import dataclass, field
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxnas.estimators import CachedEstimator
from jaxnas.methods.common import build_problem, config_dict, drive, parse_config, random_search
from jaxnas.spaces import nb201

METHOD_MODULES = {"hw_evrsnas": "jaxnas.methods.hw_evrsnas", "mo_hdnas": "jaxnas.methods.mo_hdnas"}

ORACLE_NOTE = (
    "ORACLE: the fitness is the table's NB201 test accuracy, so this is an optimiser "
    "benchmark against an oracle, not a NAS result"
)

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

    def to_json(self) -> dict:
        return {"method": self.method, "config": self.config, "meta": self.meta,
                "summary": self.summary, "rows": self.rows}


def method_module(name: str):
    if name not in METHOD_MODULES:
        raise ValueError(f"unknown method {name!r}; known: {', '.join(METHOD_MODULES)}")
    return importlib.import_module(METHOD_MODULES[name])


def _keys(seeds: int, devices, extra: int = 1, salt: int = 0):
    """Typed keys ``(D, S, extra)``: ``fold_in(fold_in(fold_in(key(s), device), q), salt)``,
    with ``device`` the HW-NAS-Bench device number, so a cell's key does not depend on which
    other devices are in the grid. Independent per cell and reproducible from the seed."""
    from jaxnas.bench import HW_DEVICES

    base = jax.vmap(jax.random.key)(jnp.arange(seeds))
    ids = jnp.asarray([HW_DEVICES.index(d) if d in HW_DEVICES else 100 + i
                       for i, d in enumerate(devices)])

    def per_dev(d):
        return jax.vmap(lambda b: jax.vmap(
            lambda q: jax.random.fold_in(jax.random.fold_in(jax.random.fold_in(b, d), q), salt)
        )(jnp.arange(extra)))(base)

    return jax.vmap(per_dev)(ids)


def run_grid(name: str, config, table=None, estimator=None, progress: bool = True,
             fitness_cache: dict | None = None, on_fitness=None) -> Result:
    """Run ``name`` (``'hw_evrsnas'`` or ``'mo_hdnas'``) over the grid of ``config``.

    Args:
        config: a mapping (e.g. parsed TOML) or the method's ``Config``.
        table: a loaded BenchTable (default: loaded from ``config.table``).
        estimator: any estimator (default: built from ``config.estimator``).
        fitness_cache, on_fitness: non-traceable estimators only: known scores
            ``{NB201 index: score}`` to start the shared fitness cache from, and a callback
            ``on_fitness(cache)`` after every evaluation that trained something (the CLI uses
            them to save the cache and ``--resume`` an interrupted run exactly).
    Returns:
        :class:`Result`.
    Raises:
        ValueError: bad config keys or values (one line).
    """
    mod = method_module(name)
    cfg = config if isinstance(config, mod.Config) else parse_config(mod.Config, config, name)
    cfg.validate()
    say = print if progress else (lambda *a, **k: None)
    prob = build_problem(cfg, table, estimator, log=say)
    try:
        return _run(name, mod, cfg, prob, say, progress, fitness_cache, on_fitness)
    finally:
        if estimator is None and hasattr(prob.estimator, "close"):
            prob.estimator.close()  # an estimator built here (RMI worker processes)


def _run(name, mod, cfg, prob, say, progress, fitness_cache, on_fitness) -> Result:
    search = mod.make_search(cfg)
    params = search.default_params(cfg)
    est = prob.estimator
    D, S, Q = len(prob.devices), cfg.seeds, len(prob.quantiles)
    per_constraint = name == "hw_evrsnas"

    say(f"{name}: {D} devices ({', '.join(prob.devices)}) x {S} seeds"
        + (f" x {Q} constraints" if per_constraint else f", {Q} constraints per run")
        + f"; {cfg.evaluations} evaluations per run; estimator {getattr(est, 'name', est)}")
    if prob.oracle:
        say(ORACLE_NOTE)

    timing: dict[str, Any] = {}
    if est.traceable:
        out, rs = _run_traceable(name, search, params, prob, cfg, per_constraint, timing, say)
    else:
        est = CachedEstimator(est, fitness_cache, on_fitness)
        timing["resumed_with_scores"] = len(est.cache)
        if fitness_cache:
            say(f"resuming: {len(est.cache)} architectures already scored")
        out, rs = _run_python(name, search, params, prob, cfg, per_constraint, timing, progress,
                              est)

    rows = _rows(name, prob, cfg, out, rs, per_constraint, timing)
    result = Result(
        method=name,
        config=config_dict(cfg),
        meta={
            "oracle": prob.oracle,
            "note": ORACLE_NOTE if prob.oracle else "",
            "estimator": str(getattr(est, "name", type(est).__name__)),
            "estimator_setup": getattr(prob.estimator, "setup", None),
            "traceable": bool(est.traceable),
            "devices": list(prob.devices),
            "missing_devices": list(prob.missing_devices),
            "cost_columns": list(prob.cost_columns),
            "report_column": prob.report_column,
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
        },
        rows=rows,
    )
    result.summary = summarize(rows)
    return result


def _run_traceable(name, search, params, prob, cfg, per_constraint, timing, say):
    est = prob.estimator
    D, S, Q = len(prob.devices), cfg.seeds, len(prob.quantiles)
    n_q = Q if per_constraint else 1
    keys = _keys(S, prob.devices, n_q).reshape(-1)
    dev = jnp.broadcast_to(jnp.arange(D)[:, None, None], (D, S, n_q)).reshape(-1)
    if per_constraint:
        lim = jnp.broadcast_to(prob.constraints[:, None, :], (D, S, Q)).reshape(-1)
    else:
        lim = jnp.broadcast_to(prob.constraints[:, None, :], (D, S, Q)).reshape(D * S, Q)
    costs = prob.costs

    def cell(key, d, limit):
        data = {"cost": costs[d], "T": limit}
        state = drive(search, est.evaluate, key, data, params, traceable=True)
        return search.result(state, data)

    grid = jax.jit(jax.vmap(cell))
    t0 = time.perf_counter()
    compiled = grid.lower(keys, dev, lim).compile()
    timing["compile_seconds"] = time.perf_counter() - t0
    say(f"compiled the grid ({dev.shape[0]} cells) in {timing['compile_seconds']:.1f} s; running")
    t0 = time.perf_counter()
    out = jax.block_until_ready(compiled(keys, dev, lim))
    timing["run_seconds"] = time.perf_counter() - t0
    timing["cells"] = int(dev.shape[0])
    timing["seconds_per_cell"] = timing["run_seconds"] / dev.shape[0]
    timing["mode"] = "one jit(vmap) call over all cells; per-cell seconds are amortised"

    # random search: one cell per (device, seed), answering every constraint
    rs_keys = _keys(S, prob.devices, 1, salt=7919).reshape(-1)
    rs_dev = jnp.repeat(jnp.arange(D), S)
    rs_lim = jnp.repeat(jnp.asarray(prob.constraints), S, axis=0)

    def rs_cell(key, d, limits):
        return random_search(est.evaluate, key, costs[d], limits, cfg.evaluations)

    rs_grid = jax.jit(jax.vmap(rs_cell))
    t0 = time.perf_counter()
    rs_compiled = rs_grid.lower(rs_keys, rs_dev, rs_lim).compile()
    timing["random_compile_seconds"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    rs = jax.block_until_ready(rs_compiled(rs_keys, rs_dev, rs_lim))
    timing["random_run_seconds"] = time.perf_counter() - t0
    timing["random_seconds_per_cell"] = timing["random_run_seconds"] / (D * S)
    say(f"ran {dev.shape[0]} cells in {timing['run_seconds']:.2f} s "
        f"(+ random search {timing['random_run_seconds']:.2f} s)")
    return jax.tree.map(np.asarray, out), jax.tree.map(np.asarray, rs)


def _run_python(name, search, params, prob, cfg, per_constraint, timing, progress, est):
    D, S, Q = len(prob.devices), cfg.seeds, len(prob.quantiles)
    n_q = Q if per_constraint else 1
    kd = _keys(S, prob.devices, n_q)
    results, secs = [], []
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=D * S * n_q * (search.generations + 1), desc=name, unit="gen")
    t_all = time.perf_counter()
    for d in range(D):
        for s in range(S):
            for q in range(n_q):
                limit = prob.constraints[d, q] if per_constraint else prob.constraints[d]
                data = {"cost": prob.costs[d], "T": jnp.asarray(limit)}
                key = kd[d, s, q]
                t0 = time.perf_counter()
                cb = (lambda g, st: bar.update(1)) if bar is not None else None
                state = drive(search, est.evaluate, key, data, params, traceable=False, callback=cb)
                res = search.result(state, data)
                results.append(jax.tree.map(np.asarray, res))
                secs.append(time.perf_counter() - t0)
                if bar is not None:
                    bar.set_postfix(trained=est.evaluations, refresh=False)
    if bar is not None:
        bar.close()
    timing["run_seconds"] = time.perf_counter() - t_all
    timing["cells"] = len(results)
    timing["cell_seconds"] = secs
    timing["mode"] = "Python loop per cell (non-traceable estimator), shared fitness cache"
    timing["estimator_evaluations"] = est.evaluations
    out = jax.tree.map(lambda *xs: np.stack(xs), *results)
    rs_res, rs_secs = [], []
    kd_rs = _keys(S, prob.devices, 1, salt=7919)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=D * S * cfg.evaluations, desc="random search", unit="arch")
    evaluate = _chunked(est.evaluate, cfg.population, bar)
    for d in range(D):
        for s in range(S):
            key = kd_rs[d, s, 0]
            t0 = time.perf_counter()
            r = random_search(evaluate, key, prob.costs[d], jnp.asarray(prob.constraints[d]),
                              cfg.evaluations)
            rs_res.append(jax.tree.map(np.asarray, r))
            rs_secs.append(time.perf_counter() - t0)
    if bar is not None:
        bar.close()
    timing["random_cell_seconds"] = rs_secs
    timing["estimator_evaluations_with_random"] = est.evaluations
    rs = jax.tree.map(lambda *xs: np.stack(xs), *rs_res)
    return out, rs


def _chunked(evaluate, size: int, bar=None):
    """``evaluate`` in chunks of ``size`` members (chunk i gets ``fold_in(key, i)``), so that
    a long Python-path evaluation shows progress."""

    def run(key, codes):
        codes = np.asarray(codes)
        out = []
        for i in range(0, len(codes), size):
            out.append(np.asarray(evaluate(jax.random.fold_in(key, i // size), codes[i:i + size])))
            if bar is not None:
                bar.update(len(out[-1]))
        return np.concatenate(out) if out else np.zeros(0, np.float32)

    return run


def _row(method, prob, d, s, q, arch, score, queries, distinct, seconds):
    idx = int(nb201.index(np.asarray(arch, np.int64)))
    cost = float(np.asarray(prob.costs[d])[idx])
    T = float(prob.constraints[d, q])
    found = bool(np.isfinite(score))
    feasible = found and cost <= T
    acc = float(prob.report[idx]) if found else math.nan
    best = float(prob.best_feasible[d, q])
    return {
        "method": method,
        "device": prob.devices[d],
        "seed": s,
        "constraint_q": prob.quantiles[q],
        "T": T,
        "arch_index": idx if found else -1,
        "arch": nb201.to_str(np.asarray(arch)) if found else "",
        "accuracy": acc,
        "cost": cost if found else math.nan,
        "feasible": feasible,
        "best_feasible_accuracy": best,
        "regret": best - acc if feasible else math.nan,
        "score": float(score),
        "evaluations": int(queries),
        "distinct": int(distinct),
        "seconds": float(seconds),
    }


def _rows(name, prob, cfg, out, rs, per_constraint, timing):
    D, S, Q = len(prob.devices), cfg.seeds, len(prob.quantiles)
    rows = []
    if per_constraint:
        sec = timing.get("cell_seconds") or [timing["seconds_per_cell"]] * (D * S * Q)
        c = 0
        for d in range(D):
            for s in range(S):
                for q in range(Q):
                    arch = out["arch"][c]
                    score = out["objective"][c]
                    rows.append(_row(name, prob, d, s, q, arch, score, out["queries"][c],
                                     out["distinct"][c], sec[c]))
                    c += 1
    else:
        sec = timing.get("cell_seconds") or [timing["seconds_per_cell"]] * (D * S)
        c = 0
        for d in range(D):
            for s in range(S):
                for q in range(Q):
                    rows.append(_row(name, prob, d, s, q, out["arch"][c][q], out["score"][c][q],
                                     out["queries"][c], out["distinct"][c], sec[c]))
                c += 1
    rsec = timing.get("random_cell_seconds") or [timing["random_seconds_per_cell"]] * (D * S)
    c = 0
    for d in range(D):
        for s in range(S):
            for q in range(Q):
                rows.append(_row("random", prob, d, s, q, rs["arch"][c][q], rs["score"][c][q],
                                 cfg.evaluations, rs["distinct"][c], rsec[c]))
            c += 1
    return rows


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
    order = {"random": 1}
    out.sort(key=lambda r: (r["device"], r["constraint_q"], order.get(r["method"], 0), r["method"]))
    return out
