"""NAS-Bench-201 weight-sharing supernet (METHODS.md 0.2; issue 11).

The NB201 search TinyNetwork (AutoDL-Projects ``TinyNetworkDarts`` with ``SearchCell``, as
EvNAS, CMANAS and pEvoNAS use it): the macro structure of :mod:`jaxnas.nets.nb201` (stem,
3 stages of N cells, two ResNet reduction blocks, ``lastact``, linear head) whose every cell
edge is a *mixed op*

    y_e(x) = sum_o softmax(alpha_e)_o * o(x)                                  (DARTS Eq. 2)

with ``alpha`` an **input** of the forward pass, not a parameter: one set of weights serves a
whole population (vmap over ``alpha``). ``alpha`` has shape ``(6, 5)`` (edges in
:data:`jaxnas.spaces.nb201.EDGES` order, ops in :data:`jaxnas.spaces.nb201.OPS` order).

Options (METHODS.md 0.2):

* ``affine=False`` (default): the cell BatchNorms have no scale/shift and the convolutions get
  a bias, as the reference ``ReLUConvBN(bias=not affine)``. The stem, the reduction blocks and
  ``lastact`` are always affine and always keep running statistics (AutoDL builds them with the
  PyTorch defaults).
* ``track_running_stats``: EvNAS and CMANAS True, pEvoNAS S2 False. When False the cell
  BatchNorms have no running statistics and always normalise with batch statistics, also with
  ``train=False`` (PyTorch's behaviour for ``track_running_stats=False``).
* ``edge_ops``: the ops each edge carries, a static tuple of 6 tuples of op names (default:
  all 5 on every edge). pEvoNAS shrinks the ops per edge between stages; ``alpha`` keeps its
  ``(6, 5)`` shape and the softmax runs over the ops the edge carries only (the other entries
  are ignored). Parameters are keyed by op name,
  ``params['cells_<i>']['edge_<e>']['nor_conv_3x3']``, exactly as in
  :class:`jaxnas.nets.nb201.MixedTinyNetwork`, so a smaller supernet can inherit a larger one's
  weights by copying the matching keys (not implemented here).
* ``softmax=False`` mixes with ``alpha`` as given (e.g. a hard one-hot single path); the
  EvNAS decoding (:func:`jaxnas.spaces.nb201.discretize`) keeps the softmax.

BatchNorm is PyTorch's (eps 1e-5, momentum 0.1, biased batch variance to normalise, unbiased
variance in the running estimate). ``train=True`` normalises with batch statistics and
updates the running statistics when the ``batch_stats`` collection is mutable.
"""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxnas.nets import ops
from jaxnas.nets.nb201 import ResNetBlock, TorchBatchNorm, cell_channels, stage_layout
from jaxnas.spaces import nb201 as space

OPS = space.OPS
ALPHA_SHAPE = (space.NUM_EDGES, space.NUM_OPS)  # (6, 5)


def check_edge_ops(edge_ops, num_edges: int = space.NUM_EDGES, op_names=OPS) -> tuple:
    """Validate a per-edge op list; ``None`` means every op on every edge.

    Returns:
        a tuple of ``num_edges`` tuples of op names, each in ``op_names`` order.
    """
    if edge_ops is None:
        return tuple(tuple(op_names) for _ in range(num_edges))
    edge_ops = tuple(tuple(e) for e in edge_ops)
    if len(edge_ops) != num_edges:
        raise ValueError(f"edge_ops needs {num_edges} op lists, got {len(edge_ops)}")
    for e, names in enumerate(edge_ops):
        if not names:
            raise ValueError(f"edge {e} carries no op")
        bad = [n for n in names if n not in op_names]
        if bad:
            raise ValueError(f"unknown op {bad[0]!r} on edge {e}; ops are {', '.join(op_names)}")
    return tuple(tuple(n for n in op_names if n in names) for names in edge_ops)


def op_mask(edge_ops, op_names=OPS) -> np.ndarray:
    """bool ``(num_edges, num_ops)``: which ops each edge carries."""
    return np.array([[n in names for n in op_names] for names in edge_ops], dtype=bool)


def mixing_weights(alpha: jax.Array, mask: np.ndarray, softmax: bool = True) -> jax.Array:
    """Per-edge op weights: softmax of ``alpha`` over the ops an edge carries (0 elsewhere),
    or ``alpha * mask`` when ``softmax`` is False. ``alpha`` (..., E, O) -> same shape."""
    alpha = jnp.asarray(alpha, jnp.float32)
    if not softmax:
        return alpha * mask
    return jax.nn.softmax(jnp.where(mask, alpha, -jnp.inf), axis=-1) * mask


