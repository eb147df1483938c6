"""What a hardware-aware search is run on: the problem config, the table, the fitness
estimator, the cost columns (one per device) and the constraint grid.

A method sees the problem through :func:`objectives` (``[score, cost]`` of NB201 codes for
one device) and the per-cell arrays of :class:`Cell` (that device's cost column and its
thresholds ``T``). Nothing here prints or writes files.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from jaxnas import config as C
from jaxnas.bench import HW_DEVICES, dataset_key, hw_column, load_table
from jaxnas.config import RMISettings
from jaxnas.costs import TableCost, flops_params
from jaxnas.costs.latency import LatencySpec, load_or_measure, validate
from jaxnas.estimators import check_estimator, make_estimator
from jaxnas.spaces import nb201

ESTIMATORS = ("table", "rmi")
COSTS = ("table", "local_latency", "flops", "none")
#: methods that can run as baseline rows at the same budget
BASELINES = ("random", "rea")
#: Bounds checked before any work starts (issue: inputs checked up front).
MAX_SEEDS = 10_000
MAX_CELLS = 100_000
MAX_EVALUATIONS_PER_RUN = 10_000_000
MAX_TOTAL_EVALUATIONS = 1_000_000_000


@dataclass(frozen=True)
class ProblemConfig:
    """The part of a method config that defines what is searched (shared by methods).

    Attributes:
        table: a table file or folder (default: ``$JAXNAS_DATA_DIR`` / the shared data).
        estimator: fitness source: ``'table'`` (a table column) or ``'rmi'`` (the RMI proxy
            on real data, set up by ``rmi``).
        score_column: the column the ``'table'`` estimator scores (``*_acc`` -> 100 - acc).
        rmi: the ``[rmi]`` table (:class:`jaxnas.config.RMISettings`; METHODS.md 5.1).
        cost: ``'table'`` (HW-NAS-Bench device columns), ``'local_latency'`` (a per-op
            latency table measured on this machine for the RMI candidate networks) or
            ``'flops'`` (analytic FLOPs of those networks), or ``'none'`` (no hardware cost:
            one pseudo-device whose cost is 0 everywhere, for accuracy-only searches such as
            CMANAS-h12; every answer is feasible and the regret is against the table's best).
        dataset: HW-NAS-Bench dataset of the costs (``cifar10``, ``cifar100``,
            ``imagenet16_120``).
        metric: ``'latency'`` or ``'energy'``.
        devices: ``['all']`` (every HW-NAS-Bench device in the table) or device names.
        seeds: number of seeds per cell (seeds ``seed_offset``..``seed_offset + seeds - 1``).
        constraint_quantiles: cost constraints T as quantiles of each device's cost over
            all 15,625 architectures (METHODS.md 5.2 proxy; the paper's values are UNCONFIRMED).
        report_column: accuracy reported for found architectures (default
            ``<dataset>_test_acc``; ``'none'``: no accuracy, and no table is needed unless the
            estimator or the cost reads one).
        image_size, latency_batch, latency_validation: the local-latency / FLOPs cost: input
            size (default: the RMI batch's), timing batch, networks timed to validate it.
        baselines: methods run on the same problem at the same number of evaluations, as
            rows of the same table: ``'random'`` (default) and ``'rea'``.
    """

    table: str | None = None
    estimator: str = "table"
    score_column: str = "cifar10_test_acc"
    rmi: RMISettings | None = None
    cost: str = "table"
    dataset: str = "cifar10"
    metric: str = "latency"
    devices: tuple[str, ...] = ("all",)
    seeds: int = 10
    seed_offset: int = 0
    constraint_quantiles: tuple[float, ...] = (0.25, 0.5, 0.75)
    report_column: str | None = None
    image_size: int | None = None
    latency_batch: int = 32
    latency_validation: int = 6
    baselines: tuple[str, ...] = ("random",)

    def validate(self, where: str = "config"):
        C.check_choice(where, "estimator", self.estimator, ESTIMATORS)
        C.check_choice(where, "cost", self.cost, COSTS)
        C.check_choice(where, "metric", self.metric, ("latency", "energy"))
        if self.estimator == "table" and self.rmi is not None:
            raise C.ConfigError(f"{where}: an [rmi] table is given but estimator is 'table'; "
                                "set estimator = 'rmi'")
        if self.cost in ("local_latency", "flops") and self.estimator != "rmi":
            raise C.ConfigError(f"{where}: cost {self.cost!r} measures the RMI candidate "
                                "networks; it needs estimator = 'rmi'")
        C.check_range(where, "seeds", self.seeds, 1, MAX_SEEDS)
        C.check_seed(where, "seed_offset", self.seed_offset + self.seeds - 1)
        if not self.constraint_quantiles:
            raise C.ConfigError(f"{where}: constraint_quantiles must not be empty")
        for q in self.constraint_quantiles:
            C.check_range(where, "constraint_quantiles", q, 0.0, 1.0, lo_open=True)
        if self.image_size is not None:
            C.check_range(where, "image_size", self.image_size, 4, 1024)
        C.check_range(where, "latency_batch", self.latency_batch, 1, 4096)
        C.check_range(where, "latency_validation", self.latency_validation, 0, 1000)
        for b in self.baselines:
            C.check_choice(where, "baselines", b, BASELINES)

    def check_budget(self, where: str, evaluations: int, cells: int) -> None:
        """The work a run asks for, against the stated limits (before anything starts)."""
        C.check_range(where, "evaluations per run (population x (generations + 1))",
                      evaluations, 1, MAX_EVALUATIONS_PER_RUN)
        C.check_range(where, "runs (devices x seeds x constraints)", cells, 1, MAX_CELLS)
        C.check_range(where, "total evaluations", evaluations * cells, 1, MAX_TOTAL_EVALUATIONS)

    @property
    def rmi_settings(self) -> RMISettings:
        return self.rmi if self.rmi is not None else RMISettings()


@struct.dataclass
class Cell:
    """One device of the grid, as the traced arrays a search cell needs."""

    cost: jax.Array  # (15625,) float32 cost of every architecture (official order)
    T: jax.Array  # (Q,) float32 thresholds


@dataclass
class Problem:
    """Everything a grid run needs, as arrays over the official NB201 index.

    Attributes:
        devices: device names, one per cost row.
        costs: jnp float32 ``(D, 15625)``.
        constraints: numpy float32 ``(D, Q)`` thresholds T (cost quantiles per device).
        report: numpy ``(15625,)`` accuracy for reports (NaN if the table lacks it).
        best_feasible: numpy ``(D, Q)`` the best ``report`` value with cost <= T in the
            whole table (the oracle optimum), and ``best_feasible_index`` its arch.
    """

    table: Any
    estimator: Any
    cfg: ProblemConfig
    devices: tuple[str, ...]
    cost_columns: tuple[str, ...]
    cost_unit: str
    costs: jax.Array
    quantiles: tuple[float, ...]
    constraints: np.ndarray
    report_column: str | None
    report: np.ndarray
    best_feasible: np.ndarray
    best_feasible_index: np.ndarray
    missing_devices: tuple[str, ...] = ()
    cost_info: dict = dataclasses.field(default_factory=dict)

    @property
    def oracle(self) -> bool:
        return bool(getattr(self.estimator, "oracle", False))

    def cell(self, d) -> Cell:
        """Device ``d``'s cost column and thresholds (``d`` may be traced)."""
        return Cell(self.costs[d], jnp.asarray(self.constraints)[d])


@dataclass(frozen=True)
class MethodSearch:
    """What a method's ``make_search(config, problem)`` returns: the paper's algorithm box.

    Attributes:
        algorithm: an :class:`~jaxnas.algorithms.Algorithm` with ``answer(state, params)``
            returning ``{'arch': (Q, 6), 'score': (Q,)}`` (one answer per threshold in
            ``params.T``; score +inf where none is found).
        params: its parameters, with ``T`` set per cell by the grid.
        objectives: ``cell -> fitness_fn(key, codes) -> (P, M)`` (minimised).
        generations: ask/tell steps after the initial population.
    """

    algorithm: Any
    params: Any
    objectives: Any
    generations: int


def objectives(estimator, cell: Cell):
    """``(key, codes (P, 6)) -> (P, 2)`` float32 ``[score, cost]``, both minimised: the
    estimator's score (RMI loss, or 100 - accuracy) and the device's hardware cost."""

    def fn(key, codes):
        score = jnp.asarray(estimator.evaluate(key, codes), jnp.float32)
        return jnp.stack([score, cell.cost[nb201.index_jax(codes)]], axis=1)

    return fn


def threshold(values: np.ndarray, q) -> np.ndarray:
    """Cost quantiles ``T`` in the table's own precision (float32): the largest float32 not
    above numpy's float64 quantile of the column, so ``cost <= T`` in float32 selects exactly
    the architectures ``cost <= np.nanquantile(values, q)`` selects (ties at T included)."""
    t64 = np.nanquantile(np.asarray(values, np.float64), q)
    t32 = np.asarray(t64, np.float32)
    return np.where(t32.astype(np.float64) > t64, np.nextafter(t32, np.float32(-np.inf)), t32)


def build_problem(cfg: ProblemConfig, table=None, estimator=None, log=None) -> Problem:
    """Load the table (unless given), the device cost columns, the constraint grid, then the
    estimator (last: the RMI estimator loads data and compiles).

    Raises:
        ValueError: unknown devices, estimator or columns (one line each).
    """
    needs_table = cfg.estimator == "table" or cfg.cost == "table" or cfg.report_column != "none"
    if table is None and needs_table:
        table = load_table(cfg.table)
    ds = dataset_key(cfg.dataset)
    if cfg.cost == "table":
        devices, cost_columns, values, unit = _table_costs(cfg, table, ds)
        cost_info, missing = {}, tuple(d for d in HW_DEVICES if d not in table.devices(ds, cfg.metric))
    elif cfg.cost == "none":
        devices, cost_columns, values, unit = ("none",), ("none",), [np.zeros(nb201.NUM_ARCHS,
                                                                              np.float32)], ""
        cost_info, missing = {"cost": "none"}, ()
    else:
        devices, values, unit, cost_info = _local_costs(cfg, log)
        cost_columns, missing = devices, ()
    if estimator is None:
        if cfg.estimator == "table" and not table.has(cfg.score_column):
            raise C.ConfigError(
                f"score_column {cfg.score_column!r} is not in the table; it has: "
                + ", ".join(c for c in table.columns if not c.startswith("help_")))
        if cfg.estimator == "table":
            estimator = make_estimator("table", table=table, column=cfg.score_column)
        else:
            estimator = make_estimator(cfg.estimator, settings=cfg.rmi_settings, log=log)
    check_estimator(estimator)
    qs = tuple(float(q) for q in cfg.constraint_quantiles)
    constraints = np.stack([threshold(v, qs) for v in values]).astype(np.float32)
    report_column = cfg.report_column or f"{ds}_test_acc"
    if table is not None and table.has(report_column):
        report = np.asarray(table.numpy(report_column), np.float64)
    else:
        report_column, report = None, np.full(nb201.NUM_ARCHS, np.nan)
    best, best_idx = _best_feasible(np.stack(values), constraints, report)
    return Problem(
        table=table, estimator=estimator, cfg=cfg, devices=tuple(devices),
        cost_columns=tuple(cost_columns), cost_unit=unit,
        costs=jnp.asarray(np.stack(values), jnp.float32), quantiles=qs,
        constraints=constraints, report_column=report_column, report=report,
        best_feasible=best, best_feasible_index=best_idx, missing_devices=missing,
        cost_info=cost_info,
    )


def _table_costs(cfg, table, ds):
    present = table.devices(ds, cfg.metric)
    if tuple(cfg.devices) == ("all",):
        devices = present
    else:
        bad = [d for d in cfg.devices if d not in HW_DEVICES]
        if bad:
            raise C.ConfigError(f"unknown device(s) {', '.join(bad)}; HW-NAS-Bench devices: "
                                + ", ".join(HW_DEVICES))
        devices = tuple(cfg.devices)
    if not devices:
        raise C.ConfigError(
            f"the table has no {ds} {cfg.metric} column for any HW-NAS-Bench device; import "
            "HW-NAS-Bench-v1_0.pickle with `jaxnas table import` (see the README, Data)")
    costs = [TableCost(table, d, cfg.metric, ds) for d in devices]  # names missing columns
    values = [np.asarray(c.values, np.float32) for c in costs]
    unit = "ms" if cfg.metric == "latency" else "mJ"
    return devices, tuple(hw_column(ds, d, cfg.metric) for d in devices), values, unit


def _local_costs(cfg, log):
    """A measured local latency table, or analytic FLOPs, of the RMI candidate networks."""
    s = cfg.rmi_settings
    size = cfg.image_size or (8 if s.dataset == "digits" else 32)
    if cfg.cost == "flops":
        flops = flops_params(nb201.ARCHS, C=s.C, N=s.N, num_classes=10, image_size=size)[0]
        return ("flops",), [np.asarray(flops, np.float32)], "MFLOPs", {"cost": "flops"}
    spec = LatencySpec(C=s.C, N=s.N, image_size=size, in_channels=3, num_classes=10,
                       batch_size=cfg.latency_batch)
    table, cached = load_or_measure(spec, progress=(lambda m: log(f"  timing {m} ..."))
                                    if log else None)
    if log is not None:
        log(f"cost: latency on this machine, batch {spec.batch_size}, per-op look-up table "
            f"({'from cache' if cached else 'measured now'}; fixed part {table.fixed_ms:.3f} ms)")
    values = np.asarray(table.values, np.float32)
    info = {"cost": "local_latency", "latency_table": table.to_json()}
    if cfg.latency_validation >= 2:
        rng = np.random.default_rng(cfg.seed_offset)
        sample = nb201.ARCHS[rng.choice(nb201.NUM_ARCHS, cfg.latency_validation, replace=False)]
        val = validate(table, sample)
        info["latency_validation"] = val
        if log is not None:
            log(f"  validated on {len(sample)} whole networks: Spearman {val['spearman']:.2f}, "
                f"Kendall {val['kendall']:.2f}")
    return ("local_cpu",), [values], "ms", info


def _best_feasible(costs: np.ndarray, constraints: np.ndarray, report: np.ndarray):
    best = np.full(constraints.shape, np.nan)
    best_idx = np.full(constraints.shape, -1, np.int64)
    for d in range(constraints.shape[0]):
        for q in range(constraints.shape[1]):
            ok = (costs[d] <= constraints[d, q]) & np.isfinite(report)
            if ok.any():
                i = int(np.nanargmax(np.where(ok, report, -np.inf)))
                best[d, q], best_idx[d, q] = report[i], i
    return best, best_idx


def population_stats(F: jax.Array) -> dict:
    """Per-generation metrics of a told population ``F = [s, c, ...]`` (finite rows only):
    the mean score and the min / mean / max cost (no sort: cheap inside a compiled loop)."""
    ok = jnp.all(jnp.isfinite(F[:, :2]), axis=1)
    n = jnp.maximum(jnp.sum(ok), 1)
    c = F[:, 1]
    return {"mean_score": jnp.sum(jnp.where(ok, F[:, 0], 0.0)) / n,
            "cost_min": jnp.min(jnp.where(ok, c, jnp.inf)),
            "cost_mean": jnp.sum(jnp.where(ok, c, 0.0)) / n,
            "cost_max": jnp.max(jnp.where(ok, c, -jnp.inf))}


def mark_seen(seen: jax.Array, codes: jax.Array) -> jax.Array:
    """Set the official indices of ``codes`` in a bool ``(15625,)`` bitmap."""
    return seen.at[nb201.index_jax(codes)].set(True)


def update_best_feasible(codes, F, limits, arch=None, score=None):
    """Keep, per threshold, the lowest-score feasible architecture seen so far.

    ``F = [s, c, ...]`` of ``codes``; ``arch`` ``(Q, 6)`` and ``score`` ``(Q,)`` are the best so
    far (None: nothing yet). Returns the updated ``(arch, score)``.
    """
    if arch is None:
        arch = jnp.zeros((limits.shape[0], nb201.NUM_EDGES), jnp.int32)
        score = jnp.full((limits.shape[0],), jnp.inf, jnp.float32)
    new = best_feasible(codes, F[:, 0], F[:, 1], limits)
    better = new["score"] < score
    return jnp.where(better[:, None], new["arch"], arch), jnp.where(better, new["score"], score)


def score_range(F):
    """``(s_min, s_range)`` of the finite scores ``F[:, 0]`` of a first population, for the
    normalised score ``(s - s_min) / s_range`` (range 1 when all scores are equal)."""
    s = jnp.where(jnp.isfinite(F[:, 0]), F[:, 0], jnp.nan)
    s_min, s_max = jnp.nanmin(s), jnp.nanmax(s)
    s_range = jnp.where(s_max > s_min, s_max - s_min, 1.0)
    return jnp.where(jnp.isfinite(s_min), s_min, 0.0), s_range


def best_feasible(codes, scores, cost, limits):
    """Per constraint: the lowest finite score among members with ``cost <= T``.

    Returns ``{'arch': (Q, 6), 'score': (Q,)}`` (score +inf where nothing is feasible).
    """
    feas = (cost[None, :] <= limits[:, None]) & jnp.isfinite(scores)[None, :]
    masked = jnp.where(feas, scores[None, :], jnp.inf)
    i = jnp.argmin(masked, axis=1)
    return {"arch": codes[i], "score": masked[jnp.arange(limits.shape[0]), i]}
