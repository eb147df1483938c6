"""NAS-Bench-201 cell search space (Dong & Yang, ICLR 2020).

One cell with 4 nodes and 6 edges; each edge takes one of 5 ops, so there are
5**6 = 15,625 architectures. The genome is an ``int[6]`` array of op codes, one
per edge, in the edge order of the canonical architecture string:

    edge 0: 1<-0   edge 1: 2<-0   edge 2: 2<-1
    edge 3: 3<-0   edge 4: 3<-1   edge 5: 3<-2

and op codes index :data:`OPS`. The official index order (the one used by the
NAS-Bench-201 API, NATS-Bench-tss and HW-NAS-Bench) is derived here in code: it is
``itertools.product(range(5), repeat=6)`` shuffled by ``random.seed(88)``.

Everything that takes codes accepts a single ``(6,)`` genome or a batch ``(N, 6)``;
the ``*_jax`` helpers are pure jnp and work inside ``jit``/``vmap``.
"""

from __future__ import annotations

import itertools
import random

import jax
import jax.numpy as jnp
import numpy as np

OPS: tuple[str, ...] = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
NUM_OPS = len(OPS)
NUM_EDGES = 6
NUM_ARCHS = NUM_OPS**NUM_EDGES  # 15625
# (to_node, from_node) for each edge, in genome order.
EDGES: tuple[tuple[int, int], ...] = ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))

# NASLib's NB201 encoding (naslib/search_spaces/nasbench201): a 6-tuple of op indices
# with op order (skip, none, 3x3, 1x1, pool) and edge order (1,2),(1,3),(1,4),(2,3),(2,4),(3,4)
# over 1-based nodes. ``_NASLIB_POS[e]`` is the NASLib tuple position of our edge e.
NASLIB_OPS: tuple[str, ...] = ("skip_connect", "none", "nor_conv_3x3", "nor_conv_1x1", "avg_pool_3x3")
_NASLIB_POS = np.array([0, 1, 3, 2, 4, 5])
_OP_TO_NASLIB = np.array([NASLIB_OPS.index(o) for o in OPS])
_NASLIB_TO_OP = np.array([OPS.index(o) for o in NASLIB_OPS])

_POW5 = NUM_OPS ** np.arange(NUM_EDGES - 1, -1, -1)  # edge 0 is the most significant digit


def _official_order() -> np.ndarray:
    archs = list(itertools.product(range(NUM_OPS), repeat=NUM_EDGES))
    rng = random.Random(88)
    rng.shuffle(archs)
    return np.asarray(archs, dtype=np.int32)


#: ``ARCHS[i]`` is the genome of official index i; shape (15625, 6), int32.
ARCHS: np.ndarray = _official_order()
ARCHS.setflags(write=False)
#: ``_INDEX_OF_CODE[base5(codes)]`` is the official index.
_INDEX_OF_CODE = np.empty(NUM_ARCHS, dtype=np.int32)
_INDEX_OF_CODE[ARCHS @ _POW5] = np.arange(NUM_ARCHS, dtype=np.int32)
_INDEX_OF_CODE.setflags(write=False)


