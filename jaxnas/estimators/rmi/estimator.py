"""The RMI estimator: one class over the two strategies (see :mod:`jaxnas.estimators.rmi`)."""

from __future__ import annotations

import os
from typing import Any, Mapping

import jax
import jax.numpy as jnp
import numpy as np

from jaxnas.config import RMISettings, as_dict, parse
from jaxnas.estimators.rmi import composed as _composed
from jaxnas.estimators.rmi.loss import hparams, teacher_grams, worst_score
from jaxnas.estimators.rmi.mask import mask_losses
from jaxnas.nets import nb201 as _net
from jaxnas.spaces import nb201 as _space
from jaxnas.workers import WorkerPool

STRATEGIES = ("composed", "mask")

#: rough relative cost of one training step per op (measured unit times, 'composed')
_OP_COST = np.array([0.0, 0.1, 1.0, 2.5, 0.3])


def _cost(arch) -> float:
    """Estimated relative cost of training ``arch`` (largest first balances the workers)."""
    return 1.0 + float(np.sum(_OP_COST[np.asarray(arch)]))


def _as_archs(archs) -> np.ndarray:
    a = np.asarray(archs)
    if a.ndim == 1:
        a = a[None]
    if a.ndim != 2 or a.shape[1] != _space.NUM_EDGES:
        raise ValueError(f"archs must be an int array of shape (P, 6), got shape {a.shape}")
    if not np.issubdtype(a.dtype, np.integer) or a.min() < 0 or a.max() >= _space.NUM_OPS:
        raise ValueError(f"archs must hold NB201 op codes 0..{_space.NUM_OPS - 1}, got {archs!r}")
    return a.astype(np.int32)


def _key_data(key) -> np.ndarray:
    """A PRNG key as host uint32 data (picklable; raw ``PRNGKey`` arrays pass through)."""
    if jnp.issubdtype(jnp.asarray(key).dtype, jax.dtypes.prng_key):
        key = jax.random.key_data(key)
    return np.asarray(key)


def default_workers() -> int:
    """Processes for the CPU 'composed' strategy: one per core. XLA:CPU runs one computation
    at a time per process (measured: neither threads nor several host devices overlap), and
    many of these small convolutions are single-threaded, so members train in parallel in
    worker processes."""
    if jax.default_backend() != "cpu":
        return 1
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def default_strategy(backend: str | None = None) -> str:
    """The measured default: ``'composed'`` on CPU, ``'mask'`` on accelerators."""
    backend = backend or jax.default_backend()
    return "composed" if backend == "cpu" else "mask"


def merge_settings(settings: RMISettings | Mapping[str, Any] | None = None, **overrides) -> RMISettings:
    """:class:`RMISettings` from settings (or a mapping) and field overrides, checked by
    :func:`jaxnas.config.parse` (a one-line :class:`jaxnas.config.ConfigError` on bad values)."""
    base = parse(RMISettings, settings)
    return parse(RMISettings, {**as_dict(base), **overrides}) if overrides else base


