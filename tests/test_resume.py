"""Resuming an interrupted search whose estimator is not traceable (the RMI-on-CPU case).

The estimator below is the shared table's accuracy plus key-dependent noise, evaluated from
Python: like RMI, a member's score depends on the key and on its position among the members
trained in one call, so the replay is exact only if it asks for the same architectures in
the same calls with the same keys.
"""

from __future__ import annotations

import json

import jax
import numpy as np
import pytest

from tests.conftest import require_data

DATA = ("nb201_accuracy.csv.gz", "nb201_hw_costs.csv.gz")
CONFIG = {"devices": ["pixel3"], "seeds": 2, "population": 8, "generations": 3,
          "genome": "categorical", "constraint_quantiles": [0.5]}


class NoisyTable:
    """100 - accuracy + noise(key, position); not traceable (numpy on the host)."""

    traceable = False
    name = "noisy_table"

    def __init__(self, table, interrupt_after: int | None = None):
        from jaxnas.spaces import nb201

        self._nb201 = nb201
        self.err = 100.0 - table.numpy("cifar10_test_acc")
        self.trained = 0
        self.interrupt_after = interrupt_after

    def evaluate(self, key, archs):
        archs = np.asarray(archs)
        if self.interrupt_after is not None and self.trained >= self.interrupt_after:
            raise KeyboardInterrupt("simulated interruption")
        self.trained += len(archs)
        kd = np.asarray(jax.random.key_data(key) if jax.dtypes.issubdtype(
            jax.numpy.asarray(key).dtype, jax.dtypes.prng_key) else key).ravel()
        rng = np.random.default_rng([int(v) for v in kd])
        noise = rng.normal(0.0, 2.0, len(archs))
        return (self.err[self._nb201.index(archs)] + noise).astype(np.float32)


@pytest.fixture(scope="module")
def table():
    from jaxnas.bench import load_table

    return load_table(require_data(*DATA))


def _key(rows):
    return sorted((r["method"], r["seed"], r["arch"], round(r["score"], 4)) for r in rows)


@pytest.mark.parametrize("method", ["mo_hdnas", "hw_evrsnas"])
def test_resume_replays_an_interrupted_run_exactly(method, table):
    from jaxnas import methods

    cfg = {**CONFIG, "tournament_size": 3} if method == "hw_evrsnas" else CONFIG
    full_est = NoisyTable(table)
    full = methods.run(method, cfg, table=table, estimator=full_est)

    saved = {}
    part_est = NoisyTable(table, interrupt_after=full_est.trained // 2)
    with pytest.raises(KeyboardInterrupt):
        methods.run(method, cfg, table=table, estimator=part_est,
                    on_fitness=lambda c: saved.update(c))
    assert 0 < len(saved) == part_est.trained < full_est.trained

    rest_est = NoisyTable(table)
    resumed = methods.run(method, cfg, table=table, estimator=rest_est,
                          fitness_cache=dict(saved))
    assert _key(resumed.rows) == _key(full.rows)
    # only what the interrupted run had not reached is trained again
    assert rest_est.trained == full_est.trained - part_est.trained
    assert resumed.meta["timing"]["resumed_with_scores"] == len(saved)


def test_fitness_cache_files_belong_to_one_run(tmp_path):
    from jaxnas import runs

    fp = runs.run_fingerprint("mo_hdnas", {"estimator": "rmi", "rmi": {"steps": 150}})
    assert runs.load_fitness_cache(tmp_path, fp) is None
    runs.save_fitness_cache(tmp_path, fp, {12: 0.5, 7: 1.25})
    assert runs.load_fitness_cache(tmp_path, fp) == {12: 0.5, 7: 1.25}
    other = runs.run_fingerprint("mo_hdnas", {"estimator": "rmi", "rmi": {"steps": 100}})
    with pytest.raises(ValueError, match="config keys differ: rmi"):
        runs.load_fitness_cache(tmp_path, other)
    with pytest.raises(ValueError, match="method differs"):
        runs.load_fitness_cache(tmp_path, runs.run_fingerprint("hw_evrsnas", fp["config"]))
    (tmp_path / runs.FITNESS_CACHE).write_text("{not json")
    with pytest.raises(ValueError, match="not a jaxnas fitness cache"):
        runs.load_fitness_cache(tmp_path, fp)


def test_cli_resume_refuses_a_cache_of_another_config(tmp_path, capsys):
    require_data(*DATA)
    from jaxnas import runs
    from jaxnas.cli import main

    cfg = tmp_path / "c.toml"
    cfg.write_text('method = "mo_hdnas"\nseeds = 1\npopulation = 8\ngenerations = 1\n'
                   'devices = ["pixel3"]\n')
    out = tmp_path / "run"
    runs.save_fitness_cache(out, runs.run_fingerprint("mo_hdnas", {"seeds": 2}), {1: 1.0})
    assert main(["search", "mo_hdnas", "--config", str(cfg), "--out", str(out), "--resume"]) == 2
    err = capsys.readouterr().err
    assert "belongs to another run" in err and len(err.strip().splitlines()) == 1
    assert json.loads((out / runs.FITNESS_CACHE).read_text())["scores"] == {"1": 1.0}
