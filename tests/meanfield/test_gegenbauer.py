"""The Gegenbauer series (docs/theory.md section 16) against the engine's direct values.

* every series value (q*, c*, lambda_G, forward lambda_L, lambda_M) against bnsym.fixed_point,
  gradient_explosion_rate and spectrum, within the series' own error (truncation bound plus
  quadrature) plus the engine's promised precision: this tests the formulas and that the
  truncation bound really bounds;
* the coefficients against brute-force ``mpmath.quad`` of ``E1[f P_l]`` (a different integral);
* the identity, where the series are exact after two terms;
* the bound for a kinked activation (ReLU) is both valid and informative;
* recomputation at dps + 10; bad input; the CLI.
"""

from __future__ import annotations

import json

import mpmath
import pytest

import bnsym
from bnsym.cli import main
from bnsym.errors import BnsymInputError
from bnsym.meanfield.gegenbauer_series import gegenbauer
from bnsym.numerics.gegenbauer_basis import (
    harmonic_dimension,
    laplace_bound,
    normalised_gegenbauer,
)


def _direct(activation, b, **kw):
    spec = bnsym.spectrum(activation, b, **kw)
    fp = spec.fixed_point
    return {
        "q": (fp.q, fp.q_error), "c": (fp.c, fp.c_error), "spread": (fp.spread, fp.spread_error),
        "lambda_G": (spec.eigenvalue("backward", "G").value, spec.eigenvalue("backward", "G").error),
        "forward_L": (spec.eigenvalue("forward", "L").value, spec.eigenvalue("forward", "L").error),
        "forward_M": (spec.eigenvalue("forward", "M").value, spec.eigenvalue("forward", "M").error),
    }


def _check_against_engine(series, direct, dps=15):
    for name, value in series.values().items():
        ref, ref_error = direct[name]
        slack = mpmath.mpf(10) ** -dps * max(1, abs(ref))  # the engine's promise
        assert abs(value.value - ref) <= value.error + ref_error + slack, (name, value.value, ref, value.error)


@pytest.mark.parametrize("activation, b, terms", [
    ("tanh", 6, 40),
    pytest.param("gelu", 32, 30, marks=pytest.mark.slow),
    pytest.param("tanh(x + 0.3)", 10, 30, marks=pytest.mark.slow),
])
def test_series_equal_engine_within_their_bounds(activation, b, terms):
    series = gegenbauer(activation, b, terms=terms)
    _check_against_engine(series, _direct(activation, b))
    # smooth: the bounds are small, so the agreement above is sharp
    for value in series.values().values():
        assert value.truncation < 1e-10


def test_relu_bound_is_valid_and_informative():
    """ReLU's coefficients decay algebraically: with 40 terms at B = 6, lambda_G is 1.978 against 2.0038
    (the brief's 400 terms gave 2.0012); the rigorous bound must cover the gap and stay below 2%."""
    series = gegenbauer("relu", 6, terms=40)
    _check_against_engine(series, _direct("relu", 6))
    rate = series.rate
    assert 0.02 < abs(rate.value - bnsym.gradient_explosion_rate("relu", 6).value) <= rate.truncation < 0.03 * rate.value
    # q* = 1/2 exactly: its truncation is the Parseval remainder itself
    assert abs(series.q.value + series.q.truncation - mpmath.mpf(1) / 2) < 1e-20


def test_identity_series_are_exact():
    b = 10
    series = gegenbauer("identity", b, terms=3, dps=25)
    assert all(abs(a.value) < 1e-30 for l, a in enumerate(series.coefficients) if l != 1)
    with mpmath.workdps(30):
        assert abs(series.rate.value - mpmath.mpf(b - 2) / (b - 3)) < 1e-25
        for value in (series.forward_L, series.forward_M):
            assert abs(value.value - mpmath.mpf(b - 1) / (b + 1)) < 1e-25
        assert series.rate.truncation < 1e-25
    # orthonormal coefficient of x: sqrt(dimH_1) a_1, whose square is q* = E1[s^2] = 1
    assert abs(series.orthonormal[1] ** 2 - 1) < 1e-25


def test_coefficients_against_brute_force_quadrature():
    """a_l = E1[tanh(s) P_l(t)] for the density (1-t^2)^((B-4)/2) on [-1, 1], by mpmath.quad (tanh-sinh).

    At B = 5, nu = 1: C_l^1 is the Chebyshev polynomial U_l, so P_l = U_l / (l + 1), evaluated by
    mpmath.chebyu (not by the library's Gegenbauer code)."""
    b = 5
    series = gegenbauer("tanh", b, terms=6, dps=20)
    with mpmath.workdps(30):
        n = b - 1
        weight = lambda t: (1 - t * t) ** (mpmath.mpf(b - 4) / 2)
        norm = mpmath.quad(weight, [-1, 1])
        for l in (1, 3, 5):
            direct = mpmath.quad(lambda t: weight(t) * mpmath.tanh(mpmath.sqrt(n) * t) * mpmath.chebyu(l, t) / (l + 1), [-1, 1]) / norm  # noqa: B023 (called at once)
            assert abs(series.coefficients[l].value - direct) < 1e-18, l
        # the basis itself: E1[P_l^2] = 1 / dimH_l
        l = 3
        second = mpmath.quad(lambda t: weight(t) * (mpmath.chebyu(l, t) / (l + 1)) ** 2, [-1, 1]) / norm
        assert abs(second * harmonic_dimension(l, b) - 1) < 1e-20


def test_laplace_bound_bounds_the_normalised_polynomials():
    """M = laplace_bound(2m) >= |P_l(rho)| for every l >= 2m (checked up to l = 120), and it is not vacuous."""
    for b in (4, 8, 32):
        rho = -mpmath.mpf(1) / (b - 1)
        for m in (1, 5, 20):
            bound = laplace_bound(2 * m, b, rho)
            assert bound < 1
            assert max(abs(normalised_gegenbauer(l, b, rho)) for l in range(2 * m, 121)) <= bound * (1 + 1e-12)


@pytest.mark.slow
def test_recomputation_at_more_digits_agrees():
    low = gegenbauer("tanh", 8, terms=30, dps=15)
    high = gegenbauer("tanh", 8, terms=30, dps=25)
    for a, b in zip(low.coefficients, high.coefficients):
        assert abs(a.value - b.value) <= a.error + b.error + 1e-15 * abs(b.value)
    for name, v in low.values().items():
        w = high.values()[name]
        assert abs(v.value - w.value) <= v.quadrature + w.quadrature + mpmath.mpf(10) ** -15


@pytest.mark.parametrize("kwargs, word", [
    ({"terms": 0}, "terms"), ({"terms": 2.5}, "terms"), ({"batch_size": 3}, "batch_size"),
    ({"batch_size": "inf"}, "batch_size"), ({"sigma_w": 0}, "sigma_w"), ({"dps": 0}, "dps"),
])
def test_bad_input_is_one_line(kwargs, word):
    args = {"activation": "tanh", "batch_size": 8, **kwargs}
    with pytest.raises(BnsymInputError) as info:
        gegenbauer(args.pop("activation"), args.pop("batch_size"), **args)
    assert word in str(info.value) and "\n" not in str(info.value)


def test_cli_json_matches_api(capsys):
    assert main(["gegenbauer", "identity", "-B", "8", "--terms", "3", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["terms"] == 3
    assert abs(float(payload["series"]["lambda_G"]["value"]) - 6 / 5) < 1e-14
    assert main(["gegenbauer", "tanh", "-B", "8", "--terms", "0"]) == 2
    assert "terms" in capsys.readouterr().err
