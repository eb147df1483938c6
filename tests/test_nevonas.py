"""NEvoNAS (issue 12): novelty against hand computations from METHODS.md 4's definitions,
parents keeping their fitness, the oracle selection off by default and labelled when on,
determinism by seed, resume equality and bad settings (exit 2). Tiny synthetic supernets."""

from __future__ import annotations

import json
from types import SimpleNamespace

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxnas import cli, methods, oneshot_runs, runs
from jaxnas._paths import data_dir
from jaxnas.algorithms.dedup import Archive
from jaxnas.algorithms.novelty import JaccardNovelty
from jaxnas.methods import nevonas
from jaxnas.methods.oneshot import space_encoding, synthetic_search_data
from jaxnas.spaces import darts, nb201

TINY = dict(dataset="synthetic", train_images=32, valid_images=16, image_size=8, channels=4,
            cells=1, batch_size=8, valid_batch=64, seed=3)
NEV = dict(TINY, population=4, generations=3)


def _hand_novelty(pop, archive, k, dist):
    """Mean distance to the k nearest of (population except self) + archive, loops only."""
    out = []
    for i, a in enumerate(pop):
        d = sorted([dist(a, b) for j, b in enumerate(pop) if j != i] + [dist(a, b) for b in archive])
        out.append(sum(d[:k]) / min(k, len(d)))
    return np.array(out)


def _nb201_dist(a, b):
    c = sum(int(x == y) for x, y in zip(a, b))
    return 1 - c / (6 + 6 - c)


def _darts_dist(a, b):
    common = 0
    for t in range(2):
        for n in range(4):
            theirs = {tuple(b[t][2 * n + g]) for g in range(2)}
            common += sum(tuple(a[t][2 * n + g]) in theirs for g in range(2))
    return 1 - common / (16 + 16 - common)


def _novelty(obj, pop, archive_items, k):
    pop = jnp.asarray(pop, jnp.int32)
    arch = Archive.create(obj.archive_size, pop.shape[1:], jnp.int32)
    arch = arch.insert(jnp.asarray(archive_items, jnp.int32), jnp.ones(len(archive_items), bool))
    n = pop.shape[0]
    cols, arch2 = obj(jax.random.PRNGKey(0), pop, jnp.zeros((n, 1)), jnp.ones(n, bool), arch,
                      {"k": jnp.int32(k)})
    return -np.asarray(cols[:, 0]), arch2


def test_nb201_novelty_equals_hand_computation():
    pop = [[0, 1, 2, 3, 4, 0], [0, 1, 2, 3, 4, 1], [1, 1, 1, 1, 1, 1], [4, 3, 2, 1, 0, 0],
           [0, 1, 2, 3, 4, 0]]
    archive = [[0, 0, 0, 0, 0, 0], [1, 1, 1, 1, 1, 2]]
    for k in (1, 2, 5):
        got, arch2 = _novelty(JaccardNovelty(archive_size=16), pop, archive, k)
        np.testing.assert_allclose(got, _hand_novelty(pop, archive, k, _nb201_dist), rtol=1e-6)
    # every evaluated genotype joins the archive once (the repeated member does not)
    assert int(arch2.valid.sum()) == 2 + 4


def test_darts_novelty_equals_hand_computation():
    genos = np.array(darts.genotype(darts.sample_alpha(jax.random.PRNGKey(4), 6)))
    genos[1, 0, :4] = genos[0, 0, :4]  # some shared genes
    genos[2, 1] = genos[0, 1]
    pop, archive = genos[:4], genos[4:]
    obj = JaccardNovelty(archive_size=8, distance=darts.pairwise_distance)
    for k in (1, 3):
        got, _ = _novelty(obj, pop, archive, k)
        want = _hand_novelty(pop.tolist(), archive.tolist(), k, _darts_dist)
        np.testing.assert_allclose(got, want, rtol=1e-6)


