"""The results grid: every device x seed (x constraint, for methods with
``Config.per_constraint``) as cells of one method search.

With a traceable estimator (a table column) the whole grid is **one** ``jit(vmap(cell))``
call; compile time and run time are measured separately, and a cell's seconds are the call's
run time divided by the number of cells. With a non-traceable estimator (RMI on CPU) the
cells run one after another through the Python driver, and ``on_generation(cell, gen,
state, metrics)`` reports each generation (progress bars, caches). Nothing here prints or
writes files.

Per cell the output holds the answers (``arch`` ``(Q, 6)``, ``score`` ``(Q,)``), the
evaluations used (``queries``, ``distinct``), the final population (``population``,
``objectives``) and the per-generation metrics (``history``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import jax
import jax.numpy as jnp
import numpy as np

from jaxnas.algorithms import run_compiled, run_loop
from jaxnas.bench import HW_DEVICES
from jaxnas.methods.problem import Cell, MethodSearch, Problem


@dataclass
class GridOutput:
    """Stacked per-cell outputs (numpy) and the cell layout."""

    per_constraint: bool
    devices: int
    seeds: int
    constraints: int
    out: dict
    timing: dict = field(default_factory=dict)

    @property
    def cells(self) -> int:
        return self.devices * self.seeds * (self.constraints if self.per_constraint else 1)

    def cell_index(self, d: int, s: int, q: int = 0) -> int:
        n_q = self.constraints if self.per_constraint else 1
        return (d * self.seeds + s) * n_q + (q if self.per_constraint else 0)


def cell_keys(seeds: int, devices, extra: int = 1, salt: int = 0, seed_offset: int = 0):
    """Typed keys ``(D, S, extra)``: ``fold_in(fold_in(fold_in(key(seed), device), q), salt)``,
    with ``device`` the HW-NAS-Bench device number, so a cell's key does not depend on which
    other devices are in the grid. Independent per cell and reproducible from the seed."""
    base = jax.vmap(jax.random.key)(seed_offset + jnp.arange(seeds))
    ids = jnp.asarray([HW_DEVICES.index(d) if d in HW_DEVICES else 100 + i
                       for i, d in enumerate(devices)])

    def per_dev(d):
        return jax.vmap(lambda b: jax.vmap(
            lambda q: jax.random.fold_in(jax.random.fold_in(jax.random.fold_in(b, d), q), salt)
        )(jnp.arange(extra)))(base)

    return jax.vmap(per_dev)(ids)


def _layout(cfg, prob: Problem, salt: int):
    """Flat per-cell keys, device indices and thresholds ``(cells, Q')``."""
    D, S, Q = len(prob.devices), cfg.seeds, len(prob.quantiles)
    n_q = Q if cfg.per_constraint else 1
    keys = cell_keys(S, prob.devices, n_q, salt, cfg.seed_offset).reshape(-1)
    dev = np.broadcast_to(np.arange(D)[:, None, None], (D, S, n_q)).reshape(-1)
    lim = np.broadcast_to(prob.constraints[:, None, :], (D, S, Q))
    lim = lim.reshape(-1, 1) if cfg.per_constraint else lim.reshape(D * S, Q)
    return keys, dev, lim.astype(np.float32)


def _cell_fn(spec: MethodSearch, prob: Problem, run, **kw):
    algo = spec.algorithm

    def cell(key, d, limits, **extra):
        params = spec.params.replace(T=limits)
        fitness = spec.objectives(Cell(prob.costs[d], limits))
        state, history = run(algo, params, fitness, key, spec.generations, **kw, **extra)
        codes, F = algo.final_population(state)
        return {**algo.answer(state, params), "queries": state.num_evaluations,
                "distinct": jnp.sum(state.seen), "population": codes, "objectives": F,
                "history": history}

    return cell


def run_grid(spec: MethodSearch, cfg, prob: Problem, traceable: bool, salt: int = 0,
             on_generation=None) -> GridOutput:
    """Run every cell of ``cfg``'s grid with the method search ``spec``.

    Args:
        traceable: the estimator is traceable (one compiled call) or not (Python loop).
        salt: folded into every cell key (the random-search baseline uses its own).
        on_generation: Python path only: ``(cell, gen, state, metrics)`` after the initial
            population (gen -1) and after every tell.
    """
    keys, dev, lim = _layout(cfg, prob, salt)
    grid = GridOutput(cfg.per_constraint, len(prob.devices), cfg.seeds, len(prob.quantiles), {})
    t = grid.timing
    if traceable:
        fn = jax.jit(jax.vmap(_cell_fn(spec, prob, run_compiled)))
        t0 = time.perf_counter()
        compiled = fn.lower(keys, jnp.asarray(dev), jnp.asarray(lim)).compile()
        t["compile_seconds"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        out = jax.block_until_ready(compiled(keys, jnp.asarray(dev), jnp.asarray(lim)))
        t["run_seconds"] = time.perf_counter() - t0
        t["seconds_per_cell"] = t["run_seconds"] / len(dev)
        t["mode"] = "one jit(vmap) call over all cells; per-cell seconds are amortised"
        grid.out = jax.tree.map(np.asarray, out)
    else:
        results, secs = [], []
        t_all = time.perf_counter()
        for c in range(len(dev)):
            cb = None if on_generation is None else (
                lambda g, st, m, c=c: on_generation(c, g, st, m))
            t0 = time.perf_counter()
            cell = _cell_fn(spec, prob, run_loop, on_generation=cb)
            results.append(jax.tree.map(np.asarray, cell(keys[c], int(dev[c]),
                                                         jnp.asarray(lim[c]))))
            secs.append(time.perf_counter() - t0)
        t["run_seconds"] = time.perf_counter() - t_all
        t["cell_seconds"] = secs
        t["mode"] = "Python loop per cell (non-traceable estimator), shared fitness cache"
        grid.out = jax.tree.map(lambda *xs: np.stack(xs), *results)
    t["cells"] = len(dev)
    return grid
