"""Evidence for issue 11: EvNAS and weight-sharing CMANAS at CPU scale on NAS-Bench-201.

For each method's ``-cpu`` config and each seed: the found architecture's NB201 CIFAR-10 test
accuracy (table look-up), the search wall time, and two baselines at the same number of
architecture evaluations: RSWS (random architectures scored by the same supernet, best one
taken) and a uniformly random architecture (the table's mean / median test accuracy).

Run from the repo root: ``python benchmarks/oneshot_methods.py [--seeds 18 19 20]
[--methods evnas cmanas] [--out DIR]`` (writes one JSON per run into ``--out``).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import tomllib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from jaxnas import methods, runs  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, nargs="+", default=[18, 19, 20])
    ap.add_argument("--methods", nargs="+", default=["evnas", "cmanas"])
    ap.add_argument("--out", default="oneshot-evidence")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    root = Path(__file__).resolve().parents[1]
    print(f"machine: {os.cpu_count()} cores, loadavg {os.getloadavg()}", flush=True)
    for m in args.methods:
        raw = tomllib.loads((root / "configs" / f"{m}_nb201-cpu.toml").read_text())
        raw.pop("method", None)
        for seed in args.seeds:
            t0 = time.perf_counter()
            r = methods.run(m, {**raw, "seed": seed}, progress=runs.ConsoleProgress())
            wall = time.perf_counter() - t0
            runs.write_json(out / f"{m}-seed{seed}.json", {**r.to_json(), "wall_seconds": wall})
            a, b = r.answer, r.baselines
            print(f"RESULT method={m} seed={seed} acc={a.get('cifar10_test_acc')} "
                  f"arch={a['genotype']} rsws_acc={b.get('rsws', {}).get('cifar10_test_acc')} "
                  f"evals={r.meta['evaluations']} wall_s={wall:.0f} "
                  f"search_s={r.meta['timing']['search_seconds'] + r.meta['timing']['pretrain_seconds']:.0f} "
                  f"load={r.meta['loadavg']}", flush=True)


if __name__ == "__main__":
    main()
