"""The NAS-Bench-201 TinyNetwork in Flax (Dong & Yang, ICLR 2020).

Macro structure (AutoDL-Projects ``cell_infers/tiny_network.py``, as used by RMI-NAS,
METHODS.md 0.2 and 5.1):

    stem: 3x3 conv (3 -> C, no bias) + BatchNorm
    stage 1: N cells at C channels, 32x32         cells_0 .. cells_{N-1}
    ResNetBasicblock(C -> 2C, stride 2)           cells_N
    stage 2: N cells at 2C channels, 16x16        cells_{N+1} .. cells_{2N}
    ResNetBasicblock(2C -> 4C, stride 2)          cells_{2N+1}
    stage 3: N cells at 4C channels, 8x8          cells_{2N+2} .. cells_{3N+1}
    lastact: BatchNorm + ReLU; global average pool; linear head

The network returns the three stage features used by the RMI estimator -- the output of
``cells_{N-1}``, the output of ``cells_{2N}`` and the ``lastact`` output (for N=5 these are
RMI-NAS's ``i == 4``, ``i == 10`` and ``lastact``) -- and the logits.

A cell has 4 nodes; node j is the sum over i < j of ``op_{ij}(node_i)``, with the 6 edges in
:data:`jaxnas.spaces.nb201.EDGES` order. Cell BatchNorms are affine by default, as in the
inference cells RMI-NAS trains (``InferCell(affine=True)``; the conv then has no bias). With
``affine=False`` (the search supernets of EvNAS/CMANAS) the BN has no parameters and the conv
gets a bias, as in the reference ``ReLUConvBN(bias=not affine)``. The stem, the reduction blocks
and ``lastact`` are always affine.

Parameter names are shared by :class:`TinyNetwork` (only the chosen ops have parameters, as in
PyTorch) and :class:`MixedTinyNetwork` (every parametric op on every edge): the same key gives
the same values for the ops both have, so a single-path network is a sub-dict of the mixed one.
Parameters of an edge op live at ``params['cells_<i>']['edge_<e>']['<op name>']``.

BatchNorm runs in train mode (batch statistics) when ``train=True``; the running statistics
(PyTorch momentum 0.1, unbiased variance) are kept in the ``batch_stats`` collection when it is
mutable and are used when ``train=False``.
"""

from __future__ import annotations

import zlib
from functools import partial
from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxnas.nets import ops
from jaxnas.spaces import nb201 as space

OPS = space.OPS
PARAM_OPS = ("nor_conv_1x1", "nor_conv_3x3")


def stage_layout(N: int) -> tuple[list[str], tuple[int, int]]:
    """Kinds of the 3N+2 cells (``'cell'`` or ``'reduce'``) and the indices of the cells whose
    outputs are stage features 1 and 2: ``(N - 1, 2N)``."""
    kinds = ["cell"] * N + ["reduce"] + ["cell"] * N + ["reduce"] + ["cell"] * N
    return kinds, (N - 1, 2 * N)


def cell_channels(C: int, N: int) -> list[int]:
    """Output channels of each of the 3N+2 cells."""
    return [C] * N + [2 * C] * (N + 1) + [4 * C] * (N + 1)


def check_arch(arch) -> tuple[int, ...]:
    """Validate one NB201 genome (6 op codes) and return it as a tuple of ints."""
    a = np.asarray(arch)
    if a.shape != (space.NUM_EDGES,) or not np.issubdtype(a.dtype, np.integer):
        raise ValueError(f"NB201 architecture must be 6 integer op codes, got {arch!r}")
    if a.min() < 0 or a.max() >= space.NUM_OPS:
        raise ValueError(f"NB201 op codes must be in 0..{space.NUM_OPS - 1}, got {arch!r}")
    return tuple(int(v) for v in a)


class TorchBatchNorm(nn.Module):
    """``nn.BatchNorm2d`` semantics on (..., C): eps 1e-5, momentum 0.1, biased batch variance
    for normalising, unbiased variance in the running estimate."""

    features: int
    affine: bool = True
    momentum: float = 0.1

    @nn.compact
    def __call__(self, x, train: bool = True):
        return _bn_fields(self, x, self.features, self.affine, train, self.momentum)


