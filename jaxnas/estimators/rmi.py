"""RMI estimator: representation similarity to a reference after one-batch training.

METHODS.md 5.1 (RMI-NAS, CVPR'22; the proxy of HW-EvRSNAS / MO-HDNAS). For each candidate
NB201 architecture a fresh TinyNetwork (PyTorch default init) is trained in train mode on one
fixed selected batch (X, y) with SGD (lr 0.1, momentum 0.9, weight decay 5e-4) on

    L = beta * sum_{i=1..3} (1 - CKA(F_i, F^T_i)) + (1 - beta) * CE(logits, y),   beta = 0.8

where F_i are the candidate's three stage features and F^T_i the reference's. The score is
the loss of forward index ``observe`` (150): the loss computed by the 151st forward, before
that step's update. Lower is better. NaN becomes +inf. A disconnected cell (no path from
input to output) is not trained: it gets the finite worst score ``beta * 3 + (1 - beta) *
log(num_classes)`` -- CKA 0 at every stage and chance-level cross-entropy.

Population evaluation strategies (DESIGN.md "Population evaluation: the performance core";
numbers in benchmarks/README.md):

* ``'mask'``: every edge computes all ops, mixed by the one-hot genome; the whole training
  loop is one jitted function vmapped over the population. Compiles once per population size;
  it is traceable and is the natural GPU/TPU path. On CPU its convolution gradients use
  loop-safe VJPs (``loopsafe``): XLA:CPU's own are 8-60x slower inside a loop.
* ``'composed'``: op-level jitted units (a fused ReLU-conv-BN forward, its backward with the
  SGD update fused in, re-expressed pooling, a fused loss head) composed per member in Python,
  running only the chosen ops. Every unit compiles once per shape -- never per architecture --
  and all of them are compiled when the estimator is built, so no population triggers a
  compilation. XLA:CPU runs one computation at a time per process, so members are trained in
  parallel by ``workers`` processes (default: one per core), handed out one at a time.
  This is the CPU path.

``strategy='auto'`` picks per backend by measurement: ``'composed'`` on CPU, ``'mask'``
elsewhere. A "grouped" strategy (members that chose the same op at an edge run as one batched
call) was measured on this CPU and not kept: batched per-member convolutions are grouped
convolutions, which XLA:CPU runs 4-10x slower, and multi-member units were no faster than
separate calls (a development measurement; not recorded in benchmarks/README.md).

The numerical core does no file I/O: the selected batch and the reference features come in as
arrays (see :mod:`jaxnas.data` for the batch selection and :mod:`jaxnas.nets` for the reference).
"""

from __future__ import annotations

import dataclasses
import math
import os
import threading
from functools import partial
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.sharding import PartitionSpec

from jaxnas import parallel as _par
from jaxnas.estimators import cka as _cka
from jaxnas.nets import nb201 as _net
from jaxnas.nets import ops as _ops
from jaxnas.spaces import nb201 as _space

STRATEGIES = ("composed", "mask")
#: XLA:CPU options for every program here: without the new fusion emitters these programs
#: compile about 2x faster with the same run time (a development measurement, not recorded).
CPU_COMPILER_OPTIONS = {"xla_cpu_use_fusion_emitters": False}


class _jit:
    """``jax.jit`` that adds :data:`CPU_COMPILER_OPTIONS` when the backend is the CPU (decided
    at the first call, so importing this module does not initialise a backend)."""

    def __init__(self, fn=None, **kwargs):
        self._fn, self._kw = fn, kwargs
        self._jitted: dict = {}

    def __call__(self, *args, **kwargs):
        if self._fn is None:  # used as @_jit(...) with options
            return _jit(args[0], **self._kw)
        # inside an outer jit, compiler options belong to the top-level program only
        nested = any(isinstance(a, jax.core.Tracer) for a in jax.tree_util.tree_leaves((args, kwargs)))
        cpu = not nested and jax.default_backend() == "cpu"
        fn = self._jitted.get(cpu)
        if fn is None:
            opts = CPU_COMPILER_OPTIONS if cpu else None
            fn = self._jitted[cpu] = jax.jit(self._fn, compiler_options=opts, **self._kw)
        return fn(*args, **kwargs)


_NONE, _SKIP, _C1, _C3, _POOL = range(5)  # NB201 op codes (jaxnas.spaces.nb201.OPS order)


def worst_score(num_classes: int = 10, beta: float = 0.8, n_stages: int = 3) -> float:
    """The finite worst score given to disconnected cells: a network with no information
    (CKA 0 at every stage, uniform logits)."""
    return beta * n_stages + (1.0 - beta) * math.log(num_classes)


