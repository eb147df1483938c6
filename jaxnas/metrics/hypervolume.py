"""Exact hypervolume (minimisation) for 2 and 3 objectives in ``jnp``; moocore above that.

The hypervolume of a set is the Lebesgue measure of the region dominated by the set and
bounded by the reference point. Only points strictly better than the reference in every
objective contribute (as in moocore). NaN and ``inf`` rows contribute nothing.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


def _hv2d(F: jax.Array, ref: jax.Array, mask: jax.Array) -> jax.Array:
    """2-D sweep: sort by f0, the staircase height is the running minimum of f1."""
    keep = mask & jnp.all(F < ref, axis=-1)
    F = jnp.where(keep[:, None], F, ref)  # excluded points sit on the reference: zero area
    o1 = jnp.argsort(F[:, 1], stable=True)
    order = o1[jnp.argsort(F[o1, 0], stable=True)]
    x, y = F[order, 0], F[order, 1]
    width = jnp.concatenate([x[1:], ref[:1]]) - x
    height = ref[1] - jax.lax.cummin(y)
    return jnp.sum(width * height)


def _hv3d(F: jax.Array, ref: jax.Array, mask: jax.Array) -> jax.Array:
    """3-D: slices along f2, each slice the 2-D volume of the points below it. O(N^2 log N)."""
    keep = mask & jnp.all(F < ref, axis=-1)
    z = jnp.where(keep, F[:, 2], ref[2])
    zs = jnp.sort(z)
    depth = jnp.concatenate([zs[1:], ref[2:]]) - zs  # slab i spans [zs[i], zs[i+1])

    def slab(zi):
        return _hv2d(F[:, :2], ref[:2], keep & (z <= zi))

    areas = jax.vmap(slab)(zs)
    return jnp.sum(areas * depth)


def hypervolume(F, ref, mask=None):
    """Exact hypervolume of ``F`` with respect to ``ref`` (all objectives minimised).

    Args:
        F: ``(N, M)`` objectives.
        ref: ``(M,)`` reference point.
        mask: optional bool ``(N,)``; False rows are ignored (2 and 3 objectives only).
    Returns:
        float32 scalar for ``M`` in {2, 3} (jittable, vmappable); for ``M >= 4`` or ``M == 1``
        a Python float from ``moocore.hypervolume`` (host only, not traceable).
    """
    m = np.shape(F)[-1]
    if m in (2, 3):
        F = jnp.asarray(F, jnp.float32)
        F = jnp.where(jnp.isnan(F), jnp.inf, F)
        ref = jnp.asarray(ref, jnp.float32)
        if ref.shape != (m,):
            raise ValueError(f"hypervolume reference point must have shape ({m},), got {ref.shape}")
        if mask is None:
            mask = jnp.ones(F.shape[0], bool)
        if F.shape[0] == 0:
            return jnp.float32(0.0)
        fn = _hv2d if m == 2 else _hv3d
        return fn(F, ref, jnp.asarray(mask, bool))
    if isinstance(F, jax.core.Tracer):
        raise ValueError(f"hypervolume for {m} objectives uses moocore and cannot be traced")
    import moocore

    F = np.asarray(F, np.float64)
    if mask is not None:
        F = F[np.asarray(mask, bool)]
    F = F[np.all(np.isfinite(F), axis=1)]
    if F.shape[0] == 0:
        return 0.0
    return float(moocore.hypervolume(F, ref=np.asarray(ref, np.float64)))
