"""pEvoNAS (METHODS.md 3): weight inheritance, space shrinking, decoding in the reduced
space, the convergence stop, determinism, resume equality and the CLI.

Real runs use the tiny synthetic supernets of tests/test_oneshot.py (C=4, one cell per
stage, 8x8 images) with two stages (5 -> 2 ops per edge) and a few generations. The stop
rule and the stage chaining are also checked with the real runner on a made-up fitness
and no supernet training (no compilation of the supernet).
"""

from __future__ import annotations

import dataclasses
import json
import tomllib
import types
from pathlib import Path

import flax.serialization as fser
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxnas import cli, methods
from jaxnas.methods import pevonas as pv
from jaxnas.nets.darts_supernet import DartsSearchNetwork
from jaxnas.nets.inherit import count_leaves, inherit_params
from jaxnas.nets.supernet import NB201Supernet
from jaxnas.nets.supernet_train import init_variables
from jaxnas.spaces import darts, nb201

TINY = dict(dataset="synthetic", train_images=32, valid_images=16, image_size=8, channels=4,
            cells=1, batch_size=8, valid_batch=64, seed=3)
PEV = dict(TINY, population=4, tournament_size=2, train_epochs=1, max_generations=3,
           converge_generations=2, progression=[5, 2])


class _Stop(Exception):
    pass


def _leaves(tree, prefix=()):
    for k, v in tree.items():
        if isinstance(v, dict):
            yield from _leaves(v, prefix + (k,))
        else:
            yield "/".join(prefix + (k,)), v


# ---------------------------------------------------------------------------- inheritance


@pytest.mark.parametrize("space", ["nb201", "darts"])
def test_inheritance_copies_exactly_the_matching_weights(space):
    if space == "nb201":
        old_ops = pv.full_ops("nb201")
        new_ops = (("none", "skip_connect"), ("nor_conv_1x1", "nor_conv_3x3"),
                   ("nor_conv_3x3", "avg_pool_3x3"), ("nor_conv_1x1",), ("skip_connect",),
                   ("nor_conv_3x3",))
        old_ops = old_ops[:3] + (("none", "nor_conv_3x3"),) * 3  # edges 3-5 lack some new ops
        make = lambda ops: NB201Supernet(C=4, N=1, edge_ops=ops, track_running_stats=False)
    else:
        full = pv.full_ops("darts")
        # old: none + the 4 convolutions; new: skip_connect (weights in reduction edges:
        # FactorizedReduce, not in the old supernet) and sep_conv_5x5 (in it)
        old_ops = pv.shrink("darts", full, np.tile([5.0, 0, 0, 0, 4, 3, 2, 1], (28, 1)), 5)
        new_ops = pv.shrink("darts", full, np.tile([0.0, 0, 0, 9, 0, 8, 0, 0], (28, 1)), 2)
        make = lambda ops: DartsSearchNetwork(C=4, layers=3, edge_ops=ops)
    old = init_variables(jax.random.PRNGKey(0), make(old_ops), (8, 8, 3))["params"]
    fresh = init_variables(jax.random.PRNGKey(1), make(new_ops), (8, 8, 3))["params"]
    tree, copied = inherit_params(fresh, old)
    old_leaves, fresh_leaves = dict(_leaves(old)), dict(_leaves(fresh))
    expected = sorted(p for p, v in fresh_leaves.items()
                      if p in old_leaves and old_leaves[p].shape == v.shape)
    assert copied == expected
    assert 0 < len(copied) < count_leaves(fresh)
    for path, value in _leaves(tree):
        ref = old_leaves[path] if path in copied else fresh_leaves[path]
        np.testing.assert_array_equal(value, ref, err_msg=path)
    # what "matching" means: same cell, same edge, same op name; non-cell weights always
    ops_of = {}
    for p in copied:
        parts = p.split("/")
        if len(parts) > 2 and parts[1].startswith("edge_"):
            ops_of.setdefault(parts[1], set()).add(parts[2])
    if space == "nb201":
        assert "stem_kernel" in copied and "classifier_kernel" in copied
        assert ops_of["edge_1"] == {"nor_conv_1x1", "nor_conv_3x3"}
        assert ops_of["edge_5"] == {"nor_conv_3x3"} and "edge_3" not in ops_of
    else:
        assert "stem_kernel" in copied and "cells_0/preprocess0/kernel" in copied
        assert set(ops_of) == {f"edge_{e}" for e in range(14)}
        assert all(v == {"sep_conv_5x5"} for v in ops_of.values())
        skip = [p for p in fresh_leaves if "/skip_connect/" in p]
        assert skip and not set(skip) & set(copied)  # reduction edges' FactorizedReduce: fresh


