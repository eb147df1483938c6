"""Functional NAS-Bench-201 operations, re-expressed for fast XLA:CPU autodiff.

The NB201 cell ops (Dong & Yang, ICLR 2020; AutoDL-Projects ``cell_operations.py``) on NHWC
float32 tensors:

==================  ===========================================================
``none``            zeros (``x.mul(0.)`` in the reference)
``skip_connect``    identity (stride 1, ``C_in == C_out``, the only case in cells)
``nor_conv_1x1``    ReLU -> 1x1 conv -> BatchNorm
``nor_conv_3x3``    ReLU -> 3x3 conv (pad 1) -> BatchNorm
``avg_pool_3x3``    3x3 average pool, stride 1, pad 1, ``count_include_pad=False``
==================  ===========================================================

PERF_NOTES.md section 1 measured the straightforward XLA versions (``reduce_window`` pooling,
``conv_general_dilated`` for 1x1) with backward passes 20-80x their forward on this CPU, so:

* 3x3 average pooling is the sum of 9 shifted slices of the zero-padded input divided by a
  constant count map (:func:`avg_pool_3x3`);
* a 1x1 convolution is an ``einsum`` (:func:`conv1x1`);
* the 2x2 stride-2 shortcut pooling of the ResNet block is reshape + mean (:func:`avg_pool_2x2`).

BatchNorm here always normalises with the statistics of the current batch (biased variance,
``eps=1e-5``), as PyTorch does in train mode; candidates are trained that way (METHODS.md 5.1).

Weights use PyTorch's default initialisation so that scores compare with the published PyTorch
code: conv and linear weights ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))`` (``kaiming_uniform_`` with
``a=sqrt(5)``), biases the same bound, BatchNorm scale 1 and bias 0.

Layouts: activations NHWC; 3x3 kernels HWIO ``(3, 3, C_in, C_out)``; 1x1 kernels ``(C_in, C_out)``;
linear kernels ``(in, out)``. PyTorch layouts are OIHW / ``(out, in)``.
"""

from __future__ import annotations

import math
from functools import partial

import jax
import jax.numpy as jnp
from jax import lax

BN_EPS = 1e-5
_DN = ("NHWC", "HWIO", "NHWC")


# ---------------------------------------------------------------------------- initialisers


def torch_uniform_init(fan_in: int):
    """PyTorch's default conv/linear initialiser: ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``.

    ``nn.Conv2d``/``nn.Linear`` call ``kaiming_uniform_(w, a=sqrt(5))``, whose bound is
    ``sqrt(6 / ((1 + 5) * fan_in)) = 1/sqrt(fan_in)``; their biases use the same bound.
    Returns a flax-style initialiser ``(key, shape, dtype) -> array``.
    """
    bound = 1.0 / math.sqrt(fan_in)

    def init(key, shape, dtype=jnp.float32):
        return jax.random.uniform(key, shape, dtype, -bound, bound)

    return init


# ---------------------------------------------------------------------------- primitives


def conv3x3(x: jax.Array, w: jax.Array, stride: int = 1) -> jax.Array:
    """3x3 convolution, padding 1. ``x`` (B, H, W, C_in), ``w`` (3, 3, C_in, C_out)."""
    return lax.conv_general_dilated(x, w, (stride, stride), ((1, 1), (1, 1)), dimension_numbers=_DN)


def conv1x1(x: jax.Array, w: jax.Array) -> jax.Array:
    """1x1 convolution. ``x`` (B, H, W, C_in) or any (..., C_in); ``w`` (C_in, C_out).

    NHWC inputs use a 1x1 ``conv_general_dilated``: with jax 0.10 on XLA:CPU its forward and
    backward measured 10-35 % faster than the ``einsum`` matmul that PERF_NOTES.md recommended
    for an older stack (a development measurement, not recorded in benchmarks/README.md);
    other ranks use the matmul.
    """
    if x.ndim == 4:
        return lax.conv_general_dilated(x, w[None, None], (1, 1), ((0, 0), (0, 0)), dimension_numbers=_DN)
    return jnp.einsum("...c,cd->...d", x, w)