@dataclasses.dataclass(frozen=True)
class RMIConfig:
    """Static choices of the RMI estimator (METHODS.md 5.1 defaults).

    Attributes:
        C, N: TinyNetwork width and cells per stage (paper: 16, 5).
        num_classes: logits of the candidate head.
        observe: forward index whose loss is the score (paper: 150).
        lr, momentum, weight_decay: PyTorch-style SGD (paper: 0.1, 0.9, 5e-4).
        beta: weight of the CKA term (paper: 0.8; CE weight is 1 - beta).
        debiased: use the debiased (unbiased-HSIC) CKA instead of the biased one.
        affine: affine BatchNorm in the cells (RMI-NAS trains ``InferCell(affine=True)``).
        dtype: ``'float32'`` (the estimator); ``'float64'`` only to verify the arithmetic
            against a float64 reference (needs ``jax.enable_x64``).
    """

    C: int = 16
    N: int = 5
    num_classes: int = 10
    observe: int = 150
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    beta: float = 0.8
    debiased: bool = False
    affine: bool = True
    dtype: str = "float32"

    def __post_init__(self):
        for name in ("C", "N", "num_classes"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"RMI {name} must be a positive integer, got {getattr(self, name)!r}")
        if int(self.observe) < 0:
            raise ValueError(f"RMI observe step must be >= 0, got {self.observe!r}")
        if not 0.0 <= float(self.beta) <= 1.0:
            raise ValueError(f"RMI beta must be in [0, 1], got {self.beta!r}")
        if self.dtype not in ("float32", "float64"):
            raise ValueError(f"RMI dtype must be 'float32' or 'float64', got {self.dtype!r}")
        if self.dtype == "float64" and not jax.config.jax_enable_x64:
            raise ValueError("RMI dtype 'float64' needs 64-bit JAX (use `with jax.enable_x64(True):`)")

    def hparams(self) -> dict:
        """The dynamic hyper-parameters as scalars (changing them never recompiles)."""
        dt = jnp.dtype(self.dtype)
        return {
            "lr": jnp.asarray(self.lr, dt),
            "momentum": jnp.asarray(self.momentum, dt),
            "wd": jnp.asarray(self.weight_decay, dt),
            "beta": jnp.asarray(self.beta, dt),
        }


# ============================================================================ loss


def teacher_grams(features: Sequence, debiased: bool = False, dtype=jnp.float32):
    """Centred Gram matrices of the 3 reference features and their norms.

    Args:
        features: 3 arrays (B, ...) -- the reference's stage outputs on the selected batch.
    Returns:
        (grams (3, B, B) float32, norms (3,) float32).
    """
    if len(features) != 3:
        raise ValueError(f"RMI needs 3 reference stage features, got {len(features)}")
    return _teacher_grams([jnp.asarray(f, dtype) for f in features], debiased)


@_jit(static_argnames=("debiased",))
def _teacher_grams(features, debiased):
    grams = jnp.stack([_cka.centred_gram(f, debiased) for f in features])
    return grams, jnp.sqrt(jnp.sum(grams * grams, axis=(1, 2)))


def rmi_loss(feats, logits, y, tgrams, tnorms, beta, debiased: bool = False):
    """METHODS.md 5.1 loss: ``beta * sum_i (1 - CKA_i) + (1 - beta) * CE``. Scalar float32."""
    sims = [
        _cka.cka_from_centred(_cka.centred_gram(f, debiased), tgrams[i], tnorms[i])
        for i, f in enumerate(feats)
    ]
    ce = -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits), y[:, None], axis=1))
    return beta * (len(feats) - sum(sims)) + (1.0 - beta) * ce


def _sgd(p, m, g, hp):
    """PyTorch SGD (dampening 0, no Nesterov): d = g + wd p; m = mu m + d; p -= lr m.
    With m initialised to 0 this equals PyTorch's first-step ``buf = d``."""

    def one(p_, m_, g_):
        d = g_ + hp["wd"] * p_
        m2 = hp["momentum"] * m_ + d
        return p_ - hp["lr"] * m2, m2

    pairs = jax.tree_util.tree_map(one, p, m, g)
    is_pair = lambda t: isinstance(t, tuple)
    return (
        jax.tree_util.tree_map(lambda t: t[0], pairs, is_leaf=is_pair),
        jax.tree_util.tree_map(lambda t: t[1], pairs, is_leaf=is_pair),
    )


# ============================================================================ 'mask' strategy
#
# A functional MixedTinyNetwork: every edge computes every op and mixes them with the one-hot
# genome; the N cells of a stage are a lax.scan over stacked parameters (a small program that
# compiles quickly); the training loop is a lax.scan over steps; the population is vmapped
# (accelerators) or lax.map-ped (CPU, where batched convolutions are slow).


def _stack_cells(params: dict, N: int) -> dict:
    """Mixed params -> {'stem', 'stages': [3 stacked cell dicts], 'reduce': [2], 'head'}."""
    kinds, _ = _net.stage_layout(N)
    cells = [params[f"cells_{i}"] for i in range(len(kinds))]
    stages, reduces, cur = [], [], []
    for kind, c in zip(kinds, cells):
        if kind == "reduce":
            stages.append(cur)
            reduces.append(c)
            cur = []
        else:
            cur.append(c)
    stages.append(cur)
    stack = lambda cs: jax.tree_util.tree_map(lambda *a: jnp.stack(a), *cs)
    return {
        "stem": {"kernel": params["stem_kernel"], **params["stem_bn"]},
        "stages": [stack(cs) for cs in stages],
        "reduce": reduces,
        "head": {
            "lastact": params["lastact"],
            "classifier_kernel": params["classifier_kernel"],
            "classifier_bias": params["classifier_bias"],
        },
    }


