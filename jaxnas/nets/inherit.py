"""Weight inheritance between supernets of different op sets (pEvoNAS, METHODS.md 3).

When pEvoNAS shrinks the ops of every edge, the next (smaller) supernet inherits the
matching weights of the previous one (the authors' ``utils.inherit_OSM_wts``): an op's
parameters are copied from the same cell, the same edge and the **same op name** (the op's
position on the edge may differ); every parameter outside the mixed ops (stem, cell
preprocessing, NB201 reduction blocks, ``lastact``, classifier) is copied directly. Both
supernets key their parameters by op name (``cells_<i>/edge_<e>/<op name>/...``,
:mod:`jaxnas.nets.supernet`, :mod:`jaxnas.nets.darts_supernet`), so "matching" is "the same
path in the parameter tree, with the same shape and dtype". Everything else keeps the new
tree's (fresh) value.

Only parameters are inherited: the authors copy ``named_parameters()``, so BatchNorm running
statistics (PyTorch buffers) and the optimiser state start fresh in every stage.
"""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp


def inherit_params(new: dict, old: dict) -> tuple[dict, list[str]]:
    """Copy every leaf of ``old`` whose path exists in ``new`` with the same shape and dtype.

    Args:
        new: the fresh parameter tree of the new supernet (nested dicts of arrays).
        old: the trained parameter tree of the previous supernet.
    Returns:
        ``(tree, copied)``: a new tree with the structure of ``new`` (``new`` itself is not
        modified), and the sorted ``'/'``-joined paths of the copied leaves.
    """
    copied: list[str] = []

    def walk(n: Any, o: Any, path: tuple[str, ...]):
        if isinstance(n, dict):
            return {k: walk(v, o.get(k) if isinstance(o, dict) else None, path + (k,))
                    for k, v in n.items()}
        if o is None or isinstance(o, dict):
            return n
        if tuple(jnp.shape(o)) != tuple(jnp.shape(n)) or jnp.asarray(o).dtype != jnp.asarray(n).dtype:
            return n
        copied.append("/".join(path))
        return jnp.asarray(o)

    tree = walk(dict(new), dict(old), ())
    return tree, sorted(copied)


def count_leaves(tree: Any) -> int:
    """Number of array leaves of a nested dict."""
    if isinstance(tree, dict):
        return sum(count_leaves(v) for v in tree.values())
    return 1
