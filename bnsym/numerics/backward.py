r"""The backward operator's action on the symmetric direction, per radius.

With ``R = |G h|``, ``S^2 = R^2 + B eps`` and ``kappa = R / S``, the
Jacobian of the batch-norm map is (docs/theory.md section 5, generalised)

    J = diag(D) sqrt(B)/S (G - kappa^2 u u^T),   D_a = gamma phi'(gamma kappa s_a + beta).

Because ``G u = u`` and ``|u| = 1``, ``(G - kappa^2 u u^T)^2 = G - (2 kappa^2 - kappa^4) u u^T``,
and averaging over the sphere (``u`` independent of ``R``) gives

    E[tr(J^T G J) | R] = (B - 1)/S^2 * bracket,
    bracket = (B-1) E[D_a^2] + E[D_a D_b] - (2 kappa^2 - kappa^4) (E[s_a^2 D_a^2] - E[s_a s_b D_a D_b]).

Since ``J 1 = 0`` and the law is permutation invariant, ``T(G)`` is a
multiple of ``G``; the multiple is

    lambda_G = sigma_w^2 E[tr(J^T G J)] / (B - 1) = sigma_w^2 E_R[ bracket / S^2 ].

At ``eps = 0`` (``kappa = 1``), ``E[1/R^2] = 1/(sigma_w^2 (q*-c*) (B-3))``
recovers docs/theory.md section 5 exactly.  As ``B -> inf`` only
``(B-1) E[D^2] / S^2 -> E[D^2] / (a + eps)`` survives, ``a = sigma_w^2 (q*-c*)``.
"""

from __future__ import annotations

from bnsym.estimate import Estimate
from bnsym.numerics.moments import SphereMoments


def bracket(moments: SphereMoments, batch_size, kappa_squared=1) -> Estimate:
    """``(B-1) d2 + d11 - (2 kappa^2 - kappa^4)(sd2 - sd11)`` (finite ``B``; cost O(1))."""
    k2 = kappa_squared
    weight = 2 * k2 - k2 * k2
    return (batch_size - 1) * moments.d2 + moments.d11 - weight * (moments.sd2 - moments.sd11)