def _mask_cell(pcell, x, w, ls=False):
    nodes = [x]
    for j in range(1, 4):
        acc = jnp.zeros_like(x)
        for e, (to, frm) in enumerate(_space.EDGES):
            if to != j:
                continue
            src = nodes[frm]
            pe = pcell[f"edge_{e}"]
            acc = acc + w[e, _SKIP] * src
            acc = acc + w[e, _C1] * _rcb_forward(pe["nor_conv_1x1"], src, loopsafe=ls)[0]
            acc = acc + w[e, _C3] * _rcb_forward(pe["nor_conv_3x3"], src, loopsafe=ls)[0]
            acc = acc + w[e, _POOL] * _ops.avg_pool_3x3(src)
        nodes.append(acc)
    return nodes[3]


def _mask_forward(p, w, x, ls=False):
    h = _rcb_forward(p["stem"], x, relu=False, loopsafe=ls)[0]
    feats = []
    for s in range(3):
        h, _ = lax.scan(lambda h_, pc: (_mask_cell(pc, h_, w, ls), None), h, p["stages"][s])
        if s < 2:
            feats.append(h)
            h = _reduce_forward(p["reduce"][s], h, loopsafe=ls)[0]
    return h, feats


def _mask_loss(p, w, x, y, tg, tn, hp, debiased, ls):
    h, (f1, f2) = _mask_forward(p, w, x, ls)
    return _head_loss(p["head"], h, f1, f2, y, tg, tn, hp["beta"], debiased)


def _mask_member(p, w, x, y, tg, tn, hp, length, debiased, ls):
    """Train one member; returns its losses of forwards 0..length, shape (length+1,).

    The scan runs ``length + 1`` value-and-grad steps and discards the last update, so the
    program holds one forward/backward only (faster to compile than a separate final forward).
    """
    vg = jax.value_and_grad(_mask_loss)
    mom = jax.tree_util.tree_map(jnp.zeros_like, p)

    def step(carry, _):
        p_, m_ = carry
        loss, g = vg(p_, w, x, y, tg, tn, hp, debiased, ls)
        return _sgd(p_, m_, g, hp), loss

    _, losses = lax.scan(step, (p, mom), None, length=length + 1)
    return losses


def _mask_local(params, weights, x, y, tg, tn, hp, length, debiased, member_map, ls):
    fn = lambda pw: _mask_member(pw[0], pw[1], x, y, tg, tn, hp, length, debiased, ls)
    if member_map == "vmap":
        return jax.vmap(fn)((params, weights))
    return lax.map(fn, (params, weights))


@_jit(static_argnames=("length", "debiased", "member_map", "mesh", "loopsafe"))
def _mask_population(params, weights, x, y, tg, tn, hp, length, debiased, member_map="vmap", mesh=None,
                     loopsafe=False):
    fn = partial(_mask_local, length=length, debiased=debiased, member_map=member_map, ls=loopsafe)
    if mesh is None:
        return fn(params, weights, x, y, tg, tn, hp)
    # population sharded over 'pop'; batch, teacher and hyper-parameters replicated
    pop, rep = PartitionSpec(_par.AXIS), PartitionSpec()
    return jax.shard_map(
        fn, mesh=mesh, in_specs=(pop, pop, rep, rep, rep, rep, rep), out_specs=pop
    )(params, weights, x, y, tg, tn, hp)


# ============================================================================ 'composed' units
#
# Each unit is a jitted function of arrays and small param dicts; shapes fix the compilation,
# architectures never do. The forward of a ReLU-conv-BN saves (z, mean, rstd) -- z is the conv
# output it computes anyway, so nothing extra is written; its backward applies
# the BatchNorm and conv VJPs and the SGD update of that op's parameters in the same call.

_AX = (0, 1, 2)


def _conv(h, kernel, stride=1, loopsafe=False):
    if loopsafe:  # gradients without XLA:CPU's slow in-loop conv VJPs (jaxnas.nets.ops)
        if kernel.ndim == 4:
            return _ops.conv3x3_loopsafe(h, kernel, stride)
        return _ops.conv1x1_loopsafe(h, kernel)
    return _ops.conv3x3(h, kernel, stride) if kernel.ndim == 4 else _ops.conv1x1(h, kernel)


def _rcb_forward(p, x, stride=1, relu=True, loopsafe=False):
    h = jax.nn.relu(x) if relu else x
    z = _conv(h, p["kernel"], stride, loopsafe)
    if "conv_bias" in p:
        z = z + p["conv_bias"]
    mean, var = _ops.batch_norm_stats(z)
    rstd = lax.rsqrt(var + _ops.BN_EPS)
    xhat = (z - mean) * rstd
    y = xhat * p["scale"] + p["bias"] if "scale" in p else xhat
    return y, (z, mean, rstd)