def _as_codes(codes) -> np.ndarray:
    arr = np.asarray(codes)
    if arr.shape[-1:] != (NUM_EDGES,):
        raise ValueError(f"NB201 genome must have a last axis of 6 edges, got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.integer):
        if not np.all(np.equal(np.mod(arr, 1), 0)):
            raise ValueError("NB201 genome must hold integer op codes")
        arr = arr.astype(np.int64)
    if arr.size and (arr.min() < 0 or arr.max() >= NUM_OPS):
        raise ValueError(f"NB201 op codes must be in 0..{NUM_OPS - 1}, got {arr.min()}..{arr.max()}")
    return arr


# ---------------------------------------------------------------------------- strings


def to_str(codes) -> str | list[str]:
    """Genome ``int[6]`` -> ``'|op~0|+|op~0|op~1|+|op~0|op~1|op~2|'``; a batch gives a list."""
    arr = _as_codes(codes)
    if arr.ndim == 2:
        return [to_str(row) for row in arr]
    ops = [OPS[int(c)] for c in arr]
    return (
        f"|{ops[0]}~0|+|{ops[1]}~0|{ops[2]}~1|+|{ops[3]}~0|{ops[4]}~1|{ops[5]}~2|"
    )


def from_str(s: str) -> np.ndarray:
    """Architecture string -> genome ``int32[6]``.

    Raises:
        ValueError: naming the bad token, for an unknown op, a wrong input node or a
            wrong number of nodes/edges.
    """
    if not isinstance(s, str):
        raise ValueError(f"NB201 architecture string expected, got {type(s).__name__}")
    nodes = s.strip().split("+")
    if len(nodes) != 3:
        raise ValueError(f"NB201 string must have 3 nodes separated by '+', got {len(nodes)}: {s!r}")
    codes: list[int] = []
    for node_i, node in enumerate(nodes, start=1):
        tokens = [t for t in node.split("|") if t != ""]
        if not (node.startswith("|") and node.endswith("|")) or len(tokens) != node_i:
            raise ValueError(
                f"NB201 node {node_i} must hold {node_i} '|op~input|' tokens, got {node!r}"
            )
        for inp, tok in enumerate(tokens):
            op, sep, src = tok.partition("~")
            if not sep or op not in OPS:
                raise ValueError(f"unknown NB201 op in token {tok!r}; ops are {', '.join(OPS)}")
            if src != str(inp):
                raise ValueError(f"bad input node in token {tok!r}: expected ~{inp}")
            codes.append(OPS.index(op))
    return np.asarray(codes, dtype=np.int32)


# ---------------------------------------------------------------------------- index


def index(codes_or_str) -> int | np.ndarray:
    """Official NAS-Bench-201 index (0..15624) of a genome, a batch of genomes or a string."""
    if isinstance(codes_or_str, str):
        codes_or_str = from_str(codes_or_str)
    elif isinstance(codes_or_str, (list, tuple)) and codes_or_str and isinstance(codes_or_str[0], str):
        return np.asarray([index(s) for s in codes_or_str], dtype=np.int32)
    arr = _as_codes(codes_or_str)
    out = _INDEX_OF_CODE[arr @ _POW5]
    return int(out) if arr.ndim == 1 else out


def from_index(i) -> np.ndarray:
    """Official index (int or int array) -> genome ``int32[..., 6]``."""
    arr = np.asarray(i)
    if not np.issubdtype(arr.dtype, np.integer) or (arr.size and (arr.min() < 0 or arr.max() >= NUM_ARCHS)):
        raise ValueError(f"NB201 index must be an integer in 0..{NUM_ARCHS - 1}, got {i!r}")
    return ARCHS[arr].copy()


def index_jax(codes: jax.Array) -> jax.Array:
    """Traceable official index of ``(..., 6)`` int codes (a gather; usable in jit/vmap)."""
    flat = jnp.tensordot(codes.astype(jnp.int32), jnp.asarray(_POW5, jnp.int32), axes=1)
    return jnp.asarray(_INDEX_OF_CODE)[flat]


def from_index_jax(i: jax.Array) -> jax.Array:
    """Traceable inverse of :func:`index_jax`."""
    return jnp.asarray(ARCHS)[i]


# ---------------------------------------------------------------------------- structure


def is_connected(codes):
    """Whether the output node is reachable from the input through non-``none`` edges.

    Works on numpy and on traced jax arrays of shape ``(..., 6)``; returns bool ``(...)``.
    341 of the 15,625 cells are disconnected.
    """
    on = codes != 0
    r1 = on[..., 0]
    r2 = on[..., 1] | (r1 & on[..., 2])
    return on[..., 3] | (r1 & on[..., 4]) | (r2 & on[..., 5])


def sample(key: jax.Array, n: int) -> jax.Array:
    """``n`` architectures drawn uniformly from the whole space: int32 ``(n, 6)``."""
    return jax.random.randint(key, (n, NUM_EDGES), 0, NUM_OPS, dtype=jnp.int32)


def one_hot(codes: jax.Array) -> jax.Array:
    """``(..., 6)`` codes -> ``(..., 6, 5)`` float32 one-hot, e.g. for mask-based networks."""
    return jax.nn.one_hot(codes, NUM_OPS, dtype=jnp.float32)


def decode_alpha(alpha: jax.Array) -> jax.Array:
    """Continuous encoding ``(..., 6, 5)`` or ``(..., 30)`` -> codes by per-edge argmax.

    This is the NB201 decoding of EvNAS/CMANAS/NEvoNAS (METHODS.md 0.2): no top-k rule,
    and ``none`` is allowed.
    """
    if alpha.shape[-1] == NUM_EDGES * NUM_OPS:
        alpha = jnp.reshape(alpha, alpha.shape[:-1] + (NUM_EDGES, NUM_OPS))
    return jnp.argmax(alpha, axis=-1).astype(jnp.int32)


def discretize(alpha_or_codes, mask=None) -> jax.Array:
    """EvNAS NB201 decoding for a supernet: the one-hot ``alpha_hat`` of the per-edge argmax.

    METHODS.md 0.2 (EvNAS ``train_searchNAS201.py``): per-edge argmax (``none`` allowed, no
    top-k rule), one-hot; the supernet then applies its softmax to ``alpha_hat`` as to any
    alpha, so the chosen op weighs ``e / (e + 4)`` and the others ``1 / (e + 4)``.

    Args:
        alpha_or_codes: float ``(..., 6, 5)`` / ``(..., 30)`` alphas, or int ``(..., 6)`` codes
            (already decoded; just one-hot encoded).
        mask: optional bool ``(6, 5)``: the ops each edge carries (pEvoNAS's shrunk space);
            the argmax runs over those only.
    Returns:
        float32 ``(..., 6, 5)`` one-hot.
    """
    a = jnp.asarray(alpha_or_codes)
    if jnp.issubdtype(a.dtype, jnp.integer):
        return one_hot(a)
    if a.shape[-1] == NUM_EDGES * NUM_OPS:
        a = jnp.reshape(a, a.shape[:-1] + (NUM_EDGES, NUM_OPS))
    if mask is not None:
        a = jnp.where(jnp.asarray(mask, bool), a, -jnp.inf)
    return one_hot(decode_alpha(a))


# ---------------------------------------------------------------------------- NASLib


def to_naslib(codes) -> tuple[int, ...] | np.ndarray:
    """Our genome -> NASLib's op-index tuple (its op order and edge order)."""
    arr = _as_codes(codes)
    out = np.empty_like(arr)
    out[..., _NASLIB_POS] = _OP_TO_NASLIB[arr]
    return tuple(int(v) for v in out) if arr.ndim == 1 else out


def from_naslib(naslib) -> np.ndarray:
    """NASLib op-index tuple (or ``(N, 6)`` array) -> our genome ``int32[..., 6]``."""
    arr = _as_codes(naslib)
    return _NASLIB_TO_OP[arr[..., _NASLIB_POS]].astype(np.int32)
