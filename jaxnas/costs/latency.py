"""Latency of NB201 networks measured on this machine, as a per-op look-up table.

In the style of FBNet's latency look-up tables (Wu et al., CVPR 2019): every distinct piece of
the network is timed once, in isolation, at the shape it runs at, and an architecture's latency
is the sum of its pieces:

    latency(arch) = fixed + N * sum_{stage s} sum_{edge e} lut[s, arch[e]]

``fixed`` is the stem, the two reduction blocks and the head (BN-ReLU, pool, linear); ``lut[s, o]``
is op ``o`` on one cell edge of stage ``s`` *plus the addition into its node*. ``none`` costs 0.
Each piece compiles once per shape, so nothing compiles per architecture, and the sum is a
gather usable inside ``jit``/``vmap`` (:meth:`LatencyTable.__call__`).

Each piece is timed as a chain of ``repeats`` applications inside one jitted ``fori_loop`` so
that dispatch overhead is amortised; the minimum over ``rounds`` is kept (the least disturbed
run, robust to load from other processes).

:func:`validate` times whole networks on a small sample (the only place that compiles per
architecture) and returns the rank correlation with the table's prediction.

Measurements are cached on disk under ``<cache>/latency/<key>.json``, where the key hashes the
machine (CPU model, core count, JAX backend and device kind, jax version) and the network
settings; a cached table is reused instead of measuring again.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import platform
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from jaxnas._jaxcfg import cache_root
from jaxnas.nets import TinyNetwork, ops
from jaxnas.nets import nb201 as nets
from jaxnas.spaces import nb201

_FORMAT = 1


@dataclasses.dataclass(frozen=True)
class LatencySpec:
    """Network settings a latency table is measured for (all static)."""

    C: int = 16
    N: int = 5
    image_size: int = 32
    in_channels: int = 3
    num_classes: int = 10
    batch_size: int = 1

    def __post_init__(self):
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if not isinstance(v, int) or v < 1:
                raise ValueError(f"LatencySpec.{f.name} must be a positive int, got {v!r}")
        if self.image_size % 4:
            raise ValueError(f"image_size must be divisible by 4 (two reductions), got {self.image_size}")


def machine_fingerprint() -> dict:
    """What identifies "this machine" for cached latencies."""
    cpu = platform.processor() or ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    dev = jax.devices()[0]
    return {
        "cpu": cpu,
        "machine": platform.machine(),
        "cores": os.cpu_count(),
        "backend": jax.default_backend(),
        "device_kind": getattr(dev, "device_kind", str(dev)),
        "jax": jax.__version__,
    }


def cache_path(spec: LatencySpec, cache_dir: str | os.PathLike | None = None) -> Path:
    """Where the table for ``spec`` on this machine is cached."""
    key = json.dumps({"machine": machine_fingerprint(), "spec": dataclasses.asdict(spec)}, sort_keys=True)
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    root = Path(cache_dir) if cache_dir is not None else cache_root() / "latency"
    return root / f"nb201_{digest}.json"


@dataclasses.dataclass(frozen=True, eq=False)
class LatencyTable:
    """Per-op latency table for one :class:`LatencySpec` on one machine.

    Attributes:
        spec: the network settings.
        lut_ms: float64 (3, 5): ms for op ``o`` on one edge of stage ``s`` (``none`` is 0).
        fixed_ms: ms of the stem, both reduction blocks and the head.
        parts_ms: the fixed parts, by name.
        machine: :func:`machine_fingerprint` at measurement time.
    """

    spec: LatencySpec
    lut_ms: np.ndarray
    fixed_ms: float
    parts_ms: dict
    machine: dict

    name = "local_latency"
    unit = "ms"
    traceable = True

    def __call__(self, codes) -> jax.Array:
        """Predicted latency in ms of ``(..., 6)`` op codes; a gather, traceable."""
        lut = jnp.asarray(self.lut_ms, jnp.float32)
        codes = jnp.asarray(codes, jnp.int32)
        per_stage = lut[:, codes]  # (3, ..., 6)
        total = jnp.sum(per_stage, axis=(0, -1))
        return jnp.float32(self.fixed_ms) + self.spec.N * total

    def predict(self, codes) -> np.ndarray:
        """Numpy version of :meth:`__call__` (float64)."""
        codes = np.asarray(codes)
        return self.fixed_ms + self.spec.N * self.lut_ms[:, codes].sum(axis=(0, -1))

    @property
    def values(self) -> jax.Array:
        """Predicted latency of all 15,625 architectures in official index order."""
        return self(nb201.ARCHS)

    def to_json(self) -> dict:
        return {
            "format": _FORMAT,
            "spec": dataclasses.asdict(self.spec),
            "ops": list(nb201.OPS),
            "lut_ms": np.asarray(self.lut_ms).tolist(),
            "fixed_ms": float(self.fixed_ms),
            "parts_ms": {k: float(v) for k, v in self.parts_ms.items()},
            "machine": self.machine,
        }

    @classmethod
    def from_json(cls, d: dict, source: str = "<dict>") -> LatencyTable:
        try:
            if d.get("format") != _FORMAT or tuple(d["ops"]) != nb201.OPS:
                raise ValueError("unknown format or op order")
            lut = np.asarray(d["lut_ms"], dtype=np.float64)
            if lut.shape != (3, nb201.NUM_OPS) or not np.all(np.isfinite(lut)) or np.any(lut < 0):
                raise ValueError(f"lut_ms must be 3x5 finite non-negative numbers, got shape {lut.shape}")
            return cls(LatencySpec(**d["spec"]), lut, float(d["fixed_ms"]),
                       dict(d.get("parts_ms", {})), dict(d.get("machine", {})))
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"{source}: not a jaxnas latency table ({e}); delete it to re-measure") from None

    def save(self, path: str | os.PathLike) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + f".tmp{os.getpid()}")
        tmp.write_text(json.dumps(self.to_json(), indent=1, allow_nan=False))
        os.replace(tmp, path)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> LatencyTable:
        path = Path(path)
        try:
            d = json.loads(path.read_text())
        except FileNotFoundError:
            raise FileNotFoundError(f"{path}: latency table not found") from None
        except (OSError, json.JSONDecodeError) as e:
            raise ValueError(f"{path}: unreadable latency table ({e}); delete it to re-measure") from None
        return cls.from_json(d, str(path))


# ---------------------------------------------------------------------------- timing


def time_chain(step, x, repeats: int = 20, rounds: int = 5) -> float:
    """Seconds (minimum over rounds) of one ``x -> step(x)`` application (shape-preserving), timed as a jitted
    chain of ``repeats`` applications so per-call dispatch is amortised."""

    @jax.jit
    def chain(x):
        return jax.lax.fori_loop(0, repeats, lambda i, h: step(h), x)

    jax.block_until_ready(chain(x))  # compile + warm up
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        jax.block_until_ready(chain(x))
        times.append(time.perf_counter() - t0)
    return float(np.min(times)) / repeats


def time_call(fn, *args, rounds: int = 7, min_seconds: float = 0.02) -> float:
    """Seconds (minimum over rounds) of one call of a jitted ``fn(*args)``; each round loops until
    ``min_seconds`` so that very fast calls are still resolved."""
    jax.block_until_ready(fn(*args))
    times = []
    for _ in range(rounds):
        n, t0 = 0, time.perf_counter()
        while True:
            jax.block_until_ready(fn(*args))
            n += 1
            dt = time.perf_counter() - t0
            if dt >= min_seconds:
                break
        times.append(dt / n)
    return float(np.min(times))


def _init_apply(module, x, seed: int = 0):
    variables = module.init(jax.random.key(seed), x, train=False)
    return jax.jit(lambda v, h: module.apply(v, h, train=False)), variables


def measure(spec: LatencySpec = LatencySpec(), repeats: int = 20, rounds: int = 5,
            progress=None) -> LatencyTable:
    """Time every piece of the NB201 network for ``spec`` on this machine (inference mode).

    ``progress``, if given, is called with a short label before each piece is timed.
    """
    B, C, S = spec.batch_size, spec.C, spec.image_size
    key = jax.random.key(0)
    lut = np.zeros((3, nb201.NUM_OPS))
    for s in range(3):
        c, hw = C * 2**s, S // 2**s
        x = jax.random.normal(jax.random.fold_in(key, s), (B, hw, hw, c), jnp.float32)
        for o, name in enumerate(nb201.OPS):
            if name == "none":
                continue
            if progress:
                progress(f"stage {s + 1} {name}")
            if name == "skip_connect":
                def op(h):
                    return h
            elif name == "avg_pool_3x3":
                op = ops.avg_pool_3x3
            else:
                k = 1 if name == "nor_conv_1x1" else 3
                mod = nets.ReLUConvBN(c, c, k, 1, True)
                variables = mod.init(key, x, train=False)

                def op(h, mod=mod, variables=variables):
                    return mod.apply(variables, h, train=False)

            # One edge: the op plus the addition into its node (scaled to stay bounded).
            lut[s, o] = 1e3 * time_chain(lambda h, op=op: 0.5 * (h + op(h)), x, repeats, rounds)

    parts = {}
    if progress:
        progress("stem, reductions, head")
    x0 = jax.random.normal(key, (B, S, S, spec.in_channels), jnp.float32)
    stem_k = jax.random.normal(key, (3, 3, spec.in_channels, C), jnp.float32) * 0.1
    stem = jax.jit(lambda h: jax.nn.relu(ops.batch_norm(ops.conv3x3(h, stem_k))))
    parts["stem"] = 1e3 * time_call(stem, x0)
    for r in range(2):
        c, hw = C * 2**r, S // 2**r
        x = jax.random.normal(key, (B, hw, hw, c), jnp.float32)
        apply, variables = _init_apply(nets.ResNetBlock(c, 2 * c), x)
        parts[f"reduce{r + 1}"] = 1e3 * time_call(apply, variables, x)
    c, hw = 4 * C, S // 4
    x = jax.random.normal(key, (B, hw, hw, c), jnp.float32)
    w = jax.random.normal(key, (c, spec.num_classes), jnp.float32)
    head = jax.jit(lambda h: jnp.mean(jax.nn.relu(ops.batch_norm(h)), axis=(1, 2)) @ w)
    parts["head"] = 1e3 * time_call(head, x)
    return LatencyTable(spec, lut, float(sum(parts.values())), parts, machine_fingerprint())


def load_or_measure(spec: LatencySpec = LatencySpec(), cache_dir=None, refresh: bool = False,
                    progress=None, **measure_kwargs) -> tuple[LatencyTable, bool]:
    """The cached table for ``spec`` on this machine, measuring (and caching) it if absent.

    Returns ``(table, from_cache)``.
    """
    path = cache_path(spec, cache_dir)
    if path.exists() and not refresh:
        return LatencyTable.load(path), True
    table = measure(spec, progress=progress, **measure_kwargs)
    table.save(path)
    return table, False


def measure_network(spec: LatencySpec, arch, rounds: int = 7) -> float:
    """Milliseconds of one whole-network inference for ``arch`` (compiles for this arch)."""
    x = jax.random.normal(jax.random.key(1), (spec.batch_size, spec.image_size, spec.image_size,
                                              spec.in_channels), jnp.float32)
    net = TinyNetwork(tuple(int(v) for v in arch), C=spec.C, N=spec.N, num_classes=spec.num_classes)
    apply, variables = _init_apply(net, x)
    return 1e3 * time_call(apply, variables, x, rounds=rounds)


def validate(table: LatencyTable, archs, progress=None) -> dict:
    """Whole-network timings of ``archs`` (compiled one by one: keep the sample small) against
    the table's prediction. Returns measured and predicted ms and the Spearman and Kendall
    rank correlations."""
    from scipy.stats import kendalltau, spearmanr

    archs = np.asarray(archs)
    measured = []
    for i, a in enumerate(archs):
        if progress:
            progress(f"network {i + 1}/{len(archs)}")
        measured.append(measure_network(table.spec, a))
    measured = np.asarray(measured)
    predicted = table.predict(archs)
    return {
        "archs": [nb201.to_str(a) for a in archs],
        "measured_ms": measured.tolist(),
        "predicted_ms": predicted.tolist(),
        "spearman": float(spearmanr(measured, predicted).statistic),
        "kendall": float(kendalltau(measured, predicted).statistic),
    }
