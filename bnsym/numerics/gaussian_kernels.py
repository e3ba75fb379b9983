r"""Two-point Gaussian kernels of positively homogeneous activations (numeric).

For ``phi(x) = a_+ x^alpha`` (``x > 0``), ``a_- |x|^alpha`` (``x < 0``) and
``z ~ N(0, K)`` in R^2,

    V_phi(K)_ab = E[phi(z_a) phi(z_b)]
                = (K_aa K_bb)^(alpha/2) [ (a_+^2 + a_-^2) O(rho) + 2 a_+ a_- O(-rho) ],
    O(rho) = E[z_1^alpha z_2^alpha 1{z_1 > 0, z_2 > 0}]   (unit variances, correlation rho)
           = 2^alpha / (4 pi) [ Gamma((alpha+1)/2)^2 2F1(-alpha/2, -alpha/2; 1/2; rho^2)
                                + 2 rho Gamma(alpha/2 + 1)^2 2F1((1-alpha)/2, (1-alpha)/2; 3/2; rho^2) ],
    V_phi(K)_aa = K_aa^alpha (a_+^2 + a_-^2) 2^alpha Gamma(alpha + 1/2) / (2 sqrt(pi)),

``rho = K_ab / sqrt(K_aa K_bb)`` (the arc-cosine kernels of Cho and Saul for
integer ``alpha``: ``alpha = 1`` gives ``(sin t + (pi - t) cos t)/(2 pi)``,
``cos t = rho``).  The hypergeometric series is the Mehler (Hermite)
expansion of the orthant moment; it converges for ``|rho| <= 1``.  At
``|rho| = 1`` the 2F1 functions are evaluated by mpmath's analytic
continuation (Gauss's sum).  This module is the mpmath one; the sympy
closed forms live in :mod:`bnsym.symbolic.kernels`.

Cost: two orthant moments per entry: for an integer degree the finite Fourier sum of
:func:`integer_orthant` (``O(alpha^2)`` operations), else two hypergeometric functions
(``O(working_dps)`` series terms).
"""

from __future__ import annotations

from functools import partial

import mpmath

from bnsym.activations import Activation
from bnsym.errors import BnsymInputError
from bnsym.numerics.power_moments import gaussian_orthant_moment


def homogeneous_coefficients(act: Activation, gamma=1):
    """``(a_+, a_-, alpha)`` of ``x -> phi(gamma x)`` for a positively homogeneous ``phi``.

    ``phi(gamma x) = |gamma|^alpha phi(sign(gamma) x)``.
    """
    if act.degree is None:
        raise BnsymInputError(f"activation {act.label} is not positively homogeneous; the Gaussian kernel closed form needs phi(c x) = c^alpha phi(x)")
    alpha = mpmath.mpf(str(act.degree)) if not act.degree.is_integer else mpmath.mpf(int(act.degree))
    gamma = mpmath.mpf(gamma)
    scale = abs(gamma) ** alpha
    plus, minus = act.mp(mpmath.mpf(1)), act.mp(mpmath.mpf(-1))
    if gamma < 0:
        plus, minus = minus, plus
    return scale * plus, scale * minus, alpha


def orthant_moment(alpha, rho):
    """``E[z_1^alpha z_2^alpha 1{z_1>0, z_2>0}]`` for unit-variance Gaussians with correlation ``rho``
    (clipped to ``[-1, 1]``): the ``p = q`` case of :func:`~bnsym.numerics.power_moments.gaussian_orthant_moment`."""
    return gaussian_orthant_moment(alpha, alpha, max(min(rho, mpmath.mpf(1)), mpmath.mpf(-1)))


def homogeneous_kernel(coefficients, k_aa, k_bb, k_ab):
    """``E[phi(z_a) phi(z_b)]`` for ``z ~ N(0, [[k_aa, k_ab], [k_ab, k_bb]])`` (the module docstring).

    ``coefficients`` = ``(a_+, a_-, alpha)`` from :func:`homogeneous_coefficients`.  0 when a
    variance is not positive.  Cost: two orthant moments (:func:`integer_orthant` for an integer
    degree, :func:`orthant_moment` otherwise), one when ``a_+ a_- = 0``.
    """
    a_plus, a_minus, alpha = coefficients
    if k_aa <= 0 or k_bb <= 0:
        return mpmath.mpf(0)
    root = mpmath.sqrt(k_aa * k_bb)
    rho = k_ab / root
    integer = alpha == int(alpha)
    scale = root ** (int(alpha) if integer else alpha)  # (k_aa k_bb)^(alpha/2); an integer power is exact and cheap
    # integer degree: the finite Fourier sum, the same value without hypergeometric series
    orthant = partial(integer_orthant, int(alpha)) if integer else partial(orthant_moment, alpha)
    same = (a_plus**2 + a_minus**2) * orthant(rho)
    mixed = 2 * a_plus * a_minus * orthant(-rho) if a_plus * a_minus else 0
    return scale * (same + mixed)


