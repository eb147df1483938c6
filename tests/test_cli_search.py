"""`jaxnas search` and `jaxnas report`: files written, exit codes 0/1/2."""

from __future__ import annotations

import csv
import json

import pytest

from jaxnas.cli import main
from tests.conftest import require_data

DATA = ("nb201_accuracy.csv.gz", "nb201_hw_costs.csv.gz")

SMALL = """
seeds = 2
population = 12
generations = 3
devices = ["fpga", "pixel3"]
constraint_quantiles = [0.5, 0.75]
"""


@pytest.fixture()
def data_env(monkeypatch):
    root = require_data(*DATA)
    monkeypatch.setenv("JAXNAS_DATA_DIR", str(root))
    return root


@pytest.mark.parametrize("method", ["mo_hdnas", "hw_evrsnas"])
def test_search_writes_json_and_csv(method, tmp_path, data_env, capsys):
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'method = "{method}"\n' + SMALL)
    out = tmp_path / "run"
    assert main(["search", method, "--config", str(cfg), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "ORACLE" in printed and "| method |" in printed and "random" in printed
    data = json.loads((out / "result.json").read_text())
    assert data["method"] == method and data["meta"]["oracle"] is True
    assert data["config"]["population"] == 12
    with open(out / "cells.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2 * 2 * 2 * 2  # (method + random) x devices x seeds x constraints
    assert {r["method"] for r in rows} == {method, "random"}
    assert (out / "summary.csv").exists()
    md = (out / "summary.md").read_text()
    assert "ORACLE" in md and "|---|" in md

    # report DIR prints the same table; --resume reuses the finished result
    assert main(["report", str(out)]) == 0
    assert "| method |" in capsys.readouterr().out
    assert main(["search", method, "--config", str(cfg), "--out", str(out), "--resume"]) == 0
    assert "nothing rerun" in capsys.readouterr().out


def test_search_usage_errors(tmp_path, data_env, capsys):
    cfg = tmp_path / "c.toml"
    cfg.write_text(SMALL)
    assert main(["search", "darts", "--config", str(cfg)]) == 2
    assert "unknown method" in capsys.readouterr().err
    assert main(["search", "mo_hdnas", "--config", str(tmp_path / "missing.toml")]) == 2
    assert "not found" in capsys.readouterr().err
    bad = tmp_path / "bad.toml"
    bad.write_text(SMALL + "\npopulaton = 5\n")
    assert main(["search", "mo_hdnas", "--config", str(bad), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "populaton" in err and len(err.strip().splitlines()) == 1
    broken = tmp_path / "broken.toml"
    broken.write_text("seeds = [")
    assert main(["search", "mo_hdnas", "--config", str(broken)]) == 2
    other = tmp_path / "other.toml"
    other.write_text('method = "hw_evrsnas"\n' + SMALL)
    assert main(["search", "mo_hdnas", "--config", str(other)]) == 2
    assert main(["report", str(tmp_path / "nothing")]) == 2


def test_search_help_lists_options(capsys):
    with pytest.raises(SystemExit) as e:
        main(["search", "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for opt in ("--config", "--out", "--resume", "hw_evrsnas", "mo_hdnas"):
        assert opt in out
