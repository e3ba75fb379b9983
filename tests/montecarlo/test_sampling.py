"""The Monte Carlo witness (bnsym.montecarlo.sampling) against closed forms, finite
differences and explicit Jacobians; its reproducibility and refusals.

Statistical design (tests/statistical.py): each random test function states its number of
comparisons ``k`` and checks each at ``z = Phi^{-1}(1 - 1e-4 / (2k))`` standard errors, so its
false-failure probability is at most 1e-4 by design; the estimators are sample means over
independent draws (the rate a ratio of two, whose O(1/n) bias is below 1e-3 standard errors at
n >= 1e5).  Seeds come from ``statistical.seed`` (shifted by ``BNSYM_TEST_SEED``).  The
Jacobian, chunking and refusal tests are deterministic.
"""

from __future__ import annotations

import math
import tracemalloc

import numpy as np
import pytest

import bnsym
from bnsym.montecarlo import sampling
from bnsym.errors import BnsymError, BnsymInputError
from statistical import seed, sigmas, within


def _relu_c(b):
    rho = -1.0 / (b - 1)
    return (math.sqrt(1 - rho * rho) + (math.pi - math.acos(rho)) * rho) / (2 * math.pi)


# ----------------------------------------------------------------------------- closed forms
@pytest.mark.statistical
@pytest.mark.parametrize("b", [4, 8, 64])
def test_identity_against_closed_forms(b):
    """q* = 1, c* = -1/(B-1), lambda_G = (B-2)/(B-3).  Three comparisons; false-failure
    probability <= 1e-4 (the identity's samples are exact up to rounding)."""
    fp = sampling.fixed_point("identity", b, samples=20000, seed=seed(b))
    assert within(fp.q, fp.q_stderr, 1.0, comparisons=3)
    assert within(fp.c, fp.c_stderr, -1.0 / (b - 1), comparisons=3)
    rate = sampling.gradient_explosion_rate("identity", b, samples=20000, seed=seed(b))
    assert within(rate.value, rate.stderr, (b - 2) / (b - 3), comparisons=3)


@pytest.mark.statistical
@pytest.mark.parametrize("b", [4, 8, 64])
def test_relu_against_closed_forms(b):
    """q* = 1/2, the arc-cosine c*, and the engine's lambda_G.  Three comparisons; false-failure
    probability <= 1e-4."""
    n = 400000 if b < 64 else 100000
    fp = sampling.fixed_point("relu", b, samples=n, seed=seed(b))
    assert fp.q_stderr > 0 and fp.c_stderr > 0
    assert within(fp.q, fp.q_stderr, 0.5, comparisons=3)
    assert within(fp.c, fp.c_stderr, _relu_c(b), comparisons=3)
    rate = sampling.gradient_explosion_rate("relu", b, samples=n, seed=seed(100 + b))
    engine = bnsym.gradient_explosion_rate("relu", b, dps=15)
    assert rate.stderr < 0.01 * rate.value
    assert within(rate.value, rate.stderr, float(engine), comparisons=3)


def test_relu_fixed_point_engine_matches_closed_form_used_above():
    # the reference c* of the test above is docs/theory.md's formula; the engine agrees with it
    fp = bnsym.fixed_point("relu", 8, dps=15)
    assert abs(float(fp.c) - _relu_c(8)) < 1e-14


@pytest.mark.statistical
def test_radial_exact_and_sampled_agree_where_both_have_finite_variance():
    """Two estimators of one lambda_G, from independent draws.  One comparison; false-failure
    probability <= 1e-4."""
    exact = sampling.gradient_explosion_rate("tanh", 8, samples=100000, seed=seed(3), radial="exact")
    raw = sampling.gradient_explosion_rate("tanh", 8, samples=100000, seed=seed(4), radial="sampled")
    assert abs(exact.value - raw.value) <= sigmas(1) * math.hypot(exact.stderr, raw.stderr)
    assert exact.stderr < raw.stderr  # the point of integrating the radius


def test_degenerate_batch_sizes():
    assert sampling.gradient_explosion_rate("tanh", 2, samples=100).value == 0.0
    assert sampling.gradient_explosion_rate("tanh", 3, samples=100).value == math.inf


# ----------------------------------------------------------------------------- Jacobian
@pytest.mark.parametrize("name", ["tanh", "gelu", "silu"])
@pytest.mark.parametrize("eps", [0.0, 0.3])
def test_jacobian_matches_central_differences(name, eps):
    rng = np.random.default_rng(1)
    h = rng.standard_normal((3, 6)) * 2 + 1
    jac = sampling.jacobian(h, name, gamma=1.3, beta=0.2, eps=eps)
    step = 1e-6
    for a in range(6):
        e = np.zeros(6)
        e[a] = step
        diff = (sampling.apply_batchnorm(h + e, name, gamma=1.3, beta=0.2, eps=eps)
                - sampling.apply_batchnorm(h - e, name, gamma=1.3, beta=0.2, eps=eps)) / (2 * step)
        np.testing.assert_allclose(jac[:, :, a], diff, atol=1e-8)


