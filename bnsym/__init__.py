"""bnsym: the mean field theory of batch normalization, derived and evaluated.

The public entry points are re-exported here; see README.md for a tour.

>>> import bnsym
>>> print(bnsym.gradient_explosion_rate("identity", 10, dps=30))
1.14285714285714285714285714286
"""

from __future__ import annotations

__version__ = "0.1.0"

from bnsym.activations import Activation, activation
from bnsym.meanfield.depth import trainable_depth
from bnsym.errors import ActivationError, BnsymError, BnsymInputError, PrecisionError
from bnsym.meanfield.bsb1 import fixed_point
from bnsym.meanfield.gradients import gradient_explosion_rate
from bnsym.symbolic.derivation import derive
from bnsym.meanfield.results import FixedPoint, GradientExplosionRate, Settings, TrainableDepth
from bnsym.montecarlo.simulation import Simulation, simulate
from bnsym.meanfield.linearization import Spectrum, spectrum
from bnsym.meanfield.propagation import JointPropagation, Propagation, propagate
from bnsym.meanfield.kernels import Kernel, kernel
from bnsym.meanfield.symmetry import SymmetryBreaking, symmetry_breaking
from bnsym.meanfield.gegenbauer_series import GegenbauerSeries, gegenbauer
from bnsym.meanfield.transition import Transition, alpha_transition
from bnsym.meanfield.weight_gradient_moments import WeightGradients, weight_gradients
from bnsym.experiments.scanning import Scan, scan
from bnsym.meanfield.critical import CriticalEps, critical_eps
from bnsym.meanfield.decorrelation import CrossBatch, cross_batch

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
    "Spectrum", "spectrum", "Propagation", "JointPropagation", "propagate", "Kernel", "kernel", "SymmetryBreaking", "symmetry_breaking",
    "GegenbauerSeries", "gegenbauer", "Transition", "alpha_transition", "WeightGradients", "weight_gradients",
    "Scan", "scan",
    "CriticalEps", "critical_eps",
    "CrossBatch", "cross_batch",
]