def _rcb_grads(p, x, res, dy, stride=1, relu=True, need_dx=True):
    """Gradients of a ReLU-conv-BN w.r.t. its params and (optionally) its input; ``res`` is
    what :func:`_rcb_forward` saved."""
    z, mean, rstd = res
    xhat = (z - mean) * rstd
    g = {}
    n = dy.size // dy.shape[-1]
    s1 = jnp.sum(dy, _AX)  # two reductions serve both the BN affine grads and dz
    s2 = jnp.sum(dy * xhat, _AX)
    gain = rstd * p["scale"] if "scale" in p else rstd
    if "scale" in p:
        g["scale"], g["bias"] = s2, s1
    dz = gain * (dy - s1 / n - xhat * (s2 / n))
    if "conv_bias" in p:
        g["conv_bias"] = jnp.sum(dz, _AX)
    h = jax.nn.relu(x) if relu else x
    if need_dx:
        _, vjp = jax.vjp(lambda h_, k_: _conv(h_, k_, stride), h, p["kernel"])
        dh, g["kernel"] = vjp(dz)
        dx = jnp.where(x > 0, dh, 0.0) if relu else dh
        return g, dx
    _, vjp = jax.vjp(lambda k_: _conv(h, k_, stride), p["kernel"])
    (g["kernel"],) = vjp(dz)
    return g, None


@_jit
def _u_rcb_fwd(p, x, acc):
    y, res = _rcb_forward(p, x)
    return (y if acc is None else acc + y), res


@_jit(donate_argnums=(0, 1))
def _u_rcb_bwd(p, m, x, res, dy, dxacc, hp):
    g, dx = _rcb_grads(p, x, res, dy)
    p, m = _sgd(p, m, g, hp)
    return (dx if dxacc is None else dxacc + dx), p, m


@_jit
def _u_pool_fwd(x, acc):
    y = _ops.avg_pool_3x3(x)
    return y if acc is None else acc + y


@_jit
def _u_pool_bwd(dy, dxacc):
    dx = _ops.avg_pool_3x3_transpose(dy)
    return dx if dxacc is None else dxacc + dx


@_jit
def _u_add(a, b):
    return a + b


@_jit
def _u_stem_fwd(p, x):
    return _rcb_forward(p, x, relu=False)


@_jit(donate_argnums=(0, 1))
def _u_stem_bwd(p, m, x, res, dy, hp):
    g, _ = _rcb_grads(p, x, res, dy, relu=False, need_dx=False)
    return _sgd(p, m, g, hp)


def _reduce_forward(p, x, loopsafe=False):
    a, ra = _rcb_forward(p["conv_a"], x, stride=2, loopsafe=loopsafe)
    b, rb = _rcb_forward(p["conv_b"], a, loopsafe=loopsafe)
    conv1 = _ops.conv1x1_loopsafe if loopsafe else _ops.conv1x1
    out = conv1(_ops.avg_pool_2x2(x), p["shortcut"]) + b
    return out, (a, ra, rb)


@_jit
def _u_reduce_fwd(p, x):
    return _reduce_forward(p, x)


@_jit(donate_argnums=(0, 1))
def _u_reduce_bwd(p, m, x, res, dy, hp):
    a, ra, rb = res
    gb, da = _rcb_grads(p["conv_b"], a, rb, dy)
    ga, dx = _rcb_grads(p["conv_a"], x, ra, da, stride=2)
    pooled, vjp = jax.vjp(lambda x_, w_: _ops.conv1x1(_ops.avg_pool_2x2(x_), w_), x, p["shortcut"])
    dxs, gs = vjp(dy)
    g = {"conv_a": ga, "conv_b": gb, "shortcut": gs}
    p, m = _sgd(p, m, g, hp)
    return dx + dxs, p, m


def _head_loss(p, h, f1, f2, y, tg, tn, beta, debiased):
    f3 = jax.nn.relu(_ops.batch_norm(h, p["lastact"]["scale"], p["lastact"]["bias"]))
    logits = jnp.mean(f3, axis=(1, 2)) @ p["classifier_kernel"] + p["classifier_bias"]
    return rmi_loss((f1, f2, f3), logits, y, tg, tn, beta, debiased)


@_jit(static_argnames=("debiased",), donate_argnums=(0, 1))
def _u_head_step(p, m, h, f1, f2, y, tg, tn, hp, debiased=False):
    loss, (gp, dh, df1, df2) = jax.value_and_grad(_head_loss, argnums=(0, 1, 2, 3))(
        p, h, f1, f2, y, tg, tn, hp["beta"], debiased
    )
    p, m = _sgd(p, m, gp, hp)
    return loss, dh, df1, df2, p, m


