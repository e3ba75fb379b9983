r"""Symbolic derivations in sympy: the batch-norm map, Gaussian kernels and closed-form mean-field formulas.

* :mod:`.batchnorm`: ``batchnorm_map``/``jacobian`` as sympy matrices for a
  concrete batch size, and the structural facts (``J 1 = 0``, ``J h = 0`` at
  ``eps = 0``, the normalization's Jacobian) with :func:`vanishes` to prove them;
* :mod:`.kernels`: closed-form Gaussian two-point kernels ``V_phi(K)``;
* :mod:`.moments`: sphere moments in closed form as functions of ``B``;
* :mod:`.derivation`: :func:`derive`, closed forms of ``q*``, ``c*``, lambda_G
  with limits and ``1/B`` expansions (or the engine's number where none exists).
* :mod:`.cross`: the cross-batch ``c_x`` and ``lambda_x`` in closed form (docs/theory.md section 13);

May import: :mod:`bnsym.errors`, :mod:`bnsym.validation`, :mod:`bnsym.estimate`,
:mod:`bnsym.activations`, :mod:`bnsym.numerics` and (for the engine's number where no closed
form exists) :mod:`bnsym.meanfield`; sympy and mpmath. Never :mod:`bnsym.montecarlo`,
:mod:`bnsym.train` or the edges.
"""

from bnsym.symbolic.batchnorm import (
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
from bnsym.symbolic.derivation import QUANTITIES, Derivation, derive
from bnsym.symbolic.expressions import SymbolicActivation, symbolic_activation
from bnsym.symbolic.kernels import gaussian_kernel

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
