"""Variation and selection operators as small pure factories (DESIGN.md convention 4).

Each factory returns a frozen object holding only static choices. Its numbers live in a
params dict (``op.default_params()``), so changing a rate never recompiles. Call forms:

- crossover: ``op(key, a, b, params) -> (child_a, child_b)``; ``a``, ``b`` are ``(K, *genome)``
  parent batches, one mating per row.
- mutation: ``op(key, x, params) -> x'`` on ``(K, *genome)``.

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


def _flat(x):
    return x.reshape(x.shape[0], -1)


def _gene_mask(shape_kg, x):
    """Broadcast a ``(K, G)`` per-gene mask over the genome's trailing axes."""
    return shape_kg.reshape(shape_kg.shape + (1,) * (x.ndim - 2))


# ---------------------------------------------------------------------------- crossover


@dataclass(frozen=True)
class UniformCrossover:
    """Uniform crossover per gene (per edge-row of α): child_a takes parent a's gene with
    probability ``swap`` (0.5 in EvNAS), child_b gets the complement. A mating crosses with
    probability ``prob``, else the children copy their parents."""

    def default_params(self) -> dict[str, Any]:
        return {"prob": jnp.float32(1.0), "swap": jnp.float32(0.5)}

    def __call__(self, key, a, b, params):
        k, g = a.shape[0], a.shape[1]
        u = _rng.uniform(key, (k, g + 1))
        take_b = u[:, :g] >= params["swap"]
        take_b &= (u[:, g] < params["prob"])[:, None]
        m = _gene_mask(take_b, a)
        return jnp.where(m, b, a), jnp.where(m, a, b)


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

    def default_params(self) -> dict[str, Any]:
        return {
            "eta": jnp.float32(15.0),
            "prob": jnp.float32(0.9),
            "prob_var": jnp.float32(0.5),
            "prob_bin": jnp.float32(0.5),
        }

    def __call__(self, key, a, b, params):
        shape, dtype = a.shape, a.dtype
        x1, x2 = _flat(a).astype(jnp.float32), _flat(b).astype(jnp.float32)
        k, n = x1.shape
        u = _rng.uniform(key, (4, k, n))
        xl, xu = jnp.float32(self.low), jnp.float32(self.high)
        eta = params["eta"]
        cross = u[0] < params["prob_var"]
        cross &= jnp.abs(x1 - x2) > self.eps
        cross &= (u[1, :, 0] < params["prob"])[:, None]
        sm = x1 < x2
        y1, y2 = jnp.where(sm, x1, x2), jnp.where(sm, x2, x1)
        delta = jnp.where(cross, y2 - y1, 1.0)  # avoid 0/0 where not crossed
        rand = u[2]
        inv = 1.0 / (eta + 1.0)

        def betaq(beta):
            # pow(b, e) = exp(e log b) for b > 0: 4x cheaper than jnp.power on XLA:CPU
            alpha = 2.0 - jnp.exp(-(eta + 1.0) * jnp.log(beta))
            base = jnp.where(rand <= 1.0 / alpha, rand * alpha, 1.0 / (2.0 - rand * alpha))
            return jnp.exp(inv * jnp.log(base))

        c1 = 0.5 * ((y1 + y2) - betaq(1.0 + 2.0 * (y1 - xl) / delta) * delta)
        c2 = 0.5 * ((y1 + y2) + betaq(1.0 + 2.0 * (xu - y2) / delta) * delta)
        # materialise once: o1 and o2 both need c1 and c2, and XLA would otherwise fuse
        # (and so recompute) the log/exp chain into each consumer
        c1, c2 = jax.lax.optimization_barrier((c1, c2))
        ch1, ch2 = jnp.where(sm, c1, c2), jnp.where(sm, c2, c1)
        swap = (u[3] < params["prob_bin"]) ^ (x1 > x2)
        ch1, ch2 = jnp.where(swap, ch2, ch1), jnp.where(swap, ch1, ch2)
        o1 = jnp.clip(jnp.where(cross, ch1, x1), xl, xu)
        o2 = jnp.clip(jnp.where(cross, ch2, x2), xl, xu)
        return o1.reshape(shape).astype(dtype), o2.reshape(shape).astype(dtype)


