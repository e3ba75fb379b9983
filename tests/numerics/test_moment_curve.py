"""The radial moment curve (docs/theory.md section 15) against direct sphere moments, and the
dps = 100 promise of the sphere laws (docs/theory.md section 3.2)."""

from __future__ import annotations

import dataclasses

import mpmath
import pytest

import bnsym
from bnsym.activations import activation
from bnsym.meanfield.gradients import rate_from_settings
from bnsym.numerics.moments import MomentCurve, sphere_moments
from bnsym.numerics.sphere import SphereLaw


def test_curve_matches_direct_moments():
    """Interpolated moments at kappas off the Chebyshev points against sphere_moments there."""
    act, b, wdps = activation("tanh"), 8, 22
    law = SphereLaw(b, wdps)
    rtol = mpmath.mpf(10) ** -14

    def direct(kappa):
        return sphere_moments(act, law, kappa, mpmath.mpf(0), mpmath.mpf(1), rtol, gradient=True, method="quadrature")

    curve = MomentCurve(direct, wdps, rtol)
    with mpmath.workdps(wdps):
        kappas = [mpmath.mpf(x) for x in ("0.61", "0.8333", "0.97")]
        got = curve.at(kappas, mpmath.mpf("0.6"))
        for kappa, m in zip(kappas, got):
            ref = direct(kappa)
            for name in ("q", "c", "spread", "d2", "d11", "sd2", "sd11"):
                value, exact = getattr(m, name), getattr(ref, name)
                assert abs(value.value - exact.value) <= value.error + exact.error + 1e-20
                assert value.error < 1e-13


@pytest.mark.slow
def test_eps_rate_recomputed_at_more_digits():
    """tanh at B = 32, eps = 1e-3 (the interpolated path) at dps 8 against dps 18."""
    low = bnsym.gradient_explosion_rate("tanh", 32, eps="1e-3", dps=8)
    high = bnsym.gradient_explosion_rate("tanh", 32, eps="1e-3", dps=18)
    assert abs(low.value - high.value) <= mpmath.mpf(10) ** -8 * high.value


@pytest.mark.slow
@pytest.mark.parametrize("name", ["tanh", "gelu"])
def test_dps_100_reachable(name):
    """lambda_G at dps 100 (B = 5) against dps 110: every promised digit holds."""
    low = bnsym.gradient_explosion_rate(name, 5, dps=100)
    settings = dataclasses.replace(low.settings, dps=110)  # past the public limit, for the check only
    high = rate_from_settings(settings)
    assert abs(low.value - high.value) <= mpmath.mpf(10) ** -100 * abs(high.value)
