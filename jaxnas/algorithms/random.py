"""Random search: every generation is a fresh uniform sample of the space.

The baseline every NAS results table reports (METHODS.md 8). On the common base it runs
through the same driver, budget and answer rules as the other algorithms: the budget is
``pop_size * (generations + 1)`` samples, drawn with replacement, and the method's answer
rule picks from everything evaluated (see :mod:`jaxnas.methods.random_search`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import jax
from flax import struct

from jaxnas.algorithms.base import Algorithm, State, initial_fields


@struct.dataclass
class RandomSearchState(State):
    population: jax.Array  # (P, *genome) the last sample
    fitness: jax.Array  # (P,) or (P, M), cleaned


@dataclass(frozen=True)
class RandomSearch(Algorithm):
    """Uniform sampling of ``encoding``, ``pop_size`` genomes per generation."""

    encoding: Any
    pop_size: int = 50

    def default_params(self) -> dict:
        return {}

    def sample(self, key):
        return self.encoding.sample(key, self.pop_size)

    def decode(self, population):
        return self.encoding.decode(population)

    def _init(self, key, population, fitness, params) -> RandomSearchState:
        return RandomSearchState(**initial_fields(population.shape[1:], population.dtype),
                                 population=population, fitness=fitness)

    def _ask(self, key, state: RandomSearchState, params):
        return self.sample(key), state

    def _tell(self, key, population, fitness, state: RandomSearchState, params):
        return state.replace(population=population, fitness=fitness), {}
