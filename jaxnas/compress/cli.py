"""``jaxnas compress``: the beta x sparsity sweep from a TOML config, and its output files.

This is the CLI-level module of :mod:`jaxnas.compress` (the numerical core has no file I/O):
it reads and validates the config, loads the data, drives the sweep with a progress bar and
writes, atomically (a temporary folder renamed into place, so a refused or failed run leaves
nothing in ``--out``):

- ``sweep.csv``: one row per (model, seed, sparsity);
- ``summary.csv``: mean and standard deviation over seeds per (model, sparsity);
- ``prune_steps.csv``: every pruning step (several per row with the iterative schedule): its
  sparsity, accuracy before and after fine-tuning, nonzero parameters and FLOPs;
- ``accuracy_vs_sparsity.png``: one line per beta plus the control, error bars = seed std;
- ``traversals/<model>.png``: latent traversal grids (first seed);
- ``run.json``: every setting, the seeds, the data source (and its caveat), diagnostics,
  timings and versions (strict JSON).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import shutil
import time
import tomllib
from pathlib import Path

import jax
import numpy as np

from jaxnas import __version__
from jaxnas.compress.config import CompressConfig, config_from_dict
from jaxnas.compress.data import load_study_data
from jaxnas.compress.train import planned_steps, run_sweep

__all__ = ["add_parser", "load_config", "summarise", "write_outputs"]

_SUMMARY_KEYS = ("accuracy", "accuracy_before_finetune", "achieved_sparsity", "params_nonzero",
                 "flops", "kl_total", "active_units", "total_correlation")


def load_config(path: str | Path) -> CompressConfig:
    """Read and validate a TOML config. Raises ValueError (one line) on any problem."""
    f = Path(path)
    if not f.is_file():
        raise ValueError(f"config file not found: {path}")
    try:
        data = tomllib.loads(f.read_text())
    except tomllib.TOMLDecodeError as e:
        raise ValueError(f"{path}: invalid TOML: {e}") from e
    return config_from_dict(data, name=f.stem)


def _mean_std(vals):
    v = [x for x in vals if x is not None]
    if not v:
        return None, None
    a = np.asarray(v, np.float64)
    return float(a.mean()), float(a.std(ddof=1)) if len(a) > 1 else 0.0


def summarise(rows: list[dict]) -> list[dict]:
    """Mean and sample std over seeds per (model, target sparsity), in first-seen order."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["model"], r["target_sparsity"]), []).append(r)
    out = []
    for (model, s), rs in groups.items():
        row = {"dataset": rs[0]["dataset"], "model": model, "beta": rs[0]["beta"],
               "target_sparsity": s, "seeds": len(rs)}
        for k in _SUMMARY_KEYS:
            row[f"{k}_mean"], row[f"{k}_std"] = _mean_std([r[k] for r in rs])
        out.append(row)
    return out


def _write_csv(path: Path, rows: list[dict]) -> None:
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        for r in rows:
            w.writerow({k: ("" if v is None else v) for k, v in r.items()})


