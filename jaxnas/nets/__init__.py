"""Flax networks built from a search space's genome (DESIGN.md layout).

* :class:`TinyNetwork` -- the NAS-Bench-201 network for one architecture;
* :class:`MixedTinyNetwork` -- the same network with every op on every edge, mixed by weights;
* :mod:`jaxnas.nets.nb201_fn` -- the one functional TinyNetwork forward behind both, also run by
  the RMI estimator's strategies;
* :class:`NB201Supernet` / :class:`DartsSearchNetwork` -- weight-sharing supernets with alpha as
  an input; training and population evaluation in :mod:`jaxnas.nets.supernet_train`;
* :mod:`jaxnas.nets.ops` -- the re-expressed NB201 ops shared by both and by the RMI estimator.
"""

from jaxnas.nets.darts_supernet import DartsSearchNetwork
from jaxnas.nets.nb201 import MixedTinyNetwork, TinyNetwork, single_path_params
from jaxnas.nets.supernet import NB201Supernet

__all__ = ["TinyNetwork", "MixedTinyNetwork", "single_path_params", "NB201Supernet",
           "DartsSearchNetwork"]
