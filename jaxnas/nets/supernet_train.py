"""Training and population evaluation of a weight-sharing supernet (issue 11).

Works with any Flax supernet whose forward is ``model.apply(variables, x, alpha, train=...)
-> logits`` with ``alpha`` an input (:class:`jaxnas.nets.supernet.NB201Supernet`,
:class:`jaxnas.nets.darts_supernet.DartsSearchNetwork`).

* :func:`make_optimizer` -- optax SGD as METHODS.md 1/2: momentum 0.9, nesterov flag, weight
  decay 3e-4, per-epoch cosine from 0.025 to 0.001, gradient clipping at global norm 5. The
  order is PyTorch's: clip the loss gradient, then add ``wd * w`` (``SGD(weight_decay=...)``),
  then momentum, then the learning rate.
* :func:`make_train_step` -- one jitted ``(weights, opt_state, batch_stats, alpha, batch) ->
  (weights, opt_state, batch_stats, loss)``.
* :func:`train_epoch` -- one epoch; mini-batch b trains the alpha of member ``b mod P``
  (:func:`round_robin`, EvNAS) or a fresh ``U(0, 1)`` alpha (CMANAS / pEvoNAS pre-training).
* :func:`make_population_eval` -- top-1 accuracy of P alphas on a validation set in one
  compiled call (vmap over alpha, ``lax.scan`` over validation chunks), the population
  sharded over the ``'pop'`` mesh (:mod:`jaxnas.parallel`) and padded with masked members.
* :func:`state_to_bytes` / :func:`state_from_bytes` -- flax msgpack of weights, optimizer
  state and BN statistics (the caller writes the file).

Training never differentiates inside a loop (the step is one value-and-grad; the epoch loop
is Python, fed by :class:`jaxnas.data.search.BatchIterator`), so XLA's own convolution
gradients are used: the in-loop slowdown of XLA:CPU (benchmarks/README.md) does not arise.
Evaluation runs forward convolutions only inside its scan, which that finding found unaffected.
"""

from __future__ import annotations

import math
import zlib
from functools import partial
from typing import Any, Callable, Iterable

import flax.serialization
import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import PartitionSpec

from jaxnas import parallel as par

# ---------------------------------------------------------------------------- optimiser