# ---------------------------------------------------------------------------- the space


def test_shrink_keeps_the_top_k_ops_of_the_best_alpha_nb201():
    full = pv.full_ops("nb201")
    a = np.array([[0.1, 0.9, 0.3, 0.8, 0.2],   # skip, conv3
                  [0.5, 0.5, 0.5, 0.1, 0.1],   # tie: the lower index wins (none, skip, conv1)
                  [0.0, 0.0, 0.0, 0.0, 1.0],
                  [1.0, 0.9, 0.8, 0.7, 0.6],
                  [0.2, 0.4, 0.6, 0.8, 1.0],
                  [0.3, 0.1, 0.2, 0.5, 0.4]])
    s3 = pv.shrink("nb201", full, a, 3)
    assert s3 == (("skip_connect", "nor_conv_1x1", "nor_conv_3x3"),
                  ("none", "skip_connect", "nor_conv_1x1"),
                  ("none", "skip_connect", "avg_pool_3x3"),
                  ("none", "skip_connect", "nor_conv_1x1"),
                  ("nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3"),
                  ("none", "nor_conv_3x3", "avg_pool_3x3"))
    # the next shrink reads alpha in the reduced index space of s3 (column j = j-th op kept)
    b = np.tile([0.1, 0.7, 0.9], (6, 1))
    s2 = pv.shrink("nb201", s3, b, 2)
    assert s2 == tuple(r[1:] for r in s3)
    # decoding maps the reduced argmax back to full op indices
    dec = pv.make_decoder("nb201", s3)
    codes = np.asarray(dec(jnp.asarray(np.tile([0.2, 0.1, 0.9], (2, 6, 1)), jnp.float32)))
    np.testing.assert_array_equal(codes[0], [nb201.OPS.index(r[2]) for r in s3])


