"""Search spaces: genomes, decodings, string formats and official index orders."""

from jaxnas.spaces import nb201

SPACES = {"nb201": nb201}

__all__ = ["nb201", "SPACES"]
