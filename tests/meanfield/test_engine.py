"""The core engine against independent references: closed forms, exact
identities of docs/theory.md section 5, and a Monte Carlo of the explicit Jacobian.

The Monte Carlo comparisons (marked ``statistical``) state their false-failure probability
(<= 1e-4 each, Bonferroni over their comparisons; tests/statistical.py) and draw their seeds
from ``statistical.seed`` (shifted by ``BNSYM_TEST_SEED``).
"""

from __future__ import annotations

import math

import mpmath
import numpy as np
import pytest

import bnsym
from bnsym.numerics import closed_forms
from statistical import seed, sigmas


def _agree(value, reference, digits):
    with mpmath.workdps(digits + 20):
        return abs(value - reference) <= mpmath.mpf(10) ** -digits * abs(reference)


@pytest.mark.parametrize("batch_size", [4, 5, 10, 100, 10**4])
def test_identity_rate_40_digits_through_quadrature(batch_size):
    rate = bnsym.gradient_explosion_rate("identity", batch_size, dps=40, method="quadrature")
    with mpmath.workdps(80):
        exact = mpmath.mpf(batch_size - 2) / (batch_size - 3)
    assert rate.method == "quadrature"
    assert _agree(rate.value, exact, 40)
    assert rate.error < mpmath.mpf(10) ** -40


@pytest.mark.parametrize("batch_size", [4, 5, 17, 64, pytest.param(333, marks=[pytest.mark.slow, pytest.mark.extended]),
                                        pytest.param(1000, marks=[pytest.mark.slow, pytest.mark.extended])])  # 333 and 1000 (4 s each): -m extended
def test_relu_quadrature_matches_closed_form_30_digits(batch_size):
    general = bnsym.gradient_explosion_rate("relu", batch_size, dps=30, method="quadrature")
    closed = bnsym.gradient_explosion_rate("relu", batch_size, dps=40, method="closed form")
    assert _agree(general.value, closed.value, 30)
    fp_general = general.fixed_point
    fp_closed = closed.fixed_point
    assert _agree(fp_general.c, fp_closed.c, 30)


@pytest.mark.slow
def test_relu_fixed_point_matches_theory_example():
    # docs/theory.md section 4: q* = 1/2, c* = (sqrt(1-rho^2) + (pi - arccos rho) rho) / (2 pi); one batch
    # size (4 and 50 took 10 s more; test_relu_quadrature_matches_closed_form_30_digits sweeps B at 30 digits)
    for b in (9,):
        fp = bnsym.fixed_point("relu", b, dps=35, method="quadrature")
        with mpmath.workdps(60):
            rho = -mpmath.mpf(1) / (b - 1)
            c = (mpmath.sqrt(1 - rho**2) + (mpmath.pi - mpmath.acos(rho)) * rho) / (2 * mpmath.pi)
        assert _agree(fp.q, mpmath.mpf(1) / 2, 35)
        assert _agree(fp.c, c, 35)


def test_relu_rate_tends_to_pi_over_pi_minus_one():
    with mpmath.workdps(60):
        limit = mpmath.pi / (mpmath.pi - 1)
    assert _agree(bnsym.gradient_explosion_rate("relu", math.inf, dps=40).value, limit, 40)
    assert _agree(bnsym.gradient_explosion_rate("relu", math.inf, dps=30, method="quadrature").value, limit, 30)
    gaps = [abs(bnsym.gradient_explosion_rate("relu", b, dps=20).value - limit) for b in (10, 100, 1000, 10**4, 10**5)]
    assert all(later < earlier / 5 for earlier, later in zip(gaps, gaps[1:]))  # O(1/B) approach
    assert gaps[-1] < 1e-4


def test_batch_sizes_two_and_three():
    assert bnsym.gradient_explosion_rate("tanh", 2).value == 0
    assert bnsym.gradient_explosion_rate("relu", 3).value == mpmath.inf
    assert bnsym.trainable_depth("relu", 3).value == 0
    # eps > 0 makes B = 3 finite
    assert mpmath.isfinite(bnsym.gradient_explosion_rate("relu", 3, eps=0.01).value)


