"""DARTS cell search space ("S1" of EvNAS, CMANAS, pEvoNAS and NEvoNAS; METHODS.md 0.1).

Two cell types (normal, reduce). Each cell has 2 input states (c_{k-2}, c_{k-1}) and
4 intermediate nodes; node ``n`` (0..3) has an edge from each of the ``n + 2`` earlier
states, so a cell has 2+3+4+5 = 14 edges, and each edge mixes the 8 ops of :data:`OPS`.

**Encoding.** An architecture is ``alpha`` of shape ``(2, 14, 8)`` float32 (normal cell
first, then reduce; 224 reals, :func:`flatten`/:func:`unflatten` convert to ``(224,)``).
Edge ``e`` of node ``n`` from state ``j`` is ``e = NODE_OFFSETS[n] + j``.

**Genotype (DARTS rule).** Per edge, take ``softmax(alpha_e)`` and its best op *excluding*
``none``; the edge strength is that op's probability. Each node keeps its 2 strongest
incoming edges. EvNAS phrases the same rule as "argmax, and the second best if the argmax
is ``none``", which selects the same op. A genotype is an int32 array ``(2, 8, 2)``:
``[cell, gene, (op, input_state)]``, gene ``2n + k`` is the k-th strongest edge of node
``n`` (ties go to the lower input index, as Python's stable sort does in the DARTS code).
The cell output concatenates nodes 2..5 (:data:`CONCAT`).

**EvNAS decoding ("discretize, then softmax").** :func:`discretize` builds a one-hot
``alpha_hat`` with a 1 at each of the 2 x 8 chosen (edge, op) pairs and zeros elsewhere;
the supernet applies softmax to it as to any alpha. A chosen op then weighs
``e / (e + 7) ~ 0.280`` on its edge and the other 7 ops ``1 / (e + 7)``; the edges that
were not chosen are all-zero rows and mix all 8 ops with weight 1/8. Non-chosen edges are
not removed (:func:`mixing_weights`).

**Distance.** :func:`genotype_distance` is NEvoNAS's Jaccard distance for S1 (METHODS.md 4).

All array functions are pure jnp and work under ``jit``/``vmap`` with any leading batch
axes; the string helpers are plain Python.
"""

from __future__ import annotations

import re

import jax
import jax.numpy as jnp
import numpy as np

OPS: tuple[str, ...] = (
    "none",
    "max_pool_3x3",
    "avg_pool_3x3",
    "skip_connect",
    "sep_conv_3x3",
    "sep_conv_5x5",
    "dil_conv_3x3",
    "dil_conv_5x5",
)
NUM_OPS = len(OPS)  # 8
NONE = 0  # index of 'none' in OPS
NUM_CELL_TYPES = 2  # normal, reduce
CELL_TYPES: tuple[str, ...] = ("normal", "reduce")
NUM_NODES = 4  # intermediate nodes per cell
NUM_EDGES = 14  # 2 + 3 + 4 + 5
GENES_PER_CELL = 2 * NUM_NODES  # 8 (op, input) pairs per cell
ALPHA_SHAPE = (NUM_CELL_TYPES, NUM_EDGES, NUM_OPS)
ALPHA_SIZE = NUM_CELL_TYPES * NUM_EDGES * NUM_OPS  # 224
GENOTYPE_SHAPE = (NUM_CELL_TYPES, GENES_PER_CELL, 2)
CONCAT: tuple[int, ...] = (2, 3, 4, 5)

#: First edge of node n; node n owns edges NODE_OFFSETS[n] .. NODE_OFFSETS[n+1]-1.
NODE_OFFSETS: tuple[int, ...] = (0, 2, 5, 9, 14)
#: Node (0..3) and input state (0..5) of every edge.
EDGE_NODE = np.array([n for n in range(NUM_NODES) for _ in range(n + 2)], dtype=np.int32)
EDGE_INPUT = np.array([j for n in range(NUM_NODES) for j in range(n + 2)], dtype=np.int32)
# (node, slot) -> edge index, padded with edge 0 where the slot does not exist (masked).
_NODE_EDGES = np.zeros((NUM_NODES, NUM_NODES + 1), dtype=np.int32)
_NODE_MASK = np.zeros((NUM_NODES, NUM_NODES + 1), dtype=bool)
for _n in range(NUM_NODES):
    _NODE_EDGES[_n, : _n + 2] = np.arange(NODE_OFFSETS[_n], NODE_OFFSETS[_n + 1])
    _NODE_MASK[_n, : _n + 2] = True


