"""The ``'composed'`` strategy: op-level jitted units composed per member from Python.

Each unit is a jitted function of arrays and small param dicts; shapes fix the compilation,
architectures never do, and only a member's chosen ops run. The units are built from the
functional NB201 pieces of :mod:`jaxnas.nets.nb201_fn`: the forward of a ReLU-conv-BN
(:func:`~jaxnas.nets.nb201_fn.relu_conv_bn`) saves ``(z, mean, var)`` -- z is the conv output
it computes anyway -- and its backward unit applies
:func:`~jaxnas.nets.nb201_fn.relu_conv_bn_grads` and the SGD update of that op's parameters
in the same call. XLA's own convolution VJPs are used here: outside loops they are faster
than the loop-safe ones.

:class:`Composed` holds what every member trains on (batch, teacher Grams, hyper-parameters)
and trains one member at a time (:meth:`Composed.member_losses`). :func:`worker_init` and
:func:`worker_task` run it in :class:`jaxnas.workers.WorkerPool` processes.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxnas.config import RMISettings, parse
from jaxnas.estimators.rmi.loss import (
    hparams,
    jit_cpu,
    rmi_loss,
    sgd_init,
    sgd_update,
    teacher_grams,
)
from jaxnas.nets import nb201 as _net
from jaxnas.nets import nb201_fn as _fn
from jaxnas.nets import ops as _ops
from jaxnas.spaces import nb201 as _space

_NONE, _SKIP, _C1, _C3, _POOL = range(5)

# ---------------------------------------------------------------------------- units


@jit_cpu
def _u_rcb_fwd(p, x, acc):
    y, res = _fn.relu_conv_bn(p, x)
    return (y if acc is None else acc + y), res


@jit_cpu(donate_argnums=(0, 1))
def _u_rcb_bwd(p, s, x, res, dy, dxacc, hp):
    g, dx = _fn.relu_conv_bn_grads(p, x, res, dy)
    p, s = sgd_update(p, s, g, hp)
    return (dx if dxacc is None else dxacc + dx), p, s


@jit_cpu
def _u_pool_fwd(x, acc):
    y = _ops.avg_pool_3x3(x)
    return y if acc is None else acc + y


@jit_cpu
def _u_pool_bwd(dy, dxacc):
    dx = _ops.avg_pool_3x3_transpose(dy)
    return dx if dxacc is None else dxacc + dx


@jit_cpu
def _u_add(a, b):
    return a + b


@jit_cpu
def _u_stem_fwd(p, x):
    return _fn.relu_conv_bn(p, x, relu=False)


@jit_cpu(donate_argnums=(0, 1))
def _u_stem_bwd(p, s, x, res, dy, hp):
    g, _ = _fn.relu_conv_bn_grads(p, x, res, dy, relu=False, need_dx=False)
    return sgd_update(p, s, g, hp)


@jit_cpu
def _u_reduce_fwd(p, x):
    return _fn.reduce_block(p, x)


@jit_cpu(donate_argnums=(0, 1))
def _u_reduce_bwd(p, s, x, res, dy, hp):
    a, ra, rb = res
    gb, da = _fn.relu_conv_bn_grads(p["conv_b"], a, rb, dy)
    ga, dx = _fn.relu_conv_bn_grads(p["conv_a"], x, ra, da, stride=2)
    dxs, gs = jax.vjp(_fn.shortcut, x, p["shortcut"])[1](dy)
    p, s = sgd_update(p, s, {"conv_a": ga, "conv_b": gb, "shortcut": gs}, hp)
    return dx + dxs, p, s


def _head_loss(p, h, f1, f2, y, tg, tn, beta, debiased):
    f3, logits = _fn.head(p, h)
    return rmi_loss((f1, f2, f3), logits, y, tg, tn, beta, debiased)


@jit_cpu(static_argnames=("debiased",), donate_argnums=(0, 1))
def _u_head_step(p, s, h, f1, f2, y, tg, tn, hp, debiased=False):
    loss, (gp, dh, df1, df2) = jax.value_and_grad(_head_loss, argnums=(0, 1, 2, 3))(
        p, h, f1, f2, y, tg, tn, hp["beta"], debiased
    )
    p, s = sgd_update(p, s, gp, hp)
    return loss, dh, df1, df2, p, s


@jit_cpu(static_argnames=("debiased",))
def _u_head_loss(p, h, f1, f2, y, tg, tn, hp, debiased=False):
    return _head_loss(p, h, f1, f2, y, tg, tn, hp["beta"], debiased)


def _zeros_like(a):
    """Zeros placed from the host: no compilation (an eager ``jnp.zeros_like`` compiles)."""
    return jax.device_put(np.zeros(a.shape, a.dtype))


# ---------------------------------------------------------------------------- one member


class _Member:
    """One candidate trained by composing the op units from Python (only its chosen ops).
    ``p[k]``/``s[k]``: params and optimiser state of piece ``k`` (``'stem'``, ``'head'``, a
    reduction cell index ``i``, or ``(i, e)`` for the op on edge e of cell i)."""

    def __init__(self, N: int, arch: tuple[int, ...], params: dict):
        self.arch = arch
        self.N = N
        self.kinds, (self.f1, self.f2) = _fn.stage_layout(N)
        self.p = {"stem": _fn.stem_params(params), "head": _fn.head_params(params)}
        for i, kind in enumerate(self.kinds):
            cell = params.get(f"cells_{i}", {})
            if kind == "reduce":
                self.p[i] = cell
                continue
            for e in range(_space.NUM_EDGES):
                edge = cell.get(f"edge_{e}")
                if edge:
                    (self.p[(i, e)],) = edge.values()
        self.s = {k: sgd_init(v) for k, v in self.p.items()}

    def _cell_fwd(self, i, x):
        saved = {}

        def add(e, nodes, frm, acc):
            op, src = self.arch[e], nodes[frm]
            if op in (_C1, _C3):
                if src is None:  # a zero node into a conv: the BN still sees a (zero) input
                    src = nodes[frm] = _zeros_like(x)
                acc, saved[e] = _u_rcb_fwd(self.p[(i, e)], src, acc)
            elif op == _NONE or src is None:
                pass  # nothing flows out of a zero node through skip / pool
            elif op == _SKIP:
                acc = src if acc is None else _u_add(acc, src)
            else:
                acc = _u_pool_fwd(src, acc)
            return acc

        nodes = _fn.cell_dag(x, add, empty=lambda _: None)
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
                op = self.arch[e]
                if to != j or op == _NONE:
                    continue
                if op in (_C1, _C3):
                    d[frm], self.p[(i, e)], self.s[(i, e)] = _u_rcb_bwd(
                        self.p[(i, e)], self.s[(i, e)], nodes[frm], saved[e], dy, d[frm], hp
                    )
                elif nodes[frm] is None:
                    continue  # a zero node: nothing flows back through skip / pool
                elif op == _SKIP:
                    d[frm] = dy if d[frm] is None else _u_add(d[frm], dy)
                else:
                    d[frm] = _u_pool_bwd(dy, d[frm])
        return d[0]

    def forward(self, x):
        """``(h, {f1 index: f1, f2 index: f2}, saved states)``."""
        states = []

        def stem(x_):
            h, res = _u_stem_fwd(self.p["stem"], x_)
            states.append(res)
            return h

        def block(i, h, fwd):
            out, res = fwd(i, h)
            states.append((h, res))
            return out

        def stage(s, h):
            for i in _fn.stage_cells(self.N, s):
                h = block(i, h, self._cell_fwd)
            return h

        reduce = lambda i, h: block(i, h, lambda i_, h_: _u_reduce_fwd(self.p[i_], h_))
        h, (f1, f2) = _fn.macro(x, self.N, stem, stage, reduce)
        return h, {self.f1: f1, self.f2: f2}, states

    def step(self, x, y, tg, tn, hp, train: bool, debiased: bool):
        """One forward (+ backward and update if ``train``); returns the loss (device scalar)."""
        h, feats, states = self.forward(x)
        f1, f2 = feats[self.f1], feats[self.f2]
        if not train:
            return _u_head_loss(self.p["head"], h, f1, f2, y, tg, tn, hp, debiased=debiased)
        loss, dh, df1, df2, self.p["head"], self.s["head"] = _u_head_step(
            self.p["head"], self.s["head"], h, f1, f2, y, tg, tn, hp, debiased=debiased
        )
        for i in reversed(range(len(self.kinds))):
            if i == self.f2:
                dh = _u_add(dh, df2)
            elif i == self.f1:
                dh = _u_add(dh, df1)
            x_in, res = states[i + 1]
            if self.kinds[i] == "reduce":
                dh, self.p[i], self.s[i] = _u_reduce_bwd(self.p[i], self.s[i], x_in, res, dh, hp)
            else:
                dh = self._cell_bwd(i, dh, res, hp)
        self.p["stem"], self.s["stem"] = _u_stem_bwd(
            self.p["stem"], self.s["stem"], x, states[0], dh, hp)
        return loss


# ---------------------------------------------------------------------------- driver

#: two architectures that together use every op at every stage, zero nodes included
WARMUP_ARCHS = np.array([[3, 2, 4, 1, 0, 3], [0, 4, 2, 3, 1, 2]], np.int32)


class Composed:
    """What every member trains on, and the per-member driver.

    Args:
        x: (B, H, W, 3) the selected batch; y: (B,) int32 labels (device arrays, ``dtype``).
        tgrams, tnorms: :func:`jaxnas.estimators.rmi.loss.teacher_grams`.
        settings: :class:`jaxnas.config.RMISettings`. num_classes: logits.
    """

    def __init__(self, x, y, tgrams, tnorms, settings: RMISettings, num_classes: int):
        self.x, self.y, self.tgrams, self.tnorms = x, y, tgrams, tnorms
        self.settings, self.num_classes = settings, num_classes
        self.hp = hparams(settings, settings.dtype)

    def member_losses(self, key_data, p: int, arch, steps: int, trajectory: bool):
        """Train member ``p`` from ``init_params(fold_in(key, p))``: its losses of forwards
        0..steps (numpy (steps+1,)), or only the last (numpy scalar)."""
        s = self.settings
        key = jax.random.fold_in(jnp.asarray(key_data), p)
        arch = tuple(int(a) for a in arch)
        params = _net.init_params(key, s.C, s.N, self.num_classes, s.affine, arch,
                                  jnp.dtype(s.dtype))
        member = _Member(s.N, arch, params)
        losses = []
        for t in range(steps + 1):
            loss = member.step(self.x, self.y, self.tgrams, self.tnorms, self.hp, t < steps,
                               s.debiased)
            if trajectory or t == steps:
                losses.append(loss)
        return np.array([np.asarray(v) for v in losses]) if trajectory else np.asarray(losses[-1])

    def warmup(self) -> None:
        """Compile every unit (all ops at all stage shapes, zero nodes, both head units)."""
        kd = np.asarray(jax.random.key_data(jax.random.key(0)))
        for p, arch in enumerate(WARMUP_ARCHS):
            self.member_losses(kd, p, arch, 1, True)


def worker_init(x, y, teacher_features, settings: dict, num_classes: int) -> Composed:
    """A worker process's state: the same :class:`Composed` as the parent's, compiled."""
    s = parse(RMISettings, settings)
    dt = jnp.dtype(s.dtype)
    tg, tn = teacher_grams(teacher_features, s.debiased, dt)
    c = Composed(jnp.asarray(x, dt), jnp.asarray(y, jnp.int32), tg, tn, s, num_classes)
    c.warmup()
    return c


def worker_task(state: Composed, job: tuple):
    """Train one member in a worker: ``job`` = the arguments of :meth:`Composed.member_losses`."""
    return state.member_losses(*job)
