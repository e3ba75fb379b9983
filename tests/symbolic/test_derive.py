"""bnsym.derive: closed forms against the numeric engine, limits, series, and refusals."""

from __future__ import annotations

import mpmath
import pytest
import sympy as sp

import bnsym
from bnsym.cli import main
from bnsym.errors import BnsymInputError
from bnsym.symbolic import derive
from bnsym.symbolic.derivation import B

A = sp.Symbol("a", real=True)


@pytest.fixture(scope="module")
def relu_rate():
    return derive("relu", "lambda_G")


@pytest.fixture(scope="module")
def leaky_rate():
    return derive("leaky_relu", "lambda_G", slope=A)


def test_identity_rate_is_exact():
    d = derive("identity", "lambda_G")
    assert sp.simplify(d.expr - (B - 2) / (B - 3)) == 0
    assert d.limit == 1
    assert d.series == (1, 1 / B, 3 / B**2)  # (B-2)/(B-3) = 1 + 1/B + 3/B^2 + ...


@pytest.mark.parametrize("b", [4, 7, 16, 1000])
@pytest.mark.parametrize("act", ["relu", "identity"])
def test_rate_equals_engine_to_40_digits(act, b, relu_rate):
    d = relu_rate if act == "relu" else derive("identity", "lambda_G")
    engine = bnsym.gradient_explosion_rate(act, b, dps=45)
    with mpmath.workdps(60):
        value = d.evaluate(dps=50, B=b)
        assert abs(value - engine.value) <= mpmath.mpf(10) ** -40 * abs(value)


def test_relu_rate_against_engine_quadrature(relu_rate):
    """Independent of the closed forms the engine shares: its sphere quadrature."""
    engine = bnsym.gradient_explosion_rate("relu", 6, dps=20, method="quadrature")
    with mpmath.workdps(30):
        assert abs(relu_rate.evaluate(dps=25, B=6) - engine.value) < mpmath.mpf(10) ** -18


def test_relu_limit_and_fixed_point(relu_rate):
    assert sp.simplify(relu_rate.limit - sp.pi / (sp.pi - 1)) == 0
    q, c = derive("relu", "q"), derive("relu", "c")
    assert q.expr == sp.Rational(1, 2)
    rho = -1 / (B - 1)
    theory = (sp.sqrt(1 - rho**2) + (sp.pi - sp.acos(rho)) * rho) / (2 * sp.pi)  # docs/theory.md section 4
    for b in (3, 4, 9, 100):
        assert abs(sp.N(c.expr.subs(B, b) - theory.subs(B, b), 40)) < 1e-35
    assert sp.simplify(c.limit - 1 / (2 * sp.pi)) == 0


def test_series_terms_approximate_the_formula(relu_rate):
    """lambda_G - (c0 + c1/B + c2/B^2) must shrink like B^-3."""
    series = sum(relu_rate.series)
    residuals = []
    for b in (10**3, 10**4):
        exact = sp.N(relu_rate.expr.subs(B, b), 50)
        residuals.append(abs(exact - sp.N(series.subs(B, b), 50)) * b**3)
    assert residuals[1] < 2 * residuals[0] and residuals[1] > 0
    # and the first correction is not zero: it is a genuine 1/B term
    assert relu_rate.series[1] != 0


@pytest.mark.parametrize("slope", ["0.01", "0.2", "-0.3"])
def test_leaky_relu_symbolic_slope_spot_checks(leaky_rate, slope):
    assert leaky_rate.symbols[0].name == "B" and {s.name for s in leaky_rate.symbols} == {"B", "a"}
    engine = bnsym.gradient_explosion_rate(f"leaky_relu({slope})", 32, dps=30)
    with mpmath.workdps(40):
        assert abs(leaky_rate.evaluate(dps=35, B=32, a=slope) - engine.value) < mpmath.mpf(10) ** -28


def test_leaky_relu_quadrature_spot_check(leaky_rate):
    engine = bnsym.gradient_explosion_rate("leaky_relu(0.2)", 9, dps=15, method="quadrature")
    with mpmath.workdps(30):
        assert abs(leaky_rate.evaluate(B=9, a="0.2") - engine.value) < 1e-13


