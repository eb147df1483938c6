"""HW-EvRSNAS and MO-HDNAS over the shared tables, and the TableEstimator.

The oracle is the shared NB201 / HW-NAS-Bench data itself: found architectures' accuracy
and cost must be the table's, the best feasible accuracy must be the table's brute-force
optimum, and random search must spend the same budget.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import require_data

DATA = ("nb201_accuracy.csv.gz", "nb201_hw_costs.csv.gz")
SMALL = {"seeds": 2, "population": 12, "generations": 4, "devices": ["pixel3", "fpga"]}


@pytest.fixture(scope="module")
def table():
    from jaxnas.bench import load_table

    return load_table(require_data(*DATA))


@pytest.fixture(scope="module")
def hw_result(table):
    from jaxnas import methods

    return methods.run("hw_evrsnas", SMALL, table=table)


@pytest.fixture(scope="module")
def mo_result(table):
    from jaxnas import methods

    return methods.run("mo_hdnas", SMALL, table=table)


# ---------------------------------------------------------------------------- estimator


def test_table_estimator_scores(table):
    import jax.numpy as jnp

    from jaxnas.estimators import TableEstimator
    from jaxnas.spaces import nb201

    acc = TableEstimator(table, "cifar10_test_acc")
    lat = TableEstimator(table, "cifar10_pixel3_latency")
    assert acc.traceable and acc.oracle and "oracle" in acc.name
    assert not lat.oracle and lat.kind == "cost"
    codes = nb201.from_index(np.array([0, 6111, 10]))
    np.testing.assert_allclose(np.asarray(acc.evaluate(None, jnp.asarray(codes))),
                               100 - table.numpy("cifar10_test_acc")[[0, 6111, 10]], rtol=1e-6)
    np.testing.assert_allclose(np.asarray(lat.evaluate(None, jnp.asarray(codes))),
                               table.numpy("cifar10_pixel3_latency")[[0, 6111, 10]], rtol=1e-6)
    # disconnected cells get a finite, worst-possible accuracy score
    dis = nb201.ARCHS[~np.asarray(nb201.is_connected(nb201.ARCHS))]
    s = np.asarray(acc.evaluate(None, jnp.asarray(dis)))
    assert np.all(np.isfinite(s)) and s.min() > 80
    with pytest.raises(KeyError):
        TableEstimator(table, "cifar10_nonexistent_acc")


def test_cached_estimator_evaluates_each_architecture_once(table):
    from jaxnas.estimators import CachedEstimator, TableEstimator
    from jaxnas.spaces import nb201

    calls = []

    class Slow:
        traceable = False

        def evaluate(self, key, archs):
            calls.append(len(archs))
            return np.asarray(TableEstimator(table).evaluate(key, archs))

    est = CachedEstimator(Slow())
    codes = nb201.from_index(np.array([1, 2, 1, 3, 2]))
    a = est.evaluate(None, codes)
    b = est.evaluate(None, nb201.from_index(np.array([3, 4])))
    assert calls == [3, 1] and est.evaluations == 4 and est.queries == 7
    assert a[0] == a[2] and b[0] == a[3]


# ---------------------------------------------------------------------------- grid results


def _check_rows(result, table, method, per_run_constraints):
    from jaxnas.spaces import nb201

    acc = table.numpy("cifar10_test_acc").astype(np.float64)
    rows = [r for r in result.rows if r["method"] == method]
    rand = [r for r in result.rows if r["method"] == "random"]
    assert len(rows) == len(rand) == 2 * 2 * 3  # devices x seeds x constraints
    evals = 12 * (4 + 1)
    for r in rows + rand:
        assert r["evaluations"] == evals and 1 <= r["distinct"] <= evals
        cost = table.numpy(f"cifar10_{r['device']}_latency").astype(np.float64)
        # the best feasible accuracy is the table's brute-force optimum under T
        assert r["best_feasible_accuracy"] == pytest.approx(np.max(acc[cost <= r["T"]]), abs=1e-4)
        assert r["T"] == pytest.approx(np.quantile(cost, r["constraint_q"]), rel=1e-5)
        if r["arch_index"] >= 0:
            assert nb201.index(r["arch"]) == r["arch_index"]
            assert r["accuracy"] == pytest.approx(acc[r["arch_index"]], abs=1e-4)
            assert r["cost"] == pytest.approx(cost[r["arch_index"]], rel=1e-5)
            assert r["feasible"] == (r["cost"] <= r["T"] + 1e-9)
        if r["feasible"]:
            assert r["regret"] == pytest.approx(r["best_feasible_accuracy"] - r["accuracy"], abs=1e-6)
            assert r["regret"] >= -1e-6
    for r in rand:
        assert r["feasible"]  # 60 uniform samples always contain a feasible one at q >= 0.25
    if per_run_constraints:  # one run covers all constraints: same run, same budget counts
        for d in ("pixel3", "fpga"):
            for s in range(2):
                runs = {(r["distinct"], r["seconds"]) for r in rows if r["device"] == d and r["seed"] == s}
                assert len(runs) == 1


def test_hw_evrsnas_grid(hw_result, table):
    assert hw_result.meta["oracle"] and "ORACLE" in hw_result.meta["note"]
    assert hw_result.meta["devices"] == ["pixel3", "fpga"]
    _check_rows(hw_result, table, "hw_evrsnas", per_run_constraints=False)
    assert len(hw_result.summary) == 2 * 3 * 2  # (method, device, q)


def test_mo_hdnas_grid(mo_result, table):
    assert mo_result.meta["oracle"]
    _check_rows(mo_result, table, "mo_hdnas", per_run_constraints=True)
    rows = [r for r in mo_result.rows if r["method"] == "mo_hdnas"]
    assert any(r["feasible"] for r in rows)


def test_all_devices_of_the_table(table):
    from jaxnas.methods.common import ProblemConfig, build_problem

    prob = build_problem(ProblemConfig(), table=table)
    assert set(prob.devices) == {"fpga", "eyeriss", "pixel3", "raspi4"}
    assert set(prob.missing_devices) == {"edgegpu", "edgetpu"}
    assert prob.constraints.shape == (4, 3)
    assert np.all(np.diff(prob.constraints, axis=1) > 0)


def test_python_loop_path_equals_compiled_path(table, hw_result):
    """A non-traceable estimator (the RMI path) runs as ask -> evaluate -> tell loops and
    must find the same architectures as the compiled grid."""
    from jaxnas import methods
    from jaxnas.estimators import TableEstimator

    class HostOnly:
        traceable = False
        oracle = True
        name = "host table"

        def __init__(self):
            self.inner = TableEstimator(table)

        def evaluate(self, key, archs):
            return np.asarray(self.inner.evaluate(key, archs))

    cfg = dict(SMALL, seeds=1, devices=["fpga"])
    loop = methods.run("hw_evrsnas", cfg, table=table, estimator=HostOnly())
    assert "Python loop" in loop.meta["timing"]["mode"]
    compiled = [r for r in hw_result.rows if r["device"] == "fpga" and r["seed"] == 0]
    for a, b in zip(loop.rows, compiled):
        assert (a["method"], a["constraint_q"]) == (b["method"], b["constraint_q"])
        assert a["arch_index"] == b["arch_index"]


def test_score_normalisation_makes_lambda_scale_free(table):
    """J uses scores normalised over the first population, so an affine rescaling of the
    estimator leaves the whole search unchanged."""
    import jax
    import jax.numpy as jnp

    from jaxnas.estimators import TableEstimator
    from jaxnas.methods import hw_evrsnas
    from jaxnas.methods.common import drive
    from jaxnas.spaces import nb201

    cfg = hw_evrsnas.Config(population=12, generations=4)
    search = hw_evrsnas.make_search(cfg)
    params = search.default_params(cfg)
    est = TableEstimator(table)
    data = {"cost": table.column("cifar10_fpga_latency"), "T": jnp.float32(3.7)}
    f = jax.jit(lambda k, a, b: drive(search, lambda kk, c: a * est.evaluate(kk, c) + b,
                                      k, data, params, True).ga.population)
    p1 = f(jax.random.key(0), 1.0, 0.0)
    p2 = f(jax.random.key(0), 7.0, -3.0)
    np.testing.assert_array_equal(np.asarray(nb201.index_jax(p1)), np.asarray(nb201.index_jax(p2)))


def test_penalties():
    import jax.numpy as jnp

    from jaxnas.methods.hw_evrsnas import penalty

    c = jnp.array([1.0, 2.0, 3.0])
    np.testing.assert_allclose(np.asarray(penalty(c, 2.0)), [0.5, 0.0, 0.5])
    np.testing.assert_allclose(np.asarray(penalty(c, 2.0, "hinge")), [0.0, 0.0, 0.5])


def test_config_errors(table):
    from jaxnas import methods

    with pytest.raises(ValueError, match="unknown key"):
        methods.run("mo_hdnas", {"populaton": 10}, table=table)
    with pytest.raises(ValueError, match="integer"):
        methods.run("mo_hdnas", {"population": "ten"}, table=table)
    with pytest.raises(ValueError, match="unknown method"):
        methods.run("evolution", {}, table=table)
    with pytest.raises(ValueError, match="device"):
        methods.run("hw_evrsnas", {"devices": ["toaster"]}, table=table)
    with pytest.raises(ValueError, match="penalty"):
        methods.run("hw_evrsnas", {"penalty": "square"}, table=table)
    with pytest.raises(ValueError, match="score_column"):
        methods.run("hw_evrsnas", {"score_column": "cifar10_valid_acc"}, table=table)
    with pytest.raises(ValueError, match="estimator"):
        methods.run("hw_evrsnas", {"estimator": "supernet"}, table=table)


def test_shipped_configs_parse():
    import tomllib
    from pathlib import Path

    from jaxnas.methods import method_module
    from jaxnas.methods.common import parse_config

    root = Path(__file__).resolve().parents[1] / "configs"
    for name in ("mo_hdnas", "hw_evrsnas"):
        cfg = tomllib.loads((root / f"{name}_table.toml").read_text())
        assert cfg.pop("method") == name
        mod = method_module(name)
        c = parse_config(mod.Config, cfg)
        c.validate()
        assert c.seeds == 10 and c.constraint_quantiles == (0.25, 0.5, 0.75)
        rmi = tomllib.loads((root / f"{name}_rmi.toml").read_text())
        assert rmi.pop("method") == name
        c = parse_config(mod.Config, rmi)
        c.validate()  # also parses the [rmi] table
        assert c.estimator == "rmi" and c.rmi["steps"] == 150 and c.rmi["C"] == 16


def test_rmi_estimator_runs_through_the_python_loop(table, rmi_batch):
    """The RMI estimator (not traceable on CPU) drives MO-HDNAS through ask -> evaluate ->
    tell loops; found architectures are reported with the table's accuracy, not as oracle."""
    from jaxnas import methods
    from jaxnas.estimators import RMIEstimator

    xb, yb, feats = rmi_batch
    est = RMIEstimator(np.asarray(xb), np.asarray(yb), feats, strategy="composed", C=4, N=1, steps=3)
    assert not est.traceable
    r = methods.run("mo_hdnas", {"devices": ["fpga"], "seeds": 1, "population": 4,
                                 "generations": 1, "genome": "categorical"},
                    table=table, estimator=est)
    assert not r.meta["oracle"] and "Python loop" in r.meta["timing"]["mode"]
    acc = table.numpy("cifar10_test_acc")
    for row in r.rows:
        assert row["evaluations"] == 8 and np.isfinite(row["score"])
        assert row["accuracy"] == pytest.approx(acc[row["arch_index"]], abs=1e-4)
