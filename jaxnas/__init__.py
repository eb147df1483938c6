"""jaxnas: evolutionary and hardware-aware neural architecture search in JAX."""

from jaxnas._jaxcfg import enable_compilation_cache as _enable_compilation_cache

__version__ = "0.1.0"

_enable_compilation_cache()