def homogeneous_kernel_gradient(coefficients, k_aa, k_bb, k_ab):
    """``(V, dV/dk_aa, dV/dk_bb, dV/dk_ab)`` of :func:`homogeneous_kernel` at one point.

    By Price's theorem ``dV/dk_ab = E[phi'(z_a) phi'(z_b)]``, the kernel of ``phi'``, which has
    coefficients ``(alpha a_+, -alpha a_-, alpha - 1)``; homogeneity,
    ``V(l k_aa, k_bb, sqrt(l) k_ab) = l^(alpha/2) V``, gives
    ``dV/dk_aa = (alpha V - k_ab dV/dk_ab) / (2 k_aa)`` and the same for ``k_bb``.  Domain
    ``alpha > 0``, ``k_aa, k_bb >= 0``: at a zero variance (an input equal to its batch mean, so
    ``z_a = 0`` almost surely) ``V = 0`` and the gradient is returned as 0, as by
    :func:`homogeneous_kernel` and the float64 path (exact for ``alpha > 1``, where
    ``phi'(0) = 0``; a convention for ``alpha <= 1``).  Cost: two :func:`homogeneous_kernel` values.
    """
    a_plus, a_minus, alpha = coefficients
    if not (k_aa > 0 and k_bb > 0):
        zero = mpmath.mpf(0)
        return zero, zero, zero, zero
    value = homogeneous_kernel(coefficients, k_aa, k_bb, k_ab)
    d_ab = homogeneous_kernel((alpha * a_plus, -alpha * a_minus, alpha - 1), k_aa, k_bb, k_ab)
    return (value, (alpha * value - k_ab * d_ab) / (2 * k_aa), (alpha * value - k_ab * d_ab) / (2 * k_bb), d_ab)


def homogeneous_variance(coefficients, k_aa):
    """``E[phi(z)^2]`` for ``z ~ N(0, k_aa)``."""
    a_plus, a_minus, alpha = coefficients
    if k_aa <= 0:
        return mpmath.mpf(0)
    moment = mpmath.mpf(2) ** alpha * mpmath.gamma(alpha + mpmath.mpf(1) / 2) / mpmath.sqrt(mpmath.pi)
    return k_aa**alpha * (a_plus**2 + a_minus**2) * moment / 2


def integer_orthant(alpha: int, rho):
    """``E[z_1^alpha z_2^alpha 1{z_1, z_2 > 0}]`` at correlation ``rho`` for integer ``alpha >= 0``, by the
    finite Fourier sum of :func:`bnsym.numerics.arccos.orthant` (``cos theta = rho``) in mpmath:
    ``O_alpha = 2^alpha alpha! / (2 pi) 4^-alpha Re sum_{j,l} C(alpha,j) C(alpha,l) e^{-i (alpha-2l) theta} I_(2alpha-2j-2l)``,
    ``I_k = int_{theta-pi/2}^{pi/2} e^{i k w} dw``; the same value as :func:`orthant_moment`.  Domain
    ``|rho| <= 1`` (clipped); cost ``O(alpha^2)`` complex operations (measured 7 times faster than the
    hypergeometric form for ReLU at 30 digits)."""
    rho = max(min(rho, mpmath.mpf(1)), mpmath.mpf(-1))
    theta = mpmath.acos(rho)
    if alpha == 0:
        return (mpmath.pi - theta) / (2 * mpmath.pi)
    if alpha == 1:
        return (mpmath.sqrt(1 - rho * rho) + (mpmath.pi - theta) * rho) / (2 * mpmath.pi)
    z = mpmath.expj(theta)
    total = mpmath.mpc(0)
    for j in range(alpha + 1):
        for l in range(alpha + 1):
            k = 2 * alpha - 2 * j - 2 * l
            # int_{theta - pi/2}^{pi/2} e^{i k w} dw
            piece = (mpmath.pi - theta) if k == 0 else (mpmath.mpc(0, 1) ** k - z**k * mpmath.mpc(0, -1) ** k) / mpmath.mpc(0, k)
            total += mpmath.binomial(alpha, j) * mpmath.binomial(alpha, l) * z ** (-(alpha - 2 * l)) * piece
    return mpmath.mpf(2) ** alpha * mpmath.factorial(alpha) / (2 * mpmath.pi) * total.real / mpmath.mpf(4) ** alpha

