"""Training a reference network from scratch (``jaxnas train-reference``), for datasets that have
no published pretrained reference (CIFAR-100 here, MNIST, scikit-learn digits, ...).

Recipe (the CIFAR ResNet recipe of He et al. 2016 / akamaster, shortened to a cosine schedule):
SGD with momentum 0.9, learning rate 0.1 decayed by a cosine to 0 over all steps, coupled weight
decay 5e-4 on every parameter (as ``torch.optim.SGD(weight_decay=...)``), batch 128, cross-entropy,
flip+crop augmentation on CIFAR, crop only on MNIST (digits must not be mirrored), none on 8x8
digits. Inputs are normalised with the per-channel statistics of the training set, which become
the reference's normalisation setting.

:func:`train_reference` is the whole ``jaxnas train-reference`` experiment (load the data,
train, evaluate on the test split, describe) and :func:`save_reference` writes its ``.npz`` +
``.json`` pair; :func:`ensure_reference` trains a small reference on the fly where the data is
bundled (the quickstart's digits ResNet-8) and caches it. Progress is reported through
callbacks, so the CLI can drive a tqdm bar.

API::

    settings = TrainSettings(epochs=30)
    variables, history = fit_classifier(key, model, x_train, y_train, mean, std, settings,
                                        on_step=lambda step, loss: ...)
    default_augment('mnist') -> 'crop'
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxnas.data.augment import augment_flip_crop, normalise
from jaxnas.data.datasets import load_dataset
from jaxnas.data.reference import Reference, channel_stats, trained_reference_path
from jaxnas.nets.resnet import CifarResNet, state_dict_from_variables

__all__ = ["AUGMENTS", "TrainSettings", "default_augment", "ensure_reference", "fit_classifier",
           "save_reference", "train_reference"]

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


def train_reference(dataset: str, settings: TrainSettings, depth: int = 20,
                    data_dir=None, source: str = "auto", on_start=None, on_step=None,
                    on_epoch=None) -> tuple[Reference, dict]:
    """Train a CIFAR ResNet of ``depth`` from scratch on ``dataset`` and evaluate it.

    ``on_start(info)`` gets ``{'n_train', 'n_test', 'image_shape', 'steps', 'source'}``
    before training. Returns the :class:`Reference` and its description (everything
    :func:`save_reference` writes to the ``.json``).
    """
    ds = load_dataset(dataset, root=data_dir, source=source, seed=settings.seed)
    x_tr, y_tr = ds.split("train")
    x_te, y_te = ds.split("test")
    mean, std = channel_stats(x_tr)
    model = CifarResNet(depth=depth, num_classes=ds.num_classes)
    steps = (len(x_tr) // min(settings.batch_size, len(x_tr))) * settings.epochs
    if on_start is not None:
        on_start({"n_train": len(x_tr), "n_test": len(x_te), "image_shape": ds.image_shape,
                  "steps": steps, "source": ds.source})
    t0 = time.perf_counter()
    variables, history = fit_classifier(jax.random.key(settings.seed), model, x_tr, y_tr, mean,
                                        std, settings, on_step=on_step, on_epoch=on_epoch)
    train_time = time.perf_counter() - t0
    ref = Reference(f"{dataset}_resnet{depth}", model, variables, mean, std, ds.num_classes)
    meta = {
        "name": ref.name, "dataset": dataset, "data_source": ds.source,
        "num_classes": ds.num_classes, "image_shape": list(ds.image_shape),
        "n_train": int(len(x_tr)), "n_test": int(len(x_te)),
        "test_accuracy": ref.accuracy(x_te, y_te),
        "normalisation": {"mean": list(mean), "std": list(std),
                          "note": "per-channel statistics of the [0,1]-scaled training images"},
        "model": {"arch": "cifar_resnet", "depth": depth, "widths": list(model.widths),
                  "num_classes": ds.num_classes, "init_scheme": model.init_scheme,
                  "layout": "PyTorch state_dict names, conv OIHW (as resnet20_cifar10.npz)"},
        "settings": {**settings.as_dict(), "schedule": "cosine", "optimizer": "sgd"},
        "history": history, "train_seconds": round(train_time, 2),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    return ref, meta


def save_reference(ref: Reference, meta: dict, out: Path) -> Path:
    """Write the weights (``.npz``, PyTorch state_dict layout) and ``.json`` description,
    each atomically."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.stem + ".tmp.npz")
    np.savez(tmp, **state_dict_from_variables(ref.variables, ref.model))
    os.replace(tmp, out)
    meta_path = out.with_suffix(".json")
    tmp_json = meta_path.with_name(meta_path.name + ".tmp")
    tmp_json.write_text(json.dumps(meta, indent=1, allow_nan=False) + "\n")
    os.replace(tmp_json, meta_path)
    return out


#: References trained on the fly when missing (bundled data only): name -> (dataset, depth,
#: epochs). The quickstart's reference is one of them.
ON_THE_FLY = {"digits_resnet8": ("digits", 8, 6)}


def ensure_reference(name: str, cache=None, log=None) -> Path:
    """The cached ``.npz`` of an on-the-fly reference (:data:`ON_THE_FLY`), trained now (seed
    0, so it is one fixed reference, like a pretrained one) if it is not there yet: seconds on
    a CPU for the digits ResNet-8."""
    dataset, depth, epochs = ON_THE_FLY[name]
    path = trained_reference_path(dataset, f"resnet{depth}", root=cache)
    if path.with_suffix(".json").is_file() and path.is_file():
        return path
    settings = TrainSettings(epochs=epochs, batch_size=64, lr=0.1,
                             augment=default_augment(dataset), seed=0)
    ref, meta = train_reference(dataset, settings, depth=depth)
    if log is not None:
        log(f"reference: ResNet-{depth} trained on {dataset} ({meta['n_train']} images, "
            f"{epochs} epochs, {meta['train_seconds']:.1f} s): test accuracy "
            f"{100 * meta['test_accuracy']:.2f} % on {meta['n_test']} images")
    return save_reference(ref, meta, path)
