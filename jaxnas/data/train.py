"""Training a reference network from scratch (``jaxnas train-reference``), for datasets that have
no published pretrained reference (CIFAR-100 here, MNIST, scikit-learn digits, ...).

Recipe (the CIFAR ResNet recipe of He et al. 2016 / akamaster, shortened to a cosine schedule):
SGD with momentum 0.9, learning rate 0.1 decayed by a cosine to 0 over all steps, coupled weight
decay 5e-4 on every parameter (as ``torch.optim.SGD(weight_decay=...)``), batch 128, cross-entropy,
flip+crop augmentation on CIFAR, crop only on MNIST (digits must not be mirrored), none on 8x8
digits. Inputs are normalised with the per-channel statistics of the training set, which become
the reference's normalisation setting.

This module is numerical only: no file I/O (the CLI saves the result). Progress is reported
through a callback, so the CLI can drive a tqdm bar.

API::

    settings = TrainSettings(epochs=30)
    variables, history = fit_classifier(key, model, x_train, y_train, mean, std, settings,
                                        on_step=lambda step, loss: ...)
    default_augment('mnist') -> 'crop'
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxnas.data.augment import augment_flip_crop, normalise

__all__ = ["AUGMENTS", "TrainSettings", "default_augment", "fit_classifier"]

AUGMENTS = ("flip-crop", "crop", "none")


def default_augment(dataset: str) -> str:
    """``'flip-crop'`` for CIFAR, ``'crop'`` for MNIST, ``'none'`` for 8x8 digits and others."""
    if dataset.startswith("cifar"):
        return "flip-crop"
    if dataset == "mnist":
        return "crop"
    return "none"


@dataclass(frozen=True)
class TrainSettings:
    """Settings of :func:`fit_classifier` (all saved in the reference's JSON)."""

    epochs: int = 30
    batch_size: int = 128
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    augment: str = "flip-crop"
    pad: int = 4
    seed: int = 0

    def __post_init__(self):
        if self.epochs < 1:
            raise ValueError(f"epochs must be >= 1, got {self.epochs}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.lr <= 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if self.augment not in AUGMENTS:
            raise ValueError(f"unknown augment {self.augment!r}; choose one of {AUGMENTS}")

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def fit_classifier(key: jax.Array, model, x_train: np.ndarray, y_train: np.ndarray,
                   mean: Sequence[float], std: Sequence[float], settings: TrainSettings,
                   on_step: Callable[[int, float], None] | None = None,
                   on_epoch: Callable[[int, dict], None] | None = None):
    """Train ``model`` (returning ``(features, logits)``) from scratch on ``(x_train, y_train)``.

    Each epoch visits a seeded permutation in full batches (the last partial batch is dropped,
    so the step compiles once).

    Args:
      key: PRNG key (initialisation, shuffling and augmentation).
      model: a flax module such as :class:`jaxnas.nets.resnet.CifarResNet`.
      x_train: (N, H, W, C) uint8. y_train: (N,) int.
      mean, std: per-channel normalisation (of [0, 1]-scaled input).
      settings: :class:`TrainSettings`.
      on_step: called as ``on_step(step, loss)`` after each step (e.g. a progress bar).
      on_epoch: called as ``on_epoch(epoch, {'loss', 'accuracy'})`` after each epoch.
    Returns:
      ``(variables, history)``: flax variables (``params``, ``batch_stats``) and a list of
      per-epoch dicts with the mean training ``loss`` and ``accuracy`` (on augmented batches).
    """
    s = settings
    x_train = np.asarray(x_train)
    y_train = np.asarray(y_train, np.int32)
    n = len(x_train)
    bs = min(s.batch_size, n)
    steps_per_epoch = n // bs
    total = steps_per_epoch * s.epochs
    k_init, k_shuffle, k_aug = jax.random.split(key, 3)
    variables = model.init(k_init, jnp.zeros((1, *x_train.shape[1:]), jnp.float32), train=False)
    params, stats = variables["params"], variables["batch_stats"]
    schedule = optax.cosine_decay_schedule(s.lr, total)
    tx = optax.chain(optax.add_decayed_weights(s.weight_decay),
                     optax.sgd(schedule, momentum=s.momentum))
    opt_state = tx.init(params)
    mean_t, std_t = tuple(float(v) for v in mean), tuple(float(v) for v in std)
    pad = s.pad if s.augment in ("flip-crop", "crop") else 0
    flip = s.augment == "flip-crop"

    @jax.jit
    def step(params, stats, opt_state, xb, yb, k):
        if pad or flip:
            xb = augment_flip_crop(k, xb, pad=pad, flip=flip)
        xn = normalise(xb, mean_t, std_t)

        def loss_fn(p):
            (_, logits), upd = model.apply({"params": p, "batch_stats": stats}, xn, train=True,
                                           mutable=["batch_stats"])
            loss = optax.softmax_cross_entropy_with_integer_labels(logits, yb).mean()
            return loss, (upd["batch_stats"], jnp.mean(jnp.argmax(logits, -1) == yb))

        (loss, (new_stats, acc)), g = jax.value_and_grad(loss_fn, has_aux=True)(params)
        updates, opt_state = tx.update(g, opt_state, params)
        return optax.apply_updates(params, updates), new_stats, opt_state, loss, acc

    history = []
    gstep = 0
    for epoch in range(s.epochs):
        perm = np.asarray(jax.random.permutation(jax.random.fold_in(k_shuffle, epoch), n))
        losses, accs = [], []
        for i in range(steps_per_epoch):
            idx = perm[i * bs:(i + 1) * bs]
            k = jax.random.fold_in(k_aug, gstep)
            params, stats, opt_state, loss, acc = step(params, stats, opt_state,
                                                       x_train[idx], y_train[idx], k)
            gstep += 1
            losses.append(loss)
            accs.append(acc)
            if on_step is not None:
                on_step(gstep, float(loss))
        rec = {"epoch": epoch + 1, "loss": float(np.mean(jax.device_get(losses))),
               "accuracy": float(np.mean(jax.device_get(accs)))}
        if not np.isfinite(rec["loss"]):
            raise FloatingPointError(f"training diverged at epoch {epoch + 1} (loss {rec['loss']}); "
                                     f"try a smaller --lr than {s.lr}")
        history.append(rec)
        if on_epoch is not None:
            on_epoch(epoch + 1, rec)
    return {"params": params, "batch_stats": stats}, history
