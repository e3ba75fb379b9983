"""The engine's caches, cleared before each timed call so that every timing starts cold.

Used by the benchmark scripts beside it (``from caches import clear_caches``: they run as
``python benchmarks/NAME.py``, with this folder first on the path).  It clears the cached
quadrature rules, the cached BSB1 states and radial moment curves and the remembered start levels of the sphere rules
(``sphere._LEVEL_HINTS``, a private table: benchmarks may look inside the engine, the library may not).
"""

from __future__ import annotations

from bnsym.meanfield import bsb1
from bnsym.numerics import curve, quadrature, sphere


def clear_caches():
    """Clear the quadrature rules, the BSB1 states, the radial moment curves and the sphere rules' remembered levels."""
    for f in (quadrature.gauss_legendre, quadrature.tanh_sinh, quadrature.composite_legendre, bsb1.bsb1_state,
              curve.shared_holder):
        f.cache_clear()
    sphere._LEVEL_HINTS.clear()
