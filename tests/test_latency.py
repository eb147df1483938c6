import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxnas.costs.latency import LatencySpec, LatencyTable, cache_path, load_or_measure, validate
from jaxnas.spaces import nb201

SPEC = LatencySpec(C=4, N=1, image_size=8, in_channels=1, num_classes=10, batch_size=2)


@pytest.fixture(scope="module")
def measured(tmp_path_factory):
    d = tmp_path_factory.mktemp("lat")
    table, from_cache = load_or_measure(SPEC, cache_dir=d, repeats=5, rounds=2)
    return table, from_cache, d


def test_measured_table_is_positive_and_none_is_free(measured):
    table, from_cache, _ = measured
    assert not from_cache
    assert table.lut_ms.shape == (3, 5)
    assert np.all(table.lut_ms[:, 0] == 0)
    assert np.all(table.lut_ms[:, 1:] > 0)
    assert table.fixed_ms > 0 and set(table.parts_ms) == {"stem", "reduce1", "reduce2", "head"}


def test_prediction_is_a_traceable_sum(measured):
    table, _, _ = measured
    archs = np.asarray(nb201.sample(jax.random.key(0), 50))
    pred = jax.jit(table)(jnp.asarray(archs))
    np.testing.assert_allclose(pred, table.predict(archs), rtol=1e-5)
    manual = table.fixed_ms + SPEC.N * sum(table.lut_ms[s, archs[:, e]] for s in range(3) for e in range(6))
    np.testing.assert_allclose(table.predict(archs), manual)
    assert table.values.shape == (15625,)
    # the all-none cell is the cheapest architecture
    assert float(table.values.min()) == pytest.approx(table.fixed_ms, rel=1e-6)


def test_cache_round_trip_and_reuse(measured):
    table, _, d = measured
    again, from_cache = load_or_measure(SPEC, cache_dir=d)
    assert from_cache
    np.testing.assert_array_equal(again.lut_ms, table.lut_ms)
    assert again.spec == SPEC and again.fixed_ms == table.fixed_ms
    assert cache_path(SPEC, d).exists()
    assert cache_path(LatencySpec(C=8, N=1, image_size=8, in_channels=1), d) != cache_path(SPEC, d)


def test_corrupt_cache_is_a_clear_error(tmp_path):
    p = cache_path(SPEC, tmp_path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text("{not json")
    with pytest.raises(ValueError, match="unreadable latency table"):
        load_or_measure(SPEC, cache_dir=tmp_path)
    p.write_text(json.dumps({"format": 1, "ops": list(nb201.OPS), "lut_ms": [[1, 2]], "spec": {}}))
    with pytest.raises(ValueError, match="not a jaxnas latency table"):
        LatencyTable.load(p)


def test_bad_spec():
    with pytest.raises(ValueError, match="image_size"):
        LatencySpec(image_size=10)
    with pytest.raises(ValueError, match="C must be a positive int"):
        LatencySpec(C=0)


def test_validate_reports_rank_correlation(measured):
    table, _, _ = measured
    archs = nb201.from_index([0, 6111, 10])
    out = validate(table, archs)
    assert len(out["measured_ms"]) == 3 and all(m > 0 for m in out["measured_ms"])
    assert -1.0 <= out["spearman"] <= 1.0
