"""Analytic FLOPs and parameter counts of NB201 networks (no I/O, vectorised, traceable).

The network is NB201's TinyNetwork (``infer.tiny``): a 3x3 conv stem with BN, three stages
of ``N`` cells with ``C``, ``2C`` and ``4C`` channels, a ResNet basic block (3x3 stride-2
ReLU-conv-BN, 3x3 ReLU-conv-BN, 2x2 avg-pool + 1x1 conv shortcut) between stages, then BN,
ReLU, global average pooling and a linear classifier. Cell ops: ``nor_conv_kxk`` is
ReLU-conv(k, no bias)-BN(affine), ``avg_pool_3x3`` a stride-1 3x3 average pool,
``skip_connect`` and ``none`` cost nothing. Every edge is counted, also in disconnected
(degenerate) cells: the reference networks compute them all.

Because a cell's cost is a sum over its edges, ``flops = base + sum_e per_op[codes[e]]``:
one gather and a sum, so it runs on ``(N, 6)`` batches and under ``jit``.

Two FLOP conventions (both count a multiply-add as one FLOP):

- ``'naslib'`` (default): what NASLib's NB201 zero-cost benchmark stores as ``flops``
  (``zc_nasbench201.json``, and so ``nb201_naslib_zc_subset.csv.gz``), i.e. tensorwatch's
  torchstat counter: conv multiply-adds, BN ``2 x`` its input size, ReLU ``1 x`` its input
  size, ``AvgPool2d`` ``k^2`` per output element, the global ``AdaptiveAvgPool2d`` as
  ``C (H + 1)(W + 1)`` (the counter's window arithmetic), and the classifier ``in x out``
  without its bias. It reproduces all 491 x 3 values of that file exactly.
- ``'nb201'``: NAS-Bench-201's own ``get_model_infos`` (xautodl ``flop_benchmark``): conv
  and linear layers only, the linear bias included; BN, ReLU and pooling are not summed.

Parameters are the same in both: every weight, with BN's affine scale and shift and the
classifier bias (NB201 ``count_parameters_in_MB``); they match the file exactly too.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from jaxnas.bench.table import dataset_key
from jaxnas.spaces import nb201

CONVENTIONS: tuple[str, ...] = ("naslib", "nb201")
#: (num_classes, image_size) of the NB201 datasets.
DATASET_SHAPES: dict[str, tuple[int, int]] = {
    "cifar10": (10, 32),
    "cifar100": (100, 32),
    "imagenet16_120": (120, 16),
}


def _dataset_shape(dataset: str) -> tuple[int, int]:
    return DATASET_SHAPES[dataset_key(dataset)]


@functools.lru_cache(maxsize=64)
def cost_model(
    C: int = 16,
    N: int = 5,
    num_classes: int = 10,
    image_size: int = 32,
    convention: str = "naslib",
) -> tuple[float, np.ndarray, float, np.ndarray]:
    """The NB201 network's cost as ``base + sum over edges of per_op[op]``.

    Args:
        C: channels of the first stage. N: cells per stage. num_classes: classifier outputs.
        image_size: input height = width (a multiple of 4).
        convention: ``'naslib'`` or ``'nb201'`` FLOP counting (module doc).

    Returns:
        ``(flops_base, flops_per_op, params_base, params_per_op)``: bases are floats, per-op
        arrays are float64 ``(5,)`` indexed by NB201 op code; FLOPs and params are raw counts
        (not millions).
    """
    for name, v in (("C", C), ("N", N), ("num_classes", num_classes), ("image_size", image_size)):
        if int(v) != v or v < 1:
            raise ValueError(f"{name} must be a positive integer, got {v!r}")
    if image_size % 4:
        raise ValueError(f"image_size must be a multiple of 4 (two stride-2 stages), got {image_size}")
    if convention not in CONVENTIONS:
        raise ValueError(f"unknown FLOP convention {convention!r}; expected one of {CONVENTIONS}")
    tw = convention == "naslib"  # count BN, ReLU and pooling (tensorwatch/torchstat)
    bn, relu = (2, 1) if tw else (0, 0)

    s = image_size
    flops = 27 * C * s * s + bn * C * s * s  # stem: conv3x3(3 -> C) + BN
    params = 27 * C + 2 * C
    per_op_f = np.zeros(nb201.NUM_OPS)
    per_op_p = np.zeros(nb201.NUM_OPS)
    c, h = C, s
    for stage in range(3):
        if stage:
            ci, co, h2 = c, 2 * c, h // 2
            a2 = h2 * h2
            # ResNet basic block: ReLU-conv3x3/2-BN, ReLU-conv3x3-BN, avgpool2x2 + conv1x1.
            flops += relu * ci * h * h + 9 * ci * co * a2 + bn * co * a2
            flops += relu * co * a2 + 9 * co * co * a2 + bn * co * a2
            flops += (4 * ci * a2 if tw else 0) + ci * co * a2
            params += 9 * ci * co + 2 * co + 9 * co * co + 2 * co + ci * co
            c, h = co, h2
        a = h * h
        elementwise = (relu + bn) * c * a  # ReLU before and BN after a cell conv
        per_op_f[2] += N * (c * c * a + elementwise)  # nor_conv_1x1
        per_op_f[3] += N * (9 * c * c * a + elementwise)  # nor_conv_3x3
        per_op_f[4] += N * (9 * c * a if tw else 0)  # avg_pool_3x3
        per_op_p[2] += N * (c * c + 2 * c)
        per_op_p[3] += N * (9 * c * c + 2 * c)
    # Head: BN + ReLU, global average pool, linear classifier.
    if tw:
        flops += bn * c * h * h + relu * c * h * h + c * (h + 1) * (h + 1) + c * num_classes
    else:
        flops += c * num_classes + num_classes
    params += 2 * c + c * num_classes + num_classes
    return float(flops), per_op_f, float(params), per_op_p


def flops_params(
    codes,
    C: int = 16,
    N: int = 5,
    num_classes: int | None = None,
    image_size: int | None = None,
    *,
    dataset: str | None = None,
    convention: str = "naslib",
):
    """FLOPs (millions) and parameters (millions) of NB201 architectures.

    Args:
        codes: NB201 op codes ``(6,)`` or ``(..., 6)`` (numpy, list or jax array; traced
            values work under ``jit``/``vmap``).
        C, N: network width and cells per stage (NB201: 16 and 5).
        num_classes, image_size: default 10 and 32 (CIFAR-10); or give ``dataset``.
        dataset: ``'cifar10'`` (10 classes, 32x32), ``'cifar100'`` (100, 32x32) or
            ``'ImageNet16-120'`` (120, 16x16); sets ``num_classes``/``image_size``, which
            must then be left out or agree.
        convention: ``'naslib'`` (default; NASLib zero-cost benchmark values) or
            ``'nb201'`` (NAS-Bench-201 ``get_model_infos``); see the module doc.

    Returns:
        ``(mflops, mparams)``, each of shape ``codes.shape[:-1]``: float64 numpy for numpy
        input, float32 jnp for jax input.
    """
    if dataset is not None:
        nc, size = _dataset_shape(dataset)
        if num_classes not in (None, nc) or image_size not in (None, size):
            raise ValueError(
                f"dataset={dataset!r} means num_classes={nc}, image_size={size}; got "
                f"num_classes={num_classes}, image_size={image_size}"
            )
        num_classes, image_size = nc, size
    num_classes = 10 if num_classes is None else num_classes
    image_size = 32 if image_size is None else image_size
    f0, fop, p0, pop = cost_model(C, N, num_classes, image_size, convention)
    if isinstance(codes, jax.Array):
        if codes.shape[-1:] != (nb201.NUM_EDGES,):
            raise ValueError(f"NB201 codes must have a last axis of 6 edges, got {codes.shape}")
        idx = codes.astype(jnp.int32)
        mf = (f0 + jnp.sum(jnp.asarray(fop)[idx], axis=-1)) / 1e6
        mp = (p0 + jnp.sum(jnp.asarray(pop)[idx], axis=-1)) / 1e6
        return mf.astype(jnp.float32), mp.astype(jnp.float32)
    arr = nb201._as_codes(codes)
    return (f0 + fop[arr].sum(axis=-1)) / 1e6, (p0 + pop[arr].sum(axis=-1)) / 1e6


class AnalyticCost:
    """A traceable cost from :func:`flops_params`: ``cost(codes (..., 6)) -> jnp float32 (...)``.

    Args:
        kind: ``'flops'`` (MFLOPs) or ``'params'`` (M).
        dataset: sets classes and input size (default ``'cifar10'``).
        C, N, convention: as in :func:`flops_params`.
    """

    traceable = True

    def __init__(self, kind: str = "flops", dataset: str = "cifar10", C: int = 16, N: int = 5,
                 convention: str = "naslib"):
        if kind not in ("flops", "params"):
            raise ValueError(f"analytic cost kind must be 'flops' or 'params', got {kind!r}")
        nc, size = _dataset_shape(dataset)
        f0, fop, p0, pop = cost_model(C, N, nc, size, convention)
        base, per_op = (f0, fop) if kind == "flops" else (p0, pop)
        self.kind = kind
        self.name = kind
        self.dataset = dataset
        self.unit = "MFLOPs" if kind == "flops" else "M"
        self._base = base / 1e6
        self._per_op = jnp.asarray(per_op / 1e6, dtype=jnp.float32)

    @property
    def values(self):
        """Cost of every architecture in official index order, jnp float32 ``(15625,)``."""
        return self(jnp.asarray(nb201.ARCHS))

    def __call__(self, codes):
        codes = jnp.asarray(codes).astype(jnp.int32)
        return (self._base + jnp.sum(self._per_op[codes], axis=-1)).astype(jnp.float32)

    def __repr__(self) -> str:
        return f"AnalyticCost({self.kind!r}, dataset={self.dataset!r})"
