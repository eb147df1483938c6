"""The beta-VAE + classification objective (METHODS.md section 7).

    L = E_q[-log p(x|z)] + beta * KL(q(z|x) || N(0, I)) + cls_weight * CE(classify(z), y)

(Higgins et al. 2017 for the first two terms; the classification term on z is this project's
reading of the paper, whose exact combination is UNCONFIRMED.) Every term is summed over its
pixels / latents and averaged over the batch. The control classifier's loss is the CE alone.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

__all__ = ["gaussian_kl", "reconstruction_loss", "vae_loss"]


def gaussian_kl(mu, logvar):
    """Closed-form KL(N(mu, diag exp(logvar)) || N(0, I)) per latent.

    Args:
      mu, logvar: (..., latent_dim) float.
    Returns:
      (..., latent_dim): 0.5 * (mu^2 + exp(logvar) - logvar - 1); sum the last axis for the
      KL of the whole code.
    """
    return 0.5 * (jnp.square(mu) + jnp.exp(logvar) - logvar - 1.0)


def reconstruction_loss(logits, x, kind: str = "bernoulli"):
    """Negative log-likelihood of images x (B, H, W, C) in [0, 1] given pixel logits, per image.

    ``'bernoulli'``: sigmoid cross-entropy summed over pixels (the usual choice for MNIST, also
    used for CIFAR-10 here); ``'gaussian'``: 0.5 * squared error of sigmoid(logits), summed
    (a unit-variance Gaussian up to a constant). Returns (B,)."""
    if kind == "bernoulli":
        per = optax.sigmoid_binary_cross_entropy(logits, x)
    elif kind == "gaussian":
        per = 0.5 * jnp.square(jax.nn.sigmoid(logits) - x)
    else:
        raise ValueError(f"unknown reconstruction loss {kind!r}; use 'bernoulli' or 'gaussian'")
    return per.reshape(per.shape[0], -1).sum(-1)


def vae_loss(out: dict, x, y, beta, cls_weight, recon: str = "bernoulli"):
    """Total loss and its terms from a :class:`~jaxnas.compress.model.BetaVAE` forward.

    Args:
      out: the model's dict (mu, logvar, z, logits, recon); logvar None for the control.
      x: (B, H, W, C) images in [0, 1]; y: (B,) int labels.
      beta, cls_weight: scalars (may be traced: changing them does not recompile).
    Returns:
      (loss, metrics) with metrics {'recon', 'kl', 'ce', 'accuracy'} (batch means).
    """
    ce = optax.softmax_cross_entropy_with_integer_labels(out["logits"], y).mean()
    acc = jnp.mean(jnp.argmax(out["logits"], -1) == y)
    if out["logvar"] is None:
        zero = jnp.zeros((), ce.dtype)
        return ce, {"recon": zero, "kl": zero, "ce": ce, "accuracy": acc}
    rec = reconstruction_loss(out["recon"], x, recon).mean()
    kl = gaussian_kl(out["mu"], out["logvar"]).sum(-1).mean()
    loss = rec + beta * kl + cls_weight * ce
    return loss, {"recon": rec, "kl": kl, "ce": ce, "accuracy": acc}
