"""jaxnas.bench: loading, merging, validating and caching NB201 benchmark tables."""

import csv
import gzip
import json
import os
import pickle
import subprocess
import sys
import warnings
from collections import OrderedDict

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxnas import _paths
from jaxnas.bench import (
    HW_DEVICES,
    HW_PICKLE_METRICS,
    BenchTable,
    TableFileError,
    UnknownColumnError,
    import_table,
    load_table,
    merge_tables,
    read_table_file,
    save_table,
)
from jaxnas.spaces import nb201
from tests.conftest import require_data

ACC = "nb201_accuracy.csv.gz"
HW = "nb201_hw_costs.csv.gz"
ZC = "nb201_naslib_zc_subset.csv.gz"
ARCH0 = "|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_1x1~0|skip_connect~1|skip_connect~2|"


@pytest.fixture(scope="module")
def shared():
    root = require_data(ACC, HW)
    return load_table(root)


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    """Imports without --out go to a private cache dir, never the user's."""
    monkeypatch.setenv("JAXNAS_CACHE_DIR", str(tmp_path / "cache"))


# ---------------------------------------------------------------------------- shared CSVs


def test_shared_csvs_spot_values_from_provenance(shared):
    t = shared
    assert t.values.shape == (15625, len(t.columns)) and t.values.dtype == np.float32
    for c in ("cifar10_test_acc", "cifar100_test_acc", "imagenet16_120_test_acc",
              "cifar10_fpga_latency", "cifar10_eyeriss_latency", "cifar10_pixel3_latency",
              "cifar10_raspi4_latency", "help_gold_6226_latency", "help_pixel2_latency"):
        assert t.has(c) and t.count(c) == 15625
    # Arch 0 equals the HW-NAS-Bench README (PROVENANCE.md), here as float32.
    for col, v in (("cifar10_fpga_latency", 2.57296), ("cifar10_eyeriss_latency", 3.645620000000001),
                   ("cifar10_pixel3_latency", 3.6058499999999998),
                   ("cifar10_raspi4_latency", 10.481976820010459)):
        assert t.numpy(col)[0] == np.float32(v)
    np.testing.assert_allclose(
        [t.numpy(c)[0] for c in ("cifar10_test_acc", "cifar100_test_acc", "imagenet16_120_test_acc")],
        [85.8633, 52.9133, 26.6333], atol=1e-4)
    # Maxima match the NB201 paper's optima (PROVENANCE.md).
    for col, top, arch in (("cifar10_test_acc", 94.3733, 6111), ("cifar100_test_acc", 73.5133, 9930),
                           ("imagenet16_120_test_acc", 47.3111, 857)):
        assert int(np.argmax(t.numpy(col))) == arch
        assert abs(float(t.numpy(col).max()) - top) < 1e-4
    assert nb201.to_str(nb201.from_index(6111)) == (
        "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|")
    np.testing.assert_allclose([t.numpy(c).min() for c in ("cifar10_test_acc", "cifar100_test_acc",
                                                           "imagenet16_120_test_acc")],
                               [10.0, 1.0, 0.8333], atol=1e-3)
    # Degenerate-cell quirk kept as in the source: arch 10 has near-zero pixel3 latency.
    assert abs(float(t.numpy("cifar10_pixel3_latency")[10]) - 0.0034) < 1e-4
    assert t.units["cifar10_test_acc"] == "%" and t.units["cifar10_pixel3_latency"] == "ms"
    assert t.sources["cifar10_test_acc"] == ACC and t.sources["help_titanx_1_latency"] == HW
    assert t.devices("cifar10", "latency") == ("raspi4", "pixel3", "eyeriss", "fpga")
    assert t.devices("cifar10", "energy") == () and t.devices("cifar100") == ()
    assert t.missing_devices("cifar10") == ("edgegpu", "edgetpu")


def test_fast_parser_agrees_with_csv_module_on_every_cell(shared):
    root = require_data(ACC, HW)
    for name in (ACC, HW):
        with gzip.open(root / name, "rt") as f:
            rows = list(csv.DictReader(f))
        idx = np.array([int(r["arch_index"]) for r in rows])
        for col in rows[0]:
            if col in ("arch_index", "arch_str", "op_codes"):
                continue
            want = np.array([float(r[col]) for r in rows], dtype=np.float32)
            np.testing.assert_array_equal(shared.numpy(col)[idx], want, err_msg=col)


