"""Weight-sharing supernets (issue 11): shapes, determinism, decoding (METHODS.md 0.1/0.2),
round-robin assignment, population evaluation (one compile per population size), the
estimator, save/restore. Tiny configs (C=4, N=1, 8x8 images)."""

from __future__ import annotations

import math
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxnas.estimators import SupernetEstimator, check_estimator
from jaxnas.nets import nb201 as nb201_net
from jaxnas.nets import supernet_train as st
from jaxnas.nets.darts_supernet import DartsSearchNetwork
from jaxnas.nets.supernet import NB201Supernet, mixing_weights, op_mask
from jaxnas.spaces import darts, nb201

HW = (8, 8, 3)


def _data(n=8, seed=1):
    k = jax.random.PRNGKey(seed)
    return jax.random.normal(k, (n, *HW)), jnp.arange(n, dtype=jnp.int32) % 10


def _setup(model=None, key=0):
    model = model or NB201Supernet(C=4, N=1)
    opt = st.make_optimizer(2, 4)
    return model, opt, st.init_supernet(jax.random.PRNGKey(key), model, opt, HW)


def _shapes(tree):
    return jax.tree_util.tree_map(lambda a: tuple(a.shape), tree)


# ---------------------------------------------------------------------------- network


def test_shapes_and_parameter_paths_match_the_mixed_tiny_network():
    model, _, state = _setup()
    x, _ = _data()
    logits = model.apply({"params": state.weights, "batch_stats": state.batch_stats}, x,
                         jnp.zeros((6, 5)), train=False)
    assert logits.shape == (8, 10) and logits.dtype == jnp.float32
    # same keys and shapes as MixedTinyNetwork(affine=False): weights can move between them
    assert _shapes(state.weights) == nb201_net.param_shapes(4, 1, 10, affine=False)
    edge = state.batch_stats["cells_0"]["edge_3"]
    assert set(edge) == {"nor_conv_1x1", "nor_conv_3x3"} and edge["nor_conv_3x3"]["var"].shape == (4,)


def test_init_is_pytorch_default_and_seeded():
    _, _, a = _setup(key=0)
    _, _, b = _setup(key=0)
    _, _, c = _setup(key=1)
    k = a.weights["cells_0"]["edge_0"]["nor_conv_3x3"]["kernel"]
    assert float(jnp.max(jnp.abs(k))) <= 1 / math.sqrt(4 * 9) + 1e-7
    assert np.all(np.asarray(a.weights["stem_bn"]["scale"]) == 1)
    jax.tree_util.tree_map(np.testing.assert_array_equal, a.weights, b.weights)
    assert not np.array_equal(k, c.weights["cells_0"]["edge_0"]["nor_conv_3x3"]["kernel"])


def test_training_is_deterministic_by_seed():
    def run(seed):
        model, opt, state = _setup(key=seed)
        step = st.make_train_step(model, opt)
        batches = [_data(seed=s) for s in range(3)]
        state, losses = st.train_epoch(jax.random.PRNGKey(seed), step, state, batches,
                                       alpha_shape=model.alpha_shape)
        return np.asarray(losses), state

    l0, s0 = run(0)
    l0b, s0b = run(0)
    l1, _ = run(1)
    np.testing.assert_array_equal(l0, l0b)
    jax.tree_util.tree_map(np.testing.assert_array_equal, s0.weights, s0b.weights)
    assert not np.array_equal(l0, l1) and l0.shape == (3,) and np.all(np.isfinite(l0))


