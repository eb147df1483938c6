"""The paper pipelines, one module per method, composed from the layers above.

``methods.run(name, config, table=None, estimator=None) -> Result`` is the public entry
(DESIGN.md): ``config`` is a mapping (e.g. a parsed TOML file) or the method's ``Config``.

- ``'hw_evrsnas'`` (:mod:`.hw_evrsnas`): GA on score + distance-to-threshold penalty, one
  run per (device, constraint).
- ``'mo_hdnas'`` (:mod:`.mo_hdnas`): NSGA-II on score, cost and cost diversity; one run
  answers every constraint.

Both run over the grid of every HW-NAS-Bench device in the table x seeds (x constraints),
with random search at the same budget as a baseline (:mod:`.grid`).
"""

from __future__ import annotations

from jaxnas.methods.grid import METHOD_MODULES, Result, method_module, run_grid

METHODS = tuple(METHOD_MODULES)


def run(name: str, config=None, table=None, estimator=None, progress: bool = False,
        fitness_cache: dict | None = None, on_fitness=None) -> Result:
    """Run method ``name`` with ``config`` over its results grid and return the Result.

    ``fitness_cache`` / ``on_fitness``: see :func:`jaxnas.methods.grid.run_grid` (resuming
    a run whose estimator is not traceable, e.g. RMI on CPU).

    Raises:
        ValueError: an unknown method name or bad config (one line).
    """
    return run_grid(name, config or {}, table=table, estimator=estimator, progress=progress,
                    fitness_cache=fitness_cache, on_fitness=on_fitness)


__all__ = ["METHODS", "Result", "method_module", "run", "run_grid"]
