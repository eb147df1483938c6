"""Pareto dominance: non-dominated rank and crowding distance (NSGA-II, Deb et al. 2002).

Both follow pymoo 0.6 exactly, so pymoo (and moocore, which pymoo uses for ranking) is the
test oracle:

- :func:`non_dominated_rank` equals ``moocore.pareto_rank`` (0-based front index).
- :func:`crowding_distance` equals pymoo's ``calc_crowding_distance`` applied to each front
  separately, including its quirks: per-objective range normalisation, boundary points get
  ``inf``, an objective whose range is 0 (or infinite) contributes 0, fronts of at most two
  points are all ``inf``, the sum is divided by the number of objectives, and ties are
  broken by a stable sort.

All objectives are minimised. NaN is treated as ``+inf`` (DESIGN.md convention 2), so a
failed evaluation is dominated by every finite point. Everything here is pure ``jnp`` and
works under ``jit`` and ``vmap``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxnas.metrics import _sort


def clean_fitness(F: jax.Array) -> jax.Array:
    """NaN -> +inf (DESIGN.md convention 2); float32 for float inputs."""
    F = jnp.asarray(F)
    if not jnp.issubdtype(F.dtype, jnp.floating):
        F = F.astype(jnp.float32)
    return jnp.where(jnp.isnan(F), jnp.inf, F)


def dominates(a: jax.Array, b: jax.Array) -> jax.Array:
    """Pareto dominance of ``a`` over ``b`` (minimisation), broadcasting over leading axes.

    Args:
        a, b: ``(..., M)`` objective vectors.
    Returns:
        bool ``(...)``: ``a <= b`` everywhere and ``a < b`` somewhere.
    """
    return jnp.all(a <= b, axis=-1) & jnp.any(a < b, axis=-1)


def dominance_matrix(F: jax.Array) -> jax.Array:
    """``D[i, j]`` is True when point i dominates point j. ``F``: ``(N, M)``; returns ``(N, N)``."""
    return dominates(F[:, None, :], F[None, :, :])


def non_dominated_rank(F: jax.Array, n_stop: int | jax.Array | None = None) -> jax.Array:
    """0-based non-dominated front index of every point (front 0 is the Pareto front).

    Fronts are peeled one at a time: a point is in the next front when no remaining point
    dominates it. Each peel is one ``(N,) @ (N, N)`` product, so a call costs
    ``O(N^2 (M + F))`` for ``F`` fronts.

    Args:
        F: ``(N, M)`` objectives, minimised, any ``M >= 1``. NaN counts as ``+inf``.
        n_stop: stop peeling once at least this many points are ranked (NSGA-II survival
            needs only the first ``pop_size``); points left unranked get rank ``N``.
            ``None`` ranks everything.
    Returns:
        int32 ``(N,)`` ranks, equal to ``moocore.pareto_rank`` (and pymoo's fronts).
    """
    F = clean_fitness(F)
    n = F.shape[0]
    if n == 0:
        return jnp.zeros((0,), jnp.int32)
    dom = dominance_matrix(F).astype(jnp.float32)
    stop = n if n_stop is None else n_stop

    def cond(carry):
        _, r, remaining = carry
        return jnp.any(remaining) & (n - jnp.sum(remaining) < stop) & (r < n)

    def body(carry):
        rank, r, remaining = carry
        n_dominators = remaining.astype(jnp.float32) @ dom
        front = remaining & (n_dominators == 0)
        return jnp.where(front, r, rank), r + 1, remaining & ~front

    init = (jnp.full((n,), n, jnp.int32), jnp.int32(0), jnp.ones((n,), bool))
    rank, _, _ = jax.lax.while_loop(cond, body, init)
    return rank


def crowding_distance(F: jax.Array, rank: jax.Array | None = None) -> jax.Array:
    """NSGA-II crowding distance, computed within each front (pymoo's ``"cd"``).

    For every objective the points of one front are sorted (stable). A point's share is the
    gap between its two neighbours divided by the front's range in that objective; the
    first and last point of the front get ``inf``. An objective with zero (or infinite)
    range contributes 0, as in pymoo, where ``x / nan`` is replaced by 0. The shares are
    summed and divided by the number of objectives. A front of one or two points is all
    ``inf``.

    Args:
        F: ``(N, M)`` objectives (NaN counts as ``+inf``).
        rank: optional int ``(N,)`` front index (e.g. from :func:`non_dominated_rank`);
            ``None`` treats all points as one front.
    Returns:
        float32 ``(N,)``, larger means less crowded.
    """
    F = clean_fitness(F).astype(jnp.float32)
    n, m = F.shape
    if n == 0:
        return jnp.zeros((0,), jnp.float32)
    if rank is None:
        rank = jnp.zeros((n,), jnp.int32)
    rank = rank.astype(jnp.int32)
    nseg = n + 1  # ranks are in 0..n (n = unranked sentinel)

    if n <= _sort.SMALL:
        return _crowding_pairwise(F, rank)
    ones = jnp.ones((n,), jnp.int32)
    front_size = jax.ops.segment_sum(ones, rank, num_segments=nseg)[rank]

    def one_objective(f):
        order = jnp.lexsort((f, rank))  # stable: (rank, f, original index)
        fs, rs = f[order], rank[order]
        same_prev = jnp.concatenate([jnp.array([False]), rs[1:] == rs[:-1]])
        same_next = jnp.concatenate([rs[1:] == rs[:-1], jnp.array([False])])
        prev_f = jnp.concatenate([fs[:1], fs[:-1]])
        next_f = jnp.concatenate([fs[1:], fs[-1:]])
        fmax = jax.ops.segment_max(f, rank, num_segments=nseg)[rs]
        fmin = jax.ops.segment_min(f, rank, num_segments=nseg)[rs]
        share = _share(fs, jnp.where(same_prev, prev_f, -jnp.inf),
                       jnp.where(same_next, next_f, jnp.inf), fmax - fmin)
        return jnp.zeros((n,), jnp.float32).at[order].set(share)

    cd = jnp.sum(jax.vmap(one_objective, in_axes=1, out_axes=1)(F), axis=1) / m
    return jnp.where(front_size <= 2, jnp.inf, cd).astype(jnp.float32)


def _share(f, prev_f, next_f, norm):
    """One objective's crowding share, pymoo arithmetic: the boundary neighbours are
    -inf / +inf, a zero range becomes NaN, and every NaN quotient counts as 0."""
    norm = jnp.where(norm == 0, jnp.nan, norm)
    a, b = (f - prev_f) / norm, (next_f - f) / norm
    return jnp.where(jnp.isnan(a), 0.0, a) + jnp.where(jnp.isnan(b), 0.0, b)


def _crowding_pairwise(F, rank):
    """Crowding for small N without XLA's sort: each point's position in the stable
    (rank, f, index) order comes from counting (one ``(N, N)`` compare), the front's first
    and last positions from cumulative max/min scans. Same numbers as the sorted version."""
    n, m = F.shape
    ar = jnp.arange(n, dtype=jnp.int32)

    def one_objective(f):
        pos = _sort.positions(rank, f)
        order = jnp.zeros((n,), jnp.int32).at[pos].set(ar)
        fs, rs = f[order], rank[order]
        start = jnp.concatenate([jnp.array([True]), rs[1:] != rs[:-1]])
        end = jnp.concatenate([rs[1:] != rs[:-1], jnp.array([True])])
        # running max/min by associative scans (XLA:CPU lowers cummax to an O(N^2) window)
        first = jax.lax.associative_scan(jnp.maximum, jnp.where(start, ar, 0))
        last = jax.lax.associative_scan(jnp.minimum, jnp.where(end, ar, n - 1), reverse=True)
        prev_f = jnp.where(start, -jnp.inf, jnp.concatenate([fs[:1], fs[:-1]]))
        next_f = jnp.where(end, jnp.inf, jnp.concatenate([fs[1:], fs[-1:]]))
        share = _share(fs, prev_f, next_f, fs[last] - fs[first])
        return share[pos], (last - first + 1)[pos]

    shares, sizes = zip(*(one_objective(F[:, k]) for k in range(m)))
    cd = sum(shares) / m
    return jnp.where(sizes[0] <= 2, jnp.inf, cd).astype(jnp.float32)
