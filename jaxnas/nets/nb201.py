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

The modules here only declare parameters and running statistics: their forward is the one
functional TinyNetwork forward of :mod:`jaxnas.nets.nb201_fn`, which the RMI estimator's
strategies run too. :func:`init_params` builds the same parameter dicts without Flax.
"""

from __future__ import annotations

import zlib
from functools import partial
from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxnas.nets import nb201_fn as fn
from jaxnas.nets.nb201_fn import BatchNormHook, stage_layout
from jaxnas.spaces import nb201 as space

OPS = space.OPS
PARAM_OPS = ("nor_conv_1x1", "nor_conv_3x3")
__all__ = ["MixedTinyNetwork", "ReLUConvBN", "ResNetBlock", "TinyNetwork", "TorchBatchNorm",
           "cell_channels", "check_arch", "init_params", "param_shapes", "single_path_params",
           "stage_layout"]


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


# ---------------------------------------------------------------------------- Flax shells
#
# Every Flax module here declares its parameters (paths of :func:`param_shapes`) and one
# running-statistics pair per BatchNorm, then runs the functional forward of
# :mod:`jaxnas.nets.nb201_fn` with a BatchNorm hook that records the batch statistics (train
# mode) or reads the running ones (``train=False``).


def _bn_paths(shapes: dict, prefix: tuple[str, ...] = ()) -> dict:
    """``{path: channels}`` of the BatchNorms of a parameter-shape tree: every ReLU-conv-BN
    dict (it has a ``kernel``) plus ``stem_bn`` and ``lastact``."""
    out = {}
    for name, sub in shapes.items():
        if isinstance(sub, dict):
            if "kernel" in sub:
                out[prefix + (name,)] = sub["kernel"][-1]
            elif name in ("stem_bn", "lastact"):
                out[prefix + (name,)] = sub["scale"][-1]
            else:
                out.update(_bn_paths(sub, prefix + (name,)))
    if "kernel" in shapes and not prefix:
        out[()] = shapes["kernel"][-1]
    return out


def _nested_set(tree: dict, path: tuple[str, ...], value) -> dict:
    if not path:
        return value
    return {**tree, path[0]: _nested_set(tree.get(path[0], {}), path[1:], value)}


def _flax_run(mod: nn.Module, shapes: dict, train: bool, forward, bn_paths: dict | None = None,
              momentum: float = 0.1):
    """Declare ``shapes``' params and the BatchNorms' running statistics in ``mod``, then
    return ``forward(params, hook)``; in train mode with a mutable ``batch_stats`` collection
    the running statistics follow PyTorch (momentum 0.1, unbiased variance)."""
    params = {name: mod.param(name, partial(_init_node, node=s, path=(name,), parent=shapes))
              for name, s in shapes.items()}
    bn_paths = _bn_paths(shapes) if bn_paths is None else bn_paths
    init = {}
    for path, c in bn_paths.items():
        init = _nested_set(init, path, {"mean": jnp.zeros((c,), jnp.float32),
                                        "var": jnp.ones((c,), jnp.float32)})
    stats = {name: mod.variable("batch_stats", name, lambda v=v: v) for name, v in init.items()}
    running = None if train else {name: v.value for name, v in stats.items()}
    update = train and not mod.is_initializing() and mod.is_mutable_collection("batch_stats")
    hook = BatchNormHook(running, record=update)
    out = forward(params, hook)
    tree = {name: v.value for name, v in stats.items()}
    for path, (mean, var, n) in hook.stats.items():
        old = tree
        for name in path:
            old = old[name]
        new = {"mean": (1 - momentum) * old["mean"] + momentum * mean,
               "var": (1 - momentum) * old["var"] + momentum * var * (n / max(n - 1, 1))}
        tree = _nested_set(tree, path, new)
    for name, v in stats.items():
        if update:
            v.value = tree[name]
    return out


class TorchBatchNorm(nn.Module):
    """``nn.BatchNorm2d`` semantics on (..., C): eps 1e-5, momentum 0.1, biased batch variance
    for normalising, unbiased variance in the running estimate."""

    features: int
    affine: bool = True
    momentum: float = 0.1

    @nn.compact
    def __call__(self, x, train: bool = True):
        c = self.features
        shapes = {"scale": (c,), "bias": (c,)} if self.affine else {}
        return _flax_run(self, shapes, train, lambda p, bn: fn.batch_norm(x, p, bn)[0],
                         {(): c}, self.momentum)


def _rcb_shapes(c_in: int, c_out: int, k: int, affine: bool) -> dict:
    shape = (k, k, c_in, c_out) if k == 3 else (c_in, c_out)
    out = {"kernel": shape}
    if affine:
        out.update(scale=(c_out,), bias=(c_out,))
    else:
        out["conv_bias"] = (c_out,)
    return out


def _reduce_shapes(c_in: int, c_out: int) -> dict:
    return {"conv_a": _rcb_shapes(c_in, c_out, 3, True), "conv_b": _rcb_shapes(c_out, c_out, 3, True),
            "shortcut": (c_in, c_out)}


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
        shapes = _rcb_shapes(self.c_in, self.c_out, self.kernel_size, self.affine)
        return _flax_run(self, shapes, train,
                         lambda p, bn: fn.relu_conv_bn(p, x, self.stride, bn=bn)[0])


class ResNetBlock(nn.Module):
    """NB201 ``ResNetBasicblock(C_in, C_out, stride=2, affine=True)``: ReLUConvBN 3x3 stride 2,
    ReLUConvBN 3x3, plus a shortcut of 2x2 average pooling and a bias-free 1x1 conv."""

    c_in: int
    c_out: int

    @nn.compact
    def __call__(self, x, train: bool = True):
        return _flax_run(self, _reduce_shapes(self.c_in, self.c_out), train,
                         lambda p, bn: fn.reduce_block(p, x, bn=bn)[0])


def _tiny(mod: nn.Module, x, arch, weights, train: bool):
    shapes = param_shapes(mod.C, mod.N, mod.num_classes, mod.affine, arch, x.shape[-1])
    return _flax_run(mod, shapes, train, lambda p, bn: fn.tiny_forward(
        p, x, mod.N, arch, weights, bn=bn))


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
        return _tiny(self, x, check_arch(self.arch), None, train)


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
        return _tiny(self, x, None, weights, train)


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


def param_shapes(C: int = 16, N: int = 5, num_classes: int = 10, affine: bool = True, arch=None,
                 in_channels: int = 3) -> dict:
    """Parameter shapes of :class:`TinyNetwork` (``arch`` given) or :class:`MixedTinyNetwork`
    (``arch=None``), as a nested dict with the same paths as their ``params``."""
    arch = None if arch is None else check_arch(arch)
    kinds, _ = stage_layout(N)
    chans = cell_channels(C, N)
    out: dict = {"stem_kernel": (3, 3, in_channels, C), "stem_bn": {"scale": (C,), "bias": (C,)}}
    c_prev = C
    for i, kind in enumerate(kinds):
        c = chans[i]
        if kind == "reduce":
            out[f"cells_{i}"] = _reduce_shapes(c_prev, c)
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


def _init_node(key, node, path: tuple[str, ...], parent: dict, dtype=jnp.float32):
    """Initial value of one parameter (``node`` a shape) or of a dict of them, at ``path``;
    ``parent`` is the shape dict holding ``node`` (for the fan-in of biases)."""
    if isinstance(node, dict):
        return {n: _init_node(key, v, path + (n,), node, dtype) for n, v in node.items()}
    name = path[-1]
    if name in ("scale", "bias"):  # BatchNorm: scale 1, shift 0 (host constants)
        return jax.device_put(np.full(node, 1.0 if name == "scale" else 0.0, dtype))
    tag = zlib.crc32("/".join(path).encode()) & 0x7FFFFFFF
    bound = 1.0 / float(np.sqrt(_fan_in(path, parent)))
    return _uniform_leaf(key, np.uint32(tag), np.float32(bound), tuple(node), jnp.dtype(dtype))


def init_params(
    key, C: int = 16, N: int = 5, num_classes: int = 10, affine: bool = True, arch=None,
    dtype=jnp.float32,
) -> dict:
    """PyTorch-default initial parameters, keyed by parameter path.

    Each leaf draws from ``fold_in(key, crc32(path))``, so a parameter has the same value in
    the single-path (``arch`` given) and the mixed (``arch=None``) layout: the single-path
    dict is exactly :func:`single_path_params` of the mixed one. (Flax's ``.init`` draws the
    same way from the key Flax gives each top-level parameter; both use the PyTorch default
    distributions, see :mod:`ops`.)

    Args:
        key: PRNG key. C, N, num_classes, affine: network config. arch: 6 op codes or None.
        dtype: float32 (default); float64 (under ``jax.enable_x64``) for verification.
    Returns:
        Nested dict of ``dtype`` arrays with the paths of ``TinyNetwork(...).init(...)['params']``.
    """
    shapes = param_shapes(C, N, num_classes, affine, arch)
    return _init_node(key, shapes, (), {}, dtype)
