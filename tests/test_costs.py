"""jaxnas.costs: analytic FLOPs/params against real NB201 values, table-backed device costs."""

import csv
import gzip

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxnas.bench import HW_DEVICES, HW_PICKLE_METRICS, BenchTable, load_table
from jaxnas.costs import (
    COSTS,
    AnalyticCost,
    MissingCostError,
    TableCost,
    cost_model,
    flops_params,
    make_cost,
)
from jaxnas.spaces import nb201
from tests.conftest import require_data

ZC = "nb201_naslib_zc_subset.csv.gz"


@pytest.fixture(scope="module")
def zc_rows():
    root = require_data(ZC)
    with gzip.open(root / ZC, "rt") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 1473
    return rows


@pytest.fixture(scope="module")
def shared():
    return load_table(require_data("nb201_accuracy.csv.gz", "nb201_hw_costs.csv.gz"))


# ---------------------------------------------------------------------------- analytic


@pytest.mark.parametrize("dataset", ["cifar10", "cifar100", "ImageNet16-120"])
def test_flops_params_match_all_491_naslib_values(zc_rows, dataset):
    rows = [r for r in zc_rows if r["dataset"] == dataset]
    assert len(rows) == 491
    codes = np.array([[int(c) for c in r["op_codes"]] for r in rows])
    np.testing.assert_array_equal(nb201.index(codes), [int(r["arch_index"]) for r in rows])
    want_f = np.array([float(r["flops"]) for r in rows])
    want_p = np.array([float(r["params"]) for r in rows])
    mf, mp = flops_params(codes, dataset=dataset)
    assert mf.shape == mp.shape == (491,) and mf.dtype == np.float64
    # The issue asks for 1 %; the counting convention reproduces the file to its 6 decimals.
    np.testing.assert_allclose(mf, want_f, rtol=0.01)
    np.testing.assert_allclose(mp, want_p, rtol=0.01)
    np.testing.assert_allclose(mf, want_f, rtol=0, atol=1e-6)
    np.testing.assert_allclose(mp, want_p, rtol=0, atol=1e-6)
    # traced: jit over the (N, 6) batch, float32
    jf, jp = jax.jit(lambda c: flops_params(c, dataset=dataset))(jnp.asarray(codes))
    assert jf.dtype == jnp.float32 and jf.shape == (491,)
    np.testing.assert_allclose(jf, want_f, rtol=1e-6)
    np.testing.assert_allclose(jp, want_p, rtol=1e-6)
    # degenerate (disconnected) cells are in the file too, and match
    assert (~nb201.is_connected(codes)).sum() > 0


def test_explicit_classes_and_size_equal_dataset_shorthand():
    codes = nb201.ARCHS[:100]
    for ds, nc, size in (("cifar10", 10, 32), ("cifar100", 100, 32), ("ImageNet16-120", 120, 16)):
        a = flops_params(codes, dataset=ds)
        b = flops_params(codes, num_classes=nc, image_size=size)
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_array_equal(a[1], b[1])
    np.testing.assert_array_equal(flops_params(codes)[0], flops_params(codes, dataset="cifar10")[0])


def test_nb201_convention_matches_nb201_api_cost_info():
    # NASLib's NB201 test fixture copies the NB201 API's cost_info of arch 0
    # (|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_1x1~0|skip_connect~1|skip_connect~2|,
    # cifar10-valid): flops 15.64737, params 0.129306 (automl/NASLib tests/test_nb201_search_space.py).
    f, p = flops_params(nb201.from_index(0), convention="nb201")
    assert round(float(f), 5) == 15.64737 and round(float(p), 6) == 0.129306
    # params do not depend on the FLOP convention
    assert float(flops_params(nb201.from_index(0))[1]) == float(p)


def test_shapes_degenerate_and_per_op_structure():
    f0, fop, p0, pop = cost_model()
    assert fop[0] == fop[1] == 0 and pop[0] == pop[1] == pop[4] == 0  # none, skip
    none = np.zeros(6, int)
    f, p = flops_params(none)
    assert f.shape == () and abs(float(f) - f0 / 1e6) < 1e-12 and abs(float(p) - p0 / 1e6) < 1e-12
    batch = nb201.ARCHS[:24].reshape(2, 3, 4, 6)
    assert flops_params(batch)[0].shape == (2, 3, 4)
    # every conv costs more than pooling, 3x3 more than 1x1
    assert fop[3] > fop[2] > fop[4] > 0
    # monotone in width and depth
    assert cost_model(C=32)[0] > f0 and cost_model(N=1)[1][3] < fop[3]
    with pytest.raises(ValueError, match="multiple of 4"):
        flops_params(none, image_size=30)
    with pytest.raises(ValueError, match="convention"):
        flops_params(none, convention="thop")
    with pytest.raises(ValueError, match="num_classes=100"):
        flops_params(none, num_classes=10, dataset="cifar100")
    with pytest.raises(ValueError, match="unknown dataset"):
        flops_params(none, dataset="svhn")
    with pytest.raises(ValueError):
        flops_params([0, 1, 5, 0, 0, 0])


