"""``derive(..., "c_x")`` and ``derive(..., "lambda_x")`` (docs/theory.md section 13) against the
engine (bnsym.cross_batch, whose closed form of t goes through an integration by parts the
symbolic layer does not use), exact limits and the 1/B series."""

from __future__ import annotations

import mpmath
import pytest
import sympy as sp

from bnsym.errors import BnsymInputError
from bnsym.meanfield.decorrelation import cross_batch
from bnsym.symbolic.derivation import B, derive

TOL = mpmath.mpf(10) ** -30


@pytest.fixture(scope="module")
def relu():
    return {q: derive("relu", q) for q in ("c_x", "lambda_x")}


def test_relu_closed_forms_match_the_engine_to_30_digits(relu):
    for b in (3, 4, 7, 32, 200):
        engine = cross_batch("relu", b, dps=30)
        for q in ("c_x", "lambda_x"):
            assert abs(relu[q].evaluate(30, B=b) - getattr(engine, q).value) < TOL * max(1, abs(getattr(engine, q).value)), (q, b)


def test_relu_limits_and_series(relu):
    assert sp.simplify(relu["c_x"].limit - 1 / (2 * sp.pi)) == 0
    assert sp.simplify(relu["lambda_x"].limit - sp.pi / (2 * (sp.pi - 1))) == 0
    for q in ("c_x", "lambda_x"):
        assert sp.simplify(derive("relu", q, sp.oo).expr - relu[q].limit) == 0
        big = 4000
        exact = relu[q].evaluate(30, B=big)
        with mpmath.workdps(30):
            approx = sum(mpmath.mpf(sp.N(t.subs(B, big), 40)) for t in relu[q].series)
        assert abs(approx - exact) < 2 * mpmath.mpf(big) ** -3, q  # three terms: error O(B^-3)
        assert abs(approx - exact) > mpmath.mpf(big) ** -5  # and not exact: the series is truncated


@pytest.mark.slow
def test_identity_rate_is_kappa_B():
    d = derive("identity", "lambda_x")
    kappa = 2 * sp.gamma(B / 2) ** 2 / ((B - 1) * sp.gamma((B - 1) / 2) ** 2)
    assert sp.simplify(sp.gammasimp(d.expr - kappa)) == 0
    assert d.limit == 1 and d.series[1] == -1 / (2 * B)
    assert derive("identity", "c_x").expr == 0


def test_homogeneous_closed_forms_at_fixed_batch_size():
    with mpmath.workdps(40):
        for name, b in (("relu_power(2)", 6), ("leaky_relu(0.2)", 5)):
            for q in ("c_x", "lambda_x"):
                symbolic = mpmath.mpf(sp.N(derive(name, q, b).expr, 45))
                engine = getattr(cross_batch(name, b, dps=30), q).value
                assert abs(symbolic - engine) < TOL * max(1, abs(engine)), (name, q)
    assert derive("relu", "lambda_x", 2).expr == 0


def test_without_closed_form_the_engine_answers():
    d = derive("tanh", "lambda_x", 6, dps=20)
    assert d.expr is None and abs(d.value - cross_batch("tanh", 6, dps=20).lambda_x.value) < mpmath.mpf(10) ** -19
    with pytest.raises(BnsymInputError) as info:
        derive("tanh", "c_x")
    assert "\n" not in str(info.value) and "c_x" in str(info.value)
