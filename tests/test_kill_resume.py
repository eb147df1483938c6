"""Kill anywhere, resume exactly: a `jaxnas search` subprocess is SIGKILLed at fault points
(inside the result-writing window, and after a generation of a non-traceable run), resumed
with --resume, and its results compared with an uninterrupted run's."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, require_data

DATA = ("nb201_accuracy.csv.gz", "nb201_hw_costs.csv.gz")
TABLE_CFG = """method = "mo_hdnas"
devices = ["pixel3"]
seeds = 2
population = 8
generations = 2
constraint_quantiles = [0.5]
"""


def _search(cfg: Path, out: Path, *extra, fault: str | None = None, method="mo_hdnas"):
    env = dict(os.environ, JAXNAS_DATA_DIR=str(require_data(*DATA)))
    env.pop("JAXNAS_FAULT", None)
    if fault:
        env["JAXNAS_FAULT"] = fault
    return subprocess.run([sys.executable, "-m", "jaxnas.cli", "search", method, "--config",
                           str(cfg), "--out", str(out), *extra], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600)


def _results(out: Path) -> dict:
    """Everything a run found, without wall-clock times and dates."""
    data = json.loads((out / "result.json").read_text())
    rows = [{k: v for k, v in r.items() if k != "seconds"} for r in data["rows"]]
    summary = [{k: v for k, v in r.items() if k != "seconds_mean"} for r in data["summary"]]
    return {"rows": rows, "summary": summary, "fronts": data["fronts"],
            "pareto": (out / "pareto.json").read_text(),
            "cells": [line.rsplit(",", 1)[0] for line in (out / "cells.csv").read_text().splitlines()]}


@pytest.fixture(scope="module")
def table_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("kill")
    cfg = root / "c.toml"
    cfg.write_text(TABLE_CFG)
    ref = root / "ref"
    assert _search(cfg, ref).returncode == 0
    return root, cfg, _results(ref)


@pytest.mark.parametrize("point", ["write:result.json", "write:cells.csv", "write:complete"])
def test_sigkill_in_the_write_window_then_resume(table_runs, point):
    root, cfg, expected = table_runs
    out = root / point.replace(":", "-").replace(".", "-")
    killed = _search(cfg, out, fault=point)
    assert killed.returncode == -signal.SIGKILL
    assert not (out / "COMPLETE").exists()  # never looks finished
    # report refuses the unfinished folder with one line, exit 2
    rep = subprocess.run([sys.executable, "-m", "jaxnas.cli", "report", str(out)], cwd=REPO,
                         capture_output=True, text=True)
    assert rep.returncode == 2 and "unfinished" in rep.stderr
    resumed = _search(cfg, out, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert (out / "COMPLETE").exists()
    assert _results(out) == expected


def test_resume_of_a_finished_run_refuses_another_config(table_runs):
    root, cfg, _ = table_runs
    out = root / "ref"
    other = root / "other.toml"
    other.write_text(TABLE_CFG.replace("generations = 2", "generations = 3"))
    p = _search(other, out, "--resume")
    assert p.returncode == 2
    assert "generations" in p.stderr and len(p.stderr.strip().splitlines()) == 1
    same = _search(cfg, out, "--resume")
    assert same.returncode == 0 and "nothing rerun" in same.stdout


RMI_CFG = """method = "mo_hdnas"
estimator = "rmi"
cost = "flops"
report_column = "none"
seeds = 1
population = 4
generations = 2
constraint_quantiles = [0.5]

[rmi]
dataset = "digits"
reference = "digits_resnet8"
C = 4
N = 1
steps = 2
batch_size = 8
pool_factor = 4
strategy = "composed"
workers = 1
"""


def test_sigkill_a_small_rmi_run_after_a_generation_then_resume(tmp_path):
    """A non-traceable (RMI) run killed after its second saved generation resumes from its
    fitness cache, trains only what is missing, and ends where an uninterrupted run ends."""
    cfg = tmp_path / "rmi.toml"
    cfg.write_text(RMI_CFG)
    ref = _search(cfg, tmp_path / "ref")
    assert ref.returncode == 0, ref.stderr
    out = tmp_path / "killed"
    killed = _search(cfg, out, fault="cache:2")
    assert killed.returncode == -signal.SIGKILL
    saved = json.loads((out / "fitness_cache.json").read_text())["scores"]
    assert saved and not (out / "COMPLETE").exists()
    resumed = _search(cfg, out, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert "already scored" in resumed.stdout
    assert _results(out) == _results(tmp_path / "ref")