class RMIEstimator:
    """RMI fitness of NB201 architectures (METHODS.md 5.1); lower is better.

    Args:
        x: (B, H, W, 3) float32 -- the selected, normalised batch.
        y: (B,) int labels.
        teacher_features: the reference's 3 stage outputs on ``x``, each (B, ...).
        settings: :class:`jaxnas.config.RMISettings` (or a mapping of its fields); the data
            fields (dataset, source, ...) are not used here -- see
            :func:`jaxnas.data.prepare_rmi_batch`.
        num_classes: logits of the candidate head.
        warmup: compile every unit now ('composed'), so that no ``evaluate`` compiles.
        **overrides: :class:`RMISettings` fields, e.g. ``C=4, N=1, steps=3, workers=1,
            strategy='mask', lr=0.05, dtype='float64'``. ``workers`` 0 (default): one process
            per core for 'composed' in float32, else 1; ``workers > 1``: the calling process
            plus ``workers - 1`` :class:`jaxnas.workers.WorkerPool` processes (``close()`` or
            ``with`` stops them; they never import the main script, so a script needs no
            ``if __name__ == "__main__":`` guard).
            ``loopsafe`` None: on CPU only ('mask').

    ``evaluate(key, archs)`` takes ``(P, 6)`` op codes and returns ``(P,)`` float32 scores.
    Member p is initialised from ``jax.random.fold_in(key, p)`` (:func:`nb201.init_params`),
    so every strategy, and every number of workers, gives the same scores up to rounding.
    """

    name = "rmi"
    oracle = False

    def __init__(self, x, y, teacher_features, settings=None, *, num_classes: int = 10,
                 warmup: bool = True, **overrides):
        self._workers = None
        s = self.settings = merge_settings(settings, **overrides)
        if int(num_classes) < 1:
            raise ValueError(f"RMI num_classes must be a positive integer, got {num_classes!r}")
        self.num_classes = int(num_classes)
        if s.dtype == "float64" and not jax.config.jax_enable_x64:
            raise ValueError("RMI dtype 'float64' needs 64-bit JAX (use `with jax.enable_x64(True):`)")
        dt = jnp.dtype(s.dtype)
        x, y = jnp.asarray(x, dt), jnp.asarray(y, jnp.int32)
        if x.ndim != 4 or x.shape[-1] != 3:
            raise ValueError(f"x must be (B, H, W, 3) images, got shape {x.shape}")
        if y.shape != (x.shape[0],):
            raise ValueError(f"y must be ({x.shape[0]},) labels, got shape {y.shape}")
        y_host = np.asarray(y)
        if y_host.max() >= self.num_classes or y_host.min() < 0:
            raise ValueError(f"labels must be in 0..{self.num_classes - 1}")
        for i, f in enumerate(teacher_features):
            if np.shape(f)[0] != x.shape[0]:
                raise ValueError(f"teacher feature {i} has batch {np.shape(f)[0]}, expected {x.shape[0]}")
        self.x, self.y = x, y
        self.tgrams, self.tnorms = teacher_grams(teacher_features, s.debiased, dt)
        self.strategy = default_strategy() if s.strategy == "auto" else s.strategy
        composed_f32 = self.strategy == "composed" and s.dtype == "float32"
        workers = s.workers or (default_workers() if composed_f32 else 1)
        if workers != 1 and not composed_f32:
            raise ValueError(f"workers > 1 needs strategy 'composed' in float32, got {self.strategy!r}")
        self.workers = workers
        self._pool_args = (np.asarray(x), np.asarray(y), [np.asarray(f) for f in teacher_features],
                           as_dict(s), self.num_classes)
        #: ``'mask'`` evaluates as one pure JAX function; ``'composed'`` is Python-driven
        self.traceable = self.strategy == "mask"
        self.loopsafe = jax.default_backend() == "cpu" if s.loopsafe is None else bool(s.loopsafe)
        self._hp = hparams(s, dt)
        self._composed = _composed.Composed(x, y, self.tgrams, self.tnorms, s, self.num_classes)
        if warmup and self.strategy == "composed":
            self._pool()  # start the workers now: they compile while this process does
            self.warmup()

    @property
    def steps(self) -> int:
        """Training steps; the score is the loss of forward ``steps``."""
        return self.settings.steps

    # -- public API
    def evaluate(self, key, archs) -> jax.Array:
        """Scores of a population: ``archs`` (P, 6) int -> (P,) float32 (lower is better).

        With ``strategy='mask'`` this is a pure JAX function (``traceable``: it can run inside
        ``jit``/``vmap`` with traced ``key`` and ``archs``).
        """
        if self.strategy == "mask":
            return self._mask_scores(key, archs)
        return self._run(key, archs, trajectory=False)

    def trajectory(self, key, archs, steps: int | None = None) -> np.ndarray:
        """Losses of forwards 0..``steps`` (default ``settings.steps``) for each member:
        (P, steps+1)."""
        return np.asarray(self._run(key, archs, trajectory=True, steps=steps))

    def init_params(self, key, archs) -> list[dict]:
        """The initial TinyNetwork params of each member (single-path dicts)."""
        archs = _as_archs(archs)
        kd = jnp.asarray(_key_data(key))
        s = self.settings
        return [_net.init_params(jax.random.fold_in(kd, p), s.C, s.N, self.num_classes, s.affine,
                                 tuple(a), jnp.dtype(s.dtype)) for p, a in enumerate(archs)]

    def warmup(self) -> None:
        """Compile every unit the 'composed' strategy can call (all ops at all stage shapes)."""
        self._composed.warmup()
        self._run(jax.random.PRNGKey(0), _composed.WARMUP_ARCHS, False, steps=1, pool=False)

    def close(self) -> None:
        """Stop the worker processes (also done at exit)."""
        pool, self._workers = getattr(self, "_workers", None), None
        if pool is not None:
            pool.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            pool, self._workers = getattr(self, "_workers", None), None
            if pool is not None:
                pool.terminate()
        except Exception:
            pass

    # -- internals
    def _pool(self) -> WorkerPool | None:
        """The worker processes of the 'composed' strategy (None when ``workers == 1``)."""
        if self.workers <= 1:
            return None
        if self._workers is None or self._workers.closed:
            self._workers = WorkerPool(self.workers - 1, _composed.worker_init, self._pool_args,
                                       name="RMI", import_main=False)
        return self._workers

    def _run(self, key, archs, trajectory: bool, steps: int | None = None, pool: bool = True):
        archs = _as_archs(archs)
        s = self.settings
        steps = s.steps if steps is None else int(steps)
        connected = np.asarray(_space.is_connected(archs))
        P = archs.shape[0]
        rdt = np.float64 if (trajectory and s.dtype == "float64") else np.float32
        out = np.full((P, steps + 1) if trajectory else (P,),
                      worst_score(self.num_classes, s.beta), rdt)
        if self.strategy == "mask":
            res = np.asarray(self._mask_losses(key, jnp.asarray(archs), steps))
            out[connected] = res[connected] if trajectory else res[connected, -1]
        else:
            # most expensive first, so that the last member to finish is a cheap one
            todo = sorted((int(p) for p in np.flatnonzero(connected)), key=lambda p: -_cost(archs[p]))
            kd = _key_data(key)
            jobs = [(kd, p, archs[p], steps, trajectory) for p in todo]
            local = lambda job: self._composed.member_losses(*job)
            workers = self._pool() if pool and len(todo) > 1 else None
            if workers is not None:
                results = workers.map(_composed.worker_task, jobs, local=local)
            else:
                results = [local(job) for job in jobs]
            for p, res in zip(todo, results):
                out[p] = res
        return np.where(np.isnan(out), np.inf, out).astype(rdt)

    def _mask_losses(self, key, archs, steps: int):
        return mask_losses(key, archs, self.x, self.y, self.tgrams, self.tnorms, self._hp,
                           self.settings, self.num_classes, steps, self.loopsafe)

    def _mask_scores(self, key, archs):
        s = self.settings
        if not isinstance(archs, jax.core.Tracer):
            archs = _as_archs(archs)
        archs = jnp.asarray(archs, jnp.int32)
        last = self._mask_losses(key, archs, s.steps)[:, -1]
        worst = jnp.asarray(worst_score(self.num_classes, s.beta), last.dtype)
        last = jnp.where(_space.is_connected(archs), last, worst)
        return jnp.where(jnp.isnan(last), jnp.inf, last).astype(jnp.float32)
