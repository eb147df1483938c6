"""EvNAS (Sinha & Chen, GECCO'21; METHODS.md 1): a GA over alpha sharing one supernet.

Algorithm box (one run per seed; :func:`make_search`)::

    encoding     alpha ~ U(0,1): NB201 6x5, DARTS 2x14x8 (28 edge rows of 8), one gene per
                 edge row
    decoding     NB201: per-edge argmax (none allowed); DARTS: top-2 rule without none;
                 the supernet runs the one-hot alpha-hat of the decoded architecture through
                 its softmax (discretize-then-softmax, METHODS.md 0.1/0.2)
    generation   1. train the supernet one epoch: mini-batch b trains individual b mod P
                 2. evaluate all P on the search-valid split: f = 100 - top1 (minimised)
                 3. evolve: 1 elite, tournament 10 (without replacement), uniform crossover
                    per edge row (p = 0.5), per-row U(0,1) resampling with rate 0.1
    answer       the best individual of the last generation's evaluation (its genotype)

The supernet's epochs are the generations: ``generations`` = 50 means 50 epochs and 50
evaluations of the population (the first on the initial population), so the driver runs
``generations - 1`` ask/tell steps. The cosine schedule spans all ``generations`` epochs.
Elites are evaluated again each generation (the supernet has changed). The answer is the
best of the *last* population, not the best ever told: fitness measured on earlier, less
trained supernets is not comparable (EvNAS ``train_search.py`` sorts the last population).
"""

from __future__ import annotations

from dataclasses import dataclass

import jax.numpy as jnp

from jaxnas import config as C
from jaxnas.algorithms import GA
from jaxnas.methods.oneshot import OneShotConfig, OneShotSearch, SupernetProblem


@dataclass(frozen=True)
class Config(OneShotConfig):
    """EvNAS settings (TOML keys; besides :class:`~jaxnas.methods.oneshot.OneShotConfig`).

    Attributes:
        population: P (50). generations: supernet epochs = population evaluations (50).
        tournament_size: 10. elites: 1. mutation_rate: per edge row (0.1, the code's default;
            the paper's value is UNCONFIRMED, METHODS.md 1).
    """

    population: int = 50
    generations: int = 50
    tournament_size: int = 10
    elites: int = 1
    mutation_rate: float = 0.1

    def validate(self, where: str = "evnas"):
        super().validate(where)
        C.check_range(where, "population", self.population, 2, 100_000)
        C.check_range(where, "generations", self.generations, 1, 100_000)
        C.check_range(where, "tournament_size", self.tournament_size, 1, self.population)
        C.check_range(where, "elites", self.elites, 0, self.population - 1)
        C.check_prob(where, "mutation_rate", self.mutation_rate)

    @property
    def evaluations(self) -> int:
        """Architecture evaluations of a run: P per generation."""
        return self.population * self.generations


def make_search(cfg: Config, problem: SupernetProblem) -> OneShotSearch:
    """EvNAS on ``problem`` (see the algorithm box in the module docstring)."""
    ga = GA(problem.encoding, pop_size=cfg.population, num_elites=cfg.elites)
    params = ga.default_params(tournament_size=cfg.tournament_size,
                               mutation_rate=cfg.mutation_rate)

    def fitness(key, archs):
        problem.train_epoch(key, archs)  # 1. one epoch, round robin over the population
        return problem.evaluate(key, archs)  # 2. 100 - top1 on search-valid

    def answer(state):
        return ga.decode(state.population[jnp.argmin(state.fitness)][None])[0]

    return OneShotSearch(ga, params, fitness, generations=cfg.generations - 1,
                         epochs=cfg.generations, pretrain_epochs=0, answer=answer)
