"""Lowest-loss batch selection of RMI-NAS (METHODS.md 5.1), used by the RMI estimator.

Recipe: draw ``pool_factor * B`` (16 * 32 = 512) training images at random without replacement,
augment them (random crop with padding 4 and random horizontal flip), normalise them with the
reference's own normalisation, compute the reference's cross-entropy on each (eval mode), and keep
the ``B`` images with the lowest loss. This one fixed batch ``(X, y)`` is then used for every
candidate architecture.

API::

    x, y = select_lowest_loss_batch(key, images, labels, ref, batch_size=32, pool_factor=16)
    # x: (B, H, W, C) float32, normalised with ref.normalise; y: (B,) int32
    feats = ref.features(x, normalised=True)     # the teacher features of that batch

The loss is ranked without float32 saturation (:func:`per_example_cross_entropy`; selectable,
see ``exact_loss``); remaining ties are broken by pool position (stable sort), so the result is
a deterministic function of the key.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxnas.data.augment import augment_flip_crop

__all__ = ["per_example_cross_entropy", "select_lowest_loss_batch"]


def per_example_cross_entropy(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """Cross-entropy per example without float32 saturation at 0 for confident predictions.

    ``CE = log(1 + sum_{j != y} exp(z_j - z_y))``, computed with ``log1p`` when ``z_y`` is the
    largest logit (so a loss of 1e-12 stays 1e-12 instead of rounding to 0, which would turn the
    ranking of confident images into ties) and as a shifted log-sum-exp otherwise.

    Args:
      logits: (N, K) float. labels: (N,) int.
    Returns:
      (N,) float32.
    """
    z = logits.astype(jnp.float32)
    zy = jnp.take_along_axis(z, labels[:, None].astype(jnp.int32), axis=1)
    d = z - zy
    is_y = jnp.arange(z.shape[1])[None, :] == labels[:, None]
    d = jnp.where(is_y, -jnp.inf, d)
    m = jnp.max(d, axis=1)
    small = jnp.log1p(jnp.sum(jnp.exp(jnp.minimum(d, 0.0)), axis=1))
    ms = jnp.where(m > 0, m, 0.0)
    large = ms + jnp.log(jnp.exp(-ms) + jnp.sum(jnp.exp(d - ms[:, None]), axis=1))
    return jnp.where(m > 0, large, small)


@functools.partial(jax.jit, static_argnames=("pad", "flip"))
def _augment(key, x, pad, flip):
    return augment_flip_crop(key, x, pad=pad, flip=flip)


def select_lowest_loss_batch(key: jax.Array, images, labels, ref, batch_size: int = 32,
                             pool_factor: int = 16, augment: bool = True, pad: int = 4,
                             flip: bool = True, exact_loss: bool = True,
                             return_details: bool = False):
    """Draw ``pool_factor * batch_size`` augmented images; keep the ``batch_size`` lowest-CE ones.

    Args:
      key: PRNG key (pool draw and augmentation); same key -> same batch.
      images: (N, H, W, C) raw training images, uint8 (or float in [0, 1]).
      labels: (N,) integer labels.
      ref: a :class:`jaxnas.data.reference.Reference` (its ``normalise`` and ``apply`` are used).
      batch_size: B, the number of images kept (32 in RMI-NAS).
      pool_factor: the pool is ``pool_factor * B`` images (16 in RMI-NAS); must not exceed N.
      augment: apply crop+flip augmentation to the pool (RMI-NAS does); ``pad``/``flip`` as in
        :func:`jaxnas.data.augment_flip_crop`.
      exact_loss: rank by :func:`per_example_cross_entropy` (default). ``False`` uses the
        plain float32 log-softmax CE, as PyTorch's ``cross_entropy`` does in RMI-NAS; there many
        confident images get a loss of exactly 0 and are then taken in pool order.
      return_details: also return a dict with ``indices`` (B,) dataset indices of the kept images,
        ``loss`` (B,) their cross-entropies (ascending) and ``pool_loss`` (pool,) all losses.
    Returns:
      ``(x, y)``: x (B, H, W, C) float32 normalised, y (B,) int32; plus the dict if asked.
    Raises:
      ValueError: bad sizes.
    """
    n = len(images)
    if len(labels) != n:
        raise ValueError(f"images and labels differ in length: {n} vs {len(labels)}")
    if batch_size < 1 or pool_factor < 1:
        raise ValueError(f"batch_size and pool_factor must be >= 1, got {batch_size}, {pool_factor}")
    pool = batch_size * pool_factor
    if pool > n:
        raise ValueError(f"pool of {pool} images ({pool_factor} x {batch_size}) exceeds the {n} available")
    k_pool, k_aug = jax.random.split(key)
    idx = np.asarray(jax.random.choice(k_pool, n, (pool,), replace=False))
    x = jnp.asarray(np.asarray(images)[idx]) if isinstance(images, np.ndarray) else jnp.asarray(images)[idx]
    y = jnp.asarray(np.asarray(labels)[idx], jnp.int32)
    if augment:
        x = _augment(k_aug, x, pad, flip)
    xn = ref.normalise(x)
    logits = ref.apply(xn)[1]
    if exact_loss:
        ce = per_example_cross_entropy(logits, y)
    else:
        ce = optax.softmax_cross_entropy_with_integer_labels(logits.astype(jnp.float32), y)
    keep = jnp.argsort(ce, stable=True)[:batch_size]
    xb, yb = xn[keep], y[keep]
    if return_details:
        return xb, yb, {"indices": idx[np.asarray(keep)], "loss": ce[keep], "pool_loss": ce}
    return xb, yb