@_jit(static_argnames=("debiased",))
def _u_head_loss(p, h, f1, f2, y, tg, tn, hp, debiased=False):
    return _head_loss(p, h, f1, f2, y, tg, tn, hp["beta"], debiased)


def _zeros_like(a):
    """Zeros placed from the host: no compilation (an eager ``jnp.zeros_like`` compiles)."""
    return jax.device_put(np.zeros(a.shape, a.dtype))


class _ComposedMember:
    """One candidate trained by composing the op units from Python (only its chosen ops)."""

    def __init__(self, cfg: RMIConfig, arch: tuple[int, ...], params: dict):
        self.cfg = cfg
        self.arch = arch
        kinds, (self.f1, self.f2) = _net.stage_layout(cfg.N)
        self.kinds = kinds
        self.p = {"stem": {"kernel": params["stem_kernel"], **params["stem_bn"]}}
        self.p["head"] = {
            "lastact": params["lastact"],
            "classifier_kernel": params["classifier_kernel"],
            "classifier_bias": params["classifier_bias"],
        }
        for i, kind in enumerate(kinds):
            cell = params.get(f"cells_{i}", {})
            if kind == "reduce":
                self.p[i] = cell
                continue
            for e in range(_space.NUM_EDGES):
                edge = cell.get(f"edge_{e}")
                if edge:
                    (self.p[(i, e)],) = edge.values()
        self.m = {k: jax.tree_util.tree_map(_zeros_like, v) for k, v in self.p.items()}

    # -- forward of one cell: returns output and the saved tensors
    def _cell_fwd(self, i, x):
        nodes = [x]
        saved = {}
        for j in range(1, 4):
            acc = None
            for e, (to, frm) in enumerate(_space.EDGES):
                if to != j:
                    continue
                op = self.arch[e]
                src = nodes[frm]
                if op == _NONE:
                    continue
                if op in (_C1, _C3):
                    if src is None:
                        src = _zeros_like(x)
                        nodes[frm] = src
                    acc, saved[e] = _u_rcb_fwd(self.p[(i, e)], src, acc)
                elif src is None:
                    continue
                elif op == _SKIP:
                    acc = src if acc is None else _u_add(acc, src)
                else:
                    acc = _u_pool_fwd(src, acc)
            nodes.append(acc)
        out = nodes[3] if nodes[3] is not None else _zeros_like(x)
        return out, (nodes, saved)

    def _cell_bwd(self, i, dout, state, hp):
        nodes, saved = state
        d = [None, None, None, dout]
        for j in (3, 2, 1):
            dy = d[j]
            if dy is None:
                continue
            for e in reversed(range(_space.NUM_EDGES)):
                to, frm = _space.EDGES[e]
                if to != j:
                    continue
                op = self.arch[e]
                if op == _NONE:
                    continue
                if op in (_C1, _C3):
                    d[frm], self.p[(i, e)], self.m[(i, e)] = _u_rcb_bwd(
                        self.p[(i, e)], self.m[(i, e)], nodes[frm], saved[e], dy, d[frm], hp
                    )
                elif nodes[frm] is None:
                    continue  # a zero node: nothing flows back through skip / pool
                elif op == _SKIP:
                    d[frm] = dy if d[frm] is None else _u_add(d[frm], dy)
                else:
                    d[frm] = _u_pool_bwd(dy, d[frm])
        return d[0]

    def forward(self, x):
        h, res = _u_stem_fwd(self.p["stem"], x)
        states = [res]
        feats = {}
        for i, kind in enumerate(self.kinds):
            if kind == "reduce":
                out, res = _u_reduce_fwd(self.p[i], h)
            else:
                out, res = self._cell_fwd(i, h)
            states.append((h, res))
            h = out
            if i in (self.f1, self.f2):
                feats[i] = h
        return h, feats, states

    def step(self, x, y, tg, tn, hp, train: bool):
        """One forward (+ backward and update if ``train``); returns the loss (device scalar)."""
        h, feats, states = self.forward(x)
        f1, f2 = feats[self.f1], feats[self.f2]
        if not train:
            return _u_head_loss(self.p["head"], h, f1, f2, y, tg, tn, hp, debiased=self.cfg.debiased)
        loss, dh, df1, df2, self.p["head"], self.m["head"] = _u_head_step(
            self.p["head"], self.m["head"], h, f1, f2, y, tg, tn, hp, debiased=self.cfg.debiased
        )
        for i in reversed(range(len(self.kinds))):
            if i == self.f2:
                dh = _u_add(dh, df2)
            elif i == self.f1:
                dh = _u_add(dh, df1)
            x_in, res = states[i + 1]
            if self.kinds[i] == "reduce":
                dh, self.p[i], self.m[i] = _u_reduce_bwd(self.p[i], self.m[i], x_in, res, dh, hp)
            else:
                dh = self._cell_bwd(i, dh, res, hp)
        self.p["stem"], self.m["stem"] = _u_stem_bwd(self.p["stem"], self.m["stem"], x, states[0], dh, hp)
        return loss


# ============================================================================ estimator


