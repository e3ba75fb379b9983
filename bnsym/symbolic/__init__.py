r"""Symbolic derivations in sympy: the batch-norm map, Gaussian kernels and closed-form mean-field formulas.

* :mod:`.batchnorm`: ``batchnorm_map``/``jacobian`` as sympy matrices for a
  concrete batch size, and the structural facts (``J 1 = 0``, ``J h = 0`` at
  ``eps = 0``, the normalization's Jacobian) with :func:`vanishes` to prove them;
* :mod:`.kernels`: closed-form Gaussian two-point kernels ``V_phi(K)``;
* :mod:`.moments`: sphere moments in closed form as functions of ``B``;
* :mod:`.derive`: :func:`derive`, closed forms of ``q*``, ``c*``, lambda_G
  with limits and ``1/B`` expansions (or the engine's number where none exists).
"""

from .batchnorm import (
    batchnorm_map,
    centring,
    centring_residual,
    jacobian,
    normalization,
    normalization_jacobian,
    normalization_jacobian_claim,
    normalization_jacobian_residual,
    pre_activations,
    scale_invariance_residual,
    structural_facts,
    vanishes,
)
from .derive import QUANTITIES, Derivation, derive
from .expressions import SymbolicActivation, symbolic_activation
from .kernels import gaussian_kernel

__all__ = [
    "QUANTITIES",
    "Derivation",
    "SymbolicActivation",
    "batchnorm_map",
    "centring",
    "centring_residual",
    "derive",
    "gaussian_kernel",
    "jacobian",
    "normalization",
    "normalization_jacobian",
    "normalization_jacobian_claim",
    "normalization_jacobian_residual",
    "pre_activations",
    "scale_invariance_residual",
    "structural_facts",
    "symbolic_activation",
    "vanishes",
]