def test_large_batch_relu_quadrature():
    rate = bnsym.gradient_explosion_rate("relu", 10**5, dps=20, method="quadrature")
    closed = bnsym.gradient_explosion_rate("relu", 10**5, dps=30)
    assert _agree(rate.value, closed.value, 20)


@pytest.mark.slow
def test_closed_forms_against_quadrature_for_other_homogeneous_activations():
    # one batch size each, small and large alternating (both for each: 9 s more; the quadrature route's
    # dependence on B is swept by test_relu_quadrature_matches_closed_form_30_digits)
    for spec, b in (("abs", 5), ("leaky_relu(0.2)", 40), ("relu_power(2)", 5)):
        a = bnsym.gradient_explosion_rate(spec, b, dps=25, method="quadrature")
        c = bnsym.gradient_explosion_rate(spec, b, dps=30, method="closed form")
        assert _agree(a.value, c.value, 25), (spec, b)


def test_gaussian_limit_of_smooth_activation_is_one_dimensional():
    # B = inf: lambda_G = E[phi'(z)^2] / Var(phi(z)), z ~ N(0, 1), by mpmath.quad (independent)
    with mpmath.workdps(30):
        dens = lambda z: mpmath.npdf(z)
        d2 = mpmath.quad(lambda z: mpmath.sech(z) ** 4 * dens(z), [-mpmath.inf, 0, mpmath.inf])
        q = mpmath.quad(lambda z: mpmath.tanh(z) ** 2 * dens(z), [-mpmath.inf, 0, mpmath.inf])
        expected = d2 / q
    assert _agree(bnsym.gradient_explosion_rate("tanh", math.inf, dps=20).value, expected, 20)


def _monte_carlo_rate(phi, dphi, b, eps, scale, gamma=1.0, beta=0.0, sigma_w=1.0, samples=60000, seed=None):
    """sigma_w^2 E[tr(J^T G J)]/(B-1) and E[f_a^2] with J formed explicitly, h ~ N(0, scale G)."""
    rng = np.random.default_rng(seed)
    g = np.eye(b) - 1.0 / b
    z = rng.standard_normal((samples, b))
    h = np.sqrt(scale) * (z - z.mean(axis=1, keepdims=True))
    var = (h**2).mean(axis=1)
    sd = np.sqrt(var + eps)
    x = gamma * h / sd[:, None] + beta
    d = gamma * dphi(x)
    # Jacobian of h -> (h - mean)/sqrt(var + eps), row by row (explicit derivative, no theory formula)
    eye = np.eye(b)
    dn = (eye[None] - 1.0 / b) / sd[:, None, None] - (h[:, :, None] * h[:, None, :]) / (b * sd[:, None, None] ** 3)
    jac = d[:, :, None] * dn
    tr = np.einsum("mab,ac,mcb->m", jac, g, jac)
    lam = sigma_w**2 * tr / (b - 1)
    f2 = (phi(x) ** 2).mean(axis=1)
    return (lam.mean(), lam.std() / math.sqrt(samples)), (f2.mean(), f2.std() / math.sqrt(samples))


