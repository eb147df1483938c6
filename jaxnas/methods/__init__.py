"""The paper pipelines, one module per method, and the registry.

``methods.run(name, config) -> Result`` is the public entry (DESIGN.md): ``config`` is a
mapping (e.g. a parsed TOML file) or the method's ``Config``. Each method module exposes
``Config`` and ``make_search(config, problem)``, whose body reads like the paper's algorithm
box (objectives, algorithm, answer rule):

- ``'hw_evrsnas'`` (:mod:`.hw_evrsnas`): GA on score + distance-to-threshold penalty, one
  run per (device, constraint).
- ``'mo_hdnas'`` (:mod:`.mo_hdnas`): NSGA-II on score, cost and cost diversity; one run
  answers every constraint.
- ``'cmanas'`` (:mod:`.cmanas`): CMA-ES over alpha (CMANAS-h12 on the 12-epoch table; with
  ``estimator = "supernet"`` the weight-sharing CMANAS, a one-shot run).
- ``'evnas'`` (:mod:`.evnas`): GA over alpha sharing a supernet trained one epoch per
  generation (a one-shot run).
- ``'nevonas'`` (:mod:`.nevonas`): NSGA-II over supernet accuracy and novelty, the supernet
  trained online (a one-shot run).
- ``'pevonas'`` (:mod:`.pevonas`): stages of supernet training with random alphas, a GA on
  the fixed supernet, and shrinking of every edge's ops around the best (a one-shot run).
- ``'random'`` (:mod:`.random_search`) and ``'rea'`` (:mod:`.rea`): the baselines, run as rows
  of every table at the same budget (``baselines`` in the config).

A run covers the method's grid (:mod:`.grid`: every device x seed, x constraint where the
config says so) on a problem (:mod:`.problem`: table, estimator, costs, constraints), plus
random search at the same budget. A one-shot config (:class:`.oneshot.OneShotConfig`: evnas,
nevonas, pevonas, cmanas with ``estimator = "supernet"``) runs instead on a supernet problem
(:mod:`.oneshot`, :mod:`.oneshot_run`), one seed per run, and returns a
:class:`.oneshot_run.OneShotResult`. A new method is a new module here with ``Config`` and
``make_search``, added to :data:`METHODS`.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

from jaxnas import runs
from jaxnas.config import ConfigError, check_range, parse
from jaxnas.estimators import CachedEstimator
from jaxnas.methods import cmanas, evnas, hw_evrsnas, mo_hdnas, nevonas, pevonas, random_search, rea
from jaxnas.methods.grid import GridOutput, run_grid
from jaxnas.methods.oneshot import OneShotConfig
from jaxnas.methods.oneshot_run import OneShotResult, run_oneshot
from jaxnas.methods.problem import MAX_EVALUATIONS_PER_RUN, Problem, ProblemConfig, build_problem

METHODS = {"hw_evrsnas": hw_evrsnas, "mo_hdnas": mo_hdnas, "cmanas": cmanas,
           "evnas": evnas, "nevonas": nevonas, "pevonas": pevonas, "random": random_search,
           "rea": rea}
#: salts of the baselines' cell keys (independent of the method's keys)
BASELINE_SALT = {"random": 7919, "rea": 7927}


def method_module(name: str):
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; known: {', '.join(METHODS)}")
    return METHODS[name]


def parse_config(name: str, config: Mapping[str, Any] | Any | None):
    """The method's validated ``Config`` (one-line ``ConfigError`` on bad keys/values),
    with the run's budget checked against the stated limits."""
    mod = method_module(name)
    cls = mod.config_class(config) if hasattr(mod, "config_class") else mod.Config
    cfg = parse(cls, config, name)
    if is_oneshot(cfg):
        check_range(name, "evaluations per run", cfg.evaluations, 1, MAX_EVALUATIONS_PER_RUN)
        return cfg
    q = len(cfg.constraint_quantiles) if cfg.per_constraint else 1
    devices = 6 if tuple(cfg.devices) == ("all",) else len(cfg.devices)
    cfg.check_budget(name, cfg.evaluations, devices * cfg.seeds * q)
    return cfg


def is_oneshot(cfg) -> bool:
    """Whether a parsed config is a one-shot (supernet) run."""
    return isinstance(cfg, OneShotConfig)


