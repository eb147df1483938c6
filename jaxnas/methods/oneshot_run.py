"""Run a one-shot method (EvNAS, CMANAS, NEvoNAS, pEvoNAS) on a supernet problem (issues 11-12).

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

A staged search (pEvoNAS: ``search.next_stage`` set) repeats 2-3 per stage: each stage has
its own supernet (``search.edge_ops``), schedule and pre-training (``alpha_scale``), a search
that also ends when ``search.stop(best genotypes of the stage)`` holds, and then
``next_stage(state)`` gives the next stage's ops; the module's ``make_search(config,
problem, stage=, edge_ops=)`` builds it, and the new supernet inherits the previous one's
matching weights when ``search.inherit``. The history gains ``stage`` and ``best_genotype``
columns, the result ``meta.stages`` (ops, generations, converged, inherited arrays). The
checkpoint also holds the current stage (index, ops, inherited count) and the finished
stages' records; the stop rule is a function of the saved history, so a run resumed after a
stage's last checkpoint converges, shrinks and inherits exactly as the uninterrupted one.
Stage ``s > 0`` keys are ``fold_in(key, s)`` of the run keys (stage 0 as a one-stage run).

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
    """Wraps the fitness: one history entry per call (= per generation), distinct genotypes;
    a staged run also records the stage and the generation's best genotype."""

    def __init__(self, problem: SupernetProblem, mean_last: bool, staged: bool = False):
        self.problem, self.mean_last, self.staged = problem, mean_last, staged
        self.seen: set[str] = set()
        self.evaluations, self.stage = 0, 0
        keys = ["best_fitness", "mean_fitness", "distinct", "evaluations"]
        keys += ["mean_arch_fitness"] if mean_last else []
        keys += ["stage", "best_genotype"] if staged else []
        self.history: dict[str, list] = {k: [] for k in keys}

    def stage_bests(self) -> list[str]:
        """The best genotype of every generation of the current stage."""
        h = self.history
        return [g for st_, g in zip(h.get("stage", []), h.get("best_genotype", []))
                if st_ == self.stage]

    def wrap(self, fitness):
        def fn(key, archs):
            F = np.asarray(fitness(key, archs), np.float32)
            s = F if F.ndim == 1 else F[:, 0]
            names = self.problem.arch_strings(archs)
            self.seen.update(names)
            self.evaluations += len(s)
            if self.staged:  # the first of the best (the elite on ties)
                self.history["stage"].append(self.stage)
                self.history["best_genotype"].append(
                    names[int(np.argmin(np.where(np.isfinite(s), s, np.inf)))])
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


def _pack(problem: SupernetProblem, rec: _Recorder, state, generation: int,
          stages: dict | None = None) -> bytes:
    """``stages`` (staged runs): ``{"current": {stage, edge_ops, inherited}, "done": [...]}``."""
    meta = {"generation": generation, "epochs_done": problem.epochs_done,
            "evaluations": rec.evaluations, "history": rec.history, "seen": sorted(rec.seen)}
    if stages is not None:
        meta["stages"] = stages
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


def _meta(data: bytes) -> dict:
    return json.loads(fser.msgpack_restore(data)["meta"])


def _restore(data: bytes, search, problem: SupernetProblem, rec: _Recorder, key):
    """(algorithm state or None, generation) of a checkpoint; problem and recorder restored
    (the problem must already carry the checkpoint's stage supernet)."""
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


class _Converged(Exception):
    """Raised from the driver's callback when a stage's ``stop`` rule fires."""

    def __init__(self, state):
        super().__init__("converged")
        self.state = state


def _as_ops(x):
    """JSON lists -> the nested tuples of op names a supernet takes (``None`` stays)."""
    return None if x is None else tuple(_as_ops(v) if isinstance(v, list) else v for v in x)


def _as_lists(x):
    """Nested tuples -> lists (what JSON gives back), so saved and live records compare."""
    return [_as_lists(v) for v in x] if isinstance(x, (list, tuple)) else x