def test_leaky_relu_rate_is_minimal_at_slope_one(leaky_rate):
    """lambda_G(a) - lambda_G(1) = (a - 1)^2 * (positive) / (positive): the linear slope minimises it."""
    expr = leaky_rate.expr.subs(sp.Symbol("a", real=True), A)
    at_one = sp.simplify(expr.subs(A, 1))
    assert sp.simplify(at_one - (B - 2) / (B - 3)) == 0
    difference = sp.factor(sp.together(expr - at_one))
    numerator, denominator = sp.fraction(difference)
    quotient, remainder = sp.div(sp.Poly(numerator, A), sp.Poly((A - 1) ** 2, A))
    assert remainder.is_zero
    for b in (4, 5, 32, 10**4):
        # the remaining factors have a fixed sign over all slopes: check at both ends and the middle
        q = quotient.as_expr().subs(B, b)
        den = denominator.subs(B, b)
        signs = {sp.sign(sp.N((q / den).subs(A, t), 30)) for t in (-10**6, -1, 0, 1, 10**6)}
        assert signs == {1}
        assert sp.Poly(den, A).degree() == 2


def test_gamma_drops_out_of_the_rate():
    gamma = sp.Symbol("gamma", real=True, nonzero=True)
    rate = derive("relu", "lambda_G", gamma=gamma)
    assert gamma not in rate.expr.free_symbols
    q = derive("relu_power(2)", "q", gamma=gamma)
    assert sp.simplify(q.expr - gamma**4 * derive("relu_power(2)", "q").expr) == 0


@pytest.mark.parametrize(
    ("act", "b"),
    [
        ("abs", 5),
        pytest.param("relu_power(2)", 7, marks=pytest.mark.slow),
        pytest.param("relu_power(3)", 6, marks=[pytest.mark.slow, pytest.mark.extended]),  # 4 s: -m extended (relu_power(2) runs by default)
        ("x**3 + x", 5),
        pytest.param("x**2 + x", 9, marks=pytest.mark.slow),
    ],
)
def test_other_activations_against_engine_quadrature(act, b):
    rate = derive(act, "lambda_G")
    engine = bnsym.gradient_explosion_rate(act, b, dps=15, method="quadrature")
    with mpmath.workdps(30):
        assert abs(rate.evaluate(B=b) - engine.value) < 1e-12 * engine.value
    fp = bnsym.fixed_point(act, b, dps=15, method="quadrature")
    with mpmath.workdps(30):
        assert abs(derive(act, "q").evaluate(B=b) - fp.value) < 1e-12 * fp.value
        assert abs(derive(act, "c").evaluate(B=b) - fp.c) < 1e-12 * fp.value


@pytest.mark.slow  # 3 s: in the default run, not the fast one
def test_polynomial_with_symbolic_gain_and_shift():
    gamma, beta = sp.symbols("gamma beta", real=True)
    rate = derive("x**2 + x", "lambda_G", gamma=gamma, beta=beta)
    assert {s.name for s in rate.symbols} == {"B", "beta", "gamma"}
    engine = bnsym.gradient_explosion_rate("x**2 + x", 6, gamma="0.7", beta="-0.4", dps=15, method="quadrature")
    with mpmath.workdps(30):
        assert abs(rate.evaluate(B=6, gamma="0.7", beta="-0.4") - engine.value) < 1e-12 * engine.value


def test_forward_eigenvalues_of_identity_are_exact():
    """Linear phi: dV[Delta] = n/(n+2) Delta from the fourth moments of the uniform sphere law."""
    for name in ("lambda_L", "lambda_M"):
        d = derive("identity", name)
        assert sp.simplify(d.expr - (B - 1) / (B + 1)) == 0
        assert d.limit == 1


@pytest.mark.parametrize(
    ("act", "method"),
    [("relu", "auto"), ("leaky_relu(0.2)", "auto"), ("x**3 + x", "quadrature"),
     pytest.param("relu", "quadrature", marks=[pytest.mark.slow, pytest.mark.extended])],  # 5 s: -m extended (the default run has x**3 + x by quadrature)
)
def test_forward_eigenvalues_against_engine_spectrum(act, method):
    """The engine's spectrum conditions on sphere coordinates (closed forms or quadrature): an independent route."""
    from bnsym.meanfield.linearization import spectrum

    engine = spectrum(act, 7, dps=15, method=method)
    for name in ("lambda_L", "lambda_M"):
        d = derive(act, name)
        with mpmath.workdps(30):
            value = d.evaluate(B=7)
        reference = engine.eigenvalue("forward", name[-1])
        assert abs(value - reference.value) < 1e-12


