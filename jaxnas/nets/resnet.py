"""CIFAR ResNets (He et al. 2016, Sec. 4.2), option-A shortcuts: the RMI reference network.

METHODS.md 5.1: the CIFAR-10 reference ("teacher") of RMI-NAS / HW-EvRSNAS is a pretrained
ResNet-20 (akamaster/pytorch_resnet_cifar10, 91.7 %), and its features are the outputs of its
three stages (16x32x32, 32x16x16, 64x8x8 for 32x32 inputs).

Architecture (``depth = 6n + 2``, ResNet-20 has n = 3 blocks per stage):

- stem: conv3x3(C_in -> 16, pad 1, no bias) -> BN -> ReLU;
- three stages of ``n`` basic blocks with widths 16/32/64, stride 2 at the first block of
  stages 2 and 3. Block: ``relu(bn1(conv1(x, stride)))`` -> ``bn2(conv2)`` -> ``+ shortcut(x)``
  -> ReLU;
- shortcut **option A** (parameter-free): when stride or width changes, ``x[:, ::2, ::2, :]``
  and zero-pad ``planes // 4`` channels on each side; identity otherwise;
- head: global average pool -> linear(64 -> num_classes).

BatchNorm uses eps 1e-5 and PyTorch momentum 0.1 (flax momentum 0.9). In training mode both
normalise with the biased batch variance; for the *running* variance PyTorch averages the
unbiased one (x n/(n-1)) and flax the biased one, a difference of 1/(n-1) that only affects
references trained here (n = batch x H x W, e.g. 1/131071 at layer 1). Convolutions pad
symmetrically by 1 (as PyTorch does, also at stride 2; flax's ``'SAME'`` would pad (0, 1)).

Initialisation (for training from scratch) is selectable with ``init_scheme``:

- ``'pytorch'`` (default): PyTorch's layer defaults, ``kaiming_uniform_(a=sqrt(5))``, i.e.
  U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for conv and linear weights and linear bias;
- ``'kaiming_normal'``: akamaster's ``_weights_init`` (``kaiming_normal_``, fan_in, gain
  sqrt(2)) for conv and linear weights; linear bias keeps the PyTorch default.

Module names follow the PyTorch state_dict (``layer1.0.conv1`` is ``layer1_0/conv1``), so the
pretrained ``resnet20_cifar10.npz`` maps one to one; see :func:`variables_from_state_dict`.

This module is numerical only; :func:`load_resnet20` is the one function that reads a file
(a thin wrapper kept here for the public API ``from jaxnas.nets.resnet import load_resnet20``;
the general loaders are in :mod:`jaxnas.data.reference`).

Public API::

    ResNet20(num_classes=10)(x, train=False) -> ((f1, f2, f3), logits)
    CifarResNet(depth=20|32|44|56|110, ...)                # same, any depth 6n+2
    model, variables = load_resnet20(path)                 # PyTorch OIHW npz -> flax HWIO
    variables_from_state_dict(sd, model) / state_dict_from_variables(variables, model)
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxnas import _paths

__all__ = [
    "BasicBlockA",
    "CifarResNet",
    "ResNet20",
    "load_resnet20",
    "state_dict_from_variables",
    "variables_from_state_dict",
]

INITS = ("pytorch", "kaiming_normal")


def _torch_default_weight_init():
    # kaiming_uniform_(a=sqrt(5)) == U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
    return nn.initializers.variance_scaling(1.0 / 3.0, "fan_in", "uniform")


def _kernel_init(init: str):
    if init == "pytorch":
        return _torch_default_weight_init()
    if init == "kaiming_normal":
        # torch.nn.init.kaiming_normal_: std = sqrt(2 / fan_in), not truncated.
        return nn.initializers.variance_scaling(2.0, "fan_in", "normal")
    raise ValueError(f"unknown init {init!r}; choose one of {INITS}")


def _linear_bias_init(fan_in: int):
    bound = 1.0 / math.sqrt(fan_in)

    def init(key, shape, dtype=jnp.float32):
        return jax.random.uniform(key, shape, dtype, -bound, bound)

    return init


def _conv(features: int, stride: int, init: str, name: str) -> nn.Conv:
    return nn.Conv(features, (3, 3), strides=(stride, stride), padding=((1, 1), (1, 1)),
                   use_bias=False, kernel_init=_kernel_init(init), name=name)


def _bn(train: bool, name: str) -> nn.BatchNorm:
    return nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5, name=name)


def shortcut_a(x: jax.Array, planes: int, stride: int) -> jax.Array:
    """Option-A shortcut: subsample by ``stride`` and zero-pad channels up to ``planes``.

    Args:
      x: (N, H, W, C) float.
    Returns:
      (N, ceil(H/stride), ceil(W/stride), planes). Identity when nothing changes.
    """
    c = x.shape[-1]
    if stride == 1 and c == planes:
        return x
    if stride != 1:
        x = x[:, ::stride, ::stride, :]
    extra = planes - c
    lo = extra // 2
    return jnp.pad(x, ((0, 0), (0, 0), (0, 0), (lo, extra - lo)))


class BasicBlockA(nn.Module):
    """CIFAR basic block with an option-A shortcut (akamaster ``BasicBlock``, option 'A')."""

    planes: int
    stride: int = 1
    init_scheme: str = "pytorch"

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        out = _conv(self.planes, self.stride, self.init_scheme, "conv1")(x)
        out = nn.relu(_bn(train, "bn1")(out))
        out = _conv(self.planes, 1, self.init_scheme, "conv2")(out)
        out = _bn(train, "bn2")(out)
        return nn.relu(out + shortcut_a(x, self.planes, self.stride))


class CifarResNet(nn.Module):
    """CIFAR ResNet of depth ``6n + 2`` returning its three stage outputs and the logits.

    Attributes:
      depth: 20, 32, 44, 56, 110, ... (``(depth - 2) % 6 == 0``).
      num_classes: output classes.
      widths: channel widths of the three stages (16, 32, 64 in He et al.).
      init_scheme: ``'pytorch'`` (default) or ``'kaiming_normal'``; see the module docstring.

    Call: ``model.apply(variables, x, train=False)`` with ``x`` (N, H, W, C_in) float32,
    already normalised. In ``train=True`` mode pass ``mutable=['batch_stats']``.

    Returns:
      ``((f1, f2, f3), logits)``: f1 (N, H, W, w0), f2 (N, H/2, W/2, w1), f3 (N, H/4, W/4, w2),
      each the post-ReLU output of a stage; logits (N, num_classes) float32.
    """

    depth: int = 20
    num_classes: int = 10
    widths: tuple[int, int, int] = (16, 32, 64)
    init_scheme: str = "pytorch"

    @property
    def blocks_per_stage(self) -> int:
        if self.depth < 8 or (self.depth - 2) % 6:
            raise ValueError(f"CIFAR ResNet depth must be 6n+2 with n >= 1, got {self.depth}")
        return (self.depth - 2) // 6

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False):
        if x.ndim != 4:
            raise ValueError(f"expected NHWC input, got shape {x.shape}")
        n = self.blocks_per_stage
        out = _conv(self.widths[0], 1, self.init_scheme, "conv1")(x)
        out = nn.relu(_bn(train, "bn1")(out))
        feats = []
        for s, planes in enumerate(self.widths):
            for b in range(n):
                stride = 2 if (s > 0 and b == 0) else 1
                out = BasicBlockA(planes, stride, self.init_scheme, name=f"layer{s + 1}_{b}")(out, train)
            feats.append(out)
        pooled = jnp.mean(out, axis=(1, 2))
        logits = nn.Dense(self.num_classes, kernel_init=_kernel_init(self.init_scheme),
                          bias_init=_linear_bias_init(self.widths[-1]), name="linear")(pooled)
        return tuple(feats), logits


class ResNet20(CifarResNet):
    """ResNet-20 (``CifarResNet`` with ``depth=20``): 0.27 M params for 10 classes."""

    depth: int = 20


# ------------------------------------------------------------------ PyTorch state_dict mapping


def _module_paths(model: CifarResNet):
    """Yield (torch prefix, flax path tuple, kind) for every layer with parameters."""
    yield "conv1", ("conv1",), "conv"
    yield "bn1", ("bn1",), "bn"
    for s in range(3):
        for b in range(model.blocks_per_stage):
            tp, fp = f"layer{s + 1}.{b}", f"layer{s + 1}_{b}"
            for layer in ("conv1", "bn1", "conv2", "bn2"):
                yield f"{tp}.{layer}", (fp, layer), layer[:-1] if layer.startswith("bn") else "conv"
    yield "linear", ("linear",), "linear"


def _set(tree: dict, path: tuple[str, ...], leaf: str, value) -> None:
    for p in path:
        tree = tree.setdefault(p, {})
    tree[leaf] = value


def _get(tree: Mapping, path: tuple[str, ...], leaf: str):
    for p in path:
        tree = tree[p]
    return tree[leaf]


def _shapes(tree) -> dict[str, tuple[int, ...]]:
    flat = jax.tree_util.tree_flatten_with_path(tree)[0]
    return {jax.tree_util.keystr(p): tuple(x.shape) for p, x in flat}


def variables_from_state_dict(state_dict: Mapping[str, np.ndarray], model: CifarResNet) -> dict:
    """Map a PyTorch CIFAR-ResNet state_dict (akamaster names) to flax variables.

    Conv weights OIHW -> HWIO (``w.transpose(2, 3, 1, 0)``); ``linear.weight`` (out, in) ->
    Dense kernel (in, out); BN ``weight/bias/running_mean/running_var`` -> ``scale/bias`` params
    and ``mean/var`` batch_stats. A leading ``module.`` (DataParallel) prefix is stripped.

    Args:
      state_dict: name -> array.
      model: the module whose variables are produced (its depth fixes the expected keys).
    Returns:
      ``{'params': ..., 'batch_stats': ...}`` of float32 jnp arrays.
    Raises:
      ValueError: a key is missing or unexpected, or a shape does not match ``model``.
    """
    sd = {k.removeprefix("module."): np.asarray(v) for k, v in state_dict.items()}
    sd = {k: v for k, v in sd.items() if not k.endswith("num_batches_tracked")}
    params: dict = {}
    stats: dict = {}
    used = set()

    def take(key):
        if key not in sd:
            raise ValueError(f"state_dict has no {key!r} (is it a depth-{model.depth} CIFAR ResNet?)")
        used.add(key)
        return sd[key].astype(np.float32)

    for tp, fp, kind in _module_paths(model):
        if kind == "conv":
            _set(params, fp, "kernel", take(f"{tp}.weight").transpose(2, 3, 1, 0))
        elif kind == "bn":
            _set(params, fp, "scale", take(f"{tp}.weight"))
            _set(params, fp, "bias", take(f"{tp}.bias"))
            _set(stats, fp, "mean", take(f"{tp}.running_mean"))
            _set(stats, fp, "var", take(f"{tp}.running_var"))
        else:
            _set(params, fp, "kernel", take(f"{tp}.weight").T)
            _set(params, fp, "bias", take(f"{tp}.bias"))
    extra = sorted(set(sd) - used)
    if extra:
        raise ValueError(f"unexpected state_dict keys for a depth-{model.depth} CIFAR ResNet: {extra[:5]}")
    variables = {"params": params, "batch_stats": stats}
    # Check every shape against a freshly initialised model of the same configuration.
    c_in = params["conv1"]["kernel"].shape[2]
    ref = jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros((1, 32, 32, c_in))))
    want = _shapes(ref)
    got = _shapes(variables)
    if want != got:
        k = next(k for k in sorted(set(want) | set(got)) if want.get(k) != got.get(k))
        raise ValueError(f"state_dict shapes do not match {type(model).__name__}"
                         f"(depth={model.depth}, num_classes={model.num_classes}): "
                         f"{k} has shape {got.get(k)}, expected {want.get(k)}")
    return jax.tree_util.tree_map(jnp.asarray, variables)


def state_dict_from_variables(variables: Mapping, model: CifarResNet) -> dict[str, np.ndarray]:
    """Inverse of :func:`variables_from_state_dict`: flax variables -> PyTorch names/layouts."""
    params, stats = variables["params"], variables["batch_stats"]
    sd: dict[str, np.ndarray] = {}
    for tp, fp, kind in _module_paths(model):
        if kind == "conv":
            sd[f"{tp}.weight"] = np.asarray(_get(params, fp, "kernel")).transpose(3, 2, 0, 1)
        elif kind == "bn":
            sd[f"{tp}.weight"] = np.asarray(_get(params, fp, "scale"))
            sd[f"{tp}.bias"] = np.asarray(_get(params, fp, "bias"))
            sd[f"{tp}.running_mean"] = np.asarray(_get(stats, fp, "mean"))
            sd[f"{tp}.running_var"] = np.asarray(_get(stats, fp, "var"))
        else:
            sd[f"{tp}.weight"] = np.asarray(_get(params, fp, "kernel")).T
            sd[f"{tp}.bias"] = np.asarray(_get(params, fp, "bias"))
    return {k: v.astype(np.float32) for k, v in sd.items()}


def model_from_state_dict(state_dict: Mapping[str, np.ndarray], init: str = "pytorch") -> CifarResNet:
    """Infer depth and num_classes of a CIFAR ResNet from its state_dict keys and shapes."""
    keys = [k.removeprefix("module.") for k in state_dict]
    blocks = {int(k.split(".")[1]) for k in keys if k.startswith("layer1.")}
    if "linear.weight" not in keys or not blocks:
        raise ValueError("not a CIFAR ResNet state_dict (no linear.weight / layer1.* keys)")
    lw = next(v for k, v in state_dict.items() if k.removeprefix("module.") == "linear.weight")
    c1 = next(v for k, v in state_dict.items() if k.removeprefix("module.") == "conv1.weight")
    l2 = [v for k, v in state_dict.items() if k.removeprefix("module.") == "layer2.0.conv1.weight"]
    l3 = [v for k, v in state_dict.items() if k.removeprefix("module.") == "layer3.0.conv1.weight"]
    widths = (int(np.shape(c1)[0]), int(np.shape(l2[0])[0]) if l2 else 32,
              int(np.shape(l3[0])[0]) if l3 else 64)
    depth = 6 * (max(blocks) + 1) + 2
    return CifarResNet(depth=depth, num_classes=int(np.shape(lw)[0]), widths=widths, init_scheme=init)


def load_resnet20(path: str | Path) -> tuple[CifarResNet, dict]:
    """Load a PyTorch-layout CIFAR ResNet ``.npz`` (e.g. ``resnet20_cifar10.npz``).

    The file holds the PyTorch state_dict of akamaster's ``resnet20`` (conv OIHW, no
    ``module.`` prefix; see ``resnet20_cifar10.md`` next to it). Files written by
    ``jaxnas train-reference`` use the same layout; their depth and number of classes are
    inferred from the keys and shapes, so this loads any CIFAR ResNet depth.

    Args:
      path: the ``.npz`` file.
    Returns:
      ``(model, variables)`` with ``model(...)`` a :class:`CifarResNet` (a :class:`ResNet20`
      for depth 20) and ``variables = {'params', 'batch_stats'}`` in flax HWIO layout.
    Raises:
      FileNotFoundError: no such file (the message says where the pretrained file comes from).
      ValueError: the file is not a readable npz or not a CIFAR ResNet state_dict.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"ResNet weights not found: {path}. The pretrained CIFAR-10 ResNet-20 is "
            "resnet20_cifar10.npz (akamaster/pytorch_resnet_cifar10 resnet20-12fca82f.th converted "
            f"to npz); put it in the data folder, {_paths.describe_data_dir()}, or train one "
            "with `jaxnas train-reference`.")
    try:
        with np.load(path, allow_pickle=False) as z:
            sd = {k: np.asarray(z[k]) for k in z.files}
    except Exception as e:  # zipfile.BadZipFile, OSError, ValueError, EOFError ...
        raise ValueError(f"cannot read ResNet weights {path}: corrupt or not an .npz file ({e})") from e
    try:
        model = model_from_state_dict(sd)
        if model.depth == 20:
            model = ResNet20(num_classes=model.num_classes, widths=model.widths)
        variables = variables_from_state_dict(sd, model)
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from e
    return model, variables
