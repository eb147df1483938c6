"""Where the RMI training step spends its time: each NB201 op unit, jaxnas vs PyTorch.

For every op of a cell (ReLU-conv3x3-BN, ReLU-conv1x1-BN, 3x3 average pooling) and the
reduction block, at each stage's shape (batch 32; 32x32x16, 16x16x32, 8x8x64), this times one
training use of the op: forward, backward and (for ops with weights) the SGD update.

- jaxnas: the 'composed' strategy's jitted units (``_u_rcb_fwd`` + ``_u_rcb_bwd`` etc. of
  :mod:`jaxnas.estimators.rmi.composed`),
  exactly what :class:`jaxnas.estimators.RMIEstimator` calls, in one process;
- PyTorch: the same module forward, ``backward`` and ``SGD.step`` (eager), with 1 thread and
  with all cores.

It also times the Python dispatch of a unit on a tiny input (what an op costs when there is
nothing to compute). ``ratio`` = torch (1 thread) / jaxnas: above 1, jaxnas is faster. A
member trains in one process, one unit at a time; the estimator runs one member per core, so
the 1-thread PyTorch column is the like-for-like one, and the all-core column is what the
PyTorch peer in rmi_vs_torch.py uses.

Run from the repo root: ``python benchmarks/rmi_op_profile.py [--quick]``. Runs on a GPU too.
"""

from __future__ import annotations

import argparse
import os
import time

import jax
import jax.numpy as jnp
import numpy as np
import torch
from torch import nn

from jaxnas.config import RMISettings
from jaxnas.estimators.rmi import composed as rmi
from jaxnas.estimators.rmi import hparams
from jaxnas.estimators.rmi.loss import sgd_init
from jaxnas.nets import nb201 as net


def _time(fn, reps: int) -> float:
    """Median seconds of ``fn()`` over ``reps`` runs (after two warm-up calls)."""
    fn()
    fn()
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return float(np.median(ts))


def _jax_rcb(B, H, C, k, reps, hp):
    kx, kw = jax.random.split(jax.random.PRNGKey(0))
    x = jax.random.normal(kx, (B, H, H, C))
    shape = (3, 3, C, C) if k == 3 else (C, C)
    p = {"kernel": jax.random.normal(kw, shape) * 0.1, "scale": jnp.ones(C), "bias": jnp.zeros(C)}
    state = {"p": p, "m": sgd_init(p)}
    dy = jnp.ones((B, H, H, C)) / (B * H * H * C)

    def step():
        y, res = rmi._u_rcb_fwd(state["p"], x, None)
        dx, state["p"], state["m"] = rmi._u_rcb_bwd(state["p"], state["m"], x, res, dy, None, hp)
        jax.block_until_ready(dx)

    return _time(step, reps)


def _jax_pool(B, H, C, reps):
    x = jax.random.normal(jax.random.PRNGKey(0), (B, H, H, C))

    def step():
        y = rmi._u_pool_fwd(x, None)
        jax.block_until_ready(rmi._u_pool_bwd(y, None))

    return _time(step, reps)


