"""Built-in activation names compose as functions of an expression in x, and keep
their parameter syntax; values are checked against formulas written here with NumPy/math.
"""

from __future__ import annotations

import math

import mpmath
import numpy as np
import pytest
import sympy as sp

import bnsym
from bnsym import ActivationError, activation

POINTS = np.array([-2.5, -1.3, -0.4, 0.3, 0.9, 1.7, 3.2])
ERF = np.vectorize(math.erf)


def _gelu(v):
    return v * (1 + ERF(v / math.sqrt(2))) / 2


def _leaky(v, slope):
    return np.where(v > 0, v, slope * v)


CASES = {
    "tanh(2*x)": lambda v: np.tanh(2 * v),
    "relu(x - 1)": lambda v: np.maximum(0, v - 1),
    "gelu(x)**2": lambda v: _gelu(v) ** 2,
    "erf(x/sqrt(2))": lambda v: ERF(v / math.sqrt(2)),
    "sin(2*x)": lambda v: np.sin(2 * v),
    "abs(x)": np.abs,
    "relu(x)": lambda v: np.maximum(0, v),
    "tanh(x)": np.tanh,
    "leaky_relu(x)": lambda v: _leaky(v, 0.01),
    "leaky_relu(x, slope=0.2)": lambda v: _leaky(v, 0.2),
    "leaky_relu(2*x - 1, slope=1/4)": lambda v: _leaky(2 * v - 1, 0.25),
    "elu(x, alpha=2) + x": lambda v: np.where(v > 0, v, 2 * (np.exp(v) - 1)) + v,
    "relu_power(x + 1, exponent=3)": lambda v: np.maximum(0, v + 1) ** 3,
    "silu(3*x)/3": lambda v: v / (1 + np.exp(-3 * v)),
    "softplus(x - 2)": lambda v: np.log1p(np.exp(v - 2)),
    "sigmoid(x)*x": lambda v: v / (1 + np.exp(-v)),
    "tanh(tanh(x))": lambda v: np.tanh(np.tanh(v)),
    "Max(0, x)**2 + 0.1*x": lambda v: np.maximum(0, v) ** 2 + v / 10,
    "identity(x)**3 + x": lambda v: v**3 + v,
    "TANH(x/2)": lambda v: np.tanh(v / 2),
    "swish(x)": lambda v: v / (1 + np.exp(-v)),
    "leaky_relu(0.2)": lambda v: _leaky(v, 0.2),
    "2*leaky_relu(0.2)": lambda v: 2 * _leaky(v, 0.2),
    "relu_power(3)": lambda v: np.maximum(0, v) ** 3,
    "relu_power(exponent=3)": lambda v: np.maximum(0, v) ** 3,
    "elu()": lambda v: np.where(v > 0, v, np.exp(v) - 1),
}


@pytest.mark.parametrize("text", CASES)
def test_composition_values(text):
    act = activation(text)
    expected = CASES[text](POINTS)
    assert np.allclose(act.np(POINTS), expected, rtol=1e-12, atol=1e-14), text
    with mpmath.workdps(30):
        for v, e in zip(POINTS, expected):
            assert abs(float(act.mp(mpmath.mpf(float(v)))) - e) <= 1e-12 * (1 + abs(e)), (text, v)


def test_parameter_syntax_keeps_its_label_and_slope():
    act = activation("leaky_relu(0.2)")
    assert act.label == "leaky_relu(slope=1/5)"
    assert dict(act.parameters)["slope"] == sp.Rational(1, 5)
    assert activation("leaky_relu", slope=0.2).expr == act.expr
    assert activation("leaky_relu(x, slope=0.2)").expr == act.expr
    assert activation("leaky_relu(x)").expr == activation("leaky_relu").expr


def test_decimals_are_exact():
    assert activation("0.1*x + tanh(x)").expr == x_symbol() / 10 + sp.tanh(x_symbol())


def x_symbol():
    return bnsym.activations.x


def test_report_of_a_composition_runs():
    rate = bnsym.gradient_explosion_rate("tanh(2*x)", 8, dps=10)
    t = sp.Symbol("t")
    assert abs(rate.value - bnsym.gradient_explosion_rate(sp.tanh(2 * t), 8, dps=10).value) < 1e-9
    assert float(rate) > 1


def test_cli_report_of_a_composition(capsys):
    from bnsym.cli import main

    assert main(["report", "tanh(2*x)", "-B", "8"]) == 0
    assert "tanh(2*x)" in capsys.readouterr().out


def test_derive_composition_is_the_function_written():
    # c* (0.5 s) rather than lambda_G (10 s): it depends on the whole function, both slopes included
    assert bnsym.derive("leaky_relu(x)", "c").limit == bnsym.derive("leaky_relu", "c").limit
    assert bnsym.derive("leaky_relu(a)", "c").limit.free_symbols == {sp.Symbol("a", real=True)}


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("leaky_relu(x, 0.2)", "by keyword, e.g. leaky_relu(x, slope=...)"),
        ("leaky_relu(0.2, x)", "by keyword"),
        ("leaky_relu(slope=x)", "must not depend on x"),
        ("leaky_relu(0.1, 0.2)", "takes 1 parameter"),
        ("tanh(x, 2)", "one expression"),
        ("tanh(x, slope=2)", "no parameter 'slope'"),
        ("relu + 1", "relu is a function; call it"),
        ("leaky_relu(0.2, slope=0.3)", "given twice"),
        ("relu_power(0.5)", "exponent must be >= 1"),
        ("tanh(2)", "does not depend on x"),
    ],
)
def test_ambiguous_or_wrong_calls_say_how_to_write_them(text, fragment):
    with pytest.raises(ActivationError, match=fragment.replace("(", r"\(").replace(")", r"\)").replace(".", r"\.").replace("*", r"\*")) as info:
        activation(text)
    assert "\n" not in str(info.value)
