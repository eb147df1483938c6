"""Search algorithms with one evosax-style ask/tell interface (DESIGN.md convention 2).

``GA`` (EvNAS/pEvoNAS), ``NSGA2`` (pymoo semantics; NEvoNAS, MO-HDNAS) and ``CMAES`` (an
adapter over evosax's CMA-ES; CMANAS). Operators (:mod:`.operators`), genome encodings
(:mod:`.encodings`) and population objectives (:mod:`.novelty`) compose with them.
"""

from jaxnas.algorithms import operators
from jaxnas.algorithms.base import Archive, run_compiled, run_loop
from jaxnas.algorithms.cmaes import CMAES, cmanas_popsize
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

ALGORITHMS = {"ga": GA, "nsga2": NSGA2, "cmaes": CMAES}

__all__ = [
    "ALGORITHMS",
    "Archive",
    "CMAES",
    "Categorical",
    "CostDiversity",
    "GA",
    "JaccardNovelty",
    "NSGA2",
    "Real",
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