def torch_bn(mod: nn.Module, y, c: int, affine: bool, track: bool, train: bool,
             momentum: float = 0.1):
    """PyTorch ``BatchNorm2d`` with its variables directly in ``mod`` (``scale``/``bias`` when
    affine; ``batch_stats`` ``mean``/``var`` when ``track``). ``y`` (..., c)."""
    scale = mod.param("scale", nn.initializers.ones, (c,)) if affine else None
    bias = mod.param("bias", nn.initializers.zeros, (c,)) if affine else None
    if track:
        ra_mean = mod.variable("batch_stats", "mean", lambda: jnp.zeros((c,), jnp.float32))
        ra_var = mod.variable("batch_stats", "var", lambda: jnp.ones((c,), jnp.float32))
    if train or not track:
        mean, var = ops.batch_norm_stats(y)
        if track and train and not mod.is_initializing() and mod.is_mutable_collection("batch_stats"):
            n = y.size // c
            ra_mean.value = (1 - momentum) * ra_mean.value + momentum * mean
            ra_var.value = (1 - momentum) * ra_var.value + momentum * var * (n / max(n - 1, 1))
    else:
        mean, var = ra_mean.value, ra_var.value
    y = (y - mean) * jax.lax.rsqrt(var + ops.BN_EPS)
    if scale is not None:
        y = y * scale + bias
    return y


class SearchReLUConvBN(nn.Module):
    """``ReLUConvBN`` of a search cell: ReLU -> conv (1x1 or 3x3 pad 1, stride 1) -> BN.
    Parameters ``kernel`` (``(C, C)`` or HWIO), ``conv_bias`` when not affine, ``scale``/``bias``
    when affine; running statistics ``mean``/``var`` when ``track``."""

    c: int
    kernel_size: int = 3
    affine: bool = False
    track: bool = True
    loopsafe: bool = False

    @nn.compact
    def __call__(self, x, train: bool = True):
        k, c = self.kernel_size, self.c
        shape = (k, k, c, c) if k == 3 else (c, c)
        kernel = self.param("kernel", ops.torch_uniform_init(c * k * k), shape)
        h = jax.nn.relu(x)
        if self.loopsafe:  # inside the scan over cells: VJPs without in-loop conv gradients
            y = ops.conv3x3_loopsafe(h, kernel) if k == 3 else ops.conv1x1_loopsafe(h, kernel)
        else:
            y = ops.conv3x3(h, kernel) if k == 3 else ops.conv1x1(h, kernel)
        if not self.affine:
            y = y + self.param("conv_bias", ops.torch_uniform_init(c * k * k), (c,))
        return torch_bn(self, y, c, self.affine, self.track, train)


class MixedOp(nn.Module):
    """One edge ``edge_<e>``: ``sum_o w_o * o(x)`` over the ops it carries (``names``); the
    parametric ops are submodules named by op name. ``w`` (5,) weights in :data:`OPS` order."""

    c: int
    names: tuple
    affine: bool
    track: bool
    loopsafe: bool = False

    @nn.compact
    def __call__(self, x, w, train: bool = True):
        acc = None
        for name in self.names:
            if name == "none":
                continue  # contributes w * 0
            if name == "skip_connect":
                y = x
            elif name == "avg_pool_3x3":
                y = ops.avg_pool_3x3(x)
            else:
                k = 1 if name == "nor_conv_1x1" else 3
                y = SearchReLUConvBN(self.c, k, self.affine, self.track, self.loopsafe,
                                     name=name)(x, train)
            y = w[OPS.index(name)] * y
            acc = y if acc is None else acc + y
        return acc


class SearchCell(nn.Module):
    """One NB201 search cell: node j = sum over edges (j <- i) of the mixed op of node i.
    ``weights`` (6, 5) mixing weights."""

    c: int
    edge_ops: tuple
    affine: bool
    track: bool
    loopsafe: bool = False

    @nn.compact
    def __call__(self, x, weights, train: bool = True):
        nodes = [x]
        for j in range(1, 4):
            acc = None
            for e, (to, frm) in enumerate(space.EDGES):
                if to != j:
                    continue
                y = MixedOp(self.c, self.edge_ops[e], self.affine, self.track, self.loopsafe,
                            name=f"edge_{e}")(nodes[frm], weights[e], train)
                if y is not None:
                    acc = y if acc is None else acc + y
            nodes.append(jnp.zeros_like(x) if acc is None else acc)
        return nodes[-1]


