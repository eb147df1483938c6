"""One-shot methods (issue 11): evnas and weight-sharing cmanas on tiny synthetic data.

Tiny supernets (C=4, one cell per stage, 8x8 images, 32 train / 16 valid images, P=4,
2 generations): shapes, determinism by seed, the round-robin assignment evnas trains with,
decoding of hand-made alphas, full runs through ``methods.run`` and the CLI, resume equality
and bad config values (exit 2). Decoding of the alpha-hat and the one-step PyTorch parity are
in tests/test_supernet*.py.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import flax.serialization as fser
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxnas import cli, methods
from jaxnas.methods import cmanas
from jaxnas.methods.oneshot import build_problem, space_encoding
from jaxnas.nets.supernet_train import SupernetState
from jaxnas.spaces import darts, nb201

TINY = dict(dataset="synthetic", train_images=32, valid_images=16, image_size=8, channels=4,
            cells=1, batch_size=8, valid_batch=64, seed=3)
EVNAS = dict(TINY, population=4, generations=3, tournament_size=2)
CMANAS = dict(TINY, estimator="supernet", pretrain_epochs=1, generations=2, popsize=4)


class _Stop(Exception):
    pass


@pytest.fixture(scope="module")
def evnas_ref():
    return methods.run("evnas", EVNAS)


def test_decoding_hand_made_alphas():
    enc = space_encoding("nb201")
    a = np.zeros((1, 6, 5), np.float32)
    a[0, np.arange(6), [0, 1, 2, 3, 4, 0]] = 1.0  # none allowed, per-edge argmax
    np.testing.assert_array_equal(enc.decode(jnp.asarray(a)), [[0, 1, 2, 3, 4, 0]])
    # DARTS genome: 28 edge rows (14 normal, then 14 reduce), top-2 rule without none
    enc = space_encoding("darts")
    assert enc.shape == (28, 8)
    g = np.full((1, 28, 8), 0.0, np.float32)
    g[0, :, 0] = 5.0  # 'none' strongest everywhere: must never be chosen
    g[0, 0, 4] = g[0, 1, 5] = 2.0  # node 0: sep_conv_3x3 from c_{k-2}, sep_conv_5x5 from c_{k-1}
    geno = np.asarray(enc.decode(jnp.asarray(g)))
    assert geno.shape == (1, 2, 8, 2)
    assert (geno[..., 0] != darts.NONE).all()
    assert sorted(map(tuple, geno[0, 0, :2])) == [(4, 0), (5, 1)]
    np.testing.assert_array_equal(geno, darts.genotype(g.reshape(1, 2, 14, 8)))


def test_round_robin_assignment_of_evnas_training():
    cfg = methods.parse_config("evnas", EVNAS)
    prob = build_problem(cfg)
    prob.set_schedule(1, jax.random.PRNGKey(0))
    seen = []

    def fake_step(w, o, s, alpha, batch):  # records which alpha each mini-batch trains
        seen.append(np.asarray(alpha))
        return w, o, s, jnp.float32(0.0)

    prob._step = fake_step
    archs = jnp.asarray([[0, 1, 2, 3, 4, 0], [1] * 6, [2] * 6])
    prob.train_epoch(jax.random.PRNGKey(1), archs)
    hat = np.asarray(nb201.discretize(archs))
    assert len(seen) == prob.steps_per_epoch == 4
    for b, alpha in enumerate(seen):
        np.testing.assert_array_equal(alpha, hat[b % 3])
    assert prob.epochs_done == 1


def test_evnas_run_shapes_and_seed(evnas_ref):
    r = evnas_ref
    assert len(r.history["best_fitness"]) == EVNAS["generations"]
    assert r.history["evaluations"][-1] == r.meta["evaluations"] == 4 * 3
    assert r.meta["epochs"] == 3
    assert nb201.to_str(nb201.from_str(r.answer["genotype"])) == r.answer["genotype"]
    assert r.answer["index"] == int(nb201.index(r.answer["genotype"]))
    assert r.baselines["rsws"]["evaluations"] == 12
    assert 0 < len(r.supernet)
    json.dumps(r.to_json(), allow_nan=False)
    other = methods.run("evnas", dict(EVNAS, seed=4))
    assert other.history != r.history  # another seed, another run (equal seeds: resume test)


def test_evnas_resume_equals_uninterrupted_and_is_deterministic(evnas_ref):
    saved = []

    def stop_after_generation_1(blob):
        saved.append(blob)
        if len(saved) == 2:  # after EvNAS generations 1 (the initial population) and 2
            raise _Stop

    with pytest.raises(_Stop):
        methods.run("evnas", EVNAS, on_checkpoint=stop_after_generation_1)
    resumed = methods.run("evnas", EVNAS, checkpoint=saved[-1])
    assert resumed.answer == evnas_ref.answer
    assert resumed.history == evnas_ref.history
    assert resumed.supernet == evnas_ref.supernet
    assert resumed.meta["timing"]["resumed"] is True


def test_cmanas_supernet_run_through_cli(tmp_path):
    cfg = methods.parse_config("cmanas", CMANAS)
    assert isinstance(cfg, cmanas.SupernetConfig) and cfg.population == 4
    toml = tmp_path / "c.toml"
    toml.write_text("\n".join(f"{k} = {json.dumps(v)}" for k, v in CMANAS.items()))
    out = tmp_path / "run"
    assert cli.main(["search", "cmanas", "--config", str(toml), "--out", str(out)]) == 0
    for f in ("result.json", "history.csv", "fitness.png", "supernet.msgpack", "COMPLETE"):
        assert (out / f).is_file(), f
    assert not (out / "checkpoint.msgpack").exists()
    data = json.loads((out / "result.json").read_text())
    h = data["history"]
    assert len(h["best_fitness"]) == len(h["mean_arch_fitness"]) == 2
    assert h["evaluations"][-1] == 10  # (lambda + 1) per generation
    assert data["meta"]["epochs"] == 1  # pre-training only; weights fixed during the search
    # the weights file holds the supernet state (weights, optimiser state, BN statistics)
    raw = (out / "supernet.msgpack").read_bytes()
    assert set(fser.msgpack_restore(raw)) == set(SupernetState.__dataclass_fields__)
    # finished: --resume prints, reruns nothing
    assert cli.main(["search", "cmanas", "--config", str(toml), "--out", str(out),
                     "--resume"]) == 0


def test_cmanas_resume_equals_uninterrupted():
    ref = methods.run("cmanas", CMANAS)
    saved = []

    def stop(blob):  # saves: pre-training epoch 1, CMA-ES init, generation 0 (stop), ...
        saved.append(blob)
        if len(saved) == 3:
            raise _Stop

    with pytest.raises(_Stop):
        methods.run("cmanas", CMANAS, on_checkpoint=stop)
    resumed = methods.run("cmanas", CMANAS, checkpoint=saved[-1])
    assert resumed.answer == ref.answer and resumed.history == ref.history
    assert resumed.baselines == ref.baselines


@pytest.mark.parametrize("bad", [{"population": 1}, {"space": "foo"}, {"mutation_rate": 2.0},
                                 {"channels": 0}, {"image_size": 10}, {"bogus": 1}])
def test_bad_config_values_exit_2(tmp_path, capsys, bad):
    toml = tmp_path / "bad.toml"
    toml.write_text("\n".join(f"{k} = {json.dumps(v)}" for k, v in {**EVNAS, **bad}.items()))
    assert cli.main(["search", "evnas", "--config", str(toml), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("jaxnas: error: evnas")


def test_bad_cmanas_supernet_values_exit_2(tmp_path, capsys):
    toml = tmp_path / "bad.toml"
    toml.write_text("\n".join(f"{k} = {json.dumps(v)}" for k, v in {**CMANAS, "popsize": 1}.items()))
    assert cli.main(["search", "cmanas", "--config", str(toml)]) == 2
    assert "popsize" in capsys.readouterr().err


def test_search_help(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["search", "--help"])
    assert e.value.code == 0
    assert "evnas" in capsys.readouterr().out


@pytest.mark.slow
@pytest.mark.parametrize("name,extra", [("evnas", dict(population=3, generations=2,
                                                       tournament_size=2)),
                                        ("cmanas", dict(estimator="supernet", pretrain_epochs=1,
                                                        generations=1, popsize=3))])
def test_darts_space_runs(name, extra):
    cfg = dict(TINY, space="darts", cells=3, image_size=8, batch_size=16, **extra)
    r = methods.run(name, cfg)
    geno = darts.from_str(r.answer["genotype"])
    assert geno.shape == (2, 8, 2) and (geno[..., 0] != darts.NONE).all()
    assert "index" not in r.answer
    assert len(r.history["best_fitness"]) == (2 if name == "evnas" else 1)


@pytest.mark.parametrize("name", ["evnas", "cmanas", "nevonas"])
@pytest.mark.parametrize("space", ["nb201", "darts"])
@pytest.mark.parametrize("scale", ["", "-cpu"])
def test_shipped_oneshot_configs_parse(name, space, scale):
    path = Path(__file__).resolve().parents[1] / "configs" / f"{name}_{space}{scale}.toml"
    raw = tomllib.loads(path.read_text())
    assert raw.pop("method") == name
    cfg = methods.parse_config(name, raw)
    assert methods.is_oneshot(cfg) and cfg.space == space and cfg.dataset == "cifar10"
    if not scale:  # the published settings
        assert cfg.channels == 16 and cfg.train_images == cfg.valid_images == 0
        want = {"evnas": 50, "nevonas": 20}.get(name, 14 if space == "nb201" else 20)
        assert cfg.population == want
