"""The quickstart end to end (configs/quickstart.toml through methods.run), with tiny
settings and latencies pinned through the cache."""

import csv
import json

import numpy as np
import pytest

from jaxnas import quickstart as qs
from jaxnas import report, runs
from jaxnas.cli import main
from jaxnas.costs.latency import LatencySpec, LatencyTable, cache_path, machine_fingerprint
from jaxnas.metrics import non_dominated_rank

CFG = qs.config(generations=2, population=6, steps=4, seed=3)
CFG["latency_validation"] = 0


def _pin_latency():
    spec = LatencySpec(C=CFG["rmi"]["C"], N=CFG["rmi"]["N"], image_size=8, in_channels=3,
                       num_classes=10, batch_size=CFG["latency_batch"])
    lut = np.array([[0, 0.01, 0.05, 0.20, 0.03], [0, 0.01, 0.04, 0.15, 0.02],
                    [0, 0.01, 0.03, 0.30, 0.02]])
    table = LatencyTable(spec, lut, 1.0, {"stem": 0.25, "reduce1": 0.25, "reduce2": 0.25,
                                          "head": 0.25}, machine_fingerprint())
    table.save(cache_path(spec))
    return table


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("qs")
    mp = pytest.MonkeyPatch()
    mp.setenv("JAXNAS_CACHE_DIR", str(root / "cache"))  # latency table and reference
    try:
        table = _pin_latency()
        outs = []
        for i in range(2):
            out = root / f"run{i}"
            result = qs.run(CFG)
            runs.write_result(result, out, extra_files=lambda o, r=result: report.write_plots(
                runs.clean_json(r.to_json()), o))
            outs.append(out)
    finally:
        mp.undo()
    return outs, table


def test_outputs_exist_and_parse(two_runs):
    (out, _), table = two_runs
    rows = json.loads((out / "pareto.json").read_text())
    assert rows and {"arch", "rmi_loss", "cost_ms", "diversity"} <= set(rows[0])
    with open(out / "pareto.csv") as f:
        csv_rows = list(csv.DictReader(f))
    assert [r["arch"] for r in csv_rows] == [r["arch"] for r in rows]
    run = json.loads((out / "run.json").read_text())
    assert run["seed"] == 3 and run["config"]["population"] == 6
    assert 0.0 <= run["reference_test_accuracy"] <= 1.0
    assert (out / "pareto.png").read_bytes()[:4] == b"\x89PNG"
    # the latency is the pinned table's prediction
    from jaxnas.spaces import nb201

    for r in rows:
        assert r["cost_ms"] == pytest.approx(float(table.predict(nb201.from_str(r["arch"]))), rel=1e-5)


def test_pareto_set_is_non_dominated(two_runs):
    (out, _), _ = two_runs
    rows = json.loads((out / "pareto.json").read_text())
    pts = np.array([[r["rmi_loss"], r["cost_ms"]] for r in rows], np.float32)
    assert np.all(np.asarray(non_dominated_rank(pts)) == 0)
    final = json.loads((out / "result.json").read_text())["fronts"]["local_cpu"]
    final = [p for p in final if p["connected"]]  # disconnected cells are kept off the front
    pop = np.array([[p["score"], p["cost"]] for p in final], np.float32)
    front = {p["arch"] for p, r in zip(final, np.asarray(non_dominated_rank(pop))) if r == 0}
    assert front == {r["arch"] for r in rows}


def test_same_seed_same_pareto_set(two_runs):
    (a, b), _ = two_runs
    ra = json.loads((a / "pareto.json").read_text())
    rb = json.loads((b / "pareto.json").read_text())
    assert [r["arch"] for r in ra] == [r["arch"] for r in rb]
    np.testing.assert_allclose([r["rmi_loss"] for r in ra], [r["rmi_loss"] for r in rb], rtol=1e-5)


def test_cli_bad_values_exit_2(capsys):
    assert main(["quickstart", "--population", "2"]) == 2
    assert "population" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(["quickstart", "--generations", "x"])
    assert e.value.code == 2
    assert main(["quickstart", "--seed", "-1"]) == 2
    assert "--seed" in capsys.readouterr().err


def test_shipped_quickstart_config_is_the_packaged_one():
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    assert (repo / "configs" / "quickstart.toml").read_text() == qs.CONFIG_FILE.read_text()
