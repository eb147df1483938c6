"""The beta-VAE with a classifier on z, and the plain classifier used as the control.

Architecture (a choice: the paper's, arXiv 2307.09994, is not public; METHODS.md section 7):

- encoder: ``len(channels)`` 4x4 convolutions with stride 2 (SAME padding) and ReLU, flatten,
  a dense layer of ``hidden`` units with ReLU, then one dense head giving the mean and the
  log-variance of z (2 * latent_dim outputs);
- decoder: dense ``hidden`` -> dense to the last encoder feature map -> transposed 4x4
  convolutions with stride 2 back to the image, giving per-pixel logits;
- classifier: one dense layer from z (a sample during training, the mean at test time) to the
  class logits.

Strided convolutions instead of pooling: on XLA:CPU the backward pass of reduce_window pooling
is pathologically slow (DESIGN.md). The control (``vae=False``) is the same encoder with a
``latent_dim``-wide head whose output is used directly (no sampling, no decoder, no KL), so
both classify from a ``latent_dim``-wide code through the same number of layers.

Layer names are stable (``conv0``..., ``fc``, ``head``, ``cls``, ``dec_fc``, ``dec_proj``,
``deconv0``...) because pruning scopes and FLOPs counts refer to them.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

__all__ = ["BetaVAE", "INFERENCE_LAYERS", "layer_positions"]

#: Layers of the inference (classification) path; the decoder is only needed for training.
INFERENCE_LAYERS = ("conv", "fc", "head", "cls")


class BetaVAE(nn.Module):
    """beta-VAE (``vae=True``) or plain classifier (``vae=False``) on NHWC images in [0, 1].

    Attributes:
      image_shape: (H, W, C); H and W divisible by ``2 ** len(channels)``.
      latent_dim, channels, hidden, num_classes: see the module docstring.
      vae: False for the control classifier.
    """

    image_shape: tuple[int, int, int]
    latent_dim: int = 10
    channels: tuple[int, ...] = (32, 64)
    hidden: int = 256
    num_classes: int = 10
    vae: bool = True

    def setup(self):
        self.convs = [nn.Conv(c, (4, 4), strides=(2, 2), padding="SAME", name=f"conv{i}")
                      for i, c in enumerate(self.channels)]
        self.fc = nn.Dense(self.hidden, name="fc")
        self.head = nn.Dense(2 * self.latent_dim if self.vae else self.latent_dim, name="head")
        self.cls = nn.Dense(self.num_classes, name="cls")
        if self.vae:
            h, w, c = self.image_shape
            n = len(self.channels)
            self._grid = (h >> n, w >> n)
            self.dec_fc = nn.Dense(self.hidden, name="dec_fc")
            self.dec_proj = nn.Dense(self._grid[0] * self._grid[1] * self.channels[-1],
                                     name="dec_proj")
            outs = list(reversed(self.channels[:-1])) + [c]
            self.deconvs = [nn.ConvTranspose(o, (4, 4), strides=(2, 2), padding="SAME",
                                             name=f"deconv{i}") for i, o in enumerate(outs)]

    def encode(self, x):
        """x (B, H, W, C) float in [0, 1] -> (mu, logvar), each (B, latent_dim).

        For the control, logvar is None and mu is the deterministic code."""
        for conv in self.convs:
            x = nn.relu(conv(x))
        x = nn.relu(self.fc(x.reshape(x.shape[0], -1)))
        h = self.head(x)
        if not self.vae:
            return h, None
        mu, logvar = jnp.split(h, 2, axis=-1)
        return mu, logvar

    def decode(self, z):
        """z (B, latent_dim) -> pixel logits (B, H, W, C)."""
        x = nn.relu(self.dec_fc(z))
        x = nn.relu(self.dec_proj(x)).reshape(z.shape[0], *self._grid, self.channels[-1])
        for i, d in enumerate(self.deconvs):
            x = d(x)
            if i < len(self.deconvs) - 1:
                x = nn.relu(x)
        return x

    def classify(self, z):
        """z (B, latent_dim) -> class logits (B, num_classes)."""
        return self.cls(z)

    def __call__(self, x, key=None):
        """Training forward. Returns a dict: mu, logvar, z, logits, recon (pixel logits).

        ``key`` draws z = mu + exp(logvar / 2) * eps (reparameterisation); without a key,
        z = mu. The control returns logvar = recon = None and z = mu."""
        mu, logvar = self.encode(x)
        if not self.vae:
            return {"mu": mu, "logvar": None, "z": mu, "logits": self.classify(mu), "recon": None}
        z = mu if key is None else mu + jnp.exp(0.5 * logvar) * jax.random.normal(key, mu.shape)
        return {"mu": mu, "logvar": logvar, "z": z, "logits": self.classify(z),
                "recon": self.decode(z)}


def layer_positions(model: BetaVAE) -> dict[str, int]:
    """Positions per layer: H_out * W_out for convs, H_in * W_in for transposed convs, 1 for
    dense layers.

    The multiply-accumulates of a layer are ``nonzero kernel weights x positions``, so the
    FLOPs of a pruned network follow from its masks (:func:`jaxnas.compress.pruning.flops`)."""
    h, w, _ = model.image_shape
    pos = {}
    for i in range(len(model.channels)):
        h, w = -(-h // 2), -(-w // 2)
        pos[f"conv{i}"] = h * w
    pos.update(fc=1, head=1, cls=1)
    if model.vae:
        pos.update(dec_fc=1, dec_proj=1)
        for i in range(len(model.channels)):  # a transposed conv scatters each input position
            pos[f"deconv{i}"] = h * w
            h, w = 2 * h, 2 * w
    return pos