def test_relu_forward_eigenvalue_on_m_is_compact():
    d = derive("relu", "lambda_M")
    theta = sp.acos(1 / (B - 1))
    expected = B * (B - 1) * theta / ((B + 1) * (sp.pi * (B - 1) + theta - sp.sqrt(B) * sp.sqrt(B - 2)))
    assert sp.simplify(d.expr - expected) == 0
    assert sp.simplify(d.limit - sp.pi / (2 * (sp.pi - 1))) == 0
    with pytest.raises(BnsymInputError, match="B >= 4"):
        derive("relu", "lambda_M", batch_size=3)


def test_small_batches():
    assert derive("relu", "lambda_G", batch_size=2).expr == 0
    assert derive("relu", "lambda_G", batch_size=3).expr == sp.oo
    for b in (2, 3):
        fp = bnsym.fixed_point("relu", b, dps=20)
        with mpmath.workdps(30):
            assert abs(derive("relu", "c", batch_size=b).value - fp.c) < 1e-18


def test_infinite_batch_matches_engine():
    d = derive("relu", "lambda_G", batch_size=sp.oo)
    assert sp.simplify(d.expr - sp.pi / (sp.pi - 1)) == 0


def test_no_closed_form_offers_the_engine_value():
    d = derive("tanh", "lambda_G", batch_size=6, dps=15)
    assert not d.closed_form and d.expr is None and d.latex is None
    assert "no closed form" in str(d)
    assert d.value == bnsym.gradient_explosion_rate("tanh", 6, dps=15).value
    shifted = derive("relu", "q", batch_size=5, beta="0.5", dps=15)
    assert not shifted.closed_form and "beta" in shifted.reason
    assert shifted.value == bnsym.fixed_point("relu", 5, beta="0.5", dps=15).value
    with pytest.raises(BnsymInputError, match="no closed form"):
        shifted.mp


def test_bad_input_is_refused_clearly():
    with pytest.raises(BnsymInputError, match="batch_size: no closed form"):
        derive("tanh", "lambda_G")
    with pytest.raises(BnsymInputError, match="batch_size"):
        derive("relu", "lambda_G", batch_size=1)
    with pytest.raises(BnsymInputError, match="activation"):
        derive(sp.Function("f")(sp.Symbol("x")), "q")
    with pytest.raises(BnsymInputError, match="sympy cannot differentiate"):
        derive(sp.Function("f")(sp.Symbol("x")) * sp.Symbol("a"), "q")
    with pytest.raises(BnsymInputError, match="quantity"):
        derive("relu", "nonsense")
    with pytest.raises(BnsymInputError, match="gamma"):
        derive("relu", "q", gamma=0)
    with pytest.raises(BnsymInputError, match="exponent"):
        derive("relu_power(k)", "q")
    with pytest.raises(BnsymInputError, match="values"):
        derive("relu", "lambda_G").evaluate(C=3)


def test_outputs_latex_and_mpmath():
    d = derive("identity", "c")
    assert d.latex == sp.latex(-1 / (B - 1))
    with mpmath.workdps(30):
        assert d.mp(mpmath.mpf(5)) == mpmath.mpf(-1) / 4


def test_cli(capsys):
    assert main(["derive", "identity", "--series", "2"]) == 0
    out = capsys.readouterr().out
    assert "(B - 2)/(B - 3)" in out and "B -> oo: 1" in out
    assert main(["derive", "relu", "-q", "c", "--latex", "-B", "inf"]) == 0
    assert "\\frac{1}{2 \\pi}" in capsys.readouterr().out
    assert main(["derive", "tanh", "-B", "5", "--dps", "10"]) == 0
    assert "no closed form" in capsys.readouterr().out
    assert main(["derive", "tanh"]) == 2
    assert "no closed form" in capsys.readouterr().err


def test_cli_help_names_every_quantity(capsys):
    """``bnsym derive --help`` lists every quantity ``derive`` accepts (it had left out c_x and lambda_x)."""
    from bnsym.symbolic.derivation import QUANTITIES

    with pytest.raises(SystemExit):
        main(["derive", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for name in QUANTITIES:
        assert name in text, name
