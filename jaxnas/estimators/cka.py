"""Linear centred kernel alignment (CKA; Kornblith et al., ICML 2019), as used by RMI-NAS.

METHODS.md 5.1: for features X (B, ...) and Y (B, ...) flattened to (B, D), with Gram matrices
``K = X X^T`` and ``L = Y Y^T`` centred by ``H = I - 11^T / B``::

    CKA(X, Y) = <HKH, HLH>_F / (||HKH||_F * ||HLH||_F)

RMI-NAS centres the Gram matrices (float64 row means). Here the *features* are centred over the
batch in float32 before the Gram product (``(HX)(HX)^T = HKH`` exactly), which is cheaper to
differentiate and loses less precision than centring a Gram of large raw values. The debiased
estimator (the unbiased HSIC of Song et al. 2012, as in Kornblith's ``center_gram(unbiased=True)``)
is an option.

CKA of an all-zero (or batch-constant) feature map is **defined as 0** (never NaN), so a
disconnected NB201 cell gets the worst similarity (DESIGN.md "Degenerate architectures"); its
gradient there is 0.
"""

from __future__ import annotations

import jax.numpy as jnp

#: Centred Gram norms at or below this count as zero (-> CKA 0).
_TINY = 1e-30
#: Relative centred energy below which a feature map counts as constant over the batch.
_REL_CONST = 1e-12


def flatten(x):
    """(B, ...) -> (B, D)."""
    return jnp.reshape(x, (x.shape[0], -1))


def gram_linear(x):
    """Linear Gram matrix of batch-centred features: (B, ...) -> (B, B) (= HKH), in the
    features' float dtype (float32 for the estimator; float64 only for verification).

    Features that are constant over the batch up to float32 rounding (centred energy below
    ``1e-12`` of the raw energy) give an exactly zero Gram, hence CKA 0.
    """
    f = flatten(x)
    f = f.astype(jnp.promote_types(f.dtype, jnp.float32))
    fc = f - jnp.mean(f, axis=0, keepdims=True)
    constant = jnp.sum(fc * fc) <= _REL_CONST * jnp.sum(f * f)
    fc = jnp.where(constant, 0.0, fc)
    return fc @ fc.T


def center_gram(gram, unbiased: bool = False):
    """Centre a symmetric Gram matrix: ``HKH`` or, with ``unbiased``, the U-statistic form
    (zero diagonal) whose Frobenius products are unbiased HSIC estimates. (B, B) -> (B, B)."""
    gram = gram.astype(jnp.promote_types(gram.dtype, jnp.float32))
    n = gram.shape[0]
    if not unbiased:
        means = jnp.mean(gram, axis=0)
        means = means - jnp.mean(means) / 2
        return gram - means[:, None] - means[None, :]
    if n < 4:
        raise ValueError(f"the debiased CKA needs a batch of at least 4, got {n}")
    eye = jnp.eye(n, dtype=bool)
    gram = jnp.where(eye, 0.0, gram)
    means = jnp.sum(gram, axis=0) / (n - 2)
    means = means - jnp.sum(means) / (2 * (n - 1))
    gram = gram - means[:, None] - means[None, :]
    return jnp.where(eye, 0.0, gram)


def centred_gram(x, debiased: bool = False):
    """Features (B, ...) -> the centred Gram matrix the CKA compares: (B, B) float32."""
    g = gram_linear(x)
    return center_gram(g, unbiased=True) if debiased else g


def cka_from_centred(kc, lc, lc_norm=None):
    """CKA of two centred Gram matrices (B, B); 0 when either is all zero. ``lc_norm`` may be
    passed precomputed (a fixed reference). Returns a float32 scalar."""
    hsic = jnp.sum(kc * lc)
    kn2 = jnp.sum(kc * kc)
    ln = jnp.sqrt(jnp.sum(lc * lc)) if lc_norm is None else lc_norm
    ok = (kn2 > _TINY) & (ln > _TINY)
    # double-where so that neither the value nor the gradient is NaN when a Gram is zero
    safe_kn = jnp.sqrt(jnp.where(ok, kn2, 1.0))
    safe_ln = jnp.where(ok, ln, 1.0)
    return jnp.where(ok, hsic / (safe_kn * safe_ln), 0.0)


def linear_cka(x, y, debiased: bool = False):
    """Linear CKA between features ``x`` (B, ...) and ``y`` (B, ...): float32 scalar in [0, 1]
    (the debiased estimate can be slightly negative). 0 if either is constant over the batch."""
    return cka_from_centred(centred_gram(x, debiased), centred_gram(y, debiased))