@pytest.mark.parametrize(
    "name, phi, dphi, b, eps, gamma, beta, sigma_w",
    [
        pytest.param("tanh", np.tanh, lambda x: 1 / np.cosh(x) ** 2, 16, 0.1, 1.0, 0.0, 1.0,
                     marks=[pytest.mark.slow, pytest.mark.extended], id="tanh-eps-0.1"),  # 5 s: -m extended (tanh at
        # eps > 0 against networks stays in test_spectrum's one-layer responses)
        ("relu", lambda x: np.maximum(x, 0), lambda x: (x > 0).astype(float), 8, 0.05, 1.0, 0.0, 1.5),
        pytest.param(
            "relu", lambda x: np.maximum(x, 0), lambda x: (x > 0).astype(float), 8, 0.05, 1.0, 0.2, 1.5,
            # the kink moves with the radius: the moments are interpolated along it above the
            # kink's floor (docs/theory.md section 15.3), 16 s with the mpmath nested rule (node by
            # node it took 230 s); 1.3 s with the float64 nested rule at dps 6 (section 3.2)
            id="relu-shifted-kink",
        ),
        ("identity", lambda x: x, np.ones_like, 5, 0.3, 1.0, 0.0, 0.8),
        # the scale root (~0.36) lies far below the eps = 0 start (~1.4): a coarse
        # radial rule once steered the solver to a false "no fixed point" (3 s: slow, for the fast suite's 90 s)
        pytest.param("relu", lambda x: np.maximum(x, 0), lambda x: (x > 0).astype(float), 32, 1.0, 1.0, 0.0, 2.0,
                     marks=pytest.mark.slow),
    ],
)
@pytest.mark.statistical
def test_eps_positive_against_explicit_jacobian_monte_carlo(name, phi, dphi, b, eps, gamma, beta, sigma_w):
    """lambda_G and q* at eps > 0 against a Monte Carlo of the explicit Jacobian at the engine's
    scale: two comparisons of sample means at ``sigmas(2) = 4.06`` standard errors,
    false-failure probability <= 1e-4 (the engine's dps = 6 error is far below the MC error)."""
    rate = bnsym.gradient_explosion_rate(name, b, eps=eps, gamma=gamma, beta=beta, sigma_w=sigma_w, dps=6)
    fp = rate.fixed_point
    samples = 60000 if b <= 16 else 20000  # bounded memory: B x B Jacobians per sample
    (lam, lam_se), (q, q_se) = _monte_carlo_rate(phi, dphi, b, eps, float(fp.scale), gamma, beta, sigma_w,
                                                 samples=samples, seed=seed(b))
    z = sigmas(2)
    assert abs(float(rate) - lam) < z * lam_se + 1e-12, (float(rate), lam, lam_se)
    assert abs(float(fp.q) - q) < z * q_se + 1e-12


def test_eps_positive_identity_scale_equation():
    # identity: spread(g) = g^2 B/(B-1), so a = sigma_w^2 B/(B-1) E[kappa^2]; check the solved scale
    b, eps, sw = 6, mpmath.mpf("0.2"), mpmath.mpf("1.3")
    fp = bnsym.fixed_point("identity", b, eps=eps, sigma_w=sw, dps=20)
    with mpmath.workdps(40):
        a = fp.scale
        n = b - 1
        dens = lambda y: y ** (n - 1) * mpmath.exp(-y * y / 2) / (2 ** (mpmath.mpf(n) / 2 - 1) * mpmath.gamma(mpmath.mpf(n) / 2))
        mean_k2 = mpmath.quad(lambda y: a * y * y / (a * y * y + b * eps) * dens(y), [0, 1, 3, mpmath.inf])
        assert abs(a - sw**2 * b / (b - 1) * mean_k2) < mpmath.mpf(10) ** -19


def test_gaussian_limit_with_eps():
    # B = inf, eps > 0: a = sigma_w^2 spread(gamma sqrt(a/(a+eps))); for the identity a = sigma_w^2 a/(a+eps)
    fp = bnsym.fixed_point("identity", math.inf, eps=0.25, sigma_w=2, dps=25)
    assert _agree(fp.scale, mpmath.mpf(4) - mpmath.mpf("0.25"), 25)



