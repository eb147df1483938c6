"""CMANAS (METHODS.md 2): an adapter over evosax 0.3's ``CMA_ES``, not a CMA-ES of our own.

- The search distribution lives on the flattened continuous α (NB201: 6x5 = 30 numbers);
  each sample is decoded to an architecture (per-edge argmax for NB201).
- CMANAS settings: ``lambda = 4 + floor(3 ln n)`` (14 for NB201, 20 for DARTS' 224),
  ``sigma0 = 1.3``, mean 0. evosax's defaults give the rest of the Hansen (2016)
  tutorial update (weights with negative part, c1, c_mu, c_sigma, d_sigma, c_c, h_sigma).
- evosax minimises, as jaxnas does, so fitness is passed through unchanged (CMANAS
  maximised accuracy; our estimators already return lower-is-better scores).
- **Architecture-fitness cache** (CMANAS' AF table): every decoded architecture gets an
  integer id (``cache_key``, e.g. ``nb201.index_jax``) in ``[0, cache_size)``. The first
  finite fitness seen for an id is stored, and later samples of the same architecture get
  that stored value in ``tell`` (so each genotype is evaluated once, even for a stochastic
  estimator). ``state.cache_seen`` tells a Python driver which ids it may skip.
  Non-finite fitness is never cached.
- The result is the architecture decoded from the mean after the last generation.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any, Callable

import jax
import jax.numpy as jnp
from evosax.algorithms import CMA_ES
from flax import struct

from jaxnas.algorithms.base import Algorithm, State, initial_fields


@struct.dataclass
class CMAESParams:
    es: Any  # evosax CMA_ES Params (std_init = sigma0)
    mean_init: jax.Array  # (n,)


@struct.dataclass
class CMAESState(State):
    es: Any  # evosax CMA_ES State
    cache_fitness: jax.Array  # (cache_size,) float32
    cache_seen: jax.Array  # (cache_size,) bool


def cmanas_popsize(num_dims: int) -> int:
    """``4 + floor(3 ln n)``: 14 for NB201 (n=30), 20 for DARTS (n=224)."""
    return 4 + int(math.floor(3 * math.log(num_dims)))


@dataclass(frozen=True)
class CMAES(Algorithm):
    """Static: ``num_dims``, ``pop_size`` (None: CMANAS' lambda), ``decoder`` (flat α ->
    architecture), ``cache_key`` (architecture -> int id) and ``cache_size`` (0: no cache)."""

    num_dims: int = 30
    pop_size: int | None = None
    decoder: Callable | None = None
    cache_key: Callable | None = None
    cache_size: int = 0

    def __post_init__(self):
        if self.pop_size is None:
            object.__setattr__(self, "pop_size", cmanas_popsize(self.num_dims))
        if self.cache_size and self.cache_key is None:
            raise ValueError("CMAES cache_size > 0 needs a cache_key function")

    @functools.cached_property
    def es(self) -> CMA_ES:
        # evosax computes some constants in jnp at construction: keep them concrete even
        # when first touched inside a trace
        with jax.ensure_compile_time_eval():
            return CMA_ES(self.pop_size, jnp.zeros((self.num_dims,), jnp.float32))

    def default_params(self, sigma0: float = 1.3) -> CMAESParams:
        es_params = self.es.default_params.replace(std_init=jnp.float32(sigma0))
        return CMAESParams(es_params, jnp.zeros((self.num_dims,), jnp.float32))

    def decode(self, population):
        return population if self.decoder is None else self.decoder(population)

    population_based = False

    def _init(self, key, params: CMAESParams) -> CMAESState:
        es_state = self.es.init(key, params.mean_init, params.es)
        size = max(self.cache_size, 1)
        return CMAESState(
            **initial_fields((self.num_dims,), jnp.float32),
            es=es_state,
            cache_fitness=jnp.full((size,), jnp.inf, jnp.float32),
            cache_seen=jnp.zeros((size,), bool),
        )

    def _ask(self, key, state: CMAESState, params: CMAESParams):
        pop, es_state = self.es.ask(key, state.es, params.es)
        return pop, state.replace(es=es_state)

    def _ids_first(self, population, n):
        ids = self.cache_key(self.decode(population))
        first = jnp.full((self.cache_size,), n, jnp.int32).at[ids].min(jnp.arange(n, dtype=jnp.int32))
        return ids, first

    def shape(self, population, fitness, state: CMAESState, params: CMAESParams):
        """The architecture-fitness cache: an architecture already scored gets its stored
        value, and repeats within a batch get their first occurrence's value."""
        if not self.cache_size:
            return fitness
        ids, first = self._ids_first(population, fitness.shape[0])
        return jnp.where(state.cache_seen[ids], state.cache_fitness[ids], fitness[first[ids]])

    def _tell(self, key, population, fitness, state: CMAESState, params: CMAESParams):
        cache_f, seen = state.cache_fitness, state.cache_seen
        if self.cache_size:  # store new finite scores
            ids, _ = self._ids_first(population, fitness.shape[0])
            store = ~seen[ids] & jnp.isfinite(fitness)
            slot = jnp.where(store, ids, self.cache_size)
            cache_f = cache_f.at[slot].set(fitness, mode="drop")
            seen = seen.at[slot].set(True, mode="drop")
        es_state, _ = self.es.tell(key, population, fitness, state.es, params.es)
        metrics = {"std": es_state.std,
                   "num_distinct": jnp.sum(seen) if self.cache_size else jnp.int32(0)}
        return state.replace(es=es_state, cache_fitness=cache_f, cache_seen=seen), metrics

    def mean(self, state: CMAESState) -> jax.Array:
        return state.es.mean

    def result(self, state: CMAESState) -> jax.Array:
        """Architecture decoded from the mean (the CMANAS output)."""
        return self.decode(state.es.mean[None])[0]