def _jax_reduce(B, H, C, reps, hp):
    params = net.init_params(jax.random.PRNGKey(0), 16, 1, 10, True, (3, 3, 3, 3, 3, 3))
    p = params["cells_1"]  # the first reduction block: 16 -> 32 channels
    if C != 16:
        p = params["cells_3"]  # 32 -> 64
    state = {"p": p, "m": sgd_init(p)}
    x = jax.random.normal(jax.random.PRNGKey(1), (B, H, H, C))
    dy = jnp.ones((B, H // 2, H // 2, 2 * C)) / x.size

    def step():
        out, res = rmi._u_reduce_fwd(state["p"], x)
        dx, state["p"], state["m"] = rmi._u_reduce_bwd(state["p"], state["m"], x, res, dy, hp)
        jax.block_until_ready(dx)

    return _time(step, reps)


def _torch_module(mod, B, H, C, reps):
    x = torch.randn(B, C, H, H, requires_grad=True)
    opt = torch.optim.SGD(mod.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4) \
        if any(True for _ in mod.parameters()) else None

    def step():
        if opt is not None:
            opt.zero_grad(set_to_none=True)
        x.grad = None
        y = mod(x)
        y.sum().backward()
        if opt is not None:
            opt.step()

    return _time(step, reps)


class _TorchReduce(nn.Module):
    """NB201 ResNetBasicblock, stride 2 (ReLU-conv-BN a and b, avg-pool + 1x1 shortcut)."""

    def __init__(self, C):
        super().__init__()
        self.a = nn.Sequential(nn.ReLU(), nn.Conv2d(C, 2 * C, 3, 2, 1, bias=False), nn.BatchNorm2d(2 * C))
        self.b = nn.Sequential(nn.ReLU(), nn.Conv2d(2 * C, 2 * C, 3, 1, 1, bias=False), nn.BatchNorm2d(2 * C))
        self.short = nn.Sequential(nn.AvgPool2d(2, 2), nn.Conv2d(C, 2 * C, 1, bias=False))

    def forward(self, x):
        return self.b(self.a(x)) + self.short(x)


def _torch_op(name, C):
    if name == "nor_conv_3x3":
        return nn.Sequential(nn.ReLU(), nn.Conv2d(C, C, 3, 1, 1, bias=False), nn.BatchNorm2d(C))
    if name == "nor_conv_1x1":
        return nn.Sequential(nn.ReLU(), nn.Conv2d(C, C, 1, bias=False), nn.BatchNorm2d(C))
    if name == "avg_pool_3x3":
        return nn.AvgPool2d(3, 1, 1, count_include_pad=False)
    return _TorchReduce(C)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="fewer repetitions")
    ap.add_argument("--reps", type=int, default=30)
    args = ap.parse_args()
    reps = 5 if args.quick else args.reps
    ncores = os.cpu_count() or 1
    hp = hparams(RMISettings())
    B = 32
    print(f"machine: {ncores} cores; jax {jax.__version__} ({jax.default_backend()}), torch {torch.__version__}")
    print(f"batch {B}; ms per training use of an op (forward + backward + SGD update), median of {reps}")
    print(f"  {'op':14s} {'shape':>10s} {'jaxnas':>8s} {'torch 1t':>9s} {'torch ' + str(ncores) + 't':>9s} "
          f"{'ratio 1t':>9s}")
    total_j = total_t1 = 0.0
    rows = []
    for H, C in ((32, 16), (16, 32), (8, 64)):
        for name in ("nor_conv_3x3", "nor_conv_1x1", "avg_pool_3x3", "reduce"):
            if name == "reduce" and C == 64:
                continue
            if name == "nor_conv_3x3":
                tj = _jax_rcb(B, H, C, 3, reps, hp)
            elif name == "nor_conv_1x1":
                tj = _jax_rcb(B, H, C, 1, reps, hp)
            elif name == "avg_pool_3x3":
                tj = _jax_pool(B, H, C, reps)
            else:
                tj = _jax_reduce(B, H, C, reps, hp)
            tt = {}
            for threads in (1, ncores):
                torch.set_num_threads(threads)
                tt[threads] = _torch_module(_torch_op(name, C), B, H, C, reps)
            total_j += tj
            total_t1 += tt[1]
            rows.append((name, H, C, tj, tt[1], tt[ncores]))
            print(f"  {name:14s} {f'{H}x{H}x{C}':>10s} {tj * 1e3:8.2f} {tt[1] * 1e3:9.2f} "
                  f"{tt[ncores] * 1e3:9.2f} {tt[1] / tj:9.2f}")
    # dispatch: a unit on a 1x1x1x1 input costs only its Python + runtime overhead
    tiny = jnp.ones((1, 1, 1, 1))
    t_disp = _time(lambda: jax.block_until_ready(rmi._u_add(tiny, tiny)), max(reps, 50))
    torch.set_num_threads(1)
    tt_tiny = torch.ones(1)
    t_tdisp = _time(lambda: tt_tiny + tt_tiny, max(reps, 50))
    print(f"  dispatch of one unit: jaxnas {t_disp * 1e6:.0f} us, torch op {t_tdisp * 1e6:.0f} us")
    print(f"RESULT name=rmi_op_profile jaxnas={total_j * 1e3:.3f} peer={total_t1 * 1e3:.3f} "
          f"ratio={total_t1 / total_j:.3f} unit=ms_sum_over_ops_1thread")


if __name__ == "__main__":
    main()
