"""The RMI proxy's data (METHODS.md 5.1): the selected batch and the reference's features.

:func:`prepare_rmi_batch` loads the dataset's training images and its reference network (CIFAR-10:
the pretrained ResNet-20; others: the one written by ``jaxnas train-reference``), draws
``pool_factor * batch_size`` augmented images, keeps the ``batch_size`` with the lowest
reference cross-entropy (:func:`jaxnas.data.select_lowest_loss_batch`, key
``jax.random.key(batch_seed)``) and computes the reference's three stage features on them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import jax
import numpy as np

from jaxnas.config import RMISettings, parse
from jaxnas.data.datasets import DATASETS, load_dataset, load_npz_split
from jaxnas.data.reference import Reference, load_reference, reference_for_dataset
from jaxnas.data.selection import select_lowest_loss_batch
from jaxnas.data.train import ON_THE_FLY, ensure_reference


def prepare_rmi_batch(settings: RMISettings | Mapping[str, Any] | None = None,
                      log: Callable[[str], None] | None = None, *,
                      train: tuple | Sequence[str | Path] | str | Path | None = None,
                      reference: Reference | None = None):
    """Load the data and the reference, select the batch and compute the teacher features.

    Args:
        settings: :class:`jaxnas.config.RMISettings` (or a mapping of its fields): dataset,
            source, data_dir, reference, batch_size, pool_factor, batch_seed.
        log: called with one line describing the batch.
        train: the training images to draw from instead of the dataset's whole training
            split: preloaded ``(x, y)`` arrays, or one or more ``.npz`` files (e.g. only
            ``cifar10_train_part0.npz``).
        reference: a loaded :class:`jaxnas.data.Reference` instead of the settings' one.
    Returns:
        ``(x, y, features, info)``: x (B, H, W, 3) float32 normalised (grey-scale images are
        repeated to 3 channels for the candidates), y (B,) int32, the reference's 3 stage
        outputs (numpy), and a JSON-friendly ``info`` dict (dataset, data_source, reference,
        num_classes, batch_indices, batch_reference_loss_max).
    Raises:
        ConfigError: bad settings. FileNotFoundError: data or reference absent (says where).
        ValueError: the reference's classes differ from the dataset's.
    """
    s = parse(RMISettings, settings, "rmi")
    if train is None:
        ds = load_dataset(s.dataset, root=s.data_dir, source=s.source, splits=("train",),
                          seed=s.batch_seed)
        (x_tr, y_tr), source, num_classes = ds.split("train"), ds.source, ds.num_classes
    elif isinstance(train, tuple) and len(train) == 2 and not isinstance(train[0], (str, Path)):
        (x_tr, y_tr), source = train, "arrays"
        num_classes = DATASETS[s.dataset][0]
    else:
        files = [train] if isinstance(train, (str, Path)) else list(train)
        (x_tr, y_tr), source = load_npz_split(files), ", ".join(str(f) for f in files)
        num_classes = DATASETS[s.dataset][0]
    if reference is not None:
        ref = reference
    elif s.reference in ON_THE_FLY:  # e.g. the quickstart's digits ResNet-8: trained once
        ref = load_reference(ensure_reference(s.reference, log=log))
    elif s.reference:
        ref = load_reference(s.reference, root=s.data_dir)
    else:
        ref = reference_for_dataset(s.dataset, root=s.data_dir)
    if ref.num_classes != num_classes:
        raise ValueError(f"rmi: reference {ref.name!r} has {ref.num_classes} classes, dataset "
                         f"{s.dataset!r} has {num_classes}")
    x, y, det = select_lowest_loss_batch(
        jax.random.key(s.batch_seed), x_tr, y_tr, ref, batch_size=s.batch_size,
        pool_factor=s.pool_factor, augment=s.dataset != "digits", return_details=True)
    feats = [np.asarray(f) for f in ref.features(x, normalised=True)]
    x = np.asarray(x)
    if x.shape[-1] == 1:
        x = np.repeat(x, 3, axis=-1)
    info = {"dataset": s.dataset, "data_source": source, "reference": ref.name,
            "num_classes": num_classes, "batch_indices": [int(i) for i in det["indices"]],
            "batch_reference_loss_max": float(np.max(np.asarray(det["loss"])))}
    acc = ref.info.get("test_accuracy", ref.info.get("reported_test_accuracy"))
    if acc is not None:
        info["reference_test_accuracy"] = float(acc)
    if log is not None:
        log(f"rmi: {s.batch_size} lowest-loss {s.dataset} images ({source}) under reference "
            f"{ref.name}; max reference loss in the batch {info['batch_reference_loss_max']:.3g}")
    return x, np.asarray(y), feats, info
