"""PyTorch peer of ``jaxnas.compress``: the same beta-VAE with a classifier on z, trained the same way.

Same layers as :class:`jaxnas.compress.model.BetaVAE`: 4x4 stride-2 convolutions (padding 1,
which equals XLA's SAME for even sizes) with ReLU, dense ``hidden`` + ReLU, a head giving mean
and log-variance, a dense classifier on z; decoder dense -> dense -> 4x4 stride-2 transposed
convolutions (padding 1, the same 2x upsampling). Loss: Bernoulli reconstruction summed over
pixels + beta * KL + cls_weight * cross-entropy, batch means; Adam. Used by
``benchmarks/compress_vs_torch.py`` only.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class TorchBetaVAE(nn.Module):
    def __init__(self, image_shape, latent_dim=10, channels=(32, 64), hidden=256, num_classes=10):
        super().__init__()
        h, w, c = image_shape
        n = len(channels)
        self.grid = (h >> n, w >> n)
        self.latent_dim = latent_dim
        self.channels = tuple(channels)
        ins = (c,) + tuple(channels[:-1])
        self.convs = nn.ModuleList(nn.Conv2d(i, o, 4, 2, 1) for i, o in zip(ins, channels))
        flat = self.grid[0] * self.grid[1] * channels[-1]
        self.fc = nn.Linear(flat, hidden)
        self.head = nn.Linear(hidden, 2 * latent_dim)
        self.cls = nn.Linear(latent_dim, num_classes)
        self.dec_fc = nn.Linear(latent_dim, hidden)
        self.dec_proj = nn.Linear(hidden, flat)
        outs = tuple(reversed(channels[:-1])) + (c,)
        dins = (channels[-1],) + outs[:-1]
        self.deconvs = nn.ModuleList(nn.ConvTranspose2d(i, o, 4, 2, 1) for i, o in zip(dins, outs))

    def forward(self, x):
        """x (B, C, H, W) in [0, 1] -> (mu, logvar, class logits, pixel logits)."""
        for conv in self.convs:
            x = F.relu(conv(x))
        h = F.relu(self.fc(x.flatten(1)))
        mu, logvar = self.head(h).chunk(2, dim=-1)
        z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
        d = F.relu(self.dec_proj(F.relu(self.dec_fc(z))))
        d = d.view(-1, self.channels[-1], *self.grid)
        for i, dc in enumerate(self.deconvs):
            d = dc(d)
            if i < len(self.deconvs) - 1:
                d = F.relu(d)
        return mu, logvar, self.cls(z), d


def loss_fn(model, x, y, beta, cls_weight):
    mu, logvar, logits, recon = model(x)
    rec = F.binary_cross_entropy_with_logits(recon, x, reduction="sum") / x.shape[0]
    kl = (0.5 * (mu.square() + logvar.exp() - logvar - 1.0)).sum(-1).mean()
    ce = F.cross_entropy(logits, y)
    return rec + beta * kl + cls_weight * ce


def make_trainer(image_shape, latent_dim, channels, hidden, num_classes, lr=1e-3, seed=0):
    torch.manual_seed(seed)
    model = TorchBetaVAE(image_shape, latent_dim, channels, hidden, num_classes)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    return model, opt


def train_steps(model, opt, batches, beta=4.0, cls_weight=10.0) -> float:
    """One Adam step per (x NCHW float tensor, y long tensor) batch; returns the last loss."""
    model.train()
    loss = None
    for x, y in batches:
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model, x, y, beta, cls_weight)
        loss.backward()
        opt.step()
    return float(loss.detach())
