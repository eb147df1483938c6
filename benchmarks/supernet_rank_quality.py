"""Ranking quality of the NB201 weight-sharing supernet after a CPU-scale pre-training.

Pre-trains :class:`jaxnas.nets.supernet.NB201Supernet` with a fresh ``U(0, 1)`` alpha per
mini-batch (CMANAS / pEvoNAS pre-training, METHODS.md 2-3) on a seeded subset of the CIFAR-10
search-train split (25k/25k class-balanced split, :func:`jaxnas.data.search.cifar10_search_data`),
with DARTS augmentation (crop, flip, cutout 16) and the EvNAS optimiser (SGD 0.025 -> 0.001
cosine, nesterov, wd 3e-4, clip 5). Then scores a seeded uniform sample of 100 NB201
architectures with :class:`jaxnas.estimators.SupernetEstimator` (one-hot alpha-hat + softmax,
``model.eval()``) on a subset of the search-valid split, and reports Kendall tau between the
supernet accuracy and NB201 CIFAR-10 test accuracy (``cifar10_test_acc`` of the shared table;
also over the connected architectures only, and against the 12-epoch validation accuracy when
that table is present). Nothing is tuned on this sample. No PyTorch peer is run (this is a
quality measurement); the RESULT line's peer and ratio are ``nan``.

Run from the repo root: ``python benchmarks/supernet_rank_quality.py [--quick]``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [_HERE, os.path.join(_HERE, "_lib"), os.path.dirname(_HERE)]

import jax  # noqa: E402
import numpy as np  # noqa: E402
from supernet_common import data_dir  # noqa: E402

from jaxnas.bench import load_table  # noqa: E402
from jaxnas.data.search import BatchIterator, cifar10_search_data, normalise_np  # noqa: E402
from jaxnas.estimators import SupernetEstimator  # noqa: E402
from jaxnas.metrics import kendall_tau  # noqa: E402
from jaxnas.nets import supernet_train as st  # noqa: E402
from jaxnas.nets.supernet import NB201Supernet  # noqa: E402
from jaxnas.spaces import nb201  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="1 epoch on 1,024 images, 20 archs, 256 valid")
    ap.add_argument("--C", type=int, default=8)
    ap.add_argument("--N", type=int, default=1)
    ap.add_argument("--train-images", type=int, default=10_000)
    ap.add_argument("--valid-images", type=int, default=1_000)
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--archs", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    if args.quick:
        args.train_images, args.valid_images, args.epochs, args.archs = 1024, 256, 1, 20

    print(f"machine: {os.cpu_count()} cores, loadavg {os.getloadavg()[0]:.1f}; jax {jax.__version__} "
          f"backend {jax.default_backend()}")
    print(f"config: C={args.C} N={args.N}, {args.train_images} train / {args.valid_images} valid images, "
          f"{args.epochs} epochs, batch {args.batch}, {args.archs} architectures, seed {args.seed}")
    root = data_dir()
    data = cifar10_search_data(root, seed=args.seed)
    rng = np.random.default_rng(args.seed)
    tr = rng.permutation(len(data.y_train))[:args.train_images]
    va = rng.permutation(len(data.y_valid))[:args.valid_images]
    xv = normalise_np(data.x_valid[va], data.mean, data.std)
    yv = data.y_valid[va]

    model = NB201Supernet(C=args.C, N=args.N)
    steps = args.train_images // args.batch
    opt = st.make_optimizer(args.epochs, steps, nesterov=True)
    key = jax.random.PRNGKey(args.seed)
    state = st.init_supernet(key, model, opt)
    step = st.make_train_step(model, opt)
    t_start = time.perf_counter()
    for e in range(args.epochs):
        t0 = time.perf_counter()
        batches = BatchIterator(data.x_train[tr], data.y_train[tr], args.batch, data.mean, data.std,
                                seed=args.seed * 1000 + e)
        state, losses = st.train_epoch(jax.random.fold_in(key, e), step, state, batches,
                                       alpha_shape=model.alpha_shape)
        print(f"epoch {e}: mean loss {float(losses.mean()):.4f}, {time.perf_counter() - t0:.1f} s "
              f"(loadavg {os.getloadavg()[0]:.1f})", flush=True)
    t_train = time.perf_counter() - t_start

    idx = np.sort(np.random.default_rng(args.seed).choice(nb201.NUM_ARCHS, args.archs, replace=False))
    codes = nb201.from_index(idx)
    est = SupernetEstimator(model, state.weights, state.batch_stats, xv, yv)
    t0 = time.perf_counter()
    acc = np.asarray(est.accuracy(codes))
    t_eval = time.perf_counter() - t0
    table = load_table(root)
    test = np.asarray(table.column("cifar10_test_acc"))[idx]
    conn = np.asarray(nb201.is_connected(codes))
    tau = float(kendall_tau(acc, test))
    tau_c = float(kendall_tau(acc[conn], test[conn]))
    print(f"pre-training {t_train:.0f} s; evaluation of {args.archs} archs x {args.valid_images} images "
          f"{t_eval:.1f} s (with compile)")
    print(f"supernet accuracy: min {acc.min():.1f} median {np.median(acc):.1f} max {acc.max():.1f} %; "
          f"{conn.sum()} of {args.archs} connected")
    print(f"Kendall tau vs NB201 CIFAR-10 test accuracy: all {tau:.3f}, connected {tau_c:.3f}")
    if "cifar10_valid_acc_hp12" in table.columns:
        h12 = np.asarray(table.column("cifar10_valid_acc_hp12"))[idx]
        print(f"Kendall tau vs NB201 12-epoch valid accuracy: all {float(kendall_tau(acc, h12)):.3f}, "
              f"connected {float(kendall_tau(acc[conn], h12[conn])):.3f}")
    print(f"RESULT name=supernet_rank_quality jaxnas={tau:.4f} peer=nan ratio=nan unit=kendall_tau")


if __name__ == "__main__":
    main()
