"""Duplicate filtering and a fixed-size archive, shared by the population algorithms.

- :func:`unique_mask` / :func:`unique_mask_keys` / :func:`pick_unique`: which candidates equal
  no existing genome and no earlier candidate (pymoo's duplicate elimination, fixed-shape).
- :class:`Archive`: a ring buffer of items (NEvoNAS' novelty archive, chi's cost archive).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct

from jaxnas.metrics import _sort


def _flat(x):
    return x.reshape(x.shape[0], -1)


_BITMAP_MAX = 1 << 22


def _first_occurrence(keys: tuple[jax.Array, ...], start: int) -> jax.Array:
    """bool ``(n - start,)``: row i (i >= start) has no equal-key row before it."""
    n = keys[0].shape[0]
    if n <= _sort.SMALL:
        eq = jnp.ones((n - start, n), bool)
        for k in keys:
            eq = eq & (k[start:, None] == k[None, :])
        earlier = jnp.arange(n)[None, :] < jnp.arange(start, n)[:, None]
        return ~jnp.any(eq & earlier, axis=1)
    order = jnp.lexsort(tuple(reversed(keys)))  # stable: equal keys keep index order
    same = jnp.ones((n - 1,), bool)
    for k in keys:
        sk = k[order]
        same = same & (sk[1:] == sk[:-1])
    first = jnp.concatenate([jnp.array([True]), ~same])
    return jnp.zeros((n,), bool).at[order].set(first)[start:]


def unique_mask(encoding, existing: jax.Array, candidates: jax.Array) -> jax.Array:
    """bool ``(C,)``: candidate i equals no ``existing`` genome and no earlier candidate.

    Categorical genomes compare one integer key each (NB201: the base-5 code). Float
    genomes compare two 32-bit hashes of their bits (pymoo's default elimination compares
    X exactly; two different rows colliding on both hashes, about 2^-64 per pair, would be
    taken for duplicates).
    """
    ke, kc = encoding.dedup_key(existing), encoding.dedup_key(candidates)
    p = existing.shape[0]
    if ke is not None:
        keys = jnp.concatenate([ke, kc])
        space = getattr(encoding, "key_space", None)
        if space is not None and space <= _BITMAP_MAX:
            # O(N): scatter-min every element's index into a table over the key space
            n = keys.shape[0]
            first = jnp.full((space,), n, jnp.int32).at[keys].min(jnp.arange(n, dtype=jnp.int32))
            return first[kc] == jnp.arange(p, n, dtype=jnp.int32)
        return _first_occurrence((keys,), p)
    allx = jnp.concatenate([_flat(existing), _flat(candidates)], axis=0)
    return _first_occurrence(_row_hashes(allx), p)


def _row_hashes(x):
    """Two uint32 multiplicative hashes of each row's bit pattern."""
    d = x.shape[1]
    u = jax.lax.bitcast_convert_type(x.astype(jnp.float32), jnp.uint32)
    i = jnp.arange(d, dtype=jnp.uint32)
    m1 = (i * jnp.uint32(0x9E3779B1) + jnp.uint32(0x85EBCA77)) | jnp.uint32(1)
    m2 = (i * jnp.uint32(0xC2B2AE3D) + jnp.uint32(0x27D4EB2F)) | jnp.uint32(1)
    h1 = jnp.sum(u * m1, axis=1, dtype=jnp.uint32)
    h2 = jnp.sum((u ^ (u >> 15)) * m2, axis=1, dtype=jnp.uint32)
    return h1, h2


def unique_mask_keys(keys_existing, keys_candidates, key_space=None) -> jax.Array:
    """:func:`unique_mask` on precomputed keys (tuples of ``(P,)`` / ``(C,)`` arrays)."""
    p = keys_existing[0].shape[0]
    keys = tuple(jnp.concatenate([a, b]) for a, b in zip(keys_existing, keys_candidates))
    if len(keys) == 1 and key_space is not None and key_space <= _BITMAP_MAX:
        n = keys[0].shape[0]
        first = jnp.full((key_space,), n, jnp.int32).at[keys[0]].min(jnp.arange(n, dtype=jnp.int32))
        return first[keys[0][p:]] == jnp.arange(p, n, dtype=jnp.int32)
    return _first_occurrence(keys, p)


def first_n(u: jax.Array, n: int):
    """Indices of the first ``n`` True entries of ``u`` (then the False ones), and validity."""
    n_unique = jnp.sum(u)
    cs = jax.lax.associative_scan(jnp.add, u.astype(jnp.int32))  # cumsum without reduce-window
    ar = jnp.arange(u.shape[0], dtype=jnp.int32)
    pos = jnp.where(u, cs - 1, n_unique + ar - cs)
    c = u.shape[0]
    idx = jnp.zeros((c,), jnp.int32).at[pos].set(jnp.arange(c, dtype=jnp.int32))[:n]
    return idx, u[idx]


def pick_unique(encoding, existing, candidates, n: int):
    """The first ``n`` unique candidates (pool order). Returns ``(chosen, valid)``:
    ``chosen`` ``(n, *genome)``; ``valid`` bool ``(n,)`` is False for slots that had to be
    filled with duplicates because the pool ran out."""
    idx, valid = first_n(unique_mask(encoding, existing, candidates), n)
    return candidates[idx], valid


# ---------------------------------------------------------------------------- archive


@struct.dataclass
class Archive:
    """Fixed-capacity set of items (ring buffer once full). ``items``: ``(A, *item)``."""

    items: jax.Array
    valid: jax.Array
    ptr: jax.Array

    @classmethod
    def create(cls, capacity: int, item_shape, dtype) -> "Archive":
        return cls(
            jnp.zeros((capacity, *item_shape), dtype),
            jnp.zeros((capacity,), bool),
            jnp.int32(0),
        )

    def insert(self, new: jax.Array, mask: jax.Array) -> "Archive":
        """Append rows of ``new`` where ``mask`` is set and the row is not already stored
        (nor repeated earlier in ``new``). When full, the oldest entries are overwritten."""
        cap = self.items.shape[0]
        if cap == 0:
            return self
        fn, fa = _flat(new), _flat(self.items)
        in_arch = jnp.any(jnp.all(fn[:, None] == fa[None], -1) & self.valid[None], axis=1)
        c = fn.shape[0]
        same = jnp.all(fn[:, None] == fn[None], -1) & jnp.tril(jnp.ones((c, c), bool), k=-1)
        rep = jnp.any(same & mask[None, :], axis=1)
        add = mask & ~in_arch & ~rep
        slot = (self.ptr + jnp.cumsum(add) - 1) % cap
        slot = jnp.where(add, slot, cap)  # out of range: dropped
        items = self.items.at[slot].set(new, mode="drop")
        valid = self.valid.at[slot].set(True, mode="drop")
        return Archive(items, valid, (self.ptr + jnp.sum(add)) % cap)
