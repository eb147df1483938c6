"""Search algorithms on one evosax-style base class (DESIGN.md convention 2) and one driver.

``GA`` (EvNAS/pEvoNAS), ``NSGA2`` (pymoo semantics; NEvoNAS, MO-HDNAS), ``CMAES`` (an
adapter over evosax's CMA-ES; CMANAS) and ``RandomSearch`` subclass
:class:`~jaxnas.algorithms.base.Algorithm`; :mod:`.driver` runs any of them compiled
(``run_compiled``) or as a Python loop (``run_loop``). Operators (:mod:`.operators`), genome
encodings (:mod:`.encodings`) and population objectives (:mod:`.novelty`) compose with them.
"""

from jaxnas.algorithms import operators
from jaxnas.algorithms.base import Algorithm, State, clean
from jaxnas.algorithms.cmaes import CMAES, cmanas_popsize
from jaxnas.algorithms.dedup import Archive
from jaxnas.algorithms.driver import run_compiled, run_loop
from jaxnas.algorithms.encodings import (
    Categorical,
    Real,
    get_encoding,
    nb201_alpha,
    nb201_categorical,
)
from jaxnas.algorithms.ga import GA
from jaxnas.algorithms.novelty import CostDiversity, JaccardNovelty, jaccard_distance
from jaxnas.algorithms.nsga2 import NSGA2, nevonas_params
from jaxnas.algorithms.random import RandomSearch
from jaxnas.algorithms.rea import REA

ALGORITHMS = {"ga": GA, "nsga2": NSGA2, "cmaes": CMAES, "random": RandomSearch, "rea": REA}

__all__ = [
    "ALGORITHMS",
    "Algorithm",
    "Archive",
    "CMAES",
    "Categorical",
    "CostDiversity",
    "GA",
    "JaccardNovelty",
    "NSGA2",
    "RandomSearch",
    "REA",
    "Real",
    "State",
    "clean",
    "cmanas_popsize",
    "get_encoding",
    "jaccard_distance",
    "nb201_alpha",
    "nb201_categorical",
    "nevonas_params",
    "operators",
    "run_compiled",
    "run_loop",
]