def _as_archs(archs) -> np.ndarray:
    a = np.asarray(archs)
    if a.ndim == 1:
        a = a[None]
    if a.ndim != 2 or a.shape[1] != _space.NUM_EDGES:
        raise ValueError(f"archs must be an int array of shape (P, 6), got shape {a.shape}")
    if not np.issubdtype(a.dtype, np.integer) or a.min() < 0 or a.max() >= _space.NUM_OPS:
        raise ValueError(f"archs must hold NB201 op codes 0..{_space.NUM_OPS - 1}, got {archs!r}")
    return a.astype(np.int32)


#: rough relative cost of one training step per op (measured unit times, 'composed')
_OP_COST = np.array([0.0, 0.1, 1.0, 2.5, 0.3])


def _cost(arch) -> float:
    """Estimated relative cost of training ``arch`` (for load balancing across workers)."""
    return 1.0 + float(np.sum(_OP_COST[np.asarray(arch)]))


def _key_data(key) -> np.ndarray:
    """A PRNG key as host uint32 data (picklable; raw ``PRNGKey`` arrays pass through)."""
    if jnp.issubdtype(jnp.asarray(key).dtype, jax.dtypes.prng_key):
        key = jax.random.key_data(key)
    return np.asarray(key)


def _member_keys(key, n: int) -> list:
    """Member p's key is ``fold_in(key, p)``: independent of the population size, and it
    compiles nothing new for a new size."""
    kd = jnp.asarray(_key_data(key))
    return [jax.random.fold_in(kd, p) for p in range(n)]


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


