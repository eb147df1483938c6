"""MO-HDNAS (Sinha et al., CVPR'24 ECV workshop; METHODS.md 6): NSGA-II over three
objectives, so that one run covers every hardware constraint.

Objectives (all minimised here):

1. the estimator score ``s`` (lower is better: RMI loss, or 100 - accuracy for a table);
2. the hardware cost ``c`` (a HW-NAS-Bench device column);
3. ``-chi``: hardware-cost diversity, maximised. chi is a **reconstruction** (the paper's
   formula is UNCONFIRMED): by default the mean absolute cost difference to the ``k = 5``
   nearest members by cost, costs normalised by their range in the population, recomputed
   over parents + offspring at every survival step
   (:class:`~jaxnas.algorithms.novelty.CostDiversity`; ``chi_mode = 'nearest'`` and
   ``chi_archive > 0`` select the alternatives).

For each constraint ``T`` the answer is the best-scoring member with ``c <= T`` of the final
population (METHODS.md 6, "Reporting"); ``select_from = 'history'`` takes it from every
architecture evaluated during the run instead. NSGA-II settings are UNCONFIRMED; the
defaults are the authors' earlier pymoo settings (METHODS.md 4/6): α in [0, 1]^30 decoded by
argmax, SBX(eta 15, prob 0.7), PM(eta 20, per-variable probability 0.2).

On the shared table the estimator is NB201 *test* accuracy: a run is then an oracle
benchmark of the optimiser, and every report says so.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
from flax import struct

from jaxnas.algorithms import NSGA2, CostDiversity, get_encoding, operators
from jaxnas.algorithms.nsga2 import NSGA2Params, NSGA2State
from jaxnas.methods.common import ProblemConfig, best_feasible, mark_seen
from jaxnas.spaces import nb201

SELECT = ("population", "history")


@dataclass(frozen=True)
class Config(ProblemConfig):
    """MO-HDNAS settings (TOML keys).

    Attributes (besides :class:`~jaxnas.methods.common.ProblemConfig`):
        population, generations: NSGA-II size and length (evaluations:
            population x (generations + 1)).
        genome: ``'alpha'`` (default; SBX + PM on [0,1]^30) or ``'categorical'`` (NB201
            int[6]; uniform crossover + per-gene resampling).
        sbx_eta, sbx_prob, pm_eta, pm_prob_var: real-genome operators.
        mutation_rate: per-gene resampling probability for the categorical genome.
        chi_k, chi_mode (``'knn'`` | ``'nearest'``), chi_archive (archive size; 0 = none).
        select_from: ``'population'`` (final population) or ``'history'`` (all evaluated).
    """

    population: int = 50
    generations: int = 50
    genome: str = "alpha"
    sbx_eta: float = 15.0
    sbx_prob: float = 0.7
    pm_eta: float = 20.0
    pm_prob_var: float = 0.2
    mutation_rate: float = 0.1
    chi_k: int = 5
    chi_mode: str = "knn"
    chi_archive: int = 0
    select_from: str = "population"

    def validate(self):
        super().validate()
        if self.population < 4 or self.generations < 0:
            raise ValueError("population must be >= 4 and generations >= 0")
        if self.select_from not in SELECT:
            raise ValueError(f"select_from must be one of {', '.join(SELECT)}, got {self.select_from!r}")
        if self.chi_k < 1:
            raise ValueError(f"chi_k must be >= 1, got {self.chi_k}")
        if self.chi_mode not in ("knn", "nearest"):
            raise ValueError(f"chi_mode must be 'knn' or 'nearest', got {self.chi_mode!r}")
        get_encoding(self.genome)

    @property
    def evaluations(self) -> int:
        return self.population * (self.generations + 1)


@struct.dataclass
class State:
    nsga: NSGA2State
    seen: jax.Array  # (15625,) bool
    queries: jax.Array
    hist_arch: jax.Array  # (Q, 6) best feasible ever evaluated, per constraint
    hist_score: jax.Array  # (Q,)


@dataclass(frozen=True)
class Search:
    """The MO-HDNAS search cell. ``data = {'cost': (15625,), 'T': (Q,)}``."""

    algo: NSGA2
    generations: int
    select_from: str = "population"

    def default_params(self, cfg: Config | None = None) -> NSGA2Params:
        cfg = cfg or Config()
        p = self.algo.default_params()
        cx, mut = dict(p.crossover), dict(p.mutation)
        if "eta" in cx:  # SBX
            cx.update(eta=jnp.float32(cfg.sbx_eta), prob=jnp.float32(cfg.sbx_prob))
        if "prob_var" in mut:  # polynomial mutation: per-variable probability, every child
            mut.update(eta=jnp.float32(cfg.pm_eta), prob=jnp.float32(1.0),
                       prob_var=jnp.float32(cfg.pm_prob_var))
        if "rate" in mut:
            mut.update(rate=jnp.float32(cfg.mutation_rate))
        return p.replace(crossover=cx, mutation=mut, extra={"k": jnp.int32(cfg.chi_k)})

    def sample(self, key):
        return self.algo.sample(key)

    def decode(self, pop):
        return self.algo.decode(pop)

    def _F(self, codes, scores, data):
        return jnp.stack([scores, data["cost"][nb201.index_jax(codes)]], axis=1)

    def _history(self, codes, F, valid, data, arch, score):
        s = jnp.where(valid & jnp.isfinite(F[:, 0]), F[:, 0], jnp.inf)
        new = best_feasible(codes, s, F[:, 1], data["T"])
        better = new["score"] < score
        return (jnp.where(better[:, None], new["arch"], arch), jnp.where(better, new["score"], score))

    def init(self, key, pop, scores, data, params) -> State:
        codes = self.decode(pop)
        F = self._F(codes, scores, data)
        nsga = self.algo.init(key, pop, F, params)
        q = data["T"].shape[0]
        arch, score = self._history(codes, F, jnp.ones(pop.shape[0], bool), data,
                                    jnp.zeros((q, nb201.NUM_EDGES), jnp.int32), jnp.full((q,), jnp.inf))
        seen = mark_seen(jnp.zeros(nb201.NUM_ARCHS, bool), codes)
        return State(nsga, seen, jnp.int32(pop.shape[0]), arch, score)

    def ask(self, key, state: State, params):
        pop, nsga = self.algo.ask(key, state.nsga, params)
        return pop, state.replace(nsga=nsga)

    def tell(self, key, pop, scores, state: State, data, params) -> State:
        codes = self.decode(pop)
        F = self._F(codes, scores, data)
        valid = state.nsga.offspring_valid
        arch, score = self._history(codes, F, valid, data, state.hist_arch, state.hist_score)
        nsga, _ = self.algo.tell(key, pop, F, state.nsga, params)
        return State(nsga, mark_seen(state.seen, codes), state.queries + pop.shape[0], arch, score)

    def result(self, state: State, data):
        """Per constraint: the best-scoring feasible member (``score`` inf if none)."""
        if self.select_from == "history":
            pick = {"arch": state.hist_arch, "score": state.hist_score}
        else:
            codes = self.decode(state.nsga.population)
            F = state.nsga.fitness
            pick = best_feasible(codes, F[:, 0], F[:, 1], data["T"])
        return pick | {"queries": state.queries, "distinct": jnp.sum(state.seen)}

    def final_front(self, state: State):
        """Final population: codes ``(P, 6)``, objectives ``(P, 3)`` = [score, cost, -chi], rank."""
        return self.decode(state.nsga.population), state.nsga.fitness, state.nsga.rank


def make_search(cfg: Config) -> Search:
    enc = get_encoding(cfg.genome)
    chi = CostDiversity(cost_column=1, mode=cfg.chi_mode, archive_size=cfg.chi_archive)
    if cfg.genome == "alpha":
        algo = NSGA2(enc, cfg.population, 2, crossover=operators.sbx(enc.low, enc.high),
                     mutation=operators.polynomial_mutation(enc.low, enc.high), extra=chi)
    else:
        algo = NSGA2(enc, cfg.population, 2, extra=chi)
    return Search(algo, cfg.generations, cfg.select_from)


def run(config, table=None, estimator=None, progress: bool = True):
    """Results table over every device x seed; each run covers all constraints."""
    from jaxnas.methods.grid import run_grid

    return run_grid("mo_hdnas", config, table=table, estimator=estimator, progress=progress)
