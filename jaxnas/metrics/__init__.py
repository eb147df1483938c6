"""Pure metric functions (no jaxnas imports): Pareto rank, crowding, hypervolume, Kendall tau.

All multi-objective functions take ``F`` of shape ``(N, M)`` and minimise every objective.
"""

from jaxnas.metrics.hypervolume import hypervolume
from jaxnas.metrics.pareto import (
    clean_fitness,
    crowding_distance,
    dominance_matrix,
    dominates,
    non_dominated_rank,
)
from jaxnas.metrics.rank_correlation import kendall_tau

__all__ = [
    "clean_fitness",
    "crowding_distance",
    "dominance_matrix",
    "dominates",
    "hypervolume",
    "kendall_tau",
    "non_dominated_rank",
]
