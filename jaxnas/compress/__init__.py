"""The compression study (METHODS.md section 7; arXiv 2307.09994): does a disentangled latent
representation (a beta-VAE) make a network easier to prune?

Public API (the names ``jaxnas.compress`` exports)::

    CompressConfig, config_from_dict,          # validated settings (TOML -> dataclass)
    BetaVAE, vae_loss, gaussian_kl,            # model and objective
    global_magnitude_masks, apply_masks, sparsity, count_params, flops, sparsity_path,
    latent_summary, total_correlation, traversal_grid,   # diagnostics
    load_study_data, Trainer, run_sweep,       # data, training, the beta x sparsity sweep

- :mod:`~jaxnas.compress.model`: conv encoder -> (mu, logvar) -> z -> conv decoder, classifier
  on z; the control is the same encoder without the VAE;
- :mod:`~jaxnas.compress.loss`: recon + beta * KL + cls_weight * CE;
- :mod:`~jaxnas.compress.pruning`: global L1 magnitude masks in the forward pass, one-shot and
  iterative schedules, real parameter counts and FLOPs (which libraries were considered is
  written there);
- :mod:`~jaxnas.compress.diagnostics`: per-latent KL, active units, total correlation,
  latent traversals;
- :mod:`~jaxnas.compress.train`: the jitted train step and the sweep;
- the ``jaxnas compress`` command and its file writers live in :mod:`jaxnas.compress.cli`.
"""

from jaxnas.compress.config import DATASET_NAMES, CompressConfig, config_from_dict
from jaxnas.compress.data import MNIST_TEST_ONLY_CAVEAT, StudyData, load_study_data
from jaxnas.compress.diagnostics import (
    active_units,
    latent_summary,
    per_latent_kl,
    total_correlation,
    traversal_grid,
)
from jaxnas.compress.loss import gaussian_kl, reconstruction_loss, vae_loss
from jaxnas.compress.model import BetaVAE, layer_positions
from jaxnas.compress.pruning import (
    apply_masks,
    count_params,
    flops,
    global_magnitude_masks,
    keep_pruned_zero,
    masked_optimizer,
    ones_masks,
    prunable,
    prune,
    sparsity,
    sparsity_path,
)
from jaxnas.compress.train import (
    Trainer,
    accuracy,
    get_trainer,
    model_label,
    planned_steps,
    run_sweep,
)

__all__ = [
    "DATASET_NAMES",
    "MNIST_TEST_ONLY_CAVEAT",
    "BetaVAE",
    "CompressConfig",
    "StudyData",
    "Trainer",
    "accuracy",
    "active_units",
    "apply_masks",
    "config_from_dict",
    "count_params",
    "flops",
    "gaussian_kl",
    "get_trainer",
    "global_magnitude_masks",
    "keep_pruned_zero",
    "latent_summary",
    "layer_positions",
    "load_study_data",
    "masked_optimizer",
    "model_label",
    "ones_masks",
    "per_latent_kl",
    "prunable",
    "prune",
    "planned_steps",
    "reconstruction_loss",
    "run_sweep",
    "sparsity",
    "sparsity_path",
    "total_correlation",
    "traversal_grid",
    "vae_loss",
]
