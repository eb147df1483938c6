"""Search spaces: genomes, decodings, string formats and official index orders."""

from jaxnas.spaces import darts, nb201

SPACES = {"nb201": nb201, "darts": darts}

__all__ = ["nb201", "darts", "SPACES"]