# ---------------------------------------------------------------------------- loop-safe convs
#
# Measured (benchmarks/README.md, "Finding: XLA:CPU convolution gradients inside loops"): in a
# while loop (lax.scan, lax.map, fori_loop) XLA:CPU runs the weight-gradient convolution of a
# 3x3 conv (32x32x16, batch 32) about 60x slower than the same op outside a loop (160-180 ms
# vs 2.7-4.5 ms), and the input-gradient convolution about 8x slower; forward convolutions
# and matmuls are unaffected. The VJPs below express both gradients with those: dW as one
# matmul of the 9 shifted input taps (im2col) with dy, dx as forward convolution(s) with the
# flipped kernel. Use them in code that differentiates inside loops (the 'mask' strategy).
#
# Under ``shard_map`` a custom VJP's backward must return cotangents with the manual-axis type
# of the primal inputs. A replicated input (the batch) meeting a sharded one (a member's
# kernel) gives a cotangent that varies over 'pop' while the input does not, which JAX
# rejects ("Custom VJP bwd rule must produce an output with the same type ..."). So the
# public functions first mark every input as varying over the union of the inputs' varying
# axes (:func:`match_varying`); JAX transposes that cast into the psum the gradient of a
# replicated input needs. Outside ``shard_map`` it does nothing.


def varying_axes(a) -> frozenset:
    """Mesh axes over which ``a`` varies inside ``shard_map`` (empty outside): JAX >= 0.10's
    ``manual_axis_type.varying``, or the older ``vma``."""
    t = jax.typeof(a)
    mat = getattr(t, "manual_axis_type", None)
    if mat is not None:
        return frozenset(mat.varying)
    return frozenset(getattr(t, "vma", ()))


def match_varying(*arrays):
    """``arrays`` cast to vary over the union of their varying mesh axes (a no-op outside
    ``shard_map``, or when they already agree). Uses ``lax.pcast(..., to='varying')``, or
    ``lax.pvary`` on older JAX."""
    axes = frozenset().union(*(varying_axes(a) for a in arrays))
    out = []
    for a in arrays:
        need = tuple(sorted(axes - varying_axes(a), key=str))
        if need:
            pcast = getattr(lax, "pcast", None)
            a = pcast(a, need, to="varying") if pcast is not None else lax.pvary(a, need)
        out.append(a)
    return tuple(out)


def _taps(xp: jax.Array, ho: int, wo: int, stride: int) -> jax.Array:
    """The 9 shifted (strided) views of a padded input, stacked on a new axis -2:
    ``(B, ho, wo, 9, C)``; tap ``3 i + j`` is ``xp[:, s h + i, s w + j]``."""
    s = stride
    views = [
        lax.slice(xp, (0, i, j, 0), (xp.shape[0], i + s * (ho - 1) + 1, j + s * (wo - 1) + 1,
                                    xp.shape[3]), (1, s, s, 1))
        for i in range(3) for j in range(3)
    ]
    return jnp.stack(views, axis=-2)


def conv3x3_loopsafe(x: jax.Array, w: jax.Array, stride: int = 1) -> jax.Array:
    """:func:`conv3x3` with a VJP made of forward convolutions and matmuls (see above);
    usable inside ``shard_map`` with replicated and sharded operands mixed."""
    return _conv3x3_ls(*match_varying(x, w), stride)


@partial(jax.custom_vjp, nondiff_argnums=(2,))
def _conv3x3_ls(x: jax.Array, w: jax.Array, stride: int = 1) -> jax.Array:
    return conv3x3(x, w, stride)


def _conv3x3_ls_fwd(x, w, stride):
    return conv3x3(x, w, stride), (x, w)


def _conv3x3_ls_bwd(stride, res, dy):
    x, w = res
    b, h, wd, cin = x.shape
    ho, wo, cout = dy.shape[1], dy.shape[2], dy.shape[3]
    xp = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    cols = _taps(xp, ho, wo, stride).reshape(b * ho * wo, 9 * cin)
    dw = (cols.T @ dy.reshape(b * ho * wo, cout)).reshape(3, 3, cin, cout)
    wt = jnp.flip(w, (0, 1)).transpose(0, 1, 3, 2)  # (3, 3, C_out, C_in)
    if stride == 1:
        dx = lax.conv_general_dilated(dy, wt, (1, 1), ((1, 1), (1, 1)), dimension_numbers=_DN)
    else:
        # the transpose of a strided conv: dy dilated by the stride, then a stride-1 conv
        pad = ((1, h - (ho - 1) * stride - 1 + 1), (1, wd - (wo - 1) * stride - 1 + 1))
        dx = lax.conv_general_dilated(dy, wt, (1, 1), pad, lhs_dilation=(stride, stride),
                                      dimension_numbers=_DN)
    return dx, dw