def test_lookups_are_traceable_gathers(shared):
    codes = nb201.sample(jax.random.PRNGKey(0), 64)
    idx = nb201.index(np.asarray(codes))
    col = shared.column("cifar10_test_acc")
    assert isinstance(col, jax.Array) and col.shape == (15625,) and col.dtype == jnp.float32
    got = jax.jit(jax.vmap(lambda c: shared.lookup("cifar10_test_acc", c)))(codes)
    np.testing.assert_array_equal(got, shared.numpy("cifar10_test_acc")[idx])
    np.testing.assert_array_equal(jax.jit(lambda i: col[i])(jnp.asarray(idx)), got)


def test_unknown_column_lists_what_exists(shared):
    with pytest.raises(UnknownColumnError, match="cifar10_pixel3_latency") as e:
        shared.column("cifar10_pixel9_latency")
    assert isinstance(e.value, KeyError) and isinstance(e.value, ValueError)
    assert not shared.has("cifar10_pixel9_latency")


def test_describe_reports_coverage_units_sources_and_missing_devices(shared):
    text = shared.describe()
    assert "cifar10_pixel3_latency" in text and "15625/15625" in text and HW in text
    assert "missing: edgegpu, edgetpu" in text and "HW-NAS-Bench-v1_0.pickle" in text
    line = next(ln for ln in text.splitlines() if ln.startswith("cifar10_test_acc "))
    assert "94.3733" in line and "%" in line


def test_long_format_csv_with_dataset_column():
    root = require_data(ZC)
    t = read_table_file(root / ZC)
    assert t.count("cifar10_flops") == 491 and t.count("imagenet16_120_params") == 491
    assert t.units["cifar100_flops"] == "MFLOPs" and t.units["cifar10_val_accuracy"] == "%"
    with gzip.open(root / ZC, "rt") as f:
        rows = [r for r in csv.DictReader(f) if r["dataset"] == "ImageNet16-120"]
    idx = [int(r["arch_index"]) for r in rows]
    np.testing.assert_array_equal(t.numpy("imagenet16_120_flops")[idx],
                                  np.array([float(r["flops"]) for r in rows], np.float32))
    # the default folder scan does not pick up extra CSVs
    assert not load_table(root).has("cifar10_flops")


# ---------------------------------------------------------------------------- generic CSVs


def _write(path, text):
    path.write_text(text)
    return path


def test_csv_keyed_by_arch_index_partial_rows_and_blanks(tmp_path):
    p = _write(tmp_path / "mine.csv",
               "arch_index,my_latency,note_acc\n"
               "5,1.5,90\n"
               "0,2.0,\n"
               "15624,NA,70.25\n")
    t = load_table(p)
    lat, acc = t.numpy("my_latency"), t.numpy("note_acc")
    assert lat[5] == 1.5 and lat[0] == 2.0 and np.isnan(lat[15624])
    assert np.isnan(acc[0]) and acc[15624] == 70.25
    assert np.isnan(lat[1:5]).all() and t.count("my_latency") == 2
    assert t.units == {"my_latency": "ms", "note_acc": "%"} and t.sources["my_latency"] == "mine.csv"


def test_csv_keyed_by_arch_str_and_quoted_fields(tmp_path):
    s6111 = nb201.to_str(nb201.from_index(6111))
    p = _write(tmp_path / "by_str.csv",
               f'arch_str,"score"\n"{ARCH0}",1.25\n{s6111},"3"\n')
    t = load_table(p)
    assert t.numpy("score")[0] == 1.25 and t.numpy("score")[6111] == 3.0
    assert t.count("score") == 2


@pytest.mark.parametrize(
    "text, match",
    [
        ("arch_index,x\n3,1\n3,2\n", "architecture 3 appears twice"),
        ("arch_index,x\n3,1\n4,abc\n", "line 3, column 'x': cannot parse 'abc'"),
        ("arch_index,x\n3,1\n15625,2\n", "outside 0..15624"),
        ("arch_index,x\nseven,1\n", "line 2: arch_index 'seven'"),
        ("arch_index,x\n3,1,9\n", "line 2 has 3 fields"),
        ("index,x\n3,1\n", "no arch_index or arch_str column"),
        ("arch_index,x\n", "no data rows"),
        ("", "is empty"),
        ("arch_str,x\n|conv~0|+|none~0|none~1|+|none~0|none~1|none~2|,1\n", "conv~0"),
        (f"arch_index,arch_str,x\n1,{ARCH0},1\n", "does not match arch_str"),
        ("arch_index,op_codes,x\n0,421212,1\n", "op_codes '421212' do not match"),
        ("arch_index,x,x\n0,1,2\n", "repeats the column"),
    ],
)
def test_csv_validation_errors_name_file_and_line(tmp_path, text, match):
    p = _write(tmp_path / "bad.csv", text)
    with pytest.raises(TableFileError, match=match) as e:
        load_table(p)
    assert str(p) in str(e.value) and "To fix:" in str(e.value)


