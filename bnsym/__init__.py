"""bnsym: the mean field theory of batch normalization, derived and evaluated.

The public entry points are re-exported here; see README.md for a tour.
"""

from __future__ import annotations

__version__ = "0.1.0"

from .errors import ActivationError, BnsymError, BnsymInputError, PrecisionError

__all__ = [
    "__version__",
    "ActivationError",
    "BnsymError",
    "BnsymInputError",
    "PrecisionError",
]