def test_shrink_and_decode_darts():
    full = pv.full_ops("darts")
    a = np.zeros((28, 8))
    a[:14, [0, 4, 5, 6, 7]] = [5, 4, 3, 2, 1]  # normal: none + the 4 convolutions
    a[14:, [1, 2, 3, 4, 0]] = [5, 4, 3, 2, 1]  # reduce: pools, skip, sep_conv_3x3, none
    s5 = pv.shrink("darts", full, a, 5)
    assert s5[0] == (("none", "sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3", "dil_conv_5x5"),) * 14
    assert s5[1] == (("none", "max_pool_3x3", "avg_pool_3x3", "skip_connect", "sep_conv_3x3"),) * 14
    s2 = pv.shrink("darts", s5, np.tile([9.0, 1, 2, 3, 8], (28, 1)), 2)
    assert s2[0] == (("none", "dil_conv_5x5"),) * 14 and s2[1] == (("none", "sep_conv_3x3"),) * 14
    # decoding: the top-2 rule without none over the edge's ops only
    g = jax.random.uniform(jax.random.PRNGKey(0), (8, 28, 5))
    geno = np.asarray(pv.make_decoder("darts", s5)(g))
    assert geno.shape == (8, 2, 8, 2)
    edges = np.asarray(darts.NODE_OFFSETS[:-1])[np.arange(8) // 2][None, None] + geno[..., 1]
    for p, c, i in np.ndindex(8, 2, 8):
        op = darts.OPS[geno[p, c, i, 0]]
        assert op != "none" and op in s5[c][edges[p, c, i]]


@pytest.mark.parametrize("bad", [{"progression": [5, 5]}, {"progression": [4, 2]},
                                 {"space": "darts", "progression": [8, 1]},
                                 {"converge_generations": 0}, {"population": 1}])
def test_bad_values_exit_2(tmp_path, capsys, bad):
    toml = tmp_path / "bad.toml"
    toml.write_text("\n".join(f"{k} = {json.dumps(v)}" for k, v in {**PEV, **bad}.items()))
    assert cli.main(["search", "pevonas", "--config", str(toml), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("jaxnas: error: pevonas")


# ---------------------------------------------------------------------------- stop rule


def _fake_module(fitness):
    """pevonas with a made-up fitness (the supernet is neither trained nor evaluated)."""
    def make(cfg, problem, **kw):
        return dataclasses.replace(pv.make_search(cfg, problem, **kw), fitness=fitness)

    return types.SimpleNamespace(make_search=make)


def _run_fake(fitness, **kw):
    from jaxnas.methods.oneshot_run import run_oneshot
    from jaxnas.runs import Progress

    cfg = methods.parse_config("pevonas", dict(PEV, train_epochs=0, baselines=[], **kw))
    return run_oneshot("pevonas", _fake_module(fitness), cfg, Progress())


def test_convergence_stop_after_converge_generations_of_one_best():
    # every genotype scores the same: the best is always member 0, the elite, never changes
    r = _run_fake(lambda key, archs: np.zeros(len(archs), np.float32), max_generations=10,
                  converge_generations=3)
    st = r.meta["stages"]
    assert [s["generations"] for s in st] == [3, 3] and all(s["converged"] for s in st)
    assert r.history["stage"] == [0, 0, 0, 1, 1, 1]
    assert len(set(r.history["best_genotype"][:3])) == 1
    assert st[1]["inherited"] > 0 and st[0]["inherited"] == 0
    assert all(len(e) == 2 for e in st[1]["edge_ops"])


def test_improving_fitness_runs_to_max_generations():
    t = [0]

    def fitness(key, archs):  # each call: a member unlike the last best gets a new record
        names = [nb201.to_str(a) for a in np.asarray(archs)]
        last = fitness.best
        i = next(j for j, n in enumerate(names) if n != last)
        t[0] += 1
        fitness.best = names[i]
        f = np.zeros(len(names), np.float32)
        f[i] = -t[0]
        return f

    fitness.best = None
    r = _run_fake(fitness, max_generations=6, converge_generations=2, mutation_rate=1.0,
                  population=6)
    st = r.meta["stages"]
    assert [s["generations"] for s in st] == [6, 6] and not any(s["converged"] for s in st)
    bests = r.history["best_genotype"]
    assert all(a != b for a, b in zip(bests, bests[1:]))


def test_darts_stages_chain_without_training():
    """The DARTS pipeline (8 -> 2 ops per edge and cell type, inheritance, decoding in the
    reduced space) with a made-up fitness: the DARTS supernet is built but never run."""
    r = _run_fake(lambda key, archs: np.zeros(len(archs), np.float32), space="darts", cells=3,
                  progression=[8, 2], max_generations=4, converge_generations=2)
    st = r.meta["stages"]
    assert [len(s["edge_ops"][c][e]) for s in st for c, e in [(0, 0), (1, 13)]] == [8, 8, 2, 2]
    assert [s["generations"] for s in st] == [3, 3]  # S1: more than converge_generations
    assert st[0]["inherited"] == 0 and st[1]["inherited"] > 0
    geno = darts.from_str(r.answer["genotype"])
    edges = np.asarray(darts.NODE_OFFSETS[:-1])[np.arange(8) // 2] + geno[..., 1]
    for c, i in np.ndindex(2, 8):
        op = darts.OPS[geno[c, i, 0]]
        assert op != "none" and op in st[1]["edge_ops"][c][edges[c, i]]


# ---------------------------------------------------------------------------- real runs


@pytest.fixture(scope="module")
def ref():
    saved = []
    r = methods.run("pevonas", PEV, on_checkpoint=saved.append)
    return r, saved


def test_run_shapes_and_stages(ref):
    r, saved = ref
    st = r.meta["stages"]
    assert [len(s["edge_ops"][0]) for s in st] == [5, 2]
    assert st[1]["inherited"] > 0 and r.meta["epochs"] == 2
    assert r.answer["genotype"] == st[-1]["best_genotype"] == r.history["best_genotype"][-1]
    codes = nb201.from_str(r.answer["genotype"])
    assert all(nb201.OPS[c] in ops for c, ops in zip(codes, st[1]["edge_ops"]))
    assert r.answer["index"] == int(nb201.index(codes))
    assert r.baselines["rsws"]["evaluations"] == r.meta["evaluations"]
    json.dumps(r.to_json(), allow_nan=False)
    other = methods.run("pevonas", dict(PEV, seed=4, progression=[5]))
    n0 = r.history["stage"].count(0)
    assert other.history["best_fitness"] != r.history["best_fitness"][:n0] \
        or other.history["best_genotype"] != r.history["best_genotype"][:n0]


def test_resume_equals_uninterrupted(ref):
    r, saved = ref
    stages = [json.loads(fser.msgpack_restore(b)["meta"])["stages"]["current"]["stage"]
              for b in saved]
    # the last checkpoint of stage 1: the resumed run shrinks, builds and inherits itself
    resumed = methods.run("pevonas", PEV, checkpoint=saved[stages.index(1) - 1])
    assert resumed.answer == r.answer and resumed.history == r.history
    assert resumed.meta["stages"] == r.meta["stages"]
    assert resumed.baselines == r.baselines and resumed.supernet == r.supernet
    # killed by an exception in the callback, in stage 1 after the initial population
    got = []

    def stop(blob):
        got.append(blob)
        if len(got) == 2:
            raise _Stop

    with pytest.raises(_Stop):
        methods.run("pevonas", PEV, on_checkpoint=stop)
    resumed = methods.run("pevonas", PEV, checkpoint=got[-1])
    assert resumed.answer == r.answer and resumed.history == r.history
    assert resumed.meta["stages"] == r.meta["stages"] and resumed.supernet == r.supernet
    assert resumed.meta["timing"]["resumed"] is True


def test_run_through_cli(ref, tmp_path):
    r, _ = ref
    toml = tmp_path / "p.toml"
    toml.write_text("\n".join(f"{k} = {json.dumps(v)}" for k, v in PEV.items()))
    out = tmp_path / "run"
    assert cli.main(["search", "pevonas", "--config", str(toml), "--out", str(out)]) == 0
    for f in ("result.json", "history.csv", "fitness.png", "supernet.msgpack", "COMPLETE"):
        assert (out / f).is_file(), f
    data = json.loads((out / "result.json").read_text())
    assert data["answer"] == r.answer  # same seed, same result
    assert [s["edge_ops"] for s in data["meta"]["stages"]] == \
        [[list(e) for e in s["edge_ops"]] for s in r.meta["stages"]]
    header = (out / "history.csv").read_text().splitlines()[0].split(",")
    assert "stage" in header and "best_genotype" in header


def test_search_help_lists_pevonas(capsys):
    with pytest.raises(SystemExit):
        cli.main(["search", "--help"])
    assert "pevonas" in capsys.readouterr().out


@pytest.mark.parametrize("space", ["nb201", "darts"])
@pytest.mark.parametrize("scale", ["", "-cpu"])
def test_shipped_configs_parse(space, scale):
    path = Path(__file__).resolve().parents[1] / "configs" / f"pevonas_{space}{scale}.toml"
    raw = tomllib.loads(path.read_text())
    assert raw.pop("method") == "pevonas"
    cfg = methods.parse_config("pevonas", raw)
    assert methods.is_oneshot(cfg) and cfg.space == space and cfg.dataset == "cifar10"
    if not scale:  # the published settings
        assert cfg.population == 20 and cfg.tournament_size == 5 and cfg.train_epochs == 50
        assert cfg.stages == ((5, 3, 2) if space == "nb201" else (8, 5, 2))
        assert cfg.generations == (100 if space == "nb201" else 200)
        assert cfg.depth == (5 if space == "nb201" else 20) and cfg.inherit


@pytest.mark.slow
def test_darts_space_run():
    cfg = dict(TINY, space="darts", cells=3, batch_size=16, population=3, tournament_size=2,
               train_epochs=1, max_generations=2, progression=[8, 2], bn="batch", cutout=0)
    r = methods.run("pevonas", cfg)
    geno = darts.from_str(r.answer["genotype"])
    assert geno.shape == (2, 8, 2) and (geno[..., 0] != darts.NONE).all()
    assert [len(s["edge_ops"][0][0]) for s in r.meta["stages"]] == [8, 2]
