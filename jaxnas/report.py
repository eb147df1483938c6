"""Reports of a finished run: the summary table as Markdown, and PNG plots.

Works on the JSON data of a run (``result.json``), so ``jaxnas report DIR`` redraws
everything from a folder. Plots (matplotlib, imported lazily):

- ``pareto-<device>.png``: accuracy vs cost of the final population (seed 0), the
  non-dominated members joined, disconnected cells marked, and the answer for each
  constraint (with its threshold) marked;
- ``regret.png``: mean regret per device x constraint, the method against random search;
- ``history.png``: best and mean score per generation, and the population's cost range.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

SUMMARY_COLUMNS = (
    ("method", "method", None),
    ("device", "device", None),
    ("constraint_q", "q", "{:.2f}"),
    ("T", "T", "{:.3f}"),
    ("feasible_rate", "feasible", "{:.0%}"),
    ("accuracy_mean", "acc %", "{:.2f}"),
    ("accuracy_std", "± std", "{:.2f}"),
    ("best_feasible_accuracy", "best feasible %", "{:.2f}"),
    ("regret_mean", "regret", "{:.2f}"),
    ("evaluations", "evals", "{}"),
    ("distinct_mean", "distinct", "{:.0f}"),
    ("seconds_mean", "s/run", "{:.2g}"),
)


def _fmt(value, spec):
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    try:
        return spec.format(value) if spec else str(value)
    except (TypeError, ValueError):
        return str(value)


def markdown_table(rows: list[dict], columns=SUMMARY_COLUMNS) -> str:
    """Rows as a GitHub Markdown table with the given ``(key, header, format)`` columns."""
    head = "| " + " | ".join(h for _, h, _ in columns) + " |"
    sep = "|" + "|".join("---" for _ in columns) + "|"
    body = ["| " + " | ".join(_fmt(r.get(k), f) for k, _, f in columns) + " |" for r in rows]
    return "\n".join([head, sep, *body])


def describe(data: dict) -> str:
    """Header lines plus the summary table, as printed and as written to summary.md."""
    meta, cfg = data.get("meta") or {}, data.get("config") or {}
    lines = [f"# {data.get('method')} results", ""]
    if meta.get("oracle"):
        lines += [f"**{meta.get('note', '')}.**", ""]
    elif meta.get("protocol"):
        lines += [f"**{meta['protocol']}**", ""]
    missing = meta.get("missing_devices") or []
    lines += [
        f"- estimator: {meta.get('estimator')}",
        f"- devices: {', '.join(map(str, meta.get('devices') or []))}"
        + (f" (missing from the table: {', '.join(missing)})" if missing else ""),
        f"- constraints: cost quantiles {meta.get('constraint_quantiles')} per device; "
        f"accuracy column: {meta.get('report_column')}",
        f"- seeds: {cfg.get('seeds')}; evaluations per run: {meta.get('evaluations_per_run')} "
        "(random search uses the same number)",
    ]
    t = meta.get("timing") or {}
    if isinstance(t.get("compile_seconds"), (int, float)):
        lines.append(f"- time: compile {t['compile_seconds']:.1f} s, run {t['run_seconds']:.2f} s "
                     f"for {t.get('cells')} cells ({t.get('mode')})")
    elif isinstance(t.get("run_seconds"), (int, float)):
        lines.append(f"- time: {t['run_seconds']:.1f} s for {t.get('cells')} cells "
                     f"({t.get('mode')})")
    lines += ["", markdown_table(data.get("summary") or []), ""]
    lines.append("regret = best feasible accuracy in the table - accuracy found, over feasible "
                 "answers; acc % is the mean over feasible answers.")
    return "\n".join(lines)


def pareto_rows(data: dict) -> list[dict]:
    """The non-dominated connected members of each device's final population (seed 0) in
    (score, cost), by increasing cost: what ``pareto.json`` / ``pareto.csv`` hold."""
    unit = data["meta"].get("cost_unit") or "cost"
    score = "rmi_loss" if str(data["meta"].get("estimator", "")).startswith("rmi") else "score"
    out = []
    for dev, front in (data.get("fronts") or {}).items():
        seen, ok = set(), []
        for r in front:
            if r.get("connected", True) and r.get("score") is not None and r["arch"] not in seen:
                seen.add(r["arch"])
                ok.append(r)
        for r in ok:
            if not any(o["score"] <= r["score"] and o["cost"] <= r["cost"]
                       and (o["score"] < r["score"] or o["cost"] < r["cost"]) for o in ok):
                row = {"device": dev, "arch": r["arch"], "arch_index": r["arch_index"],
                       score: r["score"], f"cost_{unit}": r["cost"],
                       "accuracy": r.get("accuracy")}
                if r.get("diversity") is not None:
                    row["diversity"] = r["diversity"]
                out.append(row)
    return sorted(out, key=lambda r: (r["device"], r[f"cost_{unit}"]))


# ---------------------------------------------------------------------------- plots


def _plt():
    import matplotlib  # noqa: PLC0415 - heavy, only for plots

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    return plt


def _pareto_mask(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Members not dominated in (min x, max y) (pass -y for a lower-is-better y)."""
    n = len(x)
    dom = np.zeros(n, bool)
    for i in range(n):
        better = (x <= x[i]) & (y >= y[i]) & ((x < x[i]) | (y > y[i]))
        dom[i] = better.any()
    return ~dom


