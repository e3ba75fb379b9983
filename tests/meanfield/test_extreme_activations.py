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
from bnsym.numerics.moments import centring_law
from bnsym.numerics.sphere import Integrand, SphereLaw


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


@pytest.mark.slow  # 30 s in all on a slow machine: the fast suite keeps its 90 s
@pytest.mark.parametrize("expr,gamma,beta,dps", [
    ("x**3 + x", 20000, "0.5", 20),  # refused by the first version of the dense probe (a hard cap)
    ("x + exp(-(300*x)**4)/10", 1, "0.37", 15),  # a bump 1/300 wide in x: 1.0 for 3.443
    ("300*x + exp(-(300*x)**4)/10", 1, "0.37", 15),  # the same bump on a steep line: 1.0 for 1.000027
    ("x + exp(-x**4)/10", 300, 111, 10),  # the bump at gain 300: 1.0 for 1.000027
    ("x + exp(-(300*x)**4/(1 + x**2))/10", 1, "0.37", 15),  # the scale inside a rational argument: 1.0 for 3.443
    ("x + 1/(10*(1 + (300*x)**2)**50)", 1, "0.37", 15),  # inside a negative power: 1.0 for 10.79
    ("x + 1/(10*(1 + (300*x)**4)**4)", 1, "0.37", 15),  # PrecisionError before the negative power was read
    # softplus, a corner 1/1000 wide at a panel's end: PrecisionError with 4096 nodes per panel until the
    # split threshold was two Gauss blocks (docs/theory.md section 3.2); 1.4657740058760069821 (12 s)
    ("log(1 + exp(x))", 1000, 0, 15),
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


@pytest.mark.slow
@pytest.mark.parametrize("beta", [20, -20])
def test_saturated_tanh_keeps_its_digits(beta):
    """tanh at beta = +-20 is within e^-29 of +-1 on the whole support: ``f - E f`` cancels 13 to 22 digits,
    and the centred expectations did not converge (PrecisionError after 12 s at B = inf and 40 s at B = 32).
    They now run at more working digits (:func:`bnsym.numerics.moments.centring_law`).  B = inf against
    mpmath.quad at 70 digits (the reference cancels too: at 60 digits it was 8e-24 off at beta = 25); B = 32
    against the rate at dps 30, and against the rate at beta = 14 to 1e-8: lambda_G tends to a limit as beta
    grows (measured 3.1788418675721 at 14, 3.17884186940646 at 20)."""
    rate = bnsym.gradient_explosion_rate("tanh", math.inf, beta=beta, dps=15)
    reference = _gaussian_rate("tanh(x)", 1, beta, 60)
    assert abs(rate.value - reference) <= rate.error + mpmath.mpf(10) ** -18 * reference, (rate, reference)
    if beta < 0:  # tanh is odd: the same rate, checked at B = inf only
        return
    at_32 = bnsym.gradient_explosion_rate("tanh", 32, beta=beta, dps=15)
    finer = bnsym.gradient_explosion_rate("tanh", 32, beta=beta, dps=30)
    assert abs(at_32.value - finer.value) <= at_32.error + finer.error
    assert at_32.error <= mpmath.mpf(10) ** -15 * at_32.value
    assert abs(at_32.value - bnsym.gradient_explosion_rate("tanh", 32, beta=14, dps=15).value) < 1e-8


def test_the_centring_law_adds_digits_only_where_they_cancel():
    """centring_law returns the law itself where ``f - E f`` keeps its digits (tanh at beta = 0.5) and a law with
    at least ``D + L + 2`` working digits where it does not (beta = 20: ``L`` about 17 at B = inf)."""
    law, rtol = SphereLaw(math.inf, 25), mpmath.mpf(10) ** -19
    for beta, more in ((mpmath.mpf("0.5"), False), (mpmath.mpf(20), True)):
        with mpmath.workdps(25):
            f = Integrand(activation("tanh"), mpmath.mpf(1), beta)
            singles = law.expect_with_norms([f], rtol)
        chosen = centring_law(law, [f], singles, rtol)
        assert (chosen is not law) is more
        if more:
            assert chosen.working_dps >= 19 + 17 + 2 and chosen.batch_size == math.inf


def test_a_variance_below_the_rounding_is_resolved_by_raising_again():
    """tanh at beta = 40, B = inf: ``f - 1`` is ``-2 e^(-2x)``, 1e-28 to 1e-42 on the support, so ``E[f^2] - E[f]^2``
    is rounding at the first raise too (PrecisionError after 9 s before the raise was repeated, found by the
    review).  As ``beta -> inf``, ``phi' ~ 4 e^(-2x)`` and ``phi - 1 ~ -2 e^(-2x)`` give ``lambda_G -> 4 e^8 / (e^8 -
    e^4) = 4 / (1 - e^-4)``, with corrections of order ``e^(-2 beta)`` (``1e-35`` here): a closed form."""
    rate = bnsym.gradient_explosion_rate("tanh", math.inf, beta=40, dps=15)
    with mpmath.workdps(30):
        limit = 4 / (1 - mpmath.exp(-4))
    assert abs(rate.value - limit) <= rate.error + mpmath.mpf(10) ** -18 * limit, (rate, limit)


@pytest.mark.slow
def test_a_centre_off_by_more_than_the_spread_is_moved():
    """tanh at beta = 40, B = 32: sd(f) is about 1e-33, below the accuracy of E[f] (1e-25 at 26 digits), so
    E[f~^2] - E[f~_a f~_b] cancelled and q* - c* reached only 2e-9 relative (PrecisionError, before and
    after the raised digits; found by the review); the centre is now moved by E[f - c].  The rate has
    converged in beta there (corrections about e^(-2 (beta - sqrt(31))), 1e-21 at beta = 30): it equals the
    rate at beta = 30 (its value at dps 30 agreed to 6e-22 when measured)."""
    rate = bnsym.gradient_explosion_rate("tanh", 32, beta=40, dps=15)
    assert rate.error <= mpmath.mpf(10) ** -15 * rate.value
    nearer = bnsym.gradient_explosion_rate("tanh", 32, beta=30, dps=15)
    assert abs(rate.value - nearer.value) <= rate.error + nearer.error + mpmath.mpf(10) ** -20


@pytest.mark.slow  # 3.5 s
def test_the_forward_eigenvalues_of_saturated_tanh_at_infinite_batch():
    """The spectrum at beta = 20 combined uncentred moments (``E[f^2 s^2] - E[f^2] - ...``, all about 1, for a
    variance of 2e-31) and raised PrecisionError; its keys now hold ``f - c`` (docs/theory.md section 3.2).
    Against the same formulas of docs/theory.md section 15.2 by mpmath.quad at 70 digits (39 left after the
    cancellation), and lambda_G against :func:`_gaussian_rate`."""
    spectrum = bnsym.spectrum("tanh", math.inf, beta=20, dps=15)
    with mpmath.workdps(70):
        points = [-mpmath.inf, -20, -10, 0, 10, mpmath.inf]

        def expect(g):
            return mpmath.quad(lambda s: g(s) * mpmath.npdf(s), points)

        def f(s):
            return mpmath.tanh(s + 20)

        m0, q0, m1, m2 = expect(f), expect(lambda s: f(s) ** 2), expect(lambda s: f(s) * s), expect(lambda s: f(s) * s * s)
        variance = q0 - m0**2
        expected = {"L": (expect(lambda s: (f(s) * s) ** 2) - q0 - 2 * m0 * (m2 - m0)) / (2 * variance), "M": m1**2 / variance}
    for e in spectrum.forward[1:]:
        # the reported error bounds the actual one (it was 1e-35 for an actual 2e-25 before its rounding floor: the review)
        assert abs(e.value - expected[e.subspace]) <= e.error <= mpmath.mpf(10) ** -15 * max(1, abs(e.value)), (e, expected)
    (rate,) = spectrum.backward
    reference = _gaussian_rate("tanh(x)", 1, 20, 60)
    assert abs(rate.value - reference) <= rate.error + mpmath.mpf(10) ** -15 * reference


@pytest.mark.slow  # 2.3 s
def test_the_spectrum_of_saturated_tanh_is_that_of_its_exponential_tail():
    """At B = 32 and beta = 30, ``tanh(s + 30) = 1 - 2 e^(-2 (s + 30)) (1 + O(e^(-2 (30 - sqrt 31))))`` on the
    whole support ``|s| <= sqrt 31``, and every eigenvalue is invariant under ``f -> a f + b``: the spectrum is
    that of ``exp(-2x)`` up to about ``6e-22`` (measured differences 1.5e-24 to 2.6e-23).  ``exp(-2x)`` has no
    cancellation (its spread is of the size of its mean), so it is the reference; tanh raised PrecisionError
    before its forward keys were centred."""
    saturated = bnsym.spectrum("tanh", 32, beta=30, dps=20)
    tail = bnsym.spectrum("exp(-2*x)", 32, dps=20)
    for e, reference in zip(saturated.forward + saturated.backward, tail.forward + tail.backward):
        assert (e.operator, e.subspace) == (reference.operator, reference.subspace)
        assert abs(e.value - reference.value) <= e.error + reference.error + mpmath.mpf(10) ** -20 * max(1, abs(e.value)), (e, reference)


@pytest.mark.slow  # 2 s
def test_an_integrand_that_overflows_float64_on_the_support_keeps_its_reach():
    """``exp(3 s)`` at B = 10^5 overflows float64 past ``s = 236.6`` of a support reaching 316; the
    reach of the rule took the overflow for no decay, kept the whole support and no rule converged
    (PrecisionError after 10 s).  The logarithm of ``|F|`` is now taken in mpmath there.  Reference: the
    expansion ``lambda(B) = lambda(inf) + a/B + b/B^2 + c/B^3`` fitted at B = 10^4, 2 10^4, 4 10^4 (no
    overflow there) predicts B = 10^5 and 10^6 to 1.2e-10 and 2.6e-11 (measured)."""
    with mpmath.workdps(25):
        limit = bnsym.gradient_explosion_rate("exp(x)", math.inf, gamma=3, dps=20).value
        fitted = (10_000, 20_000, 40_000)
        scaled = [(bnsym.gradient_explosion_rate("exp(x)", b, gamma=3, dps=20).value - limit) * b for b in fitted]
        coef = mpmath.lu_solve(mpmath.matrix([[1, mpmath.mpf(1) / b, mpmath.mpf(1) / b**2] for b in fitted]), mpmath.matrix(scaled))
        for b in (100_000, 1_000_000):
            rate = bnsym.gradient_explosion_rate("exp(x)", b, gamma=3, dps=20)
            predicted = limit + (coef[0] + coef[1] / b + coef[2] / b**2) / b
            assert abs(rate.value - predicted) < 1e-8, (b, rate, predicted)


@pytest.mark.slow  # 6 s
def test_a_batch_of_a_trillion_keeps_its_one_over_b_correction():
    """tanh at B = 10^12 raised PrecisionError: the float64 probe formed ``cos(psi)^(n-2)``, whose relative
    error is about ``n 1e-16`` (1e-4 here), and read the noise as a feature on every panel; it now takes
    the density's logarithm (``log1p``).  Reference: ``lambda(B) = lambda(inf) + a/B + O(1/B^2)`` with ``a``
    from B = 10^6 (``a`` known to about 1e-6 relative there, so the prediction to about 1e-18 at 10^12);
    measured ``(lambda(B) - lambda(inf)) B = 0.87954205`` at B = 10^10, 10^12 and 10^15."""
    with mpmath.workdps(30):
        limit = bnsym.gradient_explosion_rate("tanh", math.inf, dps=20).value
        slope = (bnsym.gradient_explosion_rate("tanh", 10**6, dps=20).value - limit) * 10**6
        rate = bnsym.gradient_explosion_rate("tanh", 10**12, dps=15)
        predicted = limit + slope / 10**12
        assert abs(rate.value - predicted) <= rate.error + mpmath.mpf(10) ** -16, (rate, predicted)


@pytest.mark.slow  # 1.5 s
def test_the_spectrum_of_an_exponential_whose_moments_overflow_float64():
    """``exp(10 s)`` at B = inf: the spectrum's fourth moments peak at ``e^800``, past float64's range, and the
    float64 probe read the overflow as an unresolved feature, piled split points near ``s = 35`` and
    refused (PrecisionError after 9 s); the probe now forms the values from logarithms.  Closed forms from
    the Gaussian moments ``E[s^k e^(a s)]`` (docs/theory.md section 15.2, ``g = gamma^2``, ``E = e^g``):
    ``q* = E^2 - E``, ``lambda_L = g (2E - 1)/(E - 1)``, ``lambda_M = g/(E - 1)``, ``lambda_G = g/(1 - 1/E)``."""
    spectrum = bnsym.spectrum("exp(x)", math.inf, gamma=10, dps=15)
    with mpmath.workdps(40):
        g = mpmath.mpf(100)
        big = mpmath.exp(g)
        expected = {("forward", "L"): g * (2 * big - 1) / (big - 1), ("forward", "M"): g / (big - 1),
                    ("backward", "G"): g / (1 - 1 / big)}
        assert abs(spectrum.fixed_point.value - (big**2 - big)) <= mpmath.mpf(10) ** -15 * big**2
    for e in spectrum.forward[1:] + spectrum.backward:
        reference = expected[e.operator, e.subspace]
        assert abs(e.value - reference) <= e.error + mpmath.mpf(10) ** -20 * reference, (e, reference)
        assert e.error <= mpmath.mpf(10) ** -15 * reference


@pytest.mark.slow  # 6 s
def test_a_saturated_scale_is_not_taken_for_a_contraction():
    """tanh at beta = 20, B = 32: the scale ``sigma_w^2 (q* - c*)`` is ``5.8e-32``, below the secant's absolute
    floor of ``10^-working_dps``, so eps = 1e-36 (below the critical eps, 2.9e-34) raised ScaleContracts; the
    floor is now relative to the start.  At eps much below the scale the fixed point is the eps = 0 one up to
    first order in ``B eps / a*`` (measured 1.1e-4 relative)."""
    at_zero = bnsym.fixed_point("tanh", 32, beta=20, dps=15)
    small = bnsym.fixed_point("tanh", 32, beta=20, eps=1e-36, dps=15)
    assert small.regime == "nondegenerate"
    assert abs(small.spread - at_zero.spread) <= 1e-3 * at_zero.spread


@pytest.mark.slow
@pytest.mark.extended  # 20 s
def test_the_scale_slope_of_saturated_tanh_at_infinite_batch():
    """The forward G eigenvalue at B = inf, eps > 0 is the slope ``F'(a*)`` of the scale equation, now from
    ``E[f^2 (z^2 - 1)] - 2 E[f] E[f (z^2 - 1)]`` with ``f = phi - c`` (Stein's identity; it was
    ``2 E[phi phi' z] - 2 E[phi] E[phi' z]``, whose terms cancel where phi is nearly constant).  At beta = 20,
    eps = 1e-36 against mpmath.quad at 60 digits: the fixed point of ``a = Var tanh(sqrt(a / (a + eps)) z + 20)``
    by iteration, and the old formula there (eps as the float the call receives)."""
    spectrum = bnsym.spectrum("tanh", math.inf, beta=20, eps=1e-36, dps=15)
    with mpmath.workdps(60):
        eps, points = mpmath.mpf(1e-36), [-mpmath.inf, -30, -20, -10, 0, mpmath.inf]

        def expect(g):
            return mpmath.quad(lambda z: g(z) * mpmath.npdf(z), points)

        def variance(gain):
            mean = expect(lambda z: mpmath.tanh(gain * z + 20))
            return expect(lambda z: (mpmath.tanh(gain * z + 20) - mean) ** 2)

        a = variance(1)
        for _ in range(12):  # the map contracts by F'(a*) = 4e-5 a step
            a = variance(mpmath.sqrt(a / (a + eps)))
        gain = mpmath.sqrt(a / (a + eps))
        slope = (2 * expect(lambda z: mpmath.tanh(gain * z + 20) * mpmath.sech(gain * z + 20) ** 2 * z)
                 - 2 * expect(lambda z: mpmath.tanh(gain * z + 20)) * expect(lambda z: mpmath.sech(gain * z + 20) ** 2 * z))
        expected = slope * gain * eps / (2 * a * (a + eps))
    forward_g = spectrum.forward[0]
    assert spectrum.fixed_point.regime == "nondegenerate"
    assert abs(forward_g.value - expected) <= forward_g.error + mpmath.mpf(10) ** -15 * max(1, abs(expected)), (forward_g, expected)
    assert abs(forward_g.value - expected) <= 1e-15 * abs(expected)  # relative too: 18 digits agreed when measured
