"""Closed-form Gaussian kernels V_phi(K) against two-dimensional numerical integration (mpmath)."""

from __future__ import annotations

import mpmath
import pytest
import sympy as sp

from bnsym.errors import BnsymInputError
from bnsym.symbolic import gaussian_kernel
from bnsym.symbolic.kernels import arc_integral, gaussian_moment, power_terms
from bnsym.activations import x


def numeric_expectation(phi, k11, k12, k22, dps=10, cut=9):
    """E[phi(z1) phi(z2)], z ~ N(0, K), by nested Gauss-Legendre panels cut where z1 = 0 and z2 = 0.

    z1 = sqrt(k11) u, z2 = sqrt(k22) (rho u + sqrt(1 - rho^2) v) with u, v independent N(0, 1),
    truncated to [-cut, cut] (the Gaussian tail beyond 9 is below 1e-18).
    """
    with mpmath.workdps(dps):
        k11, k12, k22 = (mpmath.mpf(sp.N(k, 30)) for k in (k11, k12, k22))
        rho = k12 / mpmath.sqrt(k11 * k22)
        c = mpmath.sqrt(1 - rho**2)
        r1, r2 = mpmath.sqrt(k11), mpmath.sqrt(k22)

        def inner(u):
            kink = -rho * u / c
            points = [-cut, kink, cut] if -cut < kink < cut else [-cut, cut]
            return mpmath.quad(lambda v: phi(r2 * (rho * u + c * v)) * mpmath.exp(-v * v / 2), points, method="gauss-legendre")

        outer = mpmath.quad(lambda u: phi(r1 * u) * mpmath.exp(-u * u / 2) * inner(u), [-cut, 0, cut], method="gauss-legendre")
        return outer / (2 * mpmath.pi)


def numeric_variance(phi, k, dps=15):
    with mpmath.workdps(dps):
        k = mpmath.mpf(sp.N(k, 30))
        f = lambda u: phi(mpmath.sqrt(k) * u) ** 2 * mpmath.exp(-u * u / 2)
        return mpmath.quad(f, [-mpmath.inf, 0, mpmath.inf]) / mpmath.sqrt(2 * mpmath.pi)


def _mp(expr):
    f = sp.lambdify(x, expr, modules=["mpmath", {"Heaviside": lambda t, *_: mpmath.mpf(1) if t > 0 else mpmath.mpf(0)}])
    return lambda t: f(t)


KERNELS = ["identity", "relu", "relu_power(2)", "relu_power(3)", "leaky_relu(0.3)", "abs", "step", "erf", "x**3 - 2*x + 1"]
POSITIVE = (sp.Rational(13, 10), sp.Rational(2, 5), sp.Rational(4, 5))
NEGATIVE = (sp.Rational(7, 10), -sp.Rational(1, 2), sp.Rational(11, 10))
CASES = [(name, POSITIVE) for name in KERNELS] + [(name, NEGATIVE) for name in ("relu_power(3)", "leaky_relu(0.3)")]


@pytest.mark.parametrize(("name", "cov"), CASES)
def test_kernel_matches_numerical_integration(name, cov):
    from bnsym.symbolic.expressions import symbolic_activation

    k11, k12, k22 = cov
    matrix = gaussian_kernel(name, sp.Matrix([[k11, k12], [k12, k22]]))
    assert not matrix.has(sp.Integral)
    phi = _mp(symbolic_activation(name).expr)
    off = numeric_expectation(phi, k11, k12, k22)
    assert abs(sp.N(matrix[0, 1], 20) - sp.Float(str(off), 20)) < 1e-8 * (1 + abs(off))
    for index, k in ((0, k11), (1, k22)):
        diag = numeric_variance(phi, k)
        assert abs(sp.N(matrix[index, index], 20) - sp.Float(str(diag), 20)) < 1e-10 * (1 + abs(diag))


def test_relu_kernel_is_the_arc_cosine_kernel_of_cho_and_saul():
    k11, k22 = sp.symbols("k11 k22", positive=True)
    k12 = sp.Symbol("k12", real=True)
    theta = sp.acos(k12 / sp.sqrt(k11 * k22))
    literature = sp.sqrt(k11 * k22) / (2 * sp.pi) * (sp.sin(theta) + (sp.pi - theta) * sp.cos(theta))
    assert sp.simplify(gaussian_kernel("relu")[0, 1] - literature) == 0
    # order 2: J_2 = 3 sin cos + (pi - theta)(1 + 2 cos^2), kernel k11 k22 J_2 / (2 pi)
    j2 = 3 * sp.sin(theta) * sp.cos(theta) + (sp.pi - theta) * (1 + 2 * sp.cos(theta) ** 2)
    assert sp.simplify(gaussian_kernel("relu_power(2)")[0, 1] - k11 * k22 * j2 / (2 * sp.pi)) == 0


def test_leaky_relu_kernel_with_symbolic_slope():
    a = sp.Symbol("a", real=True)
    kernel = gaussian_kernel("leaky_relu(a)")
    k11, k12, k22 = sorted(kernel.free_symbols - {a}, key=str)
    # leaky_relu = a x + (1 - a) relu(x): V = a k12 + (1 - a)^2 V_relu, by E[z1 relu(z2)] = k12 / 2
    relu = gaussian_kernel("relu")
    expected = a * k12 + (1 - a) ** 2 * relu[0, 1].subs(dict(zip(sorted(relu.free_symbols, key=str), (k11, k12, k22))))
    assert sp.simplify(kernel[0, 1] - expected) == 0
    value = kernel[0, 1].subs({a: sp.Rational(3, 10)})
    assert sp.simplify(value - gaussian_kernel("leaky_relu(0.3)")[0, 1]) == 0


def test_arc_integral_matches_quadrature():
    for p, q in [(0, 0), (1, 2), (3, 1), (2, 2)]:
        theta = sp.Rational(7, 5)
        exact = sp.N(arc_integral(p, q, theta), 25)
        numeric = mpmath.quad(lambda w: mpmath.cos(w) ** p * mpmath.cos(w - mpmath.mpf(7) / 5) ** q, [mpmath.mpf(7) / 5 - mpmath.pi / 2, mpmath.pi / 2])
        assert abs(exact - sp.Float(str(numeric), 25)) < 1e-14


def test_isserlis_moments():
    # E[z1^2 z2^2] = k11 k22 + 2 k12^2
    k11, k12, k22 = sp.symbols("k11 k12 k22")
    assert sp.expand(gaussian_moment(2, 2, k11, k12, k22) - (k11 * k22 + 2 * k12**2)) == 0
    assert gaussian_moment(1, 2, k11, k12, k22) == 0


def test_no_closed_form_is_refused_clearly():
    with pytest.raises(BnsymInputError, match="no closed-form Gaussian kernel"):
        gaussian_kernel("tanh")
    with pytest.raises(BnsymInputError, match="covariance"):
        gaussian_kernel("relu", sp.Matrix([[1, 0, 0]]))


def test_power_terms_refuses_shift_for_kinked_activations():
    assert power_terms(sp.Max(0, x), 1, 1) is None
    assert power_terms(sp.tanh(x)) is None
    assert power_terms(x**2 + x, 2, 1) is not None