class ReLUConvBN(nn.Module):
    """NB201 ``ReLUConvBN`` (kernel 1 or 3, pad ``kernel // 2``). Parameters: ``kernel``
    (HWIO for 3x3, ``(C_in, C_out)`` for 1x1), ``conv_bias`` when not affine, then BN
    ``scale``/``bias`` when affine."""

    c_in: int
    c_out: int
    kernel_size: int = 3
    stride: int = 1
    affine: bool = True

    @nn.compact
    def __call__(self, x, train: bool = True):
        k = self.kernel_size
        fan_in = self.c_in * k * k
        shape = (k, k, self.c_in, self.c_out) if k == 3 else (self.c_in, self.c_out)
        kernel = self.param("kernel", ops.torch_uniform_init(fan_in), shape)
        h = jax.nn.relu(x)
        y = ops.conv3x3(h, kernel, self.stride) if k == 3 else ops.conv1x1(h, kernel)
        if not self.affine:
            y = y + self.param("conv_bias", ops.torch_uniform_init(fan_in), (self.c_out,))
        return _bn_fields(self, y, self.c_out, self.affine, train)


def _bn_fields(mod: nn.Module, y, c: int, affine: bool, train: bool, momentum: float = 0.1):
    """PyTorch BatchNorm whose variables sit directly in ``mod`` (flat param dicts): biased batch
    variance to normalise, unbiased variance in the running estimate, eps 1e-5."""
    ra_mean = mod.variable("batch_stats", "mean", lambda: jnp.zeros((c,), jnp.float32))
    ra_var = mod.variable("batch_stats", "var", lambda: jnp.ones((c,), jnp.float32))
    scale = mod.param("scale", nn.initializers.ones, (c,)) if affine else None
    bias = mod.param("bias", nn.initializers.zeros, (c,)) if affine else None
    if train:
        mean, var = ops.batch_norm_stats(y)
        if not mod.is_initializing() and mod.is_mutable_collection("batch_stats"):
            n = y.size // c
            ra_mean.value = (1 - momentum) * ra_mean.value + momentum * mean
            ra_var.value = (1 - momentum) * ra_var.value + momentum * var * (n / max(n - 1, 1))
    else:
        mean, var = ra_mean.value, ra_var.value
    y = (y - mean) * jax.lax.rsqrt(var + ops.BN_EPS)
    if scale is not None:
        y = y * scale + bias
    return y


class ResNetBlock(nn.Module):
    """NB201 ``ResNetBasicblock(C_in, C_out, stride=2, affine=True)``: ReLUConvBN 3x3 stride 2,
    ReLUConvBN 3x3, plus a shortcut of 2x2 average pooling and a bias-free 1x1 conv."""

    c_in: int
    c_out: int

    @nn.compact
    def __call__(self, x, train: bool = True):
        a = ReLUConvBN(self.c_in, self.c_out, 3, 2, True, name="conv_a")(x, train)
        b = ReLUConvBN(self.c_out, self.c_out, 3, 1, True, name="conv_b")(a, train)
        w = self.param("shortcut", ops.torch_uniform_init(self.c_in), (self.c_in, self.c_out))
        return ops.conv1x1(ops.avg_pool_2x2(x), w) + b


class _Edge(nn.Module):
    """One cell edge. ``weights`` is ``None`` for a single fixed op (``op``), else a (5,) mixing
    vector over :data:`OPS` (every op is computed and the outputs are mixed linearly)."""

    c: int
    op: int | None
    affine: bool

    @nn.compact
    def __call__(self, x, weights=None, train: bool = True):
        def run(code):
            name = OPS[code]
            if name == "none":
                return None
            if name == "skip_connect":
                return x
            if name == "avg_pool_3x3":
                return ops.avg_pool_3x3(x)
            k = 1 if name == "nor_conv_1x1" else 3
            return ReLUConvBN(self.c, self.c, k, 1, self.affine, name=name)(x, train)

        if weights is None:
            return run(self.op)
        out = None
        for code in range(len(OPS)):
            y = run(code)
            if y is None:
                continue
            y = weights[code] * y
            out = y if out is None else out + y
        return out


