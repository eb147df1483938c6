"""A non-finite fitness never reaches a front, an archive or a JSON file (issue: NaN kept off
every front)."""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxnas.algorithms import NSGA2, CostDiversity, clean, nb201_categorical, run_compiled
from jaxnas.spaces import nb201
from tests.conftest import require_data

_rs = np.random.default_rng(1)
ACC = jnp.asarray(_rs.random(nb201.NUM_ARCHS) * 100, jnp.float32)
LAT = jnp.asarray(1.0 + _rs.random(nb201.NUM_ARCHS) * 10, jnp.float32)


def _nan_cheapest(key, codes):
    """Every third architecture fails (NaN score) and has the lowest cost of all (0):
    without the rule it is non-dominated and sits on the front."""
    i = nb201.index_jax(codes)
    bad = i % 3 == 0
    return jnp.stack([jnp.where(bad, jnp.nan, 100.0 - ACC[i]), jnp.where(bad, 0.0, LAT[i])], 1)


def test_clean_sets_every_objective_of_a_failed_member_to_inf():
    f = jnp.array([[1.0, 2.0], [jnp.nan, 0.0], [3.0, -jnp.inf], [4.0, 5.0]])
    np.testing.assert_array_equal(np.asarray(clean(f)),
                                  [[1, 2], [np.inf, np.inf], [np.inf, np.inf], [4, 5]])
    np.testing.assert_array_equal(np.asarray(clean(jnp.array([1.0, jnp.nan, -jnp.inf]))),
                                  [1.0, np.inf, np.inf])


@pytest.mark.parametrize("extra", [None, "chi"])
def test_nan_members_never_on_the_final_front(extra):
    algo = NSGA2(nb201_categorical(), pop_size=20, num_objectives=2,
                 extra=CostDiversity(cost_column=1) if extra else None)
    params = algo.default_params()
    run = jax.jit(jax.vmap(lambda k: run_compiled(algo, params, _nan_cheapest, k, 8)[0]))
    st = run(jax.random.split(jax.random.key(0), 5))
    F, rank = np.asarray(st.fitness), np.asarray(st.rank)
    for s in range(5):
        front = F[s][rank[s] == 0]
        assert np.all(np.isfinite(front)), f"seed {s}: a failed member is on the front"


def test_results_and_fronts_are_strict_json(tmp_path):
    """A run whose estimator fails on some architectures writes strict JSON (no NaN or
    Infinity) and keeps the failures off pareto.json."""
    root = require_data("nb201_accuracy.csv.gz", "nb201_hw_costs.csv.gz")
    from jaxnas import methods, report, runs
    from jaxnas.bench import load_table
    from jaxnas.estimators import TableEstimator

    table = load_table(root)

    class Failing:
        traceable, oracle, name = True, True, "failing table"

        def __init__(self):
            self.inner = TableEstimator(table)

        def evaluate(self, key, archs):
            s = self.inner.evaluate(key, archs)
            return jnp.where(nb201.index_jax(archs) % 3 == 0, jnp.nan, s)

    r = methods.run("mo_hdnas", {"devices": ["pixel3"], "seeds": 2, "population": 12,
                                 "generations": 3}, table=table, estimator=Failing())
    runs.write_result(r, tmp_path, extra_files=lambda o: report.write_plots(
        runs.clean_json(r.to_json()), o))

    def refuse(token):
        raise ValueError(f"non-strict JSON constant {token}")

    for name in ("result.json", "pareto.json", "run.json"):
        json.loads((tmp_path / name).read_text(), parse_constant=refuse)
    for row in json.loads((tmp_path / "pareto.json").read_text()):
        assert row["arch_index"] % 3 != 0