class NB201Supernet(nn.Module):
    """NB201 weight-sharing supernet; ``alpha`` is an input.

    Attributes:
        C: stem width (paper 16). N: cells per stage (paper 5). num_classes: logits.
        affine: affine BatchNorm in the cells (METHODS.md 0.2: False).
        track_running_stats: running statistics in the cells (EvNAS/CMANAS True, pEvoNAS False).
        edge_ops: per-edge op names (static), ``None`` for all 5 ops on all 6 edges.
        softmax: mix with ``softmax(alpha)`` (default) or with ``alpha`` as given.
        scan_cells: run the N cells of a stage as one ``lax.scan`` over their stacked
            parameters (default), so XLA compiles one cell per stage instead of N; the
            parameter tree is unchanged (``cells_<i>`` per cell, stacked on the fly), the
            convolutions use the loop-safe VJPs (:mod:`jaxnas.nets.ops`). ``False``: the
            cells unrolled (the same numbers up to float32 rounding).

    ``__call__(x, alpha, train=True)``:
        x: (B, H, W, 3) float32 normalised images (H, W divisible by 4).
        alpha: (6, 5) float32 architecture parameters (raw; the softmax is applied here).
        Returns logits (B, num_classes) float32.
    """

    C: int = 16
    N: int = 5
    num_classes: int = 10
    affine: bool = False
    track_running_stats: bool = True
    edge_ops: Sequence[Sequence[str]] | None = None
    softmax: bool = True
    scan_cells: bool = True

    @property
    def alpha_shape(self) -> tuple[int, int]:
        return ALPHA_SHAPE

    def _cells(self, h, weights, train, first: int, last: int, c: int, edge_ops):
        """Search cells ``first..last-1`` (one stage): unrolled, or one scan (see scan_cells)."""
        names = [f"cells_{i}" for i in range(first, last)]
        if not self.scan_cells or self.is_initializing():
            for n in names:
                h = SearchCell(c, edge_ops, self.affine, self.track_running_stats, name=n)(
                    h, weights, train)
            return h
        cell = SearchCell(c, edge_ops, self.affine, self.track_running_stats, loopsafe=True,
                          parent=None)
        stack = lambda col: jax.tree.map(lambda *a: jnp.stack(a),
                                         *[self.variables[col][n] for n in names])
        params = stack("params")
        stats = stack("batch_stats") if self.track_running_stats else None
        update = (train and stats is not None and self.is_mutable_collection("batch_stats"))

        def body(x, ps):
            p, s = ps
            v = {"params": p} if s is None else {"params": p, "batch_stats": s}
            if update:
                y, new = cell.apply(v, x, weights, train, mutable=["batch_stats"])
                return y, new["batch_stats"]
            return cell.apply(v, x, weights, train), s

        h = ops.match_varying(h, weights)[0]  # under shard_map the cells vary with alpha
        h, stats = jax.lax.scan(body, h, (params, stats))
        if update:
            for k, n in enumerate(names):
                self.put_variable("batch_stats", n, jax.tree.map(lambda a: a[k], stats))
        return h

    @nn.compact
    def __call__(self, x, alpha, train: bool = True):
        edge_ops = check_edge_ops(self.edge_ops)
        if jnp.shape(alpha) != ALPHA_SHAPE:
            raise ValueError(f"NB201 alpha must have shape {ALPHA_SHAPE}, got {jnp.shape(alpha)}")
        weights = mixing_weights(alpha, op_mask(edge_ops), self.softmax)
        C, N = self.C, self.N
        kernel = self.param("stem_kernel", ops.torch_uniform_init(3 * 9), (3, 3, x.shape[-1], C))
        h = TorchBatchNorm(C, name="stem_bn")(ops.conv3x3(x, kernel), train)
        kinds, _ = stage_layout(N)
        chans = cell_channels(C, N)
        c_prev, i = C, 0
        while i < len(kinds):
            if kinds[i] == "reduce":
                h = ResNetBlock(c_prev, chans[i], name=f"cells_{i}")(h, train)
                c_prev, i = chans[i], i + 1
                continue
            j = i
            while j < len(kinds) and kinds[j] != "reduce":
                j += 1
            h = self._cells(h, weights, train, i, j, chans[i], edge_ops)
            c_prev, i = chans[i], j
        h = jax.nn.relu(TorchBatchNorm(c_prev, name="lastact")(h, train))
        pooled = jnp.mean(h, axis=(1, 2))
        init = ops.torch_uniform_init(c_prev)
        w = self.param("classifier_kernel", init, (c_prev, self.num_classes))
        b = self.param("classifier_bias", init, (self.num_classes,))
        return pooled @ w + b
