"""Configs: TOML tables -> frozen dataclasses, checked once, before any work starts.

Foundation level: imports nothing of jaxnas. Every config class of the project (method
configs, the ``[rmi]`` settings, the quickstart) is a frozen dataclass that is built by
:func:`parse` and checks its values in a ``validate()`` method with the helpers below, so
that every bad input gets one line naming the key and the accepted range or type.

- :func:`parse`: unknown keys and wrong types are refused (naming the key and the
  expected type); floats must be finite unless the field says otherwise.
- :func:`check_range`, :func:`check_choice`, :func:`check_prob`: range checks.
- :class:`RMISettings`: the one settings class of the RMI proxy (METHODS.md 5.1), used by
  the estimator, the search configs' ``[rmi]`` table and the quickstart.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import dataclass
from typing import Any, Mapping

#: Seeds are 32-bit unsigned integers (JAX keys, numpy generators).
SEED_LIMIT = 2**32
#: Datasets the data layer loads (``jaxnas.data.DATASETS`` is this tuple).
DATASETS = ("cifar10", "cifar100", "mnist", "digits")


class ConfigError(ValueError):
    """A bad value in what the user gave (a config key, an option): exit status 2."""


_TYPE_NAMES = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}


def _type_name(typ) -> str:
    origin, args = typing.get_origin(typ), typing.get_args(typ)
    if origin in (tuple, list):
        return f"a list of {_type_name(args[0]) if args else 'values'}"
    if origin is typing.Union or type(None) in args:
        inner = [a for a in args if a is not type(None)]
        return " or ".join(_type_name(a) for a in inner) + " (or absent)"
    if typing.get_origin(typ) is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    return _TYPE_NAMES.get(typ, getattr(typ, "__name__", str(typ)))


def _coerce(name: str, value, typ, where: str, allow_nonfinite: bool):
    origin, args = typing.get_origin(typ), typing.get_args(typ)
    bad = ConfigError(f"{where}: {name} must be {_type_name(typ)}, got {value!r}")
    if origin is typing.Union or (origin is not None and type(None) in args):
        if value is None:
            return None
        inner = [a for a in args if a is not type(None)]
        if len(inner) == 1:  # Optional[X]: X's own message
            return _coerce(name, value, inner[0], where, allow_nonfinite)
        for a in inner:
            try:
                return _coerce(name, value, a, where, allow_nonfinite)
            except ConfigError:
                continue
        raise bad
    if dataclasses.is_dataclass(typ):  # a nested table, e.g. [rmi]
        return parse(typ, value, name)
    if origin in (tuple, list):
        if isinstance(value, (str, bytes, Mapping)) or not hasattr(value, "__iter__"):
            raise bad
        item = args[0] if args else object
        return tuple(_coerce(name, v, item, where, allow_nonfinite) for v in value)
    if origin is typing.Literal:
        if value not in args:
            raise bad
        return value
    if typ is bool:
        if not isinstance(value, bool):
            raise bad
        return value
    if typ is int:
        if isinstance(value, bool) or not (isinstance(value, int) or _is_np_int(value)):
            raise bad
        return int(value)
    if typ is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) and not _is_np_num(value):
            raise bad
        value = float(value)
        if not allow_nonfinite and not math.isfinite(value):
            raise ConfigError(f"{where}: {name} must be a finite number, got {value!r}")
        return value
    if typ is str:
        if not isinstance(value, str):
            raise bad
        return value
    if typ is typing.Any or typ is object:
        return value
    return value


def _is_np_int(v) -> bool:
    return type(v).__module__ == "numpy" and "int" in type(v).__name__


def _is_np_num(v) -> bool:
    return type(v).__module__ == "numpy" and any(t in type(v).__name__ for t in ("int", "float"))


def parse(cls, values: Mapping[str, Any] | None, where: str = "config"):
    """Build the frozen dataclass ``cls`` from a mapping (a parsed TOML table) and run its
    ``validate()``.

    Fields whose metadata has ``nonfinite=True`` accept inf/nan; all other floats must be
    finite.

    Raises:
        ConfigError: unknown keys (listing the valid ones), a wrong type (naming the
            expected one) or a value out of range (one line).
    """
    if isinstance(values, cls):
        if hasattr(values, "validate"):
            values.validate()
        return values
    if values is not None and not isinstance(values, Mapping):
        raise ConfigError(f"{where} must be a table of settings, got {values!r}")
    values = dict(values or {})
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}; valid keys: "
                          + ", ".join(fields))
    hints = typing.get_type_hints(cls)
    kwargs = {k: _coerce(k, v, hints[k], where, fields[k].metadata.get("nonfinite", False))
              for k, v in values.items()}
    try:
        cfg = cls(**kwargs)
    except ConfigError:
        raise
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{where}: {e}") from e
    if hasattr(cfg, "validate"):
        cfg.validate()
    return cfg


def as_dict(cfg) -> dict:
    """A JSON-friendly dict of a config dataclass (tuples as lists, nested configs as dicts)."""
    out = {}
    for f in dataclasses.fields(cfg):
        v = getattr(cfg, f.name)
        if dataclasses.is_dataclass(v):
            v = as_dict(v)
        elif isinstance(v, tuple):
            v = list(v)
        elif isinstance(v, Mapping):
            v = dict(v)
        out[f.name] = v
    return out


# ---------------------------------------------------------------------------- checks


def check_range(where: str, name: str, value, lo=None, hi=None, lo_open: bool = False,
                hi_open: bool = False) -> None:
    """``lo <= value <= hi`` (open ends on request); one-line :class:`ConfigError` naming
    the key and the accepted range."""
    ok = True
    if lo is not None:
        ok &= value > lo if lo_open else value >= lo
    if hi is not None:
        ok &= value < hi if hi_open else value <= hi
    if isinstance(value, float) and not math.isfinite(value):
        ok = False
    if not ok:
        left = "(" if lo_open else "["
        right = ")" if hi_open else "]"
        lo_s = "-inf" if lo is None else _num(lo)
        hi_s = "inf" if hi is None else _num(hi)
        raise ConfigError(f"{where}: {name} must be in {left}{lo_s}, {hi_s}{right}, got {value!r}")


def _num(x) -> str:
    return str(x) if isinstance(x, int) else f"{x:g}"


def check_prob(where: str, name: str, value) -> None:
    """A probability in [0, 1]."""
    check_range(where, name, value, 0.0, 1.0)


def check_choice(where: str, name: str, value, choices) -> None:
    if value not in choices:
        raise ConfigError(f"{where}: unknown {name} {value!r}; {name} must be one of "
                          f"{', '.join(map(str, choices))}")


def check_seed(where: str, name: str, value) -> None:
    check_range(where, name, value, 0, SEED_LIMIT, hi_open=True)


# ---------------------------------------------------------------------------- RMI settings


@dataclass(frozen=True)
class RMISettings:
    """Every setting of the RMI proxy (METHODS.md 5.1 defaults): the ``[rmi]`` table of a
    search config, the quickstart's similarity, and :class:`jaxnas.estimators.RMIEstimator`.

    Attributes:
        dataset: images of the selected batch: ``'cifar10'``, ``'cifar100'``, ``'mnist'`` or
            ``'digits'``.
        source: ``'auto'`` (local ``.npz`` under ``data_dir`` if present, else
            tensorflow-datasets), ``'npz'`` or ``'tfds'``.
        data_dir: folder of the local ``.npz`` files and named references (default
            ``$JAXNAS_DATA_DIR``, else the shared data folder beside a checkout).
        reference: ``'cifar10_resnet20'`` or a ``.npz`` from ``jaxnas train-reference``
            (default: the dataset's own reference).
        batch_size, pool_factor: the selected batch B (32) out of ``pool_factor * B`` (16 B).
        batch_seed: seed of the pool draw and its augmentation.
        steps: training steps; the score is the loss of forward ``steps`` (the 151st forward
            for the paper's 150), before that step's update.
        C, N: TinyNetwork width and cells per stage (paper: 16, 5).
        strategy: ``'auto'`` (measured default per backend), ``'composed'`` or ``'mask'``.
        workers: processes training members in parallel (``'composed'``; 0 = one per core).
        beta, lr, momentum, weight_decay, debiased: the loss (beta weighs the CKA term, 1 -
            beta the cross-entropy) and the SGD of METHODS.md 5.1.
        affine: affine BatchNorm in the cells (RMI-NAS trains ``InferCell(affine=True)``).
        dtype: ``'float32'``; ``'float64'`` only to check the arithmetic (needs x64).
        loopsafe: ``'mask'`` only: loop-safe convolution VJPs; None = on CPU only.
    """

    dataset: str = "cifar10"
    source: str = "auto"
    data_dir: str | None = None
    reference: str | None = None
    batch_size: int = 32
    pool_factor: int = 16
    batch_seed: int = 0
    steps: int = 150
    C: int = 16
    N: int = 5
    strategy: str = "auto"
    workers: int = 0
    beta: float = 0.8
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    debiased: bool = False
    affine: bool = True
    dtype: str = "float32"
    loopsafe: bool | None = None

    def validate(self, where: str = "rmi") -> None:
        check_choice(where, "dataset", self.dataset, DATASETS)
        check_choice(where, "source", self.source, ("auto", "npz", "tfds"))
        check_choice(where, "strategy", self.strategy, ("auto", "composed", "mask"))
        check_choice(where, "dtype", self.dtype, ("float32", "float64"))
        if self.batch_size < 2:
            raise ConfigError(f"{where}: CKA needs a batch of at least 2 images, got "
                              f"batch_size = {self.batch_size}")
        check_range(where, "batch_size", self.batch_size, 2, 4096)
        check_range(where, "pool_factor", self.pool_factor, 1, 1024)
        check_seed(where, "batch_seed", self.batch_seed)
        check_range(where, "steps", self.steps, 0, 100_000)
        check_range(where, "C", self.C, 1, 1024)
        check_range(where, "N", self.N, 1, 64)
        check_range(where, "workers", self.workers, 0, 256)
        check_prob(where, "beta", self.beta)
        check_range(where, "lr", self.lr, 0.0, None, lo_open=True)
        check_range(where, "momentum", self.momentum, 0.0, 1.0, hi_open=True)
        check_range(where, "weight_decay", self.weight_decay, 0.0)


def rmi_settings(values: Mapping[str, Any] | RMISettings | None, where: str = "rmi") -> RMISettings:
    """Parse and check an ``[rmi]`` table (one-line :class:`ConfigError` on bad keys)."""
    return parse(RMISettings, values, where)
