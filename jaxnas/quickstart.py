"""``jaxnas quickstart``: MO-HDNAS on real data and real local hardware costs, offline.

The pipeline (every piece is the library's own; only the sizes are small):

1. **Data**: scikit-learn's bundled 8x8 handwritten digits (real images, no download), a fixed
   seeded stratified train/test split; grey levels are repeated to 3 channels.
2. **Reference**: a small CIFAR-style ResNet (depth 8) trained on the spot for a few epochs;
   its test accuracy is reported. Its three stage outputs are the representations candidates
   must match (METHODS.md 5.1).
3. **Batch**: RMI-NAS's lowest-loss batch: 16*B training images, the B with the lowest
   reference cross-entropy are kept.
4. **Similarity**: the RMI estimator, the same code path as the paper configuration, with NB201
   TinyNetworks scaled to the data (small C and N) and fewer SGD steps.
5. **Hardware cost**: latency on this machine from a per-op look-up table measured at start-up
   (:mod:`jaxnas.costs.latency`), validated against whole-network timings on a small sample
   (rank correlation printed), cached on disk per machine. ``measure=False`` uses analytic
   FLOPs instead.
6. **Search**: MO-HDNAS (NSGA-II over similarity, cost and cost diversity).

Writes ``pareto.json``, ``pareto.csv``, ``pareto.png`` and ``run.json`` to the output folder.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from jaxnas.spaces import nb201

#: Constraints reported per run: these quantiles of the cost over the whole space.
CONSTRAINT_QUANTILES = (0.25, 0.5, 0.75)


@dataclasses.dataclass(frozen=True)
class QuickstartConfig:
    """Every setting of a quickstart run (all written to ``run.json``)."""

    generations: int = 12
    population: int = 20
    seed: int = 0
    measure: bool = True  # measured local latency; False: analytic FLOPs
    # candidates (NB201 TinyNetwork scaled to 8x8 digits)
    C: int = 8
    N: int = 1
    steps: int = 50  # RMI forward index whose loss is the score (paper: 150)
    batch_size: int = 32
    pool_factor: int = 16
    # reference
    reference_depth: int = 8
    reference_epochs: int = 6
    # latency look-up table
    latency_batch: int = 32
    latency_validation: int = 6
    k: int = 5  # cost-diversity neighbours (MO-HDNAS chi)

    def __post_init__(self):
        for name in ("generations", "population", "C", "N", "steps", "batch_size", "pool_factor",
                     "reference_epochs", "latency_batch"):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        if self.population < 4:
            raise ValueError(f"population must be at least 4, got {self.population}")
        if self.latency_validation < 0:
            raise ValueError(f"latency_validation must be >= 0, got {self.latency_validation}")


def default_out_dir() -> Path:
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path("jaxnas-runs") / f"quickstart-{stamp}"


def _log(msg: str) -> None:
    print(msg, flush=True)


def prepare_reference(cfg: QuickstartConfig, log=_log):
    """Digits (3-channel), a trained reference, the selected batch and its teacher features."""
    from jaxnas.data import (
        Reference,
        channel_stats,
        fit_classifier,
        load_digits_dataset,
        select_lowest_loss_batch,
    )
    from jaxnas.data.train import TrainSettings
    from jaxnas.nets.resnet import CifarResNet

    ds = load_digits_dataset(seed=cfg.seed)
    x_tr, y_tr = ds.split("train")
    x_te, y_te = ds.split("test")
    x_tr, x_te = np.repeat(x_tr, 3, axis=-1), np.repeat(x_te, 3, axis=-1)
    mean, std = channel_stats(x_tr)
    model = CifarResNet(depth=cfg.reference_depth, num_classes=ds.num_classes)
    settings = TrainSettings(epochs=cfg.reference_epochs, batch_size=64, lr=0.1, augment="none",
                             seed=cfg.seed)
    t0 = time.perf_counter()
    variables, _ = fit_classifier(jax.random.key(cfg.seed), model, x_tr, y_tr, mean, std, settings)
    ref = Reference(f"digits_resnet{cfg.reference_depth}", model, variables, mean, std,
                    ds.num_classes)
    acc = ref.accuracy(x_te, y_te)
    log(f"reference: ResNet-{cfg.reference_depth} trained on digits ({len(x_tr)} train images, "
        f"{cfg.reference_epochs} epochs, {time.perf_counter() - t0:.1f} s): "
        f"test accuracy {100 * acc:.2f} % on {len(x_te)} images")
    x, y = select_lowest_loss_batch(jax.random.key(cfg.seed + 1), x_tr, y_tr, ref,
                                    batch_size=cfg.batch_size, pool_factor=cfg.pool_factor,
                                    augment=False)
    feats = ref.features(x, normalised=True)
    info = {"reference": ref.name, "reference_test_accuracy": acc, "n_train": int(len(x_tr)),
            "n_test": int(len(x_te)), "num_classes": ds.num_classes}
    return x, y, feats, info


class _ValuesCost:
    """A cost given by its value for every architecture (official order); a gather."""

    traceable = True

    def __init__(self, values):
        self.values = jnp.asarray(values, jnp.float32)

    def __call__(self, codes):
        return self.values[nb201.index_jax(jnp.asarray(codes))]


def prepare_cost(cfg: QuickstartConfig, cache_dir=None, log=_log):
    """The hardware cost: a measured local latency table, or analytic FLOPs."""
    from jaxnas.costs.latency import LatencySpec, load_or_measure, validate

    if not cfg.measure:
        from jaxnas.costs import flops_params

        flops = _ValuesCost(flops_params(nb201.ARCHS, C=cfg.C, N=cfg.N, num_classes=10,
                                         image_size=8)[0])
        log("cost: analytic FLOPs (M) of the 8x8 network (--no-measure)")
        return flops, {"cost": "flops", "unit": "MFLOPs"}, "MFLOPs"
    spec = LatencySpec(C=cfg.C, N=cfg.N, image_size=8, in_channels=3, num_classes=10,
                       batch_size=cfg.latency_batch)
    t0 = time.perf_counter()
    table, cached = load_or_measure(spec, cache_dir=cache_dir,
                                    progress=lambda s: log(f"  timing {s} ..."))
    log(f"cost: latency on this machine, batch {spec.batch_size}, per-op look-up table "
        f"({'from cache' if cached else f'measured in {time.perf_counter() - t0:.1f} s'}; "
        f"fixed part {table.fixed_ms:.3f} ms)")
    info = {"cost": "local_latency", "unit": "ms", "latency_table": table.to_json()}
    if cfg.latency_validation >= 2:
        rng = np.random.default_rng(cfg.seed)
        sample = nb201.ARCHS[rng.choice(nb201.NUM_ARCHS, cfg.latency_validation, replace=False)]
        val = validate(table, sample)
        log(f"  validated on {len(sample)} whole networks: Spearman {val['spearman']:.2f}, "
            f"Kendall {val['kendall']:.2f} (measured {min(val['measured_ms']):.3f}-"
            f"{max(val['measured_ms']):.3f} ms)")
        info["latency_validation"] = val
    return table, info, "ms"


def search(cfg: QuickstartConfig, estimator, cost, progress: bool = True):
    """MO-HDNAS (:mod:`jaxnas.methods.mo_hdnas`, METHODS.md 6) with its default operators:
    NSGA-II over [RMI score, cost, -chi].

    Args:
        cost: a cost object whose ``values`` hold the cost of all 15,625 architectures.
    Returns:
        ``(final_population codes (P, 6), objectives (P, 3), fitness_fn)``.
    """
    from jaxnas.estimators import CachedEstimator
    from jaxnas.methods import mo_hdnas
    from jaxnas.methods.common import drive

    mcfg = mo_hdnas.Config(population=cfg.population, generations=cfg.generations, chi_k=cfg.k)
    mcfg.validate()
    srch = mo_hdnas.make_search(mcfg)
    costs = jnp.asarray(cost.values, jnp.float32)
    data = {"cost": costs, "T": jnp.quantile(costs, jnp.asarray(CONSTRAINT_QUANTILES))}
    fitness = CachedEstimator(estimator)  # each genotype trained once (CMANAS's AF table)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=cfg.generations + 1, desc="MO-HDNAS", unit="gen")  # + the initial population

    def callback(g, state):
        if bar is not None:
            bar.set_postfix(evaluations=fitness.evaluations, refresh=False)
            bar.update(1)

    try:
        state = drive(srch, fitness.evaluate, jax.random.key(cfg.seed), data, srch.default_params(mcfg),
                      traceable=False, callback=callback)
    finally:
        if bar is not None:
            bar.close()
    codes, objectives, _ = srch.final_front(state)
    picks = srch.result(state, data)
    per_constraint = [
        {"quantile": q, "limit": float(t), "arch": nb201.to_str(np.asarray(a)) if np.isfinite(sc) else None,
         "rmi_loss": float(sc) if np.isfinite(sc) else None}
        for q, t, a, sc in zip(CONSTRAINT_QUANTILES, np.asarray(data["T"]), np.asarray(picks["arch"]),
                               np.asarray(picks["score"]))
    ]
    fitness.per_constraint = per_constraint
    return np.asarray(codes), np.asarray(objectives), fitness


def pareto_mask(points: np.ndarray) -> np.ndarray:
    """Non-dominated rows of ``points`` (N, M), minimisation."""
    from jaxnas.metrics import non_dominated_rank

    return np.asarray(non_dominated_rank(np.asarray(points, np.float32))) == 0


def write_outputs(out: Path, cfg: QuickstartConfig, archs, fitness, unit: str, info: dict) -> dict:
    """pareto.json/.csv/.png and run.json; returns the Pareto rows."""
    import csv

    out.mkdir(parents=True, exist_ok=True)
    score, cost = fitness[:, 0], fitness[:, 1]
    diversity = -fitness[:, 2]
    # One row per distinct architecture of the final population.
    _, first = np.unique(nb201.index(archs), return_index=True)
    first = np.sort(first)
    front = pareto_mask(np.stack([score, cost], 1)[first])
    rows = []
    for j, keep in zip(first, front):
        if keep:
            rows.append({"arch": nb201.to_str(archs[j]), "arch_index": int(nb201.index(archs[j])),
                         "similarity": float(1.0 - score[j]), "rmi_loss": float(score[j]),
                         f"cost_{unit}": float(cost[j]), "diversity": float(diversity[j])})
    rows.sort(key=lambda r: r[f"cost_{unit}"])
    (out / "pareto.json").write_text(json.dumps(rows, indent=1))
    with open(out / "pareto.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    population = [{"arch": nb201.to_str(archs[j]), "rmi_loss": float(score[j]),
                   f"cost_{unit}": float(cost[j]), "diversity": float(diversity[j])} for j in first]
    (out / "run.json").write_text(json.dumps({"config": dataclasses.asdict(cfg), "seed": cfg.seed,
                                              **info, "final_population": population}, indent=1))
    plot_pareto(out / "pareto.png", 1.0 - score[first], cost[first], front, archs[first], unit)
    return rows


def plot_pareto(path: Path, similarity, cost, front, archs, unit: str) -> None:
    """Similarity-vs-cost scatter of the final population; Pareto front highlighted and
    each front member labelled with its architecture."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    short = {"none": "0", "skip_connect": "s", "nor_conv_1x1": "1", "nor_conv_3x3": "3",
             "avg_pool_3x3": "p"}
    fig, ax = plt.subplots(figsize=(8, 5.5), dpi=110)
    ax.scatter(cost[~front], similarity[~front], c="0.6", s=28, label="final population")
    order = np.argsort(cost[front])
    fc, fs = cost[front][order], similarity[front][order]
    ax.plot(fc, fs, "-o", c="tab:red", ms=7, label="Pareto front")
    for c, s, a in zip(fc, fs, np.asarray(archs)[front][order]):
        label = "".join(short[nb201.OPS[int(o)]] for o in a)
        ax.annotate(label, (c, s), textcoords="offset points", xytext=(5, 5), fontsize=8)
    ax.set_xlabel(f"latency on this machine ({unit})" if unit == "ms" else f"cost ({unit})")
    ax.set_ylabel("similarity to the reference (1 - RMI loss)")
    ax.set_title("jaxnas quickstart: MO-HDNAS on digits (labels: ops of edges 1..6,\n"
                 "0=none s=skip 1=conv1x1 3=conv3x3 p=avgpool)", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def run(cfg: QuickstartConfig = QuickstartConfig(), out: Path | None = None, progress: bool = True,
        cache_dir=None, log=_log) -> dict:
    """The whole quickstart. Returns a summary dict (also the content of run.json)."""
    from jaxnas.estimators.rmi import RMIEstimator

    t_start = time.perf_counter()
    out = Path(out) if out is not None else default_out_dir()
    log(f"jaxnas quickstart: MO-HDNAS on scikit-learn digits, seed {cfg.seed}, "
        f"population {cfg.population}, {cfg.generations} generations -> {out}")
    x, y, feats, info = prepare_reference(cfg, log)
    cost, cost_info, unit = prepare_cost(cfg, cache_dir, log)
    info.update(cost_info)
    t0 = time.perf_counter()
    est = RMIEstimator(x, y, feats, C=cfg.C, N=cfg.N, num_classes=10, steps=cfg.steps)
    log(f"similarity: RMI estimator ({est.strategy} strategy), NB201 TinyNetwork C={cfg.C} "
        f"N={cfg.N}, batch {cfg.batch_size}, score = loss at step {cfg.steps} (paper: 150; "
        f"fewer here to fit the time budget); compiled in {time.perf_counter() - t0:.1f} s")
    t0 = time.perf_counter()
    archs, fitness, fit = search(cfg, est, cost, progress)
    info.update({"search_seconds": time.perf_counter() - t0, "evaluations": fit.evaluations,
                 "rmi_strategy": est.strategy, "per_constraint": fit.per_constraint})
    info["total_seconds"] = time.perf_counter() - t_start
    rows = write_outputs(out, cfg, archs, fitness, unit, info)
    log(f"\nPareto set ({len(rows)} architectures, {fit.evaluations} distinct architectures "
        f"trained, {info['total_seconds']:.0f} s in all):")
    log(f"  {'similarity':>10}  {'cost (' + unit + ')':>12}  {'diversity':>9}  architecture")
    for r in rows:
        log(f"  {r['similarity']:>10.4f}  {r[f'cost_{unit}']:>12.4f}  {r['diversity']:>9.3f}  {r['arch']}")
    log("\nOne run covers every constraint: best similarity with cost <= T, T = cost quantile:")
    for c in fit.per_constraint:
        found = (f"similarity {1 - c['rmi_loss']:.4f}  {c['arch']}" if c["arch"] else "none feasible")
        log(f"  q={c['quantile']:.2f}  T={c['limit']:.4f} {unit}: {found}")
    log(f"\nplot: {out / 'pareto.png'}\nresults: {out / 'pareto.json'}, {out / 'pareto.csv'}, "
        f"{out / 'run.json'}")
    return {"out": str(out), "pareto": rows, **info}