def test_analytic_cost_object_and_vmap():
    c = AnalyticCost("flops", "cifar100")
    assert c.traceable and c.unit == "MFLOPs"
    v = c.values
    assert v.shape == (15625,) and v.dtype == jnp.float32
    np.testing.assert_allclose(v, flops_params(nb201.ARCHS, dataset="cifar100")[0], rtol=1e-6)
    codes = nb201.sample(jax.random.PRNGKey(2), 16)
    np.testing.assert_allclose(jax.jit(jax.vmap(c))(codes), c(codes), rtol=1e-6)
    with pytest.raises(ValueError):
        AnalyticCost("latency")


# ---------------------------------------------------------------------------- table-backed


def test_table_cost_is_a_traceable_gather(shared):
    cost = TableCost(shared, device="pixel3", metric="latency", dataset="cifar10")
    assert cost.column_name == "cifar10_pixel3_latency" and cost.unit == "ms" and cost.traceable
    assert cost.values.shape == (15625,) and float(cost.values[0]) == np.float32(3.6058499999999998)
    codes = nb201.sample(jax.random.PRNGKey(0), 32)
    want = shared.numpy("cifar10_pixel3_latency")[nb201.index(np.asarray(codes))]
    np.testing.assert_array_equal(jax.jit(cost)(codes), want)
    np.testing.assert_array_equal(jax.vmap(cost)(codes), want)
    assert float(TableCost(shared, "fpga")(jnp.asarray(nb201.from_index(0)))) == np.float32(2.57296)
    q = cost.quantiles([0.25, 0.5, 0.75])
    assert q[0] < q[1] < q[2]


def test_missing_devices_say_what_and_how(shared):
    with pytest.raises(MissingCostError) as e:
        TableCost(shared, "edgegpu", "latency", "cifar10")
    msg = str(e.value)
    assert "cifar10_edgegpu_latency" in msg and "raspi4, pixel3, eyeriss, fpga" in msg
    assert "HW-NAS-Bench-v1_0.pickle" in msg and "jaxnas table import" in msg
    assert isinstance(e.value, KeyError) and isinstance(e.value, ValueError)
    with pytest.raises(MissingCostError, match="cifar100_fpga_latency.*none"):
        TableCost(shared, "fpga", dataset="cifar100")
    with pytest.raises(MissingCostError, match="energy"):
        TableCost(shared, "eyeriss", "energy")
    with pytest.raises(ValueError, match="unknown HW-NAS-Bench device 'tpu'"):
        TableCost(shared, "tpu")
    with pytest.raises(ValueError, match="unknown cost metric"):
        TableCost(shared, "fpga", "power")
    with pytest.raises(ValueError, match="unknown dataset"):
        TableCost(shared, "fpga", dataset="svhn")


def _full_hw_table():
    names, cols = [], []
    for di, ds in enumerate(("cifar10", "cifar100", "imagenet16_120")):
        for mi, m in enumerate(HW_PICKLE_METRICS):
            names.append(f"{ds}_{m}")
            cols.append(np.arange(15625) * 0.001 + 10 * di + mi)
    return BenchTable(names, np.stack(cols, 1))


def test_all_six_devices_three_datasets_with_full_table():
    t = _full_hw_table()
    for ds in ("cifar10", "cifar100", "ImageNet16-120"):
        for dev in HW_DEVICES:
            assert TableCost(t, dev, "latency", ds).coverage == 15625
    c = TableCost(t, "edgegpu", "energy", "ImageNet16-120")
    assert c.column_name == "imagenet16_120_edgegpu_energy" and c.unit == "mJ"
    assert abs(float(c.by_index(jnp.asarray(3))) - (3 * 0.001 + 20 + 1)) < 1e-5
    ai = TableCost(t, "eyeriss", "arithmetic_intensity", "cifar10")
    assert ai.unit == "op/B"


def test_registry_by_name(shared):
    for name in ("flops", "params", "pixel3_latency", "edgegpu_energy", "eyeriss_arithmetic_intensity"):
        assert name in COSTS
    for dev in HW_DEVICES:
        assert f"{dev}_latency" in COSTS
    codes = nb201.ARCHS[:5]
    np.testing.assert_allclose(make_cost("flops", dataset="cifar100")(codes),
                               flops_params(codes, dataset="cifar100")[0], rtol=1e-6)
    np.testing.assert_allclose(make_cost("params")(codes), flops_params(codes)[1], rtol=1e-6)
    px = make_cost("pixel3_latency", shared)
    assert isinstance(px, TableCost) and px.column_name == "cifar10_pixel3_latency"
    help_cost = make_cost("help_gold_6226_latency", shared)
    assert help_cost.column_name == "help_gold_6226_latency" and help_cost.unit == "ms"
    np.testing.assert_array_equal(help_cost(codes),
                                  shared.numpy("help_gold_6226_latency")[nb201.index(codes)])
    with pytest.raises(ValueError, match="pass table=load_table"):
        make_cost("fpga_latency")
    with pytest.raises(ValueError, match="unknown cost 'speed'.*pixel3_latency"):
        make_cost("speed", shared)
    with pytest.raises(MissingCostError):
        make_cost("edgetpu_latency", shared)
