"""Quadrature rules against exact integrals."""

from __future__ import annotations

import mpmath
import numpy as np
import pytest

from bnsym.numerics.quadrature import (
    breakpoint_panels,
    float64_rule,
    gauss_legendre,
    panel,
    schwinger_rule,
)


@pytest.mark.parametrize("n", [3, 8, 33, 100])
def test_gauss_legendre_exact_on_polynomials(n):
    nodes, weights = gauss_legendre(n, 40)
    with mpmath.workdps(40):
        for k in (0, 2, 2 * n - 2):
            exact = mpmath.mpf(2) / (k + 1)
            got = mpmath.fsum(w * x**k for x, w in zip(nodes, weights))
            assert abs(got - exact) < mpmath.mpf(10) ** -37
    ref_x, ref_w = np.polynomial.legendre.leggauss(n)
    assert np.allclose([float(x) for x in nodes], ref_x, atol=1e-13)
    assert np.allclose([float(w) for w in weights], ref_w, atol=1e-13)


def test_tanh_sinh_handles_end_point_singularity():
    with mpmath.workdps(30):
        nodes, weights = panel(mpmath.mpf(0), mpmath.mpf(1), 8, 30, kind="tanh-sinh")
        got = mpmath.fsum(w * mpmath.sqrt(x) * mpmath.log(x) for x, w in zip(nodes, weights))
        assert abs(got - mpmath.mpf(-4) / 9) < mpmath.mpf(10) ** -25


def test_smoothed_panel_square_root_end():
    with mpmath.workdps(30):
        nodes, weights = panel(mpmath.mpf(0), mpmath.mpf(2), 4, 30, smooth_lo=True)
        got = mpmath.fsum(w * mpmath.sqrt(x) * mpmath.exp(x) for x, w in zip(nodes, weights))
        exact = mpmath.quad(lambda x: mpmath.sqrt(x) * mpmath.exp(x), [0, 2])
        assert abs(got - exact) < mpmath.mpf(10) ** -25


def test_float64_rule_integrates_as_the_rule_and_keeps_distances_from_one():
    """float64_rule's arrays against closed forms and against the rule itself: Gauss on [0, 1] integrates
    x^5 (1/6) to float64's accuracy; the tanh-sinh rule (designed for float64: truncated where its terms fall
    below 10^-17) integrates x^2 (1 - x)^(-1/2) (B(3, 1/2) = 16/15; not symmetric about 1/2, so nodes in place
    of distances would not do) through the distances from 1 that it keeps to 1e-10, while float64's own
    ``1 - node`` misses by more than 1e-9 (measured 9e-12 and 1e-8); each distance is the rule's (at 60
    digits) to 1e-15."""
    nodes, weights = float64_rule(panel, mpmath.mpf(0), mpmath.mpf(1), 4)
    assert nodes.dtype == weights.dtype == np.float64
    assert abs(weights @ nodes**5 - 1 / 6) <= 1e-15
    nodes, weights, distances = float64_rule(panel, mpmath.mpf(0), mpmath.mpf(1), 9, kind="tanh-sinh", complements=True)
    for gaps, near in ((distances, True), (1 - nodes, False)):
        kept = gaps > 0
        miss = abs(weights[kept] @ (nodes[kept] ** 2 * gaps[kept] ** -0.5) - 16 / 15)
        assert miss <= 1e-10 if near else miss > 1e-9
    with mpmath.workdps(60):
        exact = [1 - x for x in panel(mpmath.mpf(0), mpmath.mpf(1), 9, 17, kind="tanh-sinh")[0]]
    assert all(abs(mpmath.mpf(float(d)) - e) <= 1e-15 * e for d, e in zip(distances, exact))
    assert min(exact) < 1e-20  # the check reaches nodes that float64 puts at 1


def test_float64_rule_passes_arguments_through():
    """A rule with scale arguments: the Schwinger rule's float64 arrays integrate ``e^(-r s) / (1 + s)`` over
    ``(0, inf)``, ``e^r E_1(r)``, to float64's accuracy."""
    scale, rate = mpmath.mpf("0.7"), mpmath.mpf("0.05")
    nodes, weights = float64_rule(schwinger_rule, scale, rate, 1, 96)
    exact = float(mpmath.exp(rate) * mpmath.e1(rate))
    assert abs(weights @ (np.exp(-float(rate) * nodes) / (1 + nodes)) - exact) <= 1e-14 * exact


def test_panels_are_graded_beside_a_nearby_singular_cut():
    """sqrt|x + d| on [-1, 1] with its branch point at -d, d = 1e-8, and a kink cut at 0: the panel
    [0, 1] has the branch point 1e-8 beyond its end; graded, 32 Gauss nodes per piece give 25
    digits (exact: (2/3)((1 + d)^(3/2) + (1 - d)^(3/2))); the same panel ungraded misses them."""
    with mpmath.workdps(30):
        d = mpmath.mpf("1e-8")

        def f(x):
            return mpmath.sqrt(abs(x + d))

        exact = (mpmath.mpf(2) / 3) * ((1 + d) ** 1.5 + (1 - d) ** 1.5)
        total = mpmath.mpf(0)
        for lo, hi, kind, (smooth_lo, smooth_hi) in breakpoint_panels(-1, 1, [(-d, "sqrt"), (0, True)], 30):
            nodes, weights = panel(lo, hi, 5, 30, kind=kind, smooth_lo=smooth_lo, smooth_hi=smooth_hi)
            total += mpmath.fsum(w * f(x) for x, w in zip(nodes, weights))
        assert abs(total - exact) < 1e-25
        nodes, weights = panel(mpmath.mpf(0), mpmath.mpf(1), 5, 30)
        ungraded = mpmath.fsum(w * f(x) for x, w in zip(nodes, weights))
        assert abs(ungraded - (mpmath.mpf(2) / 3) * ((1 + d) ** 1.5 - d**1.5)) > 1e-12
