"""Process-wide JAX settings that jaxnas applies once, on import.

The persistent compilation cache lives under the user's cache dir
(``$JAXNAS_CACHE_DIR``, else ``$XDG_CACHE_HOME/jaxnas/jax``, else ``~/.cache/jaxnas/jax``),
with the minimum compile time set to 0 so that the small op-level programs of the
CPU population path are cached too. Set ``JAXNAS_NO_COMPILATION_CACHE=1`` to opt out.
"""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    """The jaxnas cache folder (compilation cache, latency tables, trained references)."""
    env = os.environ.get("JAXNAS_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "jaxnas"


def enable_compilation_cache() -> Path | None:
    if os.environ.get("JAXNAS_NO_COMPILATION_CACHE"):
        return None
    import jax

    path = cache_root() / "jax"
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    jax.config.update("jax_compilation_cache_dir", str(path))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    return path
