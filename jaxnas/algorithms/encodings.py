"""Genome encodings: how a population is stored, sampled, decoded and compared.

A genome is one individual's array; a population stacks them on axis 0. The leading axis
of a genome is its *gene* axis (one gene per edge for NB201), which is what per-edge
crossover and per-edge mutation act on (METHODS.md 0.3).

- :class:`Categorical`: ``int32 (G,)`` codes in ``0..V-1``. NB201: ``Categorical(6, 5)``.
- :class:`Real`: float32 box ``[low, high]^shape``, decoded to architecture codes by
  ``decoder`` (NB201: ``Real((6, 5), decoder=nb201.decode_alpha)``, the per-edge argmax of
  EvNAS/CMANAS/NEvoNAS). ``decoder=None`` means the genome itself is the solution (ZDT).

These are frozen (static) classes: hashable, so jitted functions can close over them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import jax
import jax.numpy as jnp

from jaxnas.algorithms import _rng
from jaxnas.spaces import nb201


@dataclass(frozen=True)
class Categorical:
    """``num_genes`` categorical genes with ``num_values`` choices each (int32)."""

    num_genes: int = 6
    num_values: int = 5

    @property
    def shape(self) -> tuple[int, ...]:
        return (self.num_genes,)

    @property
    def low(self) -> float:
        return 0.0

    @property
    def high(self) -> float:
        return float(self.num_values - 1)

    def sample(self, key: jax.Array, n: int) -> jax.Array:
        """``n`` uniform genomes, int32 ``(n, G)``."""
        return jax.random.randint(key, (n, self.num_genes), 0, self.num_values, dtype=jnp.int32)

    def sample_genes(self, key: jax.Array, shape: tuple[int, ...]) -> jax.Array:
        """Fresh gene values, int32 ``shape`` (used by per-gene resampling)."""
        return _rng.randint(key, shape, self.num_values)

    def decode(self, x: jax.Array) -> jax.Array:
        return x

    @property
    def key_space(self) -> int:
        """Number of distinct genomes (``V ** G``)."""
        return self.num_values**self.num_genes

    def dedup_key(self, x: jax.Array) -> jax.Array | None:
        """One int32 per genome (base-``V`` number) when it fits, else ``None``."""
        if self.num_values**self.num_genes >= 2**31:
            return None
        pw = self.num_values ** jnp.arange(self.num_genes - 1, -1, -1, dtype=jnp.int32)
        return jnp.sum(x.astype(jnp.int32) * pw, axis=-1)

    def dedup_keys_t(self, xt: jax.Array) -> tuple[jax.Array, ...]:
        """Keys of genomes given transposed, ``(G, K)`` -> ``((K,),)``: the base-``V`` code."""
        pw = self.num_values ** jnp.arange(self.num_genes - 1, -1, -1, dtype=jnp.int32)
        return (jnp.sum(xt.astype(jnp.int32) * pw[:, None], axis=0),)

    def validate(self, x: jax.Array) -> jax.Array:
        """bool ``(n,)``: every gene is an integer in range."""
        return jnp.all((x >= 0) & (x < self.num_values), axis=-1)


@dataclass(frozen=True)
class Real:
    """Float32 genomes in ``[low, high]^shape``; ``decoder`` maps them to architectures."""

    shape: tuple[int, ...] = (6, 5)
    low: float = 0.0
    high: float = 1.0
    decoder: Callable[[jax.Array], jax.Array] | None = None

    def sample(self, key: jax.Array, n: int) -> jax.Array:
        return jax.random.uniform(key, (n, *self.shape), jnp.float32, self.low, self.high)

    def sample_genes(self, key: jax.Array, shape: tuple[int, ...]) -> jax.Array:
        """Fresh genes: ``shape + genome.shape[1:]`` uniform values (one α row per edge)."""
        return _rng.uniform(key, (*shape, *self.shape[1:]), self.low, self.high)

    def decode(self, x: jax.Array) -> jax.Array:
        return x if self.decoder is None else self.decoder(x)

    def dedup_key(self, x: jax.Array) -> None:
        return None

    def dedup_keys_t(self, xt: jax.Array) -> tuple[jax.Array, ...]:
        """Two uint32 hashes of each genome's bits, genomes given transposed ``(n, K)``."""
        n = xt.shape[0]
        u = jax.lax.bitcast_convert_type(xt.astype(jnp.float32), jnp.uint32)
        i = jnp.arange(n, dtype=jnp.uint32)[:, None]
        m1 = (i * jnp.uint32(0x9E3779B1) + jnp.uint32(0x85EBCA77)) | jnp.uint32(1)
        m2 = (i * jnp.uint32(0xC2B2AE3D) + jnp.uint32(0x27D4EB2F)) | jnp.uint32(1)
        return (jnp.sum(u * m1, axis=0, dtype=jnp.uint32),
                jnp.sum((u ^ (u >> 15)) * m2, axis=0, dtype=jnp.uint32))

    def validate(self, x: jax.Array) -> jax.Array:
        axes = tuple(range(1, x.ndim))
        return jnp.all((x >= self.low) & (x <= self.high) & jnp.isfinite(x), axis=axes)


def nb201_categorical() -> Categorical:
    """NB201 genome: 6 edges x 5 ops, codes in official op order."""
    return Categorical(nb201.NUM_EDGES, nb201.NUM_OPS)


def nb201_alpha() -> Real:
    """NB201 α in ``[0, 1]^{6x5}``, decoded by per-edge argmax (METHODS.md 0.2)."""
    return Real((nb201.NUM_EDGES, nb201.NUM_OPS), 0.0, 1.0, nb201.decode_alpha)


ENCODINGS = ("categorical", "alpha")


def get_encoding(name: str):
    """Registry: ``'categorical'`` or ``'alpha'`` (NB201)."""
    table = {"categorical": nb201_categorical, "alpha": nb201_alpha}
    if name not in table:
        raise ValueError(f"unknown genome encoding {name!r}; known: {', '.join(table)}")
    return table[name]()