# ---------------------------------------------------------------------------- encoding


def as_alpha(alpha) -> jax.Array:
    """``(..., 224)`` or ``(..., 2, 14, 8)`` -> ``(..., 2, 14, 8)`` float32."""
    alpha = jnp.asarray(alpha, dtype=jnp.float32)
    if alpha.shape[-1:] == (ALPHA_SIZE,):
        return jnp.reshape(alpha, alpha.shape[:-1] + ALPHA_SHAPE)
    if alpha.shape[-3:] != ALPHA_SHAPE:
        raise ValueError(
            f"DARTS alpha must have shape (..., {ALPHA_SIZE}) or (..., 2, 14, 8), got {alpha.shape}"
        )
    return alpha


def flatten(alpha) -> jax.Array:
    """``(..., 2, 14, 8)`` -> ``(..., 224)``: normal cell rows first, then reduce."""
    alpha = as_alpha(alpha)
    return jnp.reshape(alpha, alpha.shape[:-3] + (ALPHA_SIZE,))


def unflatten(alpha) -> jax.Array:
    """``(..., 224)`` -> ``(..., 2, 14, 8)``."""
    return as_alpha(alpha)


def sample_alpha(key: jax.Array, n: int | None = None, flat: bool = False) -> jax.Array:
    """Initial genes of the EvNAS/pEvoNAS GA and CMANAS's OSM training: U(0, 1) alphas.

    Args:
        key: PRNG key.
        n: population size; ``None`` gives a single alpha.
        flat: return ``(n, 224)`` instead of ``(n, 2, 14, 8)``.

    Returns:
        float32 ``(n, 2, 14, 8)`` (or ``(n, 224)``; no leading axis when ``n`` is None).
    """
    shape = (ALPHA_SIZE,) if flat else ALPHA_SHAPE
    if n is not None:
        shape = (int(n),) + shape
    return jax.random.uniform(key, shape, dtype=jnp.float32)


# ---------------------------------------------------------------------------- genotype


def genotype(alpha) -> jax.Array:
    """The DARTS genotype rule (METHODS.md 0.1): top-2 incoming edges per node, no ``none``.

    Args:
        alpha: float ``(..., 2, 14, 8)`` or ``(..., 224)``; raw alphas (softmax is applied
            here, per edge, before edge strengths are compared).

    Returns:
        int32 ``(..., 2, 8, 2)``: ``[cell, 2 * node + k, (op, input_state)]``, the two genes
        of each node sorted by decreasing strength.
    """
    probs = jax.nn.softmax(as_alpha(alpha), axis=-1)
    not_none = probs[..., NONE + 1 :]
    best_op = jnp.argmax(not_none, axis=-1).astype(jnp.int32) + NONE + 1  # (..., 2, 14)
    strength = jnp.max(not_none, axis=-1)  # (..., 2, 14)
    node_strength = jnp.where(_NODE_MASK, strength[..., _NODE_EDGES], -jnp.inf)  # (..., 2, 4, 5)
    # Stable sort on -strength: ties keep the lower input index first (Python sorted()).
    top2 = jnp.argsort(-node_strength, axis=-1, stable=True)[..., :2].astype(jnp.int32)
    edges = jnp.asarray(NODE_OFFSETS[:-1], jnp.int32)[:, None] + top2  # (..., 2, 4, 2)
    ops = jnp.take_along_axis(
        best_op, edges.reshape(edges.shape[:-2] + (GENES_PER_CELL,)), axis=-1
    )
    inputs = top2.reshape(top2.shape[:-2] + (GENES_PER_CELL,))
    return jnp.stack([ops, inputs], axis=-1)


def canonicalize(genes) -> jax.Array:
    """Order the two genes of every node by input state, so that equal architectures have
    equal arrays (the genotype rule orders them by strength). int32 ``(..., 2, 8, 2)``."""
    genes = jnp.asarray(genes, dtype=jnp.int32)
    pairs = genes.reshape(genes.shape[:-2] + (NUM_NODES, 2, 2))
    swap = pairs[..., 0, 1] > pairs[..., 1, 1]  # (..., 4)
    pairs = jnp.where(swap[..., None, None], pairs[..., ::-1, :], pairs)
    return pairs.reshape(genes.shape)


