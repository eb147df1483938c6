"""Global magnitude (L1) pruning with masks applied in the forward pass.

What was looked at before writing this (issue 13 asks to use a kept library if one fits):

- ``jaxpruner`` (google-research, Apache-2.0) has exactly this algorithm
  (``GlobalMagnitudePruning``) as an optax wrapper. It does not fit here: it is not on this
  project's package index, it needs ``ml-collections``, its code calls ``jax.tree_map``, which
  JAX removed (jaxnas pins jax 0.7-0.10), and it re-applies masks to the parameters after each
  update rather than in the forward pass. Its global pruner also normalises scores per layer
  by default, a different criterion.
- optax's masking utilities (``optax.masked``, ``optax.freeze``) select whole *leaves* of the
  parameter tree, not elements, so they cannot hold single weights at zero. This module uses
  ``optax.masked`` for what it does offer: choosing which leaves (the prunable kernels) get
  the element-wise :func:`keep_pruned_zero` transform.
- ``torch.nn.utils.prune.global_unstructured`` (the usual PyTorch tool) is the model for the
  criterion: one global ranking of |w| over the kernels in scope, biases never pruned.

So the mask logic is ours: masks are a pytree shaped like the parameters (float 0/1; ones on
leaves that are not pruned), the network always runs on ``params * masks`` and the optimiser's
updates are multiplied by the mask, so a pruned weight is exactly zero in every forward pass and
stays exactly zero in the stored parameters through any fine-tuning.

The count is exact: at sparsity s, ``round(s * N)`` of the N weights in scope are pruned (a
stable sort breaks ties), so the achieved sparsity is within half a weight of the target.
"""

from __future__ import annotations

import flax.traverse_util as tu
import jax
import numpy as np
import optax

from jaxnas.compress.model import INFERENCE_LAYERS, BetaVAE, layer_positions

__all__ = ["apply_masks", "count_params", "flops", "global_magnitude_masks", "keep_pruned_zero",
           "masked_optimizer", "ones_masks", "prunable", "prune", "sparsity", "sparsity_path"]


def _in_scope(layer: str, scope: str) -> bool:
    if scope == "all":
        return True
    if scope == "classifier":
        return layer.rstrip("0123456789") in INFERENCE_LAYERS
    raise ValueError(f"unknown prune scope {scope!r}; use 'classifier' or 'all'")


def prunable(params, scope: str = "classifier"):
    """Pytree of bools (one per leaf): True for the kernels in ``scope``."""
    flat = tu.flatten_dict(params)
    return tu.unflatten_dict({k: (k[-1] == "kernel" and _in_scope(k[-2], scope)) for k in flat})


def ones_masks(params):
    """All-ones masks (the dense network), float32 numpy leaves."""
    return jax.tree.map(lambda p: np.ones(np.shape(p), np.float32), params)


def apply_masks(params, masks):
    """``params * masks``, leaf by leaf (traceable; :func:`prune` is the jitted form)."""
    return jax.tree.map(lambda p, m: p * m, params, masks)


#: ``apply_masks`` compiled once per parameter structure (eager per-leaf products would each
#: compile a small program).
prune = jax.jit(apply_masks)


def global_magnitude_masks(params, target: float, scope: str = "classifier", masks=None):
    """Masks pruning the ``round(target * N)`` smallest-|w| kernels in scope, ranked globally.

    Args:
      params: the parameter pytree.
      target: sparsity in [0, 1) over the N kernel weights in scope.
      scope: ``'classifier'`` (inference path) or ``'all'``.
      masks: current masks (iterative pruning): weights already pruned stay pruned (they rank
        first); None for a one-shot step from the dense network.
    Returns:
      a masks pytree (float32 0/1 numpy arrays, ones outside the scope).
    """
    if not 0.0 <= target < 1.0:
        raise ValueError(f"sparsity must be in [0, 1), got {target}")
    sel = tu.flatten_dict(prunable(params, scope))
    flat = tu.flatten_dict(params)
    old = tu.flatten_dict(masks) if masks is not None else None
    keys = sorted(k for k, s in sel.items() if s)
    scores = []
    for k in keys:
        s = np.abs(np.asarray(flat[k], np.float64)).ravel()
        if old is not None:
            s = np.where(np.asarray(old[k]).ravel() > 0, s, -1.0)  # pruned already: first out
        scores.append(s)
    allscores = np.concatenate(scores)
    n_prune = int(round(target * allscores.size))
    keep = np.ones(allscores.size, bool)
    keep[np.argsort(allscores, kind="stable")[:n_prune]] = False
    out, i = {}, 0
    for k in keys:
        n = flat[k].size
        out[k] = keep[i:i + n].reshape(flat[k].shape).astype(np.float32)
        i += n
    for k, v in flat.items():
        if k not in out:
            out[k] = np.ones(np.shape(v), np.float32)
    return tu.unflatten_dict(out)


