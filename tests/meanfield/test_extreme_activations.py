"""lambda_G at extreme gains and for activations with narrow features of their own, against
independent references (found by the reviews of 2026-12-07; docs/theory.md section 3.2).

At B = inf, eps = 0 the rate is ``sigma_w^2 gamma^2 E[phi'(gamma z + beta)^2] / Var phi(gamma z + beta)``
(docs/theory.md section 4.3), which mpmath.quad computes with the Gaussian density, split around the
activation's feature at ``z = -beta / gamma``.
"""

from __future__ import annotations

import math

import mpmath
import pytest
import sympy as sp

import bnsym
from bnsym.activations import activation, x


def _gaussian_rate(expr, gamma, beta, dps):
    """lambda_G at B = inf, eps = 0, sigma_w = 1 by mpmath.quad (an independent reference)."""
    with mpmath.workdps(dps + 10):
        phi = sp.lambdify(x, sp.sympify(expr, locals={"x": x}), "mpmath")
        dphi = sp.lambdify(x, sp.diff(sp.sympify(expr, locals={"x": x}), x), "mpmath")
        gamma, beta = mpmath.mpf(gamma), mpmath.mpf(beta)
        centre = -beta / gamma
        points = [-mpmath.inf] + [centre + k / (300 * gamma) for k in (-8, -2, 0, 2, 8)] + [mpmath.inf]

        def expect(f):
            return mpmath.quad(lambda z: f(z) * mpmath.npdf(z), points)

        mean = expect(lambda z: phi(gamma * z + beta))
        variance = expect(lambda z: (phi(gamma * z + beta) - mean) ** 2)
        return gamma**2 * expect(lambda z: dphi(gamma * z + beta) ** 2) / variance


@pytest.mark.parametrize("expr,gamma,beta,dps", [
    ("x**3 + x", 20000, "0.5", 20),  # refused by the first version of the dense probe (a hard cap)
    ("x + exp(-(300*x)**4)/10", 1, "0.37", 15),  # a bump 1/300 wide in x: 1.0 for 3.443
    ("300*x + exp(-(300*x)**4)/10", 1, "0.37", 15),  # the same bump on a steep line: 1.0 for 1.000027
    ("x + exp(-x**4)/10", 300, 111, 10),  # the bump at gain 300: 1.0 for 1.000027
    ("x + exp(-(300*x)**4/(1 + x**2))/10", 1, "0.37", 15),  # the scale inside a rational argument: 1.0 for 3.443
    ("x + 1/(10*(1 + (300*x)**2)**50)", 1, "0.37", 15),  # inside a negative power: 1.0 for 10.79
    ("x + 1/(10*(1 + (300*x)**4)**4)", 1, "0.37", 15),  # PrecisionError before the negative power was read
])
def test_gaussian_rate_at_extreme_gains_and_narrow_features(expr, gamma, beta, dps):
    rate = bnsym.gradient_explosion_rate(expr, math.inf, gamma=gamma, beta=beta, dps=dps)
    reference = _gaussian_rate(expr, gamma, beta, dps)
    assert abs(rate.value - reference) <= rate.error + mpmath.mpf(10) ** -(dps + 3) * reference, (rate, reference)


def test_relu_at_a_large_gain_agrees_with_its_rescaling():
    """ReLU is homogeneous: lambda_G at (gamma, beta) equals lambda_G at (1, beta / gamma).  At
    gamma = 3000 the nested rule refused ('more than 256 nodes') under a hard probe cap."""
    steep = bnsym.gradient_explosion_rate("relu", 32, gamma=3000, beta="0.5", dps=20)
    rescaled = bnsym.gradient_explosion_rate("relu", 32, gamma=1, beta="1/6000", dps=20)
    assert abs(steep.value - rescaled.value) <= steep.error + rescaled.error + mpmath.mpf("1e-22")


@pytest.mark.parametrize("expr,scale", [("tanh", 1.0), ("gelu", 1.0), ("x + exp(-(300*x)**4)/10", 1 / 300),
                                        ("tanh(50*x) + x", 1 / 50), ("x**40 + x", 1.0),
                                        ("x + exp(-(300*x)**4/(1 + x**2))/10", 1 / 300),
                                        ("x + 1/(10*(1 + (300*x)**2)**50)", 1 / 300), ("sqrt(1 + x**2)", 1.0)])
def test_feature_scale_reads_the_widths_written_in_the_expression(expr, scale):
    assert activation(expr).feature_scale == pytest.approx(scale, rel=1e-12)
