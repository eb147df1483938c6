"""Run a one-shot method (EvNAS, weight-sharing CMANAS) on a supernet problem (issue 11).

:func:`run_oneshot` is what ``methods.run(name, config)`` calls for a one-shot config:

1. :func:`~jaxnas.methods.oneshot.build_problem` (search data, supernet, estimator) and the
   method's ``make_search(config, problem)`` (its algorithm box);
2. the supernet's fresh weights and cosine schedule over the run's epochs
   (``problem.set_schedule``), then the pre-training epochs, if any (CMANAS);
3. the search through the one driver :func:`~jaxnas.algorithms.driver.run_loop`; the
   method's fitness trains / evaluates the supernet; a recorder around it keeps the
   per-generation history (best and mean fitness, distinct architectures so far);
4. after every generation (and every pre-training epoch) ``on_checkpoint(bytes)`` gets the
   whole search state: algorithm state, generation, supernet weights + optimiser state + BN
   statistics, epochs trained, history and the architectures seen. The PRNG keys are not
   stored: every key is derived from ``seed`` and the generation, so
   ``run_oneshot(..., checkpoint=bytes)`` continues exactly where the interrupted run was and
   gives the uninterrupted run's result;
5. the answer (the method's rule), its NB201 index and table accuracies (NB201, when a table
   is found), and the RSWS baseline: as many random architectures as the search evaluated,
   scored by the same (final) supernet, the best one taken.

Nothing here prints or writes files (``progress`` and the callback do).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field

import flax.serialization as fser
import jax
import jax.numpy as jnp
import numpy as np

from jaxnas.algorithms.driver import run_loop
from jaxnas.bench import load_table
from jaxnas.config import as_dict
from jaxnas.methods.oneshot import OneShotConfig, SupernetProblem, build_problem, random_archs
from jaxnas.spaces import nb201

#: NB201 columns reported for an answer (CIFAR-10 runs)
REPORT_COLUMNS = ("cifar10_test_acc", "cifar10_valid_acc_hp12", "cifar10_test_acc_hp12")


@dataclass
class OneShotResult:
    """A one-shot run: the answer, the per-generation history, the RSWS / uniform baselines,
    metadata and the final supernet state (``supernet``: flax msgpack bytes)."""

    method: str
    config: dict
    meta: dict
    answer: dict
    history: dict
    baselines: dict
    supernet: bytes = field(default=b"", repr=False)

    def to_json(self) -> dict:
        return {"method": self.method, "config": self.config, "meta": self.meta,
                "answer": self.answer, "history": self.history, "baselines": self.baselines}


class _Recorder:
    """Wraps the fitness: one history entry per call (= per generation), distinct genotypes."""

    def __init__(self, problem: SupernetProblem, mean_last: bool):
        self.problem, self.mean_last = problem, mean_last
        self.seen: set[str] = set()
        self.evaluations = 0
        keys = ["best_fitness", "mean_fitness", "distinct", "evaluations"]
        self.history: dict[str, list] = {k: [] for k in keys + (["mean_arch_fitness"]
                                                                 if mean_last else [])}

    def wrap(self, fitness):
        def fn(key, archs):
            F = np.asarray(fitness(key, archs), np.float32)
            s = F if F.ndim == 1 else F[:, 0]
            self.seen.update(self.problem.arch_strings(archs))
            self.evaluations += len(s)
            ok = s[np.isfinite(s)]
            h = self.history
            h["best_fitness"].append(float(ok.min()) if ok.size else None)
            h["mean_fitness"].append(float(ok.mean()) if ok.size else None)
            h["distinct"].append(len(self.seen))
            h["evaluations"].append(self.evaluations)
            if self.mean_last:
                h["mean_arch_fitness"].append(float(s[-1]) if np.isfinite(s[-1]) else None)
            return F

        return fn


# ---------------------------------------------------------------------------- checkpoints


def _pack(problem: SupernetProblem, rec: _Recorder, state, generation: int) -> bytes:
    meta = {"generation": generation, "epochs_done": problem.epochs_done,
            "evaluations": rec.evaluations, "history": rec.history, "seen": sorted(rec.seen)}
    blob = {"meta": json.dumps(meta, allow_nan=False),
            "supernet": problem.state_bytes(),
            "algo": {} if state is None else jax.device_get(fser.to_state_dict(state))}
    return fser.msgpack_serialize(blob)


def _template(search, key):
    algo = search.algorithm
    if not algo.population_based:
        return jax.eval_shape(algo.init, key, search.params)
    pop = jax.eval_shape(algo.sample, key)
    fit = jax.ShapeDtypeStruct((pop.shape[0],), jnp.float32)
    return jax.eval_shape(algo.init, key, pop, fit, search.params)


def _restore(data: bytes, search, problem: SupernetProblem, rec: _Recorder, key):
    """(algorithm state or None, generation) of a checkpoint; problem and recorder restored."""
    blob = fser.msgpack_restore(data)
    meta = json.loads(blob["meta"])
    problem.load_state_bytes(blob["supernet"], meta["epochs_done"])
    rec.history = {k: list(v) for k, v in meta["history"].items()}
    rec.seen, rec.evaluations = set(meta["seen"]), int(meta["evaluations"])
    if not blob["algo"]:
        return None, None
    state = fser.from_state_dict(_template(search, key), blob["algo"])
    return jax.tree.map(jnp.asarray, state), int(meta["generation"])


# ---------------------------------------------------------------------------- answer


def _lookup(space: str, arch, table) -> dict:
    if space != "nb201":
        return {}
    i = int(nb201.index(np.asarray(arch)))
    out = {"index": i}
    if table is not None:
        for c in REPORT_COLUMNS:
            if c in table.columns:
                v = float(np.asarray(table.column(c))[i])
                out[c] = v if np.isfinite(v) else None
    return out


def _describe(problem: SupernetProblem, arch, table) -> dict:
    return {"genotype": problem.arch_strings(np.asarray(arch)[None])[0],
            **_lookup(problem.space, arch, table)}


def _score(problem: SupernetProblem, key, archs, size: int) -> np.ndarray:
    """Supernet fitness of ``archs`` in batches of ``size`` (the search's population size, so
    the compiled evaluation is reused)."""
    archs = np.asarray(archs)
    out = []
    for i in range(0, len(archs), size):
        part = archs[i:i + size]
        pad = np.concatenate([part, np.repeat(part[:1], size - len(part), 0)]) if len(part) < size \
            else part
        out.append(np.asarray(problem.evaluate(key, jnp.asarray(pad)))[:len(part)])
    return np.concatenate(out)


def _load_table(cfg: OneShotConfig, progress):
    if cfg.space != "nb201" or cfg.dataset != "cifar10":
        return None
    try:
        return load_table(cfg.table)
    except (FileNotFoundError, ValueError) as e:
        progress.log(f"no NB201 table for the look-ups ({str(e).splitlines()[0]})")
        return None


# ---------------------------------------------------------------------------- run


def run_oneshot(name: str, module, cfg: OneShotConfig, progress, checkpoint: bytes | None = None,
                on_checkpoint=None, data=None) -> OneShotResult:
    """Run one-shot method ``name`` (``module``: its methods module) with ``cfg``; see the
    module docstring. ``data``: a :class:`~jaxnas.data.search.SearchData` to use instead of
    ``cfg.dataset``; ``checkpoint``: bytes an earlier ``on_checkpoint`` got."""
    t_start, load0 = time.perf_counter(), os.getloadavg()[0]
    problem = build_problem(cfg, data)
    k_init, k_pre, k_search, k_base = jax.random.split(jax.random.PRNGKey(cfg.seed), 4)
    make = getattr(module, "make_supernet_search", module.make_search)
    search = make(cfg, problem)
    algo = search.algorithm
    problem.set_schedule(search.epochs, k_init)
    rec = _Recorder(problem, mean_last=not algo.population_based)
    state, generation = None, None
    if checkpoint is not None:
        state, generation = _restore(checkpoint, search, problem, rec, k_search)
        progress.log(f"{name}: resuming after {problem.epochs_done} supernet epochs"
                     + ("" if generation is None else f", generation {generation}"))
    save = (lambda st_, g: on_checkpoint(_pack(problem, rec, st_, g))) if on_checkpoint else None
    d = problem.data
    progress.log(f"{name}: {cfg.space} supernet C={cfg.channels} depth {cfg.depth}, "
                 f"{len(d.y_train)} train / {len(d.y_valid)} valid images ({d.name}), "
                 f"{search.pretrain_epochs} pre-training epochs, "
                 f"{search.generations + int(algo.population_based)} generations")
    t0 = time.perf_counter()
    if search.pretrain_epochs:
        bar = progress.bar(f"{name} pre-training", search.pretrain_epochs, "epoch")
        bar.update(problem.epochs_done if state is None else search.pretrain_epochs)
        while state is None and problem.epochs_done < search.pretrain_epochs:
            losses = problem.train_epoch(jax.random.fold_in(k_pre, problem.epochs_done))
            bar.update(1, loss=f"{float(jnp.mean(losses)):.3f}")
            if save:
                save(None, -1)
        bar.close()
    t_pre = time.perf_counter() - t0
    total = search.generations + (1 if algo.population_based else 0)
    bar = progress.bar(name, total, "gen")
    bar.update(0 if generation is None else generation + 1 + int(algo.population_based))

    def on_generation(g, st_, metrics):
        if g >= 0 or algo.population_based:  # CMA-ES evaluates nothing before generation 0
            bar.update(1, best=f"{rec.history['best_fitness'][-1]}")
        if save:
            save(st_, g)

    start = 0 if generation is None else generation + 1
    state, _ = run_loop(algo, search.params, rec.wrap(search.fitness), k_search,
                        search.generations, state=state, start=start, on_generation=on_generation)
    bar.close()
    t_search = time.perf_counter() - t0 - t_pre
    table = _load_table(cfg, progress)
    arch = np.asarray(search.answer(state))
    answer = _describe(problem, arch, table)
    if search.details is not None:
        answer.update(search.details(state))
    size = int(algo.pop_size) if algo.population_based else int(algo.cma.pop_size) + 1
    t1 = time.perf_counter()
    baselines = {}
    if "rsws" in cfg.baselines:
        cand = np.asarray(random_archs(cfg.space, k_base, rec.evaluations))
        scores = _score(problem, k_base, np.concatenate([arch[None], cand]), size)
        answer["supernet_fitness"] = float(scores[0])
        best = int(np.argmin(scores[1:]))
        baselines["rsws"] = {"evaluations": rec.evaluations, "supernet_fitness": float(scores[1 + best]),
                             **_describe(problem, cand[best], table)}
    if table is not None and "cifar10_test_acc" in table.columns:
        col = np.asarray(table.column("cifar10_test_acc"), np.float64)
        baselines["uniform_random"] = {"cifar10_test_acc_mean": float(np.nanmean(col)),
                                       "cifar10_test_acc_median": float(np.nanmedian(col))}
    meta = {"space": cfg.space, "dataset": d.name, "train_images": int(len(d.y_train)),
            "valid_images": int(len(d.y_valid)), "supernet": type(problem.model).__name__,
            "epochs": problem.epochs_done, "evaluations": rec.evaluations,
            "distinct": len(rec.seen), "fitness": "100 - supernet top-1 on search-valid (%)",
            "oracle": bool(search.oracle),
            "timing": {"pretrain_seconds": t_pre, "search_seconds": t_search,
                       "baseline_seconds": time.perf_counter() - t1,
                       "total_seconds": time.perf_counter() - t_start,
                       "resumed": checkpoint is not None},
            "loadavg": {"start": load0, "end": os.getloadavg()[0], "cpus": os.cpu_count()}}
    return OneShotResult(name, as_dict(cfg), meta, answer, rec.history, baselines,
                         problem.state_bytes())
