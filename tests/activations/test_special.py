"""The vectorised float64 ``erf``/``erfc`` (bnsym.activations.special) against the standard
library's ``math.erf``/``math.erfc`` (an independent implementation, correctly rounded to about
one ulp), and the limits and special values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bnsym.activations import special

POINTS = np.concatenate([np.linspace(-27.0, 27.0, 200_001), np.geomspace(1e-300, 0.5, 2000),
                         -np.geomspace(1e-300, 0.5, 2000)])


def test_erfc_relative_error_below_1e_15():
    reference = np.array([math.erfc(v) for v in POINTS])
    keep = reference > 1e-300
    relative = np.abs(special.erfc(POINTS)[keep] / reference[keep] - 1.0)
    assert relative.max() < 1e-15, (relative.max(), POINTS[keep][relative.argmax()])


def test_erf_relative_error_below_1e_15():
    reference = np.array([math.erf(v) for v in POINTS])
    keep = reference != 0
    relative = np.abs(special.erf(POINTS)[keep] / reference[keep] - 1.0)
    assert relative.max() < 1e-15, (relative.max(), POINTS[keep][relative.argmax()])


@pytest.mark.parametrize("x, erf, erfc", [(np.inf, 1.0, 0.0), (-np.inf, -1.0, 2.0), (0.0, 0.0, 1.0), (30.0, 1.0, 0.0)])
def test_limits_and_special_values(x, erf, erfc):
    assert special.erf(np.array([x]))[0] == erf and special.erfc(np.array([x]))[0] == erfc


def test_nan_propagates_and_shapes_are_kept():
    assert np.isnan(special.erfc(np.array([np.nan]))[0]) and np.isnan(special.erf(np.array([np.nan]))[0])
    grid = np.linspace(-3, 3, 24).reshape(2, 3, 4)
    assert special.erfc(grid).shape == (2, 3, 4) and special.erf(grid).shape == (2, 3, 4)
    assert special.erfc(np.zeros(0)).shape == (0,)
    np.testing.assert_allclose(special.erf(grid) + special.erfc(grid), 1.0, rtol=0, atol=2e-16)
