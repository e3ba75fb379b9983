"""The chi rule of the radial law (docs/theory.md section 15.3) against mpmath.quad."""

from __future__ import annotations

import mpmath
import pytest

from bnsym.numerics.radial import chi_rule


def _chi_expectation(g, n, breaks, dps=40):
    """int g(y) p_n(y) dy, p_n the chi density with n degrees of freedom, by mpmath.quad split at ``breaks``."""
    with mpmath.workdps(dps):
        norm = 2 ** (mpmath.mpf(n) / 2 - 1) * mpmath.gamma(mpmath.mpf(n) / 2)
        return mpmath.quad(lambda y: g(y) * y ** (n - 1) * mpmath.exp(-y * y / 2), [0, *breaks, mpmath.inf]) / norm


@pytest.mark.parametrize(("power", "flag"), [("2.5", "sqrt"), ("3.5", "sqrt"), ("3", True)])
def test_chi_rule_ends_panels_at_a_singular_radius(power, flag):
    """A one-sided power (y - y0)^p at a singular radius: half-integer p with the map v -> v^2
    ("sqrt"), an integer p with plain Gauss panels (True); both reach 25 digits at 30 working digits.
    The cut at 2 y_eps = 0.72 leaves the panel [0.72, 1.44] with y0 just beyond its end: with a
    singular flag ("sqrt") it is graded, with True not (an integer power needs no grading)."""
    n, y0, p = 5, mpmath.mpf("0.7"), mpmath.mpf(power)

    def g(y):
        return mpmath.cos(y) + (max(y - y0, 0) ** p if y > y0 else 0)

    with mpmath.workdps(30):
        reference = _chi_expectation(g, n, [y0])
        values = []
        for level in (5, 6):
            ys, ws = chi_rule(n, level, 30, y_eps=mpmath.mpf("0.36"), singular_radii=[(y0, flag)])
            values.append(mpmath.fsum(w * g(y) for y, w in zip(ys, ws)))
    assert abs(values[1] - reference) < 1e-25
    assert abs(values[0] - reference) < 1e-25


def test_plain_panels_do_not_resolve_a_half_integer_power():
    """The test above can fail: the same half-integer power with plain Gauss panels (flag True)
    misses 25 digits at the same levels."""
    n, y0 = 5, mpmath.mpf("0.7")

    def g(y):
        return mpmath.cos(y) + (max(y - y0, 0) ** mpmath.mpf("2.5") if y > y0 else 0)

    with mpmath.workdps(30):
        reference = _chi_expectation(g, n, [y0])
        ys, ws = chi_rule(n, 5, 30, y_eps=mpmath.mpf("0.36"), singular_radii=[(y0, True)])
        value = mpmath.fsum(w * g(y) for y, w in zip(ys, ws))
    assert abs(value - reference) > 1e-25
