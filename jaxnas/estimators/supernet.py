"""One-shot supernet accuracy as a fitness estimator (EvNAS, CMANAS, pEvoNAS; issue 11).

``SupernetEstimator.evaluate(key, archs_or_alphas)`` decodes every member exactly as
METHODS.md 0.1/0.2 says, runs it through the shared supernet weights on the search-valid
images and returns ``100 - top1`` (lower is better, as every estimator):

* NB201 (:class:`jaxnas.nets.supernet.NB201Supernet`): float alphas ``(P, 6, 5)`` / ``(P, 30)``
  -> per-edge argmax -> one-hot alpha-hat (:func:`jaxnas.spaces.nb201.discretize`; restricted
  to the ops each edge carries); int codes ``(P, 6)`` are one-hot encoded.
* DARTS (:class:`jaxnas.nets.darts_supernet.DartsSearchNetwork`): float alphas
  ``(P, 2, 14, 8)`` / ``(P, 224)`` -> EvNAS discretize-then-softmax
  (:func:`jaxnas.spaces.darts.discretize`: a one-hot alpha-hat of the 2 x 8 (edge, op) pairs of
  the DARTS top-2 rule without ``none``; unselected edges all-zero rows); int genotypes
  ``(P, 2, 8, 2)`` via :func:`jaxnas.spaces.darts.genotype_to_alpha`.

The supernet applies its softmax to alpha-hat in the forward pass (the chosen op weighs
``e / (e + n - 1)``, unselected DARTS edges are uniform), as the authors' code does; pass
``decode=False`` to score raw alphas with no decoding (EvNAS-ND).

The whole evaluation is jnp (:func:`jaxnas.nets.supernet_train.make_population_eval`), so the
estimator is traceable: a search over it compiles into one function. ``key`` is unused (the
evaluation is deterministic).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxnas.nets.supernet import check_edge_ops, op_mask
from jaxnas.nets.supernet_train import make_population_eval
from jaxnas.spaces import darts, nb201


def _space_of(model) -> str:
    shape = tuple(model.alpha_shape)
    if shape == (nb201.NUM_EDGES, nb201.NUM_OPS):
        return "nb201"
    if shape == darts.ALPHA_SHAPE:
        return "darts"
    raise ValueError(f"unknown supernet alpha shape {shape}")


def decode_nb201(a, mask=None) -> jax.Array:
    """NB201 members -> float32 ``(P, 6, 5)`` alpha-hat (see module docstring)."""
    return nb201.discretize(a, mask)


def decode_darts(a) -> jax.Array:
    """DARTS members -> float32 ``(P, 2, 14, 8)`` alpha-hat (see module docstring)."""
    a = jnp.asarray(a)
    if jnp.issubdtype(a.dtype, jnp.integer):
        return darts.genotype_to_alpha(a)
    return darts.discretize(a)


class SupernetEstimator:
    """Scores architectures by their top-1 accuracy inside a trained supernet.

    Args:
        model: :class:`~jaxnas.nets.supernet.NB201Supernet` or
            :class:`~jaxnas.nets.darts_supernet.DartsSearchNetwork`.
        weights, batch_stats: trained supernet variables (``SupernetState.weights`` /
            ``.batch_stats``).
        x_valid: (V, H, W, 3) float32 normalised search-valid images; y_valid (V,) int.
        decode: apply the METHODS.md decoding (default True); False scores raw alphas.
        chunk, bn, member_batch, mesh: see :func:`~jaxnas.nets.supernet_train.make_population_eval`
            (``bn='running'`` is ``model.eval()``, EvNAS S2/CMANAS; ``'batch'`` EvNAS S1).

    Attributes:
        traceable: True. oracle: False (search-valid images, not test). name: ``'supernet'``.
        space: ``'nb201'`` or ``'darts'``.
    """

    traceable = True
    oracle = False

    def __init__(self, model, weights, batch_stats, x_valid, y_valid, *, decode: bool = True,
                 chunk: int | None = None, bn: str = "running", member_batch: int | None = None,
                 mesh=None):
        self.model = model
        self.space = _space_of(model)
        self.name = "supernet"
        self.weights = weights
        self.batch_stats = batch_stats
        self.x = jnp.asarray(x_valid, jnp.float32)
        self.y = jnp.asarray(y_valid, jnp.int32)
        if self.x.ndim != 4 or self.y.shape != (self.x.shape[0],):
            raise ValueError(f"x_valid must be (V, H, W, C) and y_valid (V,), got {self.x.shape}, "
                             f"{self.y.shape}")
        self.decode_members = decode
        self._eval = make_population_eval(model, chunk=chunk, bn=bn, member_batch=member_batch,
                                          mesh=mesh)

    def decode(self, archs_or_alphas) -> jax.Array:
        """Members -> the alpha-hat the supernet is run with, ``(P, *model.alpha_shape)``."""
        a = jnp.asarray(archs_or_alphas)
        if self.space == "nb201":
            mask = None
            if getattr(self.model, "edge_ops", None) is not None:
                mask = op_mask(check_edge_ops(self.model.edge_ops))
            if not self.decode_members and not jnp.issubdtype(a.dtype, jnp.integer):
                return jnp.reshape(a.astype(jnp.float32), (-1, *self.model.alpha_shape))
            return decode_nb201(a, mask).reshape((-1, *self.model.alpha_shape))
        if not self.decode_members and not jnp.issubdtype(a.dtype, jnp.integer):
            return darts.as_alpha(a).reshape((-1, *self.model.alpha_shape))
        return decode_darts(a).reshape((-1, *self.model.alpha_shape))

    def accuracy(self, archs_or_alphas) -> jax.Array:
        """Top-1 accuracy in % of every member, float32 ``(P,)``."""
        return self._eval(self.weights, self.batch_stats, self.decode(archs_or_alphas),
                          self.x, self.y)

    def evaluate(self, key, archs_or_alphas) -> jax.Array:
        """``100 - top1`` of every member, float32 ``(P,)``; lower is better."""
        del key
        return (100.0 - self.accuracy(archs_or_alphas)).astype(jnp.float32)

    def __repr__(self) -> str:
        return f"SupernetEstimator({type(self.model).__name__}, {self.x.shape[0]} valid images)"