class RMIEstimator:
    """RMI fitness of NB201 architectures (METHODS.md 5.1); lower is better.

    Args:
        x: (B, H, W, 3) float32 -- the selected, normalised batch.
        y: (B,) int labels.
        teacher_features: the reference's 3 stage outputs on ``x``, each (B, ...).
        strategy: ``'auto'`` (default per backend), ``'composed'`` or ``'mask'``.
        warmup: compile every unit now (CPU strategies), so that no ``evaluate`` compiles.
        workers: processes that train members in parallel ('composed' only; default one per
            CPU core, the calling process included). Workers are ``python -c`` subprocesses
            that build their own copy of this estimator; ``close()`` (or ``with``) stops them.
        loopsafe: ``'mask'`` only: differentiate convolutions with
            :func:`jaxnas.nets.ops.conv3x3_loopsafe` (matmul and forward-conv VJPs) instead of
            XLA's convolution gradients, which XLA:CPU runs 8-60x slower inside the training
            loop. Default: on CPU only.
        **config: fields of :class:`RMIConfig` (C, N, num_classes, observe, lr, momentum,
            weight_decay, beta, debiased, affine, dtype).

    ``evaluate(key, archs)`` takes ``(P, 6)`` op codes and returns ``(P,)`` float32 scores.
    Member p is initialised from ``jax.random.fold_in(key, p)`` (:func:`nb201.init_params`),
    so every strategy gives the same scores up to float rounding.
    """

    def __init__(
        self, x, y, teacher_features, *, strategy: str = "auto", warmup: bool = True,
        workers: int | None = None, loopsafe: bool | None = None, **config,
    ):
        self._workers = None
        self.config = RMIConfig(**config)
        dt = jnp.dtype(self.config.dtype)
        x = jnp.asarray(x, dt)
        y = jnp.asarray(y, jnp.int32)
        if x.ndim != 4 or x.shape[-1] != 3:
            raise ValueError(f"x must be (B, H, W, 3) images, got shape {x.shape}")
        if y.shape != (x.shape[0],):
            raise ValueError(f"y must be ({x.shape[0]},) labels, got shape {y.shape}")
        y_host = np.asarray(y)
        if y_host.max() >= self.config.num_classes or y_host.min() < 0:
            raise ValueError(f"labels must be in 0..{self.config.num_classes - 1}")
        for i, f in enumerate(teacher_features):
            if np.shape(f)[0] != x.shape[0]:
                raise ValueError(f"teacher feature {i} has batch {np.shape(f)[0]}, expected {x.shape[0]}")
        self.x, self.y = x, y
        self.tgrams, self.tnorms = teacher_grams(teacher_features, self.config.debiased, dt)
        if strategy == "auto":
            strategy = default_strategy()
        if strategy not in STRATEGIES:
            raise ValueError(f"unknown RMI strategy {strategy!r}; choose from {STRATEGIES} or 'auto'")
        self.strategy = strategy
        if workers is None:
            auto = strategy == "composed" and self.config.dtype == "float32"
            workers = default_workers() if auto else 1
        if int(workers) < 1:
            raise ValueError(f"workers must be >= 1, got {workers!r}")
        if int(workers) != 1 and (strategy != "composed" or self.config.dtype != "float32"):
            raise ValueError(f"workers > 1 needs strategy 'composed' in float32, got {strategy!r}")
        self.workers = int(workers)
        self._init_args = (np.asarray(x), np.asarray(y), [np.asarray(f) for f in teacher_features])
        #: ``'mask'`` evaluates as one pure JAX function; ``'composed'`` is Python-driven
        self.traceable = strategy == "mask"
        self.loopsafe = jax.default_backend() == "cpu" if loopsafe is None else bool(loopsafe)
        self._hp = self.config.hparams()
        if warmup and strategy == "composed":
            if self.workers > 1:
                self._pool()  # start the workers now: they compile while this process does
            self.warmup()

    name = "rmi"
    oracle = False

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
        """Losses of forwards 0..``steps`` (default ``observe``) for each member: (P, steps+1)."""
        return np.asarray(self._run(key, archs, trajectory=True, steps=steps))

    def init_params(self, key, archs) -> list[dict]:
        """The initial TinyNetwork params of each member (single-path dicts)."""
        archs = _as_archs(archs)
        keys = _member_keys(key, archs.shape[0])
        c = self.config
        return [
            _net.init_params(k, c.C, c.N, c.num_classes, c.affine, tuple(a), jnp.dtype(c.dtype))
            for k, a in zip(keys, archs)
        ]

    def warmup(self) -> None:
        """Compile every unit the CPU strategies can call (all ops at all stage shapes)."""
        saved, saved_workers = self.config, self.workers
        self.config = dataclasses.replace(saved, observe=1)
        self.workers = 1
        try:
            # two architectures that together use every op at every stage, incl. zero nodes
            archs = np.array([[3, 2, 4, 1, 0, 3], [0, 4, 2, 3, 1, 2]], np.int32)
            self._run(jax.random.PRNGKey(0), archs, trajectory=True, steps=1)
            self.evaluate(jax.random.PRNGKey(0), archs)
        finally:
            self.config, self.workers = saved, saved_workers

    # -- internals
    def _run(self, key, archs, trajectory: bool, steps: int | None = None):
        archs = _as_archs(archs)
        cfg = self.config
        observe = cfg.observe if steps is None else int(steps)
        connected = np.asarray(_space.is_connected(archs))
        P = archs.shape[0]
        rdt = np.float64 if (trajectory and cfg.dtype == "float64") else np.float32
        out = np.full((P, observe + 1) if trajectory else (P,), worst_score(cfg.num_classes, cfg.beta), rdt)
        if self.strategy == "mask":
            res = np.asarray(self._mask_losses(key, jnp.asarray(archs), observe))
            out[connected] = res[connected] if trajectory else res[connected, -1]
        else:
            # most expensive first, so that the last member to finish is a cheap one
            todo = sorted((int(p) for p in np.flatnonzero(connected)), key=lambda p: -_cost(archs[p]))
            kd = _key_data(key)
            job = lambda p: self._member_losses(kd, p, archs[p], observe, trajectory)
            pool = self._pool() if len(todo) > 1 else None
            results = pool.map(job, todo, kd, archs, observe, trajectory) if pool else map(job, todo)
            for p, res in zip(todo, results):
                out[p] = res
        return np.where(np.isnan(out), np.inf, out).astype(rdt)

    def _member_losses(self, key_data, p: int, arch, observe: int, trajectory: bool):
        """Train member ``p`` ('composed'): its losses of forwards 0..observe, or the last."""
        cfg = self.config
        key = jax.random.fold_in(jnp.asarray(key_data), p)
        arch = tuple(int(a) for a in arch)
        params = _net.init_params(key, cfg.C, cfg.N, cfg.num_classes, cfg.affine, arch, jnp.dtype(cfg.dtype))
        member = _ComposedMember(cfg, arch, params)
        losses = []
        for t in range(observe + 1):
            loss = member.step(self.x, self.y, self.tgrams, self.tnorms, self._hp, t < observe)
            if trajectory or t == observe:
                losses.append(loss)
        return np.array([np.asarray(v) for v in losses]) if trajectory else np.asarray(losses[-1])

    def _pool(self):
        """The worker processes of the 'composed' strategy (None when ``workers == 1``)."""
        if self.workers <= 1:
            return None
        if self._workers is None or not self._workers.workers:
            self._workers = _WorkerPool(self, self.workers - 1)
        return self._workers

    def close(self) -> None:
        """Stop the worker processes (also done at exit)."""
        if getattr(self, "_workers", None) is not None:
            self._workers.close()
            self._workers = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    def _mask_losses(self, key, archs, observe: int):
        """Losses of forwards 0..observe of every member, (P, observe+1): pure JAX. The
        population is padded to a multiple of the device count and sharded over ``'pop'``."""
        cfg = self.config
        dt = jnp.dtype(cfg.dtype)
        n = archs.shape[0]

        def init(k):
            p = _net.init_params(k, cfg.C, cfg.N, cfg.num_classes, cfg.affine, None, dt)
            return _stack_cells(p, cfg.N)

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
        losses = _mask_population(
            params, weights, self.x, self.y, self.tgrams, self.tnorms, self._hp,
            length=observe, debiased=cfg.debiased, member_map=member_map, mesh=mesh,
            loopsafe=self.loopsafe,
        )
        return losses[:n]

    def _mask_scores(self, key, archs):
        cfg = self.config
        if not isinstance(archs, jax.core.Tracer):
            archs = _as_archs(archs)
        archs = jnp.asarray(archs, jnp.int32)
        last = self._mask_losses(key, archs, cfg.observe)[:, -1]
        worst = jnp.asarray(worst_score(cfg.num_classes, cfg.beta), last.dtype)
        last = jnp.where(_space.is_connected(archs), last, worst)
        return jnp.where(jnp.isnan(last), jnp.inf, last).astype(jnp.float32)


