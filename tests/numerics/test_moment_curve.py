"""The radial moment curve (docs/theory.md section 15) against direct sphere moments, and the
dps = 100 promise of the sphere laws (docs/theory.md section 3.2)."""

from __future__ import annotations

import dataclasses

import mpmath
import pytest

import bnsym
from bnsym.activations import activation
from bnsym.meanfield.gradients import rate_from_settings
from bnsym.numerics.moments import MomentCurve, moments_at_gains, sphere_moments
from bnsym.numerics.sphere import SphereLaw


def test_curve_matches_direct_moments():
    """Interpolated moments at kappas off the Chebyshev points against sphere_moments there."""
    act, b, wdps = activation("tanh"), 8, 22
    law = SphereLaw(b, wdps)
    rtol = mpmath.mpf(10) ** -14

    def direct(kappa):
        return sphere_moments(act, law, kappa, mpmath.mpf(0), mpmath.mpf(1), rtol, gradient=True, method="quadrature")

    curve = MomentCurve(lambda kappas, tol: [direct(k) for k in kappas], wdps, rtol)
    with mpmath.workdps(wdps):
        kappas = [mpmath.mpf(x) for x in ("0.61", "0.8333", "0.97")]
        got = curve.at(kappas, [0, 0, 0])  # no slack: every node to rtol
        for kappa, m in zip(kappas, got):
            ref = direct(kappa)
            for name in ("q", "c", "spread", "d2", "d11", "sd2", "sd11"):
                value, exact = getattr(m, name), getattr(ref, name)
                assert abs(value.value - exact.value) <= value.error + exact.error + 1e-20
                assert value.error < 1e-13


def test_tiers_give_each_node_the_accuracy_its_slack_allows():
    """Past 40 digits the curve has a second, looser tier: nodes with slack are interpolated from
    it (or clamped), and every value still agrees with the direct moments within its reported
    error, which is within ``rtol 10^slack`` of the moments' scale."""
    act, b, wdps = activation("tanh"), 8, 52
    law = SphereLaw(b, wdps)
    rtol = mpmath.mpf(10) ** -42

    def direct(kappa, tol):
        return sphere_moments(act, law, kappa, mpmath.mpf(0), mpmath.mpf(1), tol, gradient=False, method="quadrature")

    curve = MomentCurve(lambda kappas, tol: [direct(k, tol) for k in kappas], wdps, rtol, gradient=False)
    with mpmath.workdps(wdps):
        kappas = [mpmath.mpf(x) for x in ("0.93", "0.45", "0.2")]
        slacks = [0, 23, 60]
        got = curve.at(kappas, slacks)
        assert sorted(curve.tiers) == [0, 21]  # the second tier at half of rtol's 42 digits
        for kappa, slack, m in zip(kappas, slacks, got):
            ref = direct(kappa, rtol)
            for name in ("q", "c", "spread"):
                value, exact = getattr(m, name), getattr(ref, name)
                assert abs(value.value - exact.value) <= value.error + exact.error
                if slack <= 42:
                    assert value.error <= rtol * mpmath.mpf(10) ** slack * 10 * ref.q.value


def test_moments_at_many_gains_are_those_of_each_gain_alone():
    """The shared-loop evaluation of several gains (the curve's) against one call per gain, for a
    smooth activation (Funk-Hecke) and a kinked one (nested angles), at beta != 0."""
    for name, b, digits, gains in (("tanh", 16, 16, ("0.4", "0.9", "1.7")), ("relu", 6, 12, ("0.4", "1.7"))):
        act, law, rtol = activation(name), SphereLaw(b, digits + 8), mpmath.mpf(10) ** -digits
        with mpmath.workdps(digits + 8):
            gains = [mpmath.mpf(x) for x in gains]
            shift = mpmath.mpf("0.3")
            together = moments_at_gains(act, law, gains, shift, mpmath.mpf("1.2"), rtol, gradient=True, method="quadrature")
            for gain, m in zip(gains, together):
                alone = sphere_moments(act, SphereLaw(b, digits + 8), gain, shift, mpmath.mpf("1.2"), rtol, gradient=True, method="quadrature")
                for field in ("mean", "q", "c", "spread", "d2", "d11", "sd2", "sd11"):
                    x, y = getattr(m, field), getattr(alone, field)
                    assert abs(x.value - y.value) <= x.error + y.error, (name, gain, field)
                    assert x.error <= rtol * 10 * max(abs(alone.q.value), abs(alone.d2.value), abs(alone.sd2.value))


@pytest.mark.slow
def test_eps_rate_recomputed_at_more_digits():
    """tanh at B = 32, eps = 1e-3 (the interpolated path) at dps 8 against dps 18."""
    low = bnsym.gradient_explosion_rate("tanh", 32, eps="1e-3", dps=8)
    high = bnsym.gradient_explosion_rate("tanh", 32, eps="1e-3", dps=18)
    assert abs(low.value - high.value) <= mpmath.mpf(10) ** -8 * high.value


@pytest.mark.slow
@pytest.mark.parametrize("batch_size", [5, 32, 1000])
@pytest.mark.parametrize("name", ["tanh", "gelu"])
def test_dps_100_reachable(name, batch_size):
    """lambda_G at dps 100 against dps 110: every promised digit holds (measured 2026-12-03 at B = 32
    and 1000: 3e-108 to 8e-112 relative; 2-10 s per value)."""
    low = bnsym.gradient_explosion_rate(name, batch_size, dps=100)
    settings = dataclasses.replace(low.settings, dps=110)  # past the public limit, for the check only
    high = rate_from_settings(settings)
    assert abs(low.value - high.value) <= mpmath.mpf(10) ** -100 * abs(high.value)