def _gene_edges(genes: jax.Array) -> jax.Array:
    """Edge index of every gene: ``(..., 2, 8, 2)`` -> ``(..., 2, 8)``."""
    node = jnp.arange(GENES_PER_CELL, dtype=jnp.int32) // 2
    return jnp.asarray(NODE_OFFSETS[:-1], jnp.int32)[node] + genes[..., 1]


def genotype_to_alpha(genes, value: float = 1.0) -> jax.Array:
    """Genotype ``(..., 2, 8, 2)`` -> float32 ``(..., 2, 14, 8)`` with ``value`` at each chosen
    (edge, op) and 0 elsewhere (EvNAS ``utils.discretize``; ``value`` is its ``discretize2``
    beta)."""
    genes = jnp.asarray(genes, dtype=jnp.int32)
    if genes.shape[-3:] != GENOTYPE_SHAPE:
        raise ValueError(f"DARTS genotype must have shape (..., 2, 8, 2), got {genes.shape}")
    edge_hot = jax.nn.one_hot(_gene_edges(genes), NUM_EDGES, dtype=jnp.float32)  # (...,2,8,14)
    op_hot = jax.nn.one_hot(genes[..., 0], NUM_OPS, dtype=jnp.float32)  # (...,2,8,8)
    # The two genes of a node sit on different edges, so the sum has no overlaps.
    return value * jnp.einsum("...ge,...go->...eo", edge_hot, op_hot)


def discretize(alpha) -> jax.Array:
    """EvNAS decoding: the one-hot ``alpha_hat`` of the genotype of ``alpha``.

    Load the result into the supernet in place of ``alpha``; the supernet's softmax then
    gives the weights of :func:`mixing_weights`. Shapes as :func:`genotype_to_alpha`.
    """
    return genotype_to_alpha(genotype(alpha))


def mixing_weights(alpha, discrete: bool = True) -> jax.Array:
    """Per-edge op weights the supernet uses: ``softmax(discretize(alpha))`` (EvNAS), or
    ``softmax(alpha)`` when ``discrete=False`` (plain DARTS mixed op). float32 ``(..., 2, 14, 8)``.

    With ``discrete=True`` a chosen op weighs e/(e+7), the other ops of its edge 1/(e+7),
    and every op of a non-chosen edge 1/8.
    """
    a = discretize(alpha) if discrete else as_alpha(alpha)
    return jax.nn.softmax(a, axis=-1)


def edge_mask(genes) -> jax.Array:
    """bool ``(..., 2, 14)``: which edges the genotype keeps (2 per node)."""
    genes = jnp.asarray(genes, dtype=jnp.int32)
    hot = jax.nn.one_hot(_gene_edges(genes), NUM_EDGES, dtype=jnp.int32)
    return jnp.sum(hot, axis=-2) > 0


# ---------------------------------------------------------------------------- distance


def genotype_similarity(g1, g2) -> jax.Array:
    """NEvoNAS S1 Jaccard similarity (METHODS.md 4), broadcasting over leading axes.

    A gene (op, input) of ``g1`` at node ``n`` of a cell type counts as common when it is
    one of ``g2``'s two genes at the same node and cell type; ``sim = common / (16 + 16 -
    common)``.

    Args:
        g1, g2: int ``(..., 2, 8, 2)`` genotypes.

    Returns:
        float32 ``(...)`` in [0, 1].
    """
    g1 = jnp.asarray(g1, jnp.int32)
    g2 = jnp.asarray(g2, jnp.int32)
    a = g1.reshape(g1.shape[:-2] + (NUM_NODES, 2, 1, 2))
    b = g2.reshape(g2.shape[:-2] + (NUM_NODES, 1, 2, 2))
    same = jnp.all(a == b, axis=-1)  # (..., 2, 4, 2, 2)
    common = jnp.sum(jnp.any(same, axis=-1), axis=(-1, -2, -3)).astype(jnp.float32)
    total = 2.0 * NUM_CELL_TYPES * GENES_PER_CELL
    return common / (total - common)


