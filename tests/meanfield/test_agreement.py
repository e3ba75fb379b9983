"""Issue 2's simulation check: the engine's fixed point and lambda_G against a
real finite-width batch-normalized network (tanh, gelu, relu; B = 8, 32, 128).

The simulated network is biased by its finite width: measured at width 512
(docs/theory.md section 9 expects it), the off-diagonal Gram entry c differs from
the mean-field c* by 10-20 of its standard errors at B = 32, 128 (e.g. ReLU,
B = 128: -3.3e-3), shrinking like 1/N (results/width_study.json: c - c* = a/N with
a = -0.486 +- 0.004 for ReLU at B = 32, N = 64 ... 65536).  So the
comparison is made at infinite width: two independent simulations at widths
WIDTHS = (1024, 2048) are Richardson-extrapolated (bias a/N removed, standard errors
propagated, not widened), and the engine must lie in the SIGMAS interval of
the extrapolated value.  The raw wider simulation must moreover lie within its own SIGMAS
interval or not be farther from the engine than the narrower one by more than
SIGMAS (sigma_narrow + sigma_wide) (the bias shrinks with width).

False-failure probability: each comparison is a mean over SEEDS = 32 independent networks
(exact-in-law conditional simulation).  Seven events can fail a case: the three extrapolated
values (rate, q, c) outside SIGMAS, and, for q and c, either raw estimate off its mean by more
than SIGMAS of its standard error.  The second check cannot fail otherwise: with biases
``|b_wide| <= |b_narrow|`` and errors ``e``, ``|b_n + e_n| - |b_w + e_w| >= -(|e_n| + |e_w|)``.
SIGMAS = t_sigmas(31, 7) = 5.14 makes the union at most 1e-4 by design.  (Until 2026-12-02 the
second check asked the wide run to be strictly closer than the narrow one: at B = 128 the bias
a/N at N = 2048 is itself about 5 standard errors, and the comparison of two noisy distances
failed for gelu at BNSYM_TEST_SEED = 5 in the 20-seed audit of issue 15.)  The Richardson extrapolation leaves the O(1/N^2)
term, ``-b / (2 N_1^2)`` for widths ``N_1, 2 N_1``: results/width_study.json fits
``b = +5.6 +- 0.7`` for ReLU's c at B = 32 (the largest measured; tanh's q: -4.8), a residual of
3e-6 at N_1 = 1024.  B = 128 is not in the width study; if b grows like the B^2 entries of the
fluctuating Gram matrix (16 times), the residual is 4e-5 there, which this design assumes to be
below the extrapolated standard error (a bias that is not measured, stated as such).

The networks are kept shallow (DEPTH = 8) on purpose: for gelu at B = 128 the
BSB1 point is unstable (forward lambda_L = 1.043, ``bnsym.spectrum``), so a
deep network drifts away from it and its gradients stop growing at lambda_G
(notebooks/gradient_explosion.ipynb, full size: 1.357 +- 0.001 against 1.331 at depth 40, width 1024).  Over
eight layers the drift (1.043^8 ~ 1.4 times the initial finite-width
deviation) is still small, and the comparison tests the BSB1 prediction.
"""

from __future__ import annotations


import pytest

import bnsym
from bnsym.montecarlo.simulation import width_extrapolation
from statistical import SEED_OFFSET, t_sigmas

WIDTHS = (1024, 2048)
DEPTH = 8
SEEDS = 32
SIGMAS = t_sigmas(SEEDS - 1, 7)
MASTER_SEED = SEED_OFFSET  # BNSYM_TEST_SEED, read in one place (tests/statistical.py)
FAST = {("tanh", 8), ("relu", 32), ("gelu", 8)}
#: the B = 128 cases (9 to 17 s each on a quiet machine) and gelu at B = 32 (7 s) run with -m extended, to keep the default suite
#: near its 5 minutes; B = 128 keeps a simulation check in the default run (tanh's eps = 1e-3 forward
#: eigenvalue, tests/meanfield/test_spectrum.py)
EXTENDED = {("gelu", 128), ("relu", 128), ("tanh", 128), ("gelu", 32)}
CASES = [(name, b) if (name, b) in FAST else
         pytest.param(name, b, marks=[pytest.mark.slow] + ([pytest.mark.extended] if (name, b) in EXTENDED else []))
         for name in ("tanh", "gelu", "relu") for b in (8, 32, 128)]


@pytest.fixture(scope="module")
def simulations():
    cache = {}

    def get(name, b):
        if (name, b) not in cache:
            sims = [bnsym.simulate(name, b, DEPTH, n, seeds=SEEDS, seed=(MASTER_SEED, k)) for k, n in enumerate(WIDTHS)]
            cache[name, b] = sims, width_extrapolation(*sims)
        return cache[name, b]

    return get


def _engine(name, b):
    rate = bnsym.gradient_explosion_rate(name, b, dps=10)
    return {"rate": float(rate), "q": float(rate.fixed_point.q), "c": float(rate.fixed_point.c)}


@pytest.mark.statistical
@pytest.mark.parametrize("name, b", CASES)
def test_engine_agrees_with_simulated_network(simulations, name, b):
    (narrow, wide), limit = simulations(name, b)
    engine = _engine(name, b)
    for key in ("rate", "q", "c"):
        lo, hi = limit[key].interval(SIGMAS)
        assert lo <= engine[key] <= hi, (key, limit[key], engine[key])
    for key, value in zip(("q", "c"), wide.fixed_point()):
        narrow_value = narrow.fixed_point()[("q", "c").index(key)]
        within = abs(value.value - engine[key]) <= SIGMAS * value.stderr
        farther = abs(value.value - engine[key]) - abs(narrow_value.value - engine[key])
        assert within or farther <= SIGMAS * (value.stderr + narrow_value.stderr), (key, value, narrow_value)