def test_running_stats_off_and_op_subsets():
    x, _ = _data()
    m = NB201Supernet(C=4, N=1, track_running_stats=False)
    _, _, state = _setup(m)
    assert "edge_0" not in state.batch_stats.get("cells_0", {})  # no cell running stats
    ops = (("nor_conv_3x3", "skip_connect"),) * 3 + (("none",), ("avg_pool_3x3",), ("nor_conv_1x1",))
    m = NB201Supernet(C=4, N=1, edge_ops=ops)
    _, _, state = _setup(m)
    cell = state.weights["cells_0"]
    assert set(cell) == {"edge_0", "edge_1", "edge_2", "edge_5"}
    assert set(cell["edge_0"]) == {"nor_conv_3x3"} and set(cell["edge_5"]) == {"nor_conv_1x1"}
    v = {"params": state.weights, "batch_stats": state.batch_stats}
    a = jax.random.normal(jax.random.PRNGKey(0), (6, 5))
    b = a.at[0, 2].add(5.0).at[4, 0].add(3.0)  # entries of ops those edges do not carry
    np.testing.assert_array_equal(m.apply(v, x, a, train=False), m.apply(v, x, b, train=False))
    w = mixing_weights(a, op_mask(ops))
    np.testing.assert_allclose(np.asarray(w).sum(-1), 1.0, rtol=1e-6)
    assert float(w[3, 0]) == 1.0 and float(w[0, 2]) == 0.0


# ---------------------------------------------------------------------------- decoding


def test_nb201_decoding_is_per_edge_argmax_one_hot_then_softmax():
    alpha = np.array([[0.9, 0.1, 0.2, 0.3, 0.4],  # none wins: allowed in NB201
                      [0.1, 0.2, 0.3, 0.8, 0.4],
                      [0.1, 0.7, 0.3, 0.2, 0.4],
                      [0.5, 0.2, 0.6, 0.3, 0.4],
                      [0.1, 0.2, 0.3, 0.4, 0.9],
                      [0.3, 0.2, 0.1, 0.0, 0.25]], np.float32)
    hat = nb201.discretize(alpha)
    np.testing.assert_array_equal(np.argmax(hat, -1), [0, 3, 1, 2, 4, 0])
    np.testing.assert_array_equal(hat.sum(-1), 1.0)
    np.testing.assert_array_equal(nb201.discretize(np.array([0, 3, 1, 2, 4, 0])), hat)
    w = jax.nn.softmax(hat, -1)  # what the supernet mixes with
    np.testing.assert_allclose(w.max(-1), math.e / (math.e + 4), rtol=1e-6)
    mask = np.ones((6, 5), bool)
    mask[0, 0] = False  # a shrunk edge: the argmax runs over the ops it carries
    assert int(np.argmax(nb201.discretize(alpha, mask)[0])) == 4


def test_darts_decoding_is_discretize_then_softmax():
    rng = np.random.default_rng(0)
    alpha = rng.uniform(size=(2, 14, 8)).astype(np.float32)
    alpha[0, 0] = [9, 1, 1, 1, 1, 1, 1, 5]  # argmax 'none' -> second best (dil_conv_5x5)
    est_decode = SupernetEstimator.decode.__get__(_FakeDarts())
    hat = np.asarray(est_decode(alpha[None]))[0]
    assert hat.shape == (2, 14, 8) and hat.sum() == 16  # 2 x 8 chosen (edge, op) pairs
    assert hat[0, 0, 7] == 1 and hat[:, :, 0].sum() == 0  # never 'none'
    for t in range(2):
        for n in range(4):  # 2 incoming edges per node
            assert hat[t, darts.NODE_OFFSETS[n]:darts.NODE_OFFSETS[n + 1]].sum() == 2
    w = np.asarray(jax.nn.softmax(hat, -1))
    chosen = hat.sum(-1) == 1
    np.testing.assert_allclose(w[chosen].max(-1), math.e / (math.e + 7), rtol=1e-6)
    np.testing.assert_allclose(w[~chosen], 1 / 8, rtol=1e-6)  # unselected edges: uniform
    genes = darts.genotype(alpha)
    np.testing.assert_array_equal(est_decode(np.asarray(genes)[None])[0], hat)


class _FakeDarts:
    space = "darts"
    decode_members = True

    class model:
        alpha_shape = darts.ALPHA_SHAPE


# ---------------------------------------------------------------------------- training loop