def _stage_key(key, stage: int):
    return key if stage == 0 else jax.random.fold_in(key, stage)


def _setup_stage(problem: SupernetProblem, search, k_init, inherit_from=None) -> None:
    """The stage's supernet (its ops), fresh weights (+ inherited ones) and schedule."""
    problem.stage = search.stage
    if search.edge_ops != problem.edge_ops:
        problem.set_edge_ops(search.edge_ops)
    problem.set_schedule(search.epochs, _stage_key(k_init, search.stage), inherit_from)


def _run_stage(label, search, problem, rec, state, generation, k_pre, k_search, save, progress):
    """Pre-training epochs (random alphas), then the search until ``generations`` or the
    stage's ``stop`` rule; resumes from ``state`` / ``generation``. Returns (state, pre-training
    seconds, search seconds)."""
    algo = search.algorithm
    t0 = time.perf_counter()
    if search.pretrain_epochs:
        bar = progress.bar(f"{label} pre-training", search.pretrain_epochs, "epoch")
        bar.update(problem.epochs_done if state is None else search.pretrain_epochs)
        while state is None and problem.epochs_done < search.pretrain_epochs:
            losses = problem.train_epoch(jax.random.fold_in(k_pre, problem.epochs_done),
                                         alpha_scale=search.alpha_scale)
            bar.update(1, loss=f"{float(jnp.mean(losses)):.3f}")
            if save:
                save(None, -1)
        bar.close()
    t_pre = time.perf_counter() - t0
    stop = search.stop
    if state is not None and stop is not None and stop(rec.stage_bests()):
        return state, t_pre, 0.0  # it had converged before the interruption
    bar = progress.bar(label, search.generations + int(algo.population_based), "gen")
    bar.update(0 if generation is None else generation + 1 + int(algo.population_based))

    def on_generation(g, st_, metrics):
        if g >= 0 or algo.population_based:  # CMA-ES evaluates nothing before generation 0
            bar.update(1, best=f"{rec.history['best_fitness'][-1]}")
        if save:
            save(st_, g)
        if stop is not None and stop(rec.stage_bests()):
            raise _Converged(st_)

    start = 0 if generation is None else generation + 1
    try:
        state, _ = run_loop(algo, search.params, rec.wrap(search.fitness), k_search,
                            search.generations, state=state, start=start,
                            on_generation=on_generation)
    except _Converged as c:
        state = c.state
    bar.close()
    return state, t_pre, time.perf_counter() - t0 - t_pre


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
    staged = search.next_stage is not None
    rec = _Recorder(problem, mean_last=not search.algorithm.population_based, staged=staged)
    cur = {"stage": 0, "edge_ops": _as_lists(search.edge_ops), "inherited": 0}
    done: list[dict] = []  # summaries of the finished stages
    state, generation = None, None
    if checkpoint is not None:
        saved = _meta(checkpoint).get("stages")
        if saved:
            cur, done = saved["current"], saved["done"]
            if cur["stage"] != search.stage:
                search = make(cfg, problem, stage=cur["stage"], edge_ops=_as_ops(cur["edge_ops"]))
        rec.stage = search.stage
        _setup_stage(problem, search, k_init)  # the template the checkpoint is read into
        state, generation = _restore(checkpoint, search, problem, rec, k_search)
        progress.log(f"{name}: resuming " + (f"stage {search.stage + 1} " if staged else "")
                     + f"after {problem.epochs_done} supernet epochs"
                     + ("" if generation is None else f", generation {generation}"))
    else:
        _setup_stage(problem, search, k_init)
    stages = (lambda: {"current": cur, "done": done}) if staged else (lambda: None)
    save = (lambda st_, g: on_checkpoint(_pack(problem, rec, st_, g, stages()))) \
        if on_checkpoint else None
    d = problem.data
    progress.log(f"{name}: {cfg.space} supernet C={cfg.channels} depth {cfg.depth}, "
                 f"{len(d.y_train)} train / {len(d.y_valid)} valid images ({d.name}), "
                 f"{search.pretrain_epochs} pre-training epochs, "
                 f"{search.generations + int(search.algorithm.population_based)} generations"
                 + (" per stage (at most)" if staged else ""))
    t_pre = t_search = 0.0
    while True:
        label = f"{name} stage {search.stage + 1}" if staged else name
        state, dt_pre, dt_search = _run_stage(
            label, search, problem, rec, state, generation, _stage_key(k_pre, search.stage),
            _stage_key(k_search, search.stage), save, progress)
        t_pre, t_search = t_pre + dt_pre, t_search + dt_search
        bests = rec.stage_bests()
        done.append({**cur, "generations": len(bests), "epochs": problem.epochs_done,
                     "converged": bool(search.stop is not None and search.stop(bests)),
                     "best_genotype": bests[-1] if bests else None})
        nxt = search.next_stage(state) if staged else None
        if nxt is None:
            break
        previous = problem.state.weights
        search = make(cfg, problem, stage=search.stage + 1, edge_ops=nxt)
        _setup_stage(problem, search, k_init, previous if search.inherit else None)
        cur = {"stage": search.stage, "edge_ops": _as_lists(nxt),
               "inherited": len(problem.inherited)}
        rec.stage, state, generation = search.stage, None, None
        progress.log(f"{name}: stage {search.stage + 1}, ops per edge "
                     f"{sorted({len(e) for e in _rows(nxt)})}, {len(problem.inherited)} "
                     "parameter arrays inherited")
    algo = search.algorithm
    table = _load_table(cfg, progress)
    arch = np.asarray(search.answer(state))
    answer = _describe(problem, arch, table)
    if search.details is not None:
        answer.update(search.details(state))
    size = int(algo.pop_size) if algo.population_based else int(algo.cma.pop_size) + 1
    t1 = time.perf_counter()
    baselines = {}
    if "rsws" in cfg.baselines:
        sample = search.random_archs or (lambda k, n: random_archs(cfg.space, k, n))
        cand = np.asarray(sample(k_base, rec.evaluations))
        scores = _score(problem, k_base, np.concatenate([arch[None], cand]), size)
        answer["supernet_fitness"] = float(scores[0])
        best = int(np.argmin(scores[1:]))
        baselines["rsws"] = {"evaluations": rec.evaluations, "supernet_fitness": float(scores[1 + best]),
                             **_describe(problem, cand[best], table)}
        if staged:
            baselines["rsws"]["space"] = "the final stage's ops (the final supernet's)"
    if table is not None and "cifar10_test_acc" in table.columns:
        col = np.asarray(table.column("cifar10_test_acc"), np.float64)
        baselines["uniform_random"] = {"cifar10_test_acc_mean": float(np.nanmean(col)),
                                       "cifar10_test_acc_median": float(np.nanmedian(col))}
    meta = {"space": cfg.space, "dataset": d.name, "train_images": int(len(d.y_train)),
            "valid_images": int(len(d.y_valid)), "supernet": type(problem.model).__name__,
            "epochs": sum(s["epochs"] for s in done), "evaluations": rec.evaluations,
            "distinct": len(rec.seen), "fitness": "100 - supernet top-1 on search-valid (%)",
            "oracle": bool(search.oracle),
            "timing": {"pretrain_seconds": t_pre, "search_seconds": t_search,
                       "baseline_seconds": time.perf_counter() - t1,
                       "total_seconds": time.perf_counter() - t_start,
                       "resumed": checkpoint is not None},
            "loadavg": {"start": load0, "end": os.getloadavg()[0], "cpus": os.cpu_count()}}
    if staged:
        meta["stages"] = done
    return OneShotResult(name, as_dict(cfg), meta, answer, rec.history, baselines,
                         problem.state_bytes())


def _rows(edge_ops) -> list:
    """The per-edge op lists of NB201 (6) or DARTS (2 x 14 -> 28) edge ops."""
    return [r for t in edge_ops for r in t] if edge_ops and isinstance(edge_ops[0][0], (list, tuple)) \
        else list(edge_ops)
