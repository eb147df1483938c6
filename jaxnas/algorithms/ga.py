"""The EvNAS / pEvoNAS genetic algorithm (METHODS.md 0.3), single objective, minimised.

One generation (``evolve = mutate(crossover(pop))`` in the authors' ``ga.py``):

1. sort the population by fitness (best first);
2. copy the ``num_elites`` best unchanged;
3. fill the rest with children: each parent is the winner of its own tournament of
   ``tournament_size`` members drawn without replacement; the child takes each gene
   (edge, or α edge-row) from the first parent with probability ``swap`` = 0.5, else
   from the second (:func:`~jaxnas.algorithms.operators.uniform_crossover`);
4. every non-elite child has each gene redrawn with probability ``mutation rate``
   (:func:`~jaxnas.algorithms.operators.resample_mutation`).

``ask`` returns the whole next population (elites first); ``tell`` stores it with its
fitness. As in EvNAS, elites are scored again each generation (free for table estimators,
and what a shared supernet that keeps training needs).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
from flax import struct

from jaxnas.algorithms import _rng
from jaxnas.algorithms import operators as ops
from jaxnas.algorithms.base import Algorithm, State, initial_fields
from jaxnas.algorithms.dedup import pick_unique


@struct.dataclass
class GAParams:
    tournament_size: jax.Array
    crossover: dict
    mutation: dict


@struct.dataclass
class GAState(State):
    population: jax.Array  # (P, *genome)
    fitness: jax.Array  # (P,) float32, cleaned


@dataclass(frozen=True)
class GA(Algorithm):
    """EvNAS GA. Static: ``encoding``, ``pop_size``, ``num_elites`` (1 in EvNAS).
    ``default_params(tournament_size=10, mutation_rate=0.1)``: EvNAS S1/S2 values.

    ``eliminate_duplicates`` (off in EvNAS): breed ``pool_factor`` times the children needed
    and keep the first that equal no member and no earlier child (pymoo's duplicate
    elimination, fixed-shape; if the pool runs out, duplicates fill the remaining slots)."""

    encoding: Any
    pop_size: int = 50
    num_elites: int = 1
    crossover: Any = None
    mutation: Any = None
    eliminate_duplicates: bool = False
    pool_factor: float = 2.0

    def __post_init__(self):
        if not 0 <= self.num_elites < self.pop_size:
            raise ValueError(f"num_elites must be in [0, pop_size), got {self.num_elites}")
        if self.crossover is None:
            object.__setattr__(self, "crossover", ops.uniform_crossover())
        if self.mutation is None:
            object.__setattr__(self, "mutation", ops.resample_mutation(self.encoding))

    def default_params(self, tournament_size: int = 10, mutation_rate: float = 0.1) -> GAParams:
        mut = dict(self.mutation.default_params())
        if "rate" in mut:
            mut["rate"] = jnp.float32(mutation_rate)
        return GAParams(jnp.int32(tournament_size), self.crossover.default_params(), mut)

    def sample(self, key):
        return self.encoding.sample(key, self.pop_size)

    def decode(self, population):
        return self.encoding.decode(population)

    def _init(self, key, population, fitness, params: GAParams) -> GAState:
        return GAState(**initial_fields(population.shape[1:], population.dtype),
                       population=population, fitness=fitness)

    def _ask(self, key, state: GAState, params: GAParams):
        k1, k2, k3, k4 = _rng.split(key, 4)
        order = jnp.argsort(state.fitness, stable=True)
        pop, fit = state.population[order], state.fitness[order]
        n_child = self.pop_size - self.num_elites
        n_pool = int(n_child * self.pool_factor) if self.eliminate_duplicates else n_child
        ts = jnp.clip(params.tournament_size, 1, self.pop_size)
        pa = ops.tournament_without_replacement(k1, fit, n_pool, ts)
        pb = ops.tournament_without_replacement(k2, fit, n_pool, ts)
        child, _ = self.crossover(k3, pop[pa], pop[pb], params.crossover)
        child = self.mutation(k4, child, params.mutation)
        if self.eliminate_duplicates:  # pymoo's: no child equals a member or an earlier child
            child, _ = pick_unique(self.encoding, pop, child, n_child)
        return jnp.concatenate([pop[: self.num_elites], child], axis=0), state

    def _tell(self, key, population, fitness, state: GAState, params: GAParams):
        finite = jnp.isfinite(fitness)
        mean = jnp.sum(jnp.where(finite, fitness, 0.0)) / jnp.maximum(jnp.sum(finite), 1)
        return state.replace(population=population, fitness=fitness), {"mean_fitness": mean}