def test_parents_keep_the_fitness_they_were_given():
    cfg = methods.parse_config("nevonas", NEV)
    problem = SimpleNamespace(encoding=space_encoding("nb201"))
    algo, params = nevonas.make_algorithm(cfg, problem)
    key = jax.random.PRNGKey(1)
    pop = algo.sample(key)
    state = algo.init(key, pop, jnp.arange(4.0)[:, None], params)
    for g in range(3):
        kids, state = algo.ask(jax.random.fold_in(key, g), state, params)
        before = {tuple(np.asarray(p).ravel()): tuple(np.asarray(f)) for p, f in
                  zip(state.population, state.fitness)}
        # the offspring get worse accuracy each generation: parents must keep their old F
        state, _ = algo.tell(key, kids, jnp.full((4, 1), 50.0 + g), state, params)
        for p, f in zip(state.population, state.fitness):
            k_ = tuple(np.asarray(p).ravel())
            if k_ in before:
                assert tuple(np.asarray(f)) == before[k_]


@pytest.fixture(scope="module")
def ref():
    return methods.run("nevonas", NEV)


def test_run_shapes_determinism_and_default_selection(ref):
    assert nevonas.Config().select == "supernet" and not ref.meta["oracle"]
    assert "ORACLE" not in ref.answer["selection"] and ref.answer["oracle"] is False
    assert len(ref.history["best_fitness"]) == 3 and ref.meta["evaluations"] == 12
    assert ref.answer["pareto"] and all(np.isfinite(p["novelty"]) for p in ref.answer["pareto"])
    assert ref.answer["genotype"] in {p["genotype"] for p in ref.answer["pareto"]}
    again = methods.run("nevonas", NEV)
    assert again.answer == ref.answer and again.history == ref.history
    other = methods.run("nevonas", dict(NEV, seed=4))
    assert other.history != ref.history


class _Stop(Exception):
    pass


def test_resume_equals_uninterrupted(ref):
    saved = []

    def stop_after_first(b):
        saved.append(b)
        if len(saved) == 2:
            raise _Stop

    with pytest.raises(_Stop):
        methods.run("nevonas", NEV, on_checkpoint=stop_after_first)
    resumed = methods.run("nevonas", NEV, checkpoint=saved[-1])
    assert resumed.answer == ref.answer and resumed.history == ref.history


def test_oracle_pick_and_label():
    class T:
        def column(self, name):
            acc = np.zeros(15625)
            acc[[5, 7, 9]] = [90.0, 93.0, 95.0]
            return acc
    archs = np.stack([nb201.from_index(i) for i in (5, 7, 9)])
    assert nevonas._oracle_pick(T(), archs, np.array([True, True, False])) == 1
    cfg = methods.parse_config("nevonas", dict(NEV, dataset="cifar10",
                                               select="oracle_test_accuracy"))
    assert cfg.oracle and "ORACLE" in nevonas.ORACLE_LABEL


def test_oracle_run_is_labelled_everywhere(tmp_path, capsys):
    if not (data_dir() / "nb201_accuracy.csv.gz").exists():
        pytest.skip(f"no NB201 table (nb201_accuracy.csv.gz) in {data_dir()}")
    cfg = methods.parse_config("nevonas", dict(NEV, dataset="cifar10",
                                               select="oracle_test_accuracy"))
    text = oneshot_runs.search("nevonas", cfg, tmp_path, False, runs.Progress(),
                               data=synthetic_search_data(32, 16, 8, 3))
    assert "ORACLE" in text
    data = json.loads((tmp_path / "result.json").read_text())
    assert data["meta"]["oracle"] is True and "ORACLE" in data["answer"]["selection"]


def test_cli_run_and_bad_values(tmp_path, capsys):
    cfg = tmp_path / "n.toml"
    cfg.write_text("\n".join(f"{k} = {json.dumps(v)}" for k, v in NEV.items()))
    assert cli.main(["search", "nevonas", "--config", str(cfg), "--out", str(tmp_path / "o")]) == 0
    assert (tmp_path / "o" / "COMPLETE").exists() and (tmp_path / "o" / "fitness.png").exists()
    for bad in ('select = "oracle"', 'genome = "categorical"\nspace = "darts"',
                'select = "oracle_test_accuracy"', "pm_prob_var = 1.5", "knn = -1"):
        capsys.readouterr()
        cfg.write_text("\n".join(f"{k} = {json.dumps(v)}" for k, v in NEV.items()) + "\n" + bad)
        code = cli.main(["search", "nevonas", "--config", str(cfg), "--out", str(tmp_path / "b")])
        err = capsys.readouterr().err.strip()
        assert code == 2 and len(err.splitlines()) == 1, (bad, err)
