"""RMI estimator throughput: jaxnas strategies vs the PyTorch peer (one architecture at a time).

Paper configuration (METHODS.md 5.1): NB201 TinyNetwork C=16, N=5, one selected batch of 32
CIFAR-10 images (32x32), a population of 8 random connected architectures, a fixed number of
training steps (``--steps``; each architecture does ``steps + 1`` forwards and ``steps``
updates, in both implementations). Both run in this process, one after the other, on the same
architectures and the same initial weights (copied from JAX into PyTorch).

Reported for every jaxnas strategy: architectures per second (median over ``--repeats``
alternating rounds), compile time (the first call, with the persistent compilation cache
disabled unless ``--cache``) and peak resident memory (VmHWM, reset before each phase). The
RESULT line is for the default strategy of this backend; ``ratio`` = peer time / jaxnas time.

Run from the repo root: ``python benchmarks/rmi_vs_torch.py [--quick]``. Runs unchanged on a GPU
(there ``'mask'`` is the default and PyTorch uses CUDA if available).
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time

_CACHE = "--cache" in sys.argv
if not _CACHE:
    os.environ["JAXNAS_NO_COMPILATION_CACHE"] = "1"  # report cold compile times

import jax  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch  # noqa: E402
import torch_rmi  # noqa: E402

from jaxnas.data import prepare_rmi_batch  # noqa: E402
from jaxnas.estimators.rmi import STRATEGIES, RMIEstimator, default_strategy  # noqa: E402
from jaxnas.spaces import nb201  # noqa: E402


def data_dir():
    env = os.environ.get("JAXNAS_DATA_DIR")
    if env:
        return env
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "data")


def rmi_batch(root, seed=0):
    """The RMI batch: lowest-loss CIFAR-10 train images (first training part) under the
    pretrained ResNet-20 (:func:`jaxnas.data.prepare_rmi_batch`)."""
    x, y, feats, _ = prepare_rmi_batch({"data_dir": root, "batch_seed": seed},
                                       train=os.path.join(root, "cifar10", "cifar10_train_part0.npz"))
    return x, y, feats


def random_archs(n, seed):
    rng = np.random.default_rng(seed)
    out = []
    while len(out) < n:
        a = rng.integers(0, 5, 6)
        if nb201.is_connected(a):
            out.append(a)
    return np.array(out, np.int32)


class PeakRSS:
    """Peak resident set size of this process during a block (VmHWM, reset on entry)."""

    def __enter__(self):
        try:
            with open(f"/proc/{os.getpid()}/clear_refs", "w") as fh:
                fh.write("5")
            self.ok = True
        except OSError:
            self.ok = False
            self._max = 0
            self._stop = False
            self._t = threading.Thread(target=self._poll, daemon=True)
            self._t.start()
        return self

    def _rss(self, key):
        with open(f"/proc/{os.getpid()}/status") as fh:
            for line in fh:
                if line.startswith(key):
                    return int(line.split()[1]) * 1024
        return 0

    def _poll(self):
        while not self._stop:
            self._max = max(self._max, self._rss("VmRSS:"))
            time.sleep(0.01)

    def __exit__(self, *exc):
        if self.ok:
            self.peak = self._rss("VmHWM:")
        else:
            self._stop = True
            self._t.join()
            self.peak = self._max


def worker_peaks(est) -> int:
    """Peak RSS of an estimator's worker processes (their VmHWM since start)."""
    total = 0
    pool = getattr(est, "_workers", None)
    for pid in pool.workers if pool is not None else []:
        try:
            with open(f"/proc/{pid}/status") as fh:
                total += next(int(line.split()[1]) * 1024 for line in fh if line.startswith("VmHWM:"))
        except (OSError, StopIteration):
            pass
    return total


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="reduced run (~1 min): 3 steps, 2 repeats, composed only")
    ap.add_argument("--steps", type=int, default=10, help="training steps per architecture (default 10)")
    ap.add_argument("--pop", type=int, default=8, help="population size (default 8)")
    ap.add_argument("--C", type=int, default=16)
    ap.add_argument("--N", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=3, help="alternating timing rounds (default 3)")
    ap.add_argument("--strategies", default=",".join(STRATEGIES), help="comma-separated jaxnas strategies")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cache", action="store_true", help="keep the persistent compilation cache")
    args = ap.parse_args()
    strategies = [s for s in args.strategies.split(",") if s]
    if args.quick:
        args.steps, args.repeats = 3, 2
        strategies = [default_strategy()]
    for s in strategies:
        if s not in STRATEGIES:
            ap.error(f"unknown strategy {s!r}")

    ncores = os.cpu_count() or 1
    torch.set_num_threads(ncores)
    tdev = "cuda" if torch.cuda.is_available() else "cpu"
    default = default_strategy()
    print(f"machine: {ncores} cores; jax {jax.__version__} backend {jax.default_backend()} devices {jax.devices()}")
    print(f"XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}  persistent compile cache: {'on' if _CACHE else 'off'}")
    print(f"torch {torch.__version__} device {tdev}: num_threads={torch.get_num_threads()} "
          f"interop_threads={torch.get_num_interop_threads()}")
    print(f"config: C={args.C} N={args.N} batch 32 32x32, population {args.pop}, {args.steps} steps "
          f"({args.steps + 1} forwards, {args.steps} updates per architecture)")

    x, y, feats = rmi_batch(data_dir(), args.seed)
    archs = random_archs(args.pop, args.seed)
    key = jax.random.PRNGKey(args.seed)
    cfg = dict(C=args.C, N=args.N, steps=args.steps)

    ests, compile_s, peak = {}, {}, {}
    for s in strategies:
        with PeakRSS() as pk:
            t0 = time.perf_counter()
            est = RMIEstimator(x, y, feats, strategy=s, **cfg)
            scores = np.asarray(est.evaluate(key, archs))  # first call: includes any compilation
            first = time.perf_counter() - t0
        ests[s] = est
        peak[s] = pk.peak + worker_peaks(est)
        t0 = time.perf_counter()
        np.asarray(est.evaluate(key, archs))  # 'mask' returns asynchronously: wait for it
        steady = time.perf_counter() - t0
        compile_s[s] = max(first - steady, 0.0)
        print(f"[{s}] workers {est.workers}, first call {first:.1f} s, compile ~{compile_s[s]:.1f} s, "
              f"peak RSS {peak[s] / 2**30:.2f} GiB, "
              f"scores {np.round(scores, 4).tolist()}")

    params = ests[strategies[0]].init_params(key, archs)

    def run_torch():
        return [torch_rmi.train_arch(a, x, y, feats, params=p, steps=args.steps, C=args.C, N=args.N,
                                     device=tdev) for a, p in zip(archs, params)]

    with PeakRSS() as pk:
        tscores = run_torch()
    peak["torch"] = pk.peak
    print(f"[torch] peak RSS {pk.peak / 2**30:.2f} GiB, scores {np.round(tscores, 4).tolist()}")

    times = {s: [] for s in strategies + ["torch"]}
    for r in range(args.repeats):
        for s in strategies:
            t0 = time.perf_counter()
            np.asarray(ests[s].evaluate(key, archs))
            times[s].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        run_torch()
        times["torch"].append(time.perf_counter() - t0)
        print(f"round {r}: " + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in times.items()))

    med = {k: float(np.median(v)) for k, v in times.items()}
    aps = {k: args.pop / v for k, v in med.items()}
    print("\nresults (median of rounds; the machine is shared, so timings are noisy):")
    print(f"  {'impl':10s} {'arch/s':>8s} {'ms/arch-step':>13s} {'ratio':>6s} {'compile s':>10s} {'peak GiB':>9s}"
          "   (peak: this process + worker processes)")
    for k in strategies + ["torch"]:
        ratio = med["torch"] / med[k]
        comp = f"{compile_s[k]:.1f}" if k in compile_s else "-"
        print(f"  {k:10s} {aps[k]:8.3f} {med[k] / args.pop / args.steps * 1e3:13.1f} {ratio:6.2f} {comp:>10s} "
              f"{peak[k] / 2**30:9.2f}")
    d = default if default in strategies else strategies[0]
    print(f"RESULT name=rmi_vs_torch jaxnas={aps[d]:.4f} peer={aps['torch']:.4f} "
          f"ratio={med['torch'] / med[d]:.3f} unit=arch/s")


if __name__ == "__main__":
    main()
