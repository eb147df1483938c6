"""Population sharding over devices (DESIGN.md "Population evaluation").

A population is sharded along its leading axis over a 1-D device mesh whose axis is named
``'pop'``; everything else (the batch, the reference features, tables) is replicated. A
population whose size is not a multiple of the device count is padded with masked members
(copies of member 0) and the padding is dropped from the results. JAX's own multi-device (and,
after ``jax.distributed.initialize()``, multi-host) runtime does the rest.

This module imports nothing from jaxnas.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

AXIS = "pop"


def pop_mesh(devices=None) -> Mesh:
    """A 1-D mesh with axis ``'pop'`` over ``devices`` (default: all devices)."""
    devices = list(jax.devices() if devices is None else devices)
    return Mesh(np.asarray(devices), (AXIS,))


def padded_size(n: int, multiple: int) -> int:
    """The smallest multiple of ``multiple`` that is >= ``n`` (at least ``multiple``)."""
    if n < 1 or multiple < 1:
        raise ValueError(f"population size and device count must be >= 1, got {n}, {multiple}")
    return -(-n // multiple) * multiple


def pad_population(tree, multiple: int):
    """Pad every leaf's leading axis to a multiple of ``multiple`` with copies of member 0.

    Returns:
        (padded tree, mask) where mask is a bool (n_padded,) array, True for real members.
    """
    leaves = jax.tree_util.tree_leaves(tree)
    if not leaves:
        raise ValueError("cannot pad an empty population")
    n = leaves[0].shape[0]
    m = padded_size(n, multiple)

    def pad(a):
        if a.shape[0] != n:
            raise ValueError(f"population leaves disagree on the size: {a.shape[0]} vs {n}")
        if m == n:
            return a
        fill = jnp.broadcast_to(a[:1], (m - n,) + a.shape[1:])
        return jnp.concatenate([a, fill], axis=0)

    mask = np.arange(m) < n
    return jax.tree_util.tree_map(pad, tree), mask


def shard_population(tree, mesh: Mesh):
    """Place every leaf with its leading (population) axis sharded over ``'pop'``."""
    sharding = NamedSharding(mesh, P(AXIS))
    return jax.tree_util.tree_map(lambda a: jax.device_put(a, sharding), tree)


def replicate(tree, mesh: Mesh):
    """Place every leaf replicated on all devices of ``mesh``."""
    sharding = NamedSharding(mesh, P())
    return jax.tree_util.tree_map(lambda a: jax.device_put(a, sharding), tree)