@pytest.mark.parametrize("eps", [0.0, 0.3])
def test_structured_products_match_explicit_jacobian(eps):
    rng = np.random.default_rng(2)
    b, gamma, beta = 7, 0.8, -0.4
    h = rng.standard_normal((5, b))
    act = bnsym.activation("tanh")
    jac = sampling.jacobian(h, act, gamma=gamma, beta=beta, eps=eps)
    xhat, inv_sigma = sampling.normalise(h, eps)
    d = gamma * act.np(gamma * xhat + beta, derivative=True)
    pi = rng.standard_normal((b, b))
    pi = pi + pi.T
    explicit = np.einsum("nba,bc,ncd->nad", jac, pi, jac)
    structured = sampling.sandwich(d, xhat / math.sqrt(b), pi) * (inv_sigma**2)[:, None, None]
    np.testing.assert_allclose(structured, explicit, atol=1e-12)
    centre = np.eye(b) - 1.0 / b
    frob = np.einsum("ab,nbc->nac", centre, jac)
    np.testing.assert_allclose(sampling.frobenius(d, xhat / math.sqrt(b)) * inv_sigma**2,
                               np.einsum("nac,nac->n", frob, frob), rtol=1e-12)
    g = rng.standard_normal((5, b))
    np.testing.assert_allclose(sampling.batchnorm_vjp(g, xhat, inv_sigma, d), np.einsum("nab,na->nb", jac, g), atol=1e-12)


@pytest.mark.statistical
def test_rate_equals_backward_map_on_g():
    """T(G) is a multiple of G, with eigenvalue lambda_G.  The residual ``T(G) - tr T(G)/(B-1) G``
    has B^2 = 36 entries, each a mean whose standard error is at most ``t.stderr`` plus that of
    the trace term (bounded by the triangle inequality), and one eigenvalue comparison: 37
    comparisons, false-failure probability <= 1e-4.  (The fixed point Sigma* of the sampled map
    is itself sampled with 2e5 draws; its error moves T(G) by less than 1e-3 of the bound.)"""
    b = 6
    fp = sampling.fixed_point("relu", b, samples=200000, seed=seed(5))
    centre = np.eye(b) - 1.0 / b
    t = sampling.backward_map("relu", fp.array(), centre, samples=100000, seed=seed(6))
    z = sigmas(b * b + 1)
    # T(G) is a multiple of G (symmetry) ...
    trace_err = np.sum(np.diag(t.stderr)) / (b - 1) * np.abs(centre)
    off_g = t.mean - np.trace(t.mean) / (b - 1) * centre
    assert np.all(np.abs(off_g) <= z * (t.stderr + trace_err) + 1e-12)
    # ... and its eigenvalue is the sampled lambda_G (entries correlated: triangle-inequality bound)
    eig = np.sum(t.mean * centre) / (b - 1)
    rate = sampling.gradient_explosion_rate("relu", b, samples=200000, seed=seed(7))
    assert abs(eig - rate.value) <= z * (rate.stderr + np.sum(np.abs(centre) * t.stderr) / (b - 1)), (eig, rate)


@pytest.mark.statistical
def test_gram_map_at_bsb1_matches_fixed_point():
    """Batch norm makes the map forget a BSB1 input's scale: V(2 I + 0.5) has the fixed point's
    entries.  B^2 = 25 comparisons (the fixed point's q, c are averages over entries, whose
    standard error is inflated by sqrt(B), resp. B, to bound their correlation); false-failure
    probability <= 1e-4."""
    b = 5
    v = sampling.gram_map("tanh", 2.0 * np.eye(b) + 0.5, samples=100000, seed=seed(8))
    fp = sampling.fixed_point("tanh", b, samples=100000, seed=seed(9))
    z = sigmas(b * b)
    diag, off = np.diag(v.mean), v.mean[~np.eye(b, dtype=bool)]
    assert np.all(np.abs(diag - fp.q) <= z * (np.diag(v.stderr) + fp.q_stderr * math.sqrt(b)))
    assert np.all(np.abs(off - fp.c) <= z * (v.stderr[~np.eye(b, dtype=bool)] + fp.c_stderr * b))


@pytest.mark.statistical
def test_gram_map_is_symmetric_and_equivariant():
    """V(P S P^T) = P V(S) P^T, from independent draws: 16 comparisons, false-failure
    probability <= 1e-4."""
    rng = np.random.default_rng(3)
    a = rng.standard_normal((4, 6))
    gram = a @ a.T / 6
    perm = np.array([2, 0, 3, 1])
    v = sampling.gram_map("relu", gram, samples=50000, seed=seed(1))
    w = sampling.gram_map("relu", gram[np.ix_(perm, perm)], samples=50000, seed=seed(2))
    np.testing.assert_allclose(v.mean, v.mean.T)
    z = sigmas(16)
    assert np.all(np.abs(v.mean[np.ix_(perm, perm)] - w.mean) <= z * np.hypot(v.stderr[np.ix_(perm, perm)], w.stderr))