def sbx(low: float = 0.0, high: float = 1.0) -> SBX:
    return SBX(low, high)


# ---------------------------------------------------------------------------- mutation


@dataclass(frozen=True)
class ResampleMutation:
    """Each gene (edge) is redrawn from the encoding's sampler with probability ``rate``
    (EvNAS ``mutate_chromosome``: a fresh U(0,1) α row, or a fresh op code). Rows with
    ``protect`` set (elites) are left alone."""

    encoding: Any

    def default_params(self) -> dict[str, Any]:
        return {"rate": jnp.float32(0.1)}

    def __call__(self, key, x, params, protect=None):
        k, g = x.shape[0], x.shape[1]
        if hasattr(self.encoding, "num_values"):
            # categorical: one 32-bit draw per gene; the high half decides the hit
            # (resolution 2^-16), the low half the new value (bias below 1e-4).
            bits = _rng.bits(key, (k, g))
            hit = (bits >> 16).astype(jnp.float32) < params["rate"] * 65536.0
            fresh = (((bits & 0xFFFF) * jnp.uint32(self.encoding.num_values)) >> 16).astype(x.dtype)
        else:
            k1, k2 = _rng.split(key, 2)
            hit = _rng.uniform(k1, (k, g)) < params["rate"]
            fresh = self.encoding.sample_genes(k2, (k, g)).astype(x.dtype)
        if protect is not None:
            hit &= ~protect[:, None]
        return jnp.where(_gene_mask(hit, x), fresh, x)


def resample_mutation(encoding) -> ResampleMutation:
    return ResampleMutation(encoding)


@dataclass(frozen=True)
class PolynomialMutation:
    """Polynomial mutation, as pymoo 0.6 ``PM`` (``mut_pm``). Params: ``eta`` (20),
    ``prob`` per individual (pymoo default 0.9), ``prob_var`` per variable (a negative value
    means pymoo's default ``min(0.5, 1/n)``; NEvoNAS uses 0.2)."""

    low: float = 0.0
    high: float = 1.0

    def default_params(self) -> dict[str, Any]:
        return {"eta": jnp.float32(20.0), "prob": jnp.float32(0.9), "prob_var": jnp.float32(-1.0)}

    def __call__(self, key, x, params):
        shape, dtype = x.shape, x.dtype
        X = _flat(x).astype(jnp.float32)
        k, n = X.shape
        u = _rng.uniform(key, (2, k, n))
        per_individual = _rng.uniform(_rng.split(key, 1)[0], (k,))
        pv = jnp.where(params["prob_var"] < 0, jnp.minimum(0.5, 1.0 / n), params["prob_var"])
        mut = (u[0] < pv) & (per_individual <= params["prob"])[:, None]
        xl, xu = jnp.float32(self.low), jnp.float32(self.high)
        eta = params["eta"]
        rand = u[1]
        lo = rand <= 0.5
        xy = jnp.where(lo, (xu - X) / (xu - xl), (X - xl) / (xu - xl))  # 1 - delta1 or 1 - delta2
        xy_pow = jnp.exp((eta + 1.0) * jnp.log(xy))  # xy ** (eta + 1), 0 at xy = 0
        val = jnp.where(lo, 2.0 * rand + (1.0 - 2.0 * rand) * xy_pow,
                        2.0 * (1.0 - rand) + 2.0 * (rand - 0.5) * xy_pow)
        d = jnp.exp(jnp.log(val) / (eta + 1.0))
        dq = jnp.where(lo, d - 1.0, 1.0 - d)
        Y = jnp.clip(X + dq * (xu - xl), xl, xu)
        return jnp.where(mut, Y, X).reshape(shape).astype(dtype)


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

    def default_params(self):
        return self.op.default_params()

    def _fix(self, y, dtype):
        return jnp.clip(jnp.round(y), self.low, self.high).astype(dtype)

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