def plot_pareto(path: Path, front: list[dict], answers: list[dict], device: str, unit: str,
                ylabel: str = "accuracy (%)", yfield: str = "accuracy") -> None:
    """Final population of one device; the front of connected members; answers per T.

    ``yfield = 'accuracy'`` (higher is better) or ``'score'`` (lower is better, e.g. the RMI
    loss; the axis then says so). Disconnected cells are marked at the bottom of the axis and
    kept off the front, so they never squeeze the real candidates."""
    sign = 1.0 if yfield == "accuracy" else -1.0
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7.5, 5), dpi=110)
    ok = [r for r in front if r.get(yfield) is not None and np.isfinite(r[yfield])
          and r.get("cost") is not None and np.isfinite(r["cost"])]
    conn = [r for r in ok if r.get("connected", True)]
    disc = [r for r in ok if not r.get("connected", True)]
    if conn:
        x = np.array([r["cost"] for r in conn])
        y = np.array([r[yfield] for r in conn])
        ax.scatter(x, y, s=22, c="0.6", label="final population")
        m = _pareto_mask(x, sign * y)
        o = np.argsort(x[m])
        ax.plot(x[m][o], y[m][o], "-o", c="tab:red", ms=5, label="non-dominated")
        lo, hi = (np.percentile(y, 2), y.max()) if sign > 0 else (y.min(), np.percentile(y, 98))
        pad = max(0.05 * (hi - lo), 1e-3)
        ax.set_ylim(lo - pad, hi + pad)
        if sign < 0:
            ax.invert_yaxis()  # better (lower loss) up
    if disc:
        ax.scatter([r["cost"] for r in disc], [r[yfield] for r in disc] if not conn else
                   [ax.get_ylim()[0]] * len(disc), marker="x", c="k", s=30,
                   label=f"disconnected ({len(disc)}, drawn at the bottom)")
    for i, a in enumerate(answers):
        ax.axvline(a["T"], c=f"C{i}", ls=":", lw=1)
        v = a.get(yfield)
        if v is not None and np.isfinite(v) and a.get("feasible"):
            ax.scatter([a["cost"]], [v], marker="*", s=160, c=f"C{i}", zorder=5,
                       label=f"answer q={a['constraint_q']:.2f} (T={a['T']:.3g})")
    ax.set_xlabel(f"{device} cost ({unit})")
    ax.set_ylabel(ylabel)
    ax.set_title(f"final population and answers, {device} (seed 0)", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot_regret(path: Path, summary: list[dict], method: str) -> None:
    """Mean regret per device x constraint: the method next to the other rows."""
    plt = _plt()
    cells = sorted({(r["device"], r["constraint_q"]) for r in summary})
    methods = [method] + sorted({r["method"] for r in summary} - {method})
    val = {(r["method"], r["device"], r["constraint_q"]): r.get("regret_mean") for r in summary}
    fig, ax = plt.subplots(figsize=(max(6, 0.7 * len(cells) + 2), 4.5), dpi=110)
    w = 0.8 / len(methods)
    for i, m in enumerate(methods):
        ys = [val.get((m, d, q)) for d, q in cells]
        ys = [np.nan if v is None else v for v in ys]
        ax.bar(np.arange(len(cells)) + i * w, ys, width=w, label=m)
    ax.set_xticks(np.arange(len(cells)) + 0.4 - w / 2)
    ax.set_xticklabels([f"{d}\nq={q:.2f}" for d, q in cells], fontsize=7)
    ax.set_ylabel("mean regret (accuracy points; lower is better)")
    ax.set_title("regret per device and constraint", fontsize=10)
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot_history(path: Path, history: dict, unit: str) -> None:
    """Best and mean score per generation, and the population's cost range."""
    plt = _plt()
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 4), dpi=110)
    for name, h in history.items():
        for key, ls in (("best_fitness", "-"), ("mean_score", "--")):
            ys = [np.nan if v is None else v for v in h.get(key, [])]
            if ys:
                a1.plot(np.arange(1, len(ys) + 1), ys, ls, label=f"{name} {key.replace('_', ' ')}")
        lo = [np.nan if v is None else v for v in h.get("cost_min", [])]
        hi = [np.nan if v is None else v for v in h.get("cost_max", [])]
        mid = [np.nan if v is None else v for v in h.get("cost_mean", [])]
        if mid:
            g = np.arange(1, len(mid) + 1)
            a2.fill_between(g, lo, hi, alpha=0.2)
            a2.plot(g, mid, label=f"{name} mean (band: min-max)")
    a1.set_xlabel("generation")
    a1.set_ylabel("score (lower is better)")
    a1.set_title("best and mean score per generation (mean over runs)", fontsize=10)
    a2.set_xlabel("generation")
    a2.set_ylabel(f"population cost ({unit})")
    a2.set_title("cost of the population per generation", fontsize=10)
    for a in (a1, a2):
        a.grid(alpha=0.3)
        a.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot_fitness(path: Path, history: dict, title: str) -> None:
    """One-shot runs: best and mean fitness (100 - supernet top-1) per generation, the CMA
    mean's fitness where recorded, and the distinct architectures so far (right axis)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 4), dpi=110)
    for key, ls in (("best_fitness", "-o"), ("mean_fitness", "--"), ("mean_arch_fitness", ":s")):
        ys = [np.nan if v is None else v for v in history.get(key, [])]
        if ys:
            ax.plot(np.arange(len(ys)), ys, ls, label=key.replace("_", " "), ms=3)
    ax.set_xlabel("generation")
    ax.set_ylabel("fitness: 100 - supernet top-1 (%)")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    dist = history.get("distinct", [])
    if dist:
        ax2 = ax.twinx()
        ax2.plot(np.arange(len(dist)), dist, color="gray", alpha=0.5, label="distinct archs")
        ax2.set_ylabel("distinct architectures so far")
        ax2.legend(fontsize=7, loc="upper right")
    ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def write_plots(data: dict, out: Path) -> dict[str, Path]:
    """Every plot of a run's data into ``out``; returns ``{name: path}``."""
    out = Path(out)
    meta, method = data.get("meta") or {}, data.get("method")
    unit = meta.get("cost_unit", "")
    paths = {}
    fronts = data.get("fronts") or {}
    has_acc = meta.get("report_column") is not None
    yfield, ylabel = ("accuracy", f"{meta.get('report_column')} (%)") if has_acc else (
        "score", f"{meta.get('estimator', 'score')} score (RMI loss for rmi; lower is better)")
    for dev, front in fronts.items():
        answers = [r for r in data.get("rows", []) if r.get("method") == method
                   and r.get("device") == dev and r.get("seed") == data["rows"][0].get("seed")]
        name = "pareto" if len(fronts) == 1 else f"pareto_{dev}"
        p = out / ("pareto.png" if len(fronts) == 1 else f"pareto-{dev}.png")
        plot_pareto(p, front, answers, dev, unit, ylabel=ylabel, yfield=yfield)
        paths[name] = p
    if has_acc and data.get("summary"):
        paths["regret"] = out / "regret.png"
        plot_regret(paths["regret"], data["summary"], method)
    if any(data.get("history", {}).values()):
        paths["history"] = out / "history.png"
        plot_history(paths["history"], data["history"], unit)
    return paths
