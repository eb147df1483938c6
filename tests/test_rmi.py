"""RMI estimator (METHODS.md 5.1): CKA against Kornblith's formulas, the loss, degenerate
architectures, NaN -> inf, strategy agreement and no compilation for a new population."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxnas.estimators import cka
from jaxnas.estimators.rmi import RMIEstimator, worst_score

SMALL = dict(C=4, N=1, steps=3, workers=1)


# ---------------------------------------------------------------------------- CKA


def _np_center(g, unbiased):
    g = g.copy()
    n = g.shape[0]
    if unbiased:
        np.fill_diagonal(g, 0)
        m = g.sum(0) / (n - 2)
        m -= m.sum() / (2 * (n - 1))
        g -= m[:, None] + m[None, :]
        np.fill_diagonal(g, 0)
    else:
        m = g.mean(0)
        m -= m.mean() / 2
        g -= m[:, None] + m[None, :]
    return g


def _np_cka(x, y, unbiased=False):
    """Kornblith et al.'s reference formulas (float64 Gram centring)."""
    x = x.reshape(len(x), -1).astype(np.float64)
    y = y.reshape(len(y), -1).astype(np.float64)
    kx, ky = _np_center(x @ x.T, unbiased), _np_center(y @ y.T, unbiased)
    return (kx * ky).sum() / (np.linalg.norm(kx) * np.linalg.norm(ky))


@pytest.mark.parametrize("debiased", [False, True])
def test_cka_matches_reference_formula(debiased):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(32, 4, 4, 5)).astype(np.float32) + 3.0  # offset: centring matters
    y = (x.reshape(32, -1) @ rng.normal(size=(80, 30))).astype(np.float32) + rng.normal(size=(32, 30)).astype(np.float32)
    ours = float(cka.linear_cka(x, y, debiased))
    assert ours == pytest.approx(_np_cka(x, y, debiased), rel=1e-4, abs=1e-5)
    assert float(cka.linear_cka(x, x)) == pytest.approx(1.0, abs=1e-5)


def test_cka_is_invariant_to_isotropic_scaling_and_rotation():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(16, 20)).astype(np.float32)
    y = rng.normal(size=(16, 12)).astype(np.float32)
    q, _ = np.linalg.qr(rng.normal(size=(20, 20)))
    a = float(cka.linear_cka(x, y))
    assert float(cka.linear_cka(3.7 * x @ q.astype(np.float32), y)) == pytest.approx(a, rel=1e-4)


def test_cka_of_zero_or_constant_features_is_zero_with_finite_gradient():
    y = np.random.default_rng(2).normal(size=(8, 10)).astype(np.float32)
    for x in (np.zeros((8, 10), np.float32), np.full((8, 10), 2.5, np.float32)):
        assert float(cka.linear_cka(x, y)) == 0.0
        g = jax.grad(lambda a: cka.linear_cka(a, y))(jnp.asarray(x))
        assert bool(jnp.all(jnp.isfinite(g)))


# ---------------------------------------------------------------------------- estimator


def test_worst_score_value():
    assert worst_score(10, 0.8) == pytest.approx(2.4 + 0.2 * math.log(10))


def test_evaluate_shapes_degenerate_and_determinism(rmi_batch):
    x, y, f = rmi_batch
    est = RMIEstimator(x, y, f, strategy="composed", **SMALL)
    assert est.traceable is False
    archs = np.array([[3, 2, 4, 1, 0, 3], [3, 3, 3, 0, 0, 0], [1, 1, 1, 1, 1, 1]])  # #1 disconnected
    s = est.evaluate(jax.random.PRNGKey(0), archs)
    assert s.shape == (3,) and s.dtype == np.float32
    assert s[1] == np.float32(worst_score())
    assert np.all(np.isfinite(s)) and np.all(s[[0, 2]] < s[1])
    np.testing.assert_array_equal(s, est.evaluate(jax.random.PRNGKey(0), archs))
    assert not np.array_equal(s[[0, 2]], est.evaluate(jax.random.PRNGKey(1), archs)[[0, 2]])
    # the score is the last forward of the trajectory
    t = est.trajectory(jax.random.PRNGKey(0), archs)
    assert t.shape == (3, SMALL["steps"] + 1)
    np.testing.assert_allclose(t[:, -1], s, rtol=1e-6)


def test_divergence_gives_inf_not_nan(rmi_batch):
    x, y, f = rmi_batch
    est = RMIEstimator(x, y, f, strategy="composed", C=4, N=1, steps=4, lr=1e30, workers=1)
    t = est.trajectory(jax.random.PRNGKey(0), np.array([[3, 3, 3, 3, 3, 3]]))
    assert np.isfinite(t[0, 0]) and np.all(np.isposinf(t[0, 1:]))  # diverged: NaN/inf -> +inf
    s = est.evaluate(jax.random.PRNGKey(0), np.array([[3, 3, 3, 3, 3, 3]]))
    assert np.isposinf(s[0])