# ----------------------------------------------------------------------------- eps > 0
@pytest.mark.statistical
def test_eps_positive_against_engine():
    """eps > 0: q*, c*, lambda_G against the engine.  Three comparisons; false-failure
    probability <= 1e-4 (the sampled scale iteration stops when its step is below 1e-3 standard
    errors, and the reported errors are widened by the fixed point's sensitivity to the scale)."""
    engine = bnsym.gradient_explosion_rate("relu", 6, eps=0.1, sigma_w=2, dps=8)
    fp = sampling.fixed_point("relu", 6, eps=0.1, sigma_w=2, samples=100000, seed=seed(4))
    assert within(fp.q, fp.q_stderr, float(engine.fixed_point.q), comparisons=3)
    assert within(fp.c, fp.c_stderr, float(engine.fixed_point.c), comparisons=3)
    rate = sampling.gradient_explosion_rate("relu", 6, eps=0.1, sigma_w=2, samples=100000, seed=seed(10))
    assert within(rate.value, rate.stderr, float(engine), comparisons=3)


def test_eps_positive_without_fixed_point_is_reported():
    # the engine also finds no BSB1 point here: the scale contracts to 0
    with pytest.raises(BnsymError, match="collapsed"):
        sampling.fixed_point("relu", 6, eps=0.5, sigma_w=1.2, samples=4000)


# ----------------------------------------------------------------------------- reproducibility, memory
def test_reproducible_and_independent_of_chunk():
    a = sampling.gram_map("tanh", np.eye(5), samples=3001, seed=11, chunk=1000)
    b = sampling.gram_map("tanh", np.eye(5), samples=3001, seed=11, chunk=77)
    c = sampling.gram_map("tanh", np.eye(5), samples=3001, seed=11, chunk=1000)
    np.testing.assert_array_equal(a.mean, c.mean)
    np.testing.assert_allclose(a.mean, b.mean, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(a.stderr, b.stderr, rtol=1e-9)
    d = sampling.gram_map("tanh", np.eye(5), samples=3001, seed=12)
    assert not np.array_equal(a.mean, d.mean)
    r1 = sampling.gradient_explosion_rate("relu", 8, samples=5000, seed=3, chunk=999)
    r2 = sampling.gradient_explosion_rate("relu", 8, samples=5000, seed=3, chunk=5000)
    assert abs(r1.value - r2.value) < 1e-12 * r1.value


def test_chunks_bound_memory():
    sizes = list(sampling._chunks(10**7, None, 32 * 32))
    assert sum(sizes) == 10**7
    assert max(sizes) * 32 * 32 <= sampling.CHUNK_FLOATS


@pytest.mark.slow
@pytest.mark.statistical
def test_ten_million_samples_at_b32_in_bounded_memory():
    tracemalloc.start()
    v = sampling.gram_map("relu", np.eye(32), samples=10**7, seed=seed(0))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert v.samples == 10**7
    assert peak < 400 * 1024**2, peak  # the samples alone would take 2.5 GB
    assert within(np.diag(v.mean).mean(), np.diag(v.stderr).max(), 0.5)  # one comparison, <= 1e-4


# ----------------------------------------------------------------------------- refusals
@pytest.mark.parametrize(
    "gram, message",
    [
        (np.ones((3, 2)), "square"),
        ([[1.0, 0.5], [0.0, 1.0]], "symmetric"),
        ([[1.0, 2.0], [2.0, 1.0]], "positive semi-definite"),
        ([[1.0, np.nan], [np.nan, 1.0]], "finite"),
        ([[1.0]], "B >= 2"),
        ("abc", "real numbers"),
        (np.ones((3, 3)), "no component orthogonal"),
    ],
)
def test_bad_gram_is_refused(gram, message):
    with pytest.raises(BnsymInputError, match=message):
        sampling.gram_map("relu", gram, samples=10)


def test_other_refusals():
    with pytest.raises(BnsymInputError, match="pi must be 3 x 3"):
        sampling.backward_map("relu", np.eye(3), np.eye(4), samples=10)
    with pytest.raises(BnsymInputError, match="samples"):
        sampling.gram_map("relu", np.eye(3), samples=1)
    with pytest.raises(BnsymInputError, match="finite"):
        sampling.fixed_point("relu", math.inf, samples=10)
    with pytest.raises(BnsymInputError, match="radial"):
        sampling.gradient_explosion_rate("relu", 8, samples=10, radial="nope")
    with pytest.raises(BnsymInputError, match="eps"):
        sampling.gradient_explosion_rate("relu", 8, samples=10, eps=0.1, radial="exact")
    with pytest.raises(BnsymInputError, match="gamma"):
        sampling.gram_map("relu", np.eye(3), gamma=float("nan"), samples=10)
    with pytest.raises(BnsymInputError, match="zero variance"):
        sampling.apply_batchnorm(np.ones((2, 4)), "relu")
    with pytest.raises(BnsymInputError, match="last axis"):
        sampling.apply_batchnorm(np.ones((4, 1)), "relu")
    with pytest.raises(BnsymInputError, match="rank"):
        sampling.backward_map("relu", np.diag([1.0, 1.0, 0.0, 0.0]), np.eye(4), samples=10)
    with pytest.raises(BnsymInputError, match="seed"):
        sampling.gram_map("relu", np.eye(3), samples=10, seed=-1)
