"""Rank correlation between two scorings of the same architectures (e.g. proxy vs accuracy)."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def kendall_tau(x: jax.Array, y: jax.Array) -> jax.Array:
    """Kendall's tau-b (ties in either variable adjust the denominator), as ``scipy.stats.kendalltau``.

    O(N^2) pairwise, jittable.

    Args:
        x, y: ``(N,)`` scores.
    Returns:
        float32 scalar in [-1, 1]; NaN if any input is NaN or either variable is constant.
    """
    x = jnp.asarray(x, jnp.float32)
    y = jnp.asarray(y, jnp.float32)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"kendall_tau needs two (N,) arrays of equal length, got {x.shape}, {y.shape}")
    n = x.shape[0]
    sx = jnp.sign(x[:, None] - x[None, :])
    sy = jnp.sign(y[:, None] - y[None, :])
    upper = jnp.triu(jnp.ones((n, n), bool), k=1)
    s = jnp.sum(jnp.where(upper, sx * sy, 0.0))
    n0 = n * (n - 1) / 2
    tx = jnp.sum(jnp.where(upper, sx == 0, False))  # pairs tied in x
    ty = jnp.sum(jnp.where(upper, sy == 0, False))
    tau = s / jnp.sqrt((n0 - tx) * (n0 - ty))
    bad = jnp.any(jnp.isnan(x)) | jnp.any(jnp.isnan(y))
    return jnp.where(bad, jnp.nan, tau)
