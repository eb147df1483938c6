"""The compression study (issue 13): masks, sparsity, KL, determinism, bad configs, the CLI."""

from __future__ import annotations

import json
import math

import flax.traverse_util as tu
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxnas.cli import main
from jaxnas.compress import (
    BetaVAE,
    CompressConfig,
    StudyData,
    config_from_dict,
    count_params,
    flops,
    gaussian_kl,
    get_trainer,
    global_magnitude_masks,
    ones_masks,
    prunable,
    prune,
    run_sweep,
    sparsity_path,
    total_correlation,
)
from tests.conftest import require_data

TINY = dict(latent_dim=3, channels=(4, 8), hidden=16)


MODEL = BetaVAE((8, 8, 1), num_classes=3, **TINY)


def _trainer():
    """The one tiny model of these tests, with its compiled steps shared by all of them (the
    sweep in test_run_is_deterministic_by_seed builds the same one), so a cold compilation
    cache compiles it once."""
    return get_trainer(MODEL, 1e-3, "bernoulli")


def _init(seed):
    return _trainer().init(jax.random.key(seed))


def _tiny_data(n=64, seed=0, hw=8):
    rng = np.random.default_rng(seed)
    y = np.arange(n, dtype=np.int32) % 3
    x = rng.random((n, hw, hw, 1), dtype=np.float32) * 0.3 + y[:, None, None, None] * 0.3
    return StudyData("mnist", x, y, x[:32], y[:32], num_classes=3, source="synthetic")


def _kernels(params, masks):
    sel = tu.flatten_dict(prunable(params))
    fp, fm = tu.flatten_dict(params), tu.flatten_dict(masks)
    return [(fp[k], fm[k]) for k, s in sel.items() if s]


def test_kl_matches_closed_form():
    rng = np.random.default_rng(0)
    mu = rng.normal(size=(5, 7)).astype(np.float32)
    logvar = rng.normal(size=(5, 7)).astype(np.float32)
    got = np.asarray(gaussian_kl(jnp.asarray(mu), jnp.asarray(logvar)))
    sigma = np.exp(0.5 * logvar.astype(np.float64))
    # KL(N(mu, s^2) || N(0, 1)) = log(1 / s) + (s^2 + mu^2) / 2 - 1 / 2
    want = np.log(1 / sigma) + (sigma**2 + mu.astype(np.float64) ** 2) / 2 - 0.5
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    torch = pytest.importorskip("torch")
    d = torch.distributions
    ref = d.kl_divergence(d.Normal(torch.tensor(mu, dtype=torch.float64), torch.tensor(sigma)),
                          d.Normal(0.0, 1.0)).numpy()
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("target", [0.0, 0.1, 1 / 3, 0.5, 0.8, 0.9, 0.95, 0.999])
def test_achieved_sparsity_equals_target(target):
    params = _init(1)
    masks = global_magnitude_masks(params, target)
    kernels = _kernels(params, masks)
    n = sum(p.size for p, _ in kernels)
    pruned = sum(int(np.sum(np.asarray(m) == 0)) for _, m in kernels)
    assert abs(pruned - target * n) <= 0.5  # well within one weight per layer
    # the pruned weights are the globally smallest |w|
    kept = np.concatenate([np.abs(np.asarray(p))[np.asarray(m) > 0] for p, m in kernels])
    cut = np.concatenate([np.abs(np.asarray(p))[np.asarray(m) == 0] for p, m in kernels])
    if len(kept) and len(cut):
        assert cut.max() <= kept.min()
    # biases and the decoder (outside the default scope) are never pruned
    for k, m in tu.flatten_dict(masks).items():
        if k[-1] == "bias" or k[-2].startswith("dec"):
            assert np.all(np.asarray(m) == 1)


def test_exact_count_with_ties_and_iterative_masks_nest():
    params = {"a": {"kernel": jnp.ones((10, 10))}, "cls": {"kernel": jnp.ones((7, 3))}}
    for s in (0.25, 0.5, 0.9):
        m = global_magnitude_masks(params, s, scope="all")
        assert sum(int(np.sum(np.asarray(v) == 0)) for v in jax.tree.leaves(m)) == round(s * 121)
    path = sparsity_path(0.9, "iterative", 3)
    assert len(path) == 3 and math.isclose(path[-1], 0.9) and path == sorted(path)
    p = _init(2)
    prev = None
    for s in path:
        m = global_magnitude_masks(p, s, masks=prev)
        if prev is not None:
            for a, b in zip(jax.tree.leaves(prev), jax.tree.leaves(m)):
                assert np.all(np.asarray(b) <= np.asarray(a))  # pruned stays pruned
        prev = m


