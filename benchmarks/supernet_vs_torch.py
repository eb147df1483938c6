"""NB201 supernet: jaxnas vs the PyTorch peer (benchmarks/torch_supernet.py), same process.

Configuration (METHODS.md 0.2, EvNAS S2): NB201 search TinyNetwork C=16, N=5, BN affine=False
with running statistics, real CIFAR-10 training images (32x32, normalised), batch 64, SGD
(lr 0.025, momentum 0.9, wd 3e-4, clip 5), round-robin over P decoded random alphas.
Both sides start from the same weights (jaxnas init copied into PyTorch); the first step's
losses and the loss of the step after (which checks the update) are printed and compared.

Measured, one after the other (never concurrently), alternating rounds, medians:
(a) training images per second; (b) population evaluation: top-1 of P=20 decoded alphas on
1,024 validation images (jaxnas: one compiled call, vmap over alpha; PyTorch: a loop over the
alphas, ``model.eval()``, batch 1024). Compile time (first call minus a steady call, with the
persistent compilation cache off unless ``--cache``) and peak resident memory (VmHWM, reset
before each phase) are recorded. With ``--loop`` the jaxnas evaluation is also timed as a
Python loop over single alphas (on a GPU the vmapped call should beat it by about P).

Run from the repo root: ``python benchmarks/supernet_vs_torch.py [--quick]``. Runs unchanged
on a GPU (PyTorch then uses CUDA if available).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

if "--cache" not in sys.argv:
    os.environ["JAXNAS_NO_COMPILATION_CACHE"] = "1"  # report cold compile times

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [_HERE, os.path.join(_HERE, "_lib"), os.path.dirname(_HERE)]  # the peer modules; this checkout's jaxnas
import torch  # noqa: E402
import torch_supernet  # noqa: E402
from supernet_common import PeakRSS, data_dir, load_cifar10  # noqa: E402

from jaxnas.nets import supernet_train as st  # noqa: E402
from jaxnas.nets.supernet import NB201Supernet  # noqa: E402
from jaxnas.spaces import nb201  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="reduced run: 5 steps, 1 round, P=20, 256 images")
    ap.add_argument("--C", type=int, default=16)
    ap.add_argument("--N", type=int, default=5)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--steps", type=int, default=20, help="timed training steps per round")
    ap.add_argument("--pop", type=int, default=20)
    ap.add_argument("--valid", type=int, default=1024, help="validation images")
    ap.add_argument("--repeats", type=int, default=3, help="alternating rounds")
    ap.add_argument("--nesterov", action="store_true")
    ap.add_argument("--loop", action="store_true", help="also time jaxnas as a loop over alphas")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cache", action="store_true", help="keep the persistent compilation cache")
    args = ap.parse_args()
    if args.quick:
        args.steps, args.repeats, args.valid = 5, 1, 256

    ncores = os.cpu_count() or 1
    torch.set_num_threads(ncores)
    tdev = "cuda" if torch.cuda.is_available() else "cpu"
    print(f"machine: {ncores} cores, loadavg {os.getloadavg()[0]:.1f}; jax {jax.__version__} "
          f"backend {jax.default_backend()} devices {jax.devices()}")
    print(f"torch {torch.__version__} device {tdev}: num_threads={torch.get_num_threads()} "
          f"interop_threads={torch.get_num_interop_threads()}")
    print(f"config: C={args.C} N={args.N} batch {args.batch} 32x32, {args.steps} steps/round, "
          f"population {args.pop}, {args.valid} validation images, nesterov={args.nesterov}")

    xs, ys = load_cifar10(data_dir(), args.batch * (args.steps + 2) + args.valid, args.seed)
    xv, yv = xs[:args.valid], ys[:args.valid]
    xt, yt = xs[args.valid:], ys[args.valid:]
    batches = [(jnp.asarray(xt[i * args.batch:(i + 1) * args.batch]),
                jnp.asarray(yt[i * args.batch:(i + 1) * args.batch])) for i in range(args.steps + 2)]
    key = jax.random.PRNGKey(args.seed)
    alphas = nb201.discretize(jax.random.uniform(jax.random.fold_in(key, 1), (args.pop, 6, 5)))

    model = NB201Supernet(C=args.C, N=args.N)
    opt = st.make_optimizer(10, 1000, nesterov=args.nesterov)
    state0 = st.init_supernet(key, model, opt)
    step = st.make_train_step(model, opt)
    evaluate = st.make_population_eval(model)

    # ---- torch model from the same weights
    tmodel = torch_supernet.load_jax_params(torch_supernet.Supernet(args.C, args.N),
                                            jax.device_get(state0.weights),
                                            jax.device_get(state0.batch_stats)).to(tdev)
    topt = torch_supernet.make_optimizer(tmodel, nesterov=args.nesterov)
    tb = [(torch.as_tensor(np.asarray(x)).permute(0, 3, 1, 2).contiguous().to(tdev),
           torch.as_tensor(np.asarray(y), dtype=torch.long).to(tdev)) for x, y in batches]
    ta = torch.as_tensor(np.asarray(alphas)).to(tdev)
    txv = torch.as_tensor(xv).permute(0, 3, 1, 2).contiguous().to(tdev)
    tyv = torch.as_tensor(yv, dtype=torch.long).to(tdev)

    # ---- compile + parity (first two steps from identical weights)
    peak = {}
    with PeakRSS() as pk:
        t0 = time.perf_counter()
        w, o, s, l0 = step(state0.weights, state0.opt_state, state0.batch_stats, alphas[0], batches[0])
        l0 = float(l0)
        first = time.perf_counter() - t0
        t0 = time.perf_counter()
        w, o, s, l1 = step(w, o, s, alphas[1], batches[1])
        l1 = float(l1)
        compile_train = max(first - (time.perf_counter() - t0), 0.0)
        t0 = time.perf_counter()
        acc = np.asarray(evaluate(w, s, alphas, xv, yv))
        first = time.perf_counter() - t0
        t0 = time.perf_counter()
        np.asarray(evaluate(w, s, alphas, xv, yv))
        compile_eval = max(first - (time.perf_counter() - t0), 0.0)
    peak["jaxnas"] = pk.peak
    with PeakRSS() as pk:
        t0_ = torch_supernet.train_step(tmodel, topt, ta[0], *tb[0]).item()
        t1_ = torch_supernet.train_step(tmodel, topt, ta[1], *tb[1]).item()
        tacc = torch_supernet.population_accuracy(tmodel, ta, txv, tyv)
    peak["torch"] = pk.peak
    print(f"parity: step-1 loss jaxnas {l0:.6f} torch {t0_:.6f} (rel {abs(l0 - t0_) / abs(t0_):.1e}); "
          f"step-2 loss jaxnas {l1:.6f} torch {t1_:.6f} (rel {abs(l1 - t1_) / abs(t1_):.1e})")
    print(f"population accuracy after 2 steps: jaxnas {np.round(acc, 2).tolist()}")
    print(f"                                   torch  {np.round(tacc, 2).tolist()}")
    print(f"compile: train step {compile_train:.1f} s, population eval {compile_eval:.1f} s; "
          f"peak RSS jaxnas {peak['jaxnas'] / 2**30:.2f} GiB, torch {peak['torch'] / 2**30:.2f} GiB")

    def jax_train():
        nonlocal w, o, s
        for b in range(args.steps):
            w, o, s, loss = step(w, o, s, alphas[b % args.pop], batches[2 + b])
        jax.block_until_ready(loss)

    def torch_train():
        for b in range(args.steps):
            loss = torch_supernet.train_step(tmodel, topt, ta[b % args.pop], *tb[2 + b])
        float(loss)

    def jax_eval():
        np.asarray(evaluate(w, s, alphas, xv, yv))

    def torch_eval():
        torch_supernet.population_accuracy(tmodel, ta, txv, tyv)

    single = st.make_population_eval(model)

    def jax_loop():
        for p in range(args.pop):
            np.asarray(single(w, s, alphas[p:p + 1], xv, yv))

    phases = {"train jaxnas": jax_train, "train torch": torch_train,
              "eval jaxnas": jax_eval, "eval torch": torch_eval}
    if args.loop:
        jax_loop()  # compile P=1
        phases["eval jaxnas loop"] = jax_loop
    times = {k: [] for k in phases}
    for r in range(args.repeats):
        for k, fn in phases.items():
            t0 = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t0)
        print(f"round {r} (loadavg {os.getloadavg()[0]:.1f}): "
              + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in times.items()))
    med = {k: float(np.median(v)) for k, v in times.items()}
    ips = {k: args.steps * args.batch / med[f"train {k}"] for k in ("jaxnas", "torch")}
    eps = {k: args.pop * args.valid / med[f"eval {k}"] for k in ("jaxnas", "torch")}
    print("\nresults (medians; the machine is shared, timings are noisy):")
    print(f"  training: jaxnas {ips['jaxnas']:.1f} img/s ({med['train jaxnas'] / args.steps * 1e3:.0f} ms/step), "
          f"torch {ips['torch']:.1f} img/s ({med['train torch'] / args.steps * 1e3:.0f} ms/step)")
    print(f"  population eval P={args.pop} x {args.valid}: jaxnas {med['eval jaxnas']:.2f} s, "
          f"torch {med['eval torch']:.2f} s")
    if args.loop:
        print(f"  jaxnas loop over alphas: {med['eval jaxnas loop']:.2f} s "
              f"(vmapped is {med['eval jaxnas loop'] / med['eval jaxnas']:.2f}x faster)")
    print(f"RESULT name=supernet_train jaxnas={ips['jaxnas']:.2f} peer={ips['torch']:.2f} "
          f"ratio={med['train torch'] / med['train jaxnas']:.3f} unit=img/s")
    print(f"RESULT name=supernet_population_eval jaxnas={eps['jaxnas']:.1f} peer={eps['torch']:.1f} "
          f"ratio={med['eval torch'] / med['eval jaxnas']:.3f} unit=member_images/s")


if __name__ == "__main__":
    main()