def epoch_cosine_schedule(lr: float, lr_min: float, epochs: int, steps_per_epoch: int):
    """``CosineAnnealingLR(T_max=epochs, eta_min=lr_min)`` stepped once per epoch (DARTS/EvNAS):
    the learning rate is constant within epoch ``e = step // steps_per_epoch`` and equals
    ``lr_min + (lr - lr_min) (1 + cos(pi e / epochs)) / 2``."""
    if epochs < 1 or steps_per_epoch < 1:
        raise ValueError(f"epochs and steps_per_epoch must be >= 1, got {epochs}, {steps_per_epoch}")

    def schedule(count):
        e = jnp.minimum(count // steps_per_epoch, epochs)
        return lr_min + (lr - lr_min) * 0.5 * (1.0 + jnp.cos(math.pi * e / epochs))

    return schedule


def make_optimizer(epochs: int, steps_per_epoch: int, lr: float = 0.025, lr_min: float = 0.001,
                   momentum: float = 0.9, nesterov: bool = False, weight_decay: float = 3e-4,
                   grad_clip: float = 5.0) -> optax.GradientTransformation:
    """The supernet optimiser of EvNAS/CMANAS/pEvoNAS (METHODS.md 1, 2; DARTS ``train_search``).

    ``nesterov``: EvNAS S2 takes it from its config, CMANAS uses True. ``grad_clip`` <= 0
    disables clipping.
    """
    parts = []
    if grad_clip and grad_clip > 0:
        parts.append(optax.clip_by_global_norm(grad_clip))
    if weight_decay:
        parts.append(optax.add_decayed_weights(weight_decay))
    parts.append(optax.sgd(epoch_cosine_schedule(lr, lr_min, epochs, steps_per_epoch),
                           momentum=momentum, nesterov=nesterov))
    return optax.chain(*parts)


# ---------------------------------------------------------------------------- state


@flax.struct.dataclass
class SupernetState:
    """Supernet weights (``params``), optimiser state and BN running statistics."""

    weights: Any
    opt_state: Any
    batch_stats: Any


def _leaf_init(seed: np.ndarray, path: tuple[str, ...], sd, parent: dict) -> np.ndarray:
    """PyTorch default init of one leaf from its name (see :func:`init_variables`)."""
    name = path[-1]
    if name in ("scale", "var"):
        return np.ones(sd.shape, sd.dtype)
    if name in ("bias", "mean"):
        return np.zeros(sd.shape, sd.dtype)
    sib = {"conv_bias": "kernel", "classifier_bias": "classifier_kernel"}.get(name, name)
    fan_in = int(np.prod(parent[sib].shape[:-1]))
    tag = zlib.crc32("/".join(path).encode())
    rng = np.random.default_rng([*seed.tolist(), tag])
    bound = 1.0 / math.sqrt(fan_in)
    return rng.uniform(-bound, bound, sd.shape).astype(sd.dtype)


def init_variables(key: jax.Array, model, image_shape=(32, 32, 3)) -> dict:
    """PyTorch-default initial variables of a supernet without running its forward pass.

    ``jax.eval_shape`` of ``model.init`` gives the variable tree; every leaf is then drawn on
    the host by its name: kernels (``kernel``, ``stem_kernel``, ``dw``, ``pw``, ``kernel_1/2``,
    ``classifier_kernel``) ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))`` with ``fan_in`` the product of
    all but the last (output) axis; ``conv_bias`` / ``classifier_bias`` the bound of their
    kernel; BN ``scale`` 1, ``bias`` 0, running ``mean`` 0, ``var`` 1. Each leaf's stream is
    seeded by ``(key, crc32(path))``. (Flax's own jitted ``init`` of the DARTS network took
    minutes to compile on this CPU; eager init tens of seconds.)
    """
    x = jax.ShapeDtypeStruct((2, *image_shape), jnp.float32)
    alpha = jax.ShapeDtypeStruct(tuple(model.alpha_shape), jnp.float32)
    abstract = jax.eval_shape(partial(model.init, train=False), key, x, alpha)
    if jnp.issubdtype(jnp.asarray(key).dtype, jax.dtypes.prng_key):
        key = jax.random.key_data(key)
    seed = np.asarray(key, np.uint32).ravel()

    def build(node, prefix):
        return {k: build(v, prefix + (k,)) if isinstance(v, dict)
                else jnp.asarray(_leaf_init(seed, prefix + (k,), v, node))
                for k, v in node.items()}

    return build(jax.tree_util.tree_map(lambda a: a, dict(abstract)), ())


def init_supernet(key: jax.Array, model, optimizer: optax.GradientTransformation,
                  image_shape=(32, 32, 3)) -> SupernetState:
    """Initial weights (PyTorch default init, :func:`init_variables`), optimiser state and
    BN statistics.

    Args:
        key: PRNG key. model: a supernet module with an ``alpha_shape`` property.
        optimizer: from :func:`make_optimizer`. image_shape: (H, W, C) of one image.
    """
    variables = init_variables(key, model, image_shape)
    weights = variables["params"]
    return SupernetState(weights, optimizer.init(weights), variables.get("batch_stats", {}))


def _variables(weights, batch_stats) -> dict:
    v = {"params": weights}
    if batch_stats:
        v["batch_stats"] = batch_stats
    return v


def make_train_step(model, optimizer: optax.GradientTransformation) -> Callable:
    """One jitted supernet training step.

    Returns:
        ``step(weights, opt_state, batch_stats, alpha, batch) -> (weights, opt_state,
        batch_stats, loss)`` where ``alpha`` has ``model.alpha_shape`` (float32, raw: the
        model applies the softmax; pass the decoded alpha-hat to train a decoded individual),
        ``batch = (x, y)`` with x (B, H, W, 3) float32 normalised and y (B,) int32, and
        ``loss`` is the mean cross-entropy of the batch before the update (float32 scalar).
        BatchNorm runs in train mode and updates the running statistics.
    """

    def loss_fn(weights, batch_stats, alpha, x, y):
        logits, upd = model.apply(_variables(weights, batch_stats), x, alpha, train=True,
                                  mutable=["batch_stats"])
        loss = optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
        return loss, upd.get("batch_stats", batch_stats)

    donate = (0, 1, 2) if jax.default_backend() != "cpu" else ()

    @partial(jax.jit, donate_argnums=donate)
    def step(weights, opt_state, batch_stats, alpha, batch):
        x, y = batch
        (loss, stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(
            weights, batch_stats, alpha, x, y)
        updates, opt_state = optimizer.update(grads, opt_state, weights)
        return optax.apply_updates(weights, updates), opt_state, stats, loss

    return step


def round_robin(num_batches: int, pop_size: int) -> np.ndarray:
    """EvNAS's assignment: mini-batch ``b`` trains member ``b mod P``. int32 ``(num_batches,)``."""
    if pop_size < 1:
        raise ValueError(f"population size must be >= 1, got {pop_size}")
    return np.arange(num_batches, dtype=np.int32) % pop_size


@partial(jax.jit, static_argnums=(1,))
def _uniform_alpha(key, shape, scale=1.0):
    return scale * jax.random.uniform(key, shape, jnp.float32)


def train_epoch(key: jax.Array, step: Callable, state: SupernetState, batches: Iterable,
                alphas=None, alpha_shape=None,
                alpha_scale: float = 1.0) -> tuple[SupernetState, jax.Array]:
    """Train the supernet for one pass over ``batches``.

    Args:
        key: PRNG key (used for the random alphas only).
        step: from :func:`make_train_step`.
        state: the current :class:`SupernetState`.
        batches: iterable of ``(x, y)`` (e.g. a :class:`jaxnas.data.search.BatchIterator`).
        alphas: ``(P, *alpha_shape)`` float32, already decoded (e.g.
            :func:`jaxnas.spaces.nb201.discretize` / :func:`jaxnas.spaces.darts.discretize`):
            batch b trains ``alphas[b mod P]`` (EvNAS). ``None``: batch b trains a fresh
            ``U(0, 1)`` alpha of ``alpha_shape`` drawn from ``fold_in(key, b)``, non-discretized
            (CMANAS OSM training, pEvoNAS pre-training; METHODS.md 2, 3).
        alpha_shape: needed when ``alphas`` is None.
        alpha_scale: the random alphas are ``alpha_scale * U(0, 1)`` (pEvoNAS S1: 1e-3, a
            near-uniform mixture; METHODS.md 3).
    Returns:
        (new state, per-batch losses float32 ``(num_batches,)``).
    """
    if alphas is None and alpha_shape is None:
        raise ValueError("train_epoch needs alphas (round-robin) or alpha_shape (random alphas)")
    if alphas is not None:
        alphas = jnp.asarray(alphas, jnp.float32)
        members = [alphas[p] for p in range(alphas.shape[0])]  # slice once, not per batch
    w, o, s = state.weights, state.opt_state, state.batch_stats
    losses = []
    for b, batch in enumerate(batches):
        if alphas is None:
            alpha = _uniform_alpha(jax.random.fold_in(key, b), tuple(alpha_shape),
                                   jnp.float32(alpha_scale))
        else:
            alpha = members[b % len(members)]
        w, o, s, loss = step(w, o, s, alpha, batch)
        losses.append(loss)
    out = jnp.stack(losses) if losses else jnp.zeros((0,), jnp.float32)
    return SupernetState(w, o, s), out


# ---------------------------------------------------------------------------- evaluation


def default_chunk(num_valid: int, pop_size: int, budget: int = 1024) -> int:
    """Largest divisor of ``num_valid`` that keeps ``pop_size * chunk <= budget`` images per
    scan iteration (at least 1)."""
    cap = max(1, budget // max(pop_size, 1))
    return max(d for d in range(1, min(cap, num_valid) + 1) if num_valid % d == 0)


def make_population_eval(model, *, chunk: int | None = None, bn: str = "running",
                         member_batch: int | None = None, mesh=None, budget: int = 1024) -> Callable:
    """Top-1 accuracy of a population of alphas in one compiled call.

    Args:
        model: the supernet module.
        chunk: validation images per scan iteration (must divide V). ``None``: the largest
            divisor of V with ``P * chunk <= budget``. With ``bn='batch'`` the chunk is also
            the BatchNorm batch (EvNAS S1 valid batch 1024; CMANAS S1 2048).
        bn: ``'running'`` (``model.eval()``: running statistics; EvNAS S2, CMANAS) or
            ``'batch'`` (train-mode BN, statistics of each chunk, nothing updated: EvNAS S1,
            and what a ``track_running_stats=False`` supernet does anyway).
        member_batch: ``None`` vmaps all members together; ``k`` runs them ``k`` at a time
            (``lax.map(batch_size=k)``) to bound memory.
        mesh: a ``'pop'`` mesh (:func:`jaxnas.parallel.pop_mesh`); default: one over all
            devices when there are several, else none.
        budget: images per scan iteration for the default chunk.
    Returns:
        ``evaluate(weights, batch_stats, alphas, x, y) -> (P,) float32`` top-1 accuracy in %,
        with ``alphas`` ``(P, *alpha_shape)`` float32 as the model takes them (already
        decoded), x (V, H, W, 3) float32 normalised, y (V,) int32. Jitted; it compiles once
        per (P, V) and never per architecture.
    """
    if bn not in ("running", "batch"):
        raise ValueError(f"bn must be 'running' or 'batch', got {bn!r}")
    if mesh is None and len(jax.devices()) > 1:
        mesh = par.pop_mesh()
    ndev = 1 if mesh is None else mesh.devices.size
    train = bn == "batch"

    def local(weights, batch_stats, alphas, xs, ys):
        variables = _variables(weights, batch_stats)

        def member(alpha):
            # hits per chunk as scan outputs, not a carry: a constant initial carry is not
            # 'pop'-varying under shard_map, and scan refuses the mismatch
            def body(_, xy):
                logits = model.apply(variables, xy[0], alpha, train=train)
                return None, jnp.sum(jnp.argmax(logits, axis=-1) == xy[1], dtype=jnp.int32)

            return jnp.sum(jax.lax.scan(body, None, (xs, ys))[1], dtype=jnp.int32)

        if member_batch is None:
            return jax.vmap(member)(alphas)
        return jax.lax.map(member, alphas, batch_size=member_batch)

    @jax.jit
    def evaluate(weights, batch_stats, alphas, x, y):
        n, v = alphas.shape[0], x.shape[0]
        c = default_chunk(v, n, budget) if chunk is None else int(chunk)
        if v % c:
            raise ValueError(f"chunk {c} must divide the {v} validation images")
        xs = x.reshape((v // c, c) + x.shape[1:])
        ys = y.reshape(v // c, c)
        if mesh is None:
            correct = local(weights, batch_stats, alphas, xs, ys)
        else:
            padded, _ = par.pad_population(alphas, ndev)
            pop, rep = PartitionSpec(par.AXIS), PartitionSpec()
            correct = jax.shard_map(local, mesh=mesh, in_specs=(rep, rep, pop, rep, rep),
                                    out_specs=pop)(weights, batch_stats, padded, xs, ys)[:n]
        return 100.0 * correct.astype(jnp.float32) / v

    return evaluate


# ---------------------------------------------------------------------------- save / restore


def state_to_bytes(state: SupernetState) -> bytes:
    """Serialise weights, optimiser state and BN statistics (flax msgpack)."""
    return flax.serialization.to_bytes(state)


def state_from_bytes(template: SupernetState, data: bytes) -> SupernetState:
    """Restore what :func:`state_to_bytes` wrote into the structure of ``template`` (e.g. a
    fresh :func:`init_supernet` of the same model and optimiser)."""
    return flax.serialization.from_bytes(template, data)
