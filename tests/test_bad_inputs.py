"""Every input is checked before work starts: one line naming the key or option and the
accepted range, exit status 2 (issue: inputs checked before work starts, unclear errors)."""

from __future__ import annotations

import json

import pytest

from jaxnas.cli import main
from tests.conftest import require_data

DATA = ("nb201_accuracy.csv.gz", "nb201_hw_costs.csv.gz")
BASE = 'devices = ["pixel3"]\nseeds = 1\npopulation = 8\ngenerations = 1\n'


@pytest.fixture()
def data_env(monkeypatch):
    monkeypatch.setenv("JAXNAS_DATA_DIR", str(require_data(*DATA)))


def _one_line(capsys) -> str:
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err
    return err


@pytest.mark.parametrize("method,extra,key", [
    ("mo_hdnas", "seeds = 1000000000", "seeds"),
    ("mo_hdnas", "generations = 1000000000", "generations"),
    ("mo_hdnas", "population = 1000000000", "population"),
    ("mo_hdnas", "sbx_prob = 5.0", "sbx_prob"),
    ("mo_hdnas", "sbx_eta = nan", "sbx_eta"),
    ("mo_hdnas", "pm_prob_var = -0.1", "pm_prob_var"),
    ("hw_evrsnas", "mutation_rate = 2.5", "mutation_rate"),
    ("hw_evrsnas", "lam = nan", "lam"),
    ("hw_evrsnas", "constraint_quantiles = [1.5]", "constraint_quantiles"),
    ("mo_hdnas", "seed_offset = -1", "seed_offset"),
    ("mo_hdnas", "[rmi]\nsteps = -3", "steps"),
])
def test_bad_config_values_exit_2_before_work(method, extra, key, tmp_path, capsys):
    cfg = tmp_path / "c.toml"
    lines = [line for line in BASE.splitlines() if not line.startswith(extra.split(" ")[0])]
    if extra.startswith("[rmi]"):
        lines.insert(0, 'estimator = "rmi"')
    if method == "hw_evrsnas":
        lines.append("tournament_size = 2")
    cfg.write_text("\n".join(lines + [extra]) + "\n")
    assert main(["search", method, "--config", str(cfg), "--out", str(tmp_path / "o")]) == 2
    assert key in _one_line(capsys)
    assert not (tmp_path / "o").exists()  # nothing written


def test_out_that_is_a_file_is_refused_before_work(tmp_path, capsys):
    cfg = tmp_path / "c.toml"
    cfg.write_text(BASE)
    f = tmp_path / "file"
    f.write_text("x")
    assert main(["search", "mo_hdnas", "--config", str(cfg), "--out", str(f)]) == 2
    assert "--out" in _one_line(capsys)
    assert main(["quickstart", "--out", str(f / "sub")]) == 2
    assert "--out" in _one_line(capsys)
    assert main(["train-reference", "--no-progress", "--out", str(f / "x.npz")]) == 2
    assert "--out" in _one_line(capsys)
    assert main(["train-reference", "--no-progress", "--seed", "-1"]) == 2
    assert "--seed" in _one_line(capsys)


def test_non_utf8_files_name_themselves(tmp_path, capsys):
    cfg = tmp_path / "latin1.toml"
    cfg.write_bytes("seeds = 1 # caf\xe9\n".encode("latin-1"))
    assert main(["search", "mo_hdnas", "--config", str(cfg)]) == 2
    assert "latin1.toml" in _one_line(capsys)
    run = tmp_path / "run"
    run.mkdir()
    (run / "result.json").write_bytes(b'{"method": "caf\xe9"}')
    (run / "COMPLETE").write_text("{}")
    assert main(["report", str(run)]) == 2
    assert "result.json" in _one_line(capsys)


@pytest.mark.parametrize("content", ["123", '{"method": "x", "config": 1, "meta": {}, '
                                            '"summary": [], "rows": []}',
                                     '{"method": "x", "config": {}, "meta": {}, '
                                     '"summary": [], "rows": ["a"]}'])
def test_report_on_malformed_result_is_one_clear_line(content, tmp_path, capsys):
    (tmp_path / "result.json").write_text(content)
    (tmp_path / "COMPLETE").write_text("{}")
    assert main(["report", str(tmp_path)]) == 2
    err = _one_line(capsys)
    assert "not a jaxnas result file" in err and "attribute" not in err


def test_corrupt_table_is_a_usage_error_in_table_info(tmp_path, capsys):
    bad = tmp_path / "t.csv"
    bad.write_text("arch_index,cifar10_test_acc\n0,1.0\nnot-a-number,2\n")
    assert main(["table", "info", str(bad)]) == 2
    _one_line(capsys)


def test_dataset_without_device_columns_says_how_to_get_them(data_env, tmp_path, capsys):
    cfg = tmp_path / "c.toml"
    cfg.write_text('dataset = "cifar100"\nscore_column = "cifar100_test_acc"\nseeds = 1\n'
                   'population = 8\ngenerations = 1\n')
    assert main(["search", "mo_hdnas", "--config", str(cfg), "--out", str(tmp_path / "o")]) == 2
    assert "jaxnas table import" in _one_line(capsys)


def test_strict_json_parse_of_a_finished_run(data_env, tmp_path, capsys):
    cfg = tmp_path / "c.toml"
    cfg.write_text(BASE)
    out = tmp_path / "o"
    assert main(["search", "mo_hdnas", "--config", str(cfg), "--out", str(out)]) == 0
    for f in ("result.json", "pareto.json", "run.json"):
        json.loads((out / f).read_text(), parse_constant=lambda c: (_ for _ in ()).throw(
            ValueError(c)))
    for png in ("pareto.png", "regret.png", "history.png"):
        assert (out / png).read_bytes()[:4] == b"\x89PNG"
