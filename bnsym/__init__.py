"""bnsym: the mean field theory of batch normalization, derived and evaluated.

The public entry points are re-exported here; see README.md for a tour.

>>> import bnsym
>>> print(bnsym.gradient_explosion_rate("identity", 10, dps=30))
1.14285714285714285714285714286
"""

from __future__ import annotations

__version__ = "0.1.0"

from .activations import Activation, activation
from .depth import trainable_depth
from .errors import ActivationError, BnsymError, BnsymInputError, PrecisionError
from .fixed_point import fixed_point
from .gradients import gradient_explosion_rate
from .symbolic.derive import derive
from .results import FixedPoint, GradientExplosionRate, Settings, TrainableDepth
from .simulation import Simulation, simulate
from .spectrum import Spectrum, spectrum; from .propagate import Propagation, propagate; from .symmetry_breaking import SymmetryBreaking, symmetry_breaking  # noqa: E702

__all__ = [
    "__version__",
    "Activation",
    "ActivationError",
    "BnsymError",
    "BnsymInputError",
    "FixedPoint",
    "GradientExplosionRate",
    "PrecisionError",
    "Settings",
    "TrainableDepth",
    "activation",
    "derive",
    "fixed_point",
    "gradient_explosion_rate",
    "simulate",
    "Simulation",
    "trainable_depth",
    "Spectrum", "spectrum", "Propagation", "propagate", "SymmetryBreaking", "symmetry_breaking",
]
