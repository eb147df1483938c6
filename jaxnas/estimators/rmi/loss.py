"""The RMI loss (METHODS.md 5.1), its teacher side, the SGD of RMI-NAS and the jit helper.

    L = beta * sum_{i=1..3} (1 - CKA(F_i, F^T_i)) + (1 - beta) * CE(logits, y),   beta = 0.8

The reference ("teacher") features are fixed, so their centred Gram matrices and norms are
computed once (:func:`teacher_grams`). SGD is PyTorch's (dampening 0, no Nesterov, weight
decay added to the gradient before the momentum), written with optax: ``add_decayed_weights``
then ``sgd(lr, momentum)``; with the momentum buffer starting at 0 this equals PyTorch's
first-step ``buf = d`` (:func:`sgd_update`), and it does the same float operations as the
hand-written update it replaced (the float64 trajectories are bitwise unchanged).

Cost, measured 2026-12-07 on the 2-core machine while other jobs kept the load average at
12-16 (so single timings scatter by +-20 %): the optax update compiles, inside the
'composed' backward units, to the same 17 fusions and 2 convolutions as the hand-written one
(3 more scalar multiplies inside those fusions); interleaved medians of the fused backward
units (3x3, 1x1 and reduction units at the three stage shapes, 40 runs each) summed to
0.99x the hand-written ones. No cost above noise, so optax is kept.
"""

from __future__ import annotations

import math
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxnas.estimators import cka as _cka

#: XLA:CPU options for every program of the RMI estimator: without the new fusion emitters
#: these programs compile about 2x faster with the same run time (a development measurement,
#: not recorded in benchmarks/README.md).
CPU_COMPILER_OPTIONS = {"xla_cpu_use_fusion_emitters": False}


class jit_cpu:
    """``jax.jit`` that adds :data:`CPU_COMPILER_OPTIONS` when the backend is the CPU (decided
    at the first call, so importing a module does not initialise a backend). Use as
    ``@jit_cpu`` or ``@jit_cpu(static_argnames=..., donate_argnums=...)``."""

    def __init__(self, fn=None, **kwargs):
        self._fn, self._kw = fn, kwargs
        self._jitted: dict = {}

    def __call__(self, *args, **kwargs):
        if self._fn is None:  # used as @jit_cpu(...) with options
            return jit_cpu(args[0], **self._kw)
        # inside an outer jit, compiler options belong to the top-level program only
        leaves = jax.tree_util.tree_leaves((args, kwargs))
        nested = any(isinstance(a, jax.core.Tracer) for a in leaves)
        cpu = not nested and jax.default_backend() == "cpu"
        fn = self._jitted.get(cpu)
        if fn is None:
            opts = CPU_COMPILER_OPTIONS if cpu else None
            fn = self._jitted[cpu] = jax.jit(self._fn, compiler_options=opts, **self._kw)
        return fn(*args, **kwargs)


def worst_score(num_classes: int = 10, beta: float = 0.8, n_stages: int = 3) -> float:
    """The finite worst score given to disconnected cells: a network with no information
    (CKA 0 at every stage, uniform logits)."""
    return beta * n_stages + (1.0 - beta) * math.log(num_classes)


def hparams(settings, dtype=jnp.float32) -> dict:
    """The dynamic hyper-parameters of :class:`jaxnas.config.RMISettings` as scalars
    (changing them never recompiles): ``lr``, ``momentum``, ``wd``, ``beta``."""
    dt = jnp.dtype(dtype)
    return {"lr": jnp.asarray(settings.lr, dt), "momentum": jnp.asarray(settings.momentum, dt),
            "wd": jnp.asarray(settings.weight_decay, dt), "beta": jnp.asarray(settings.beta, dt)}


def teacher_grams(features: Sequence, debiased: bool = False, dtype=jnp.float32):
    """Centred Gram matrices of the 3 reference features and their norms.

    Args:
        features: 3 arrays (B, ...) -- the reference's stage outputs on the selected batch.
    Returns:
        (grams (3, B, B), norms (3,)) in ``dtype``.
    """
    if len(features) != 3:
        raise ValueError(f"RMI needs 3 reference stage features, got {len(features)}")
    return _teacher_grams([jnp.asarray(f, dtype) for f in features], debiased)


@jit_cpu(static_argnames=("debiased",))
def _teacher_grams(features, debiased):
    grams = jnp.stack([_cka.centred_gram(f, debiased) for f in features])
    return grams, jnp.sqrt(jnp.sum(grams * grams, axis=(1, 2)))


def rmi_loss(feats, logits, y, tgrams, tnorms, beta, debiased: bool = False):
    """METHODS.md 5.1 loss: ``beta * sum_i (1 - CKA_i) + (1 - beta) * CE``. Scalar."""
    sims = [
        _cka.cka_from_centred(_cka.centred_gram(f, debiased), tgrams[i], tnorms[i])
        for i, f in enumerate(feats)
    ]
    ce = -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits), y[:, None], axis=1))
    return beta * (len(feats) - sum(sims)) + (1.0 - beta) * ce


# ---------------------------------------------------------------------------- SGD


def sgd(hp: dict) -> optax.GradientTransformation:
    """PyTorch's SGD with momentum and weight decay: ``d = g + wd p; m = mu m + d;
    p -= lr m``. ``hp`` values may be traced scalars."""
    return optax.chain(optax.add_decayed_weights(hp["wd"]),
                       optax.sgd(hp["lr"], momentum=hp["momentum"]))


_SHAPE_HP = {"lr": 0.1, "momentum": 0.9, "wd": 5e-4}


_STATE_SHAPES: dict = {}


def sgd_init(params):
    """The optimiser state of ``params`` (momentum 0), placed from the host: nothing is
    compiled or traced once a parameter layout has been seen (an eager ``init`` compiles a
    program per shape)."""
    leaves, treedef = jax.tree_util.tree_flatten(params)
    sig = (treedef, tuple((a.shape, jnp.dtype(a.dtype)) for a in leaves))
    shapes = _STATE_SHAPES.get(sig)
    if shapes is None:
        shapes = _STATE_SHAPES[sig] = jax.eval_shape(sgd(_SHAPE_HP).init, params)
    return jax.tree_util.tree_map(lambda s: jax.device_put(np.zeros(s.shape, s.dtype)), shapes)


def sgd_update(params, opt_state, grads, hp: dict):
    """One SGD step: ``(params, opt_state)`` after ``grads``."""
    updates, opt_state = sgd(hp).update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state
