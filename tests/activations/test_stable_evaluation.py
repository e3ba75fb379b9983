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
