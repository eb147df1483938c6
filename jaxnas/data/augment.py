"""Augmentation and input normalisation (pure jnp; jittable, seeded by a key).

``augment_flip_crop`` is the standard CIFAR training augmentation used by RMI-NAS for its batch
selection (METHODS.md 5.1) and by akamaster's ResNet trainer: ``RandomCrop(32, padding=4)`` then
``RandomHorizontalFlip()``. It is applied to raw images (before normalisation), so padded pixels
are 0 (black), as with torchvision on PIL images.

``normalise(x, mean, std)``: uint8 images are divided by 255, float images are taken to be in
[0, 1] already; then ``(x - mean) / std`` per channel. Returns float32.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp

__all__ = ["augment_flip_crop", "normalise", "random_crop", "random_flip"]


def random_flip(key: jax.Array, x: jax.Array, p: float = 0.5) -> jax.Array:
    """Flip each image left-right with probability ``p``.

    Args:
      key: PRNG key.
      x: (N, H, W, C), any dtype.
    Returns:
      same shape and dtype.
    """
    flip = jax.random.bernoulli(key, p, (x.shape[0],))
    return jnp.where(flip[:, None, None, None], x[:, :, ::-1, :], x)


def random_crop(key: jax.Array, x: jax.Array, pad: int = 4) -> jax.Array:
    """Zero-pad by ``pad`` on each side, then crop a random ``H x W`` window per image.

    Offsets are uniform in ``0..2*pad`` (inclusive), as ``torchvision.RandomCrop(padding=pad)``.

    Args:
      key: PRNG key.
      x: (N, H, W, C), any dtype.
      pad: padding in pixels (static).
    Returns:
      same shape and dtype.
    """
    if pad < 0:
        raise ValueError(f"pad must be >= 0, got {pad}")
    if pad == 0:
        return x
    n, h, w, c = x.shape
    xp = jnp.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    offs = jax.random.randint(key, (n, 2), 0, 2 * pad + 1)

    def crop(img, off):
        return jax.lax.dynamic_slice(img, (off[0], off[1], 0), (h, w, c))

    return jax.vmap(crop)(xp, offs)


def augment_flip_crop(key: jax.Array, x: jax.Array, pad: int = 4, flip: bool = True) -> jax.Array:
    """Random crop (zero-pad ``pad``, crop back to H x W) then random horizontal flip.

    Jittable (``pad``/``flip`` static); the same key gives the same result.

    Args:
      key: PRNG key.
      x: (N, H, W, C) images, uint8 or float, not yet normalised.
      pad: crop padding (4 for CIFAR); 0 disables the crop.
      flip: apply the random horizontal flip.
    Returns:
      (N, H, W, C), same dtype as ``x``.
    """
    x = jnp.asarray(x)
    if x.ndim != 4:
        raise ValueError(f"expected (N, H, W, C) images, got shape {x.shape}")
    k_crop, k_flip = jax.random.split(key)
    x = random_crop(k_crop, x, pad)
    if flip:
        x = random_flip(k_flip, x)
    return x


def normalise(x: jax.Array, mean: Sequence[float], std: Sequence[float]) -> jax.Array:
    """Scale to [0, 1] (uint8 / 255; floats as given) and standardise per channel.

    Args:
      x: (..., C) uint8 in 0..255 or float in [0, 1].
      mean, std: per-channel statistics of the [0, 1]-scaled input, length C (or 1).
    Returns:
      float32 array of the same shape.
    """
    x = jnp.asarray(x)
    if x.dtype == jnp.uint8:
        x = x.astype(jnp.float32) / 255.0
    else:
        x = x.astype(jnp.float32)
    mean = jnp.asarray(mean, jnp.float32)
    std = jnp.asarray(std, jnp.float32)
    return (x - mean) / std
