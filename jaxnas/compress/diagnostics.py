"""Disentanglement diagnostics that need no ground-truth factors.

- Per-latent KL: the batch mean of KL(q(z_j|x) || N(0, 1)) for each latent j; latents with
  (near) zero KL carry no information ("posterior collapse").
- Active units (Burda, Grosse and Salakhutdinov 2016): unit j is active when
  Cov_x(E_q[z_j|x]) exceeds a threshold (0.01 by default).
- Total correlation TC = KL(q(z) || prod_j q(z_j)), with q(z) the aggregate posterior of M
  images, q(z) = (1/M) sum_k q(z|x_k) (the plug-in estimate; Chen, Li, Grosse and Duvenaud
  2018, beta-TCVAE, use the same sums): with z_i ~ q(z|x_i),
      log q(z_i) = logsumexp_k log q(z_i | x_k) - log M,
  the same per dimension for log q(z_ij), and TC = mean_i [log q(z_i) - sum_j log q(z_ij)].
  It is at most (D - 1) log M: when every posterior is much narrower than the spread of the
  means (a sharp code) the estimate saturates there, so compare values at the same M only.
  Passing ``dataset_size`` N gives their minibatch-weighted-sampling form instead
  (log(N M) in place of log M), which adds (D - 1) log N.
- Latent traversals: decode mu(x) with one latent swept over [-r, r], the others fixed.

Pure functions of arrays; writing the PNG grid is the CLI's job.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from jaxnas.compress.loss import gaussian_kl

__all__ = ["active_units", "encode_all", "per_latent_kl", "total_correlation", "traversal_grid",
           "latent_summary"]


def encode_all(model, params, x, batch: int = 500):
    """(mu, logvar) of all images x (N, H, W, C) in [0, 1], as numpy (N, latent_dim)."""
    enc = jax.jit(lambda p, xb: model.apply({"params": p}, xb, method=model.encode))
    mus, lvs = [], []
    for i in range(0, len(x), batch):
        mu, lv = enc(params, jnp.asarray(x[i:i + batch]))
        mus.append(np.asarray(mu))
        lvs.append(np.asarray(lv) if lv is not None else np.zeros_like(np.asarray(mu)))
    return np.concatenate(mus), np.concatenate(lvs)


def per_latent_kl(mu, logvar):
    """(latent_dim,) mean KL per latent over the images."""
    return np.asarray(gaussian_kl(jnp.asarray(mu), jnp.asarray(logvar)).mean(0))


def active_units(mu, threshold: float = 0.01):
    """(count, per-unit variance of the means): Burda et al.'s active units."""
    var = np.var(np.asarray(mu, np.float64), axis=0)
    return int(np.sum(var > threshold)), var


def _log_normal(z, mu, logvar):
    return -0.5 * (math.log(2 * math.pi) + logvar + jnp.square(z - mu) * jnp.exp(-logvar))


def total_correlation(key, mu, logvar, dataset_size: int | None = None) -> float:
    """Estimate of the total correlation (nats) of the aggregate posterior of M encodings.

    Args:
      key: PRNG key for z ~ q(z|x).
      mu, logvar: (M, D) posterior parameters of M images.
      dataset_size: None (default, used by the sweep): the plug-in estimate over these M
        images. N: Chen et al.'s minibatch-weighted sampling for a dataset of N images.
    """
    mu, logvar = jnp.asarray(mu, jnp.float32), jnp.asarray(logvar, jnp.float32)
    m = mu.shape[0]
    log_norm = math.log(m) if dataset_size is None else math.log(dataset_size * m)
    return float(_tc(key, mu, logvar, log_norm))


@jax.jit
def _tc(key, mu, logvar, log_nm):
    z = mu + jnp.exp(0.5 * logvar) * jax.random.normal(key, mu.shape)
    # (M, M, D): log q(z_i[d] | x_k)
    lq = _log_normal(z[:, None, :], mu[None, :, :], logvar[None, :, :])
    log_qz = jax.nn.logsumexp(lq.sum(-1), axis=1) - log_nm
    log_prod = (jax.nn.logsumexp(lq, axis=1) - log_nm).sum(-1)
    return jnp.mean(log_qz - log_prod)


def latent_summary(key, model, params, x, threshold: float = 0.01,
                   dataset_size: int | None = None) -> dict:
    """All diagnostics of a trained beta-VAE on images x: per-latent KL (list), total KL,
    active units, per-unit variance of the means, and TC (nats)."""
    mu, lv = encode_all(model, params, x)
    kl = per_latent_kl(mu, lv)
    au, var = active_units(mu, threshold)
    tc = total_correlation(key, mu, lv, dataset_size)
    return {"kl_per_latent": [float(v) for v in kl], "kl_total": float(kl.sum()),
            "active_units": au, "mu_variance": [float(v) for v in var],
            "total_correlation": tc}


def traversal_grid(model, params, x0, latents, value_range: float = 3.0, steps: int = 9):
    """Decoded traversals: for each latent in ``latents``, sweep it over
    ``linspace(-range, range, steps)`` with the other latents at mu(x0).

    Args:
      x0: (1, H, W, C) the image whose code is traversed.
      latents: indices of the latents to traverse (rows of the grid).
    Returns:
      (len(latents), steps, H, W, C) float32 images in [0, 1].
    """
    lat = jnp.asarray(np.asarray(latents, np.int32))

    @jax.jit
    def grid(params, x0, lat):
        mu, _ = model.apply({"params": params}, x0, method=model.encode)
        vals = jnp.linspace(-value_range, value_range, steps)
        z = jnp.broadcast_to(mu, (lat.shape[0], steps, mu.shape[-1]))
        z = jnp.where(jnp.arange(mu.shape[-1]) == lat[:, None, None], vals[None, :, None], z)
        img = model.apply({"params": params}, z.reshape(-1, mu.shape[-1]), method=model.decode)
        return jax.nn.sigmoid(img).reshape(lat.shape[0], steps, *img.shape[1:])

    return np.asarray(grid(params, jnp.asarray(x0), lat))
