"""Evidence for issues 11 and 12: the one-shot methods at CPU scale on NAS-Bench-201 CIFAR-10.

For each method's ``configs/<method>_nb201-cpu.toml`` and each seed: the found architecture's
NB201 CIFAR-10 test accuracy (200-epoch table look-up), the search wall time, the number of
architecture evaluations, and two baselines at the same number of evaluations: RSWS (random
architectures scored by the same final supernet, the best one taken) and a uniformly random
architecture (the table's mean / median test accuracy). Then one table, mean +- std over the
seeds, beside the papers' NB201 CIFAR-10 test numbers (METHODS.md).

Run from the repo root: ``python benchmarks/oneshot_methods.py [--seeds 18 19 20]
[--methods evnas cmanas pevonas nevonas] [--out DIR]``. One JSON per run goes into ``--out``;
a run whose JSON exists is not rerun (delete it to rerun), so an interrupted benchmark
continues. Runs are sequential: the wall times are comparable only on a quiet machine (the
load average at the start and end of each run is recorded).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import tomllib
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from jaxnas import methods, runs  # noqa: E402

#: NB201 CIFAR-10 test accuracy published by each paper (METHODS.md 1-4)
PAPER = {"evnas": "92.18 ± 1.11", "cmanas": "92.05 ± 0.26 (weight sharing)",
         "pevonas": "93.63 ± 0.42", "nevonas": "93.50 ± 0.30"}
METHODS = ("evnas", "cmanas", "pevonas", "nevonas")


def run_one(root: Path, out: Path, method: str, seed: int) -> dict:
    path = out / f"{method}-seed{seed}.json"
    if path.exists():
        return json.loads(path.read_text())
    raw = tomllib.loads((root / "configs" / f"{method}_nb201-cpu.toml").read_text())
    raw.pop("method", None)
    t0 = time.perf_counter()
    r = methods.run(method, {**raw, "seed": seed}, progress=runs.ConsoleProgress())
    data = {**r.to_json(), "wall_seconds": time.perf_counter() - t0}
    runs.write_json(path, runs.clean_json(data))
    return json.loads(path.read_text())


def _ms(values) -> str:
    v = np.asarray([x for x in values if x is not None], np.float64)
    if not v.size:
        return "n/a"
    return f"{v.mean():.2f} ± {v.std(ddof=1) if v.size > 1 else 0.0:.2f}"


def table(results: dict[str, list[dict]]) -> str:
    lines = ["| method | test acc % (mean ± std) | RSWS test acc % | search s (mean) | "
             "architecture evaluations | seeds | paper (NB201 C10 test) |",
             "|---|---|---|---|---|---|---|"]
    uniform = None
    for m, rs in results.items():
        acc = [r["answer"].get("cifar10_test_acc") for r in rs]
        rsws = [r["baselines"].get("rsws", {}).get("cifar10_test_acc") for r in rs]
        t = [r["meta"]["timing"]["search_seconds"] + r["meta"]["timing"]["pretrain_seconds"]
             for r in rs]
        ev = sorted({r["meta"]["evaluations"] for r in rs})
        lines.append(f"| {m} | {_ms(acc)} | {_ms(rsws)} | {np.mean(t):.0f} | "
                     f"{', '.join(map(str, ev))} | {len(rs)} | {PAPER.get(m, '')} |")
        uniform = uniform or rs[0]["baselines"].get("uniform_random")
    if uniform:
        lines.append(f"| uniformly random architecture | {uniform['cifar10_test_acc_mean']:.2f} "
                     f"(mean), {uniform['cifar10_test_acc_median']:.2f} (median) | | 0 | 1 | | |")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, nargs="+", default=[18, 19, 20])
    ap.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    ap.add_argument("--out", default="oneshot-evidence")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    root = Path(__file__).resolve().parents[1]
    print(f"machine: {os.cpu_count()} cores, loadavg {os.getloadavg()}", flush=True)
    results: dict[str, list[dict]] = {}
    for m in args.methods:
        for seed in args.seeds:
            r = run_one(root, out, m, seed)
            results.setdefault(m, []).append(r)
            a, b, t = r["answer"], r["baselines"], r["meta"]["timing"]
            print(f"RUN method={m} seed={seed} acc={a.get('cifar10_test_acc')} "
                  f"index={a.get('index')} rsws_acc={b.get('rsws', {}).get('cifar10_test_acc')} "
                  f"evals={r['meta']['evaluations']} wall_s={r['wall_seconds']:.0f} "
                  f"search_s={t['search_seconds'] + t['pretrain_seconds']:.0f} "
                  f"load={r['meta']['loadavg']}", flush=True)
    print(table(results))
    accs = [r["answer"].get("cifar10_test_acc") for rs in results.values() for r in rs]
    mean = float(np.mean([a for a in accs if a is not None])) if any(accs) else float("nan")
    print(f"RESULT name=oneshot_methods jaxnas={mean:.2f} peer=nan ratio=nan "
          f"unit=mean_nb201_test_acc_percent", flush=True)


if __name__ == "__main__":
    main()