def baseline_config(cfg, name: str = "random"):
    """Baseline ``name`` over the same problem at (about) the same number of evaluations:
    random search with the method's population per generation, REA with its own (10) and as
    many one-child generations as the budget allows."""
    shared = {f.name: getattr(cfg, f.name) for f in dataclasses.fields(ProblemConfig)}
    if name == "rea":
        pop = min(10, cfg.evaluations)
        return rea.Config(**shared, population=pop, sample_size=min(3, pop),
                          generations=max(cfg.evaluations - pop, 0))
    # one batch of uniform samples (with replacement): the same draw as generation-wise
    # sampling, and one evaluation call
    return random_search.Config(**shared, population=cfg.evaluations, generations=0)


def run(name: str, config=None, table=None, estimator=None, progress=None,
        fitness_cache: dict | None = None, on_fitness=None, checkpoint: bytes | None = None,
        on_checkpoint=None, data=None) -> runs.Result | OneShotResult:
    """Run method ``name`` over its results grid, with the random-search baseline.

    Args:
        config: a mapping (a parsed TOML file) or the method's ``Config``.
        table, estimator: a loaded table / any estimator (default: built from the config).
        progress: a :class:`jaxnas.runs.Progress` (log lines and per-generation ticks;
            default: silent).
        fitness_cache, on_fitness: non-traceable estimators only: known scores
            ``{NB201 index: score}`` to start the shared cache from, and a callback
            ``on_fitness(cache)`` after every evaluation that trained something (``jaxnas
            search --resume`` replays an interrupted run from them).
        checkpoint, on_checkpoint, data: one-shot configs only: the bytes of a saved search
            state to continue from, a callback ``on_checkpoint(bytes)`` after every
            generation, and search data to use instead of the config's dataset
            (:func:`.oneshot_run.run_oneshot`).
    Raises:
        ValueError (``ConfigError``): bad config keys or values (one line).
    """
    progress = progress or runs.Progress()
    cfg = parse_config(name, config)
    if is_oneshot(cfg):
        if table is not None or estimator is not None or fitness_cache is not None:
            raise ConfigError(f"{name}: a one-shot run builds its own supernet estimator")
        return run_oneshot(name, method_module(name), cfg, progress, checkpoint, on_checkpoint,
                           data)
    prob = build_problem(cfg, table, estimator, log=progress.log)
    try:
        resumed = 0
        if not prob.estimator.traceable:
            prob.estimator = CachedEstimator(prob.estimator, fitness_cache, on_fitness)
            resumed = len(prob.estimator.cache)
            if resumed:
                progress.log(f"resuming: {resumed} architectures already scored")
        grid = _run(name, cfg, prob, progress, salt=0)
        bases = {b: _run(b, baseline_config(cfg, b), prob, progress, salt=BASELINE_SALT[b])
                 for b in cfg.baselines if b != name}
        result = runs.make_result(name, cfg, prob, grid, bases)
        result.meta["timing"]["resumed_with_scores"] = resumed
        return result
    finally:
        inner = getattr(prob.estimator, "estimator", prob.estimator)
        if estimator is None and hasattr(inner, "close"):
            inner.close()  # an estimator built here (RMI worker processes)


def _run(name: str, cfg, prob: Problem, progress, salt: int) -> GridOutput:
    spec = method_module(name).make_search(cfg, prob)
    traceable = bool(prob.estimator.traceable)
    q = len(prob.quantiles) if cfg.per_constraint else 1
    cells = len(prob.devices) * cfg.seeds * q
    progress.log(f"{name}: {len(prob.devices)} devices ({', '.join(prob.devices)}) x "
                 f"{cfg.seeds} seeds" + (f" x {q} constraints" if cfg.per_constraint else
                                          f", {len(prob.quantiles)} constraints per run")
                 + f"; {cfg.evaluations} evaluations per run; estimator "
                 f"{getattr(prob.estimator, 'name', prob.estimator)}")
    if traceable:
        grid = run_grid(spec, cfg, prob, True, salt)
        t = grid.timing
        progress.log(f"{name}: compiled {cells} cells in {t['compile_seconds']:.1f} s, "
                     f"ran them in {t['run_seconds']:.2f} s")
        return grid
    bar = progress.bar(name, cells * (spec.generations + 1), "gen")
    try:
        return run_grid(spec, cfg, prob, False, salt, on_generation=lambda c, g, st, m: bar.update(
            1, trained=getattr(prob.estimator, "evaluations", None)))
    finally:
        bar.close()


__all__ = ["METHODS", "OneShotConfig", "OneShotResult", "Problem", "ProblemConfig",
           "baseline_config", "is_oneshot", "method_module", "parse_config", "run"]