_conv3x3_ls.defvjp(_conv3x3_ls_fwd, _conv3x3_ls_bwd)


def conv1x1_loopsafe(x: jax.Array, w: jax.Array) -> jax.Array:
    """:func:`conv1x1` with a matmul VJP (see above); usable inside ``shard_map``."""
    return _conv1x1_ls(*match_varying(x, w))


@jax.custom_vjp
def _conv1x1_ls(x: jax.Array, w: jax.Array) -> jax.Array:
    return conv1x1(x, w)


def _conv1x1_ls_fwd(x, w):
    return conv1x1(x, w), (x, w)


def _conv1x1_ls_bwd(res, dy):
    x, w = res
    cin, cout = w.shape
    dw = x.reshape(-1, cin).T @ dy.reshape(-1, cout)
    return (dy.reshape(-1, cout) @ w.T).reshape(x.shape), dw


_conv1x1_ls.defvjp(_conv1x1_ls_fwd, _conv1x1_ls_bwd)


def batch_norm(x: jax.Array, scale=None, bias=None, eps: float = BN_EPS) -> jax.Array:
    """Train-mode BatchNorm over all but the last axis (biased variance, as PyTorch)."""
    axes = tuple(range(x.ndim - 1))
    mean = jnp.mean(x, axes)
    var = jnp.mean(jnp.square(x - mean), axes)
    y = (x - mean) * lax.rsqrt(var + eps)
    if scale is not None:
        y = y * scale
    if bias is not None:
        y = y + bias
    return y


def batch_norm_stats(x: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Per-channel batch mean and biased variance of ``x`` (..., C)."""
    axes = tuple(range(x.ndim - 1))
    mean = jnp.mean(x, axes)
    return mean, jnp.mean(jnp.square(x - mean), axes)


def _count_map(h: int, w: int, dtype=jnp.float32) -> jax.Array:
    """Number of in-image taps of a 3x3 window centred at each pixel: (h, w, 1)."""
    rows = jnp.minimum(jnp.arange(h) + 1, h - 1) - jnp.maximum(jnp.arange(h) - 1, 0) + 1
    cols = jnp.minimum(jnp.arange(w) + 1, w - 1) - jnp.maximum(jnp.arange(w) - 1, 0) + 1
    return (rows[:, None] * cols[None, :]).astype(dtype)[:, :, None]


def box_sum_3x3(x: jax.Array) -> jax.Array:
    """Sum over each pixel's 3x3 neighbourhood (zero padding), as 9 shifted slices.

    ``x`` (..., H, W, C). The operator is symmetric, so it is its own transpose.
    """
    h, w = x.shape[-3], x.shape[-2]
    pad = [(0, 0)] * (x.ndim - 3) + [(1, 1), (1, 1), (0, 0)]
    xp = jnp.pad(x, pad)
    # separable: 3 row shifts, then 3 column shifts
    rows = xp[..., 0:h, :, :] + xp[..., 1 : h + 1, :, :] + xp[..., 2 : h + 2, :, :]
    return rows[..., :, 0:w, :] + rows[..., :, 1 : w + 1, :] + rows[..., :, 2 : w + 2, :]


def avg_pool_3x3(x: jax.Array) -> jax.Array:
    """``nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)`` on (..., H, W, C)."""
    return box_sum_3x3(x) / _count_map(x.shape[-3], x.shape[-2], x.dtype)


def avg_pool_3x3_transpose(g: jax.Array) -> jax.Array:
    """Transpose (VJP) of :func:`avg_pool_3x3`: ``box_sum(g / count)``."""
    return box_sum_3x3(g / _count_map(g.shape[-3], g.shape[-2], g.dtype))


def avg_pool_2x2(x: jax.Array) -> jax.Array:
    """``nn.AvgPool2d(2, stride=2)`` on (..., H, W, C) with even H, W, as reshape + mean."""
    *lead, h, w, c = x.shape
    return jnp.mean(x.reshape(*lead, h // 2, 2, w // 2, 2, c), axis=(-4, -2))