@pytest.mark.slow  # 3 s: in the default run, not the fast one
def test_eps_at_very_large_batches_extrapolates_to_the_gaussian_limit():
    """B = 10^5 and 2 10^5 at eps = 1e-3 (PrecisionError before: one radial panel over the chi law's
    reweighting margin [268, 373], where the density's peak is 0.7 wide).  Richardson's 2 lambda(2B) -
    lambda(B) removes the 1/B term and lands on the B = inf route (a different code path: a
    deterministic gain and Gaussian coordinates) within its 1/B^2 term (measured 1.4e-10)."""
    first = bnsym.gradient_explosion_rate("tanh", 10**5, eps="1e-3", dps=14)
    second = bnsym.gradient_explosion_rate("tanh", 2 * 10**5, eps="1e-3", dps=14)
    limit = bnsym.gradient_explosion_rate("tanh", math.inf, eps="1e-3", dps=14)
    with mpmath.workdps(20):
        assert abs(2 * second.value - first.value - limit.value) < 1e-9
        assert abs(first.value - limit.value) > 1e-6  # the 1/B term is really there (8.7e-6)


@pytest.mark.parametrize(
    "spec, b, kwargs",
    [
        ("tanh", 8, {}),
        ("gelu", 5, {"gamma": 0.7, "beta": 0.3}),
        pytest.param("relu", 16, {"eps": 0.01}, marks=pytest.mark.slow),  # 3 s: in the default run, not the fast one
        ("silu", math.inf, {}),
        ("x*(1+erf(x/sqrt(2)))/2", 33, {}),
    ],
)
def test_promised_digits_hold_at_higher_precision(spec, b, kwargs):
    dps = 20
    low = bnsym.gradient_explosion_rate(spec, b, dps=dps, **kwargs)
    high = bnsym.gradient_explosion_rate(spec, b, dps=dps + 10, **kwargs)
    assert _agree(low.value, high.value, dps)
    assert _agree(low.fixed_point.q, high.fixed_point.q, dps)
    with mpmath.workdps(60):
        # the error estimate must cover the actual error (with a factor 10 of slack)
        assert abs(low.value - high.value) <= 10 * low.error + mpmath.mpf(10) ** -(dps + 8) * abs(high.value)


@pytest.mark.parametrize(
    ("b", "high_dps"),
    [pytest.param(4, 8, marks=pytest.mark.slow), pytest.param(6, 8, marks=[pytest.mark.slow, pytest.mark.extended]),
     pytest.param(5, 8, marks=[pytest.mark.slow, pytest.mark.extended]),
     pytest.param(5, 10, marks=[pytest.mark.slow, pytest.mark.extended])],
)
def test_shifted_relu_at_small_batches_with_eps_keeps_its_digits(b, high_dps):
    """ReLU at beta = 0.2, eps = 0.05 and B = 4 to 6, where the radial rule's panels must end at the
    pair crossings as well (docs/theory.md section 15.3): at dps 8 B = 4 and 5 raised PrecisionError
    before, and B = 6 did at dps 10.  dps 7 against a recomputation at dps 8 (the float64 nested rule
    at both; B = 5, whose crossings take plain Gauss panels, and B = 6 (8 s) with -m extended), and with
    -m extended against dps 10 (the mpmath nested rule, 33 s)."""
    kwargs = {"beta": "0.2", "eps": "0.05"}
    low = bnsym.gradient_explosion_rate("relu", b, dps=7, **kwargs)
    high = bnsym.gradient_explosion_rate("relu", b, dps=high_dps, **kwargs)
    assert _agree(low.value, high.value, 7)
    assert _agree(low.fixed_point.q, high.fixed_point.q, 7)
    assert high.error <= mpmath.mpf(10) ** -high_dps * abs(high.value)
    with mpmath.workdps(30):
        assert abs(low.value - high.value) <= 10 * low.error + mpmath.mpf(10) ** -15 * abs(high.value)


@pytest.mark.slow
def test_fifty_digits():
    rate = bnsym.gradient_explosion_rate("tanh", 6, dps=50)
    high = bnsym.gradient_explosion_rate("tanh", 6, dps=60)
    assert _agree(rate.value, high.value, 50)


def test_trainable_depth_is_log_ratio():
    depth = bnsym.trainable_depth("relu", 32, factor=100, dps=20)
    with mpmath.workdps(40):
        assert _agree(depth.value, mpmath.log(100) / mpmath.log(depth.rate.value), 20)
    assert bnsym.trainable_depth("relu", 2).value == mpmath.inf  # lambda_G = 0 < 1


