r"""Sphere moments in closed form, as functions of the batch size (sympy).

docs/theory.md section 3: at ``eps = 0`` the normalized pre-activations are
``s = sqrt(n) g / |z|``, where ``n = B - 1``, ``z`` is a standard Gaussian in
``1^perp`` (``|z| ~ chi_n``, independent of the direction), and the
coordinates ``g_a = <z, w_a>`` are standard Gaussians with correlation
``rho = -1/n``.  For an integrand ``H`` positively homogeneous of degree ``m``
in ``g`` this gives

    E_sphere[H(s)] = n^(m/2) E_gauss[H(g)] / E[chi_n^m],
    E[chi_n^m] = 2^(m/2) Gamma((n + m)/2) / Gamma(n/2),

so every sphere expectation of a sum of piecewise power functions
(:class:`bnsym.symbolic.kernels.PowerSum`) is a finite sum of the Gaussian
closed forms of :mod:`bnsym.symbolic.kernels`.  For even ``m`` (every
moment of ``q*``, ``c*`` and lambda_G) the chi ratio is the rational
function ``n^(m/2) / prod_{k < m/2} (n + 2k)``.  ``n`` may be a sympy symbol
(``n >= 1``) or ``oo`` (then ``rho = 0`` and the ratio is 1).  The moments are
returned in the engine's :class:`bnsym.numerics.moments.SphereMoments`, so that the
engine's own formulas (:func:`bnsym.numerics.backward.bracket`) apply to them
unchanged.  Cost: one Gaussian closed form per pair of terms.
"""

from __future__ import annotations

import sympy as sp

from bnsym.numerics.moments import SphereMoments
from bnsym.symbolic.kernels import PowerSum, gaussian_mean, gaussian_pair


def chi_ratio(m: int, n, order: int | None = None) -> sp.Expr:
    """``n^(m/2) / E[chi_n^m]``: the factor turning a degree-``m`` Gaussian moment into a sphere one.

    For odd ``m`` it is a ratio of Gamma functions, whose expansion at
    ``n = oo`` sympy cannot compute; ``order`` replaces it by its asymptotic
    series through ``n^-order`` (Stirling: with ``x = n/2``, ``a = m/2``,
    ``log Gamma(x + a) - log Gamma(x) - a log x = sum_k (-1)^(k+1) (B_{k+1}(a) - B_{k+1}(0)) / (k (k+1) x^k)``,
    ``B_j`` the Bernoulli polynomials).

    >>> n = sp.Symbol("n", positive=True)
    >>> chi_ratio(4, n)
    n/(n + 2)
    >>> chi_ratio(1, n, order=2)
    1 + 1/(4*n) + 1/(32*n**2)
    """
    n = sp.sympify(n)
    if n == sp.oo:
        return sp.Integer(1)
    if m % 2 == 0:
        return sp.cancel(n ** (m // 2) / sp.Mul(*[n + 2 * k for k in range(m // 2)]))
    if order is None:
        return n ** sp.Rational(m, 2) * sp.gamma(n / 2) / (2 ** sp.Rational(m, 2) * sp.gamma((n + m) / 2))
    u = sp.Dummy("u", positive=True)  # u = 1/x = 2/n
    a = sp.Rational(m, 2)
    exponent = sum(
        (-1) ** (k + 1) * (sp.bernoulli(k + 1, a) - sp.bernoulli(k + 1, sp.Integer(0))) / (k * (k + 1)) * u**k
        for k in range(1, order + 1)
    )
    series = sp.series(sp.exp(-exponent), u, 0, order + 1).removeO()
    return sp.expand(series.subs(u, 2 / n))


def correlation(n) -> sp.Expr:
    """``rho = -1/n``, the correlation of two coordinates of ``s`` (0 at ``n = oo``)."""
    n = sp.sympify(n)
    return sp.Integer(0) if n == sp.oo else -1 / n


def sphere_mean(f: PowerSum, n, order=None) -> sp.Expr:
    """``E[F(s_a)]`` for one coordinate of the sphere law with ``n = B - 1``."""
    return sp.Add(*[chi_ratio(t.degree, n, order) * gaussian_mean(PowerSum((t,))) for t in f.terms])


def sphere_pair(f: PowerSum, g: PowerSum, n, order=None) -> sp.Expr:
    """``E[F(s_a) G(s_b)]`` for two distinct coordinates (``rho = -1/n``)."""
    rho = correlation(n)
    # sqrt(1 - rho^2) = sqrt((n - 1)(n + 1)) / n, written so that sympy keeps it compact
    sine = sp.Integer(1) if n == sp.oo else sp.sqrt(sp.factor(sp.expand(n**2 - 1))) / n
    theta = sp.acos(rho)
    total = sp.Integer(0)
    for a in f.terms:
        for b in g.terms:
            pair = gaussian_pair(PowerSum((a,)), PowerSum((b,)), rho, sine=sine, theta=theta)
            total += chi_ratio(a.degree + b.degree, n, order) * pair
    return total


def closed_sphere_moments(f: PowerSum, n, *, gradient: bool = True, order=None) -> SphereMoments:
    """The :class:`~bnsym.numerics.moments.SphereMoments` of ``f(s) = phi(gamma s + beta)`` as sympy expressions.

    ``D(s) = gamma phi'(gamma s + beta)`` is ``f'(s)``.  ``gradient=False``
    skips the four ``D`` moments; ``order`` (see :func:`chi_ratio`) gives the
    asymptotic form used for expansions in ``1/B``.
    """
    q = sphere_mean(f * f, n, order)
    c = sphere_pair(f, f, n, order)
    moments = dict(mean=sphere_mean(f, n, order), q=q, c=c, spread=q - c, method="closed form (sympy)")
    if gradient:
        d = f.derivative()
        sd = d.times_power(1)
        moments.update(
            d2=sphere_mean(d * d, n, order),
            d11=sphere_pair(d, d, n, order),
            sd2=sphere_mean(sd * sd, n, order),
            sd11=sphere_pair(sd, sd, n, order),
        )
    return SphereMoments(**moments)
