"""The one driver: run an algorithm against a fitness function, compiled or in Python.

Both functions have the same signature, the same key schedule and the same callbacks, so a
traceable fitness gives identical results either way:

- :func:`run_compiled`: the whole search as one traceable function (``lax.scan`` over
  generations); wrap it in ``jit`` and ``vmap`` it over seeds, devices and constraints.
- :func:`run_loop`: ``ask`` (jitted) -> ``fitness_fn`` (any Python) -> ``tell`` (jitted),
  for estimators that are not traceable (RMI's CPU path, a supernet trained between
  generations).

A population-based algorithm starts from ``algo.sample`` evaluated once (generation 0 of the
budget: ``pop_size * (num_generations + 1)`` evaluations in all); a distribution-based one
from ``algo.init(key, params)``. ``on_generation(gen, state, metrics)`` is called after the
initial population (``gen = -1``, metrics ``{}``) and after every tell (``run_loop`` only:
inside a compiled scan there is no Python to call). Progress bars, caches and checkpoints
hang on it; no printing happens here.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

Callback = Callable[[int, object, dict], None]


def _keys(key, num_generations: int):
    k_init, k_eval, k_loop = jax.random.split(key, 3)
    return k_init, k_eval, jax.random.split(k_loop, num_generations)


def run_compiled(algo, params, fitness_fn: Callable, key: jax.Array, num_generations: int,
                 state=None, start: int = 0):
    """Whole search as one traceable function.

    Args:
        fitness_fn: ``(key, architectures) -> (P,)`` or ``(P, M)``, traceable.
        state, start: continue a saved state from generation ``start`` (the initial
            population is not evaluated again).
    Returns:
        ``(state, metrics)`` with metrics stacked over the generations run.
    """
    k_init, k_eval, keys = _keys(key, num_generations)
    if state is None:
        state = _initial(algo, params, fitness_fn, k_init, k_eval)

    def step(state, k):
        ka, ke, kt = jax.random.split(k, 3)
        pop, state = algo.ask(ka, state, params)
        return algo.tell(kt, pop, fitness_fn(ke, algo.decode(pop)), state, params)

    return jax.lax.scan(step, state, keys[start:])


def run_loop(algo, params, fitness_fn: Callable, key: jax.Array, num_generations: int,
             state=None, start: int = 0, on_generation: Callback | None = None):
    """The same search as :func:`run_compiled`, as a Python loop.

    ``fitness_fn`` may be any Python (its result is converted to a float32 array);
    ``on_generation(gen, state, metrics)`` runs after the initial population (gen -1) and
    after each tell (gen 0..num_generations-1). ``state`` / ``start``: resume from a saved
    state (the callback then starts at ``start``).
    """
    ask, tell = _jitted(algo)
    k_init, k_eval, keys = _keys(key, num_generations)
    if state is None:
        state = _initial(algo, params, _as_array(fitness_fn), k_init, k_eval, jit=True)
        if on_generation is not None:
            on_generation(-1, state, {})
    history = []
    for g in range(start, num_generations):
        ka, ke, kt = jax.random.split(keys[g], 3)
        pop, state = ask(ka, state, params)
        fit = jnp.asarray(np.asarray(fitness_fn(ke, algo.decode(pop)), np.float32))
        state, metrics = tell(kt, pop, fit, state, params)
        history.append(metrics)
        if on_generation is not None:
            on_generation(g, state, metrics)
    stacked = jax.tree.map(lambda *xs: jnp.stack(xs), *history) if history else {}
    return state, stacked


def _as_array(fitness_fn):
    return lambda k, x: jnp.asarray(np.asarray(fitness_fn(k, x), np.float32))


def _initial(algo, params, fitness_fn, k_init, k_eval, jit: bool = False):
    wrap = jax.jit if jit else (lambda f: f)
    if not algo.population_based:
        return wrap(algo.init)(k_init, params)
    pop0 = wrap(algo.sample)(k_init)
    f0 = fitness_fn(k_eval, algo.decode(pop0))
    return wrap(algo.init)(k_init, pop0, f0, params)


_JIT_CACHE: dict = {}


def _jitted(algo):
    """jitted ``ask`` / ``tell`` per algorithm object (frozen dataclasses hash by value), so a
    second run of an equal algorithm reuses the compiled functions."""
    try:
        hit = _JIT_CACHE.get(algo)
    except TypeError:  # unhashable algorithm
        return jax.jit(algo.ask), jax.jit(algo.tell)
    if hit is None:
        hit = _JIT_CACHE[algo] = (jax.jit(algo.ask), jax.jit(algo.tell))
    return hit
