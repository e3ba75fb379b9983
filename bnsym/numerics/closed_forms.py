r"""Closed forms for positively homogeneous integrands on the sphere.

For ``F(s) = a_+ s^p`` (``s > 0``), ``a_- |s|^p`` (``s < 0``) with real
``p > -1`` (ReLU and its powers ``x_+^alpha``, leaky ReLU, ``|x|``, the identity,
their derivatives, and these times ``s``), docs/theory.md section 3 reduces sphere
expectations to Gaussian ones.  Let ``z = (z_a, z_b)`` be standard Gaussian
with correlation ``rho = -1/n``, ``m = p + q``.  Since ``s`` has the law of
``sqrt(n) z / chi_n`` with ``chi_n = |z|`` independent of the direction,

    E[|s_a|^p |s_b|^q 1{s_a>0, s_b>0}]
        = n^(m/2) Gamma(n/2) Gamma(m/2 + 1) / (2 pi Gamma((n+m)/2)) * J_pq(theta),

    J_pq(theta) = int_{theta - pi/2}^{pi/2} cos(w)^p cos(w - theta)^q dw,   cos(theta) = rho,

(the arc-cosine kernels of Cho and Saul are ``J_{kk}``), and

    E[|s|^p 1{s>0}] = n^(p/2) Gamma(n/2) Gamma((p+1)/2) / (2 sqrt(pi) Gamma((n+p)/2)).

For integer ``p, q`` the integral ``J_pq`` is evaluated exactly through the Fourier
expansions of the cosine powers (cost ``O(p q)`` operations); otherwise the orthant
moment is the Gaussian one of :func:`bnsym.numerics.power_moments.gaussian_orthant_moment`
(two hypergeometric series, docs/theory.md section 16) times the same radial factor
``n^(m/2) Gamma(n/2) / (2^(m/2) Gamma((n+m)/2))``.  At ``n = inf`` the prefactors tend to
the Gaussian ones and ``rho = 0``.
"""

from __future__ import annotations

import math

import mpmath

from bnsym.numerics.power_moments import gaussian_orthant_moment


def real_number(p):
    """``p`` as a Python ``int`` when it is an integer, else as an mpf at the working precision
    (``p`` an int, an mpf, or a rational such as sympy's ``Rational(3, 2)``: exact, no float)."""
    if hasattr(p, "denominator"):  # int, fractions.Fraction, sympy Rational
        numerator, denominator = int(p.numerator), int(p.denominator)
        return numerator if denominator == 1 else mpmath.mpf(numerator) / denominator
    p = mpmath.mpf(p)
    return int(p) if p == int(p) else p


def _prefactor(n, m):
    """``n^(m/2) Gamma(n/2) / Gamma((n+m)/2)`` (``2^(m/2)`` at ``n = inf``)."""
    if n == math.inf:
        return mpmath.mpf(2) ** (mpmath.mpf(m) / 2)
    n = mpmath.mpf(n)
    return n ** (mpmath.mpf(m) / 2) * mpmath.exp(mpmath.loggamma(n / 2) - mpmath.loggamma((n + m) / 2))


def half_moment(p, n) -> mpmath.mpf:
    """``E[|s|^p 1{s > 0}]`` for one coordinate of the sphere law with ``n = B - 1`` (real ``p > -1``)."""
    p = real_number(p)
    return _prefactor(n, p) * mpmath.gamma(mpmath.mpf(p + 1) / 2) / (2 * mpmath.sqrt(mpmath.pi))


def arc_integral(p: int, q: int, theta) -> mpmath.mpf:
    """``J_pq(theta) = int_{theta-pi/2}^{pi/2} cos(w)^p cos(w-theta)^q dw`` exactly.

    >>> import mpmath
    >>> t = mpmath.mpf(1)
    >>> abs(arc_integral(1, 1, t) - (mpmath.sin(t) + (mpmath.pi - t) * mpmath.cos(t)) / 2) < 1e-14
    True
    """
    lo, hi = theta - mpmath.pi / 2, mpmath.pi / 2
    total = mpmath.mpc(0)
    for j in range(p + 1):
        for l in range(q + 1):
            k = (p - 2 * j) + (q - 2 * l)
            coef = mpmath.binomial(p, j) * mpmath.binomial(q, l) * mpmath.expjpi(-(q - 2 * l) * theta / mpmath.pi)
            if k == 0:
                total += coef * (hi - lo)
            else:
                total += coef * (mpmath.expj(k * hi) - mpmath.expj(k * lo)) / (1j * k)
    return (total / mpmath.mpf(2) ** (p + q)).real


def orthant_moment(p, q, rho, n) -> mpmath.mpf:
    """``E[|s_a|^p |s_b|^q 1{s_a > 0, s_b > 0}]`` for two coordinates with ``<w_a, w_b> = rho``
    (real ``p, q > -1``: the Fourier sum for integers, the hypergeometric form otherwise)."""
    p, q = real_number(p), real_number(q)
    m = p + q
    if isinstance(p, int) and isinstance(q, int):
        theta = mpmath.acos(rho)
        return _prefactor(n, m) * mpmath.gamma(mpmath.mpf(m) / 2 + 1) / (2 * mpmath.pi) * arc_integral(p, q, theta)
    return _prefactor(n, m) / mpmath.mpf(2) ** (mpmath.mpf(m) / 2) * gaussian_orthant_moment(p, q, rho)


def homogeneous_mean(a_plus, a_minus, p, n):
    """``E[F(s)]`` for ``F = a_+ s^p`` on ``s > 0`` and ``a_- |s|^p`` on ``s < 0``."""
    return (a_plus + a_minus) * half_moment(p, n)


def homogeneous_pair(f, g, n):
    """``E[F(s_a) G(s_b)]`` for homogeneous ``f = (a_+, a_-, p)`` and ``g = (b_+, b_-, q)``."""
    (a_plus, a_minus, p), (b_plus, b_minus, q) = f, g
    rho = mpmath.mpf(0) if n == math.inf else -mpmath.mpf(1) / n
    same = orthant_moment(p, q, rho, n)  # both positive, or (by s -> -s) both negative
    mixed = orthant_moment(p, q, -rho, n)  # opposite signs: flip s_b, which flips rho
    return (a_plus * b_plus + a_minus * b_minus) * same + (a_plus * b_minus + a_minus * b_plus) * mixed
