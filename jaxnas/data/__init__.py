"""Datasets, augmentation, reference models and the RMI batch selection (DESIGN.md "Data").

Public API (the names ``jaxnas.data`` exports)::

    Dataset, DATASETS, load_dataset, load_npz_dataset, load_tfds, load_digits_dataset,
    default_data_dir, augment_flip_crop, normalise, select_lowest_loss_batch,
    Reference, pretrained_cifar10_resnet20, load_reference, reference_for_dataset,
    TrainSettings, fit_classifier, prepare_rmi_batch

- images are uint8 NHWC, labels int32 (:mod:`jaxnas.data.datasets`);
- :func:`augment_flip_crop` is jittable and seeded (:mod:`jaxnas.data.augment`);
- a :class:`Reference` holds a trained network with its own input normalisation
  (:mod:`jaxnas.data.reference`);
- :func:`select_lowest_loss_batch` is RMI-NAS's lowest-loss batch (:mod:`jaxnas.data.selection`);
- :func:`prepare_rmi_batch` is the RMI proxy's selected batch and reference features
  (:mod:`jaxnas.data.rmi_batch`);
- :func:`fit_classifier` trains a reference (``jaxnas train-reference``; :mod:`jaxnas.data.train`).
"""

from jaxnas.data.augment import augment_flip_crop, normalise, random_crop, random_flip
from jaxnas.data.datasets import (
    DATASETS,
    Dataset,
    default_data_dir,
    load_dataset,
    load_digits_dataset,
    load_npz_dataset,
    load_npz_split,
    load_tfds,
)
from jaxnas.data.reference import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    REFERENCES,
    Reference,
    channel_stats,
    load_reference,
    pretrained_cifar10_resnet20,
    reference_for_dataset,
    trained_reference_path,
)
from jaxnas.data.rmi_batch import prepare_rmi_batch
from jaxnas.data.search import (
    BatchIterator,
    SearchData,
    cifar10_search_data,
    cifar100_search_data,
    load_split_file,
    search_split,
)
from jaxnas.data.selection import per_example_cross_entropy, select_lowest_loss_batch
from jaxnas.data.train import AUGMENTS, TrainSettings, default_augment, fit_classifier

__all__ = [
    "BatchIterator",
    "SearchData",
    "cifar10_search_data",
    "cifar100_search_data",
    "load_split_file",
    "search_split",
    "AUGMENTS",
    "DATASETS",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "REFERENCES",
    "Dataset",
    "Reference",
    "TrainSettings",
    "augment_flip_crop",
    "channel_stats",
    "default_augment",
    "default_data_dir",
    "fit_classifier",
    "load_dataset",
    "load_digits_dataset",
    "load_npz_dataset",
    "load_npz_split",
    "load_reference",
    "load_tfds",
    "normalise",
    "per_example_cross_entropy",
    "prepare_rmi_batch",
    "pretrained_cifar10_resnet20",
    "random_crop",
    "random_flip",
    "reference_for_dataset",
    "select_lowest_loss_batch",
    "trained_reference_path",
]
