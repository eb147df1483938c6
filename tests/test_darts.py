"""DARTS cell space (METHODS.md 0.1 and 4): genotype rule, EvNAS discretization, Jaccard."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxnas.spaces import SPACES, darts

OPS = darts.OPS


def _edge(node, inp):
    return darts.NODE_OFFSETS[node] + inp


def _hand_alpha():
    """Normal cell built so that every node tests one part of the rule; reduce cell all 0."""
    a = np.zeros(darts.ALPHA_SHAPE, np.float32)
    n = a[0]
    # node 0 (state 2): argmax of edge 0<-s0 is 'none' -> its second best, sep_conv_3x3,
    # with p = e/(e^3+e+6) ~ 0.083; edge from s1: skip_connect with p = e^2/(e^2+7) ~ 0.51.
    n[_edge(0, 0), OPS.index("none")] = 3.0
    n[_edge(0, 0), OPS.index("sep_conv_3x3")] = 1.0
    n[_edge(0, 1), OPS.index("skip_connect")] = 2.0
    # node 1: edge from s0 uniform (1/8), from s1 max_pool (e/(e+7) ~ 0.28), from
    # state 2 dil_conv_5x5 (e^.5/(e^.5+7) ~ 0.19): keeps inputs 1 then 2.
    n[_edge(1, 1), OPS.index("max_pool_3x3")] = 1.0
    n[_edge(1, 2), OPS.index("dil_conv_5x5")] = 0.5
    # node 2: inputs 0 and 3 tie at e^2/(e^2+7); the tie goes to the lower input first.
    n[_edge(2, 0), OPS.index("sep_conv_5x5")] = 2.0
    n[_edge(2, 3), OPS.index("avg_pool_3x3")] = 2.0
    # node 3: input 4 has argmax 'none' (10) and dil_conv_3x3 (9.9) second, p ~ 0.475:
    # strongest edge despite 'none'; input 1 skip_connect (0.28) second.
    n[_edge(3, 4), OPS.index("none")] = 10.0
    n[_edge(3, 4), OPS.index("dil_conv_3x3")] = 9.9
    n[_edge(3, 1), OPS.index("skip_connect")] = 1.0
    return a


HAND_GENOTYPE = (
    "Genotype(normal=[('skip_connect', 1), ('sep_conv_3x3', 0), ('max_pool_3x3', 1), "
    "('dil_conv_5x5', 2), ('sep_conv_5x5', 0), ('avg_pool_3x3', 3), ('dil_conv_3x3', 4), "
    "('skip_connect', 1)], normal_concat=[2, 3, 4, 5], reduce=[('max_pool_3x3', 0), "
    "('max_pool_3x3', 1), ('max_pool_3x3', 0), ('max_pool_3x3', 1), ('max_pool_3x3', 0), "
    "('max_pool_3x3', 1), ('max_pool_3x3', 0), ('max_pool_3x3', 1)], reduce_concat=[2, 3, 4, 5])"
)


def test_space_constants_and_registry():
    assert SPACES["darts"] is darts
    assert darts.NUM_EDGES == 14 and darts.NUM_OPS == 8 and darts.ALPHA_SIZE == 224
    assert OPS[0] == "none"
    assert list(darts.EDGE_NODE) == [0, 0, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 3]
    assert list(darts.EDGE_INPUT) == [0, 1, 0, 1, 2, 0, 1, 2, 3, 0, 1, 2, 3, 4]


def test_hand_checked_genotype():
    g = darts.genotype(_hand_alpha())
    assert darts.to_str(g) == HAND_GENOTYPE
    # the strengths the hand case relies on
    e = math.e
    assert e / (e**3 + e + 6) < e**2 / (e**2 + 7)
    assert e**9.9 / (e**10 + e**9.9 + 6) > e / (e + 7) > 1 / 8
    # the same alpha given flat
    np.testing.assert_array_equal(darts.genotype(darts.flatten(_hand_alpha())), g)


def test_argmax_none_takes_second_best_even_when_none_dominates_every_edge():
    a = np.zeros(darts.ALPHA_SHAPE, np.float32)
    a[..., 0] = 5.0  # 'none' is the argmax everywhere
    a[:, :, OPS.index("sep_conv_5x5")] = 1.0
    a[:, _edge(3, 2), OPS.index("dil_conv_3x3")] = 1.5  # stronger second best on one edge
    g = np.asarray(darts.genotype(a))
    assert (g[..., 0] != 0).all()  # never 'none'
    assert tuple(g[0, 6]) == (OPS.index("dil_conv_3x3"), 2)
    assert tuple(g[0, 7]) == (OPS.index("sep_conv_5x5"), 0)


def _reference_parse(alpha_cell):
    """The DARTS ``Network.genotype()._parse`` rule, transcribed in plain Python."""
    w = np.exp(alpha_cell - alpha_cell.max(-1, keepdims=True))
    w = w / w.sum(-1, keepdims=True)
    gene, start, n = [], 0, 2
    for i in range(4):
        W = w[start : start + n]
        edges = sorted(range(i + 2), key=lambda x: -max(W[x][k] for k in range(8) if k != 0))[:2]
        for j in edges:
            k_best = None
            for k in range(8):
                if k != 0 and (k_best is None or W[j][k] > W[j][k_best]):
                    k_best = k
            gene.append((k_best, j))
        start += n
        n += 1
    return gene


def _reference_evnas_topk(alpha_cell):
    """EvNAS ``utils.derive_architecture_topk``: argmax, second best if it is 'none'."""
    w = np.exp(alpha_cell - alpha_cell.max(-1, keepdims=True))
    w = w / w.sum(-1, keepdims=True)
    ops, offset = [], 0
    for i in range(4):
        t = []
        for j in range(2 + i):
            p = w[offset + j]
            k = int(np.argmax(p))
            if k == 0:
                k = int(np.argsort(-p, kind="stable")[1])
            t.append((k, j, p[k]))
        offset += 2 + i
        t.sort(key=lambda x: x[2], reverse=True)
        ops += [(op, j) for op, j, _ in t[:2]]
    return ops


def test_genotype_matches_reference_rules_on_random_alphas():
    key = jax.random.PRNGKey(3)
    alphas = np.asarray(darts.sample_alpha(key, 200)) * 4.0
    alphas[::3, :, :, 0] += 2.0  # plenty of edges where 'none' wins the argmax
    got = np.asarray(jax.jit(jax.vmap(darts.genotype))(jnp.asarray(alphas)))
    for a, g in zip(alphas, got):
        for cell in range(2):
            want = _reference_parse(a[cell].astype(np.float64))
            assert [tuple(x) for x in g[cell]] == want
            assert _reference_evnas_topk(a[cell].astype(np.float64)) == want


def test_discretize_weights_are_e_over_e_plus_7_and_uniform_elsewhere():
    alpha = darts.sample_alpha(jax.random.PRNGKey(0), 5)
    g = np.asarray(darts.genotype(alpha))
    hat = np.asarray(darts.discretize(alpha))
    assert hat.shape == (5, 2, 14, 8)
    assert set(np.unique(hat)) <= {0.0, 1.0}
    assert (hat.sum(axis=(-1, -2)) == 8).all()  # 2 x 4 chosen (edge, op) pairs per cell
    w = np.asarray(darts.mixing_weights(alpha))
    chosen = hat.sum(-1) == 1  # (5, 2, 14)
    e = math.e
    np.testing.assert_allclose(w[hat == 1], e / (e + 7), rtol=1e-6)
    np.testing.assert_allclose(w[(hat == 0) & chosen[..., None]], 1 / (e + 7), rtol=1e-6)
    np.testing.assert_allclose(w[~chosen], 1 / 8, rtol=1e-6)
    np.testing.assert_array_equal(chosen, np.asarray(darts.edge_mask(g)))
    for b in range(5):
        for c in range(2):
            for gi, (op, inp) in enumerate(g[b, c]):
                assert hat[b, c, darts.NODE_OFFSETS[gi // 2] + inp, op] == 1
    # decoding the one-hot gives the same architecture back (gene order may swap on ties)
    np.testing.assert_array_equal(
        darts.canonicalize(darts.genotype(hat)), darts.canonicalize(g)
    )
    np.testing.assert_allclose(
        darts.mixing_weights(alpha, discrete=False), jax.nn.softmax(alpha, -1), rtol=1e-6
    )
    np.testing.assert_array_equal(darts.genotype_to_alpha(g, value=2.0), 2.0 * hat)


def _reference_novelty(arch1, arch2):
    """NEvoNAS ``Novelty.get_novelty_metric`` on lists of (op, input) genes."""
    (normal1, reduce1), (normal2, reduce2) = arch1, arch2
    index, common = 0, 0
    while index < len(normal1):
        common += normal1[index] in normal2[index : index + 2]
        common += normal1[index + 1] in normal2[index : index + 2]
        common += reduce1[index] in reduce2[index : index + 2]
        common += reduce1[index + 1] in reduce2[index : index + 2]
        index += 2
    sim = common / (len(normal1) + len(reduce1) + len(normal2) + len(normal2) - common)
    return 1 - sim


def _as_lists(g):
    return tuple([tuple(int(v) for v in gene) for gene in g[c]] for c in range(2))


def test_jaccard_distance_matches_nevonas():
    key = jax.random.PRNGKey(7)
    # low-entropy alphas so that random pairs share genes
    alphas = jnp.round(darts.sample_alpha(key, 30) * 2.0)
    g = np.asarray(darts.genotype(alphas))
    d = np.asarray(darts.pairwise_distance(g))
    assert d.shape == (30, 30)
    np.testing.assert_allclose(np.diag(d), 0.0, atol=1e-7)
    want = np.array([[_reference_novelty(_as_lists(a), _as_lists(b)) for b in g] for a in g])
    np.testing.assert_allclose(d, want, rtol=1e-6, atol=1e-7)
    assert 0 < want[np.triu_indices(30, 1)].min() and want.max() <= 1.0
    # one changed gene: 15 common genes -> similarity 15/17
    g2 = g[0].copy()
    g2[0, 0, 0] = 1 + (g2[0, 0, 0] % 7)
    np.testing.assert_allclose(darts.genotype_distance(g[0], g2), 1 - 15 / 17, rtol=1e-6)
    # gene order inside a node does not matter
    np.testing.assert_allclose(darts.genotype_distance(g[0], darts.canonicalize(g[0])), 0.0)


def test_sampling_shapes_range_and_seed():
    k = jax.random.PRNGKey(11)
    a = darts.sample_alpha(k, 4)
    assert a.shape == (4, 2, 14, 8) and a.dtype == jnp.float32
    assert float(a.min()) >= 0.0 and float(a.max()) < 1.0
    np.testing.assert_array_equal(a, darts.sample_alpha(k, 4))
    assert darts.sample_alpha(k, 4, flat=True).shape == (4, 224)
    assert darts.sample_alpha(k).shape == (2, 14, 8)
    np.testing.assert_array_equal(darts.unflatten(darts.flatten(a)), a)
    with pytest.raises(ValueError, match="shape"):
        darts.as_alpha(np.zeros((3, 14, 8)))


def test_strings_round_trip_and_batch():
    g = np.asarray(darts.genotype(darts.sample_alpha(jax.random.PRNGKey(1), 3)))
    strs = darts.to_str(g)
    assert isinstance(strs, list) and len(strs) == 3
    np.testing.assert_array_equal(np.stack([darts.from_str(s) for s in strs]), g)
    # DARTS's own spelling (range concat) parses too
    darts_v2 = (
        "Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), "
        "('sep_conv_3x3', 1), ('sep_conv_3x3', 1), ('skip_connect', 0), ('skip_connect', 0), "
        "('dil_conv_3x3', 2)], normal_concat=range(2, 6), reduce=[('max_pool_3x3', 0), "
        "('max_pool_3x3', 1), ('skip_connect', 2), ('max_pool_3x3', 1), ('max_pool_3x3', 0), "
        "('skip_connect', 2), ('skip_connect', 2), ('max_pool_3x3', 1)], reduce_concat=range(2, 6))"
    )
    gv2 = darts.from_str(darts_v2)
    assert tuple(gv2[0, 7]) == (OPS.index("dil_conv_3x3"), 2)
    assert darts.from_str(darts.to_str(gv2)).tolist() == gv2.tolist()


@pytest.mark.parametrize(
    "bad, match",
    [
        (HAND_GENOTYPE.replace("('skip_connect', 1), ('sep_conv_3x3', 0)", "('none', 1), "
                               "('sep_conv_3x3', 0)", 1), "none"),
        (HAND_GENOTYPE.replace("('sep_conv_3x3', 0)", "('conv_9x9', 0)", 1), "conv_9x9"),
        (HAND_GENOTYPE.replace("('sep_conv_3x3', 0)", "('sep_conv_3x3', 2)", 1), "input 2"),
        (HAND_GENOTYPE.replace("('sep_conv_3x3', 0)", "('sep_conv_3x3', 1)", 1), "twice"),
        (HAND_GENOTYPE.split(", reduce=")[0] + ")", "reduce"),
        (HAND_GENOTYPE.replace("('sep_conv_3x3', 0), ", "", 1), "8"),
    ],
)
def test_bad_strings_are_clear_errors(bad, match):
    with pytest.raises(ValueError, match=match):
        darts.from_str(bad)
