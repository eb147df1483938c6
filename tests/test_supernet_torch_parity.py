"""One-step parity between the jaxnas NB201 supernet and the PyTorch peer
(benchmarks/torch_supernet.py): same initial weights, same batch and alpha -> the same loss
before the first update, the same loss after it (which checks gradients, clipping, weight
decay and nesterov momentum) and the same evaluation-mode logits. Tiny config, float32."""

from __future__ import annotations

import importlib.util
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxnas.nets import supernet_train as st
from jaxnas.nets.supernet import NB201Supernet
from jaxnas.spaces import nb201
from tests.conftest import REPO

torch = pytest.importorskip("torch")


def _peer():
    spec = importlib.util.spec_from_file_location("torch_supernet", REPO / "benchmarks" / "torch_supernet.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["torch_supernet"] = mod
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize("nesterov", [False, True])
def test_two_steps_and_eval_logits_match_pytorch(nesterov):
    peer = _peer()
    torch.set_num_threads(1)
    model = NB201Supernet(C=4, N=1)
    opt = st.make_optimizer(2, 10, lr=0.1, nesterov=nesterov)  # big lr: the update shows
    state = st.init_supernet(jax.random.PRNGKey(3), model, opt, (16, 16, 3))
    step = st.make_train_step(model, opt)
    rng = np.random.default_rng(0)
    xs = rng.normal(size=(3, 8, 16, 16, 3)).astype(np.float32)
    ys = rng.integers(0, 10, (3, 8)).astype(np.int32)
    alphas = np.asarray(nb201.discretize(jax.random.uniform(jax.random.PRNGKey(4), (3, 6, 5))))

    tm = peer.load_jax_params(peer.Supernet(4, 1), jax.device_get(state.weights),
                              jax.device_get(state.batch_stats))
    topt = peer.make_optimizer(tm, lr=0.1, nesterov=nesterov)
    w, o, s = state.weights, state.opt_state, state.batch_stats
    for b in range(3):
        w, o, s, loss = step(w, o, s, jnp.asarray(alphas[b]), (jnp.asarray(xs[b]), jnp.asarray(ys[b])))
        tloss = peer.train_step(tm, topt, torch.as_tensor(alphas[b]),
                                torch.as_tensor(xs[b]).permute(0, 3, 1, 2),
                                torch.as_tensor(ys[b], dtype=torch.long))
        np.testing.assert_allclose(float(loss), float(tloss), rtol=2e-5, err_msg=f"step {b}")
    tm.eval()
    with torch.no_grad():
        tlog = tm(torch.as_tensor(xs[0]).permute(0, 3, 1, 2), torch.as_tensor(alphas[0])).numpy()
    log = model.apply({"params": w, "batch_stats": s}, jnp.asarray(xs[0]), jnp.asarray(alphas[0]),
                      train=False)
    np.testing.assert_allclose(np.asarray(log), tlog, rtol=1e-3, atol=1e-4)
