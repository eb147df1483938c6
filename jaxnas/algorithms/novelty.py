"""Population objectives for NSGA-II: NEvoNAS novelty and MO-HDNAS hardware-cost diversity.

Both are values that depend on the whole population, so NSGA-II appends them to the
fitness in ``tell`` (see :class:`~jaxnas.algorithms.nsga2.NSGA2`, ``extra=``). Interface::

    obj.num_columns                      # 1
    obj.default_params() -> dict         # numbers (k), changeable without recompiling
    obj.init(population, decoded) -> extra_state          # archive, or None
    obj(key, decoded, base_fitness, is_new, extra_state, params) -> (cols (N, 1), extra_state)

The returned column is **minimised**, so it is the negated novelty / diversity. Members
whose base fitness is not finite (failed evaluations, eliminated duplicates) are nobody's
neighbour, get value 0 and never enter an archive.

k nearest neighbours are found by repeated row minima (no sort), and ``k`` is a traced
number: a mean over the first ``min(k, available)`` neighbours (0 when there are none).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import jax
import jax.numpy as jnp

from jaxnas.algorithms.dedup import Archive


def _knn_mean(d: jax.Array, k) -> jax.Array:
    """Row-wise mean of the ``k`` smallest finite entries of ``d`` ``(N, K)``.

    No sort (XLA:CPU's sort of an (N, K) matrix cost tens of ms per generation): the rows
    are scanned for their next-smallest distinct value, taking all its copies at once, so
    the loop runs at most ``k`` times (``k`` may be traced).
    """
    n = d.shape[0]
    k = jnp.asarray(k, jnp.int32)

    def cond(c):
        _, remaining, lower, _ = c
        return jnp.any((remaining > 0) & (lower < jnp.inf))  # rows not exhausted

    def body(c):
        total, remaining, lower, taken = c
        m = jnp.min(jnp.where(d > lower[:, None], d, jnp.inf), axis=1)
        cnt = jnp.sum(d == m[:, None], axis=1)
        t = jnp.where(jnp.isfinite(m) & (remaining > 0), jnp.minimum(cnt, remaining), 0)
        return total + t * jnp.where(jnp.isfinite(m), m, 0.0), remaining - t, m, taken + t

    init = (jnp.zeros(n, d.dtype), jnp.full((n,), k), jnp.full((n,), -jnp.inf, d.dtype),
            jnp.zeros(n, jnp.int32))
    total, _, _, taken = jax.lax.while_loop(cond, body, init)
    return jnp.where(taken > 0, total / jnp.maximum(taken, 1), 0.0)


def jaccard_distance(a: jax.Array, b: jax.Array) -> jax.Array:
    """NEvoNAS S2 genotype distance (METHODS.md 4): positional op matches ``c`` over ``G``
    genes, ``sim = c / (2G - c)``, ``dist = 1 - sim``. ``a``: ``(N, G)``, ``b``: ``(K, G)``
    integer codes; returns ``(N, K)`` float32."""
    g = a.shape[-1]
    c = jnp.sum(a[:, None, :] == b[None, :, :], axis=-1).astype(jnp.float32)
    return 1.0 - c / (2.0 * g - c)


@dataclass(frozen=True)
class JaccardNovelty:
    """NEvoNAS novelty: mean Jaccard distance to the ``k`` nearest genotypes among the
    population (except self) plus an archive of every evaluated genotype. ``k`` = 5 for
    NB201 (S2), 3 for DARTS (S1). ``archive_size`` = 0 disables the archive; when full the
    oldest entries are overwritten (NEvoNAS' archive is unbounded: size it to
    ``pop_size * generations`` to match). ``distance``: ``(N, ...), (K, ...) -> (N, K)``
    between decoded genotypes: :func:`jaccard_distance` (positional, NB201 S2, the default)
    or :func:`jaxnas.spaces.darts.pairwise_distance` (per-node gene sets, DARTS S1)."""

    archive_size: int = 1000
    num_columns: int = 1
    distance: Callable = jaccard_distance

    def default_params(self):
        return {"k": jnp.int32(5)}

    def init(self, population, decoded):
        return Archive.create(self.archive_size, decoded.shape[1:], decoded.dtype)

    def __call__(self, key, decoded, base, is_new, archive: Archive, params):
        valid = jnp.all(jnp.isfinite(base), axis=1)
        n = decoded.shape[0]
        d = self.distance(decoded, decoded)
        d = jnp.where(valid[None, :] & ~jnp.eye(n, dtype=bool), d, jnp.inf)
        if self.archive_size:
            da = self.distance(decoded, archive.items)
            d = jnp.concatenate([d, jnp.where(archive.valid[None, :], da, jnp.inf)], axis=1)
        nov = jnp.where(valid, _knn_mean(d, params["k"]), 0.0)
        archive = archive.insert(decoded, is_new & valid)
        return -nov[:, None], archive


@dataclass(frozen=True)
class CostDiversity:
    """MO-HDNAS hardware-cost diversity chi (METHODS.md 6).

    **This is a reconstruction**: the paper's definition of chi was not available
    (METHODS.md marks it UNCONFIRMED). Default: for each member, the mean absolute
    difference in cost to its ``k`` = 5 nearest members by cost, with costs normalised by
    their range over the current population (parents + offspring at every survival step,
    so chi is recomputed there, with ``extra_update='merged'``). Chi is maximised (the
    column returned is ``-chi``).

    Alternatives: ``mode='nearest'`` uses the single nearest member only; ``archive_size``
    > 0 also counts the costs of previously evaluated architectures as neighbours
    (normalised by the same population range).

    Attributes:
        cost_column: which base objective is the hardware cost (1 in MO-HDNAS' [score, cost]).
    """

    cost_column: int = 1
    mode: str = "knn"
    archive_size: int = 0
    num_columns: int = 1

    def __post_init__(self):
        if self.mode not in ("knn", "nearest"):
            raise ValueError(f"chi mode must be 'knn' or 'nearest', got {self.mode!r}")

    def default_params(self):
        return {"k": jnp.int32(5)}

    def init(self, population, decoded):
        # archive rows: genotype codes and the cost, as float32
        return Archive.create(self.archive_size, (decoded.shape[1] + 1,), jnp.float32)

    def __call__(self, key, decoded, base, is_new, archive: Archive, params):
        valid = jnp.all(jnp.isfinite(base), axis=1)
        c = base[:, self.cost_column]
        cmin = jnp.min(jnp.where(valid, c, jnp.inf))
        cmax = jnp.max(jnp.where(valid, c, -jnp.inf))
        rng = cmax - cmin
        scale = jnp.where(rng > 0, rng, 1.0)
        n = c.shape[0]
        d = jnp.abs(c[:, None] - c[None, :]) / scale
        d = jnp.where(valid[None, :] & ~jnp.eye(n, dtype=bool), d, jnp.inf)
        if self.archive_size:
            ac = archive.items[:, -1]
            da = jnp.abs(c[:, None] - ac[None, :]) / scale
            d = jnp.concatenate([d, jnp.where(archive.valid[None, :], da, jnp.inf)], axis=1)
        k = 1 if self.mode == "nearest" else params["k"]
        chi = jnp.where(valid & (rng > 0), _knn_mean(d, k), 0.0)
        if self.archive_size:
            rows = jnp.concatenate([decoded.astype(jnp.float32), c[:, None]], axis=1)
            archive = archive.insert(rows, is_new & valid)
        return -chi[:, None], archive
