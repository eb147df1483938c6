"""How well the RMI score ranks NB201 architectures: Kendall tau against CIFAR-10 test accuracy.

METHODS.md 5.1 recipe: the pretrained CIFAR-10 ResNet-20 reference, one lowest-loss batch of 32
augmented CIFAR-10 training images (from a pool of 512), C=16, N=5, SGD lr 0.1 / momentum 0.9 /
wd 5e-4, loss 0.8 * sum(1 - CKA) + 0.2 * CE. A fixed, seeded sample of 40 architectures drawn
uniformly from all 15,625 (nothing is tuned on it). One training run per architecture gives the
loss at every step, so tau is reported at step 150 (the paper's score) and at fewer steps.

tau is computed between -score (lower loss = better) and the NB201 CIFAR-10 test accuracy
(``../shared/data/nb201_accuracy.csv.gz``, 200-epoch NATS-Bench numbers), on all 40 sampled
architectures and on the connected ones only (disconnected cells get the worst score and ~10 %
accuracy, which flatters tau). The PyTorch peer (benchmarks/torch_rmi.py) is run on the same
architectures from the same initial weights; its tau differs from jaxnas's only through float32
chaos (see tests/test_rmi_torch_parity.py).

Run from the repo root: ``python benchmarks/rmi_rank_quality.py [--quick] [--no-peer]``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import jax
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch  # noqa: E402
from rmi_vs_torch import data_dir, rmi_batch  # noqa: E402

from jaxnas.bench import load_table  # noqa: E402
from jaxnas.estimators.rmi import RMIEstimator  # noqa: E402
from jaxnas.metrics import kendall_tau  # noqa: E402
from jaxnas.spaces import nb201  # noqa: E402


def taus(scores: np.ndarray, acc: np.ndarray, connected: np.ndarray) -> tuple[float, float]:
    t_all = float(kendall_tau(-scores, acc))
    t_con = float(kendall_tau(-scores[connected], acc[connected]))
    return t_all, t_con


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="12 architectures, 20 steps")
    ap.add_argument("--n", type=int, default=40, help="sampled architectures (default 40)")
    ap.add_argument("--steps", type=int, default=150, help="training steps (default 150)")
    ap.add_argument("--seed", type=int, default=0, help="architecture sample seed (default 0)")
    ap.add_argument("--batch-seed", type=int, default=0, help="batch selection seed (default 0)")
    ap.add_argument("--no-peer", action="store_true", help="skip the PyTorch peer")
    args = ap.parse_args()
    if args.quick:
        args.n, args.steps = 12, 20

    root = data_dir()
    acc_all = np.asarray(load_table(os.path.join(root, "nb201_accuracy.csv.gz")).column("cifar10_test_acc"))
    rng = np.random.default_rng(args.seed)
    idx = rng.choice(nb201.NUM_ARCHS, size=args.n, replace=False)
    archs = nb201.from_index(idx)
    acc = acc_all[idx]
    connected = np.asarray(nb201.is_connected(archs))
    x, y, feats = rmi_batch(root, args.batch_seed)
    checkpoints = sorted({s for s in (1, 5, 10, 25, 50, 100, args.steps) if s <= args.steps})

    ncores = os.cpu_count() or 1
    torch.set_num_threads(ncores)
    print(f"machine: {ncores} cores; jax {jax.__version__} ({jax.default_backend()}), torch {torch.__version__} "
          f"num_threads={torch.get_num_threads()}")
    print(f"{args.n} architectures (seed {args.seed}; {connected.sum()} connected), NB201 indices {idx.tolist()}")
    print(f"accuracy range {acc.min():.2f}..{acc.max():.2f} %, steps {args.steps}")

    key = jax.random.PRNGKey(args.seed)
    with RMIEstimator(x, y, feats, steps=args.steps) as est:
        t0 = time.perf_counter()
        traj = est.trajectory(key, archs)  # (n, steps + 1): losses of every forward
        t_jax = time.perf_counter() - t0
        params = est.init_params(key, archs)
    print(f"jaxnas ({est.strategy}, {est.workers} processes): {t_jax:.1f} s")

    peer = None
    t_torch = float("nan")
    if not args.no_peer:
        import torch_rmi

        t0 = time.perf_counter()
        peer = np.stack([
            torch_rmi.train_arch(a, x, y, feats, params=p, steps=args.steps, trajectory=True)
            for a, p in zip(archs, params)
        ])
        t_torch = time.perf_counter() - t0
        print(f"torch: {t_torch:.1f} s")

    print("\nKendall tau(-RMI score, CIFAR-10 test accuracy):")
    print(f"  {'step':>5s} {'jaxnas all':>11s} {'connected':>10s}" + ("" if peer is None else f" {'torch all':>10s} {'connected':>10s}"))
    rows = {}
    for s in checkpoints:
        j = taus(np.where(np.isnan(traj[:, s]), np.inf, traj[:, s]), acc, connected)
        line = f"  {s:5d} {j[0]:11.3f} {j[1]:10.3f}"
        if peer is not None:
            t = taus(np.where(np.isnan(peer[:, s]), np.inf, peer[:, s]), acc, connected)
            line += f" {t[0]:10.3f} {t[1]:10.3f}"
            rows[s] = (j, t)
        else:
            rows[s] = (j, None)
        print(line)
    j_final, t_final = rows[args.steps]
    peer_tau = float("nan") if t_final is None else t_final[1]
    ratio = t_torch / t_jax if peer is not None else float("nan")
    print(f"RESULT name=rmi_rank_quality jaxnas={j_final[1]:.4f} peer={peer_tau:.4f} ratio={ratio:.3f} "
          f"unit=kendall_tau_connected_step{args.steps}")


if __name__ == "__main__":
    main()