# ============================================================================ worker processes
#
# Workers are plain `python -c` subprocesses talking pickle over their stdin/stdout: unlike
# multiprocessing's spawn/forkserver they never re-import the user's __main__ (so scripts
# without an ``if __name__ == "__main__"`` guard are safe), and they exit when the parent's
# end of the pipe closes.

_WORKER_CMD = "from jaxnas.estimators.rmi import _worker_loop; _worker_loop()"


def _worker_loop() -> None:
    """Entry point of a worker subprocess: read the estimator's arguments, build it, then
    train the members it is sent, one at a time, until stdin closes."""
    import pickle
    import sys

    rd = sys.stdin.buffer
    wr = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    # keep the protocol stream clean: Python prints and C-level writes to fd 1 (XLA, absl)
    # both go to stderr; a stray byte in the pipe would corrupt the parent's pickle stream
    sys.stdout.flush()
    os.dup2(sys.stderr.fileno(), 1)
    sys.stdout = sys.stderr
    send = lambda obj: (pickle.dump(obj, wr, protocol=pickle.HIGHEST_PROTOCOL), wr.flush())
    try:
        init = pickle.load(rd)
        est = RMIEstimator(*init["args"], strategy="composed", workers=1, warmup=True, **init["config"])
        send(("ready", None))
    except BaseException as e:  # report, then exit
        send(("error", f"{type(e).__name__}: {e}"))
        return
    while True:
        try:
            msg = pickle.load(rd)
        except EOFError:
            return
        if msg is None:
            return
        try:
            send(("ok", est._member_losses(*msg)))
        except BaseException as e:
            send(("error", f"{type(e).__name__}: {e}"))


class _Worker:
    def __init__(self, init: dict):
        import pickle
        import subprocess
        import sys

        self._pickle = pickle
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _WORKER_CMD], stdin=subprocess.PIPE, stdout=subprocess.PIPE
        )
        self.send(init)

    def send(self, obj):
        self._pickle.dump(obj, self.proc.stdin, protocol=self._pickle.HIGHEST_PROTOCOL)
        self.proc.stdin.flush()

    def recv(self):
        try:
            return self._pickle.load(self.proc.stdout)
        except EOFError:
            return ("error", f"worker process exited (code {self.proc.poll()})")

    def close(self):
        try:
            self.send(None)
            self.proc.stdin.close()
        except (OSError, ValueError):
            pass
        try:
            self.proc.wait(timeout=10)
        except Exception:
            self.proc.kill()
            self.proc.wait()


class _WorkerPool:
    """Worker subprocesses that train members for the 'composed' strategy. The calling process
    trains members too; members are handed out one at a time, so uneven architectures balance
    themselves. Results do not depend on the number of workers: member p always starts from
    ``fold_in(key, p)`` and trains alone."""

    def __init__(self, est: RMIEstimator, n: int):
        init = {"args": est._init_args, "config": dataclasses.asdict(est.config)}
        self.workers = [_Worker(init) for _ in range(n)]
        self._ready = False

    def _wait_ready(self):
        if self._ready:
            return
        for w in self.workers:
            status, info = w.recv()
            if status != "ready":
                self.close()
                raise RuntimeError(f"an RMI worker process failed to start: {info}")
        self._ready = True

    def map(self, job, todo, key_data, archs, observe, trajectory):
        """Run ``job(p)`` for every p in ``todo`` here and in the workers; results in order."""
        self._wait_ready()
        queue = list(todo)
        lock = threading.Lock()
        results, errors = {}, []

        def take():
            with lock:
                return queue.pop(0) if queue and not errors else None

        def remote(w):
            while (p := take()) is not None:
                try:
                    w.send((key_data, p, archs[p], observe, trajectory))
                    status, val = w.recv()
                except (OSError, ValueError) as e:
                    status, val = "error", f"{type(e).__name__}: {e}"
                if status != "ok":
                    errors.append(val)
                    return
                results[p] = val

        threads = [threading.Thread(target=remote, args=(w,), daemon=True) for w in self.workers]
        for t in threads:
            t.start()
        try:
            while (p := take()) is not None:
                results[p] = job(p)
        finally:
            for t in threads:
                t.join()
        if errors:
            self.close()
            raise RuntimeError(f"an RMI worker process failed: {errors[0]}")
        return [results[p] for p in todo]

    def close(self):
        for w in self.workers:
            w.close()
        self.workers = []
