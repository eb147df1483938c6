"""Flax networks built from a search space's genome (DESIGN.md layout).

* :class:`TinyNetwork` -- the NAS-Bench-201 network for one architecture;
* :class:`MixedTinyNetwork` -- the same network with every op on every edge, mixed by weights;
* :mod:`jaxnas.nets.nb201_fn` -- the one functional TinyNetwork forward behind both, also run by
  the RMI estimator's strategies;
* :mod:`jaxnas.nets.ops` -- the re-expressed NB201 ops.
"""

from jaxnas.nets.nb201 import MixedTinyNetwork, TinyNetwork, single_path_params

__all__ = ["TinyNetwork", "MixedTinyNetwork", "single_path_params"]