def genotype_distance(g1, g2) -> jax.Array:
    """NEvoNAS S1 novelty distance ``1 - genotype_similarity(g1, g2)``; float32 ``(...)``."""
    return 1.0 - genotype_similarity(g1, g2)


def pairwise_distance(ga, gb=None) -> jax.Array:
    """Distance matrix ``(A, B)`` between genotype batches ``(A, 2, 8, 2)`` and ``(B, 2, 8, 2)``
    (``gb`` defaults to ``ga``)."""
    ga = jnp.asarray(ga, jnp.int32)
    gb = ga if gb is None else jnp.asarray(gb, jnp.int32)
    return genotype_distance(ga[:, None], gb[None, :])


# ---------------------------------------------------------------------------- strings


def to_str(genes) -> str | list[str]:
    """Genotype ``(2, 8, 2)`` -> DARTS ``Genotype(normal=[('sep_conv_3x3', 0), ...],
    normal_concat=[2, 3, 4, 5], reduce=[...], reduce_concat=[2, 3, 4, 5])``; a batch
    ``(B, 2, 8, 2)`` gives a list."""
    arr = np.asarray(genes)
    if arr.ndim == 4:
        return [to_str(g) for g in arr]
    _check_genotype(arr)
    parts = []
    for cell, name in enumerate(CELL_TYPES):
        genes_s = ", ".join(f"('{OPS[int(op)]}', {int(inp)})" for op, inp in arr[cell])
        parts.append(f"{name}=[{genes_s}], {name}_concat={list(CONCAT)}")
    return f"Genotype({', '.join(parts)})"


_CELL_RE = {
    name: re.compile(rf"\b{name}\s*=\s*\[([^\]]*)\]") for name in CELL_TYPES
}
_GENE_RE = re.compile(r"\(\s*['\"]([^'\"]*)['\"]\s*,\s*(-?\d+)\s*\)")


def from_str(s: str) -> np.ndarray:
    """Parse a DARTS ``Genotype(...)`` string (as :func:`to_str` or DARTS's ``genotypes.py``
    print it) -> int32 ``(2, 8, 2)``.

    Raises:
        ValueError: naming the bad part (unknown op, wrong input for its node, a missing
            cell, wrong number of genes).
    """
    if not isinstance(s, str):
        raise ValueError(f"DARTS genotype string expected, got {type(s).__name__}")
    out = np.zeros(GENOTYPE_SHAPE, dtype=np.int32)
    for cell, name in enumerate(CELL_TYPES):
        m = _CELL_RE[name].search(s)
        if m is None:
            raise ValueError(f"DARTS genotype string has no '{name}=[...]' list: {s!r}")
        body = m.group(1)
        genes = _GENE_RE.findall(body)
        if len(genes) != GENES_PER_CELL or _GENE_RE.sub("", body).strip(" ,\n\t"):
            raise ValueError(
                f"DARTS {name} cell must list {GENES_PER_CELL} ('op', input) genes, got {body!r}"
            )
        for g, (op, inp) in enumerate(genes):
            if op not in OPS or op == OPS[NONE]:
                raise ValueError(
                    f"unknown DARTS op {op!r} in {name} gene {g}; ops are {', '.join(OPS[1:])}"
                )
            out[cell, g] = (OPS.index(op), int(inp))
    _check_genotype(out)
    return out


def _check_genotype(arr: np.ndarray) -> None:
    if arr.shape != GENOTYPE_SHAPE:
        raise ValueError(f"DARTS genotype must have shape (2, 8, 2), got {arr.shape}")
    for cell, name in enumerate(CELL_TYPES):
        for node in range(NUM_NODES):
            (op_a, in_a), (op_b, in_b) = arr[cell, 2 * node], arr[cell, 2 * node + 1]
            for g, op, inp in ((2 * node, op_a, in_a), (2 * node + 1, op_b, in_b)):
                if not 0 <= inp < node + 2:
                    raise ValueError(
                        f"DARTS {name} gene {g} (node {node + 2}) has input {int(inp)}; "
                        f"it must be in 0..{node + 1}"
                    )
                if not 0 <= op < NUM_OPS:
                    raise ValueError(f"DARTS {name} gene {g} has op code {int(op)}, not in 0..7")
            if in_a == in_b:
                raise ValueError(
                    f"DARTS {name} node {node + 2} uses input {int(in_a)} twice; "
                    "the two genes of a node must come from different states"
                )
