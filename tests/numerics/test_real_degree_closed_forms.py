"""Closed forms of x_+^alpha at non-integer alpha (docs/theory.md section 16) against the sphere quadrature."""

import dataclasses

import mpmath
import pytest

import bnsym
from bnsym.activations import activation
from bnsym.meanfield.gradients import rate_from_settings
from bnsym.numerics import closed_forms
from bnsym.numerics.sphere import Integrand, SphereLaw


@pytest.mark.parametrize("batch_size", [pytest.param(5, marks=[pytest.mark.slow, pytest.mark.extended]), 32])  # B = 5: 6 s
def test_half_integer_orthant_moments_match_the_nested_quadrature(batch_size):
    """E[phi(s_a) phi(s_b)] and E[phi'(s_a) phi'(s_b)] for relu_power(1.5): the hypergeometric closed
    form against the nested angle quadrature (square-root maps at the kink), to 25 digits."""
    act = activation("relu_power(1.5)")
    n = batch_size - 1
    law = SphereLaw(batch_size, 35)
    with mpmath.workdps(35):
        f = Integrand(act, mpmath.mpf(1), mpmath.mpf(0))
        d = Integrand(act, mpmath.mpf(1), mpmath.mpf(0), derivative=True)
        ff, dd = law.expect_pairs([(f, f), (d, d)], mpmath.mpf(10) ** -28)
        exact_ff = closed_forms.homogeneous_pair((1, 0, mpmath.mpf(3) / 2), (1, 0, mpmath.mpf(3) / 2), n)
        exact_dd = closed_forms.homogeneous_pair((mpmath.mpf(3) / 2, 0, mpmath.mpf(1) / 2), (mpmath.mpf(3) / 2, 0, mpmath.mpf(1) / 2), n)
        assert abs(ff.value - exact_ff) <= mpmath.mpf(10) ** -25 * exact_ff
        assert abs(dd.value - exact_dd) <= mpmath.mpf(10) ** -25 * exact_dd


@pytest.mark.parametrize("batch_size", [5, 32, 1000])
def test_relu_power_rate_at_dps_100(batch_size):
    """lambda_G of relu_power(1.5) at dps 100 (closed form, which the test above checks against the
    quadrature) recomputed at dps 110: every promised digit holds."""
    low = bnsym.gradient_explosion_rate("relu_power(1.5)", batch_size, dps=100)
    assert low.error <= mpmath.mpf(10) ** -100 * low.value
    high = rate_from_settings(dataclasses.replace(low.settings, dps=110))  # past the public limit, for the check only
    assert abs(low.value - high.value) <= mpmath.mpf(10) ** -100 * high.value


@pytest.mark.slow
@pytest.mark.extended
@pytest.mark.parametrize("batch_size", [5, 6])
def test_relu_power_rate_off_its_closed_form_at_dps_60(batch_size):
    """At beta = 0.2 there is no closed form: the nested rule (square-root kinks, docs/theory.md section 3.2)
    gives lambda_G to 60 digits, recomputed at dps 70.  B = 5 (even n; measured 2026-12-08: 8.8 s) raised a
    PrecisionError before the inner panels were graded towards the pieces' second branch points; B = 6 (odd n:
    a tangency with a logarithm; 109 s on a slower machine) before its outer panels used the map of order 8
    there instead of tanh-sinh, and one Gauss rule instead of blocks beside a square-root map."""
    low = bnsym.gradient_explosion_rate("relu_power(1.5)", batch_size, beta="0.2", dps=60)
    high = rate_from_settings(dataclasses.replace(low.settings, dps=70))
    assert low.error <= mpmath.mpf(10) ** -60 * low.value
    assert abs(low.value - high.value) <= mpmath.mpf(10) ** -60 * high.value
