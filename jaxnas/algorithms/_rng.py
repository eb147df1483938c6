"""Fast bulk random numbers for the variation operators.

Threefry (JAX's default PRNG) costs about 15-20 ns per number on XLA:CPU, which made it the
largest single cost of a compiled NSGA-II generation. The operators instead expand two
32-bit words of their key with a counter-based hash: a Weyl sequence passed twice through
MurmurHash3's 32-bit finaliser (``fmix32``), about 1 ns per number. The two words are the
key's raw data (``jax.random.key_data``), so no threefry call is made per operator either.
It is deterministic in the key (same key, same numbers, under ``jit`` and ``vmap`` alike),
uniform (tested with a chi-square test), and meant for operator decisions, not
cryptography. Initial populations and CMA-ES sampling still use ``jax.random``.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

_U = jnp.uint32


def _fmix32(x):
    x = x ^ (x >> 16)
    x = x * _U(0x85EBCA6B)
    x = x ^ (x >> 13)
    x = x * _U(0xC2B2AE35)
    return x ^ (x >> 16)


def seed(key: jax.Array) -> jax.Array:
    """Two uint32 words from a JAX key: its raw key data (no threefry call; keys made by
    ``jax.random.split``/``fold_in`` already hold pseudo-random words). A uint32 ``(2,)``
    array is taken as an already derived seed and returned unchanged."""
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        key = jax.random.key_data(key)
    words = jnp.asarray(key).reshape(-1).astype(_U)
    if words.shape[0] == 2:
        return words
    a = _fmix32(jnp.bitwise_xor.reduce(words[0::2] * _U(0x9E3779B9)) + _U(1))
    b = _fmix32(jnp.bitwise_xor.reduce(words[1::2] * _U(0x85EBCA6B)) + _U(2))
    return jnp.stack([a, b])


def split(key: jax.Array, n: int) -> jax.Array:
    """``n`` independent seeds ``(n, 2)`` uint32 from one key or seed, by hashing
    (no further threefry calls); each row can be passed wherever a key is taken here."""
    s = seed(key)
    i = jnp.arange(n, dtype=_U)
    a = _fmix32(s[0] ^ _fmix32(i * _U(0x9E3779B9) + _U(0x7F4A7C15)))
    b = _fmix32(s[1] + _fmix32(i * _U(0x85EBCA6B) + _U(0x165667B1)))
    return jnp.stack([a, b], axis=1)


def bits(key: jax.Array, shape: tuple[int, ...]) -> jax.Array:
    """uint32 array of ``shape``, from a key or a seed."""
    s = seed(key)
    n = math.prod(shape)
    ctr = jnp.arange(n, dtype=_U)
    x = _fmix32(ctr * _U(0x9E3779B9) + s[0])
    x = _fmix32(x ^ s[1])
    return x.reshape(shape)


def materialized_uniform(key: jax.Array, shape: tuple[int, ...]) -> jax.Array:
    """Like :func:`uniform`, but produced by a reduction, which XLA does not fuse into its
    consumers. Use it for keys that feed ``(N, N)`` comparisons: there an elementwise
    hash would be recomputed for every pair (measured 2x slower)."""
    b = bits(key, (*shape, 2)) & jnp.array([0xFFF000, 0x000FFF], _U)  # 12 + 12 bits
    u = jax.lax.reduce(b, _U(0), jax.lax.bitwise_or, (len(shape),))
    return u.astype(jnp.float32) * jnp.float32(1.0 / (1 << 24))


def uniform(key: jax.Array, shape: tuple[int, ...], minval=0.0, maxval=1.0) -> jax.Array:
    """float32 uniform on ``[minval, maxval)`` with 24-bit resolution."""
    u = (bits(key, shape) >> 8).astype(jnp.float32) * jnp.float32(1.0 / (1 << 24))
    return minval + (maxval - minval) * u


def randint(key: jax.Array, shape: tuple[int, ...], n: int) -> jax.Array:
    """int32 uniform on ``0..n-1`` (bias below ``n / 2**24``)."""
    return jnp.minimum(jnp.floor(uniform(key, shape) * n), n - 1).astype(jnp.int32)
