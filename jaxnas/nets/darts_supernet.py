"""DARTS search network ("one-shot model") with ``alpha`` as an input (METHODS.md 0.1).

The DARTS ``model_search.Network`` used by EvNAS, CMANAS and NEvoNAS for S1: a 3x3 stem
conv + BN to ``stem_multiplier * C`` channels, ``layers`` cells (8), the cells at
``layers // 3`` and ``2 * layers // 3`` are reduction cells (channels doubled, stride 2),
global average pooling and a linear classifier. A cell preprocesses its two inputs
(``ReLUConvBN`` 1x1, or ``FactorizedReduce`` after a reduction cell), computes 4 nodes, node
``n`` being the sum of the mixed ops of its ``n + 2`` incoming edges (edge ``e =
NODE_OFFSETS[n] + j`` from state ``j``, :mod:`jaxnas.spaces.darts`), and outputs the
concatenation of the 4 nodes (``4 C`` channels).

Mixed op: ``sum_o softmax(alpha_e)_o * o(x)`` over the 8 ops of :data:`OPS`, ``alpha``
``(2, 14, 8)`` (normal cell first); with the EvNAS decoding
(:func:`jaxnas.spaces.darts.discretize`) the one-hot alpha-hat goes through that softmax.
Search-time ops as in DARTS ``operations.py`` with ``affine=False``:

==================  ============================================================
``none``            zeros (subsampled by the stride)
``max_pool_3x3``    3x3 max pool (pad 1) then BN
``avg_pool_3x3``    3x3 average pool (pad 1, ``count_include_pad=False``) then BN
``skip_connect``    identity; ``FactorizedReduce`` in reduction edges
``sep_conv_kxk``    (ReLU, depthwise kxk, pointwise 1x1, BN) twice, the first with the stride
``dil_conv_kxk``    ReLU, depthwise kxk dilation 2, pointwise 1x1, BN
==================  ============================================================

Convolutions have no bias (DARTS). BatchNorm is PyTorch's (see :func:`jaxnas.nets.supernet.
torch_bn`); ``affine`` and ``track_running_stats`` apply to every BN inside the cells, the stem
BN is affine and tracks. ``edge_ops`` (static, per cell type and edge) restricts the ops of an
edge, as :class:`jaxnas.nets.supernet.NB201Supernet` does; parameters are keyed
``cells_<i>/edge_<e>/<op name>/...`` so a smaller network can inherit them by op name.

Pooling is re-expressed as max/sum over the 9 shifted (strided) slices of the padded input
(PERF_NOTES.md: XLA:CPU's ``reduce_window`` backward is slow).

Compile time (benchmarks/README.md, "DARTS search network compile time", 2026-12-07): the
train step's backward pass dominated, one copy of the 8-op bank per edge (14 per cell; one
reduction cell's train step took 441 s to compile on XLA:CPU). Since then each cell runs its
edges in 4 banks (:func:`edge_banks`, one ``vmap`` over stacked edges each; 64 s for that
cell), 1x1 convolutions are ``einsum`` (:func:`pointwise`) and :func:`depthwise` has a
hand-written VJP. Variables stay per edge and op name.
"""

from __future__ import annotations

from functools import partial
from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

from jaxnas.nets import ops
from jaxnas.nets.nb201 import TorchBatchNorm
from jaxnas.nets.supernet import check_edge_ops, mixing_weights, op_mask, torch_bn
from jaxnas.spaces import darts as space

OPS = space.OPS
ALPHA_SHAPE = space.ALPHA_SHAPE  # (2, 14, 8)
_DN = ("NHWC", "HWIO", "NHWC")


def _shifted(x, k: int, stride: int, dilation: int, pad: int, fill: float):
    """The ``k * k`` shifted (strided, dilated) views of ``x`` (B, H, W, C) padded by ``pad``
    with ``fill``; output size ``(H + 2 pad - dilation (k - 1) - 1) // stride + 1``."""
    b, h, w, c = x.shape
    xp = jnp.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)), constant_values=fill)
    ho = (h + 2 * pad - dilation * (k - 1) - 1) // stride + 1
    wo = (w + 2 * pad - dilation * (k - 1) - 1) // stride + 1
    for i in range(k):
        for j in range(k):
            r, s = i * dilation, j * dilation
            yield lax.slice(xp, (0, r, s, 0), (b, r + stride * (ho - 1) + 1,
                                               s + stride * (wo - 1) + 1, c), (1, stride, stride, 1))


