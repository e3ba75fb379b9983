"""The engine's one bisection (bnsym.numerics.roots) against closed-form roots."""

from __future__ import annotations

import mpmath
import pytest

from bnsym.numerics.roots import bisect


@pytest.mark.parametrize("a, b", [(1, 2), (2, 1)])
def test_a_bracket_of_sqrt_2_shrinks_to_the_relative_width_asked(a, b):
    with mpmath.workdps(40):
        g = lambda x: x * x - 2
        lo, hi = bisect(g, mpmath.mpf(a), mpmath.mpf(b), mpmath.mpf(10) ** -30)
        assert abs(hi - lo) <= mpmath.mpf(10) ** -30 * abs(hi)
        assert mpmath.sign(g(lo)) == mpmath.sign(g(mpmath.mpf(a))) != mpmath.sign(g(hi))
        assert min(lo, hi) <= mpmath.sqrt(2) <= max(lo, hi)


def test_an_exact_root_at_a_midpoint_is_returned_as_it_is():
    lo, hi = bisect(lambda x: x - mpmath.mpf(3) / 4, mpmath.mpf(0), mpmath.mpf(1), mpmath.mpf(10) ** -10)
    assert lo == hi == mpmath.mpf(3) / 4


def test_a_root_at_zero_stops_at_the_working_precision():
    """rtol is relative to the bracket's end, so a root at 0 never meets it: the step cap ends the loop."""
    with mpmath.workdps(15):
        lo, hi = bisect(lambda x: x ** 3, mpmath.mpf(-1), mpmath.mpf("0.3"), mpmath.mpf(10) ** -10)
    assert lo <= 0 <= hi and hi - lo < mpmath.mpf(2) ** -200  # 4 x 53 halvings of 1.3
