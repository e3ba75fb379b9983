"""The float64 path of scans (bnsym.numerics.float_rates) against the mpmath engine and closed forms."""

from __future__ import annotations

import numpy as np
import pytest

import bnsym
from bnsym.errors import BnsymInputError
from bnsym.numerics.float_rates import double_rates

#: (activation, B, gamma, beta): small and large batches, small and large gains, shifts of both signs.
POINTS = [("tanh", 4, 0.05, 0.0), ("tanh", 7, 1.7, -0.6), ("tanh", 200, 2.0, 1.0), ("sin(x) + x/2", 9, 1.3, 0.4)]


@pytest.mark.parametrize("act, b, gamma, beta", POINTS)
def test_against_the_mpmath_engine_to_1e_12(act, b, gamma, beta):
    table = double_rates(act, b, [gamma, gamma], [beta, beta])  # two equal points: vectorisation keeps them equal
    rate = bnsym.gradient_explosion_rate(act, b, gamma=gamma, beta=beta, dps=15)
    fp = bnsym.fixed_point(act, b, gamma=gamma, beta=beta, dps=15)
    for name, exact in (("lambda_G", rate.value), ("q", fp.q), ("c", fp.c)):
        value, error = table[name]
        assert value[0] == value[1]
        assert abs(value[0] - float(exact)) <= 1e-12 * abs(float(exact)), (name, value[0], exact)
        assert error[0] <= 1e-12 * abs(value[0])


def test_identity_closed_form_over_many_points():
    """identity: lambda_G = (B - 2)/(B - 3) for every gamma, beta; q* = gamma^2 + beta^2, c* = beta^2 - gamma^2/(B-1)."""
    gamma, beta = np.meshgrid(np.linspace(-2, 2, 9)[np.linspace(-2, 2, 9) != 0], np.linspace(-1, 1, 5))
    for b in (4, 5, 10, 100):
        table = double_rates("identity", b, gamma.ravel(), beta.ravel())
        np.testing.assert_allclose(table["lambda_G"][0], (b - 2) / (b - 3), rtol=1e-13)
        np.testing.assert_allclose(table["q"][0], gamma.ravel() ** 2 + beta.ravel() ** 2, rtol=1e-13)
        np.testing.assert_allclose(table["c"][0], beta.ravel() ** 2 - gamma.ravel() ** 2 / (b - 1), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("args, word", [(("relu", 8, [1.0], [0.0]), "kinks"), (("tanh", 3, [1.0], [0.0]), ">= 4"),
                                        (("tanh", float("inf"), [1.0], [0.0]), "finite"),
                                        (("tanh", 8, [0.0], [0.0]), "nonzero"), (("tanh", 8, [1.0], [np.nan]), "finite")])
def test_outside_the_domain_is_one_line(args, word):
    with pytest.raises(BnsymInputError, match=word):
        double_rates(*args)