def max_pool_3x3(x, stride: int = 1):
    """``nn.MaxPool2d(3, stride, padding=1)`` on (B, H, W, C)."""
    out = None
    for v in _shifted(x, 3, stride, 1, 1, -jnp.inf):
        out = v if out is None else jnp.maximum(out, v)
    return out


def avg_pool_3x3(x, stride: int = 1):
    """``nn.AvgPool2d(3, stride, padding=1, count_include_pad=False)`` on (B, H, W, C)."""
    if stride == 1:
        return ops.avg_pool_3x3(x)
    total = sum(_shifted(x, 3, stride, 1, 1, 0.0))
    ones = jnp.ones((1,) + x.shape[1:3] + (1,), x.dtype)
    count = sum(_shifted(ones, 3, stride, 1, 1, 0.0))
    return total / count


def pointwise(x, w):
    """1x1 convolution as ``einsum('...c,cd->...d')``; ``w`` (C_in, C_out). Under ``vmap`` over
    stacked edges it is one batched matmul, where a vmapped ``conv_general_dilated`` with a
    batched kernel becomes a grouped convolution (about 2x slower to run on XLA:CPU, measured)."""
    return jnp.einsum("...c,cd->...d", x, w)


def _depthwise_taps(x, w, stride: int, dilation: int, pad: int):
    k = w.shape[0]
    out = None
    for t, v in enumerate(_shifted(x, k, stride, dilation, pad, 0.0)):
        y = v * w[t // k, t % k, 0]
        out = y if out is None else out + y
    return out


@partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def depthwise(x, w, stride: int, dilation: int):
    """Depthwise conv, padding ``dilation * (k - 1) // 2``; ``w`` (k, k, 1, C).

    Written as the sum of the ``k * k`` shifted slices times per-channel weights: XLA:CPU
    compiles grouped ``conv_general_dilated`` (forward and backward) through its own loop
    emitter, which made a 3-cell search network take minutes to compile (measured). The VJP is
    hand-written from forward-style ops: ``dw`` the ``k * k`` tap reductions of
    ``slice_t(x) * g``, ``dx`` the same shifted-slice sum over ``g`` (dilated by the stride)
    with the flipped kernel. Autodiff of the slices gives the same values but transposes
    each slice into a padded full-size tensor; in the banked (vmapped) cells that ran 2x
    slower and compiled ~20 % slower on XLA:CPU (benchmarks/README.md).
    """
    return _depthwise_taps(x, w, stride, dilation, dilation * (w.shape[0] - 1) // 2)


def _depthwise_fwd(x, w, stride, dilation):
    return depthwise(x, w, stride, dilation), (x, w)


def _depthwise_bwd(stride, dilation, res, g):
    x, w = res
    k = w.shape[0]
    p = dilation * (k - 1) // 2
    h, wd = x.shape[-3], x.shape[-2]
    taps = [jnp.sum(v * g, axis=(0, 1, 2)) for v in _shifted(x, k, stride, dilation, p, 0.0)]
    dw = jnp.stack(taps).reshape(w.shape)
    if stride > 1:  # back to input resolution: g at every stride-th position of the padded frame
        zero = jnp.zeros((), g.dtype)
        g = lax.pad(g, zero, ((0, 0, 0), (0, 0, stride - 1), (0, 0, stride - 1), (0, 0, 0)))
    span = dilation * (k - 1)
    g = jnp.pad(g, ((0, 0), (0, h + 2 * p - span - g.shape[1]), (0, wd + 2 * p - span - g.shape[2]),
                    (0, 0)))
    full = _depthwise_taps(g, w[::-1, ::-1], 1, dilation, span)  # gradient w.r.t. the padded x
    return full[:, p:p + h, p:p + wd, :], dw


depthwise.defvjp(_depthwise_fwd, _depthwise_bwd)


class _DwPwBN(nn.Module):
    """ReLU -> depthwise kxk (stride, dilation) -> pointwise 1x1 -> BN (DARTS ``DilConv``;
    ``SepConv`` is two of them). Parameters ``dw`` (k, k, 1, C_in), ``pw`` (C_in, C_out)."""

    c_in: int
    c_out: int
    k: int
    stride: int
    dilation: int
    affine: bool
    track: bool

    @nn.compact
    def __call__(self, x, train: bool):
        dw = self.param("dw", ops.torch_uniform_init(self.k * self.k), (self.k, self.k, 1, self.c_in))
        pw = self.param("pw", ops.torch_uniform_init(self.c_in), (self.c_in, self.c_out))
        y = pointwise(depthwise(jax.nn.relu(x), dw, self.stride, self.dilation), pw)
        return torch_bn(self, y, self.c_out, self.affine, self.track, train)


class _SepConv(nn.Module):
    c: int
    k: int
    stride: int
    affine: bool
    track: bool

    @nn.compact
    def __call__(self, x, train: bool):
        a = _DwPwBN(self.c, self.c, self.k, self.stride, 1, self.affine, self.track, name="op1")
        b = _DwPwBN(self.c, self.c, self.k, 1, 1, self.affine, self.track, name="op2")
        return b(a(x, train), train)


class ReLUConv1x1BN(nn.Module):
    """DARTS ``ReLUConvBN`` with a 1x1 kernel (the cell preprocessing); ``kernel`` (C_in, C_out)."""

    c_in: int
    c_out: int
    affine: bool
    track: bool

    @nn.compact
    def __call__(self, x, train: bool):
        w = self.param("kernel", ops.torch_uniform_init(self.c_in), (self.c_in, self.c_out))
        return torch_bn(self, pointwise(jax.nn.relu(x), w), self.c_out, self.affine, self.track, train)


class FactorizedReduce(nn.Module):
    """DARTS ``FactorizedReduce``: ReLU, two 1x1 stride-2 convs (the second shifted by one
    pixel) each to ``C_out // 2`` channels, concatenated, BN. Even H and W."""

    c_in: int
    c_out: int
    affine: bool
    track: bool

    @nn.compact
    def __call__(self, x, train: bool):
        h = jax.nn.relu(x)
        w1 = self.param("kernel_1", ops.torch_uniform_init(self.c_in), (self.c_in, self.c_out // 2))
        w2 = self.param("kernel_2", ops.torch_uniform_init(self.c_in), (self.c_in, self.c_out // 2))
        y = jnp.concatenate([pointwise(h[:, ::2, ::2], w1), pointwise(h[:, 1::2, 1::2], w2)], -1)
        return torch_bn(self, y, self.c_out, self.affine, self.track, train)


class _PoolBN(nn.Module):
    c: int
    kind: str
    stride: int
    affine: bool
    track: bool

    @nn.compact
    def __call__(self, x, train: bool):
        y = max_pool_3x3(x, self.stride) if self.kind == "max" else avg_pool_3x3(x, self.stride)
        return torch_bn(self, y, self.c, self.affine, self.track, train)


class DartsMixedOp(nn.Module):
    """Edge ``edge_<e>``: ``sum_o w_o * o(x)`` over the ops in ``names``; ``w`` (8,)."""

    c: int
    stride: int
    names: tuple
    affine: bool
    track: bool

    @nn.compact
    def __call__(self, x, w, train: bool):
        s, a, t = self.stride, self.affine, self.track
        acc = None
        for name in self.names:
            if name == "none":
                continue
            if name == "skip_connect":
                y = x if s == 1 else FactorizedReduce(self.c, self.c, a, t, name=name)(x, train)
            elif name in ("max_pool_3x3", "avg_pool_3x3"):
                y = _PoolBN(self.c, name[:3], s, a, t, name=name)(x, train)
            elif name.startswith("sep_conv"):
                y = _SepConv(self.c, int(name[-1]), s, a, t, name=name)(x, train)
            else:  # dil_conv_3x3 / dil_conv_5x5
                y = _DwPwBN(self.c, self.c, int(name[-1]), s, 2, a, t, name=name)(x, train)
            y = w[OPS.index(name)] * y
            acc = y if acc is None else acc + y
        if acc is None:  # only 'none' on this edge
            acc = jnp.zeros((x.shape[0], x.shape[1] // s, x.shape[2] // s, x.shape[3]), x.dtype)
        return acc


def edge_banks(reduction: bool, edge_ops: tuple) -> list[list[int]]:
    """Edges computed together (one ``vmap`` over stacked inputs, weights and statistics): the
    edges leaving the same input state(s) with the same stride and op set. State ``j`` is
    known once node ``j - 2`` is, so the banks are: all edges from the cell inputs ``s0``/``s1``
    (8 edges; in a reduction cell exactly the stride-2 ones), then those from node 0 (3),
    node 1 (2) and node 2 (1). With ``edge_ops`` subsets a bank splits by op set."""
    banks = []
    for inputs in ((0, 1), (2,), (3,), (4,)):
        by_key: dict = {}
        for e in range(space.NUM_EDGES):
            j = int(space.EDGE_INPUT[e])
            if j in inputs:
                stride = 2 if reduction and j < 2 else 1
                by_key.setdefault((stride, edge_ops[e]), []).append(e)
        banks.extend(by_key.values())
    return banks


class DartsSearchCell(nn.Module):
    """One DARTS search cell; ``weights`` (14, 8) of its cell type. Output 4C channels.

    ``batch_edges`` (default): the edges of each bank of :func:`edge_banks` run as one
    ``vmap`` of the functional :class:`DartsMixedOp` over the stacked edges, so XLA compiles
    4 op banks per cell instead of 14 (the compile time of the train step's backward pass
    grows with the number of op instances; benchmarks/README.md, "DARTS search network compile
    time"). The variables stay per edge and per op name (``edge_<e>/<op name>/...``, each
    edge's tree one variable) and are stacked in the forward pass. ``batch_edges=False`` runs
    the edges one by one (same values up to float32 rounding; tests compare them).
    """

    c_pp: int
    c_p: int
    c: int
    reduction: bool
    reduction_prev: bool
    edge_ops: tuple
    affine: bool
    track: bool
    batch_edges: bool = True

    def _proto(self, e: int) -> DartsMixedOp:
        stride = 2 if self.reduction and int(space.EDGE_INPUT[e]) < 2 else 1
        return DartsMixedOp(self.c, stride, self.edge_ops[e], self.affine, self.track, parent=None)

    def _edge_vars(self, e: int, x, w):
        """Variables of edge ``e`` as ``(params, batch_stats)`` trees (``{}`` where none)."""
        proto = self._proto(e)
        abstract = jax.eval_shape(partial(proto.init, train=True), jax.random.PRNGKey(0), x, w)

        def init(rng, col):
            return proto.init(rng, jnp.zeros(x.shape, x.dtype), jnp.zeros_like(w), train=True)[col]

        p = self.param(f"edge_{e}", init, "params") if abstract.get("params") else {}
        s = {}
        if abstract.get("batch_stats"):
            s = self.variable("batch_stats", f"edge_{e}", init, jax.random.PRNGKey(0), "batch_stats")
        return p, s

    def _run_bank(self, bank, inputs, weights, train: bool):
        proto = self._proto(bank[0])
        vs = [self._edge_vars(e, inputs[0], weights[e]) for e in bank]
        update = (train and self.track and not self.is_initializing()
                  and self.is_mutable_collection("batch_stats"))

        def one(p, s, x, w):
            v = {"params": p, "batch_stats": s}
            if update and s:
                y, upd = proto.apply(v, x, w, train, mutable=["batch_stats"])
                return y, upd["batch_stats"]
            return proto.apply(v, x, w, train), s

        stats = [s.value if s else {} for _, s in vs]
        if len(bank) == 1:
            ys, new = one(vs[0][0], stats[0], inputs[0], weights[bank[0]])
            ys, new = ys[None], jax.tree_util.tree_map(lambda a: a[None], new)
        else:
            stack = partial(jax.tree_util.tree_map, lambda *a: jnp.stack(a))
            ys, new = jax.vmap(one)(stack(*[p for p, _ in vs]), stack(*stats), jnp.stack(inputs),
                                    weights[jnp.asarray(bank)])
        if update:
            for i, (_, s) in enumerate(vs):
                if s:
                    s.value = jax.tree_util.tree_map(lambda a, i=i: a[i], new)
        return ys

    @nn.compact
    def __call__(self, s0, s1, weights, train: bool):
        a, t = self.affine, self.track
        if self.reduction_prev:
            s0 = FactorizedReduce(self.c_pp, self.c, a, t, name="preprocess0")(s0, train)
        else:
            s0 = ReLUConv1x1BN(self.c_pp, self.c, a, t, name="preprocess0")(s0, train)
        s1 = ReLUConv1x1BN(self.c_p, self.c, a, t, name="preprocess1")(s1, train)
        states = [s0, s1]
        if not self.batch_edges:
            for n in range(space.NUM_NODES):
                acc = None
                for j, h in enumerate(states):
                    e = space.NODE_OFFSETS[n] + j
                    stride = 2 if self.reduction and j < 2 else 1
                    y = DartsMixedOp(self.c, stride, self.edge_ops[e], a, t, name=f"edge_{e}")(
                        h, weights[e], train)
                    acc = y if acc is None else acc + y
                states.append(acc)
            return jnp.concatenate(states[-4:], axis=-1)
        out = {}  # edge -> its mixed-op output
        for bank in edge_banks(self.reduction, self.edge_ops):
            inputs = [states[int(space.EDGE_INPUT[e])] for e in bank]
            ys = self._run_bank(bank, inputs, weights, train)
            out.update({e: ys[i] for i, e in enumerate(bank)})
            n = len(states) - 2  # the node whose incoming edges are now all computed
            if n < space.NUM_NODES and all(space.NODE_OFFSETS[n] + j in out for j in range(n + 2)):
                acc = None
                for j in range(n + 2):
                    y = out[space.NODE_OFFSETS[n] + j]
                    acc = y if acc is None else acc + y
                states.append(acc)
        return jnp.concatenate(states[-4:], axis=-1)


class DartsSearchNetwork(nn.Module):
    """DARTS search network (S1 supernet); ``alpha`` is an input.

    Attributes:
        C: initial channels (16). layers: cells (EvNAS/CMANAS 8, pEvoNAS 20).
        num_classes: logits. stem_multiplier: 3.
        affine / track_running_stats: cell BatchNorms (DARTS search: affine False, tracking).
        edge_ops: ``None`` (all 8 ops everywhere) or 2 (normal, reduce) x 14 tuples of op names.
        softmax: mix with ``softmax(alpha)`` (default) or ``alpha`` as given.
        batch_edges: run each cell's edges in banks (default; :class:`DartsSearchCell`).

    ``__call__(x, alpha, train=True)``: x (B, H, W, 3) float32 (H, W divisible by 4), alpha
    (2, 14, 8) float32 raw. Returns logits (B, num_classes).
    """

    C: int = 16
    layers: int = 8
    num_classes: int = 10
    stem_multiplier: int = 3
    affine: bool = False
    track_running_stats: bool = True
    edge_ops: Sequence | None = None
    softmax: bool = True
    batch_edges: bool = True

    @property
    def alpha_shape(self) -> tuple[int, int, int]:
        return ALPHA_SHAPE

    @nn.compact
    def __call__(self, x, alpha, train: bool = True):
        if jnp.shape(alpha) != ALPHA_SHAPE:
            raise ValueError(f"DARTS alpha must have shape {ALPHA_SHAPE}, got {jnp.shape(alpha)}")
        per_type = (None, None) if self.edge_ops is None else tuple(self.edge_ops)
        if len(per_type) != 2:
            raise ValueError("DARTS edge_ops needs one entry per cell type (normal, reduce)")
        edge_ops = [check_edge_ops(e, space.NUM_EDGES, OPS) for e in per_type]
        weights = jnp.stack([mixing_weights(alpha[t], op_mask(edge_ops[t], OPS), self.softmax)
                             for t in range(2)])
        c_curr = self.stem_multiplier * self.C
        kernel = self.param("stem_kernel", ops.torch_uniform_init(3 * 9), (3, 3, x.shape[-1], c_curr))
        s0 = s1 = TorchBatchNorm(c_curr, name="stem_bn")(ops.conv3x3(x, kernel), train)
        c_pp, c_p, c = c_curr, c_curr, self.C
        reduction_prev = False
        for i in range(self.layers):
            reduction = i in (self.layers // 3, 2 * self.layers // 3)
            if reduction:
                c *= 2
            t = int(reduction)
            cell = DartsSearchCell(c_pp, c_p, c, reduction, reduction_prev, edge_ops[t],
                                   self.affine, self.track_running_stats, self.batch_edges,
                                   name=f"cells_{i}")
            s0, s1 = s1, cell(s0, s1, weights[t], train)
            reduction_prev = reduction
            c_pp, c_p = c_p, 4 * c
        pooled = jnp.mean(s1, axis=(1, 2))
        init = ops.torch_uniform_init(c_p)
        w = self.param("classifier_kernel", init, (c_p, self.num_classes))
        b = self.param("classifier_bias", init, (self.num_classes,))
        return pooled @ w + b
