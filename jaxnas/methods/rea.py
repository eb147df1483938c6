"""REA (Real et al., AAAI 2019), the standard NB201 baseline, on the same problems.

Algorithm box (one run per device and constraint; :func:`make_search`)::

    objectives   F(a) = [s(a), c(a)]       estimator score and device cost
    fitness      J(a) = s_norm(a)                  if c(a) <= T   (feasible)
                 J(a) = 1000 + (c(a) - T) / T      otherwise      (Deb's feasibility rule:
                                                   every feasible member beats every
                                                   infeasible one, smaller violations first)
                 s_norm: s scaled by the first population's range (as HW-EvRSNAS)
    algorithm    regularized evolution: an aging population of ``population`` (10), parents
                 by tournaments of ``sample_size`` (3, AutoDL-Projects' NATS-Bench setting),
                 children by one-edge mutation, ``batch`` children per generation
    answer       the lowest-s feasible architecture ever evaluated

With ``cost = 'none'`` every member is feasible and this is plain REA (the CMANAS-h12 row).
The budget matches the other methods': ``population + batch * generations`` evaluations, and
``jaxnas.methods`` sizes ``generations`` to the compared method's evaluations.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
from flax import struct

from jaxnas import config as C
from jaxnas.algorithms import REA, Algorithm, State, get_encoding
from jaxnas.algorithms.base import initial_fields
from jaxnas.algorithms.rea import REAParams, REAState
from jaxnas.methods.problem import (
    MethodSearch,
    Problem,
    ProblemConfig,
    mark_seen,
    objectives,
    population_stats,
    score_range,
    update_best_feasible,
)
from jaxnas.spaces import nb201


@dataclass(frozen=True)
class Config(ProblemConfig):
    """REA settings: ``population`` (10), ``sample_size`` (3), ``batch`` children per
    generation (1: Algorithm 1 exactly), ``generations`` (evaluations: population + batch x
    generations)."""

    population: int = 10
    sample_size: int = 3
    batch: int = 1
    generations: int = 2540

    per_constraint = True

    def validate(self, where: str = "rea"):
        super().validate(where)
        C.check_range(where, "population", self.population, 2, 100_000)
        C.check_range(where, "sample_size", self.sample_size, 1, self.population)
        C.check_range(where, "batch", self.batch, 1, self.population)
        C.check_range(where, "generations", self.generations, 0, 10_000_000)

    @property
    def evaluations(self) -> int:
        return self.population + self.batch * self.generations


@struct.dataclass
class Params:
    rea: REAParams
    T: jax.Array  # (1,)


@struct.dataclass
class SearchState(State):
    rea: REAState
    s_min: jax.Array
    s_range: jax.Array
    seen: jax.Array
    best_arch: jax.Array  # (1, 6) lowest-s feasible ever
    best_score: jax.Array  # (1,)
    last_F: jax.Array  # (P, M) objectives of the current population


@dataclass(frozen=True)
class Search(Algorithm):
    rea: REA

    def sample(self, key):
        return self.rea.sample(key)

    def decode(self, population):
        return self.rea.decode(population)

    def fitness(self, F, T, s_min, s_range):
        """``J``: the normalised score if feasible, else 1000 + relative violation."""
        t = jnp.maximum(T[0], 1e-30)
        return jnp.where(F[:, 1] <= T[0], (F[:, 0] - s_min) / s_range,
                         1000.0 + (F[:, 1] - T[0]) / t)

    def _init(self, key, pop, F, params: Params) -> SearchState:
        s_min, s_range = score_range(F)
        codes = self.decode(pop)
        arch, score = update_best_feasible(codes, F, params.T)
        rea = self.rea.init(key, pop, self.fitness(F, params.T, s_min, s_range), params.rea)
        return SearchState(**initial_fields(pop.shape[1:], pop.dtype), rea=rea, s_min=s_min,
                           s_range=s_range, seen=mark_seen(jnp.zeros(nb201.NUM_ARCHS, bool), codes),
                           best_arch=arch, best_score=score, last_F=F)

    def _ask(self, key, state: SearchState, params: Params):
        pop, rea = self.rea.ask(key, state.rea, params.rea)
        return pop, state.replace(rea=rea)

    def _tell(self, key, pop, F, state: SearchState, params: Params):
        codes = self.decode(pop)
        J = self.fitness(F, params.T, state.s_min, state.s_range)
        rea, _ = self.rea.tell(key, pop, J, state.rea, params.rea)
        arch, score = update_best_feasible(codes, F, params.T, state.best_arch, state.best_score)
        seen = mark_seen(state.seen, codes)
        b = self.rea.batch
        last_F = jnp.concatenate([state.last_F[b:], F], axis=0)
        return state.replace(rea=rea, seen=seen, best_arch=arch, best_score=score,
                             last_F=last_F), {"distinct": jnp.sum(seen), **population_stats(F)}

    def final_population(self, state: SearchState):
        return self.decode(state.rea.population), state.last_F

    def answer(self, state: SearchState, params: Params):
        return {"arch": state.best_arch, "score": state.best_score}


def make_search(cfg: Config, problem: Problem) -> MethodSearch:
    """REA on ``problem`` (see the algorithm box in the module docstring)."""
    rea = REA(get_encoding("categorical"), cfg.population, cfg.batch)
    params = Params(rea.default_params(cfg.sample_size), jnp.zeros((1,), jnp.float32))
    return MethodSearch(Search(rea), params, lambda cell: objectives(problem.estimator, cell),
                        cfg.generations)
