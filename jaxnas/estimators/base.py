"""The estimator protocol (DESIGN.md "Public contract").

An estimator scores architectures; **lower is better everywhere**::

    estimator.evaluate(key, archs) -> (P,) float32    # archs: (P, ...) genomes (NB201: int (P, 6))
    estimator.traceable: bool                         # usable inside jit/vmap?
    estimator.name: str
    estimator.oracle: bool                            # scores come from held-out test data

A search whose estimators are all traceable runs as one jitted function of a key (and vmaps
over seeds, devices and constraints). Otherwise the run loop is Python: ``ask`` (jitted) ->
``evaluate`` -> ``tell`` (jitted). :func:`fitness_fn` adapts an estimator to either path and
:class:`CachedEstimator` gives a non-traceable estimator an architecture-fitness cache, so
each architecture is trained once per run.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import jax
import jax.numpy as jnp
import numpy as np

from jaxnas.spaces import nb201


@runtime_checkable
class Estimator(Protocol):
    """Anything with ``traceable`` and ``evaluate(key, archs) -> (P,) float32``."""

    traceable: bool

    def evaluate(self, key: jax.Array, archs) -> jax.Array: ...


def is_oracle(estimator) -> bool:
    """Whether the estimator's scores are held-out test metrics (an optimiser benchmark)."""
    return bool(getattr(estimator, "oracle", False))


def estimator_name(estimator) -> str:
    return str(getattr(estimator, "name", type(estimator).__name__))


def check_estimator(estimator) -> None:
    """Raise ValueError if ``estimator`` does not follow the protocol."""
    if not hasattr(estimator, "evaluate") or not callable(estimator.evaluate):
        raise ValueError(f"{estimator!r} is not an estimator: it has no evaluate(key, archs)")
    if not isinstance(getattr(estimator, "traceable", None), bool):
        raise ValueError(f"{estimator!r} is not an estimator: it needs a bool `traceable` attribute")


def fitness_fn(estimator):
    """``(key, archs) -> (P,) float32`` for the drivers: the estimator itself when it is
    traceable, else a host function returning numpy (NaN kept; algorithms turn it into +inf)."""
    check_estimator(estimator)
    if estimator.traceable:
        return lambda key, archs: jnp.asarray(estimator.evaluate(key, archs), jnp.float32)

    def host(key, archs):
        return np.asarray(estimator.evaluate(key, np.asarray(archs)), np.float32)

    return host


class CachedEstimator:
    """Architecture-fitness cache around a (non-traceable) NB201 estimator.

    The first score of every architecture (keyed by its official NB201 index) is kept and
    returned for later queries, so a Python search loop trains each architecture once (the
    CMANAS "AF table"). Non-finite scores are not cached.

    Attributes:
        evaluations: architectures actually sent to the wrapped estimator.
        queries: architectures asked for (cache hits included).
    """

    traceable = False

    def __init__(self, estimator, cache: dict | None = None, on_update=None):
        """Args:
            estimator: the wrapped estimator.
            cache: scores known already, ``{official NB201 index: score}`` (e.g. those of an
                interrupted run: replaying the same searches then trains exactly the
                architectures the interrupted run had not reached, with the same keys).
            on_update: ``on_update(cache)`` after every call that trained something (to
                save the cache).
        """
        check_estimator(estimator)
        self.estimator = estimator
        self.name = estimator_name(estimator)
        self.oracle = is_oracle(estimator)
        self.cache: dict[int, float] = {int(k): float(v) for k, v in (cache or {}).items()}
        self.on_update = on_update
        self.evaluations = 0
        self.queries = 0

    def evaluate(self, key, archs) -> np.ndarray:
        archs = np.asarray(archs)
        idx = np.atleast_1d(nb201.index(archs))
        out = np.empty(len(idx), np.float32)
        todo = [i for i, a in enumerate(idx) if int(a) not in self.cache]
        # one call for the new ones, each architecture once even if repeated in the batch
        first = {}
        for i in todo:
            first.setdefault(int(idx[i]), i)
        if first:
            rows = list(first.values())
            scores = np.asarray(self.estimator.evaluate(key, archs[rows]), np.float32)
            self.evaluations += len(rows)
            fresh = dict(zip(first.keys(), scores))
        else:
            fresh = {}
        for i, a in enumerate(idx):
            a = int(a)
            out[i] = self.cache[a] if a in self.cache else fresh[a]
        for a, s in fresh.items():
            if np.isfinite(s):
                self.cache[a] = float(s)
        self.queries += len(idx)
        if fresh and self.on_update is not None:
            self.on_update(self.cache)
        return out
