"""NSGA-II (Deb et al. 2002) with pymoo 0.6 semantics, as one compiled ask/tell pair.

- **Mating selection**: binary tournament on pymoo's permutation pairing; the winner is
  the dominating member, else the one with larger crowding distance, else a coin flip
  (pymoo ``comp_by_dom_and_crowding``).
- **Variation**: a crossover producing two children per mating, then a mutation (see
  :mod:`jaxnas.algorithms.operators`). Defaults: uniform crossover + per-gene resampling for
  categorical genomes (NB201 ``int[6]``); SBX + polynomial mutation for real genomes.
- **Duplicate elimination**: a pool of ``pool_factor * n_offspring`` children is bred and
  the first ``n_offspring`` that equal no parent and no earlier child are kept (pymoo
  re-breeds until it has enough; the pool is the fixed-shape equivalent). If the pool runs
  out, the remaining slots hold duplicates flagged in ``state.offspring_valid``; their
  fitness is replaced by ``+inf`` in ``tell`` so they never survive.
- **Survival**: non-dominated rank and crowding distance over parents + offspring; whole
  fronts in rank order, the split front by crowding (descending, random tie-break).
- **Population objectives** (optional ``extra``): objectives that depend on the whole
  population, such as NEvoNAS novelty or MO-HDNAS hardware-cost diversity chi, are appended
  to the fitness in ``tell``. With ``extra_update='merged'`` they are recomputed over parents +
  offspring at every survival step (MO-HDNAS); with ``'offspring'`` only the new members get
  a value and parents keep theirs (NEvoNAS: parents are never re-evaluated).

``fitness`` given to ``init``/``tell`` has the ``num_objectives`` base columns; the state
stores ``num_objectives + extra.num_columns`` columns.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
from flax import struct

from jaxnas.algorithms import _rng
from jaxnas.algorithms import operators as ops
from jaxnas.algorithms.base import Algorithm, State, clean, initial_fields
from jaxnas.algorithms.dedup import first_n, unique_mask_keys
from jaxnas.algorithms.encodings import Categorical
from jaxnas.metrics import _sort, crowding_distance, dominates, non_dominated_rank


def _select_cols(xt: jax.Array, idx: jax.Array) -> jax.Array:
    """``xt[:, idx]`` as a one-hot matrix product (exact for small ints and floats)."""
    onehot = (jnp.arange(xt.shape[1])[:, None] == idx[None, :]).astype(jnp.float32)
    out = jnp.dot(xt.astype(jnp.float32), onehot, precision=jax.lax.Precision.HIGHEST)
    return out.astype(xt.dtype)


@struct.dataclass
class NSGA2Params:
    crossover: dict
    mutation: dict
    extra: dict


@struct.dataclass
class NSGA2State(State):
    population: jax.Array  # (P, *genome)
    fitness: jax.Array  # (P, M + E) float32, cleaned
    rank: jax.Array  # (P,) int32, from the last survival
    crowding: jax.Array  # (P,) float32
    offspring_valid: jax.Array  # (n_offspring,) bool, from the last ask
    extra_state: Any


@dataclass(frozen=True)
class NSGA2(Algorithm):
    """NSGA-II over a genome ``encoding``.

    Attributes (static):
        encoding: :class:`~jaxnas.algorithms.encodings.Categorical` or ``Real``.
        pop_size: survivors per generation.
        num_objectives: base objective columns supplied by the caller.
        n_offspring: children per generation (default ``pop_size``, as pymoo).
        crossover, mutation: operator objects (defaults depend on the encoding).
        eliminate_duplicates: pymoo's default True.
        pool_factor: candidate pool size for duplicate elimination, in ``n_offspring``s
            (default 2 for categorical genomes: on NB201 about 25-30 % of raw children repeat
            a parent or sibling, and a pool of 2 filled every slot in our runs; 1.25 for real
            genomes, where repeats are rare but not absent: a mating without crossover and
            mutation copies its parent).
        extra: optional population objective (``jaxnas.algorithms.novelty``).
        extra_update: ``'merged'`` or ``'offspring'`` (see module docstring).
    """

    encoding: Any
    pop_size: int = 100
    num_objectives: int = 2
    n_offspring: int | None = None
    crossover: Any = None
    mutation: Any = None
    eliminate_duplicates: bool = True
    pool_factor: float | None = None
    extra: Any = None
    extra_update: str = "merged"

    def __post_init__(self):
        if self.pop_size < 2:
            raise ValueError(f"NSGA2 pop_size must be at least 2, got {self.pop_size}")
        if self.extra_update not in ("merged", "offspring"):
            raise ValueError(f"extra_update must be 'merged' or 'offspring', got {self.extra_update!r}")
        cat = isinstance(self.encoding, Categorical)
        if self.pool_factor is None:
            object.__setattr__(self, "pool_factor", 2.0 if cat else 1.25)
        if self.crossover is None:
            object.__setattr__(
                self, "crossover",
                ops.uniform_crossover() if cat else ops.sbx(self.encoding.low, self.encoding.high),
            )
        if self.mutation is None:
            object.__setattr__(
                self, "mutation",
                ops.resample_mutation(self.encoding) if cat
                else ops.polynomial_mutation(self.encoding.low, self.encoding.high),
            )

    # ------------------------------------------------------------------ helpers

    @property
    def num_children(self) -> int:
        return self.n_offspring or self.pop_size

    @property
    def num_columns(self) -> int:
        return self.num_objectives + (self.extra.num_columns if self.extra is not None else 0)

    def default_params(self) -> NSGA2Params:
        extra = self.extra.default_params() if self.extra is not None else {}
        return NSGA2Params(self.crossover.default_params(), self.mutation.default_params(), extra)

    def sample(self, key: jax.Array) -> jax.Array:
        """Initial population, ``(pop_size, *genome)``."""
        return self.encoding.sample(key, self.pop_size)

    def decode(self, population: jax.Array) -> jax.Array:
        return self.encoding.decode(population)

    def _base(self, fitness):
        return fitness[:, None] if fitness.ndim == 1 else fitness

    def _extras(self, key, pop, base, is_new, old_cols, extra_state, params):
        if self.extra is None:
            return base, extra_state
        cols, extra_state = self.extra(
            key, self.decode(pop), base, is_new, extra_state, params.extra
        )
        if self.extra_update == "offspring":
            cols = jnp.where(is_new[:, None], cols, old_cols)
        # a member with any non-finite objective is +inf in every one (never on a front)
        return clean(jnp.concatenate([base, cols], axis=1)), extra_state

    def _survive(self, key, F, n):
        rank = non_dominated_rank(F, n_stop=n)
        cd = crowding_distance(F, rank)
        tie = _rng.materialized_uniform(key, (F.shape[0],))
        keep = _sort.argsort(rank, -cd, tie)[:n]
        return keep, rank[keep], cd[keep]

    # ------------------------------------------------------------------ API

    def _init(self, key, population, fitness, params: NSGA2Params) -> NSGA2State:
        """State from an evaluated initial population (``fitness``: ``(P, M)``)."""
        base = self._base(fitness)
        n = population.shape[0]
        k_extra, k_surv = jax.random.split(key)
        extra_state = self.extra.init(population, self.decode(population)) if self.extra else None
        old = jnp.zeros((n, self.num_columns - self.num_objectives), jnp.float32)
        F, extra_state = self._extras(
            k_extra, population, base, jnp.ones(n, bool), old, extra_state, params
        )
        keep, rank, cd = self._survive(k_surv, F, n)
        return NSGA2State(
            **initial_fields(population.shape[1:], population.dtype),
            population=population[keep],
            fitness=F[keep],
            rank=rank,
            crowding=cd,
            offspring_valid=jnp.ones((self.num_children,), bool),
            extra_state=extra_state,
        )

    def _ask(self, key, state: NSGA2State, params: NSGA2Params):
        """Breed ``n_offspring`` children (duplicates eliminated when enabled)."""
        n_child = self.num_children
        pool = math.ceil(n_child * self.pool_factor) if self.eliminate_duplicates else n_child
        n_mate = -(-pool // 2)
        k_sel, k_coin, k_x, k_m = _rng.split(key, 4)
        pairs = ops.tournament_pairs(k_sel, self.pop_size, 2 * n_mate)  # (2*n_mate, 2)
        a, b = pairs[:, 0], pairs[:, 1]
        F = state.fitness
        a_dom = dominates(F[a], F[b])
        b_dom = dominates(F[b], F[a])
        ca, cb = state.crowding[a], state.crowding[b]
        coin = _rng.uniform(k_coin, a.shape) < 0.5
        win_a = a_dom | (~b_dom & ((ca > cb) | ((ca == cb) & coin)))
        parents = jnp.where(win_a, a, b).reshape(n_mate, 2)
        # the variation pipeline runs in the (genes, members) layout (see operators):
        # parents are selected by one-hot products, which also keep the gathers out of the
        # operators' fusions; children are picked back the same way
        g = state.population.shape[1]
        pop_t = state.population.reshape(self.pop_size, -1).T  # (n, P)
        heavy = getattr(self.crossover, "heavy", True) or getattr(self.mutation, "heavy", True)
        select = _select_cols if heavy else (lambda xt, i: xt[:, i])
        pa = select(pop_t, parents[:, 0])
        pb = select(pop_t, parents[:, 1])
        kids = self.crossover.apply_t(k_x, pa, pb, params.crossover, g)[:, :pool]
        kids = self.mutation.apply_t(k_m, kids, params.mutation, g)
        if self.eliminate_duplicates:
            u = unique_mask_keys(self.encoding.dedup_keys_t(pop_t), self.encoding.dedup_keys_t(kids),
                                 getattr(self.encoding, "key_space", None))
            idx, valid = first_n(u, n_child)
            kids = select(kids, idx)
        else:
            valid = jnp.ones((n_child,), bool)
        children = kids.T.reshape((n_child,) + state.population.shape[1:]).astype(
            state.population.dtype)
        return children, state.replace(offspring_valid=valid)

    def shape(self, population, fitness, state: NSGA2State, params: NSGA2Params):
        """Children that had to repeat a member (the pool ran out) are +inf: never survive."""
        return jnp.where(state.offspring_valid[:, None], self._base(fitness), jnp.inf)

    def _tell(self, key, population, fitness, state: NSGA2State, params: NSGA2Params):
        """Survival over parents + offspring. ``fitness``: ``(n_offspring, M)``."""
        base = fitness
        p = self.pop_size
        merged = jnp.concatenate([state.population, population], axis=0)
        mbase = jnp.concatenate([state.fitness[:, : self.num_objectives], base], axis=0)
        is_new = jnp.arange(merged.shape[0]) >= p
        old = jnp.concatenate(
            [state.fitness[:, self.num_objectives:],
             jnp.zeros((population.shape[0], self.num_columns - self.num_objectives))], axis=0
        )
        k_extra, k_surv = _rng.split(key, 2)
        F, extra_state = self._extras(
            k_extra, merged, mbase, is_new & jnp.concatenate(
                [jnp.zeros(p, bool), state.offspring_valid]), old, state.extra_state, params
        )
        keep, rank, cd = self._survive(k_surv, F, p)
        new = state.replace(
            population=merged[keep],
            fitness=F[keep],
            rank=rank,
            crowding=cd,
            extra_state=extra_state,
        )
        finite = jnp.all(jnp.isfinite(new.fitness), axis=1)
        metrics = {
            "front0_size": jnp.sum(rank == 0),
            "min_fitness": jnp.min(jnp.where(finite[:, None], new.fitness, jnp.inf), axis=0),
            "num_offspring_unique": jnp.sum(state.offspring_valid),
        }
        return new, metrics

    def pareto_front(self, state: NSGA2State):
        """``(population, fitness, mask)`` with ``mask`` the rank-0 members."""
        return state.population, state.fitness, state.rank == 0


def nevonas_params(params: NSGA2Params, sbx_eta: float = 15.0, sbx_prob: float = 0.7,
                   pm_eta: float = 20.0, pm_prob_var: float = 0.2) -> NSGA2Params:
    """NEvoNAS's operator settings (METHODS.md 4; pymoo 0.5 ``SBX(eta=15, prob=0.7)``,
    ``PM(eta=20, prob=0.2)``, where 0.5's ``prob`` is the per-variable probability) applied
    to the params of an NSGA2 with SBX crossover and polynomial mutation."""
    cx, mut = dict(params.crossover), dict(params.mutation)
    if "eta" not in cx or "prob_var" not in mut:
        raise ValueError("nevonas_params needs an NSGA2 with SBX crossover and polynomial mutation")
    cx.update(eta=jnp.float32(sbx_eta), prob=jnp.float32(sbx_prob))
    mut.update(eta=jnp.float32(pm_eta), prob=jnp.float32(1.0), prob_var=jnp.float32(pm_prob_var))
    return params.replace(crossover=cx, mutation=mut)