# ---------------------------------------------------------------------------- official pickle


def _hw_values(ds_i, m_i):
    """Deterministic, distinct per (dataset, metric, arch) values."""
    return (np.arange(15625) % 997 + 1) * 0.01 + ds_i * 100 + m_i


def _build_hw_pickle(path, datasets=("cifar10", "cifar100", "ImageNet16-120"), numpy_values=False,
                     bad_config=False):
    """A pickle with the structure of HW-NAS-Bench-v1_0.pickle (METHODS.md top)."""
    strs = nb201.to_str(nb201.ARCHS)
    nb = {}
    for di, ds in enumerate(datasets):
        entry = OrderedDict()
        for mi, m in enumerate(HW_PICKLE_METRICS):
            vals = _hw_values(di, mi)
            if m == "edgetpu_latency":
                vals = vals.copy()
                vals[:3] = -1  # the benchmark's "not measured"
            entry[m] = [np.float64(v) for v in vals[:50]] + vals[50:].tolist() if numpy_values \
                else vals.tolist()
        nc = {"cifar10": 10, "cifar100": 100}.get(ds, 120)
        entry["config"] = [{"dataset": ds, "name": "infer.tiny", "C": 16, "N": 5,
                            "arch_str": s, "num_classes": nc} for s in strs]
        if bad_config:
            entry["config"][2], entry["config"][3] = entry["config"][3], entry["config"][2]
        nb[ds] = entry
    obj = {"nasbench201": nb, "fbnet": {"edgegpu_latency": {"ConvNorm_H32_W32_Cin3_Cout16": 0.1}}}
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=4)
    return path


@pytest.fixture(scope="module")
def hw_pickle(tmp_path_factory):
    return _build_hw_pickle(tmp_path_factory.mktemp("hw") / "HW-NAS-Bench-v1_0.pickle")


def test_official_pickle_structure_is_read(hw_pickle):
    t = load_table(hw_pickle)
    assert len(t.columns) == 30
    for di, ds in enumerate(("cifar10", "cifar100", "imagenet16_120")):
        for mi, m in enumerate(HW_PICKLE_METRICS):
            want = _hw_values(di, mi).astype(np.float32)
            got = t.numpy(f"{ds}_{m}")
            if m == "edgetpu_latency":
                assert np.isnan(got[:3]).all()
                got, want = got[3:], want[3:]
            np.testing.assert_array_equal(got, want)
        assert t.devices(ds, "latency") == HW_DEVICES
        assert t.devices(ds, "energy") == ("edgegpu", "eyeriss", "fpga")
    assert t.units["cifar100_edgegpu_energy"] == "mJ"
    assert t.units["imagenet16_120_eyeriss_arithmetic_intensity"] == "op/B"
    assert t.sources["cifar10_fpga_latency"] == "HW-NAS-Bench-v1_0.pickle"


def test_pickle_with_numpy_scalars_and_folder_merge(tmp_path):
    root = require_data(ACC, HW)
    p = _build_hw_pickle(tmp_path / "HW-NAS-Bench-v1_0.pickle", datasets=("cifar100",),
                         numpy_values=True)
    t = load_table(p)
    assert t.numpy("cifar100_raspi4_latency")[0] == np.float32(_hw_values(0, 2)[0])
    # a folder: shared CSVs + the pickle, merged by architecture index
    for name in (ACC, HW):
        os.symlink(root / name, tmp_path / name)
    merged = load_table(tmp_path)
    assert merged.has("cifar10_test_acc") and merged.has("cifar100_edgegpu_latency")
    assert merged.numpy("cifar10_fpga_latency")[0] == np.float32(2.57296)
    assert merged.devices("cifar100") == HW_DEVICES


def test_pickle_numpy_arrays_allowed_only_when_numeric(tmp_path):
    p = tmp_path / "HW-NAS-Bench-v1_0.pickle"
    vals = np.linspace(1.0, 2.0, 15625)
    with open(p, "wb") as f:
        pickle.dump({"nasbench201": {"cifar10": {"fpga_energy": vals}}}, f)
    np.testing.assert_array_equal(load_table(p).numpy("cifar10_fpga_energy"), vals.astype(np.float32))
    with open(p, "wb") as f:
        pickle.dump({"nasbench201": {"cifar10": {"fpga_energy": np.array([1.0, "x"], object)}}}, f)
    with pytest.raises(TableFileError, match="non-numeric numpy dtype"):
        load_table(p)


