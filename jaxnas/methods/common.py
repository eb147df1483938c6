"""Pieces shared by the hardware-aware methods: config parsing, the problem (table,
estimator, device costs, constraints), and one driver for both run paths.

A method's search object provides::

    sample(key) -> population                  decode(population) -> NB201 codes (P, 6)
    init(key, population, scores, data, params) -> state
    ask(key, state, params) -> (population, state)
    tell(key, population, scores, state, data, params) -> state
    generations: int

``data`` is the per-cell pytree (a device's cost column, its constraint(s)); ``scores``
come from the estimator. :func:`drive` runs it as one traceable function (``jit``/``vmap``
over cells) when the estimator is traceable, or as a Python loop ``ask`` (jitted) ->
``evaluate`` -> ``tell`` (jitted) otherwise; both use the same key schedule.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import jax
import jax.numpy as jnp
import numpy as np

from jaxnas.spaces import nb201

# ---------------------------------------------------------------------------- configs


def _coerce(name: str, value, typ, where: str):
    origin = typing.get_origin(typ)
    args = typing.get_args(typ)
    if origin is typing.Union or (origin is not None and type(None) in args):
        if value is None:
            return None
        inner = [a for a in args if a is not type(None)]
        errors = []
        for a in inner:
            try:
                return _coerce(name, value, a, where)
            except ValueError as e:
                errors.append(str(e))
        raise ValueError(errors[0])
    if origin in (tuple, list):
        if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
            raise ValueError(f"{where}: {name} must be a list, got {value!r}")
        item = args[0] if args else object
        return tuple(_coerce(name, v, item, where) for v in value)
    if typ is bool:
        if not isinstance(value, bool):
            raise ValueError(f"{where}: {name} must be true or false, got {value!r}")
        return value
    if typ is int:
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise ValueError(f"{where}: {name} must be an integer, got {value!r}")
        return int(value)
    if typ is float:
        if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
            raise ValueError(f"{where}: {name} must be a number, got {value!r}")
        return float(value)
    if typ is str:
        if not isinstance(value, str):
            raise ValueError(f"{where}: {name} must be a string, got {value!r}")
        return value
    return value


def parse_config(cls, values: Mapping[str, Any] | None, where: str = "config"):
    """Build the frozen config dataclass ``cls`` from a mapping (e.g. parsed TOML).

    Unknown keys and values of the wrong type raise ``ValueError`` with a one-line message
    naming the key and listing the valid ones.
    """
    values = dict(values or {})
    if isinstance(values, cls):
        return values
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ValueError(
            f"{where}: unknown key(s) {', '.join(unknown)}; valid keys: {', '.join(fields)}"
        )
    hints = typing.get_type_hints(cls)
    kwargs = {k: _coerce(k, v, hints[k], where) for k, v in values.items()}
    return cls(**kwargs)


def config_dict(cfg) -> dict:
    """A JSON-friendly dict of a config dataclass."""
    out = {}
    for f in dataclasses.fields(cfg):
        v = getattr(cfg, f.name)
        out[f.name] = list(v) if isinstance(v, tuple) else v
    return out


@dataclass(frozen=True)
class ProblemConfig:
    """The part of a method config that defines what is searched (shared by methods).

    Attributes:
        table: a table file or folder (default: ``$JAXNAS_DATA_DIR`` / the shared data).
        estimator: fitness source: ``'table'`` (a table column) or ``'rmi'`` (the RMI proxy
            on real data; :mod:`jaxnas.methods.fitness`).
        score_column: the column the ``'table'`` estimator scores (``*_acc`` -> 100 - acc).
        rmi: the ``[rmi]`` table of settings of the ``'rmi'`` estimator
            (:class:`~jaxnas.methods.fitness.RMISettings`; default: METHODS.md 5.1 on CIFAR-10).
        dataset: HW-NAS-Bench dataset of the costs (``cifar10``, ``cifar100``,
            ``imagenet16_120``).
        metric: ``'latency'`` or ``'energy'``.
        devices: ``['all']`` (every HW-NAS-Bench device in the table) or device names.
        seeds: number of seeds per cell (seeds 0..n-1).
        constraint_quantiles: cost constraints T as quantiles of each device's cost over
            all 15,625 architectures (METHODS.md 5.2 proxy; the paper's values are UNCONFIRMED).
        report_column: accuracy reported for found architectures (default
            ``<dataset>_test_acc``).
    """

    table: str | None = None
    estimator: str = "table"
    score_column: str = "cifar10_test_acc"
    dataset: str = "cifar10"
    metric: str = "latency"
    devices: tuple[str, ...] = ("all",)
    seeds: int = 10
    constraint_quantiles: tuple[float, ...] = (0.25, 0.5, 0.75)
    report_column: str | None = None
    rmi: Mapping[str, Any] | None = dataclasses.field(default=None, compare=False)

    def validate(self):
        from jaxnas.methods.fitness import ESTIMATORS, rmi_settings

        if self.estimator not in ESTIMATORS:
            raise ValueError(f"unknown estimator {self.estimator!r}; known: {', '.join(ESTIMATORS)}")
        if self.rmi is not None and not isinstance(self.rmi, Mapping):
            raise ValueError(f"rmi must be a table of settings ([rmi] in TOML), got {self.rmi!r}")
        if self.estimator == "rmi":
            rmi_settings(self.rmi)
        if self.seeds < 1:
            raise ValueError(f"seeds must be at least 1, got {self.seeds}")
        for q in self.constraint_quantiles:
            if not 0.0 < q <= 1.0:
                raise ValueError(f"constraint_quantiles must lie in (0, 1], got {q}")
        if not self.constraint_quantiles:
            raise ValueError("constraint_quantiles must not be empty")
        if self.metric not in ("latency", "energy"):
            raise ValueError(f"metric must be 'latency' or 'energy', got {self.metric!r}")


# ---------------------------------------------------------------------------- problem


@dataclass
class Problem:
    """Everything a grid run needs, as arrays over the official NB201 index.

    Attributes:
        devices: device names, one per cost row.
        costs: jnp float32 ``(D, 15625)``.
        constraints: numpy ``(D, Q)`` thresholds T (cost quantiles per device).
        report: numpy ``(15625,)`` accuracy for reports (NaN if the table lacks it).
        best_feasible: numpy ``(D, Q)`` the best ``report`` value with cost <= T in the
            whole table (the oracle optimum), and ``best_feasible_index`` its arch.
    """

    table: Any
    estimator: Any
    cfg: ProblemConfig
    devices: tuple[str, ...]
    cost_columns: tuple[str, ...]
    costs: jax.Array
    quantiles: tuple[float, ...]
    constraints: np.ndarray
    report_column: str | None
    report: np.ndarray
    best_feasible: np.ndarray
    best_feasible_index: np.ndarray
    missing_devices: tuple[str, ...] = ()

    @property
    def oracle(self) -> bool:
        return bool(getattr(self.estimator, "oracle", False))


def build_problem(cfg: ProblemConfig, table=None, estimator=None, log=None) -> Problem:
    """Load the table (unless given), build the estimator (unless given), the device cost
    columns and the constraint grid.

    Raises:
        ValueError: unknown devices, estimator or columns (one line each).
    """
    from jaxnas.bench import HW_DEVICES, dataset_key, hw_column, load_table
    from jaxnas.costs import TableCost
    from jaxnas.estimators import check_estimator
    from jaxnas.methods.fitness import build_estimator

    cfg.validate()
    if table is None:
        table = load_table(cfg.table)
    ds = dataset_key(cfg.dataset)
    present = table.devices(ds, cfg.metric)
    if tuple(cfg.devices) == ("all",):
        devices = present
    else:
        bad = [d for d in cfg.devices if d not in HW_DEVICES]
        if bad:
            raise ValueError(f"unknown device(s) {', '.join(bad)}; HW-NAS-Bench devices: "
                             + ", ".join(HW_DEVICES))
        devices = tuple(cfg.devices)
    if not devices:
        raise ValueError(f"the table has no {ds} {cfg.metric} column for any HW-NAS-Bench device")
    cost_objs = [TableCost(table, d, cfg.metric, ds) for d in devices]  # MissingCostError names gaps
    costs = jnp.stack([c.values for c in cost_objs])
    if estimator is None:  # last: the RMI estimator loads data and compiles
        estimator = build_estimator(cfg.estimator, table, cfg.score_column, cfg.rmi, log)
    check_estimator(estimator)
    qs = tuple(float(q) for q in cfg.constraint_quantiles)
    constraints = np.stack([c.quantiles(qs) for c in cost_objs]).astype(np.float32)
    report_column = cfg.report_column or f"{ds}_test_acc"
    if table.has(report_column):
        report = np.asarray(table.numpy(report_column), np.float64)
    else:
        report_column, report = None, np.full(nb201.NUM_ARCHS, np.nan)
    costs_np = np.asarray(costs, np.float64)
    best = np.full(constraints.shape, np.nan)
    best_idx = np.full(constraints.shape, -1, np.int64)
    for d in range(len(devices)):
        for q in range(len(qs)):
            ok = (costs_np[d] <= constraints[d, q]) & np.isfinite(report)
            if ok.any():
                i = int(np.nanargmax(np.where(ok, report, -np.inf)))
                best[d, q], best_idx[d, q] = report[i], i
    return Problem(
        table=table, estimator=estimator, cfg=cfg, devices=tuple(devices),
        cost_columns=tuple(hw_column(ds, d, cfg.metric) for d in devices), costs=costs,
        quantiles=qs, constraints=constraints, report_column=report_column, report=report,
        best_feasible=best, best_feasible_index=best_idx,
        missing_devices=tuple(d for d in HW_DEVICES if d not in present),
    )


# ---------------------------------------------------------------------------- driver


def mark_seen(seen: jax.Array, codes: jax.Array) -> jax.Array:
    """Set the official indices of ``codes`` in a bool ``(15625,)`` bitmap."""
    return seen.at[nb201.index_jax(codes)].set(True)


def drive(search, evaluate: Callable, key: jax.Array, data, params, traceable: bool,
          callback: Callable | None = None):
    """Run one search cell.

    Args:
        search: a method search object (see the module docstring).
        evaluate: ``(key, codes) -> (P,) scores``; traceable when ``traceable``.
        data: per-cell pytree (cost column, constraints).
        callback: Python path only, ``callback(generation, state)`` after the initial
            population (generation -1) and after each tell.
    Returns:
        the final state.
    """
    k_init, k_eval, k_loop = jax.random.split(key, 3)
    keys = jax.random.split(k_loop, search.generations)
    if traceable:
        pop0 = search.sample(k_init)
        state = search.init(k_init, pop0, evaluate(k_eval, search.decode(pop0)), data, params)

        def step(state, k):
            ka, ke, kt = jax.random.split(k, 3)
            pop, state = search.ask(ka, state, params)
            state = search.tell(kt, pop, evaluate(ke, search.decode(pop)), state, data, params)
            return state, None

        return jax.lax.scan(step, state, keys)[0]
    sample, decode = jax.jit(search.sample), jax.jit(search.decode)
    init, ask, tell = jax.jit(search.init), jax.jit(search.ask), jax.jit(search.tell)
    pop0 = sample(k_init)
    state = init(k_init, pop0, jnp.asarray(evaluate(k_eval, decode(pop0)), jnp.float32), data, params)
    if callback is not None:
        callback(-1, state)  # the initial population
    for g in range(search.generations):
        ka, ke, kt = jax.random.split(keys[g], 3)
        pop, state = ask(ka, state, params)
        scores = jnp.asarray(evaluate(ke, decode(pop)), jnp.float32)
        state = tell(kt, pop, scores, state, data, params)
        if callback is not None:
            callback(g, state)
    return state


def random_search(evaluate: Callable, key: jax.Array, cost: jax.Array, limits: jax.Array,
                  budget: int):
    """Random search baseline with ``budget`` uniform samples (with replacement).

    For each constraint in ``limits`` ``(Q,)`` it returns the best-scoring sample with
    ``cost <= T``. Traceable when ``evaluate`` is.

    Returns:
        dict: ``arch`` int32 ``(Q, 6)``, ``score`` ``(Q,)`` (inf if nothing feasible),
        ``distinct`` (number of distinct architectures sampled).
    """
    k_s, k_e = jax.random.split(key)
    codes = nb201.sample(k_s, budget)
    scores = jnp.asarray(evaluate(k_e, codes), jnp.float32)
    scores = jnp.where(jnp.isnan(scores), jnp.inf, scores)
    c = cost[nb201.index_jax(codes)]
    return best_feasible(codes, scores, c, limits) | {
        "distinct": jnp.sum(mark_seen(jnp.zeros(nb201.NUM_ARCHS, bool), codes))
    }


def best_feasible(codes, scores, cost, limits):
    """Per constraint: the lowest score among members with ``cost <= T`` (finite scores)."""
    feas = (cost[None, :] <= limits[:, None]) & jnp.isfinite(scores)[None, :]
    masked = jnp.where(feas, scores[None, :], jnp.inf)
    i = jnp.argmin(masked, axis=1)
    return {"arch": codes[i], "score": masked[jnp.arange(limits.shape[0]), i]}
