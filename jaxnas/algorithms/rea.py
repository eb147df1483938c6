"""Regularized evolution (REA; Real et al., AAAI 2019, "Regularized Evolution for Image
Classifier Architecture Search", Algorithm 1), the standard NB201 baseline.

One cycle::

    sample S members of the population uniformly, without replacement
    parent <- the best of the sample
    child  <- parent with one gene (an edge) set to a different value, uniformly
    evaluate the child; append it (youngest); remove the oldest member

The population is kept in age order (oldest first), so "remove the oldest" is a shift.
``batch`` children are bred per ``ask`` from independent tournaments on the same population
(``batch = 1`` is Algorithm 1 exactly; a larger batch evaluates several children per call,
e.g. for a GPU estimator, and removes as many oldest members). The budget of a run is
``pop_size + batch * generations`` evaluations. Genomes are categorical (NB201 ``int[6]``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
from flax import struct

from jaxnas.algorithms.base import Algorithm, State, initial_fields


@struct.dataclass
class REAParams:
    sample_size: jax.Array  # S, the tournament size (NB201's REA: 10)


@struct.dataclass
class REAState(State):
    population: jax.Array  # (P, *genome), oldest first
    fitness: jax.Array  # (P,)


@dataclass(frozen=True)
class REA(Algorithm):
    """Static: ``encoding`` (categorical), ``pop_size`` (NB201's REA: 10), ``batch``."""

    encoding: Any
    pop_size: int = 10
    batch: int = 1

    def __post_init__(self):
        if not 1 <= self.batch <= self.pop_size:
            raise ValueError(f"REA batch must be in 1..pop_size, got {self.batch}")

    def default_params(self, sample_size: int = 10) -> REAParams:
        return REAParams(jnp.int32(sample_size))

    def sample(self, key):
        return self.encoding.sample(key, self.pop_size)

    def decode(self, population):
        return self.encoding.decode(population)

    def _init(self, key, population, fitness, params: REAParams) -> REAState:
        return REAState(**initial_fields(population.shape[1:], population.dtype),
                        population=population, fitness=fitness)

    def _ask(self, key, state: REAState, params: REAParams):
        k_s, k_e, k_v = jax.random.split(key, 3)
        P, B = self.pop_size, self.batch
        s = jnp.clip(params.sample_size, 1, P)
        # S distinct members per tournament: the S smallest of P uniform draws
        u = jax.random.uniform(k_s, (B, P))
        rank = jnp.argsort(jnp.argsort(u, axis=1), axis=1)
        in_sample = rank < s
        f = jnp.where(in_sample, state.fitness[None, :], jnp.inf)
        parent = jnp.argmin(f, axis=1)
        # a sample of failed members only (all +inf): its first member is the parent
        parent = jnp.where(jnp.isfinite(jnp.min(f, axis=1)), parent, jnp.argmax(in_sample, axis=1))
        genomes = state.population[parent].reshape(B, -1)
        g = genomes.shape[1]
        edge = jax.random.randint(k_e, (B,), 0, g)
        shift = jax.random.randint(k_v, (B,), 1, self.encoding.num_values)
        old = genomes[jnp.arange(B), edge]
        children = genomes.at[jnp.arange(B), edge].set((old + shift) % self.encoding.num_values)
        return children.reshape((B,) + state.population.shape[1:]), state

    def _tell(self, key, population, fitness, state: REAState, params: REAParams):
        pop = jnp.concatenate([state.population[self.batch:], population], axis=0)
        fit = jnp.concatenate([state.fitness[self.batch:], fitness], axis=0)
        return state.replace(population=pop, fitness=fit), {}