def test_round_robin_assignment():
    np.testing.assert_array_equal(st.round_robin(7, 3), [0, 1, 2, 0, 1, 2, 0])
    np.testing.assert_array_equal(st.round_robin(4, 10), [0, 1, 2, 3])
    seen = []

    def fake_step(w, o, s, alpha, batch):
        seen.append(int(alpha[0, 0]))
        return w, o, s, jnp.float32(0)

    alphas = jnp.arange(3, dtype=jnp.float32)[:, None, None] * jnp.ones((3, 6, 5))
    st.train_epoch(None, fake_step, st.SupernetState({}, {}, {}), range(8), alphas=alphas)
    assert seen == list(st.round_robin(8, 3))


def test_optimizer_schedule_and_clipping():
    sched = st.epoch_cosine_schedule(0.025, 0.001, 4, 10)
    lrs = [float(sched(c)) for c in (0, 9, 10, 20, 39, 40)]
    np.testing.assert_allclose(lrs[:2], 0.025, rtol=1e-6)  # constant within an epoch
    np.testing.assert_allclose(lrs[2], 0.001 + 0.024 * (1 + math.cos(math.pi / 4)) / 2, rtol=1e-6)
    np.testing.assert_allclose(lrs[5], 0.001, rtol=1e-5)
    opt = st.make_optimizer(4, 10, weight_decay=0.0, momentum=0.0)
    g = {"w": jnp.full((4,), 10.0)}  # norm 20 -> clipped to 5
    upd, _ = opt.update(g, opt.init(g), {"w": jnp.zeros(4)})
    np.testing.assert_allclose(upd["w"], -0.025 * 2.5, rtol=1e-6)


# ---------------------------------------------------------------------------- evaluation


def test_population_eval_compiles_once_per_population_size_and_matches_apply():
    model, _, state = _setup()
    x, y = _data(16)
    ev = st.make_population_eval(model, chunk=4)
    a3 = nb201.discretize(jax.random.uniform(jax.random.PRNGKey(0), (3, 6, 5)))
    acc = np.asarray(ev(state.weights, state.batch_stats, a3, x, y))
    ev(state.weights, state.batch_stats, nb201.discretize(np.zeros((3, 6), np.int32)), x, y)
    assert ev._cache_size() == 1
    ev(state.weights, state.batch_stats, a3[:2], x, y)
    assert ev._cache_size() == 2
    v = {"params": state.weights, "batch_stats": state.batch_stats}
    ref = [100.0 * float(jnp.mean(jnp.argmax(model.apply(v, x, a, train=False), -1) == y)) for a in a3]
    np.testing.assert_allclose(acc, ref, atol=1e-4)
    # train-mode BN (EvNAS S1): statistics of each chunk
    evb = st.make_population_eval(model, chunk=8, bn="batch", member_batch=2)
    refb = [100.0 * float(sum(jnp.sum(jnp.argmax(model.apply(v, x[i:i + 8], a, train=True), -1)
                                      == y[i:i + 8]) for i in (0, 8))) / 16 for a in a3]
    np.testing.assert_allclose(evb(state.weights, state.batch_stats, a3, x, y), refb, atol=1e-4)


def test_supernet_estimator_protocol_and_traceable():
    model, _, state = _setup()
    x, y = _data(16)
    est = SupernetEstimator(model, state.weights, state.batch_stats, x, y)
    check_estimator(est)
    assert est.traceable and not est.oracle and est.space == "nb201"
    codes = np.array([[3, 3, 3, 3, 3, 3], [0, 1, 2, 3, 4, 0], [1, 1, 1, 1, 1, 1]], np.int32)
    scores = est.evaluate(jax.random.PRNGKey(0), codes)
    assert scores.shape == (3,) and scores.dtype == jnp.float32
    np.testing.assert_allclose(scores, 100.0 - np.asarray(est.accuracy(codes)))
    alphas = jax.nn.one_hot(codes, 5) * 2.0 + 0.1  # same argmax -> same scores
    np.testing.assert_array_equal(est.evaluate(None, alphas), scores)
    np.testing.assert_array_equal(jax.jit(lambda a: est.evaluate(None, a))(alphas), scores)


