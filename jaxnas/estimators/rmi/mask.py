"""The ``'mask'`` strategy: one jitted program trains a whole population.

Every edge computes every op and mixes them with the member's one-hot genome
(:func:`jaxnas.nets.nb201_fn.tiny_forward` with ``weights``); the N cells of a stage are a
``lax.scan`` over stacked parameters (a small program that compiles quickly); the training
loop is a ``lax.scan`` over steps; the population is vmapped (accelerators) or ``lax.map``-ped
(CPU, where batched convolutions are slow), and sharded over the ``'pop'`` mesh axis when
there are several devices. It compiles once per population size and is traceable.

On CPU the convolution gradients use the loop-safe VJPs (``loopsafe``): XLA:CPU's own are
8-60x slower inside a loop (benchmarks/README.md, "Finding: XLA:CPU convolution gradients
inside loops").
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
from jax import lax
from jax.sharding import PartitionSpec

from jaxnas import parallel as _par
from jaxnas.estimators.rmi.loss import jit_cpu, rmi_loss, sgd, sgd_update
from jaxnas.nets import nb201 as _net
from jaxnas.nets import nb201_fn as _fn
from jaxnas.spaces import nb201 as _space


def _loss(p, w, x, y, tg, tn, hp, N, debiased, ls):
    def stage(s, h):
        body = lambda h_, pc: (_fn.cell(pc, h_, weights=w, loopsafe=ls), None)
        return lax.scan(body, h, p["stages"][s])[0]

    feats, logits = _fn.tiny_forward(p, x, N, weights=w, loopsafe=ls, stage=stage)
    return rmi_loss(feats, logits, y, tg, tn, hp["beta"], debiased)


def _member(p, w, x, y, tg, tn, hp, length, N, debiased, ls):
    """Train one member; returns its losses of forwards 0..length, shape (length+1,).

    The scan runs ``length + 1`` value-and-grad steps and discards the last update, so the
    program holds one forward/backward only (faster to compile than a separate final forward).
    """
    vg = jax.value_and_grad(_loss)

    def step(carry, _):
        p_, s_ = carry
        loss, g = vg(p_, w, x, y, tg, tn, hp, N, debiased, ls)
        return sgd_update(p_, s_, g, hp), loss

    _, losses = lax.scan(step, (p, sgd(hp).init(p)), None, length=length + 1)
    return losses


def _local(params, weights, x, y, tg, tn, hp, length, N, debiased, member_map, ls):
    fn = lambda pw: _member(pw[0], pw[1], x, y, tg, tn, hp, length, N, debiased, ls)
    if member_map == "vmap":
        return jax.vmap(fn)((params, weights))
    return lax.map(fn, (params, weights))


@jit_cpu(static_argnames=("length", "N", "debiased", "member_map", "mesh", "loopsafe"))
def _population(params, weights, x, y, tg, tn, hp, length, N, debiased, member_map="vmap",
                mesh=None, loopsafe=False):
    fn = partial(_local, length=length, N=N, debiased=debiased, member_map=member_map,
                 ls=loopsafe)
    if mesh is None:
        return fn(params, weights, x, y, tg, tn, hp)
    # population sharded over 'pop'; batch, teacher and hyper-parameters replicated
    pop, rep = PartitionSpec(_par.AXIS), PartitionSpec()
    return jax.shard_map(
        fn, mesh=mesh, in_specs=(pop, pop, rep, rep, rep, rep, rep), out_specs=pop
    )(params, weights, x, y, tg, tn, hp)


def mask_losses(key, archs, x, y, tgrams, tnorms, hp, settings, num_classes: int, steps: int,
                loopsafe: bool):
    """Losses of forwards 0..steps of every member, (P, steps+1): pure JAX (traceable in
    ``key`` and ``archs`` (P, 6) int). Member p starts from
    ``init_params(fold_in(key, p))`` (mixed layout). The population is padded to a multiple
    of the device count and sharded over ``'pop'``."""
    s = settings
    dt = jnp.dtype(s.dtype)
    n = archs.shape[0]

    def init(k):
        p = _net.init_params(k, s.C, s.N, num_classes, s.affine, None, dt)
        return _fn.stack_stages(p, s.N)

    if jnp.issubdtype(jnp.asarray(key).dtype, jax.dtypes.prng_key):
        key = jax.random.key_data(key)
    keys = jax.vmap(lambda i: jax.random.fold_in(key, i))(jnp.arange(n))
    params = jax.vmap(init)(keys)
    weights = _space.one_hot(archs).astype(dt)
    ndev = len(jax.devices())
    mesh = None
    if ndev > 1:
        (params, weights), _ = _par.pad_population((params, weights), ndev)
        mesh = _par.pop_mesh()
    member_map = "map" if jax.default_backend() == "cpu" else "vmap"
    losses = _population(params, weights, x, y, tgrams, tnorms, hp, length=steps, N=s.N,
                         debiased=s.debiased, member_map=member_map, mesh=mesh,
                         loopsafe=loopsafe)
    return losses[:n]