class _Cell(nn.Module):
    c: int
    arch: tuple[int, ...] | None
    affine: bool

    @nn.compact
    def __call__(self, x, weights=None, train: bool = True):
        nodes = [x]
        for j in range(1, 4):
            acc = None
            for e, (to, frm) in enumerate(space.EDGES):
                if to != j:
                    continue
                op = None if self.arch is None else self.arch[e]
                w = None if weights is None else weights[e]
                y = _Edge(self.c, op, self.affine, name=f"edge_{e}")(nodes[frm], w, train)
                if y is not None:
                    acc = y if acc is None else acc + y
            nodes.append(jnp.zeros_like(x) if acc is None else acc)
        return nodes[-1]


def _tiny_body(mod: nn.Module, x, arch, weights, train: bool):
    """The TinyNetwork forward; submodules are created inside ``mod``'s compact call."""
    C, N = mod.C, mod.N
    kernel = mod.param("stem_kernel", ops.torch_uniform_init(3 * 9), (3, 3, x.shape[-1], C))
    h = ops.conv3x3(x, kernel)
    h = TorchBatchNorm(C, name="stem_bn")(h, train)
    kinds, (f1, f2) = stage_layout(N)
    chans = cell_channels(C, N)
    feats = []
    c_prev = C
    for i, kind in enumerate(kinds):
        if kind == "reduce":
            h = ResNetBlock(c_prev, chans[i], name=f"cells_{i}")(h, train)
        else:
            h = _Cell(chans[i], arch, mod.affine, name=f"cells_{i}")(h, weights, train)
        c_prev = chans[i]
        if i in (f1, f2):
            feats.append(h)
    h = jax.nn.relu(TorchBatchNorm(c_prev, name="lastact")(h, train))
    feats.append(h)
    pooled = jnp.mean(h, axis=(1, 2))
    init = ops.torch_uniform_init(c_prev)
    w = mod.param("classifier_kernel", init, (c_prev, mod.num_classes))
    b = mod.param("classifier_bias", init, (mod.num_classes,))
    return tuple(feats), pooled @ w + b


class TinyNetwork(nn.Module):
    """Single-path NB201 TinyNetwork for one fixed architecture.

    Attributes:
        arch: 6 op codes (static; a tuple of ints, indices into :data:`OPS`).
        C: stem width (paper: 16). N: cells per stage (paper: 5).
        num_classes: logits. affine: affine BatchNorm in the cells (see module docstring).

    ``__call__(x, train=True)`` with ``x`` (B, 32, 32, 3) float32 returns
    ``((f1, f2, f3), logits)``: f1 (B, H, W, C), f2 (B, H/2, W/2, 2C), f3 (B, H/4, W/4, 4C),
    logits (B, num_classes).
    """

    arch: Sequence[int]
    C: int = 16
    N: int = 5
    num_classes: int = 10
    affine: bool = True

    @nn.compact
    def __call__(self, x, train: bool = True):
        return _tiny_body(self, x, check_arch(self.arch), None, train)


class MixedTinyNetwork(nn.Module):
    """NB201 TinyNetwork whose every edge computes all 5 ops and mixes them with ``weights``.

    ``__call__(x, weights, train=True)``: ``weights`` (6, 5) float32, e.g. a one-hot genome
    (:func:`jaxnas.spaces.nb201.one_hot`, then it computes the single-path network) or softmax
    architecture weights (a DARTS-style supernet). Returns what :class:`TinyNetwork` returns.
    """

    C: int = 16
    N: int = 5
    num_classes: int = 10
    affine: bool = True

    @nn.compact
    def __call__(self, x, weights, train: bool = True):
        return _tiny_body(self, x, None, weights, train)


def single_path_params(mixed_params: dict, arch) -> dict:
    """The :class:`TinyNetwork` parameters of ``arch`` inside :class:`MixedTinyNetwork` params
    (drops the parameters of ops that ``arch`` does not use)."""
    arch = check_arch(arch)
    out = {}
    for name, sub in mixed_params.items():
        if name.startswith("cells_") and any(k.startswith("edge_") for k in sub):
            cell = {}
            for e in range(space.NUM_EDGES):
                op = OPS[arch[e]]
                edge = sub.get(f"edge_{e}", {})
                if op in edge:
                    cell[f"edge_{e}"] = {op: edge[op]}
            if cell:
                out[name] = cell
        else:
            out[name] = sub
    return out


# ---------------------------------------------------------------------------- direct initialiser