def test_save_restore_roundtrip():
    model, opt, state = _setup()
    step = st.make_train_step(model, opt)
    w, o, s, _ = step(state.weights, state.opt_state, state.batch_stats, jnp.zeros((6, 5)), _data())
    trained = st.SupernetState(w, o, s)
    back = st.state_from_bytes(_setup(key=5)[2], st.state_to_bytes(trained))
    jax.tree_util.tree_map(np.testing.assert_array_equal, back, trained)


def test_bad_inputs():
    model, _, state = _setup()
    with pytest.raises(ValueError, match="alpha must have shape"):
        model.apply({"params": state.weights, "batch_stats": state.batch_stats}, _data()[0],
                    jnp.zeros((6, 4)), train=False)
    with pytest.raises(ValueError, match="unknown op"):
        NB201Supernet(C=4, N=1, edge_ops=(("conv",),) * 6).init(
            jax.random.PRNGKey(0), _data()[0], jnp.zeros((6, 5)))
    with pytest.raises(ValueError, match="bn must be"):
        st.make_population_eval(model, bn="eval")
    with pytest.raises(ValueError, match="alphas"):
        st.train_epoch(None, None, state, [])


# ---------------------------------------------------------------------------- DARTS


def test_darts_search_network_shapes_without_compiling():
    """Shapes and parameter layout via ``jax.eval_shape`` (no XLA compile: the whole DARTS
    search network compiles slowly on XLA:CPU; a training step is in the slow test below)."""
    m = DartsSearchNetwork(C=2, layers=3)
    v = st.init_variables(jax.random.PRNGKey(0), m, (8, 8, 3))
    p = v["params"]
    assert p["stem_kernel"].shape == (3, 3, 3, 6)  # stem multiplier 3
    assert p["cells_0"]["edge_0"]["sep_conv_5x5"]["op1"]["dw"].shape == (5, 5, 1, 2)
    assert set(p["cells_0"]["edge_13"]) == {"sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3",
                                            "dil_conv_5x5"}  # BN affine=False: pools have no params
    assert set(v["batch_stats"]["cells_0"]["edge_13"]) == {
        "max_pool_3x3", "avg_pool_3x3", "sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3", "dil_conv_5x5"}
    assert "skip_connect" in p["cells_1"]["edge_0"]  # FactorizedReduce in a reduction edge
    assert p["cells_1"]["edge_0"]["dil_conv_3x3"]["pw"].shape == (4, 4)  # channels doubled
    assert p["cells_2"]["preprocess0"]["kernel_1"].shape == (8, 4)  # FactorizedReduce after a reduction
    assert p["classifier_kernel"].shape == (32, 10)  # 4 nodes x 8 channels
    out = jax.eval_shape(lambda v, x, a: m.apply(v, x, a, train=False), v,
                         jax.ShapeDtypeStruct((4, 8, 8, 3), jnp.float32),
                         jax.ShapeDtypeStruct(darts.ALPHA_SHAPE, jnp.float32))
    assert out.shape == (4, 10)


@pytest.mark.slow
def test_darts_train_step_and_population_eval():
    m = DartsSearchNetwork(C=2, layers=3)
    opt = st.make_optimizer(2, 4)
    state = st.init_supernet(jax.random.PRNGKey(0), m, opt, (8, 8, 3))
    step = st.make_train_step(m, opt)
    x, y = _data(4)
    alphas = darts.discretize(darts.sample_alpha(jax.random.PRNGKey(1), 3))
    state, losses = st.train_epoch(None, step, state, [(x, y)] * 2, alphas=alphas)
    assert np.all(np.isfinite(np.asarray(losses)))
    est = SupernetEstimator(m, state.weights, state.batch_stats, x, y, bn="batch")
    assert est.space == "darts" and est.evaluate(None, alphas).shape == (3,)


