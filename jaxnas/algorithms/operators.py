"""Variation and selection operators as small pure factories (DESIGN.md convention 4).

Each factory returns a frozen object holding only static choices. Its numbers live in a
params dict (``op.default_params()``), so changing a rate never recompiles. Call forms:

- crossover: ``op(key, a, b, params) -> (child_a, child_b)``; ``a``, ``b`` are ``(K, *genome)``
  parent batches, one mating per row.
- mutation: ``op(key, x, params) -> x'`` on ``(K, *genome)``.

Every operator also has ``apply_t``, the same computation on a transposed ``(n, K)``
layout (``n`` = genome size, flattened): XLA:CPU emits an elementwise fusion as a loop nest
over its output shape and vectorises the innermost loop, and NB201 genomes have only 6
genes, so the (genes, members) layout runs the arithmetic about 3x faster. The algorithms
keep whole variation pipelines in that layout (see ``NSGA2.ask``).

Operators for categorical genomes (NB201 ``int[6]``) follow EvNAS/pEvoNAS (METHODS.md 0.3):
:func:`uniform_crossover` (per gene/edge-row, p=0.5) and :func:`resample_mutation` (each
gene redrawn with probability ``rate``). Operators for real genomes follow pymoo 0.6:
:func:`sbx` and :func:`polynomial_mutation`; NEvoNAS used SBX(eta=15, prob=0.7) and
PM(eta=20, per-variable probability 0.2) on α in [0,1]^30 (METHODS.md 4).
:func:`rounded` turns a real operator into one for integer genomes (pymoo's documented
integer pattern: SBX/PM with rounding repair).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp

from jaxnas.algorithms import _rng
from jaxnas.metrics import _sort


def _T(x):
    """``(K, *genome)`` -> ``(n, K)``."""
    return x.reshape(x.shape[0], -1).T


def _untranspose(y, shape, dtype):
    return y.T.reshape(shape).astype(dtype)


def _pairs(x):
    """``(n, m)`` -> ``(n, 2, m)`` broadcast: both children of mating j see its parents.
    Children are produced as one ``(n, 2, m)`` array (reshaped to ``(n, 2m)``: first
    children, then second children) instead of concatenating two: a concatenation inside a
    fusion is emitted as per-element branches, which stops vectorisation and made XLA:CPU
    recompute the whole crossover for every use in the mutation (measured 20x slower)."""
    return jnp.broadcast_to(x[:, None, :], (x.shape[0], 2, x.shape[1]))


def _second(n, m):
    return jnp.broadcast_to((jnp.arange(2) == 1)[None, :, None], (n, 2, m))


def _rows_to_entries(mask_gk, n):
    """Per-gene ``(G, K)`` mask -> per-entry ``(n, K)`` (each gene spans ``n // G`` entries)."""
    g, k = mask_gk.shape
    r = n // g
    if r == 1:
        return mask_gk
    return jnp.broadcast_to(mask_gk[:, None, :], (g, r, k)).reshape(n, k)


# ---------------------------------------------------------------------------- crossover


@dataclass(frozen=True)
class UniformCrossover:
    """Uniform crossover per gene (per edge-row of α): child_a takes parent a's gene with
    probability ``swap`` (0.5 in EvNAS), child_b gets the complement. A mating crosses with
    probability ``prob``, else the children copy their parents."""

    heavy = False  # cheap arithmetic: fine to fuse with gathers

    def default_params(self) -> dict[str, Any]:
        return {"prob": jnp.float32(1.0), "swap": jnp.float32(0.5)}

    def apply_t(self, key, a, b, params, genes: int):
        """``a``, ``b``: ``(n, m)`` parents -> ``(n, 2m)`` children (first, then second)."""
        n, k = a.shape
        k1, k2 = _rng.split(key, 2)
        # separate draws, not slices of one stream: slicing costs index arithmetic per element
        take_b = _rng.uniform(k1, (genes, k)) >= params["swap"]
        take_b &= _rng.uniform(k2, (1, k)) < params["prob"]
        m = _rows_to_entries(take_b, n)
        from_b = _pairs(m) ^ _second(n, k)  # the second child takes the complement
        return jnp.where(from_b, _pairs(b), _pairs(a)).reshape(n, 2 * k)

    def __call__(self, key, a, b, params):
        c = self.apply_t(key, _T(a), _T(b), params, a.shape[1])
        k = a.shape[0]
        return (_untranspose(c[:, :k], a.shape, a.dtype), _untranspose(c[:, k:], a.shape, a.dtype))


def uniform_crossover() -> UniformCrossover:
    return UniformCrossover()


@dataclass(frozen=True)
class SBX:
    """Simulated binary crossover, as pymoo 0.6 ``SBX`` (``cross_sbx``), for genomes in
    ``[low, high]``. Params: ``eta`` (15), ``prob`` per mating (pymoo's default 0.9;
    NEvoNAS 0.7), ``prob_var`` per variable (0.5), ``prob_bin`` child exchange (0.5)."""

    low: float = 0.0
    high: float = 1.0
    eps: float = 1e-14
    heavy = True  # transcendental arithmetic: keep gathers out of its fusion

    def default_params(self) -> dict[str, Any]:
        return {
            "eta": jnp.float32(15.0),
            "prob": jnp.float32(0.9),
            "prob_var": jnp.float32(0.5),
            "prob_bin": jnp.float32(0.5),
        }

    def _core(self, key, x1, x2, params, n, k, pairs):
        ks = _rng.split(key, 4)
        xl, xu = jnp.float32(self.low), jnp.float32(self.high)
        eta = params["eta"]
        bc = _pairs if pairs else (lambda v: v)
        cross = bc(_rng.uniform(ks[0], (n, k)) < params["prob_var"])
        cross &= jnp.abs(x1 - x2) > self.eps
        cross &= bc(_rng.uniform(ks[1], (1, k)) < params["prob"])
        sm = x1 < x2
        y1, y2 = jnp.where(sm, x1, x2), jnp.where(sm, x2, x1)
        delta = jnp.where(cross, y2 - y1, 1.0)  # avoid 0/0 where not crossed
        rand = bc(_rng.uniform(ks[2], (n, k)))
        inv = 1.0 / (eta + 1.0)

        def betaq(beta):
            # pow(b, e) = exp(e log b) for b > 0: 4x cheaper than jnp.power on XLA:CPU
            alpha = 2.0 - jnp.exp(-(eta + 1.0) * jnp.log(beta))
            base = jnp.where(rand <= 1.0 / alpha, rand * alpha, 1.0 / (2.0 - rand * alpha))
            return jnp.exp(inv * jnp.log(base))

        c1 = 0.5 * ((y1 + y2) - betaq(1.0 + 2.0 * (y1 - xl) / delta) * delta)
        c2 = 0.5 * ((y1 + y2) + betaq(1.0 + 2.0 * (xu - y2) / delta) * delta)
        ch1, ch2 = jnp.where(sm, c1, c2), jnp.where(sm, c2, c1)
        swap = bc(_rng.uniform(ks[3], (n, k)) < params["prob_bin"]) ^ (x1 > x2)
        return cross, swap, ch1, ch2, (xl, xu)

    def apply_t(self, key, a, b, params, genes: int = 0):
        """``a``, ``b``: ``(n, m)`` parents -> ``(n, 2m)`` children (first, then second)."""
        n, k = a.shape
        # every quantity of mating j is broadcast to both of its children (see _pairs)
        x1, x2 = _pairs(a.astype(jnp.float32)), _pairs(b.astype(jnp.float32))
        cross, swap, ch1, ch2, (xl, xu) = self._core(key, x1, x2, params, n, k, pairs=True)
        # child 1 is ch1 (ch2 if swapped), child 2 the other; uncrossed children copy a parent
        second = _second(n, k)
        child = jnp.where(swap ^ second, ch2, ch1)
        parent = jnp.where(second, x2, x1)
        return jnp.clip(jnp.where(cross, child, parent), xl, xu).reshape(n, 2 * k)

    def apply_t_split(self, key, a, b, params, genes: int = 0):
        """The same children as :meth:`apply_t` (same random numbers), as two ``(n, m)``
        arrays. Cheaper when the caller rounds them to integers before concatenating (the
        conversion ends the fusion); with float children use :meth:`apply_t`."""
        n, k = a.shape
        x1, x2 = a.astype(jnp.float32), b.astype(jnp.float32)
        cross, swap, ch1, ch2, (xl, xu) = self._core(key, x1, x2, params, n, k, pairs=False)
        o1 = jnp.where(swap, ch2, ch1)
        o2 = jnp.where(swap, ch1, ch2)
        return (jnp.clip(jnp.where(cross, o1, x1), xl, xu),
                jnp.clip(jnp.where(cross, o2, x2), xl, xu))

    def __call__(self, key, a, b, params):
        c = self.apply_t(key, _T(a), _T(b), params)
        k = a.shape[0]
        return (_untranspose(c[:, :k], a.shape, a.dtype), _untranspose(c[:, k:], a.shape, a.dtype))


def sbx(low: float = 0.0, high: float = 1.0) -> SBX:
    return SBX(low, high)


# ---------------------------------------------------------------------------- mutation


@dataclass(frozen=True)
class ResampleMutation:
    """Each gene (edge) is redrawn from the encoding's sampler with probability ``rate``
    (EvNAS ``mutate_chromosome``: a fresh U(0,1) α row, or a fresh op code). Rows with
    ``protect`` set (elites) are left alone."""

    encoding: Any
    heavy = False

    def default_params(self) -> dict[str, Any]:
        return {"rate": jnp.float32(0.1)}

    def apply_t(self, key, x, params, genes: int, protect=None):
        n, k = x.shape
        if hasattr(self.encoding, "num_values"):
            # categorical: one 32-bit draw per gene; the high half decides the hit
            # (resolution 2^-16), the low half the new value (bias below 1e-4).
            bits = _rng.bits(key, (genes, k))
            hit = (bits >> 16).astype(jnp.float32) < params["rate"] * 65536.0
            fresh = (((bits & 0xFFFF) * jnp.uint32(self.encoding.num_values)) >> 16).astype(x.dtype)
            fresh = _rows_to_entries(fresh, n)
        else:
            k1, k2 = _rng.split(key, 2)
            hit = _rng.uniform(k1, (genes, k)) < params["rate"]
            fresh = self.encoding.sample_genes(k2, (k, genes)).reshape(k, n).T.astype(x.dtype)
        if protect is not None:
            hit &= ~protect[None, :]
        return jnp.where(_rows_to_entries(hit, n), fresh, x)

    def __call__(self, key, x, params, protect=None):
        y = self.apply_t(key, _T(x), params, x.shape[1], protect)
        return _untranspose(y, x.shape, x.dtype)


def resample_mutation(encoding) -> ResampleMutation:
    return ResampleMutation(encoding)


@dataclass(frozen=True)
class PolynomialMutation:
    """Polynomial mutation, as pymoo 0.6 ``PM`` (``mut_pm``). Params: ``eta`` (20),
    ``prob`` per individual (pymoo default 0.9), ``prob_var`` per variable (a negative value
    means pymoo's default ``min(0.5, 1/n)``; NEvoNAS uses 0.2)."""

    low: float = 0.0
    high: float = 1.0
    heavy = True

    def default_params(self) -> dict[str, Any]:
        return {"eta": jnp.float32(20.0), "prob": jnp.float32(0.9), "prob_var": jnp.float32(-1.0)}

    def apply_t(self, key, x, params, genes: int = 0):
        X = x.astype(jnp.float32)
        n, k = X.shape
        ks = _rng.split(key, 3)
        per_individual = _rng.uniform(ks[2], (1, k)) <= params["prob"]
        pv = jnp.where(params["prob_var"] < 0, jnp.minimum(0.5, 1.0 / n), params["prob_var"])
        mut = (_rng.uniform(ks[0], (n, k)) < pv) & per_individual
        xl, xu = jnp.float32(self.low), jnp.float32(self.high)
        eta = params["eta"]
        rand = _rng.uniform(ks[1], (n, k))
        lo = rand <= 0.5
        xy = jnp.where(lo, (xu - X) / (xu - xl), (X - xl) / (xu - xl))  # 1 - delta1 or 1 - delta2
        xy_pow = jnp.exp((eta + 1.0) * jnp.log(xy))  # xy ** (eta + 1), 0 at xy = 0
        val = jnp.where(lo, 2.0 * rand + (1.0 - 2.0 * rand) * xy_pow,
                        2.0 * (1.0 - rand) + 2.0 * (rand - 0.5) * xy_pow)
        d = jnp.exp(jnp.log(val) / (eta + 1.0))
        dq = jnp.where(lo, d - 1.0, 1.0 - d)
        Y = jnp.clip(X + dq * (xu - xl), xl, xu)
        return jnp.where(mut, Y, X)

    def __call__(self, key, x, params):
        return _untranspose(self.apply_t(key, _T(x), params), x.shape, x.dtype)


def polynomial_mutation(low: float = 0.0, high: float = 1.0) -> PolynomialMutation:
    return PolynomialMutation(low, high)


# ---------------------------------------------------------------------------- integer repair


@dataclass(frozen=True)
class Rounded:
    """Wrap a real-valued operator for an integer genome: run it on floats, then round
    (pymoo's ``RoundingRepair``) and clip to ``[low, high]``."""

    op: Any
    low: float
    high: float

    @property
    def heavy(self) -> bool:
        return getattr(self.op, "heavy", True)

    def default_params(self):
        return self.op.default_params()

    def _fix(self, y, dtype):
        return jnp.clip(jnp.round(y), self.low, self.high).astype(dtype)

    def apply_t(self, key, *args):
        """``apply_t(key, *arrays, params, genes)`` like the wrapped operator."""
        params, genes = args[-2], args[-1]
        dtype = args[0].dtype
        xs = [a.astype(jnp.float32) for a in args[:-2]]
        if hasattr(self.op, "apply_t_split"):  # round each child array, then concatenate
            o1, o2 = self.op.apply_t_split(key, *xs, params, genes)
            return jnp.concatenate([self._fix(o1, dtype), self._fix(o2, dtype)], axis=1)
        out = self.op.apply_t(key, *xs, params, genes)
        if isinstance(out, tuple):
            return tuple(self._fix(o, dtype) for o in out)
        return self._fix(out, dtype)

    def __call__(self, key, *args):
        params = args[-1]
        xs = [a.astype(jnp.float32) for a in args[:-1]]
        out = self.op(key, *xs, params)
        dtype = args[0].dtype
        if isinstance(out, tuple):
            return tuple(self._fix(o, dtype) for o in out)
        return self._fix(out, dtype)


def rounded(op, low: float, high: float) -> Rounded:
    return Rounded(op, low, high)


# ---------------------------------------------------------------------------- selection


def tournament_pairs(key: jax.Array, pop_size: int, n_select: int) -> jax.Array:
    """pymoo's ``TournamentSelection`` pairing (pressure 2): concatenated random
    permutations, so every member enters about equally often. Returns int32 ``(n_select, 2)``."""
    n_random = 2 * n_select
    n_perms = -(-n_random // pop_size)
    u = _rng.materialized_uniform(key, (n_perms, pop_size))
    perms = jax.vmap(_sort.argsort)(u).reshape(-1)
    return perms[:n_random].reshape(n_select, 2).astype(jnp.int32)


def tournament_without_replacement(key: jax.Array, fitness: jax.Array, n: int, size) -> jax.Array:
    """EvNAS tournament: each of ``n`` winners is the best (lowest fitness) of ``size``
    members drawn without replacement. ``size`` may be traced (a Params number).

    Args:
        fitness: ``(P,)`` minimised; NaN/inf members lose every comparison they are in.
    Returns:
        int32 ``(n,)`` winner indices.
    """
    p = fitness.shape[0]
    pos = jax.vmap(_sort.positions)(_rng.materialized_uniform(key, (n, p)))  # draw order of member i in row t
    fit_rank = _sort.positions(jnp.where(jnp.isnan(fitness), jnp.inf, fitness))
    score = jnp.where(pos < size, fit_rank[None, :], p + pos)
    return jnp.argmin(score, axis=1).astype(jnp.int32)
