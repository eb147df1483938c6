"""Metrics against outside oracles: moocore (rank, hypervolume), pymoo (crowding), scipy (tau)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxnas.metrics import crowding_distance, hypervolume, kendall_tau, non_dominated_rank

moocore = pytest.importorskip("moocore")
pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")
pymoo_metrics = pytest.importorskip("pymoo.operators.survival.rank_and_crowding.metrics")


def _cases(seed: int, m: int):
    """Random and degenerate objective sets, NaN allowed (oracles get NaN as +inf)."""
    rng = np.random.default_rng(seed)
    out = []
    for n in (2, 3, 9, 9, 33, 33):  # few distinct sizes keep the compile count down
        out.append(rng.random((n, m)))
        out.append(rng.integers(0, 4, size=(n, m)).astype(float))  # many ties
        x = rng.random((n, m))
        x[rng.random(n) < 0.3] = x[0]  # duplicates
        out.append(x)
        x = rng.integers(0, 3, size=(n, m)).astype(float)
        rows = rng.random(n) < 0.25
        x[rows] = np.nan  # failed evaluations
        x[rng.random(n) < 0.1, 0] = np.inf
        out.append(x)
    out += [
        np.zeros((1, m)),  # single point
        np.ones((7, m)),  # all identical
        np.full((3, m), np.nan),
        np.array([np.arange(6.0)] * m).T,  # a chain
        np.array([np.arange(6.0)] + [np.arange(6.0)[::-1]] * (m - 1)).T,  # one front
    ]
    return out


def _oracle_fronts(Fi):
    # moocore's 3-objective pareto_rank mis-ranks rows containing inf (it uses inf as a
    # sentinel), so +inf goes to the oracle as a huge finite value: same order, same fronts.
    return moocore.pareto_rank(np.where(np.isinf(Fi), 1e300, Fi)) if len(Fi) else np.zeros(0, int)


def _oracle_crowding(Fi, ranks):
    """pymoo's crowding (NSGA2's default 'cd', no duplicate filtering) within each front."""
    cd = np.zeros(len(Fi))
    fun = pymoo_metrics.get_crowding_function("cd")
    for r in np.unique(ranks):
        idx = np.where(ranks == r)[0]
        cd[idx] = fun.do(Fi[idx])
    return cd


@pytest.mark.parametrize("m", [1, 2, 3, 4])
def test_rank_equals_moocore(m):
    rank = jax.jit(non_dominated_rank)
    for F in _cases(m, m):
        Fi = np.where(np.isnan(F), np.inf, F)
        np.testing.assert_array_equal(np.asarray(rank(jnp.asarray(F))), _oracle_fronts(Fi), err_msg=str(F))


def test_rank_early_stop_ranks_at_least_n_stop():
    rng = np.random.default_rng(0)
    F = rng.random((60, 2))
    full = np.asarray(non_dominated_rank(F))
    part = np.asarray(non_dominated_rank(F, n_stop=20))
    ranked = part < 60
    assert ranked.sum() >= 20
    np.testing.assert_array_equal(part[ranked], full[ranked])
    assert np.all(full[~ranked] > part[ranked].max())


@pytest.mark.parametrize("m", [2, 3, 4])
def test_crowding_equals_pymoo(m):
    cd_fn = jax.jit(crowding_distance)
    for F in _cases(10 + m, m):
        Fi = np.where(np.isnan(F), np.inf, F)
        ranks = _oracle_fronts(Fi)
        ours = np.asarray(cd_fn(jnp.asarray(F, jnp.float32), jnp.asarray(ranks)))
        ref = _oracle_crowding(Fi.astype(np.float32).astype(np.float64), ranks)
        np.testing.assert_array_equal(np.isinf(ours), np.isinf(ref), err_msg=str(F))
        fin = np.isfinite(ref)
        np.testing.assert_allclose(ours[fin], ref[fin], rtol=1e-5, atol=1e-6, err_msg=str(F))


def test_crowding_single_front_default():
    F = np.array([[0.0, 3.0], [1.0, 2.0], [2.0, 1.5], [3.0, 0.0]])
    ref = pymoo_metrics.calc_crowding_distance(F)
    np.testing.assert_allclose(np.asarray(crowding_distance(F)), ref, rtol=1e-6)


@pytest.mark.parametrize("m", [2, 3])
def test_hypervolume_equals_moocore(m):
    hv = jax.jit(hypervolume)
    ref = np.full(m, 1.1)
    for F in _cases(20 + m, m):
        F = np.where(np.isnan(F), np.nan, F / max(1.0, np.nanmax(np.where(np.isinf(F), 0, F))))
        keep = np.all(np.isfinite(F), axis=1)
        expect = moocore.hypervolume(F[keep], ref=ref) if keep.any() else 0.0
        got = float(hv(jnp.asarray(F), jnp.asarray(ref)))
        assert got == pytest.approx(expect, rel=1e-5, abs=1e-6), F


def test_hypervolume_mask_and_outside_points():
    F = jnp.array([[0.5, 0.5], [0.2, 2.0], [2.0, 0.1], [0.1, 0.9]])
    ref = jnp.array([1.0, 1.0])
    expect = moocore.hypervolume(np.array([[0.5, 0.5], [0.1, 0.9]]), ref=[1.0, 1.0])
    assert float(hypervolume(F, ref)) == pytest.approx(expect)
    mask = jnp.array([True, True, True, False])
    assert float(hypervolume(F, ref, mask)) == pytest.approx(0.25)


def test_hypervolume_many_objectives_uses_moocore():
    rng = np.random.default_rng(3)
    F = rng.random((30, 5))
    assert hypervolume(F, np.ones(5)) == pytest.approx(moocore.hypervolume(F, ref=np.ones(5)))
    with pytest.raises(ValueError):
        jax.jit(lambda f: hypervolume(f, jnp.ones(5)))(jnp.asarray(F))


def test_kendall_tau_equals_scipy():
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(4)
    for _ in range(10):
        n = int(rng.integers(3, 60))
        x = rng.integers(0, 6, n).astype(float)
        y = x + rng.normal(0, 2, n).round()
        expect = stats.kendalltau(x, y).statistic
        assert float(kendall_tau(x, y)) == pytest.approx(expect, rel=1e-5, abs=1e-6)
    assert np.isnan(float(kendall_tau(np.array([1.0, np.nan, 2.0]), np.array([1.0, 2.0, 3.0]))))
