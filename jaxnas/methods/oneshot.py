"""The problem of a one-shot (weight-sharing) search: space, search data, supernet, optimiser
and estimator (EvNAS, CMANAS with ``estimator = "supernet"``; issue 11).

:class:`OneShotConfig` holds the settings every one-shot method shares (TOML keys);
:func:`build_problem` turns it into a :class:`SupernetProblem`, which a method's
``make_search(config, problem)`` uses through four calls:

- ``problem.encoding`` / ``problem.decode(genomes)``: the alpha genome of the space and its
  METHODS.md decoding to architectures (NB201 codes ``(P, 6)`` by per-edge argmax; DARTS
  genotypes ``(P, 2, 8, 2)`` by the top-2 rule without ``none``);
- ``problem.train_epoch(key, archs)``: one supernet epoch, mini-batch b training the
  discretized alpha of ``archs[b mod P]`` (EvNAS round robin) or, with ``archs=None``, a fresh
  ``U(0, 1)`` alpha per mini-batch (CMANAS pre-training; ``alpha_scale``: pEvoNAS S1's
  ``1e-3 U(0, 1)``);
- ``problem.evaluate(key, archs)``: ``100 - top1`` on the search-valid images
  (:class:`~jaxnas.estimators.SupernetEstimator`), lower is better.

A staged method (pEvoNAS) gives each stage a new supernet restricted to per-edge op sets
(``problem.set_edge_ops``) that inherits the previous one's matching weights
(``problem.set_schedule(..., inherit_from=weights)``, :mod:`jaxnas.nets.inherit`).

Nothing here prints or writes files; the runner (:mod:`.oneshot_run`) saves and restores the
supernet state through :meth:`SupernetProblem.state_bytes` / :meth:`load_state_bytes`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from jaxnas import config as C
from jaxnas.algorithms.encodings import Real
from jaxnas.data.search import BatchIterator, SearchData, cifar10_search_data, normalise_np
from jaxnas.estimators import SupernetEstimator
from jaxnas.nets import supernet_train as st
from jaxnas.nets.darts_supernet import DartsSearchNetwork
from jaxnas.nets.inherit import inherit_params
from jaxnas.nets.supernet import NB201Supernet
from jaxnas.spaces import darts, nb201

SPACES = ("nb201", "darts")
DATASETS = ("cifar10", "synthetic")
#: supernet depth of the papers when ``cells = 0``: NB201 N=5 per stage, DARTS 8 cells
DEFAULT_CELLS = {"nb201": 5, "darts": 8}


@dataclass(frozen=True)
class OneShotConfig:
    """Settings shared by the one-shot methods (TOML keys; METHODS.md 0-2).

    Attributes:
        seed: run seed (the papers: EvNAS 18, 19, 20).
        space: ``'nb201'`` (alpha 6x5) or ``'darts'`` (alpha 2x14x8).
        dataset: ``'cifar10'`` (the local CIFAR-10 files, 25k/25k search split) or
            ``'synthetic'`` (seeded random images: tests and smoke runs only).
        data_dir: data folder (default ``$JAXNAS_DATA_DIR`` / the shared data).
        train_images, valid_images: subsets of search-train / search-valid (0: all).
        image_size: side of the synthetic images (cifar10: always 32).
        channels, cells: supernet width C (16) and depth (0: NB201 N=5, DARTS 8 cells).
        batch_size: training mini-batch (EvNAS 64, CMANAS S1 96, S2 256).
        valid_batch: validation images per scan step per member budget (EvNAS 1024).
        lr, lr_min, momentum, nesterov, weight_decay, grad_clip: the SGD of METHODS.md 1/2.
        cutout: cutout length (16; 0 disables). bn: ``'running'`` (``model.eval()``),
            ``'batch'`` (train-mode BN during validation, EvNAS S1) or ``'untracked'`` (the
            cell BatchNorms keep no running statistics, ``track_running_stats=False``,
            pEvoNAS S2: they always normalise with batch statistics; validation otherwise
            as ``'running'``).
        table: NB201 table for the look-ups of the answer (default: the data folder).
        baselines: ``['rsws']``: random architectures scored by the same supernet at the
            same number of evaluations (``[]``: none).
    """

    seed: int = 0
    space: str = "nb201"
    dataset: str = "cifar10"
    data_dir: str | None = None
    train_images: int = 0
    valid_images: int = 0
    image_size: int = 32
    channels: int = 16
    cells: int = 0
    batch_size: int = 64
    valid_batch: int = 1024
    lr: float = 0.025
    lr_min: float = 0.001
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 3e-4
    grad_clip: float = 5.0
    cutout: int = 16
    bn: str = "running"
    table: str | None = None
    baselines: tuple[str, ...] = ("rsws",)

    def validate(self, where: str = "config"):
        C.check_seed(where, "seed", self.seed)
        C.check_choice(where, "space", self.space, SPACES)
        C.check_choice(where, "dataset", self.dataset, DATASETS)
        C.check_range(where, "train_images", self.train_images, 0, 10_000_000)
        C.check_range(where, "valid_images", self.valid_images, 0, 10_000_000)
        C.check_range(where, "image_size", self.image_size, 4, 512)
        if self.image_size % 4:
            raise C.ConfigError(f"{where}: image_size must be a multiple of 4, got {self.image_size}")
        C.check_range(where, "channels", self.channels, 1, 4096)
        C.check_range(where, "cells", self.cells, 0, 100)
        if self.space == "darts" and self.cells and self.cells < 3:
            raise C.ConfigError(f"{where}: cells must be 0 or >= 3 for the DARTS space, got "
                                f"{self.cells}")
        C.check_range(where, "batch_size", self.batch_size, 1, 1_000_000)
        C.check_range(where, "valid_batch", self.valid_batch, 1, 1_000_000)
        C.check_range(where, "lr", self.lr, 0.0, 100.0, lo_open=True)
        C.check_range(where, "lr_min", self.lr_min, 0.0, self.lr)
        C.check_range(where, "momentum", self.momentum, 0.0, 1.0, hi_open=True)
        C.check_range(where, "weight_decay", self.weight_decay, 0.0, 1.0)
        C.check_range(where, "grad_clip", self.grad_clip, 0.0, 1e6)
        C.check_range(where, "cutout", self.cutout, 0, 1024)
        C.check_choice(where, "bn", self.bn, ("running", "batch", "untracked"))
        for b in self.baselines:
            C.check_choice(where, "baselines", b, ("rsws",))

    @property
    def depth(self) -> int:
        return self.cells or DEFAULT_CELLS[self.space]


# ---------------------------------------------------------------------------- data


def synthetic_search_data(n_train: int, n_valid: int, size: int, seed: int) -> SearchData:
    """Seeded random uint8 images with labels 0..9 (tests; no accuracy is meaningful)."""
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, (n_train + n_valid, size, size, 3), dtype=np.uint8)
    y = rng.integers(0, 10, n_train + n_valid).astype(np.int32)
    return SearchData("synthetic", x[:n_train], y[:n_train], x[n_train:], y[n_train:], 10,
                      source="synthetic")


def load_search_data(cfg: OneShotConfig) -> SearchData:
    """The search split of ``cfg.dataset``, cut to ``train_images`` / ``valid_images`` by a
    permutation seeded with ``cfg.seed`` (class proportions kept in expectation)."""
    if cfg.dataset == "synthetic":
        return synthetic_search_data(cfg.train_images or 64, cfg.valid_images or 32,
                                     cfg.image_size, cfg.seed)
    data = cifar10_search_data(cfg.data_dir, seed=0)
    rng = np.random.default_rng(cfg.seed)
    tr = rng.permutation(len(data.y_train))[: cfg.train_images or None]
    va = rng.permutation(len(data.y_valid))[: cfg.valid_images or None]
    return SearchData(data.name, data.x_train[tr], data.y_train[tr], data.x_valid[va],
                      data.y_valid[va], data.num_classes, data.mean, data.std,
                      data.train_idx[tr], data.valid_idx[va], data.source)


# ---------------------------------------------------------------------------- spaces


def decode_darts_genome(genomes) -> jax.Array:
    """DARTS genome ``(P, 28, 8)`` (normal rows then reduce rows) or flat ``(P, 224)`` ->
    genotype ``(P, 2, 8, 2)`` (top-2 rule without ``none``, METHODS.md 0.1)."""
    g = jnp.asarray(genomes, jnp.float32)
    return darts.genotype(g.reshape(g.shape[0], *darts.ALPHA_SHAPE))


def space_encoding(space: str) -> Real:
    """The GA genome: U(0, 1) alpha, one row per edge (per-edge-row crossover and mutation):
    NB201 ``(6, 5)``; DARTS ``(28, 8)`` = the 14 normal then 14 reduce edge rows."""
    if space == "nb201":
        return Real((nb201.NUM_EDGES, nb201.NUM_OPS), 0.0, 1.0, nb201.decode_alpha)
    rows = darts.NUM_CELL_TYPES * darts.NUM_EDGES
    return Real((rows, darts.NUM_OPS), 0.0, 1.0, decode_darts_genome)


def arch_strings(space: str, archs) -> list[str]:
    """One string per architecture (the genotype; equal architectures, equal strings)."""
    a = np.asarray(archs)
    if space == "nb201":
        return [nb201.to_str(r) for r in a]
    canon = np.asarray(darts.canonicalize(a))
    return [darts.to_str(r) for r in canon]


def random_archs(space: str, key, n: int) -> jax.Array:
    """``n`` architectures decoded from U(0, 1) alphas (NB201: uniform over the 15,625)."""
    if space == "nb201":
        return nb201.decode_alpha(jax.random.uniform(key, (n, nb201.NUM_EDGES, nb201.NUM_OPS)))
    return darts.genotype(darts.sample_alpha(key, n))


# ---------------------------------------------------------------------------- problem


class SupernetProblem:
    """Supernet, optimiser, search data and estimator of one run (see module docstring).

    Attributes:
        cfg, space, data, model, state (:class:`~jaxnas.nets.supernet_train.SupernetState`),
        estimator (:class:`~jaxnas.estimators.SupernetEstimator`), epochs_done (supernet
        epochs trained so far: the learning-rate schedule and batch order follow it),
        total_epochs (the cosine schedule's length, set by :meth:`set_schedule`),
        edge_ops (the supernet's per-edge op names, ``None``: all), stage (a staged
        method's stage: it salts the batch order), inherited (the parameter paths the last
        :meth:`set_schedule` copied).
    """

    def __init__(self, cfg: OneShotConfig, data: SearchData):
        self.cfg, self.space, self.data = cfg, cfg.space, data
        self.encoding = space_encoding(self.space)
        self.steps_per_epoch = len(data.y_train) // cfg.batch_size
        if self.steps_per_epoch < 1:
            raise C.ConfigError(f"{cfg.space}: batch_size {cfg.batch_size} is larger than the "
                                f"{len(data.y_train)} search-train images")
        self.image_shape = tuple(data.x_train.shape[1:])
        self._xv = normalise_np(data.x_valid, data.mean, data.std)
        self.epochs_done, self.total_epochs, self.stage = 0, 1, 0
        self.state, self.inherited = None, []
        self._step: Callable | None = None
        self.set_edge_ops(None)

    def set_edge_ops(self, edge_ops) -> None:
        """A supernet carrying ``edge_ops`` (NB201: 6 tuples of op names; DARTS: 2 x 14;
        ``None``: every op) and its estimator; call :meth:`set_schedule` next."""
        cfg, d = self.cfg, self.data
        track = cfg.bn != "untracked"
        if self.space == "nb201":
            self.model = NB201Supernet(C=cfg.channels, N=cfg.depth, num_classes=d.num_classes,
                                       track_running_stats=track, edge_ops=edge_ops)
        else:
            self.model = DartsSearchNetwork(C=cfg.channels, layers=cfg.depth,
                                            num_classes=d.num_classes,
                                            track_running_stats=track, edge_ops=edge_ops)
        self.edge_ops = edge_ops
        chunk = st.default_chunk(len(d.y_valid), 1, cfg.valid_batch)
        self.estimator = SupernetEstimator(self.model, None, None, self._xv, d.y_valid,
                                           bn="batch" if cfg.bn == "batch" else "running",
                                           chunk=chunk)

    def set_schedule(self, total_epochs: int, key: jax.Array, inherit_from=None) -> None:
        """Optimiser with a cosine over ``total_epochs`` epochs, and fresh supernet weights;
        ``inherit_from``: a previous supernet's parameter tree whose matching leaves replace
        the fresh ones (:func:`jaxnas.nets.inherit.inherit_params`; paths in
        :attr:`inherited`)."""
        self.total_epochs = max(int(total_epochs), 1)
        c = self.cfg
        opt = st.make_optimizer(self.total_epochs, self.steps_per_epoch, c.lr, c.lr_min,
                                c.momentum, c.nesterov, c.weight_decay, c.grad_clip)
        self.state = st.init_supernet(key, self.model, opt, self.image_shape)
        self.inherited = []
        if inherit_from is not None:
            weights, self.inherited = inherit_params(self.state.weights, inherit_from)
            self.state = st.SupernetState(weights, opt.init(weights), self.state.batch_stats)
        self._step = st.make_train_step(self.model, opt)
        self.epochs_done = 0
        self._sync()

    def _sync(self):
        self.estimator.weights = self.state.weights
        self.estimator.batch_stats = self.state.batch_stats

    def decode(self, genomes) -> jax.Array:
        return self.encoding.decode(genomes)

    def train_epoch(self, key: jax.Array, archs=None, alpha_scale: float = 1.0) -> jax.Array:
        """One epoch; ``archs`` ``(P, ...)``: round robin over their alpha-hat (EvNAS);
        ``None``: a fresh ``alpha_scale * U(0, 1)`` alpha per mini-batch (CMANAS, pEvoNAS).
        Returns per-batch losses."""
        c, d = self.cfg, self.data
        seed = c.seed * 1_000_003 + self.stage * 7919 + self.epochs_done
        batches = BatchIterator(d.x_train, d.y_train, c.batch_size, d.mean, d.std,
                                seed=seed % 2**32, cutout_length=c.cutout)
        alphas = None if archs is None else self.estimator.decode(archs)
        self.state, losses = st.train_epoch(key, self._step, self.state, batches, alphas,
                                            self.model.alpha_shape, alpha_scale)
        self.epochs_done += 1
        self._sync()
        return losses

    def evaluate(self, key: jax.Array, archs) -> jax.Array:
        """``100 - top1`` of each architecture on the search-valid images, float32 ``(P,)``."""
        return self.estimator.evaluate(key, archs)

    def arch_strings(self, archs) -> list[str]:
        return arch_strings(self.space, archs)

    # -- save / restore (the runner writes the bytes)
    def state_bytes(self) -> bytes:
        return st.state_to_bytes(self.state)

    def load_state_bytes(self, data: bytes, epochs_done: int) -> None:
        self.state = st.state_from_bytes(self.state, data)
        self.epochs_done = int(epochs_done)
        self._sync()


def build_problem(cfg: OneShotConfig, data: SearchData | None = None) -> SupernetProblem:
    """The problem of ``cfg`` (``data``: given search data instead of ``cfg.dataset``)."""
    return SupernetProblem(cfg, load_search_data(cfg) if data is None else data)


@dataclass(frozen=True)
class OneShotSearch:
    """What a one-shot method's ``make_search(config, problem)`` returns.

    Attributes:
        algorithm, params: an :class:`~jaxnas.algorithms.Algorithm` and its parameters.
        fitness: ``(key, archs) -> (P,)`` for :func:`~jaxnas.algorithms.driver.run_loop`
            (may train the supernet: it is called once per generation).
        generations: ``run_loop`` generations (tells after the initial population, if any).
        epochs: supernet epochs of the whole run (the cosine schedule's length).
        pretrain_epochs: epochs trained with random alphas before the search (CMANAS).
        answer: ``state -> arch`` (one decoded architecture): the method's answer rule.
        details: optional ``state -> dict`` added to the run's answer (e.g. a Pareto set).
        oracle: the answer used test-set look-ups (an oracle): every output says so.

    A staged method (pEvoNAS) describes one stage per search; the runner trains a new
    supernet per stage. Fields (defaults: one stage over the whole space):
        stage: this stage's index. edge_ops: the ops this stage's supernet carries (``None``:
            all). inherit: the new supernet inherits the previous stage's matching weights.
        alpha_scale: pre-training alphas are ``alpha_scale * U(0, 1)``.
        stop: ``best_genotypes -> bool``, given the best genotype string of each generation
            of this stage so far: end the stage now (convergence).
        next_stage: ``state -> edge_ops | None``: the next stage's ops (``None``: this is
            the last stage); the runner then calls ``make_search(config, problem,
            stage=stage + 1, edge_ops=...)``.
        random_archs: ``(key, n) -> n`` random architectures of this search's space (the
            RSWS baseline; default: the whole space).
    """

    algorithm: Any
    params: Any
    fitness: Callable
    generations: int
    epochs: int
    pretrain_epochs: int
    answer: Callable
    details: Callable | None = None
    oracle: bool = False
    stage: int = 0
    edge_ops: Any = None
    inherit: bool = False
    alpha_scale: float = 1.0
    stop: Callable | None = None
    next_stage: Callable | None = None
    random_archs: Callable | None = None
