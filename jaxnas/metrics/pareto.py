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
    front_size = jax.ops.segment_sum(jnp.ones((n,), jnp.int32), rank, num_segments=nseg)

    def one_objective(f):
        # lexicographic (rank, f, original index) order from two stable sorts
        o1 = jnp.argsort(f, stable=True)
        order = o1[jnp.argsort(rank[o1], stable=True)]
        fs, rs = f[order], rank[order]
        same_prev = jnp.concatenate([jnp.array([False]), rs[1:] == rs[:-1]])
        same_next = jnp.concatenate([rs[1:] == rs[:-1], jnp.array([False])])
        prev_f = jnp.concatenate([fs[:1], fs[:-1]])
        next_f = jnp.concatenate([fs[1:], fs[-1:]])
        # pymoo pads with -inf / +inf, so boundary gaps are f - (-inf) and inf - f
        d_last = jnp.where(same_prev, fs - prev_f, fs + jnp.inf)
        d_next = jnp.where(same_next, next_f - fs, jnp.inf - fs)
        fmax = jax.ops.segment_max(f, rank, num_segments=nseg)
        fmin = jax.ops.segment_min(f, rank, num_segments=nseg)
        norm = (fmax - fmin)[rs]
        norm = jnp.where(norm == 0, jnp.nan, norm)
        a, b = d_last / norm, d_next / norm
        share = jnp.where(jnp.isnan(a), 0.0, a) + jnp.where(jnp.isnan(b), 0.0, b)
        return jnp.zeros((n,), jnp.float32).at[order].set(share)

    cd = jnp.sum(jax.vmap(one_objective, in_axes=1, out_axes=1)(F), axis=1) / m
    return jnp.where(front_size[rank] <= 2, jnp.inf, cd).astype(jnp.float32)