@pytest.mark.parametrize("track", [True, False])
def test_scanned_cells_equal_unrolled_cells(track):
    """scan_cells (default): the N cells of a stage as one lax.scan over their stacked
    parameters, same parameter tree, the same loss, gradients, BN statistics and logits as
    the unrolled cells up to float32 rounding."""
    scanned = NB201Supernet(C=4, N=2, track_running_stats=track)
    unrolled = NB201Supernet(C=4, N=2, track_running_stats=track, scan_cells=False)
    _, _, state = _setup(scanned)
    _, _, state_u = _setup(unrolled)
    assert _shapes(state.weights) == _shapes(state_u.weights)
    x, y = _data(8)
    alpha = jax.random.uniform(jax.random.PRNGKey(2), (6, 5))

    def loss(m, w, stats):
        v = {"params": w, **({"batch_stats": stats} if stats else {})}
        logits, new = m.apply(v, x, alpha, train=True, mutable=["batch_stats"])
        return jnp.mean(-jax.nn.log_softmax(logits)[jnp.arange(8), y]), new

    out = [jax.value_and_grad(partial(loss, m), has_aux=True)(state.weights, state.batch_stats)
           for m in (scanned, unrolled)]
    (l0, s0), g0 = out[0]
    (l1, s1), g1 = out[1]
    np.testing.assert_allclose(l0, l1, rtol=1e-6)
    for a, b in zip(jax.tree.leaves(g0), jax.tree.leaves(g1)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    assert jax.tree.structure(s0) == jax.tree.structure(s1)
    for a, b in zip(jax.tree.leaves(s0), jax.tree.leaves(s1)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    v = {"params": state.weights, "batch_stats": state.batch_stats}
    np.testing.assert_allclose(scanned.apply(v, x, alpha, train=False),
                               unrolled.apply(v, x, alpha, train=False), rtol=1e-5, atol=1e-6)


def test_darts_banked_cell_equals_edge_by_edge():
    """The banked reduction cell (edges stacked and vmapped, :func:`edge_banks`) has the same
    variables and gives the same outputs, BN updates and gradients as the edge-by-edge cell.
    Eager (no jit) and a few cheap ops so that nothing large compiles (all 8 ops: the slow
    DARTS test); op subsets on two edges make a bank split."""
    from jaxnas.nets.darts_supernet import DartsSearchCell, edge_banks

    reduction = True
    ops = [("none", "avg_pool_3x3", "skip_connect", "dil_conv_3x3")] * darts.NUM_EDGES
    ops[3], ops[9] = ("max_pool_3x3", "sep_conv_3x3"), ("skip_connect",)
    banks = edge_banks(reduction, tuple(ops))
    assert sorted(e for b in banks for e in b) == list(range(darts.NUM_EDGES)) and len(banks) == 6
    assert edge_banks(False, (tuple(darts.OPS),) * 14) == [[0, 1, 2, 3, 5, 6, 9, 10],
                                                         [4, 7, 11], [8, 12], [13]]

    def cell(batch):
        return DartsSearchCell(4, 4, 2, reduction, False, tuple(ops), False, True, batch)

    x0, x1 = jax.random.normal(jax.random.PRNGKey(0), (2, 3, 4, 4, 4))
    w = jax.nn.softmax(jax.random.normal(jax.random.PRNGKey(1), (14, 8)), -1)
    v = cell(True).init(jax.random.PRNGKey(2), x0, x1, w, True)
    assert jax.tree_util.tree_structure(v) == jax.tree_util.tree_structure(
        cell(False).init(jax.random.PRNGKey(2), x0, x1, w, True))
    assert set(v["params"]["edge_3"]) == {"sep_conv_3x3"}

    def run(batch):
        def loss(p, x1):
            y, upd = cell(batch).apply({"params": p, "batch_stats": v["batch_stats"]}, x0, x1, w,
                                       True, mutable=["batch_stats"])
            return jnp.sum(jnp.sin(y)), (y, upd)
        return jax.value_and_grad(loss, argnums=(0, 1), has_aux=True)(v["params"], x1)

    (lb, aux_b), g_b = run(True)
    (lu, aux_u), g_u = run(False)
    assert aux_b[0].shape == (3, 2 if reduction else 4, 2 if reduction else 4, 8)
    close = partial(np.testing.assert_allclose, rtol=1e-5, atol=1e-5)
    jax.tree_util.tree_map(close, (aux_b, g_b), (aux_u, g_u))
