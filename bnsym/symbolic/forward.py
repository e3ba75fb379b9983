r"""Forward eigenvalues ``lambda_L``, ``lambda_M`` in closed form (docs/theory.md section 6).

The linearised forward map ``Delta -> G dV[Delta] G`` at the BSB1 fixed point
(``eps = 0``) has one eigenvalue on each invariant subspace of
``G Sym(B) G``: 0 on ``span{G}`` (scale invariance), ``lambda_L`` on
``L = {G diag(v) G}`` and ``lambda_M`` on the rest.  With ``u`` angular
central Gaussian, the derivative of its log-density is
``(n/2) u^T Delta u - tr(Delta)/2``; choosing an input in each subspace with
zero trace and the functional ``Y = w w^T``, ``w = e1 - e2`` (Schur's
lemma; the same choice as :mod:`bnsym.spectrum`), with ``s = sqrt(B) u``,
``a = q* - c*``:

    lambda_L =  n/(2 B a) E[(f1 - f2)^2 (s1^2 - s3^2)],
    lambda_M = -n/(2 B a) E[(f1 - f2)^2 (s1 - s3)(s2 - s4)].

These are expectations over four coordinates.  For an integrand
homogeneous of degree ``m`` in the Gaussian vector ``g`` behind ``s``
(:mod:`bnsym.symbolic.moments`), ``E_sphere = chi_ratio(m) E_gauss``; the
Gaussian ``g`` is equicorrelated (``rho = -1/n``), and given ``g1, g2`` the
pair ``(g3, g4)`` is Gaussian with mean ``rho/(1+rho) (g1 + g2)`` for both and
covariance ``[[v, w], [w, v]]``, ``v = 1 - 2 rho^2/(1+rho)``,
``w = rho - 2 rho^2/(1+rho)``.  So ``E[g3^i g4^j | g1, g2]`` is a polynomial
in ``g1, g2`` and everything reduces to the two-coordinate closed forms of
:mod:`bnsym.symbolic.kernels`.  This derivation shares no code with the
engine's :mod:`bnsym.spectrum` (conditional sphere laws and quadrature), which
the tests compare it with.  Domain: ``B >= 4``.  Cost: a few seconds.
"""

from __future__ import annotations

import sympy as sp

from bnsym.symbolic.kernels import Power, PowerSum, gaussian_moment, gaussian_pair
from bnsym.symbolic.moments import chi_ratio, correlation

S = sp.symbols("s1:5", real=True)
F1, F2, D1, D2 = sp.symbols("F1 F2 D1 D2", real=True)
_G1, _G2 = sp.symbols("g1 g2", real=True)

#: The integrands of the two eigenvalues (before the factor ``n/(2 B a)``).
INTEGRANDS = {
    "lambda_L": (F1 - F2) ** 2 * (S[0] ** 2 - S[2] ** 2),
    "lambda_M": -((F1 - F2) ** 2) * (S[0] - S[2]) * (S[1] - S[3]),
}

_ONE = PowerSum((Power(sp.Integer(1), sp.Integer(1), 0),))


def _power(f: PowerSum, k: int) -> PowerSum:
    out = _ONE
    for _ in range(k):
        out = out * f
    return out


def conditional_moment(i: int, j: int, rho) -> dict:
    """``{(k, l): c}`` with ``E[g3^i g4^j | g1, g2] = sum c g1^k g2^l`` (equicorrelated unit Gaussians)."""
    rho = sp.sympify(rho)
    mean = rho / (1 + rho) * (_G1 + _G2)
    v = 1 - 2 * rho**2 / (1 + rho)
    w = rho - 2 * rho**2 / (1 + rho)
    total = sp.Integer(0)
    for k in range(i + 1):
        for l in range(j + 1):
            noise = gaussian_moment(k, l, v, w, v)
            if noise != 0:
                total += sp.binomial(i, k) * sp.binomial(j, l) * mean ** (i - k + j - l) * noise
    poly = sp.Poly(sp.expand(total), _G1, _G2)
    return {monomial: coefficient for monomial, coefficient in poly.terms()}


def sphere_expectation(integrand, f: PowerSum, n, order=None) -> sp.Expr:
    """``E[integrand]`` on the sphere law, ``integrand`` a polynomial in ``F1 = f(s1)``,
    ``F2 = f(s2)``, ``D1 = f'(s1)``, ``D2 = f'(s2)`` and ``s1..s4``."""
    d = f.derivative()
    rho = correlation(n)
    n = sp.sympify(n)
    sine = sp.Integer(1) if n == sp.oo else sp.sqrt(sp.factor(sp.expand(n**2 - 1))) / n
    theta = sp.acos(rho)
    poly = sp.Poly(sp.expand(integrand), F1, F2, D1, D2, *S)
    total = sp.Integer(0)
    cache = {}
    for (a1, a2, b1, b2, c1, c2, i, j), coefficient in poly.terms():
        one = _power(f, a1) * _power(d, b1) * _ONE.times_power(c1)
        two = _power(f, a2) * _power(d, b2) * _ONE.times_power(c2)
        if (i, j) not in cache:
            cache[(i, j)] = conditional_moment(i, j, rho)
        for p1 in one.terms:
            for p2 in two.terms:
                ratio = chi_ratio(p1.degree + p2.degree + i + j, n, order)
                for (k, l), c_kl in cache[(i, j)].items():
                    pair = gaussian_pair(PowerSum((p1,)).times_power(k), PowerSum((p2,)).times_power(l), rho, sine=sine, theta=theta)
                    total += coefficient * ratio * c_kl * pair
    return total


