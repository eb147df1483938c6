"""pEvoNAS (Sinha & Chen, GECCO'22; METHODS.md 3): progressive evolution with space shrinking.

Algorithm box (one run per seed; :func:`make_search` builds one stage, the one-shot runner
:func:`~jaxnas.methods.oneshot_run.run_oneshot` chains them)::

    ops          every edge carries all ops (NB201 5, DARTS 8 per edge and cell type)
    for stage, k in enumerate(progression):            NB201 (5, 3, 2); DARTS (8, 5, 2)
        if stage > 0:
            ops      per edge (per cell type for DARTS): the top-k ops of the best
                     individual's raw alpha, in the reduced index space of the last stage
                     (torch.topk on the alpha values; ties: the lower index)
            supernet a NEW supernet carrying only those ops; with ``inherit`` it copies
                     every matching weight of the previous one (same cell, edge and op
                     name; stem, preprocessing, classifier directly; jaxnas.nets.inherit)
        train    ``train_epochs`` epochs (50), SGD 0.025 -> 0.001 cosine per stage, every
                 mini-batch a fresh random alpha: NB201 U(0,1), DARTS 1e-3 U(0,1)
                 (about the uniform mixture); not discretized
        search   GA (EvNAS operators: P = 20, tournament 5, 1 elite, uniform crossover per
                 edge row, per-row U(0,1) resampling with rate 0.1) over alpha of shape
                 (edges, k): one row per edge with its k ops; decoding = argmax within the
                 edge's ops (NB201) or the DARTS top-2 rule without none, mapped back to
                 the full op indices; fitness = 100 - top1 of the one-hot alpha-hat on the
                 search-valid split, the supernet FIXED; AF table: a genotype already
                 scored in this stage keeps its score
        stop     after ``max_generations`` (NB201 100, DARTS 200) population evaluations,
                 or as soon as the best genotype of the last ``converge_generations`` (10)
                 evaluations is one and the same (``convergeBreak``)
    answer       the best genotype of the final stage's last evaluated population
    baseline     RSWS: as many random architectures as the run evaluated, drawn from the
                 final stage's ops (the only ones the final supernet carries) and scored by
                 the final supernet, the best one taken

Where this follows METHODS.md (the authors' code) over the paper text:

* shrinking is driven by the single best individual (``shrink_by_one_ind``), not by the
  population vote the config's ``weighted_vote`` suggests;
* the random pre-training alpha is ``1e-3 U(0,1)`` in S1 and ``U(0,1)`` in S2 (per space,
  ``alpha_scale = 0``; set it to override);
* the convergence rule is the code's: stop after the generation at which the last
  ``converge_generations`` bests are identical, so a best that never changes stops an NB201
  stage after exactly ``converge_generations`` evaluations (the initial population is the
  first). The S1 code checks only once it has *more* than ``converge_generations`` bests
  (S2 counts the initial supernet's genotype as an extra entry), so a DARTS stage stops after
  ``converge_generations + 1`` at the earliest; both are kept;
* S1 validates with ``model.eval()`` (``bn = "running"``), unlike EvNAS S1;
* NB201 (S2): cell BatchNorms without running statistics (``bn = "untracked"``), batch 256,
  valid batch 2048, no cutout, nesterov (the defaults here); DARTS (S1): 20 cells, batch 64,
  cutout 16 (``configs/pevonas_darts.toml``);
* ``inherit`` defaults to **True**: the paper's headline NB201 row is "pEvoNAS" (with
  inheritance, C10 test 93.63 +- 0.42) against "w/o inherit" (89.83 +- 3.16); the shipped S2
  config's ``inherit_wts: False`` is UNCONFIRMED as the headline setting (METHODS.md 3, 9).
  ``inherit = false`` gives the ablation.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

from jaxnas import config as C
from jaxnas.algorithms import GA
from jaxnas.algorithms.encodings import Real
from jaxnas.methods.cmanas import af_table_fitness
from jaxnas.methods.oneshot import OneShotConfig, OneShotSearch, SupernetProblem
from jaxnas.spaces import darts, nb201

#: per space: ops per edge in each stage, generations, cells, random-alpha scale (METHODS.md 3)
PROGRESSION = {"nb201": (5, 3, 2), "darts": (8, 5, 2)}
MAX_GENERATIONS = {"nb201": 100, "darts": 200}
CELLS = {"nb201": 5, "darts": 20}
ALPHA_SCALE = {"nb201": 1.0, "darts": 1e-3}
OPS = {"nb201": nb201.OPS, "darts": darts.OPS}


@dataclass(frozen=True)
class Config(OneShotConfig):
    """pEvoNAS settings (TOML keys; besides :class:`~jaxnas.methods.oneshot.OneShotConfig`,
    whose defaults here are the S2 ones: batch 256, valid batch 2048, no cutout, nesterov,
    ``bn = "untracked"``).

    Attributes:
        population: P (20). tournament_size: 5. elites: 1. mutation_rate: per edge row (0.1).
        train_epochs: supernet epochs per stage (50).
        max_generations: population evaluations per stage at most (0: NB201 100, DARTS 200).
        converge_generations: stop a stage when this many consecutive bests are one genotype
            (10).
        progression: ops per edge in each stage, the first = all ops (empty: NB201 5, 3, 2;
            DARTS 8, 5, 2). Strictly decreasing; DARTS stages keep >= 2 ops.
        inherit: a stage's new supernet inherits the previous one's matching weights (True;
            see the module docstring).
        alpha_scale: pre-training alphas ``alpha_scale * U(0,1)`` (0: NB201 1, DARTS 1e-3).
        cells: 0 means the pEvoNAS depth (NB201 N=5, DARTS 20 cells).
    """

    batch_size: int = 256
    valid_batch: int = 2048
    cutout: int = 0
    nesterov: bool = True
    bn: str = "untracked"
    population: int = 20
    tournament_size: int = 5
    elites: int = 1
    mutation_rate: float = 0.1
    train_epochs: int = 50
    max_generations: int = 0
    converge_generations: int = 10
    progression: tuple[int, ...] = ()
    inherit: bool = True
    alpha_scale: float = 0.0

    def validate(self, where: str = "pevonas"):
        super().validate(where)
        C.check_range(where, "population", self.population, 2, 100_000)
        C.check_range(where, "tournament_size", self.tournament_size, 1, self.population)
        C.check_range(where, "elites", self.elites, 0, self.population - 1)
        C.check_prob(where, "mutation_rate", self.mutation_rate)
        C.check_range(where, "train_epochs", self.train_epochs, 0, 100_000)
        C.check_range(where, "max_generations", self.max_generations, 0, 100_000)
        C.check_range(where, "converge_generations", self.converge_generations, 1, 100_000)
        C.check_range(where, "alpha_scale", self.alpha_scale, 0.0, 1e6)
        p, n = self.stages, len(OPS[self.space])
        low = 2 if self.space == "darts" else 1
        if p[0] != n or any(b >= a for a, b in zip(p, p[1:])) or p[-1] < low:
            raise C.ConfigError(f"{where}: progression must start with the {n} ops of the "
                                f"{self.space} space and decrease strictly to >= {low}, got "
                                f"{list(self.progression)}")

    @property
    def depth(self) -> int:
        return self.cells or CELLS[self.space]

    @property
    def stages(self) -> tuple[int, ...]:
        return tuple(self.progression) or PROGRESSION[self.space]

    @property
    def generations(self) -> int:
        """Population evaluations per stage at most."""
        return self.max_generations or MAX_GENERATIONS[self.space]

    @property
    def scale(self) -> float:
        return self.alpha_scale or ALPHA_SCALE[self.space]

    @property
    def evaluations(self) -> int:
        """Architecture evaluations of a run at most: P per generation, every stage."""
        return self.population * self.generations * len(self.stages)


# ---------------------------------------------------------------------------- the space


def full_ops(space: str):
    """Every op on every edge: NB201 6 tuples; DARTS 2 (normal, reduce) x 14 tuples."""
    row = tuple(OPS[space])
    if space == "nb201":
        return (row,) * nb201.NUM_EDGES
    return ((row,) * darts.NUM_EDGES,) * darts.NUM_CELL_TYPES


def edge_rows(space: str, edge_ops) -> list[tuple[str, ...]]:
    """The genome's rows: NB201 the 6 edges; DARTS the 14 normal then the 14 reduce edges."""
    return list(edge_ops) if space == "nb201" else [r for cell in edge_ops for r in cell]


