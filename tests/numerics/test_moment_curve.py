"""The radial moment curve (docs/theory.md section 15) against direct sphere moments, and the
dps = 100 promise of the sphere laws (docs/theory.md section 3.2)."""

from __future__ import annotations

import dataclasses

import mpmath
import pytest

import bnsym
from bnsym.activations import activation
from bnsym.meanfield.gradients import rate_from_settings
from bnsym.numerics.moments import MomentCurve, gain_floor, moments_at_gains, sphere_moments
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


def test_kinked_curve_above_its_floor_matches_direct_moments():
    """ReLU at beta = 0.2: the kink is inside the sphere support, and the moments are analytic in
    kappa above :func:`gain_floor` (docs/theory.md section 15.3).  The curve built above its cap
    agrees with the direct (kink-split) moments off its Chebyshev points, within the two errors;
    a node below the cap that is not negligible is left to the caller (None), a negligible one
    is clamped."""
    act, b, wdps = activation("relu"), 8, 20
    law = SphereLaw(b, wdps)
    rtol = mpmath.mpf(10) ** -12
    with mpmath.workdps(wdps):
        shift, gamma = mpmath.mpf("0.2"), mpmath.mpf(1)
        floor = gain_floor(act, shift, gamma, law)

        def direct(kappa, tol=rtol):
            return sphere_moments(act, law, gamma * kappa, shift, gamma, tol, gradient=True, method="quadrature")

        curve = MomentCurve(lambda kappas, tol: [direct(k, tol) for k in kappas], wdps, rtol, floor=floor)
        assert curve.cap == floor + (1 - floor) / 2
        kappas = [mpmath.mpf(x) for x in ("0.63", "0.871", "0.99")] + [curve.cap / 2, curve.cap / 3]
        got = curve.at(kappas, [0, 0, 0, 0, 40])
        assert got[3] is None and got[4] is not None
        assert all(lo >= curve.cap for lo, _ in curve.tiers.values())
        for kappa, m in zip(kappas[:3], got[:3]):
            ref = direct(kappa)
            for name in ("mean", "q", "c", "spread", "d2", "d11", "sd2", "sd11"):
                value, exact = getattr(m, name), getattr(ref, name)
                assert abs(value.value - exact.value) <= value.error + exact.error + mpmath.mpf(10) ** -18, (kappa, name)
                assert value.error < 1e-11 * max(1, abs(ref.q.value), abs(ref.d2.value))


def test_gain_floor_is_where_a_kink_meets_the_edge_of_the_support():
    """At kappa = gain_floor the two kinks' crossing point (s_j, s_k) = (u_j, u_k) / (gamma kappa)
    lies on the edge of the pair support, s_a^2 - 2 rho s_a s_b + s_b^2 = n (1 - rho^2), and
    inside it for larger kappa; smooth activations have no floor, B <= 3 claims no range."""
    with mpmath.workdps(30):
        for name, shift, gamma, b in (("relu", "0.2", "1", 4), ("relu", "-0.5", "1.3", 32), ("relu(x+1) - relu(x-1) - 1", "0.1", "2", 9)):
            act, law = activation(name), SphereLaw(b, 30)
            shift, gamma = mpmath.mpf(shift), mpmath.mpf(gamma)
            floor = gain_floor(act, shift, gamma, law)
            assert 0 < floor < 1
            n, rho = law.n, law.rho
            us = [x - shift for x in act.numeric_kinks()]

            def inside(kappa, u, v):
                sa, sb = u / (gamma * kappa), v / (gamma * kappa)
                return sa * sa - 2 * rho * sa * sb + sb * sb - n * (1 - rho * rho)

            edges = [inside(floor, u, v) for u in us for v in us]
            assert min(abs(e) for e in edges) < mpmath.mpf(10) ** -25  # one crossing is on the edge
            assert all(inside(floor * mpmath.mpf("1.01"), u, v) < 0 for u in us for v in us)  # all inside above it
        assert gain_floor(activation("tanh"), mpmath.mpf("0.2"), 1, SphereLaw(8, 20)) == 0
        assert gain_floor(activation("relu"), mpmath.mpf("0.2"), 1, SphereLaw(3, 20)) == 1


@pytest.mark.slow  # 3 s: in the default run, not the fast one
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


#: B = 1000 (9 to 13 s per activation on a quiet machine) and tanh at B = 32 (6 s) run with -m extended, to
#: keep the default suite within its 5 minutes; relu_power(1.5) keeps B = 1000 at dps 100 in the default
#: run (tests/numerics/test_real_degree_closed_forms.py).
@pytest.mark.slow
@pytest.mark.parametrize("name,batch_size", [
    ("tanh", 5), pytest.param("tanh", 32, marks=pytest.mark.extended), pytest.param("tanh", 1000, marks=pytest.mark.extended),
    ("gelu", 5), ("gelu", 32), pytest.param("gelu", 1000, marks=pytest.mark.extended)])
def test_dps_100_reachable(name, batch_size):
    """lambda_G at dps 100 against dps 110: every promised digit holds (measured 2026-12-03 at B = 32
    and 1000: 3e-108 to 8e-112 relative; 2-10 s per value)."""
    low = bnsym.gradient_explosion_rate(name, batch_size, dps=100)
    settings = dataclasses.replace(low.settings, dps=110)  # past the public limit, for the check only
    high = rate_from_settings(settings)
    assert abs(low.value - high.value) <= mpmath.mpf(10) ** -100 * abs(high.value)
