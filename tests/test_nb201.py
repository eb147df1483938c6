import csv
import gzip

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxnas.spaces import nb201
from tests.conftest import require_data


def _rows():
    root = require_data("nb201_accuracy.csv.gz")
    with gzip.open(root / "nb201_accuracy.csv.gz", "rt") as f:
        return list(csv.DictReader(f))


def test_full_index_mapping_matches_shared_table():
    rows = _rows()
    assert len(rows) == nb201.NUM_ARCHS == 15625
    idx = np.array([int(r["arch_index"]) for r in rows])
    strs = [r["arch_str"] for r in rows]
    codes = np.array([[int(c) for c in r["op_codes"]] for r in rows])
    np.testing.assert_array_equal(nb201.from_index(idx), codes)
    np.testing.assert_array_equal(nb201.index(codes), idx)
    assert nb201.to_str(codes) == strs
    np.testing.assert_array_equal(np.stack([nb201.from_str(s) for s in strs]), codes)
    assert [nb201.index(s) for s in strs[:50]] == list(idx[:50])
    np.testing.assert_array_equal(jax.jit(nb201.index_jax)(jnp.asarray(codes)), idx)
    np.testing.assert_array_equal(jax.jit(nb201.from_index_jax)(jnp.asarray(idx)), codes)


def test_arch0_matches_hw_nas_bench_readme():
    assert nb201.to_str(nb201.from_index(0)) == (
        "|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_1x1~0|skip_connect~1|skip_connect~2|"
    )


@pytest.mark.parametrize(
    "bad, token",
    [
        ("|conv_3x3~0|+|none~0|none~1|+|none~0|none~1|none~2|", "conv_3x3~0"),
        ("|none~0|+|none~0|none~2|+|none~0|none~1|none~2|", "none~2"),
        ("|none~0|+|none~0|none~1|", "3 nodes"),
        ("|none~0|+|none~0|+|none~0|none~1|none~2|", "node 2"),
        ("|none|+|none~0|none~1|+|none~0|none~1|none~2|", "'none'"),
    ],
)
def test_bad_strings_name_the_token(bad, token):
    with pytest.raises(ValueError, match=token):
        nb201.from_str(bad)


def test_bad_codes_and_indices():
    with pytest.raises(ValueError):
        nb201.to_str([0, 1, 2, 3, 4, 5])
    with pytest.raises(ValueError):
        nb201.index([0, 1, 2])
    with pytest.raises(ValueError):
        nb201.from_index(15625)


def test_connectivity_count_and_jit():
    conn = nb201.is_connected(nb201.ARCHS)
    assert int((~conn).sum()) == 341
    np.testing.assert_array_equal(jax.jit(nb201.is_connected)(jnp.asarray(nb201.ARCHS)), conn)
    # Degenerate archs are the ones with ~10 % CIFAR-10 accuracy.
    rows = _rows()
    acc = np.array([float(r["cifar10_test_acc"]) for r in rows])
    assert acc[~conn].max() <= 10.01 + 1e-6


def test_sampling_is_in_space_and_seeded():
    a = nb201.sample(jax.random.key(0), 1000)
    assert a.shape == (1000, 6) and a.dtype == jnp.int32
    assert int(a.min()) >= 0 and int(a.max()) <= 4
    np.testing.assert_array_equal(a, nb201.sample(jax.random.key(0), 1000))
    assert len({tuple(r) for r in np.asarray(a)}) > 900


def test_naslib_round_trip_and_known_mapping():
    codes = nb201.ARCHS
    np.testing.assert_array_equal(nb201.from_naslib(nb201.to_naslib(codes)), codes)
    # PROVENANCE.md section 3: NASLib tuple positions (0,1,3,2,4,5) give the string's edges,
    # with NASLib op order (skip, none, 3x3, 1x1, pool).
    naslib = (0, 1, 2, 3, 4, 1)  # skip, none, 3x3, 1x1, pool, none
    assert nb201.to_str(nb201.from_naslib(naslib)) == (
        "|skip_connect~0|+|none~0|nor_conv_1x1~1|+|nor_conv_3x3~0|avg_pool_3x3~1|none~2|"
    )
    assert nb201.to_naslib(nb201.from_naslib(naslib)) == naslib


def test_decode_alpha_argmax():
    alpha = jnp.zeros((6, 5)).at[jnp.arange(6), jnp.array([0, 1, 2, 3, 4, 0])].set(1.0)
    np.testing.assert_array_equal(nb201.decode_alpha(alpha), [0, 1, 2, 3, 4, 0])
    np.testing.assert_array_equal(nb201.decode_alpha(alpha.reshape(30)), [0, 1, 2, 3, 4, 0])