def test_pickle_restricted_unpickler_refuses_code(tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    p = tmp_path / "evil.pickle"
    with open(p, "wb") as f:
        pickle.dump({"nasbench201": {"cifar10": {"fpga_latency": Evil()}}}, f)
    with pytest.raises(TableFileError, match="only plain containers and numbers"):
        load_table(p)
    assert not marker.exists()


@pytest.mark.parametrize(
    "obj, match",
    [
        ({"fbnet": {}}, "no 'nasbench201' entry"),
        ([1, 2, 3], "no 'nasbench201' entry"),
        ({"nasbench201": {"cifar10": {"fpga_latency": [1.0] * 10}}}, r"shape \(10,\)"),
        ({"nasbench201": {"cifar10": {"fpga_latency": ["a"] * 15625}}}, "non-numbers"),
        ({"nasbench201": {"cifar10": [1]}}, "expected a dict"),
    ],
)
def test_pickle_structure_errors(tmp_path, obj, match):
    p = tmp_path / "HW-NAS-Bench-v1_0.pickle"
    with open(p, "wb") as f:
        pickle.dump(obj, f)
    with pytest.raises(TableFileError, match=match) as e:
        load_table(p)
    assert "github.com/GATECH-EIC/HW-NAS-Bench" in str(e.value)


def test_pickle_config_out_of_order_is_refused(tmp_path):
    p = _build_hw_pickle(tmp_path / "x.pickle", datasets=("cifar10",), bad_config=True)
    with pytest.raises(TableFileError, match=r"config\[2\].*not in NB201 index order"):
        load_table(p)


# ---------------------------------------------------------------------------- npz cache


def test_import_round_trips_through_checksummed_npz(tmp_path, hw_pickle):
    root = require_data(ACC, HW)
    out = import_table(root, tmp_path / "shared.npz")
    assert out == tmp_path / "shared.npz" and out.exists()
    a, b = load_table(root), load_table(out)
    assert a.columns == b.columns and a.units == b.units
    np.testing.assert_array_equal(a.values, b.values)
    assert b.sources["cifar10_test_acc"] == f"{ACC} via shared.npz"
    # default output: <cache>/tables/<name>.npz, which load_table() then picks up
    out2 = import_table(hw_pickle)
    assert out2 == tmp_path / "cache" / "tables" / "HW-NAS-Bench-v1_0.npz"
    np.testing.assert_array_equal(load_table(out2).values, load_table(hw_pickle).values)


def test_default_load_merges_data_dir_and_imported_tables(tmp_path, monkeypatch, hw_pickle):
    root = require_data(ACC, HW)
    import_table(hw_pickle)
    monkeypatch.setenv("JAXNAS_DATA_DIR", str(root))
    with pytest.warns(UserWarning, match="differs between nb201_hw_costs.csv.gz and HW-NAS-Bench"):
        t = load_table()  # the synthetic pickle disagrees with the real CIFAR-10 latencies
    assert t.has("cifar10_test_acc") and t.devices("cifar10") == HW_DEVICES
    # shared CSV first: its fpga column wins where both know it
    assert t.numpy("cifar10_fpga_latency")[0] == np.float32(2.57296)
    assert t.sources["cifar10_fpga_latency"] == HW
    assert t.sources["cifar10_edgegpu_latency"] == "HW-NAS-Bench-v1_0.pickle via HW-NAS-Bench-v1_0.npz"


def test_npz_checksum_and_corruption_are_detected(tmp_path):
    t = BenchTable(["a_latency"], np.arange(15625, dtype=np.float32)[:, None], sources={"a_latency": "x"})
    p = save_table(t, tmp_path / "t.npz")
    np.testing.assert_array_equal(load_table(p).values, t.values)
    # same arrays, one value changed, old checksum kept -> refused
    with np.load(p) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["values"] = arrays["values"].copy()
    arrays["values"][7, 0] += 1
    tampered = tmp_path / "tampered.npz"
    np.savez(tampered, **arrays)
    with pytest.raises(TableFileError, match="checksum"):
        load_table(tampered)
    # truncated file
    cut = tmp_path / "cut.npz"
    cut.write_bytes(p.read_bytes()[: p.stat().st_size // 2])
    with pytest.raises(TableFileError, match="cut.npz.*corrupt.*jaxnas table import"):
        load_table(cut)
    with pytest.raises(ValueError, match=r"\.npz"):
        save_table(t, tmp_path / "t.csv")


# ---------------------------------------------------------------------------- missing / corrupt


def test_missing_files_and_folders_get_one_clear_error(tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError, match="not found.*nb201_accuracy.csv.gz.*shared data"):
        load_table(tmp_path / "nb201_accuracy.csv.gz")
    with pytest.raises(FileNotFoundError, match="GATECH-EIC/HW-NAS-Bench"):
        load_table(tmp_path / "HW-NAS-Bench-v1_0.pickle")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no benchmark table found in folder"):
        load_table(tmp_path / "empty")
    monkeypatch.delenv("JAXNAS_DATA_DIR", raising=False)
    monkeypatch.setattr(_paths, "PACKAGE_PARENT", tmp_path)  # not a checkout: no ../shared/data
    with pytest.raises(FileNotFoundError, match=r"JAXNAS_DATA_DIR is not set.*jaxnas table import"):
        load_table()
    monkeypatch.setenv("JAXNAS_DATA_DIR", str(tmp_path / "nope"))
    with pytest.raises(FileNotFoundError, match="not a folder"):
        load_table()
    with pytest.raises(ValueError, match="unsupported table file type"):
        read_table_file(tmp_path / "x.txt")


def test_corrupt_file_clear_error_and_nothing_half_written(tmp_path):
    root = require_data(ACC)
    bad = tmp_path / ACC
    bad.write_bytes((root / ACC).read_bytes()[:100_000])  # truncated gzip
    with pytest.raises(TableFileError, match=f"{ACC}: is not a valid gzip file.*shared data folder"):
        load_table(bad)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    with pytest.raises(TableFileError):
        import_table(bad, out_dir / "acc.npz")
    assert list(out_dir.iterdir()) == []  # no table, no temp file
    # a failed import leaves an existing table untouched
    good = import_table(root / ACC, out_dir / "acc.npz")
    before = good.read_bytes()
    with pytest.raises(TableFileError):
        import_table(bad, good)
    assert good.read_bytes() == before and [p.name for p in out_dir.iterdir()] == ["acc.npz"]


# ---------------------------------------------------------------------------- merge


def test_merge_precedence_fill_and_conflict_warning():
    a = np.full((15625, 1), np.nan, np.float32)
    a[0] = 1.0
    b = np.full((15625, 1), np.nan, np.float32)
    b[0], b[1] = 1.0, 2.0
    t = merge_tables([BenchTable(["x"], a, sources={"x": "A"}), BenchTable(["x"], b, sources={"x": "B"})])
    assert t.numpy("x")[0] == 1.0 and t.numpy("x")[1] == 2.0 and t.sources["x"] == "A + B"
    b[0] = 5.0
    with pytest.warns(UserWarning, match="differs between A and B"):
        t = merge_tables([BenchTable(["x"], a, sources={"x": "A"}),
                          BenchTable(["x"], b, sources={"x": "B"})])
    assert t.numpy("x")[0] == 1.0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        merge_tables([BenchTable(["x"], a), BenchTable(["y"], b)])
    with pytest.raises(ValueError, match="shape"):
        BenchTable(["x"], np.zeros((10, 1)))
    with pytest.raises(ValueError, match="duplicate"):
        BenchTable(["x", "x"], np.zeros((15625, 2)))


# ---------------------------------------------------------------------------- cost of loading


_MEASURE = r"""
import json, sys, time
def vm():
    d = {}
    for line in open('/proc/self/status'):
        k, _, v = line.partition(':')
        if k in ('VmRSS', 'VmHWM'):
            d[k] = int(v.split()[0]) / 1024
    return d
import jaxnas
from jaxnas.bench import load_table
before = vm()
t0 = time.perf_counter()
table = load_table(sys.argv[1])
dt = time.perf_counter() - t0
after = vm()
print(json.dumps({'seconds': dt, 'rss_added_mb': after['VmRSS'] - before['VmRSS'],
                  'peak_added_mb': after['VmHWM'] - before['VmRSS'], 'columns': len(table.columns)}))
"""


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="needs /proc (Linux)")
def test_load_cost_on_top_of_import(tmp_path):
    """Measured in a fresh process; memory is asserted, time only reported (shared machine)."""
    root = require_data(ACC, HW)
    npz = import_table(root, tmp_path / "shared.npz")
    for src in (root, npz):
        res = subprocess.run([sys.executable, "-c", _MEASURE, str(src)], capture_output=True,
                             text=True, check=True, env={**os.environ, "JAXNAS_NO_COMPILATION_CACHE": "1"})
        m = json.loads(res.stdout.strip().splitlines()[-1])
        print(f"\nload_table({src.name}): {m['seconds']:.3f} s, RSS +{m['rss_added_mb']:.1f} MB, "
              f"peak +{m['peak_added_mb']:.1f} MB")
        assert m["columns"] == 36  # 3 + 6 (12-epoch) accuracies, 27 latencies
        assert m["peak_added_mb"] < 100
