"""Quadrature rules against exact integrals."""

from __future__ import annotations

import mpmath
import numpy as np
import pytest

from bnsym.numerics.quadrature import gauss_legendre, panel


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
