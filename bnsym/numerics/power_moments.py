r"""Orthant power moments of any real degree, on the plane and on the sphere.

docs/theory.md section 16.  For unit-variance Gaussians ``(z_a, z_b)`` with correlation ``r``
and real ``p, q > -1``, the Mehler (Hermite) expansion sums to two Gauss hypergeometric functions:

    E[z_a^p z_b^q 1{z_a > 0, z_b > 0}]
        = 2^((p+q)/2) / (4 pi) [ Gamma((p+1)/2) Gamma((q+1)/2) 2F1(-p/2, -q/2; 1/2; r^2)
                                 + 2 r Gamma(p/2 + 1) Gamma(q/2 + 1) 2F1((1-p)/2, (1-q)/2; 3/2; r^2) ]

(:func:`bnsym.numerics.gaussian_kernels.orthant_moment` is its ``p = q`` case).  On the sphere law of batch
size ``B`` (``n = B - 1``, ``<w_a, w_b> = -1/n``), ``s`` has the law of ``sqrt(n) z / chi_n``
with ``chi_n`` independent of the direction, so with ``m = p + q``

    E[s_a^p s_b^q 1{s_a > 0, s_b > 0}] = n^(m/2) Gamma(n/2) / (2^(m/2) Gamma((n + m)/2)) * (the Gaussian moment at r = -1/n).

:func:`bnsym.numerics.closed_forms.orthant_moment` multiplies it by that radial factor, and with
:func:`bnsym.numerics.closed_forms.half_moment` these give
every sphere expectation of ``x_+^alpha`` and its products with powers of ``s``
in closed form for real ``alpha``, which the engine uses at ``beta = 0`` (its quadrature
takes a minute or more per quantity at non-integer ``alpha``).  Cost: two
hypergeometric series, ``O(working_dps)`` terms each (``|r| <= 1/3``).
"""

from __future__ import annotations

import mpmath


def gaussian_orthant_moment(p, q, r) -> mpmath.mpf:
    """``E[z_a^p z_b^q 1{z_a > 0, z_b > 0}]`` for unit-variance Gaussians with correlation ``r`` (``p, q > -1``)."""
    p, q, r = mpmath.mpf(p), mpmath.mpf(q), mpmath.mpf(r)
    r2 = r * r
    first = mpmath.gamma((p + 1) / 2) * mpmath.gamma((q + 1) / 2) * mpmath.hyp2f1(-p / 2, -q / 2, mpmath.mpf(1) / 2, r2)
    second = 2 * r * mpmath.gamma(p / 2 + 1) * mpmath.gamma(q / 2 + 1) * mpmath.hyp2f1((1 - p) / 2, (1 - q) / 2, mpmath.mpf(3) / 2, r2)
    return mpmath.mpf(2) ** ((p + q) / 2) / (4 * mpmath.pi) * (first + second)