def test_new_population_of_same_size_compiles_nothing(rmi_batch):
    """Nothing compiles per architecture: after construction (warm-up), evaluating fresh
    populations -- including ops/zero-node patterns never seen -- triggers no compilation."""
    x, y, f = rmi_batch
    est = RMIEstimator(x, y, f, strategy="composed", **SMALL)
    events = []

    def listener(name, *args, **kw):
        if name in ("/jax/core/compile/jaxpr_trace_duration", "/jax/core/compile/backend_compile_duration"):
            events.append(name)

    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        rng = np.random.default_rng(7)
        for i in range(3):
            archs = rng.integers(0, 5, size=(4, 6))
            est.evaluate(jax.random.PRNGKey(i), archs)
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)
    assert events == []


# one population for the 'mask' tests, so that they share one compilation
MASK_ARCHS = np.array([[3, 2, 4, 1, 0, 3], [3, 3, 3, 0, 0, 0], [0, 4, 2, 3, 1, 2]])  # #1 disconnected


def test_strategies_agree(rmi_batch):
    x, y, f = rmi_batch
    key = jax.random.PRNGKey(3)
    cfg = dict(C=4, N=1, steps=2)
    ref = RMIEstimator(x, y, f, strategy="composed", workers=1, **cfg).trajectory(key, MASK_ARCHS)
    for strategy in ("mask",):
        t = RMIEstimator(x, y, f, strategy=strategy, **cfg).trajectory(key, MASK_ARCHS)
        np.testing.assert_allclose(t, ref, rtol=2e-4, err_msg=strategy)


def test_mask_strategy_is_traceable(rmi_batch):
    x, y, f = rmi_batch
    est = RMIEstimator(x, y, f, strategy="mask", C=4, N=1, steps=2)
    assert est.traceable is True and est.name == "rmi" and est.oracle is False
    # traceable: it traces with abstract key and archs (so it runs inside jit/vmap)
    jaxpr = jax.make_jaxpr(est.evaluate)(jax.random.PRNGKey(3), jnp.asarray(MASK_ARCHS))
    assert jaxpr.out_avals[0].shape == (3,)
    eager = np.asarray(est.evaluate(jax.random.PRNGKey(3), MASK_ARCHS))
    assert eager[1] == np.float32(worst_score())
    composed = RMIEstimator(x, y, f, strategy="composed", C=4, N=1, steps=2, warmup=False, workers=1)
    np.testing.assert_allclose(eager, composed.evaluate(jax.random.PRNGKey(3), MASK_ARCHS), rtol=2e-4)


def test_worker_processes_give_the_same_scores(rmi_batch):
    """'composed' with a worker process (members trained in parallel, handed out one at a
    time) gives the scores of one process: member p always starts from fold_in(key, p)."""
    x, y, f = rmi_batch
    archs = np.array([[3, 2, 4, 1, 0, 3], [3, 3, 3, 0, 0, 0], [0, 4, 2, 3, 1, 2], [1, 2, 1, 2, 4, 4], [2, 2, 2, 2, 2, 2]])
    one = RMIEstimator(x, y, f, strategy="composed", C=4, N=1, steps=2, workers=1)
    with RMIEstimator(x, y, f, strategy="composed", C=4, N=1, steps=2, workers=2) as two:
        np.testing.assert_allclose(two.evaluate(jax.random.PRNGKey(9), archs),
                                   one.evaluate(jax.random.PRNGKey(9), archs), rtol=1e-6)
        assert len(two._workers.workers) == 1
    assert two._workers is None  # closed


def test_bad_inputs_are_clear_errors(rmi_batch):
    x, y, f = rmi_batch
    with pytest.raises(ValueError, match="strategy"):
        RMIEstimator(x, y, f, strategy="nope", warmup=False)
    with pytest.raises(ValueError, match="steps"):
        RMIEstimator(x, y, f, steps=-1, warmup=False)
    with pytest.raises(ValueError, match="3 reference"):
        RMIEstimator(x, y, f[:2], warmup=False)
    with pytest.raises(ValueError, match="workers"):
        RMIEstimator(x, y, f, strategy="mask", workers=2, warmup=False)
    est = RMIEstimator(x, y, f, strategy="composed", warmup=False, **SMALL)
    with pytest.raises(ValueError, match="shape"):
        est.evaluate(jax.random.PRNGKey(0), np.zeros((2, 5), int))
    with pytest.raises(ValueError, match="op codes"):
        est.evaluate(jax.random.PRNGKey(0), np.full((2, 6), 7))
