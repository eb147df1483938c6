"""Random search, the baseline row of every results table (METHODS.md 8).

Algorithm box (one run per device; :func:`make_search`)::

    objectives   F(a) = [s(a), c(a)]      estimator score and device cost
    algorithm    uniform samples of NB201, ``population`` per generation, with replacement
                 (the same budget as the method it is compared with)
    answer       per threshold T: argmin s over every sample with c(a) <= T
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
from flax import struct

from jaxnas import config as C
from jaxnas.algorithms import Algorithm, RandomSearch, State, get_encoding
from jaxnas.algorithms.base import initial_fields
from jaxnas.methods.problem import (
    MethodSearch,
    Problem,
    ProblemConfig,
    mark_seen,
    objectives,
    population_stats,
    update_best_feasible,
)
from jaxnas.spaces import nb201


@dataclass(frozen=True)
class Config(ProblemConfig):
    """Random search settings: ``population`` samples per generation, ``generations`` + 1
    generations (evaluations: population x (generations + 1))."""

    population: int = 50
    generations: int = 50

    per_constraint = False

    def validate(self, where: str = "random"):
        super().validate(where)
        C.check_range(where, "population", self.population, 1, 100_000)
        C.check_range(where, "generations", self.generations, 0, 1_000_000)

    @property
    def evaluations(self) -> int:
        return self.population * (self.generations + 1)


@struct.dataclass
class Params:
    T: jax.Array  # (Q,)


@struct.dataclass
class SearchState(State):
    rs: State
    seen: jax.Array
    best_arch: jax.Array  # (Q, 6)
    best_score: jax.Array  # (Q,)


@dataclass(frozen=True)
class Search(Algorithm):
    rs: RandomSearch

    def sample(self, key):
        return self.rs.sample(key)

    def decode(self, population):
        return self.rs.decode(population)

    def _init(self, key, pop, F, params: Params) -> SearchState:
        codes = self.decode(pop)
        arch, score = update_best_feasible(codes, F, params.T)
        return SearchState(**initial_fields(pop.shape[1:], pop.dtype),
                           rs=self.rs.init(key, pop, F, {}),
                           seen=mark_seen(jnp.zeros(nb201.NUM_ARCHS, bool), codes),
                           best_arch=arch, best_score=score)

    def _ask(self, key, state: SearchState, params: Params):
        pop, rs = self.rs.ask(key, state.rs, {})
        return pop, state.replace(rs=rs)

    def _tell(self, key, pop, F, state: SearchState, params: Params):
        codes = self.decode(pop)
        arch, score = update_best_feasible(codes, F, params.T, state.best_arch, state.best_score)
        rs, _ = self.rs.tell(key, pop, F, state.rs, {})
        seen = mark_seen(state.seen, codes)
        return state.replace(rs=rs, seen=seen, best_arch=arch, best_score=score), {
            "distinct": jnp.sum(seen), **population_stats(F)}

    def final_population(self, state):
        """The final population: codes ``(P, 6)`` and objectives ``(P, 2)`` = [s, c]."""
        return self.decode(state.rs.population), state.rs.fitness

    def answer(self, state: SearchState, params: Params):
        return {"arch": state.best_arch, "score": state.best_score}


def make_search(cfg: Config, problem: Problem) -> MethodSearch:
    """Random search on ``problem`` at the budget ``population x (generations + 1)``."""
    params = Params(jnp.zeros((len(cfg.constraint_quantiles),), jnp.float32))
    return MethodSearch(Search(RandomSearch(get_encoding("categorical"), cfg.population)), params,
                        lambda cell: objectives(problem.estimator, cell), cfg.generations)