def nest(space: str, rows) -> tuple:
    """Inverse of :func:`edge_rows` (op names of every row put in the space's op order)."""
    rows = tuple(tuple(n for n in OPS[space] if n in r) for r in rows)
    return rows if space == "nb201" else (rows[:darts.NUM_EDGES], rows[darts.NUM_EDGES:])


def op_index(space: str, edge_ops) -> np.ndarray:
    """int32 ``(rows, k)``: the full op index of the j-th op each row carries."""
    rows = edge_rows(space, edge_ops)
    if len({len(r) for r in rows}) != 1:
        raise ValueError("every edge must carry the same number of ops")
    return np.array([[OPS[space].index(n) for n in r] for r in rows], np.int32)


def shrink(space: str, edge_ops, alpha, k: int) -> tuple:
    """pEvoNAS ``shrink_by_one_ind``: per row keep the ``k`` ops of the largest raw ``alpha``
    values (``alpha`` ``(rows, |ops|)`` in the reduced index space of ``edge_ops``; ties: the
    lower index). Returns the new edge ops (space op order)."""
    a = np.asarray(alpha, np.float64)
    rows = edge_rows(space, edge_ops)
    keep = [{r[j] for j in np.argsort(-a[i], kind="stable")[:k]} for i, r in enumerate(rows)]
    return nest(space, keep)


