"""Property tests: for drawn activations (built-ins and random small
expressions that satisfy the growth condition), batch sizes, gamma and beta,
the engine's fixed point and lambda_G lie within the Monte Carlo confidence
interval of bnsym.montecarlo.sampling (an independent NumPy estimator).

Profiles (tests/conftest.py): the default ``fast`` profile draws 10
derandomized examples with 30 000 samples each; ``thorough``
(``BNSYM_HYPOTHESIS_PROFILE=thorough``) draws 120 random examples with
300 000 samples.  Each example makes three comparisons, so the test makes
``3 max_examples`` of them (30 in the fast profile, 360 in the thorough one) and checks each
at the Bonferroni bound ``z = sigmas(3 max_examples)`` of tests/statistical.py (4.65 and 5.12
standard errors): false-failure probability <= 1e-4 by design in either profile.  Every
integrand is bounded on the sphere (batch norm bounds its output by ``|gamma| sqrt(B-1) + |beta|``),
so the sample means are asymptotically normal.  The MC estimates are themselves checked
to be informative (standard error below 2% of the value's scale).  Seeds are shifted by
``BNSYM_TEST_SEED``.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import bnsym
from bnsym.montecarlo import sampling
from bnsym.errors import BnsymError
from statistical import seed as stream_seed, sigmas

THOROUGH = os.environ.get("BNSYM_HYPOTHESIS_PROFILE") == "thorough"
SAMPLES = 300_000 if THOROUGH else 30_000
SIGMAS = sigmas(3 * settings.default.max_examples)

BUILT_INS = ["relu", "tanh", "silu", "sigmoid", "softplus", "elu", "selu", "leaky_relu(0.2)", "abs", "sin",
             "identity", "relu_power(2)", "gelu", "erf"]
UNARY = ["tanh({})", "sin({})", "Max(0, {})", "Abs({})", "log(1 + exp({}))", "sqrt(1 + ({})**2)", "exp(-({})**2)",
         "({})**2", "({})**3", "exp({}/2)"]
COEFFICIENTS = [-1.5, -1, -0.5, 0.5, 1, 2]


@st.composite
def expressions(draw):
    """``a * u(b x) + c * x`` with ``u`` a smooth or kinked unary of moderate growth."""
    u = draw(st.sampled_from(UNARY))
    a, b, c = (draw(st.sampled_from(COEFFICIENTS)) for _ in range(3))
    term = draw(st.sampled_from(["", " + {c}*x", " + {c}*x**2"]))
    return f"{a}*" + u.format(f"{b}*x") + term.format(c=c)


activations = st.one_of(st.sampled_from(BUILT_INS), expressions())
batch_sizes = st.integers(min_value=4, max_value=16)
gammas = st.sampled_from([0.25, 0.5, 1, 1.5, 2])
betas = st.sampled_from([-1, -0.5, 0, 0.3, 1])


def _agree(estimate, stderr, exact, scale):
    assert stderr <= 0.02 * scale, (estimate, stderr)  # an informative estimate
    assert abs(estimate - exact) <= SIGMAS * stderr + 1e-9 * scale, (estimate, stderr, exact)


@pytest.mark.statistical
@given(activations, batch_sizes, gammas, betas)
def test_engine_agrees_with_sampling(name, b, gamma, beta):
    act = bnsym.activation(name)
    seed = [b, int(gamma * 100), int(beta * 100) + 500, sum(map(ord, name)), stream_seed(0)]
    sampled = sampling.fixed_point(act, b, gamma=gamma, beta=beta, samples=SAMPLES, seed=seed)
    try:
        rate = bnsym.gradient_explosion_rate(act, b, gamma=gamma, beta=beta, dps=8)
    except BnsymError as exc:
        # e.g. relu with gamma * sqrt(B-1) + beta < 0: phi vanishes on the whole sphere;
        # the engine refuses, and sampling must see the same degenerate point
        assert "constant" in str(exc)
        assert sampled.q == 0 and sampled.c == 0
        return
    fp = rate.fixed_point
    q, c, lam = float(fp.q), float(fp.c), float(rate)
    assume(float(fp.spread) > 1e-6 * abs(q))  # a (nearly) constant phi has no batch-norm signal
    _agree(sampled.q, sampled.q_stderr, q, abs(q))
    _agree(sampled.c, sampled.c_stderr, c, abs(q))
    sampled_rate = sampling.gradient_explosion_rate(act, b, gamma=gamma, beta=beta, samples=SAMPLES, seed=seed)
    _agree(sampled_rate.value, sampled_rate.stderr, lam, abs(lam))
