"""Activations are evaluated without avoidable cancellation (issue 12: gelu at beta = -20 was
reported as 'constant on the batch' because 1 + erf(u) rounds to 0 at the working precision)."""

from __future__ import annotations

import math

import mpmath
import numpy as np
import pytest

import bnsym


@pytest.mark.parametrize("u", [-20, -12, -3, 0, 2.5])
def test_gelu_matches_mpmath_at_high_precision(u):
    act = bnsym.activation("gelu")
    with mpmath.workdps(40):  # u Phi(u), Phi by quadrature of the Gaussian density (no erf at all):
        v = mpmath.mpf(u)      # Phi(u) = exp(-u^2/2)/sqrt(2 pi) int_0^inf exp(u s - s^2/2) ds for u <= 0
        if v <= 0:
            tail = mpmath.quad(lambda s: mpmath.exp(v * s - s * s / 2), [0, 1, 10, mpmath.inf])
            phi = mpmath.exp(-v * v / 2) / mpmath.sqrt(2 * mpmath.pi) * tail
        else:
            phi = 1 - mpmath.exp(-v * v / 2) / mpmath.sqrt(2 * mpmath.pi) * mpmath.quad(
                lambda s: mpmath.exp(-v * s - s * s / 2), [0, 1, 10, mpmath.inf])
        exact = v * phi
    with mpmath.workdps(25):
        value = act.mp(mpmath.mpf(u))
    assert abs(value - exact) <= mpmath.mpf(10) ** -22 * abs(exact)
    numpy_value = float(act.np(np.array([float(u)]))[0])
    assert math.isclose(numpy_value, float(exact), rel_tol=1e-12, abs_tol=1e-300)


def test_gelu_far_in_its_tail_has_a_fixed_point():
    fp = bnsym.fixed_point("gelu", 8, beta=-20)
    assert 0 < fp.c < fp.value < 1e-130
    assert bnsym.gradient_explosion_rate("gelu", 8, beta=-20).value > 1


@pytest.mark.parametrize("name,derivative,x", [("sigmoid", True, -720.0), ("softplus", True, 750.0),
                                              ("silu", True, -730.0), ("tanh", True, 20.0), ("tanh", True, -300.0)])
def test_the_numpy_form_keeps_its_relative_accuracy_in_the_tails(name, derivative, x):
    """sigmoid' = exp(-x)/(1 + exp(-x))^2 is inf/inf in float64 below x = -709, and softplus' =
    exp(x)/(exp(x) + 1) above 709: the NumPy form gave NaN there, which the float64 probes of the
    sphere rules and the Monte Carlo witnesses then carried.  Such entries are evaluated again in
    mpmath.  tanh' = 1 - tanh^2 (sympy's form) was 0 past |x| = 19 (rounding noise that the sphere rules'
    probes read as a feature); stable_form writes it sech^2.  Reference: the closed forms
    1/(4 cosh^2(x/2)), 1/(1 + exp(-x)), x sigmoid'(x) + sigmoid(x) and 1/cosh^2(x) in mpmath at 30 digits."""
    act = bnsym.activation(name)
    values = act.np(np.array([x, 0.5, x]), derivative=derivative)
    with mpmath.workdps(30):
        v = mpmath.mpf(x)
        sigmoid = 1 / (1 + mpmath.exp(-v))
        exact = {("sigmoid", True): 1 / (4 * mpmath.cosh(v / 2) ** 2), ("softplus", True): sigmoid,
                 ("silu", True): v * sigmoid * (1 - sigmoid) + sigmoid,
                 ("tanh", True): 1 / mpmath.cosh(v) ** 2}[(name, derivative)]
    assert np.all(np.isfinite(values))
    for value in (values[0], values[2]):
        assert abs(value - float(exact)) <= 4e-16 * abs(float(exact)) + 1e-300


@pytest.mark.parametrize("name, left_slope", [("Abs(x)**(3/2)", -1.5), ("relu_power(1.5)", 0.0), ("Abs(x)**(5/2)", -2.5)])
def test_a_piece_at_and_past_its_non_analytic_end_gives_its_limit(name, left_slope):
    """The left piece of ``|x|^(3/2)`` writes its derivative ``(3/2) (-x)^(3/2) / x``: 0/0 at the kink, where
    it raised ZeroDivisionError (found by a review, 2026-12-08). At the kink, and a hair past it (where the
    rules' rounding may put a node), each piece gives its one-sided limit; nearby it gives the slope of ``|x|^a``."""
    act = bnsym.activation(name)
    with mpmath.workdps(30):
        for derivative in (False, True):
            assert act.mp(mpmath.mpf(0), derivative) == 0
            assert act.mp_piece(0, derivative)(mpmath.mpf("1e-40")) == 0
        assert act.mp(mpmath.mpf(-1), True) == left_slope
        assert abs(act.mp(mpmath.mpf("-1e-20"), True)) < 1e-9
    assert bnsym.gradient_explosion_rate(name, 5, beta="0.2", dps=10).value > 1
