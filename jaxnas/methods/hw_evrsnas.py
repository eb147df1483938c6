"""HW-EvRSNAS (Sinha et al., WACV'24; METHODS.md 5): single-objective evolutionary search
for an architecture that scores well under a hardware-cost threshold ``T``.

Fitness (minimised), one run per (device, constraint)::

    J(a) = s_norm(a) + lambda * P(c(a))
    s_norm = (s - s_min) / (s_max - s_min)        over the first population's finite scores
    P = |c - T| / T                                (default, "two-sided")
    P = max(0, c - T) / T                          (penalty = "hinge")

``s`` is the estimator score (lower is better: the RMI loss, or 100 - accuracy for a table
column). Normalising by the first population makes ``lambda`` mean the same for every
estimator. The abstract says the penalty is "proportional to how far the architecture's
hardware cost is from the desired threshold"; the exact formula and weight are
UNCONFIRMED (METHODS.md 5.2), so both forms and ``lambda`` are options.

The search is the EvNAS GA (METHODS.md 0.3): sort, copy the elite, tournament parents,
uniform per-edge crossover, per-edge redraw mutation. Its answer is the best-``J``
architecture of the final population (the elite). On the shared table the estimator is
the NB201 *test* accuracy: such a run is an oracle benchmark of the optimiser, and every
report says so.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
from flax import struct

from jaxnas.algorithms import GA, get_encoding
from jaxnas.algorithms.ga import GAParams, GAState
from jaxnas.methods.common import ProblemConfig, mark_seen
from jaxnas.spaces import nb201

PENALTIES = ("two_sided", "hinge")
ANSWERS = ("objective", "feasible")


@dataclass(frozen=True)
class Config(ProblemConfig):
    """HW-EvRSNAS settings (TOML keys). Search hyperparameters are UNCONFIRMED in the
    paper; defaults follow EvNAS on NB201 (P=50, tournament 10, 1 elite, mutation 0.1).

    Attributes (besides :class:`~jaxnas.methods.common.ProblemConfig`):
        population, generations: GA size and length (evaluations: population x (generations + 1)).
        tournament_size, num_elites, mutation_rate, crossover_swap: EvNAS GA operators.
        genome: ``'categorical'`` (NB201 int[6]) or ``'alpha'`` (U(0,1) rows, argmax-decoded).
        penalty: ``'two_sided'`` (default) or ``'hinge'``.
        lam: penalty weight lambda.
        answer: ``'objective'`` (default; the best-J architecture, the GA's elite) or
            ``'feasible'`` (the best-scoring final-population member with cost <= T,
            falling back to the best-J one when none is feasible).
    """

    population: int = 50
    generations: int = 50
    tournament_size: int = 10
    num_elites: int = 1
    mutation_rate: float = 0.1
    crossover_swap: float = 0.5
    genome: str = "categorical"
    penalty: str = "two_sided"
    lam: float = 1.0
    answer: str = "objective"

    def validate(self):
        super().validate()
        if self.penalty not in PENALTIES:
            raise ValueError(f"penalty must be one of {', '.join(PENALTIES)}, got {self.penalty!r}")
        if self.population < 2 or self.generations < 0:
            raise ValueError("population must be >= 2 and generations >= 0")
        if not 1 <= self.tournament_size <= self.population:
            raise ValueError(f"tournament_size must be in 1..population, got {self.tournament_size}")
        if self.answer not in ANSWERS:
            raise ValueError(f"answer must be one of {', '.join(ANSWERS)}, got {self.answer!r}")
        if self.lam < 0:
            raise ValueError(f"lam must be >= 0, got {self.lam}")
        get_encoding(self.genome)

    @property
    def evaluations(self) -> int:
        return self.population * (self.generations + 1)


@struct.dataclass
class Params:
    ga: GAParams
    lam: jax.Array


@struct.dataclass
class State:
    ga: GAState
    s_min: jax.Array
    s_range: jax.Array
    seen: jax.Array  # (15625,) bool: distinct architectures evaluated
    queries: jax.Array
    pop_scores: jax.Array  # (P,) estimator scores of the current population


def penalty(cost: jax.Array, limit: jax.Array, kind: str = "two_sided") -> jax.Array:
    """Distance of ``cost`` from the threshold ``limit``, relative to it."""
    if kind == "hinge":
        return jnp.maximum(cost - limit, 0.0) / limit
    return jnp.abs(cost - limit) / limit


@dataclass(frozen=True)
class Search:
    """The HW-EvRSNAS search cell. ``data = {'cost': (15625,), 'T': scalar}``."""

    algo: GA
    generations: int
    penalty: str = "two_sided"
    answer: str = "objective"

    def default_params(self, cfg: Config | None = None) -> Params:
        cfg = cfg or Config()
        ga = self.algo.default_params(cfg.tournament_size, cfg.mutation_rate)
        ga = ga.replace(crossover=dict(ga.crossover, swap=jnp.float32(cfg.crossover_swap)))
        return Params(ga, jnp.float32(cfg.lam))

    def sample(self, key):
        return self.algo.sample(key)

    def decode(self, pop):
        return self.algo.decode(pop)

    def objective(self, codes, scores, data, s_min, s_range, lam):
        """``J`` for NB201 codes ``(P, 6)`` and estimator scores ``(P,)``."""
        c = data["cost"][nb201.index_jax(codes)]
        return (scores - s_min) / s_range + lam * penalty(c, data["T"], self.penalty)

    def init(self, key, pop, scores, data, params: Params) -> State:
        s = jnp.where(jnp.isfinite(scores), scores, jnp.nan)
        s_min, s_max = jnp.nanmin(s), jnp.nanmax(s)
        s_range = jnp.where(s_max > s_min, s_max - s_min, 1.0)
        s_min = jnp.where(jnp.isfinite(s_min), s_min, 0.0)
        codes = self.decode(pop)
        J = self.objective(codes, scores, data, s_min, s_range, params.lam)
        ga = self.algo.init(key, pop, J, params.ga)
        seen = mark_seen(jnp.zeros(nb201.NUM_ARCHS, bool), codes)
        return State(ga, s_min, s_range, seen, jnp.int32(pop.shape[0]), scores.astype(jnp.float32))

    def ask(self, key, state: State, params: Params):
        pop, ga = self.algo.ask(key, state.ga, params.ga)
        return pop, state.replace(ga=ga)

    def tell(self, key, pop, scores, state: State, data, params: Params) -> State:
        codes = self.decode(pop)
        J = self.objective(codes, scores, data, state.s_min, state.s_range, params.lam)
        ga, _ = self.algo.tell(key, pop, J, state.ga, params.ga)
        return state.replace(ga=ga, seen=mark_seen(state.seen, codes),
                             queries=state.queries + pop.shape[0],
                             pop_scores=scores.astype(jnp.float32))

    def result(self, state: State, data):
        """The answer: the best-J architecture ever (the GA keeps it as its elite), or with
        ``answer='feasible'`` the best-scoring member of the final population with cost <= T
        (the best-J one when none is feasible)."""
        arch = self.decode(state.ga.best_genome[None])[0]
        if self.answer == "feasible":
            codes = self.decode(state.ga.population)
            c = data["cost"][nb201.index_jax(codes)]
            s = jnp.where((c <= data["T"]) & jnp.isfinite(state.pop_scores), state.pop_scores, jnp.inf)
            i = jnp.argmin(s)
            arch = jnp.where(jnp.isfinite(s[i]), codes[i], arch)
        return {
            "arch": arch,
            "objective": state.ga.best_fitness,
            "queries": state.queries,
            "distinct": jnp.sum(state.seen),
        }


def make_search(cfg: Config) -> Search:
    algo = GA(get_encoding(cfg.genome), cfg.population, cfg.num_elites)
    return Search(algo, cfg.generations, cfg.penalty, cfg.answer)


def run(config, table=None, estimator=None, progress: bool = True):
    """Results table over every device x seed x constraint (see :mod:`jaxnas.methods.grid`)."""
    from jaxnas.methods.grid import run_grid

    return run_grid("hw_evrsnas", config, table=table, estimator=estimator, progress=progress)
