"""Hardware-cost models: analytic FLOPs/params, table-backed device costs, and a registry.

``flops_params(codes, ...)`` is the analytic NB201 cost (:mod:`jaxnas.costs.analytic`);
``TableCost(table, device, metric, dataset)`` looks a HW-NAS-Bench cost up in a loaded
benchmark table (:mod:`jaxnas.costs.table`). Every cost object is a callable
``cost(codes (..., 6)) -> jnp float32 (...)`` with ``name``, ``unit``, ``values``
(all 15,625 architectures in official order) and ``traceable``.

Registry (DESIGN.md convention 5): ``make_cost('pixel3_latency', table, dataset='cifar10')``,
``make_cost('flops', dataset='cifar100')``; names are ``flops``, ``params``,
``<device>_latency``, ``<device>_energy`` for the six HW-NAS-Bench devices,
``eyeriss_arithmetic_intensity``, and any column of the given table.
"""

from __future__ import annotations

from collections.abc import Callable

from jaxnas.bench.table import HW_DEVICES, HW_PICKLE_METRICS
from jaxnas.costs.analytic import CONVENTIONS, AnalyticCost, cost_model, flops_params
from jaxnas.costs.table import TABLE_METRICS, MissingCostError, TableCost, available_costs

#: name -> factory(table, dataset, **kwargs) -> cost
COSTS: dict[str, Callable] = {}


def register_cost(name: str, factory: Callable) -> None:
    """Register ``factory(table=None, dataset='cifar10', **kwargs) -> cost`` under ``name``."""
    COSTS[name] = factory


def _table_factory(device: str, metric: str) -> Callable:
    def factory(table=None, dataset: str = "cifar10", **kwargs):
        if table is None:
            raise ValueError(
                f"cost '{device}_{metric}' is a benchmark-table look-up: pass table=load_table(...)"
            )
        return TableCost(table, device, metric, dataset)

    return factory


register_cost("flops", lambda table=None, dataset="cifar10", **kw: AnalyticCost("flops", dataset, **kw))
register_cost("params", lambda table=None, dataset="cifar10", **kw: AnalyticCost("params", dataset, **kw))
for _m in HW_PICKLE_METRICS:
    _dev, _, _metric = _m.partition("_")
    register_cost(_m, _table_factory(_dev, _metric))
for _dev in HW_DEVICES:  # edgetpu/raspi4/pixel3 have no energy in HW-NAS-Bench, still addressable
    for _metric in ("latency", "energy"):
        COSTS.setdefault(f"{_dev}_{_metric}", _table_factory(_dev, _metric))


def make_cost(name: str, table=None, dataset: str = "cifar10", **kwargs):
    """Build a registered cost by name; a name that is not registered but is a column of
    ``table`` gives ``TableCost.from_column(table, name)``.

    Raises:
        ValueError: an unknown name (the message lists the registered names).
    """
    if name in COSTS:
        return COSTS[name](table=table, dataset=dataset, **kwargs)
    if table is not None and table.has(name):
        return TableCost.from_column(table, name)
    raise ValueError(
        f"unknown cost {name!r}; registered: {', '.join(sorted(COSTS))}"
        + ("" if table is None else " (or any column of the table)")
    )


__all__ = [
    "AnalyticCost",
    "CONVENTIONS",
    "COSTS",
    "MissingCostError",
    "TABLE_METRICS",
    "TableCost",
    "available_costs",
    "cost_model",
    "flops_params",
    "make_cost",
    "register_cost",
]
