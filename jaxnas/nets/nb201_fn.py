"""The NAS-Bench-201 TinyNetwork forward, written once, as functions of parameter dicts.

It serves every NB201 forward of the project:

* the Flax modules :class:`jaxnas.nets.TinyNetwork` / :class:`~jaxnas.nets.MixedTinyNetwork`
  (a ``bn`` hook keeps PyTorch's running statistics, see :class:`BatchNormHook`);
* the RMI estimator's ``'mask'`` strategy (one-hot ``weights``, the cells of a stage in a
  ``lax.scan`` through the ``stage`` hook of :func:`tiny_forward`, loop-safe convolutions);
* the ``'composed'`` strategy's op units, which call :func:`relu_conv_bn`,
  :func:`reduce_block`, :func:`cell_dag` and :func:`head` one piece at a time and
  differentiate them with :func:`relu_conv_bn_grads` (the same op definitions).

Parameters have the paths of :func:`jaxnas.nets.nb201.init_params` (``stem_kernel``,
``stem_bn``, ``cells_<i>`` -> ``edge_<e>`` -> ``<op name>`` or ``conv_a``/``conv_b``/
``shortcut``, ``lastact``, ``classifier_kernel``/``classifier_bias``). A ReLU-conv-BN dict
holds ``kernel`` (HWIO 3x3 or ``(C_in, C_out)`` 1x1), ``conv_bias`` when the BN is not affine,
and BN ``scale``/``bias`` when it is. Macro structure and op semantics: :mod:`jaxnas.nets.nb201`
and :mod:`jaxnas.nets.ops`.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
from jax import lax

from jaxnas.nets import ops
from jaxnas.spaces import nb201 as space

OPS = space.OPS
NONE, SKIP, CONV1, CONV3, POOL = range(5)  # op codes, :data:`OPS` order


def stage_layout(N: int) -> tuple[list[str], tuple[int, int]]:
    """Kinds of the 3N+2 cells (``'cell'`` or ``'reduce'``) and the indices of the cells whose
    outputs are stage features 1 and 2: ``(N - 1, 2N)``."""
    kinds = ["cell"] * N + ["reduce"] + ["cell"] * N + ["reduce"] + ["cell"] * N
    return kinds, (N - 1, 2 * N)


def stage_cells(N: int, s: int) -> range:
    """Indices of the normal cells of stage ``s`` (0, 1, 2); the reduction block after stage
    ``s`` is cell ``(s + 1) * (N + 1) - 1``."""
    return range(s * (N + 1), s * (N + 1) + N)


# ---------------------------------------------------------------------------- BatchNorm


class BatchNormHook:
    """What a BatchNorm normalises with. Default (``running=None``): the batch's statistics
    (train mode, biased variance); each use is recorded in ``stats[path] = (mean, var, n)``
    when ``record``. With ``running`` (a nested dict of ``{'mean', 'var'}`` by parameter
    path): those statistics (eval mode)."""

    def __init__(self, running: dict | None = None, record: bool = False):
        self.running, self.record, self.stats = running, record, {}

    def __call__(self, z, path: tuple[str, ...]):
        if self.running is None:
            mean, var = ops.batch_norm_stats(z)
            if self.record:
                self.stats[path] = (mean, var, z.size // z.shape[-1])
            return mean, var
        node = self.running
        for name in path:
            node = node[name]
        return node["mean"], node["var"]


def batch_norm(z, p: dict, bn: BatchNormHook | None = None, path: tuple[str, ...] = ()):
    """BatchNorm (eps 1e-5) of ``z`` (..., C) with ``p``'s ``scale``/``bias`` if present.
    Returns ``(y, mean, var)``."""
    mean, var = ops.batch_norm_stats(z) if bn is None else bn(z, path)
    y = (z - mean) * lax.rsqrt(var + ops.BN_EPS)
    if "scale" in p:
        y = y * p["scale"] + p["bias"]
    return y, mean, var


# ---------------------------------------------------------------------------- ops


def conv(h, kernel, stride: int = 1, loopsafe: bool = False):
    """3x3 (pad 1) or 1x1 convolution by the kernel's rank; ``loopsafe`` picks the
    convolutions whose VJP is fast inside loops (:func:`jaxnas.nets.ops.conv3x3_loopsafe`)."""
    if kernel.ndim == 4:
        f = ops.conv3x3_loopsafe if loopsafe else ops.conv3x3
        return f(h, kernel, stride)
    if stride != 1:
        raise ValueError(f"1x1 ReLUConvBN supports stride 1 only, got {stride}")
    return (ops.conv1x1_loopsafe if loopsafe else ops.conv1x1)(h, kernel)


def relu_conv_bn(p: dict, x, stride: int = 1, relu: bool = True, loopsafe: bool = False,
                 bn: BatchNormHook | None = None, path: tuple[str, ...] = ()):
    """NB201 ``ReLUConvBN`` (``relu=False``: the stem's conv-BN).

    Args:
        p: ``kernel`` (+ ``conv_bias``) (+ ``scale``, ``bias``).
        x: (B, H, W, C_in).
    Returns:
        ``(y, (z, mean, var))``: y (B, H', W', C_out) and what :func:`relu_conv_bn_grads`
        needs (z the conv output, the BN statistics).
    """
    h = jax.nn.relu(x) if relu else x
    z = conv(h, p["kernel"], stride, loopsafe)
    if "conv_bias" in p:
        z = z + p["conv_bias"]
    y, mean, var = batch_norm(z, p, bn, path)
    return y, (z, mean, var)


_AX = (0, 1, 2)


def relu_conv_bn_grads(p: dict, x, res, dy, stride: int = 1, relu: bool = True,
                       need_dx: bool = True):
    """Gradients of :func:`relu_conv_bn` (train-mode BN) w.r.t. ``p`` and, if ``need_dx``,
    ``x``, from its saved ``res``: the BatchNorm VJP by hand (two reductions serve the affine
    gradients and dz), the convolution's by ``jax.vjp`` of :func:`conv`.

    Returns:
        ``(grads like p, dx or None)``.
    """
    z, mean, var = res
    rstd = lax.rsqrt(var + ops.BN_EPS)
    xhat = (z - mean) * rstd
    g = {}
    n = dy.size // dy.shape[-1]
    s1 = jnp.sum(dy, _AX)
    s2 = jnp.sum(dy * xhat, _AX)
    gain = rstd * p["scale"] if "scale" in p else rstd
    if "scale" in p:
        g["scale"], g["bias"] = s2, s1
    dz = gain * (dy - s1 / n - xhat * (s2 / n))
    if "conv_bias" in p:
        g["conv_bias"] = jnp.sum(dz, _AX)
    h = jax.nn.relu(x) if relu else x
    if not need_dx:
        (g["kernel"],) = jax.vjp(lambda k_: conv(h, k_, stride), p["kernel"])[1](dz)
        return g, None
    dh, g["kernel"] = jax.vjp(lambda h_, k_: conv(h_, k_, stride), h, p["kernel"])[1](dz)
    return g, (jnp.where(x > 0, dh, 0.0) if relu else dh)


def shortcut(x, w, loopsafe: bool = False):
    """The reduction block's shortcut: 2x2 average pooling, then a bias-free 1x1 conv."""
    return (ops.conv1x1_loopsafe if loopsafe else ops.conv1x1)(ops.avg_pool_2x2(x), w)


def reduce_block(p: dict, x, loopsafe: bool = False, bn: BatchNormHook | None = None,
                 path: tuple[str, ...] = ()):
    """NB201 ``ResNetBasicblock(C_in, C_out, stride=2)``: ReLUConvBN 3x3 stride 2, ReLUConvBN
    3x3, plus :func:`shortcut`. Returns ``(out, (a, res_a, res_b))``."""
    a, ra = relu_conv_bn(p["conv_a"], x, 2, loopsafe=loopsafe, bn=bn, path=path + ("conv_a",))
    b, rb = relu_conv_bn(p["conv_b"], a, loopsafe=loopsafe, bn=bn, path=path + ("conv_b",))
    return shortcut(x, p["shortcut"], loopsafe) + b, (a, ra, rb)


def edge(pe: dict, x, op: int | None = None, w=None, loopsafe: bool = False,
         bn: BatchNormHook | None = None, path: tuple[str, ...] = ()):
    """One cell edge: the single op ``op``, or (``w`` (5,) given) every op mixed linearly by
    ``w``. ``pe`` holds the edge's conv params by op name. Returns None for ``'none'``."""

    def run(code):
        if code == NONE:
            return None
        if code == SKIP:
            return x
        if code == POOL:
            return ops.avg_pool_3x3(x)
        name = OPS[code]
        return relu_conv_bn(pe[name], x, loopsafe=loopsafe, bn=bn, path=path + (name,))[0]

    if w is None:
        return run(op)
    out = None
    for code in range(len(OPS)):
        y = run(code)
        if y is not None:
            out = w[code] * y if out is None else out + w[code] * y
    return out


def cell_dag(x, edge_fn: Callable, empty: Callable = jnp.zeros_like) -> list:
    """The NB201 cell: node j is the sum over i < j of edge (i -> j) applied to node i, with
    the edges in :data:`jaxnas.spaces.nb201.EDGES` order.

    Args:
        edge_fn: ``edge_fn(e, nodes, frm, acc) -> acc``: add edge ``e``'s output (its source
            is ``nodes[frm]``) into the node's sum ``acc`` (None while nothing was added).
        empty: the value of a node that received nothing (default zeros).
    Returns:
        the 4 nodes; ``nodes[3]`` is the cell output.
    """
    nodes = [x]
    for j in range(1, 4):
        acc = None
        for e, (to, frm) in enumerate(space.EDGES):
            if to == j:
                acc = edge_fn(e, nodes, frm, acc)
        nodes.append(empty(x) if acc is None else acc)
    return nodes


def cell(pcell: dict, x, arch=None, weights=None, loopsafe: bool = False,
         bn: BatchNormHook | None = None, path: tuple[str, ...] = ()):
    """A normal cell of ``arch`` (6 op codes) or of every op mixed by ``weights`` (6, 5)."""

    def add(e, nodes, frm, acc):
        y = edge(pcell.get(f"edge_{e}", {}), nodes[frm], None if arch is None else arch[e],
                 None if weights is None else weights[e], loopsafe, bn, path + (f"edge_{e}",))
        return acc if y is None else (y if acc is None else acc + y)

    return cell_dag(x, add)[3]


def stem_params(params: dict) -> dict:
    """The stem's conv-BN dict ``{'kernel', 'scale', 'bias'}``."""
    return {"kernel": params["stem_kernel"], **params["stem_bn"]}


def head_params(params: dict) -> dict:
    """The head's params: ``lastact`` BN, ``classifier_kernel``/``classifier_bias``."""
    return {k: params[k] for k in ("lastact", "classifier_kernel", "classifier_bias")}


def head(p: dict, h, bn: BatchNormHook | None = None):
    """``lastact`` (BN + ReLU), global average pooling, linear. Returns ``(f3, logits)``."""
    f3 = jax.nn.relu(batch_norm(h, p["lastact"], bn, ("lastact",))[0])
    return f3, jnp.mean(f3, axis=(1, 2)) @ p["classifier_kernel"] + p["classifier_bias"]


def macro(x, N: int, stem_fn: Callable, stage_fn: Callable, reduce_fn: Callable):
    """The TinyNetwork macro structure: ``stem_fn(x)``, then stages 0, 1, 2
    (``stage_fn(s, h)``) with ``reduce_fn(i, h)`` (cell index i) after stages 0 and 1.
    Returns ``(h, [f1, f2])``: the last stage's output and stages 0 and 1's outputs."""
    h = stem_fn(x)
    feats = []
    for s in range(3):
        h = stage_fn(s, h)
        if s < 2:
            feats.append(h)
            h = reduce_fn(stage_cells(N, s)[-1] + 1, h)
    return h, feats


def tiny_forward(params: dict, x, N: int, arch=None, weights=None, loopsafe: bool = False,
                 bn: BatchNormHook | None = None, stage: Callable | None = None):
    """The TinyNetwork of ``arch`` (single path) or of ``weights`` (mixed ops).

    Args:
        params: :func:`jaxnas.nets.nb201.init_params` layout.
        x: (B, H, W, C_in). N: cells per stage.
        stage: ``stage(s, h) -> h`` runs the normal cells of stage ``s`` (default: one after
            the other from ``params['cells_<i>']``; the 'mask' strategy scans stacked cells).
    Returns:
        ``((f1, f2, f3), logits)`` as :class:`jaxnas.nets.TinyNetwork`.
    """

    def run_stage(s, h):
        for i in stage_cells(N, s):
            h = cell(params.get(f"cells_{i}", {}), h, arch, weights, loopsafe, bn, (f"cells_{i}",))
        return h

    def stem_fn(x_):
        return relu_conv_bn(stem_params(params), x_, relu=False, loopsafe=loopsafe, bn=bn,
                            path=("stem_bn",))[0]

    def reduce_fn(i, h):
        return reduce_block(params[f"cells_{i}"], h, loopsafe, bn, (f"cells_{i}",))[0]

    h, (f1, f2) = macro(x, N, stem_fn, stage or run_stage, reduce_fn)
    f3, logits = head(params, h, bn)
    return (f1, f2, f3), logits


def stack_stages(params: dict, N: int) -> dict:
    """``params`` with the normal cells of each stage stacked on a new leading axis, under
    ``'stages'`` (3 dicts), for a ``lax.scan`` over a stage's cells."""
    stages = [[params[f"cells_{i}"] for i in stage_cells(N, s)] for s in range(3)]
    normal = {f"cells_{i}" for s in range(3) for i in stage_cells(N, s)}
    out = {k: v for k, v in params.items() if k not in normal}
    out["stages"] = [jax.tree_util.tree_map(lambda *a: jnp.stack(a), *cs) for cs in stages]
    return out
