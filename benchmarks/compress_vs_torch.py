"""beta-VAE training throughput: jaxnas.compress vs the same network in PyTorch.

Both train the same beta-VAE + classifier (``benchmarks/_lib/torch_compress.py`` mirrors
:class:`jaxnas.compress.model.BetaVAE`: layers, padding, loss, Adam) on the same batches of real
images, in this process, one after the other, never concurrently. jaxnas runs its production
train step (:class:`jaxnas.compress.Trainer`: one jitted step with masks applied in the forward
pass, all-ones here; the step is called from a Python loop, like ``jaxnas compress`` does).
PyTorch runs eager, with ``torch.set_num_threads(nproc)``.

Reported: images per second (median over ``--repeats`` alternating rounds), ms per step, the
compile time of the jaxnas step (first call, persistent compilation cache off unless
``--cache``). ``ratio`` = PyTorch time / jaxnas time (above 1: jaxnas is faster).

Run from the repo root: ``python benchmarks/compress_vs_torch.py [--quick] [--dataset cifar10]``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

_CACHE = "--cache" in sys.argv
if not _CACHE:
    os.environ["JAXNAS_NO_COMPILATION_CACHE"] = "1"  # report cold compile times

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "_lib"))
import torch  # noqa: E402
import torch_compress  # noqa: E402

from jaxnas.compress import BetaVAE, Trainer, load_study_data, ones_masks  # noqa: E402


def data_dir():
    env = os.environ.get("JAXNAS_DATA_DIR")
    if env:
        return env
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "data")


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="reduced run (~1 min): 30 steps, 2 rounds")
    ap.add_argument("--dataset", default="mnist", choices=("mnist", "cifar10"))
    ap.add_argument("--batch", type=int, default=128, help="batch size (default 128)")
    ap.add_argument("--steps", type=int, default=100, help="train steps per round (default 100)")
    ap.add_argument("--repeats", type=int, default=3, help="alternating timing rounds (default 3)")
    ap.add_argument("--channels", default="32,64", help="encoder conv widths (default 32,64)")
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--latent", type=int, default=10)
    ap.add_argument("--beta", type=float, default=4.0)
    ap.add_argument("--cache", action="store_true", help="keep the persistent compilation cache")
    args = ap.parse_args()
    if args.quick:
        args.steps, args.repeats = 30, 2
    channels = tuple(int(c) for c in args.channels.split(","))

    ncores = os.cpu_count() or 1
    torch.set_num_threads(ncores)
    print(f"machine: {ncores} cores, loadavg {os.getloadavg()[0]:.1f}; jax {jax.__version__} "
          f"backend {jax.default_backend()}; XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}; "
          f"persistent compile cache {'on' if _CACHE else 'off'}")
    print(f"torch {torch.__version__}: num_threads={torch.get_num_threads()} "
          f"interop_threads={torch.get_num_interop_threads()}")

    n = args.batch * args.steps
    data = load_study_data(args.dataset, "npz", data_dir(), n_train=n, n_test=10)
    x, y = data.x_train, data.y_train
    shape = data.image_shape
    print(f"config: {args.dataset} {shape}, batch {args.batch}, {args.steps} steps per round, "
          f"channels {channels}, hidden {args.hidden}, latent {args.latent}, beta {args.beta}, "
          f"Adam; {len(y)} images ({data.source})")
    order = np.random.default_rng(0).permutation(len(y))
    idx = [order[i * args.batch:(i + 1) * args.batch] for i in range(args.steps)]
    np_batches = [(x[i], y[i]) for i in idx]
    t_batches = [(torch.from_numpy(np.ascontiguousarray(xb.transpose(0, 3, 1, 2))),
                  torch.from_numpy(yb.astype(np.int64))) for xb, yb in np_batches]

    tr = Trainer(BetaVAE(shape, args.latent, channels, args.hidden, data.num_classes), 1e-3)
    params = tr.init(jax.random.key(0))
    masks = ones_masks(params)
    beta, w = jnp.float32(args.beta), jnp.float32(10.0)

    def run_jax(params):
        opt_state = tr.tx.init(params)
        m = None
        for s, (xb, yb) in enumerate(np_batches):
            params, opt_state, m = tr.step(params, opt_state, masks, xb, yb,
                                           jax.random.key(s), beta, w)
        return float(m["loss"])

    t0 = time.perf_counter()
    opt_state = tr.tx.init(params)
    jax.block_until_ready(tr.step(params, opt_state, masks, *np_batches[0], jax.random.key(0),
                                  beta, w))
    compile_s = time.perf_counter() - t0
    print(f"[jaxnas] compile + first step {compile_s:.1f} s")
    model, opt = torch_compress.make_trainer(shape, args.latent, channels, args.hidden,
                                             data.num_classes)
    torch_compress.train_steps(model, opt, t_batches[:3], args.beta)  # warm-up

    times = {"jaxnas": [], "torch": []}
    for r in range(args.repeats):
        t0 = time.perf_counter()
        lj = run_jax(params)
        times["jaxnas"].append(time.perf_counter() - t0)
        model, opt = torch_compress.make_trainer(shape, args.latent, channels, args.hidden,
                                                 data.num_classes)
        t0 = time.perf_counter()
        lt = torch_compress.train_steps(model, opt, t_batches, args.beta)
        times["torch"].append(time.perf_counter() - t0)
        print(f"round {r}: jaxnas {times['jaxnas'][-1]:.2f} s (final loss {lj:.1f}), "
              f"torch {times['torch'][-1]:.2f} s (final loss {lt:.1f}); "
              f"loadavg {os.getloadavg()[0]:.1f}")
    med = {k: float(np.median(v)) for k, v in times.items()}
    ips = {k: n / v for k, v in med.items()}
    print("\nresults (median of rounds; a shared machine makes timings noisy):")
    for k in ("jaxnas", "torch"):
        print(f"  {k:7s} {ips[k]:9.1f} images/s  {1e3 * med[k] / args.steps:7.2f} ms/step")
    print(f"RESULT name=compress_vs_torch jaxnas={ips['jaxnas']:.1f} peer={ips['torch']:.1f} "
          f"ratio={med['torch'] / med['jaxnas']:.3f} unit=images/s")


if __name__ == "__main__":
    main()