def test_masks_keep_pruned_weights_exactly_zero_through_training():
    data = _tiny_data()
    tr = _trainer()
    params = tr.init(jax.random.key(0))
    ones = ones_masks(params)
    # dense steps first, so Adam's moments are nonzero when the masks arrive
    opt_state = tr.tx.init(params)
    beta, w = jnp.float32(4.0), jnp.float32(1.0)  # as fit() passes them: no recompile
    for i in range(3):
        params, opt_state, _ = tr.step(params, opt_state, ones, data.x_train[:16],
                                       data.y_train[:16], jax.random.key(i), beta, w)
    masks = global_magnitude_masks(params, 0.7)
    pruned = prune(params, masks)
    p = pruned
    for i in range(5):
        p, opt_state, _ = tr.step(p, opt_state, masks, data.x_train[:16], data.y_train[:16],
                                  jax.random.key(10 + i), beta, w)
    p2, _ = tr.fit(jax.random.key(3), p, masks, data.x_train, data.y_train, 10, 16, 4.0, 1.0)
    changed = False
    for (w, m), (w0, _) in zip(_kernels(p2, masks), _kernels(pruned, masks)):
        w, m, w0 = np.asarray(w), np.asarray(m), np.asarray(w0)
        assert np.all(w[m == 0] == 0.0)
        changed |= bool(np.any(w[m > 0] != w0[m > 0]))
    assert changed  # the kept weights did train


def test_flops_and_params_count_nonzeros():
    model = MODEL
    params = _init(0)
    # conv0: 4x4x1x4 kernel at 4x4 outputs, conv1 4x4x4x8 at 2x2, fc 32x16, head 16x6, cls 3x3
    macs = 16 * 4 * 16 + 16 * 4 * 8 * 4 + 32 * 16 + 16 * 6 + 3 * 3
    assert flops(params, model) == 2 * macs + (4 * 16 + 8 * 4 + 16 + 6 + 3)
    c = count_params(params)
    n = 16 * 4 + 16 * 4 * 8 + 32 * 16 + 16 * 6 + 3 * 3 + (4 + 8 + 16 + 6 + 3)
    assert c["params_nonzero"] == c["params_total"] == n
    pruned = prune(params, global_magnitude_masks(params, 0.5))
    assert count_params(pruned)["params_nonzero"] < c["params_nonzero"]
    assert flops(pruned, model) < flops(params, model)


def test_total_correlation_of_independent_code_is_small():
    rng = np.random.default_rng(0)
    mu = rng.normal(size=(400, 2)).astype(np.float32)
    lv = np.full_like(mu, -2.0)
    indep = total_correlation(jax.random.key(0), mu, lv)
    corr = total_correlation(jax.random.key(0), np.stack([mu[:, 0], mu[:, 0]], 1), lv)
    assert corr > indep + 0.3
    # posteriors equal to the prior: q(z) = prod q(z_j), TC ~ 0
    prior = total_correlation(jax.random.key(1), np.zeros((400, 3)), np.zeros((400, 3)))
    assert abs(prior) < 0.05


def _cfg(**kw):
    base = dict(**{k: list(v) if isinstance(v, tuple) else v for k, v in TINY.items()},
                betas=[2.0], control=True, epochs=1, batch_size=16, seeds=[0],
                sparsities=[0.0, 0.8], finetune_steps=2, diag_images=32, traversal_latents=2,
                traversal_steps=3)
    base.update(kw)
    return config_from_dict(base)