def make_decoder(space: str, edge_ops):
    """Reduced genome ``(P, rows, k)`` -> NB201 codes ``(P, 6)`` (argmax within the edge's
    ops) or DARTS genotypes ``(P, 2, 8, 2)`` (top-2 rule without ``none`` over the edge's ops:
    the other ops get alpha ``-inf``)."""
    idx = jnp.asarray(op_index(space, edge_ops))
    n_ops = len(OPS[space])

    def decode(genomes):
        g = jnp.asarray(genomes, jnp.float32)
        if space == "nb201":
            return jnp.take_along_axis(jnp.broadcast_to(idx, g.shape), jnp.argmax(g, -1)[..., None],
                                       -1)[..., 0].astype(jnp.int32)
        rows = jnp.arange(idx.shape[0])[:, None]
        full = jnp.full(g.shape[:-2] + (idx.shape[0], n_ops), -jnp.inf, jnp.float32)
        full = full.at[..., rows, idx].set(g)
        return darts.genotype(full.reshape(g.shape[:-2] + darts.ALPHA_SHAPE))

    return decode


def converged(bests, n: int, strict: bool = False) -> bool:
    """The last ``n`` generation bests are one genotype (``convergeBreak``); ``strict``
    (the S1 code): only once there are more than ``n`` bests."""
    return len(bests) >= n + int(strict) and len(set(bests[-n:])) == 1


# ---------------------------------------------------------------------------- one stage


def make_search(cfg: Config, problem: SupernetProblem, stage: int = 0,
                edge_ops=None) -> OneShotSearch:
    """Stage ``stage`` of pEvoNAS on ``problem`` over ``edge_ops`` (``None``: every op); see
    the algorithm box in the module docstring."""
    space, stages = cfg.space, cfg.stages
    edge_ops = full_ops(space) if edge_ops is None else edge_ops
    k = stages[stage]
    rows = len(edge_rows(space, edge_ops))
    if op_index(space, edge_ops).shape != (rows, k):
        raise ValueError(f"stage {stage} needs {k} ops on every edge")
    ga = GA(Real((rows, k), 0.0, 1.0, make_decoder(space, edge_ops)), pop_size=cfg.population,
            num_elites=cfg.elites)
    params = ga.default_params(tournament_size=cfg.tournament_size,
                               mutation_rate=cfg.mutation_rate)
    table = af_table_fitness(problem, cfg.population)  # the AF table of this stage

    def fitness(key, archs):  # the supernet stays fixed during the search
        return table(key, archs)[:, 0]

    def best(state):
        return state.population[jnp.argmin(state.fitness)]

    def next_stage(state):
        if stage + 1 >= len(stages):
            return None
        return shrink(space, edge_ops, jax.device_get(best(state)), stages[stage + 1])

    return OneShotSearch(
        ga, params, fitness, generations=cfg.generations - 1, epochs=cfg.train_epochs,
        pretrain_epochs=cfg.train_epochs, answer=lambda state: ga.decode(best(state)[None])[0],
        stage=stage, edge_ops=edge_ops, inherit=cfg.inherit and stage > 0,
        alpha_scale=cfg.scale,
        stop=lambda bests: converged(bests, cfg.converge_generations, space == "darts"),
        next_stage=next_stage, random_archs=lambda key, n: ga.decode(ga.encoding.sample(key, n)))
