"""The one algorithm protocol (DESIGN.md convention 2), in the manner of evosax's
``EvolutionaryAlgorithm`` base class::

    init(key, params) -> state                            # distribution-based (CMAES)
    init(key, population, fitness, params) -> state       # population-based (GA, NSGA2, ...)
    ask(key, state, params) -> (population, state)
    tell(key, population, fitness, state, params) -> (state, metrics)

As in evosax, a population-based algorithm is initialised from an evaluated population
(``sample(key)`` draws it) and a distribution-based one from its parameters alone.
``key`` comes first and is never stored in the state; fitness is minimised, ``(P,)`` for one
objective and ``(P, M)`` for several.

What every algorithm needs is done here, once, in :meth:`Algorithm.tell` (and ``init``):

- **non-finite fitness** becomes ``+inf`` in *every* objective of that member
  (:func:`clean`), so a failed evaluation never enters a front, an archive or a best;
- **fitness shaping** (:meth:`Algorithm.shape`, identity by default): what the algorithm
  ranks, e.g. CMANAS's architecture-fitness cache or NSGA-II's eliminated duplicates;
- **counters and the best**: ``generation``, ``num_evaluations`` (fitness rows received) and
  ``best_genome`` / ``best_fitness`` (the lowest first objective ever told; ``+inf`` until a
  finite one arrives), kept in the fields of :class:`State` that every state has;
- **metrics**: ``best_fitness`` and ``num_evaluations`` are added to the subclass's own.

Subclasses implement ``_init`` / ``_ask`` / ``_tell``; the drivers are in
:mod:`jaxnas.algorithms.driver`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct


def clean(fitness: jax.Array) -> jax.Array:
    """float32 fitness with every non-finite member set to ``+inf`` in every objective.

    ``(P,)``: NaN and +-inf become +inf. ``(P, M)``: a row with any non-finite entry becomes
    all +inf (so a failed member with a low cost is dominated, never on a front).
    """
    f = jnp.asarray(fitness, jnp.float32)
    if f.ndim <= 1:
        return jnp.where(jnp.isfinite(f), f, jnp.inf)
    bad = ~jnp.all(jnp.isfinite(f), axis=-1, keepdims=True)
    return jnp.where(bad, jnp.inf, f)


@struct.dataclass
class State:
    """Fields every algorithm state has (subclass states add theirs after these)."""

    best_genome: jax.Array  # (*genome,) the member with the lowest first objective so far
    best_fitness: jax.Array  # scalar; +inf until a finite fitness is told
    generation: jax.Array  # int32, tells since init
    num_evaluations: jax.Array  # int32, fitness rows received (duplicates included)


def initial_fields(genome_shape, dtype) -> dict:
    """The :class:`State` fields of a fresh state (nothing told yet)."""
    return dict(best_genome=jnp.zeros(genome_shape, dtype), best_fitness=jnp.float32(jnp.inf),
                generation=jnp.int32(0), num_evaluations=jnp.int32(0))


class Algorithm:
    """Base class of every search algorithm (see the module docstring).

    Subclasses set ``population_based`` and implement ``_init``, ``_ask`` and ``_tell``
    (``_tell(key, population, fitness, state, params) -> (state, metrics)`` gets the shaped,
    cleaned fitness). Population-based ones also implement ``sample(key)``; ``decode``
    maps genomes to architectures (identity by default).
    """

    population_based: bool = True

    # -- optional hooks
    def decode(self, population):
        return population

    def shape(self, population, fitness, state, params):
        """Fitness as the algorithm ranks it (identity); ``fitness`` is already cleaned."""
        return fitness

    # -- the protocol
    def init(self, key, *args):
        """``init(key, params)`` or ``init(key, population, fitness, params)``."""
        if not self.population_based:
            (params,) = args
            return self._init(key, params)
        population, fitness, params = args
        f = clean(fitness)
        state = self._init(key, population, f, params)
        return _track(state, population, f, count_generation=False)

    def ask(self, key, state, params):
        return self._ask(key, state, params)

    def tell(self, key, population, fitness, state, params):
        f = self.shape(population, clean(fitness), state, params)
        state, metrics = self._tell(key, population, f, state, params)
        state = _track(state, population, f, count_generation=True)
        metrics = {**metrics, "best_fitness": state.best_fitness,
                   "num_evaluations": state.num_evaluations}
        return state, metrics

    def _init(self, key, *args):
        raise NotImplementedError

    def _ask(self, key, state, params):
        raise NotImplementedError

    def _tell(self, key, population, fitness, state, params):
        raise NotImplementedError


def _track(state, population, f, count_generation: bool):
    """Counters and the best-ever member (lowest first objective; inf never beats inf)."""
    score = f if f.ndim == 1 else f[:, 0]
    i = jnp.argmin(score)
    better = score[i] < state.best_fitness
    return state.replace(
        best_genome=jnp.where(better, population[i].astype(state.best_genome.dtype),
                              state.best_genome),
        best_fitness=jnp.where(better, score[i], state.best_fitness),
        generation=state.generation + (1 if count_generation else 0),
        num_evaluations=state.num_evaluations + population.shape[0],
    )