def _rcb_shapes(c_in: int, c_out: int, k: int, affine: bool) -> dict:
    shape = (k, k, c_in, c_out) if k == 3 else (c_in, c_out)
    out = {"kernel": shape}
    if affine:
        out.update(scale=(c_out,), bias=(c_out,))
    else:
        out["conv_bias"] = (c_out,)
    return out


def param_shapes(C: int = 16, N: int = 5, num_classes: int = 10, affine: bool = True, arch=None) -> dict:
    """Parameter shapes of :class:`TinyNetwork` (``arch`` given) or :class:`MixedTinyNetwork`
    (``arch=None``), as a nested dict with the same paths as their ``params``."""
    arch = None if arch is None else check_arch(arch)
    kinds, _ = stage_layout(N)
    chans = cell_channels(C, N)
    out: dict = {"stem_kernel": (3, 3, 3, C), "stem_bn": {"scale": (C,), "bias": (C,)}}
    c_prev = C
    for i, kind in enumerate(kinds):
        c = chans[i]
        if kind == "reduce":
            out[f"cells_{i}"] = {
                "conv_a": _rcb_shapes(c_prev, c, 3, True),
                "conv_b": _rcb_shapes(c, c, 3, True),
                "shortcut": (c_prev, c),
            }
        else:
            cell = {}
            for e in range(space.NUM_EDGES):
                names = PARAM_OPS if arch is None else [OPS[arch[e]]]
                edge = {
                    n: _rcb_shapes(c, c, 1 if n == "nor_conv_1x1" else 3, affine)
                    for n in names
                    if n in PARAM_OPS
                }
                if edge:
                    cell[f"edge_{e}"] = edge
            if cell:
                out[f"cells_{i}"] = cell
        c_prev = c
    out["lastact"] = {"scale": (c_prev,), "bias": (c_prev,)}
    out["classifier_kernel"] = (c_prev, num_classes)
    out["classifier_bias"] = (num_classes,)
    return out


def _fan_in(path: tuple[str, ...], shapes_parent: dict) -> int:
    name = path[-1]
    if name in ("conv_bias", "classifier_bias"):
        sib = shapes_parent["kernel" if name == "conv_bias" else "classifier_kernel"]
    else:
        sib = shapes_parent[name]
    return int(np.prod(sib[:-1]))


@partial(jax.jit, static_argnums=(3, 4))
def _uniform_leaf(key, tag, bound, shape, dtype):
    k = jax.random.fold_in(key, tag)
    return jax.random.uniform(k, shape, jnp.float32, -bound, bound).astype(dtype)


def init_params(
    key, C: int = 16, N: int = 5, num_classes: int = 10, affine: bool = True, arch=None,
    dtype=jnp.float32,
) -> dict:
    """PyTorch-default initial parameters, keyed by parameter path.

    Each leaf draws from ``fold_in(key, crc32(path))``, so a parameter has the same value in
    the single-path (``arch`` given) and the mixed (``arch=None``) layout: the single-path
    dict is exactly :func:`single_path_params` of the mixed one. (Flax's own ``.init`` uses a
    different key derivation; both use the PyTorch default distributions, see :mod:`ops`.)

    Args:
        key: PRNG key. C, N, num_classes, affine: network config. arch: 6 op codes or None.
        dtype: float32 (default); float64 (under ``jax.enable_x64``) for verification.
    Returns:
        Nested dict of ``dtype`` arrays with the paths of ``TinyNetwork(...).init(...)['params']``.
    """
    shapes = param_shapes(C, N, num_classes, affine, arch)
    dtype = jnp.dtype(dtype)

    def build(node: dict, prefix: tuple[str, ...]):
        out = {}
        for name, val in node.items():
            path = prefix + (name,)
            if isinstance(val, dict):
                out[name] = build(val, path)
            elif name in ("scale", "bias"):  # BatchNorm: scale 1, shift 0 (host constants)
                out[name] = jax.device_put(np.full(val, 1.0 if name == "scale" else 0.0, dtype))
            else:
                tag = zlib.crc32("/".join(path).encode()) & 0x7FFFFFFF
                bound = 1.0 / float(np.sqrt(_fan_in(path, node)))
                out[name] = _uniform_leaf(key, np.uint32(tag), np.float32(bound), tuple(val), dtype)
        return out

    return build(shapes, ())
