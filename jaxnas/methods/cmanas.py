"""CMANAS (Sinha & Chen; METHODS.md 2): CMA-ES over the continuous architecture encoding.

Algorithm box (one run per seed; :func:`make_search`)::

    encoding     alpha in R^{6x5} (NB201), decoded by per-edge argmax (METHODS.md 0.2)
    objective    f(a) = 100 - accuracy(a)   (estimator: a table column, e.g. the 12-epoch
                                             validation accuracy of CMANAS-h12, or a supernet)
    algorithm    CMA-ES (evosax; Hansen 2016): lambda = 4 + floor(3 ln n) = 14, sigma0 = 1.3,
                 m0 = 0; each generation samples lambda alphas and also evaluates the mean;
                 an architecture-fitness (AF) table scores each genotype once
    answer       the architecture decoded from the mean after the last generation

With ``estimator = "supernet"`` (:class:`SupernetConfig`, :func:`make_supernet_search`) it is
the weight-sharing CMANAS of METHODS.md 2 on either space::

    pre-training the one-shot model (supernet) is trained ``pretrain_epochs`` epochs, every
                 mini-batch with a fresh alpha ~ U(0,1) (not discretized)
    objective    f(a) = 100 - top1 of the decoded alpha (one-hot alpha-hat through the
                 supernet's softmax) on the search-valid split; the weights stay fixed
    algorithm    CMA-ES as above over n = 30 (NB201, lambda 14) or 224 (DARTS, lambda 20)
                 numbers; AF table: each genotype is evaluated once (NB201: the adapter's
                 cache by index; both spaces: only genotypes not yet scored are run through
                 the supernet)
    answer       the genotype decoded from the mean after the last generation

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
from jaxnas.methods.oneshot import OneShotConfig, OneShotSearch, SupernetProblem
from jaxnas.methods.problem import (
    MethodSearch,
    Problem,
    ProblemConfig,
    mark_seen,
    objectives,
    population_stats,
)
from jaxnas.spaces import darts, nb201


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
    """CMA-ES on ``f = F[:, 0]``; the mean is evaluated as an extra member each generation.
    ``nb201``: keep the bitmap of NB201 indices seen (False for the DARTS space)."""

    cma: CMAES
    nb201: bool = True
    population_based = False

    def decode(self, population):
        return self.cma.decode(population)

    def _init(self, key, params: Params) -> SearchState:
        n, lam = self.cma.num_dims, self.cma.pop_size
        return SearchState(**initial_fields((n,), jnp.float32), cma=self.cma.init(key, params.cma),
                           seen=jnp.zeros(nb201.NUM_ARCHS if self.nb201 else 1, bool),
                           mean_score=jnp.float32(jnp.inf),
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
        seen = mark_seen(state.seen, self.decode(pop)) if self.nb201 else state.seen
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


# ---------------------------------------------------------------------------- weight sharing


@dataclass(frozen=True)
class SupernetConfig(OneShotConfig):
    """Weight-sharing CMANAS (``estimator = "supernet"``; besides
    :class:`~jaxnas.methods.oneshot.OneShotConfig`).

    Attributes:
        pretrain_epochs: one-shot model epochs with random alphas (S1: 100; S2 UNCONFIRMED,
            the script passes 2).
        generations: CMA-ES generations (S1: 100). sigma0: 1.3. popsize: lambda (0: CMANAS'
            ``4 + floor(3 ln n)``: 14 for NB201, 20 for DARTS).
    """

    estimator: str = "supernet"
    pretrain_epochs: int = 100
    generations: int = 100
    sigma0: float = 1.3
    popsize: int = 0
    nesterov: bool = True
    batch_size: int = 96

    def validate(self, where: str = "cmanas"):
        super().validate(where)
        C.check_choice(where, "estimator", self.estimator, ("supernet",))
        C.check_range(where, "pretrain_epochs", self.pretrain_epochs, 0, 100_000)
        C.check_range(where, "generations", self.generations, 1, 1_000_000)
        C.check_range(where, "sigma0", self.sigma0, 0.0, 1e6, lo_open=True)
        C.check_range(where, "popsize", self.popsize, 0, 100_000)
        if self.popsize == 1:
            raise C.ConfigError(f"{where}: popsize must be 0 (CMANAS' lambda) or >= 2, got 1")

    @property
    def num_dims(self) -> int:
        return nb201.NUM_EDGES * nb201.NUM_OPS if self.space == "nb201" else darts.ALPHA_SIZE

    @property
    def population(self) -> int:
        return self.popsize or cmanas_popsize(self.num_dims)

    @property
    def evaluations(self) -> int:
        """lambda samples and the mean per generation (before the AF table)."""
        return (self.population + 1) * self.generations


def config_class(values) -> type:
    """:class:`SupernetConfig` for ``estimator = "supernet"``, else the table :class:`Config`."""
    est = getattr(values, "estimator", None) if not hasattr(values, "get") else values.get(
        "estimator")
    return SupernetConfig if est == "supernet" else Config


def af_table_fitness(problem: SupernetProblem, size: int):
    """``(key, archs) -> (P, 2)`` ``[100 - top1, 0]``: the AF table over genotype strings;
    only genotypes not scored yet are run through the (fixed) supernet, padded to ``size``
    members so the evaluation compiles once."""
    table: dict[str, float] = {}

    def fitness(key, archs):
        names = problem.arch_strings(archs)
        first: dict[str, int] = {}
        for i, n in enumerate(names):
            if n not in table and n not in first:
                first[n] = i
        new = list(first.values())
        if new:
            idx = jnp.asarray(new + [new[0]] * (size - len(new)) if len(new) < size else new)
            scores = jnp.asarray(problem.evaluate(key, jnp.asarray(archs)[idx]))
            for j, i in enumerate(new):
                table[names[i]] = float(scores[j])
        f = jnp.asarray([table[n] for n in names], jnp.float32)
        return jnp.stack([f, jnp.zeros_like(f)], axis=1)

    return fitness


def make_supernet_search(cfg: SupernetConfig, problem: SupernetProblem) -> OneShotSearch:
    """Weight-sharing CMANAS on ``problem`` (see the module docstring)."""
    is_nb201 = cfg.space == "nb201"
    decoder = nb201.decode_alpha if is_nb201 else darts.genotype
    cma = CMAES(cfg.num_dims, cfg.population, decoder=decoder,
                cache_key=nb201.index_jax if is_nb201 else None,
                cache_size=nb201.NUM_ARCHS if is_nb201 else 0)
    search = Search(cma, nb201=is_nb201)
    params = Params(cma.default_params(sigma0=cfg.sigma0), jnp.zeros((1,), jnp.float32))
    return OneShotSearch(search, params, af_table_fitness(problem, cfg.population + 1),
                         generations=cfg.generations, epochs=cfg.pretrain_epochs,
                         pretrain_epochs=cfg.pretrain_epochs,
                         answer=lambda state: cma.result(state.cma))
