"""The statistical design shared by the suite's random checks (imported by test modules;
pytest puts this directory on ``sys.path`` because ``conftest.py`` lives here).

A random check compares an estimate with a reference and fails when they differ by more than
``z`` standard errors.  Each test function is given a false-failure budget of
:data:`TEST_ALPHA` = 1e-4 under the null hypothesis (the reference is right); a function making
``k`` comparisons spends it by Bonferroni, ``alpha / k`` each, so that its ``z`` is the two-sided
normal quantile ``z = Phi^{-1}(1 - alpha / (2 k))`` (3.89 for one comparison, 4.27 for 5,
4.61 for 25).  The normal tail is the large-sample law of a mean of many i.i.d. terms with finite
variance; every estimator checked this way is such a mean (or a smooth function of one, whose
delta-method bias is O(1/n), below 1e-3 standard errors at the sample sizes used).

Seeds: every random draw of a statistical test is seeded from :func:`seed`, which shifts a
per-test constant by ``BNSYM_TEST_SEED`` (default 0), so the whole design can be rerun with fresh
randomness (``BNSYM_TEST_SEED=7 python -m pytest -m statistical``).
"""

from __future__ import annotations

import math
import os
from statistics import NormalDist

#: False-failure probability allowed to one test function, by design.
TEST_ALPHA = 1e-4

#: Shift of every master seed (environment variable ``BNSYM_TEST_SEED``, default 0).
SEED_OFFSET = int(os.environ.get("BNSYM_TEST_SEED", "0"))


def seed(case: int) -> int:
    """The seed of stream ``case`` (a small non-negative integer) under the current offset."""
    return 100_003 * SEED_OFFSET + case


def sigmas(comparisons: int = 1, alpha: float = TEST_ALPHA) -> float:
    """Two-sided Bonferroni bound ``Phi^{-1}(1 - alpha / (2 comparisons))`` in standard errors."""
    return NormalDist().inv_cdf(1.0 - alpha / (2.0 * comparisons))


def within(estimate, stderr, exact, *, comparisons: int = 1, bias: float = 0.0, rounding: float = 1e-12) -> bool:
    """``|estimate - exact| <= z stderr + bias + rounding``: ``z = sigmas(comparisons)``,
    ``bias`` a measured bound on a known systematic difference, ``rounding`` relative float64
    rounding (an estimator whose samples are exact has a standard error at the rounding level)."""
    return abs(estimate - exact) <= sigmas(comparisons) * stderr + bias + rounding * max(1.0, abs(exact))


def two_sided_tail(z: float) -> float:
    """``P(|Z| > z)`` for a standard normal ``Z``."""
    return math.erfc(z / math.sqrt(2.0))


def t_sigmas(dof: int, comparisons: int = 1, alpha: float = TEST_ALPHA) -> float:
    """Two-sided Bonferroni bound for a Student ``t`` statistic with ``dof`` degrees of freedom
    (a mean over ``dof + 1`` i.i.d. normal-ish seeds divided by its estimated standard error):
    the ``t`` with ``P(|T| > t) = alpha / comparisons``, by bisection on the regularized
    incomplete beta function (``P(|T| > t) = I_{dof/(dof+t^2)}(dof/2, 1/2)``)."""
    import mpmath

    target = alpha / comparisons
    lo, hi = 0.0, 1e4
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        tail = float(mpmath.betainc(dof / 2.0, 0.5, 0, dof / (dof + mid * mid), regularized=True))
        lo, hi = (mid, hi) if tail > target else (lo, mid)
    return hi