def _clean(x):
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {str(k): _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    if isinstance(x, np.generic):
        return _clean(x.item())
    return x


def plot_accuracy(path: Path, summary: list[dict], title: str) -> None:
    """Accuracy vs sparsity, one line per model, error bars = std over seeds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.8), dpi=110)
    models = list(dict.fromkeys(r["model"] for r in summary))
    for m in models:
        rs = sorted((r for r in summary if r["model"] == m), key=lambda r: r["target_sparsity"])
        x = [100 * r["target_sparsity"] for r in rs]
        y = [100 * r["accuracy_mean"] for r in rs]
        e = [100 * (r["accuracy_std"] or 0.0) for r in rs]
        style = dict(ls="--", c="k") if m == "control" else {}
        ax.errorbar(x, y, yerr=e, marker="o", capsize=3, label=f"{m} (n={rs[0]['seeds']})",
                    **style)
    ax.set_xlabel("global magnitude sparsity of the inference path (%)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot_traversal(path: Path, images: np.ndarray, latents, kls, label: str,
                   value_range: float) -> None:
    """A grid: one row per latent (KL in the row label), one column per traversal value."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows, cols = images.shape[:2]
    fig, axes = plt.subplots(rows, cols, figsize=(0.9 * cols + 1.2, 0.9 * rows + 0.6), dpi=100,
                             squeeze=False)
    grey = images.shape[-1] == 1
    for i in range(rows):
        for j in range(cols):
            a = axes[i, j]
            img = images[i, j, ..., 0] if grey else images[i, j]
            a.imshow(np.clip(img, 0, 1), cmap="gray" if grey else None, vmin=0, vmax=1)
            a.set_xticks([])
            a.set_yticks([])
            if j == 0:
                a.set_ylabel(f"z{latents[i]}\nKL {kls[i]:.2f}", fontsize=7)
    fig.suptitle(f"{label}: latent traversals, z_j in [-{value_range:g}, {value_range:g}]",
                 fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def write_outputs(tmp: Path, cfg: CompressConfig, result: dict, info: dict) -> dict:
    """Write every output file into the (temporary) folder ``tmp``."""
    rows = result["rows"]
    summary = summarise(rows)
    _write_csv(tmp / "sweep.csv", rows)
    _write_csv(tmp / "summary.csv", summary)
    _write_csv(tmp / "prune_steps.csv", result["steps"])
    caveat = info["data"]["caveat"]
    title = (f"{cfg.dataset}: accuracy vs sparsity ({cfg.schedule}, fine-tune "
             f"{cfg.finetune_steps} steps), mean ± std over {len(cfg.seeds)} seed(s)"
             + ("\n" + "MNIST: official test set split in two (not the official protocol)"
                if caveat else ""))
    plot_accuracy(tmp / "accuracy_vs_sparsity.png", summary, title)
    (tmp / "traversals").mkdir()
    trav = {}
    for label, t in result["traversals"].items():
        name = label.replace("=", "")
        plot_traversal(tmp / "traversals" / f"{name}.png", t["images"], t["latents"], t["kl"],
                       label, cfg.traversal_range)
        trav[label] = {"file": f"traversals/{name}.png", "latents": t["latents"], "kl": t["kl"]}
    run = {"jaxnas_version": __version__, "command": "compress", "config": cfg.as_dict(),
           "seeds": list(cfg.seeds), **info, "summary": summary,
           "diagnostics": result["diagnostics"], "traversals": trav}
    (tmp / "run.json").write_text(json.dumps(_clean(run), indent=1, allow_nan=False) + "\n")
    return {"summary": summary}


def _fmt(v, spec="{:.2f}"):
    return "–" if v is None else spec.format(v)


def describe(summary: list[dict], caveat: str) -> str:
    """The accuracy table the CLI prints (accuracy in %, mean ± std over seeds)."""
    lines = [f"{'model':10s} {'sparsity':>8s} {'accuracy %':>16s} {'nonzero params':>14s} "
             f"{'MFLOPs':>8s} {'active':>6s} {'TC nats':>8s}"]
    for r in summary:
        acc = f"{100 * r['accuracy_mean']:.2f} ± {100 * (r['accuracy_std'] or 0):.2f}"
        lines.append(f"{r['model']:10s} {100 * r['target_sparsity']:7.0f}% {acc:>16s} "
                     f"{r['params_nonzero_mean']:14.0f} {r['flops_mean'] / 1e6:8.3f} "
                     f"{_fmt(r['active_units_mean'], '{:.1f}'):>6s} "
                     f"{_fmt(r['total_correlation_mean']):>8s}")
    if caveat:
        lines.append(caveat)
    return "\n".join(lines)


def add_parser(sub, usage_error: type[Exception]) -> argparse.ArgumentParser:
    """Register ``compress`` on ``sub``; bad input raises ``usage_error`` (exit 2)."""
    p = sub.add_parser(
        "compress",
        help="the beta-VAE + pruning study: sweep beta x sparsity on MNIST or CIFAR-10",
        description="Train a beta-VAE with a classifier on z for every beta of the config (and "
                    "a plain classifier as the control), for every seed; prune each by global "
                    "L1 magnitude to every sparsity (one-shot or iterative, optional "
                    "fine-tuning) and measure accuracy, nonzero parameters and FLOPs; record "
                    "per-latent KL, active units, total correlation and latent traversals. "
                    "Writes sweep.csv, summary.csv, prune_steps.csv, accuracy_vs_sparsity.png, "
                    "traversals/*.png "
                    "and run.json to --out (atomically).",
        epilog="config keys (defaults): " + ", ".join(
            f"{k} ({v})" for k, v in CompressConfig().as_dict().items() if k != "name")
        + ". Meanings: jaxnas.compress.CompressConfig and the comments in configs/compress_*.toml.")
    p.add_argument("--config", required=True,
                   help="TOML file (configs/compress_*.toml; unknown keys are errors)")
    p.add_argument("--out", default=None,
                   help="output folder, must not exist or be empty "
                        "(default: jaxnas-runs/compress-<config>-<time>)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=lambda args: run_cli(args, usage_error))
    return p


def _out_dir(args, cfg: CompressConfig, usage_error) -> Path:
    if args.out is None:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        return Path("jaxnas-runs") / f"compress-{cfg.name or cfg.dataset}-{stamp}"
    out = Path(args.out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise usage_error(f"--out {out} already exists and is not an empty folder; "
                          "choose a new folder")
    return out


def run_cli(args, usage_error) -> None:
    try:
        cfg = load_config(args.config)
    except ValueError as e:
        raise usage_error(str(e).splitlines()[0]) from e
    out = _out_dir(args, cfg, usage_error)
    try:
        data = load_study_data(cfg.dataset, cfg.source, cfg.data_dir, cfg.n_train, cfg.n_test,
                               split_seed=0, mnist_test_fraction=cfg.mnist_test_fraction)
    except FileNotFoundError as e:
        raise usage_error(str(e).splitlines()[0]) from e
    h, w, _ = data.image_shape
    k = 2 ** len(cfg.channels)
    if h % k or w % k:
        raise usage_error(f"channels: {len(cfg.channels)} stride-2 layers need image sides "
                          f"divisible by {k}, but {cfg.dataset} images are {h}x{w}")
    if len(data.y_train) < 2:
        raise usage_error(f"n_train: at least 2 training images needed, got {len(data.y_train)}")
    print(f"jaxnas compress: {cfg.dataset} from {data.source}: {len(data.y_train)} train / "
          f"{len(data.y_test)} test images {data.image_shape}; betas {list(cfg.betas)}"
          f"{' + control' if cfg.control else ''}; seeds {list(cfg.seeds)}; sparsities "
          f"{list(cfg.sparsities)} ({cfg.schedule}, fine-tune {cfg.finetune_steps} steps) -> {out}")
    if data.caveat:
        print(data.caveat)
    bar = None
    if not args.no_progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=planned_steps(cfg, len(data.y_train)), desc="compress", unit="step")

    def on_event(kind, **info):
        if bar is None:
            return
        if kind == "step":
            bar.update(info["n"])
        elif kind == "stage":
            bar.set_description(f"{info['model']} seed {info['seed']}: {info['what']}")
        elif kind == "row":
            r = info["row"]
            bar.write(f"{r['model']:9s} seed {r['seed']} sparsity {r['target_sparsity']:.0%}: "
                      f"accuracy {100 * r['accuracy']:.2f} % ({r['params_nonzero']} nonzero "
                      f"params, {r['flops'] / 1e6:.2f} MFLOPs)")

    t0 = time.perf_counter()
    try:
        result = run_sweep(cfg, data, on_event)
    finally:
        if bar is not None:
            bar.close()
    seconds = time.perf_counter() - t0
    info = {"data": data.info(), "sweep_seconds": seconds,
            "machine": {"nproc": os.cpu_count(), "jax": jax.__version__,
                        "backend": jax.default_backend()},
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    try:
        written = write_outputs(tmp, cfg, result, info)
        if out.exists():
            out.rmdir()  # an empty folder (checked before the run)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    print()
    print(describe(written["summary"], data.caveat))
    print(f"\nsweep took {seconds:.0f} s; wrote {out}/: sweep.csv, summary.csv, "
          f"prune_steps.csv, accuracy_vs_sparsity.png, traversals/, run.json")
