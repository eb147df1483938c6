"""PyTorch peer of the NB201 weight-sharing supernet (jaxnas.nets.supernet.NB201Supernet).

A library module, not a benchmark script: benchmarks/supernet_vs_torch.py times it against
jaxnas and prints the RESULT line; tests/test_supernet_torch_parity.py checks one step.

The network is AutoDL-Projects' NB201 search ``TinyNetwork`` (``SearchCell`` with mixed ops,
as EvNAS/CMANAS use it) written in plain PyTorch eager mode: stem conv + BN, 3 stages of N
search cells, ``ResNetBasicblock`` reductions, ``lastact`` BN + ReLU, global pooling, linear.
Cell ops: ``ReLUConvBN(bias=not affine)`` with ``BatchNorm2d(affine, track_running_stats)``,
``AvgPool2d(3, 1, 1, count_include_pad=False)``, identity, zero. Each edge computes
``sum_o softmax(alpha_e)_o * o(x)``; the ``none`` op is skipped (its term is 0; AutoDL computes
``x.mul(0.)``, so this peer does slightly less work than the original).

Training: ``SGD(lr, momentum 0.9, nesterov, weight_decay 3e-4)`` after
``clip_grad_norm_(5)``, cross-entropy, as DARTS/EvNAS ``train_search``. Evaluation:
``model.eval()`` (running statistics), one alpha at a time.

torch is a ``[bench]`` extra, never a jaxnas runtime dependency.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from jaxnas.spaces import nb201 as space

OPS = space.OPS


class ReLUConvBN(nn.Module):
    def __init__(self, c_in, c_out, k, stride=1, affine=True, track=True):
        super().__init__()
        self.op = nn.Sequential(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_out, k, stride=stride, padding=k // 2, bias=not affine),
            nn.BatchNorm2d(c_out, affine=affine, track_running_stats=track),
        )

    def forward(self, x):
        return self.op(x)


class ResNetBasicblock(nn.Module):
    def __init__(self, c_in, c_out):
        super().__init__()
        self.conv_a = ReLUConvBN(c_in, c_out, 3, 2)
        self.conv_b = ReLUConvBN(c_out, c_out, 3, 1)
        self.downsample = nn.Sequential(
            nn.AvgPool2d(kernel_size=2, stride=2, padding=0),
            nn.Conv2d(c_in, c_out, kernel_size=1, stride=1, padding=0, bias=False),
        )

    def forward(self, x):
        return self.downsample(x) + self.conv_b(self.conv_a(x))


class MixedOp(nn.Module):
    def __init__(self, c, affine, track):
        super().__init__()
        self.ops = nn.ModuleDict({
            "nor_conv_1x1": ReLUConvBN(c, c, 1, 1, affine, track),
            "nor_conv_3x3": ReLUConvBN(c, c, 3, 1, affine, track),
        })
        self.pool = nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)

    def forward(self, x, w):
        return (w[1] * x + w[2] * self.ops["nor_conv_1x1"](x) + w[3] * self.ops["nor_conv_3x3"](x)
                + w[4] * self.pool(x))


class SearchCell(nn.Module):
    def __init__(self, c, affine, track):
        super().__init__()
        self.edges = nn.ModuleList([MixedOp(c, affine, track) for _ in range(space.NUM_EDGES)])

    def forward(self, x, weights):
        nodes = [x]
        for j in range(1, 4):
            nodes.append(sum(self.edges[e](nodes[frm], weights[e])
                             for e, (to, frm) in enumerate(space.EDGES) if to == j))
        return nodes[-1]


class Supernet(nn.Module):
    """NB201 search TinyNetwork; ``forward(x NCHW, alpha (6, 5))`` -> logits."""

    def __init__(self, C=16, N=5, num_classes=10, affine=False, track=True):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, C, 3, padding=1, bias=False), nn.BatchNorm2d(C))
        chans = [C] * N + [2 * C] * (N + 1) + [4 * C] * (N + 1)
        reduce = [False] * N + [True] + [False] * N + [True] + [False] * N
        cells, c_prev = [], C
        for c, r in zip(chans, reduce):
            cells.append(ResNetBasicblock(c_prev, c) if r else SearchCell(c, affine, track))
            c_prev = c
        self.cells = nn.ModuleList(cells)
        self.lastact = nn.Sequential(nn.BatchNorm2d(c_prev), nn.ReLU(inplace=True))
        self.classifier = nn.Linear(c_prev, num_classes)

    def forward(self, x, alpha):
        weights = F.softmax(alpha, dim=-1)
        h = self.stem(x)
        for cell in self.cells:
            h = cell(h) if isinstance(cell, ResNetBasicblock) else cell(h, weights)
        h = self.lastact(h)
        return self.classifier(h.mean(dim=(2, 3)))


# ---------------------------------------------------------------------------- weights


def _t(a, dtype=torch.float32):
    # a copy: jax.device_get may return views of JAX's buffers, which torch updates in place
    return torch.tensor(np.array(a), dtype=dtype)


def _load_rcb(m: ReLUConvBN, p: dict, s: dict | None):
    conv, bn = m.op[1], m.op[2]
    k = np.asarray(p["kernel"])
    conv.weight.data = _t(k.transpose(3, 2, 0, 1) if k.ndim == 4 else k.T[:, :, None, None])
    if "conv_bias" in p:
        conv.bias.data = _t(p["conv_bias"])
    if "scale" in p:
        bn.weight.data, bn.bias.data = _t(p["scale"]), _t(p["bias"])
    if s and bn.running_mean is not None:
        bn.running_mean.data, bn.running_var.data = _t(s["mean"]), _t(s["var"])


def _load_bn(bn: nn.BatchNorm2d, p: dict, s: dict | None):
    bn.weight.data, bn.bias.data = _t(p["scale"]), _t(p["bias"])
    if s:
        bn.running_mean.data, bn.running_var.data = _t(s["mean"]), _t(s["var"])


def load_jax_params(model: Supernet, params: dict, batch_stats: dict | None = None) -> Supernet:
    """Copy jaxnas ``NB201Supernet`` variables (HWIO / (in, out) layouts) into ``model``."""
    bs = batch_stats or {}
    model.stem[0].weight.data = _t(np.asarray(params["stem_kernel"]).transpose(3, 2, 0, 1))
    _load_bn(model.stem[1], params["stem_bn"], bs.get("stem_bn"))
    for i, cell in enumerate(model.cells):
        p, s = params[f"cells_{i}"], bs.get(f"cells_{i}", {})
        if isinstance(cell, ResNetBasicblock):
            _load_rcb(cell.conv_a, p["conv_a"], s.get("conv_a"))
            _load_rcb(cell.conv_b, p["conv_b"], s.get("conv_b"))
            cell.downsample[1].weight.data = _t(np.asarray(p["shortcut"]).T[:, :, None, None])
        else:
            for e, edge in enumerate(cell.edges):
                for name, op in edge.ops.items():
                    _load_rcb(op, p[f"edge_{e}"][name], s.get(f"edge_{e}", {}).get(name))
    _load_bn(model.lastact[0], params["lastact"], bs.get("lastact"))
    model.classifier.weight.data = _t(np.asarray(params["classifier_kernel"]).T)
    model.classifier.bias.data = _t(params["classifier_bias"])
    return model


def make_optimizer(model, lr=0.025, momentum=0.9, nesterov=False, weight_decay=3e-4):
    return torch.optim.SGD(model.parameters(), lr, momentum=momentum, nesterov=nesterov,
                           weight_decay=weight_decay)


def train_step(model, opt, alpha, x, y, grad_clip=5.0) -> float:
    """One DARTS-style step (train mode); returns the loss before the update."""
    model.train()
    opt.zero_grad(set_to_none=True)
    loss = F.cross_entropy(model(x, alpha), y)
    loss.backward()
    if grad_clip and grad_clip > 0:
        nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    opt.step()
    return loss.detach()


@torch.no_grad()
def population_accuracy(model, alphas, x, y, batch=1024) -> np.ndarray:
    """Top-1 accuracy (%) of every alpha, one alpha at a time, ``model.eval()``."""
    model.eval()
    out = []
    for a in alphas:
        correct = 0
        for i in range(0, x.shape[0], batch):
            correct += int((model(x[i:i + batch], a).argmax(-1) == y[i:i + batch]).sum())
        out.append(100.0 * correct / x.shape[0])
    return np.asarray(out, np.float32)