def test_run_is_deterministic_by_seed():
    data = _tiny_data()
    a = run_sweep(_cfg(schedule="iterative", iterative_steps=2), data)
    b = run_sweep(_cfg(schedule="iterative", iterative_steps=2), data)
    c = run_sweep(_cfg(seeds=[1], schedule="iterative", iterative_steps=2), data)
    key = lambda r: (r["accuracy"], r["params_nonzero"], r["flops"], r["kl_total"])
    assert [key(r) for r in a["rows"]] == [key(r) for r in b["rows"]]
    assert a["diagnostics"][1]["kl_per_latent"] == b["diagnostics"][1]["kl_per_latent"]
    np.testing.assert_array_equal(a["traversals"]["beta=2"]["images"],
                                  b["traversals"]["beta=2"]["images"])
    assert a["diagnostics"][1]["kl_per_latent"] != c["diagnostics"][1]["kl_per_latent"]
    # iterative: two reported steps per nonzero sparsity, the last one at the target
    st = [r for r in a["steps"] if r["model"] == "beta=2" and r["target_sparsity"] == 0.8]
    assert [r["step"] for r in st] == [1, 2] and st[0]["sparsity"] < st[1]["sparsity"]
    assert abs(st[1]["sparsity"] - 0.8) < 1e-3 and st[1]["flops"] < st[0]["flops"]


@pytest.mark.parametrize("text, key", [
    ("betas = [1.0, 0.0]", "beta"),
    ("betas = [-4.0]", "beta"),
    ("sparsities = [0.5, 1.0]", "sparsities"),
    ("sparsities = [-0.1]", "sparsities"),
    ("learning_rate = 0.1", "learning_rate"),
    ("seeds = [4294967296]", "seeds"),
    ("lr = nan", "lr"),
    ("epochs = 1.5", "epochs"),
    ('dataset = "svhn"', "dataset"),
])
def test_bad_config_is_refused(tmp_path, capsys, text, key):
    cfg = tmp_path / "bad.toml"
    cfg.write_text(text + "\n")
    out = tmp_path / "out"
    assert main(["compress", "--config", str(cfg), "--out", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and key in err and "Traceback" not in err
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["bad.toml"]


def test_missing_dataset_is_refused(tmp_path, capsys):
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'dataset = "cifar10"\nsource = "npz"\ndata_dir = "{tmp_path / "nodata"}"\n')
    out = tmp_path / "out"
    assert main(["compress", "--config", str(cfg), "--out", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "cifar10" in err and "not found" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.toml"]


def test_nonempty_out_is_refused(tmp_path, capsys):
    cfg = tmp_path / "c.toml"
    cfg.write_text("epochs = 1\n")
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    assert main(["compress", "--config", str(cfg), "--out", str(out), "--no-progress"]) == 2
    assert "--out" in capsys.readouterr().err
    assert [p.name for p in out.iterdir()] == ["keep.txt"]


def test_cli_mnist_writes_outputs(tmp_path, capsys):
    root = require_data("mnist/mnist_test.npz")
    cfg = tmp_path / "m.toml"
    cfg.write_text(
        f'dataset = "mnist"\nsource = "npz"\ndata_dir = "{root}"\nn_train = 256\nn_test = 200\n'
        "latent_dim = 4\nchannels = [4, 8]\nhidden = 16\nbetas = [4.0]\ncontrol = false\n"
        "epochs = 1\nbatch_size = 64\nseeds = [0]\nsparsities = [0.0, 0.9]\n"
        "finetune_steps = 2\ndiag_images = 100\ntraversal_latents = 3\ntraversal_steps = 4\n")
    out = tmp_path / "run"
    assert main(["compress", "--config", str(cfg), "--out", str(out), "--no-progress"]) == 0
    stdout = capsys.readouterr().out
    assert "MNIST caveat" in stdout
    names = {p.name for p in out.iterdir()}
    assert {"sweep.csv", "summary.csv", "prune_steps.csv", "accuracy_vs_sparsity.png",
            "traversals", "run.json"} <= names
    assert (out / "traversals" / "beta4.png").stat().st_size > 1000
    run = json.loads((out / "run.json").read_text())  # strict JSON
    assert run["seeds"] == [0] and run["config"]["betas"] == [4.0]
    assert "MNIST caveat" in run["data"]["caveat"]
    lines = (out / "sweep.csv").read_text().strip().splitlines()
    assert len(lines) == 1 + 2  # header + beta=4 x 2 sparsities
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_config_defaults_are_valid_and_round_trip():
    c = CompressConfig()
    assert config_from_dict({k: v for k, v in c.as_dict().items() if k != "name"}) == c