def test_results_are_frozen_and_float():
    fp = bnsym.fixed_point("relu", 4)
    assert float(fp) == 0.5
    with pytest.raises(AttributeError):
        fp.value = 1
    m = fp.matrix()
    assert m.rows == 4 and m[0, 1] == fp.c
    np.testing.assert_allclose(fp.array(), np.array(m.tolist(), dtype=float), rtol=1e-15)


def test_homogeneous_closed_form_helpers_against_gaussian_moments():
    # at B = inf the sphere law is N(0, 1): E[relu(z)^p] = 2^(p/2) Gamma((p+1)/2) / (2 sqrt(pi))
    for p in (1, 2, 3):
        with mpmath.workdps(30):
            expected = 2 ** (mpmath.mpf(p) / 2) * mpmath.gamma(mpmath.mpf(p + 1) / 2) / (2 * mpmath.sqrt(mpmath.pi))
            assert _agree(closed_forms.homogeneous_mean(1, 0, p, math.inf), expected, 25)


@pytest.mark.slow
@pytest.mark.statistical
def test_non_integer_power_stays_real_and_matches_sampling():
    """x**(5/4) has a branch point at its kink: rounding must not put a node on the complex side.
    One comparison with sampling at ``sigmas(1) = 3.89``: false-failure probability <= 1e-4."""
    from bnsym.montecarlo import sampling

    rate = bnsym.gradient_explosion_rate("relu_power(1.25)", 32, dps=10)
    fp = rate.fixed_point
    for value in (rate.value, fp.q, fp.c):
        assert isinstance(value, mpmath.mpf)
    sampled = sampling.gradient_explosion_rate("relu_power(1.25)", 32, samples=60000, seed=seed(5))
    assert abs(float(rate) - sampled.value) < sigmas(1) * sampled.stderr, (float(rate), sampled)


@pytest.mark.statistical
@pytest.mark.parametrize("batch_size", [8, 11])
def test_small_eps_secant_hitting_an_exact_root(batch_size):
    """The scale equation's secant iteration can land on g = 0 exactly at working precision;
    that is the root, not a collapse (this once raised "no BSB1 fixed point").  One comparison
    with sampling at ``sigmas(1) = 3.89``: false-failure probability <= 1e-4."""
    from bnsym.montecarlo import sampling

    rate = bnsym.gradient_explosion_rate("relu", batch_size, eps=1e-3, dps=12)
    sampled = sampling.gradient_explosion_rate("relu", batch_size, eps=1e-3, samples=100000, seed=seed(2))
    assert abs(float(rate) - sampled.value) < sigmas(1) * sampled.stderr, (float(rate), sampled)


@pytest.mark.slow
@pytest.mark.statistical
@pytest.mark.parametrize("beta,stream", [("0", 40), ("0.37", 41)])
def test_a_steep_activation_at_a_large_batch_against_sampling(beta, stream):
    """tanh at gamma = 100, B = 32: tanh'(100 s + beta) is a spike 0.01 wide on a support of width 11.
    bnsym first returned 0.0201 here (Monte Carlo 54.75), then PrecisionError (one panel needed more than
    4096 nodes); the one-coordinate rule now splits such panels where a float64 probe says they are
    unresolved (docs/theory.md section 3.2).  Two comparisons at ``sigmas(2)``: false-failure
    probability <= 1e-4, plus 1e-3 relative for the ratio estimator's O(1/samples) bias."""
    from bnsym.montecarlo import sampling

    rate = bnsym.gradient_explosion_rate("tanh", 32, gamma=100, beta=beta, dps=10)
    assert rate.error < 1e-9 * rate.value
    sampled = sampling.gradient_explosion_rate("tanh", 32, gamma=100, beta=float(beta), samples=200_000,
                                               seed=seed(stream))
    assert abs(float(rate) - sampled.value) < sigmas(2) * sampled.stderr + 1e-3 * sampled.value, (float(rate), sampled)
