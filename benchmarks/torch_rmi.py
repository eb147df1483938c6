"""PyTorch peer of the RMI estimator: one architecture at a time, as RMI-NAS does.

A library module, not a benchmark script: benchmarks/rmi_vs_torch.py times it against jaxnas
and prints the RESULT line.

This re-writes, in plain PyTorch eager mode, what the published RMI-NAS code computes for
NAS-Bench-201 (``xfey/RMI-NAS`` ``RMINAS_nb201.py`` with the AutoDL ``TinyNetwork``; METHODS.md
5.1): build the TinyNetwork of one architecture, train it in train mode on the single selected
batch with SGD (lr 0.1, momentum 0.9, weight decay 5e-4), loss
``0.8 * sum_i (1 - CKA_i) + 0.2 * CE``, and return the loss of forward index ``steps`` (150).

Differences from the published script, all on purpose:

* the initial weights are copied from a jaxnas parameter dict (:func:`load_jax_params`) so
  that both implementations start identically; without one, PyTorch's own default init is used;
* the CKA of an all-zero / batch-constant feature map is 0 rather than NaN, and a disconnected
  architecture returns the finite worst score without training (the jaxnas conventions;
  the published code would return ``inf``);
* the last (scored) forward does not run the (unused) backward pass and update, so both
  implementations do the same work: ``steps + 1`` forwards and ``steps`` updates.

The CKA follows RMI-NAS: Gram matrices of the flattened features, centred with float64 row means,
``<K_c, L_c> / (|K_c| |L_c|)``.

torch is a ``[bench]`` extra, never a jaxnas runtime dependency.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from jaxnas.spaces import nb201 as space

OPS = space.OPS


class ReLUConvBN(nn.Module):
    def __init__(self, c_in, c_out, k, stride, affine=True):
        super().__init__()
        self.op = nn.Sequential(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_out, k, stride=stride, padding=k // 2, bias=not affine),
            nn.BatchNorm2d(c_out, affine=affine),
        )

    def forward(self, x):
        return self.op(x)


class Zero(nn.Module):
    def forward(self, x):
        return x.mul(0.0)


class Identity(nn.Module):
    def forward(self, x):
        return x


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


def make_op(name, c, affine):
    if name == "none":
        return Zero()
    if name == "skip_connect":
        return Identity()
    if name == "avg_pool_3x3":
        return nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)
    return ReLUConvBN(c, c, 1 if name == "nor_conv_1x1" else 3, 1, affine)


class InferCell(nn.Module):
    def __init__(self, arch, c, affine=True):
        super().__init__()
        self.edges = nn.ModuleDict(
            {f"edge_{e}": make_op(OPS[arch[e]], c, affine) for e in range(space.NUM_EDGES)}
        )

    def forward(self, x):
        nodes = [x]
        for j in range(1, 4):
            nodes.append(
                sum(
                    self.edges[f"edge_{e}"](nodes[frm])
                    for e, (to, frm) in enumerate(space.EDGES)
                    if to == j
                )
            )
        return nodes[-1]


class TinyNetwork(nn.Module):
    """AutoDL/RMI-NAS ``TinyNetwork`` returning ``([f1, f2, f3], logits)``."""

    def __init__(self, arch, C=16, N=5, num_classes=10, affine=True):
        super().__init__()
        self.N = N
        self.stem = nn.Sequential(nn.Conv2d(3, C, 3, padding=1, bias=False), nn.BatchNorm2d(C))
        chans = [C] * N + [2 * C] * (N + 1) + [4 * C] * (N + 1)
        reduce = [False] * N + [True] + [False] * N + [True] + [False] * N
        cells = []
        c_prev = C
        for c, r in zip(chans, reduce):
            cells.append(ResNetBasicblock(c_prev, c) if r else InferCell(arch, c, affine))
            c_prev = c
        self.cells = nn.ModuleList(cells)
        self.lastact = nn.Sequential(nn.BatchNorm2d(c_prev), nn.ReLU(inplace=True))
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c_prev, num_classes)

    def forward(self, x):
        feats = []
        h = self.stem(x)
        for i, cell in enumerate(self.cells):
            h = cell(h)
            if i in (self.N - 1, 2 * self.N):
                feats.append(h)
        h = self.lastact(h)
        feats.append(h)
        out = self.global_pooling(h).flatten(1)
        return feats, self.classifier(out)


# ---------------------------------------------------------------------------- weights from JAX


def _t(a):
    return torch.from_numpy(np.array(a))


def _conv_w(k):
    k = np.asarray(k)
    if k.ndim == 4:  # HWIO -> OIHW
        return _t(k.transpose(3, 2, 0, 1))
    return _t(k.T[:, :, None, None])  # (C_in, C_out) -> (C_out, C_in, 1, 1)


def _load_rcb(mod: ReLUConvBN, p):
    conv, bn = mod.op[1], mod.op[2]
    conv.weight.copy_(_conv_w(p["kernel"]))
    if "conv_bias" in p:
        conv.bias.copy_(_t(p["conv_bias"]))
    if "scale" in p:
        bn.weight.copy_(_t(p["scale"]))
        bn.bias.copy_(_t(p["bias"]))


@torch.no_grad()
def load_jax_params(model: TinyNetwork, params: dict) -> TinyNetwork:
    """Copy a jaxnas :class:`~jaxnas.nets.TinyNetwork` parameter dict (``variables['params']``,
    or :func:`jaxnas.nets.single_path_params` of a mixed one) into ``model``."""
    model.stem[0].weight.copy_(_conv_w(params["stem_kernel"]))
    model.stem[1].weight.copy_(_t(params["stem_bn"]["scale"]))
    model.stem[1].bias.copy_(_t(params["stem_bn"]["bias"]))
    for i, cell in enumerate(model.cells):
        p = params.get(f"cells_{i}", {})
        if isinstance(cell, ResNetBasicblock):
            _load_rcb(cell.conv_a, p["conv_a"])
            _load_rcb(cell.conv_b, p["conv_b"])
            cell.downsample[1].weight.copy_(_conv_w(p["shortcut"]))
            continue
        for e in range(space.NUM_EDGES):
            mod = cell.edges[f"edge_{e}"]
            if isinstance(mod, ReLUConvBN):
                (op_params,) = p[f"edge_{e}"].values()
                _load_rcb(mod, op_params)
    model.lastact[0].weight.copy_(_t(params["lastact"]["scale"]))
    model.lastact[0].bias.copy_(_t(params["lastact"]["bias"]))
    model.classifier.weight.copy_(_t(np.asarray(params["classifier_kernel"]).T))
    model.classifier.bias.copy_(_t(params["classifier_bias"]))
    return model


# ---------------------------------------------------------------------------- CKA loss (RMI-NAS)


def gram_linear(x):
    return x @ x.t()


def center_gram(gram):
    gram = gram.clone()
    means = torch.mean(gram, 0, dtype=torch.float64)
    means -= torch.mean(means) / 2
    gram -= means[:, None]
    gram -= means[None, :]
    return gram


def cka(gram_x, gram_y):
    gx, gy = center_gram(gram_x), center_gram(gram_y)
    hsic = torch.sum(gx * gy)
    nx, ny = torch.linalg.norm(gx), torch.linalg.norm(gy)
    # jaxnas convention: a constant / all-zero feature map has CKA 0 (RMI-NAS: NaN)
    if torch.trace(gx).item() <= 1e-12 * torch.trace(gram_x).item() or ny.item() == 0.0:
        return hsic * 0.0
    return hsic / (nx * ny)


def rmi_loss(feats, teacher_grams, logits, y, beta=0.8):
    b = logits.shape[0]
    sims = [cka(gram_linear(f.reshape(b, -1)), g) for f, g in zip(feats, teacher_grams)]
    cka_term = sum(1.0 - s for s in sims)
    return beta * cka_term + (1.0 - beta) * F.cross_entropy(logits, y)


def worst_score(num_classes: int, beta: float = 0.8, n_stages: int = 3) -> float:
    """Score of a network with no information: CKA 0 at every stage, uniform logits."""
    return beta * n_stages + (1.0 - beta) * math.log(num_classes)


def train_arch(
    arch,
    x,
    y,
    teacher_feats,
    *,
    params=None,
    C=16,
    N=5,
    num_classes=10,
    steps=150,
    lr=0.1,
    momentum=0.9,
    weight_decay=5e-4,
    beta=0.8,
    affine=True,
    trajectory=False,
    dtype=torch.float32,
    device="cpu",
):
    """RMI loss of one architecture (RMI-NAS ``train_arch``).

    Args:
        arch: 6 NB201 op codes.
        x: (B, 32, 32, 3) float32 NHWC images (normalised), numpy or torch.
        y: (B,) int labels.
        teacher_feats: the 3 teacher stage features, each (B, ...) (any layout: Gram matrices
            do not depend on the feature order).
        params: jaxnas TinyNetwork params to start from (else PyTorch's default init).
        steps: training steps; the loss of forward index ``steps`` is returned.
        trajectory: return the losses of forwards 0..steps (a float64 numpy array) instead.
        dtype: torch.float32 (as published) or torch.float64 (to verify the arithmetic).
        device: torch device ("cpu" or "cuda").
    Returns:
        float: the loss at ``steps`` (NaN -> inf), or the trajectory.
    """
    arch = tuple(int(a) for a in arch)
    if not bool(space.is_connected(np.asarray(arch))):
        w = worst_score(num_classes, beta)
        return np.full(steps + 1, w) if trajectory else w
    npdt = np.float64 if dtype == torch.float64 else np.float32
    xt = torch.as_tensor(np.array(x, npdt)).permute(0, 3, 1, 2).contiguous().to(device)
    yt = torch.as_tensor(np.array(y)).long().to(device)
    b = xt.shape[0]
    with torch.no_grad():
        tg = [gram_linear(torch.as_tensor(np.array(f, npdt)).reshape(b, -1).to(device)) for f in teacher_feats]
    model = TinyNetwork(arch, C, N, num_classes, affine).to(dtype)
    if params is not None:
        load_jax_params(model, params)
    model.to(device).train()
    opt = torch.optim.SGD(model.parameters(), lr, momentum=momentum, weight_decay=weight_decay)
    losses = []
    for step in range(steps + 1):
        opt.zero_grad()
        feats, logits = model(xt)
        loss = rmi_loss(feats, tg, logits, yt, beta)
        losses.append(loss.item())
        if step == steps:
            break
        loss.backward()
        opt.step()
    if trajectory:
        return np.asarray(losses)
    out = losses[-1]
    return math.inf if math.isnan(out) else out