def sparsity(params, scope: str = "classifier") -> float:
    """Fraction of exact zeros among the kernel weights in scope."""
    sel, flat = tu.flatten_dict(prunable(params, scope)), tu.flatten_dict(params)
    n = z = 0
    for k, s in sel.items():
        if s:
            a = np.asarray(flat[k])
            n += a.size
            z += int(np.sum(a == 0))
    return z / max(n, 1)


def sparsity_path(target: float, schedule: str = "oneshot", steps: int = 3) -> list[float]:
    """Sparsities of the pruning steps that reach ``target``.

    ``'oneshot'``: ``[target]``. ``'iterative'``: ``steps`` steps removing the same fraction of
    the remaining weights each time, s_k = 1 - (1 - target)^(k / steps)."""
    if schedule == "oneshot" or target == 0.0:
        return [float(target)]
    if schedule != "iterative":
        raise ValueError(f"unknown schedule {schedule!r}; use 'oneshot' or 'iterative'")
    return [float(1.0 - (1.0 - target) ** (k / steps)) for k in range(1, steps + 1)]


def _inference_leaves(params):
    return {k: v for k, v in tu.flatten_dict(params).items() if _in_scope(k[-2], "classifier")}


def count_params(params) -> dict:
    """Real parameter counts of the inference path and of the whole model: ``*_nonzero`` counts
    the nonzero kernel weights plus every bias (biases are never pruned), ``*_total`` all."""
    flat = tu.flatten_dict(params)
    inf = _inference_leaves(params)
    nz = lambda d: int(sum(int(np.count_nonzero(np.asarray(v))) if k[-1] == "kernel"
                           else int(np.asarray(v).size) for k, v in d.items()))
    tot = lambda d: int(sum(int(np.asarray(v).size) for v in d.values()))
    return {"params_nonzero": nz(inf), "params_total": tot(inf),
            "params_nonzero_all": nz(flat), "params_total_all": tot(flat)}


def flops(params, model: BetaVAE, include_decoder: bool = False) -> int:
    """FLOPs of one image through the (pruned) inference path: 2 x the multiply-accumulates of
    the nonzero kernel weights (each weight works once per output position of its layer) plus
    one add per bias element and output position. Zeros are skipped, as a sparse kernel would.
    ``include_decoder`` adds the decoder (needed for reconstruction, not for classification)."""
    pos = layer_positions(model)
    total = 0
    for k, v in tu.flatten_dict(params).items():
        layer = k[-2]
        if not include_decoder and not _in_scope(layer, "classifier"):
            continue
        if k[-1] == "kernel":
            total += 2 * int(np.count_nonzero(np.asarray(v))) * pos[layer]
        else:
            total += int(np.asarray(v).size) * pos[layer]
    return int(total)


def keep_pruned_zero() -> optax.GradientTransformation:
    """Element-wise masking of updates: ``update(updates, state, params, masks=...)``.

    Chained after the optimiser, it zeroes the update of every pruned weight (Adam's momentum
    from before a pruning step would otherwise move it)."""

    def init(params):
        del params
        return optax.EmptyState()

    def update(updates, state, params=None, *, masks=None, **extra):
        del params, extra
        if masks is None:
            return updates, state
        return jax.tree.map(lambda u, m: u * m, updates, masks), state

    return optax.GradientTransformationExtraArgs(init, update)


def masked_optimizer(opt: optax.GradientTransformation, params,
                     scope: str = "all") -> optax.GradientTransformationExtraArgs:
    """``opt`` followed by :func:`keep_pruned_zero` on the prunable kernels (``optax.masked``
    picks those leaves). Call ``tx.update(grads, state, params, masks=masks)``."""
    return optax.chain(opt, optax.masked(keep_pruned_zero(), prunable(params, scope),
                                         mask_compatible_extra_args=True))
