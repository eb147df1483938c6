"""CMANAS (Sinha & Chen; METHODS.md 2): CMA-ES over the continuous architecture encoding.

Algorithm box (one run per seed; :func:`make_search`)::

    encoding     alpha in R^{6x5} (NB201), decoded by per-edge argmax (METHODS.md 0.2)
    objective    f(a) = 100 - accuracy(a)   (estimator: a table column, e.g. the 12-epoch
                                             validation accuracy of CMANAS-h12, or a supernet)
    algorithm    CMA-ES (evosax; Hansen 2016): lambda = 4 + floor(3 ln n) = 14, sigma0 = 1.3,
                 m0 = 0; each generation samples lambda alphas and also evaluates the mean;
                 an architecture-fitness (AF) table scores each genotype once
    answer       the architecture decoded from the mean after the last generation

CMANAS-h12 (the paper's non-weight-sharing NB201 run) searches on the NB201 12-epoch
validation accuracy and reports the 200-epoch test accuracy of the answer: configs
``configs/cmanas_h12_*.toml``. Its 500 trials per dataset are 500 seeds of one vmapped call.
The paper's queries each drew one random training seed (``is_random=True``); the shared table
is seed-averaged, so expect slightly less spread. There is no hardware cost (``cost =
'none'``): every answer is feasible, and its regret is the distance to the table's best.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
from flax import struct

from jaxnas import config as C
from jaxnas.algorithms import CMAES, Algorithm, State
from jaxnas.algorithms.base import initial_fields
from jaxnas.algorithms.cmaes import CMAESParams, CMAESState, cmanas_popsize
from jaxnas.methods.problem import (
    MethodSearch,
    Problem,
    ProblemConfig,
    mark_seen,
    objectives,
    population_stats,
)
from jaxnas.spaces import nb201


@dataclass(frozen=True)
class Config(ProblemConfig):
    """CMANAS settings (TOML keys).

    Attributes (besides :class:`~jaxnas.methods.problem.ProblemConfig`):
        generations: CMA-ES generations (CMANAS-h12: 25 "Ep25" or 100 "Ep100").
        sigma0: initial step size (1.3).
        popsize: lambda (0: CMANAS' ``4 + floor(3 ln 30)`` = 14).
    """

    generations: int = 25
    sigma0: float = 1.3
    popsize: int = 0
    cost: str = "none"
    score_column: str = "cifar10_valid_acc_hp12"
    constraint_quantiles: tuple[float, ...] = (1.0,)
    seeds: int = 500

    per_constraint = False

    def validate(self, where: str = "cmanas"):
        super().validate(where)
        C.check_range(where, "generations", self.generations, 0, 1_000_000)
        C.check_range(where, "sigma0", self.sigma0, 0.0, 1e6, lo_open=True)
        C.check_range(where, "popsize", self.popsize, 0, 100_000)
        if self.popsize == 1:
            raise C.ConfigError(f"{where}: popsize must be 0 (CMANAS' lambda) or >= 2, got 1")

    @property
    def population(self) -> int:
        """lambda: samples per generation."""
        return self.popsize or cmanas_popsize(nb201.NUM_EDGES * nb201.NUM_OPS)

    @property
    def evaluations(self) -> int:
        """lambda samples and the mean per generation (the AF table may skip some)."""
        return (self.population + 1) * max(self.generations, 1)


@struct.dataclass
class Params:
    cma: CMAESParams
    T: jax.Array  # (Q,) thresholds (cost 'none': all feasible)


@struct.dataclass
class SearchState(State):
    cma: CMAESState
    seen: jax.Array  # (15625,) bool
    mean_score: jax.Array  # fitness of the last evaluated mean
    last: jax.Array  # (lambda + 1, 30) the last population told, mean last
    last_F: jax.Array  # (lambda + 1, M)


@dataclass(frozen=True)
class Search(Algorithm):
    """CMA-ES on ``f = F[:, 0]``; the mean is evaluated as an extra member each generation."""

    cma: CMAES
    population_based = False

    def decode(self, population):
        return self.cma.decode(population)

    def _init(self, key, params: Params) -> SearchState:
        n, lam = self.cma.num_dims, self.cma.pop_size
        return SearchState(**initial_fields((n,), jnp.float32), cma=self.cma.init(key, params.cma),
                           seen=jnp.zeros(nb201.NUM_ARCHS, bool), mean_score=jnp.float32(jnp.inf),
                           last=jnp.zeros((lam + 1, n), jnp.float32),
                           last_F=jnp.full((lam + 1, 2), jnp.inf, jnp.float32))

    def _ask(self, key, state: SearchState, params: Params):
        pop, cma = self.cma.ask(key, state.cma, params.cma)
        return jnp.concatenate([pop, cma.es.mean[None]], axis=0), state.replace(cma=cma)

    def shape(self, population, F, state: SearchState, params: Params):
        """The AF table: genotypes already scored keep their first score."""
        s = self.cma.shape(population, F[:, 0], state.cma, params.cma)
        return F.at[:, 0].set(s)

    def _tell(self, key, pop, F, state: SearchState, params: Params):
        lam = self.cma.pop_size
        cma, metrics = self.cma.tell(key, pop[:lam], F[:lam, 0], state.cma, params.cma)
        seen = mark_seen(state.seen, self.decode(pop))
        return state.replace(cma=cma, seen=seen, mean_score=F[lam, 0], last=pop, last_F=F), {
            **metrics, "mean_arch_score": F[lam, 0], "distinct": jnp.sum(seen),
            **population_stats(F)}

    def final_population(self, state: SearchState):
        return self.decode(state.last), state.last_F

    def answer(self, state: SearchState, params: Params):
        """The architecture decoded from the final mean, for every threshold; its score is the
        AF table's value for it (0 if that genotype was never evaluated)."""
        arch = self.decode(state.cma.es.mean[None])
        i = nb201.index_jax(arch)[0]
        score = jnp.where(state.cma.cache_seen[i], state.cma.cache_fitness[i], 0.0)
        q = params.T.shape[0]
        return {"arch": jnp.repeat(arch, q, axis=0), "score": jnp.full((q,), score)}


def make_search(cfg: Config, problem: Problem) -> MethodSearch:
    """CMANAS on ``problem`` (see the algorithm box in the module docstring)."""
    n = nb201.NUM_EDGES * nb201.NUM_OPS
    cma = CMAES(n, cfg.population, decoder=nb201.decode_alpha, cache_key=nb201.index_jax,
                cache_size=nb201.NUM_ARCHS)
    params = Params(cma.default_params(sigma0=cfg.sigma0),
                    jnp.zeros((len(cfg.constraint_quantiles),), jnp.float32))
    return MethodSearch(Search(cma), params, lambda cell: objectives(problem.estimator, cell),
                        cfg.generations)
