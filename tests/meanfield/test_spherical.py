"""The spherical route (docs/theory.md section 7.1): the Gram map of any activation at any input batch.

Independent witnesses: the sphere law itself (the pair law at BSB1 input), the Laplace method on
positively homogeneous activations (a different formula: one Schwinger integral of closed-form
Gaussian kernels), the Monte Carlo map :func:`bnsym.montecarlo.sampling.gram_map`, and the rule run
again at more digits.
"""

from __future__ import annotations

import mpmath
import numpy as np
import pytest
from statistical import seed, sigmas

import bnsym
from bnsym.activations import activation
from bnsym.errors import BnsymInputError, PrecisionError
from bnsym.meanfield import spherical
from bnsym.meanfield.laplace import centred_spectrum, laplace_map
from bnsym.meanfield.propagation import example_input, propagate
from bnsym.meanfield.results import make_settings
from bnsym.meanfield.spherical import FLOAT_DPS, spherical_map
from bnsym.montecarlo import sampling
from bnsym.numerics.angular_gaussian import PairDensity
from bnsym.numerics.sphere import Integrand, SphereLaw


def _gram(b, seed_, extra=2):
    x = np.random.default_rng(seed_).standard_normal((b, b + extra))
    return x @ x.T / (b + extra)


def _pair(gram, a, c, rate, dps):
    """The PairDensity of entries (a, c) of a Gram matrix, at ``dps`` digits (call inside workdps)."""
    lam, vecs = centred_spectrum(mpmath.matrix(gram.tolist()), dps)
    return PairDensity(lam, (vecs[a], vecs[c]), gram.shape[0], rate)


def test_pair_law_at_bsb1_input_is_the_sphere_law():
    """K proportional to G: the ratio against the sphere law is 1 everywhere on the ellipse
    (B = 4, where the sphere law's pair density is infinite at the edge, and B = 7)."""
    with mpmath.workdps(30):
        for b in (4, 7):
            gram = 2.5 * np.eye(b) + 0.3
            density = _pair(gram, 1, 2, 0, 30)
            rng = np.random.default_rng(1)
            for _ in range(20):
                # a point of the ellipse x^T G_ab^-1 x < B, up to 1e-6 of its edge
                t, r = rng.uniform(0, 2 * np.pi), np.sqrt(rng.uniform(0, 1 - 1e-6))
                chol = np.linalg.cholesky(np.array([[1 - 1 / b, -1 / b], [-1 / b, 1 - 1 / b]]))
                xa, xb = np.sqrt(b) * r * chol @ np.array([np.cos(t), np.sin(t)])
                assert abs(density.ratio(mpmath.mpf(xa), mpmath.mpf(xb)) - 1) < mpmath.mpf(10) ** -20


def test_polar_rule_refuses_a_kink_inside_the_ellipse():
    """The polar rule integrates each integrand as one analytic piece: ReLU shifted so that its kink
    (x = -0.5) lies inside the ellipse (|x| < sqrt 3 at B = 4) is refused, saying why; at a shift of 5
    (kink at -5, outside) it is taken."""
    with mpmath.workdps(20):
        density = _pair(_gram(4, 3), 0, 1, 0, 20)
        inside = Integrand(activation("relu"), mpmath.mpf(1), mpmath.mpf("0.5"))
        with pytest.raises(ValueError, match="analytic on the ellipse"):
            density.expect_polar([((inside,), (inside,))], mpmath.mpf(10) ** -8, 20)
        outside = Integrand(activation("relu"), mpmath.mpf(1), mpmath.mpf(5))
        assert density.expect_polar([((outside,), ())], mpmath.mpf(10) ** -8, 20)[0].value > 0


@pytest.mark.parametrize("eps", [0, pytest.param("0.02", marks=pytest.mark.slow)])  # 3 s: in the default run, not the fast one
def test_pair_law_has_mass_one_and_matches_the_root_solved_density(eps):
    """At a random Gram matrix the polar rule integrates the law to 1, and its radial coordinate
    (no equation solved) gives the density of the root-solved residue formula at the same point."""
    gram = _gram(6, 4)
    with mpmath.workdps(30):
        density = _pair(gram, 0, 3, mpmath.mpf(eps), 30)
        (mass,) = density.expect_polar([((), ())], mpmath.mpf(10) ** -20, 30)
        assert abs(mass.value - 1) <= max(mass.error, mpmath.mpf(10) ** -25)
        # rho_K(x) r dr dtheta = W du dtheta: compare W with the ratio route's rho_K times r |dr/du|
        u, ca, cb = mpmath.mpf("0.3"), mpmath.cos(0.7), mpmath.sin(0.7)
        r, weight = density.polar_weight(u, ca, cb)
        step = mpmath.mpf(10) ** -12
        r_up, _ = density.polar_weight(u + step, ca, cb)
        r_down, _ = density.polar_weight(u - step, ca, cb)
        drdu = abs(r_up - r_down) / (2 * step)
        b = gram.shape[0]
        g_ab = mpmath.matrix([[1 - mpmath.mpf(1) / b, -mpmath.mpf(1) / b], [-mpmath.mpf(1) / b, 1 - mpmath.mpf(1) / b]])
        x = mpmath.matrix([r * ca, r * cb])
        inside = 1 - (x.T * mpmath.inverse(g_ab) * x)[0] / b
        iso = (b - 3) / (2 * mpmath.pi * b * mpmath.sqrt(mpmath.det(g_ab))) * inside ** (mpmath.mpf(b - 5) / 2)
        rho = density.ratio(x[0], x[1]) * iso
        assert abs(rho * r * drdu - weight) < 1e-18 * weight


@pytest.mark.slow  # eps = 0.05 (8 s) with -m extended: the full suite keeps its 5 minutes
@pytest.mark.parametrize("activation, b, eps, entries", [
    ("x**2", 4, "0", [(0, 3)]),
    pytest.param("identity", 4, "0.05", [(1, 2)], marks=pytest.mark.extended),
])
def test_polar_rule_against_laplace_to_30_digits(activation, b, eps, entries):
    """Smooth positively homogeneous activations: one pair's V_ab, V_aa, V_bb by the polar rule
    against the Laplace method, both at 30 digits (about 5 s each)."""
    gram = _gram(b, 5)
    settings = make_settings(activation, b, eps=eps, sigma_w=1.3, dps=30)
    with mpmath.workdps(settings.working_dps):
        want = laplace_map(settings, mpmath.matrix(gram.tolist()))[0]
        f = Integrand(settings.activation, mpmath.mpf(1), mpmath.mpf(0))
        for a, c in entries:
            density = _pair(gram, a, c, settings.eps / settings.sigma_w**2, settings.working_dps)
            got = density.expect_polar([((f,), (f,)), ((f, f), ()), ((), (f, f))], mpmath.mpf(10) ** -31, settings.working_dps)
            for estimate, exact in zip(got, (want[a, c], want[a, a], want[c, c])):
                assert abs(estimate.value - exact) <= mpmath.mpf(10) ** -30 * abs(want[a, a])
                assert estimate.error <= mpmath.mpf(10) ** -30 * abs(want[a, a])


@pytest.mark.slow
def test_kinked_rule_against_laplace():
    """ReLU (kinked: the sphere law's nested rule weighted by the root-solved density ratio) against
    the Laplace method, one pair at 8 digits."""
    gram = _gram(4, 6)
    settings = make_settings("relu", 4, dps=8)
    with mpmath.workdps(settings.working_dps):
        want = laplace_map(settings, mpmath.matrix(gram.tolist()))[0]
        f = Integrand(settings.activation, mpmath.mpf(1), mpmath.mpf(0))
        law = SphereLaw(4, settings.working_dps)
        density = _pair(gram, 0, 2, 0, settings.working_dps)
        got = law.expect_weighted([((f,), (f,)), ((f, f), ())], density.ratio, mpmath.mpf(10) ** -9, None)
        for estimate, exact in zip(got, (want[0, 2], want[0, 0])):
            assert abs(estimate.value - exact) <= mpmath.mpf(10) ** -8 * want[0, 0]


@pytest.mark.statistical
def test_tanh_map_against_sampling():
    """tanh at beta = 0.3, eps = 0.02, sigma_w = 1.2, B = 4: the spherical map against
    4 x 10^6 samples of the Monte Carlo map, 10 entries compared (Bonferroni), false-failure
    probability <= 1e-4; the map's own error (< 1e-7) is negligible beside the standard errors (> 1e-5)."""
    gram = _gram(4, 7)
    kw = {"beta": 0.3, "eps": 0.02, "sigma_w": 1.2}
    settings = make_settings("tanh", 4, dps=7, **kw)
    with mpmath.workdps(settings.working_dps):
        value, error = spherical_map(settings, mpmath.matrix(gram.tolist()))
    exact = np.array(value.tolist(), dtype=float)
    assert float(max(error)) < 1e-7
    sampled = sampling.gram_map("tanh", gram, samples=4 * 10**6, seed=seed(31), **kw)
    upper = np.triu_indices(4)
    assert np.all(np.abs(sampled.mean - exact)[upper] <= sigmas(10) * sampled.stderr[upper])


@pytest.mark.slow
def test_propagate_chooses_the_spherical_route_and_keeps_its_promise():
    """propagate('tanh', ...) says it used the spherical route; its 5-digit first layer (the float64 rule)
    agrees with a run at 11 digits (the mpmath rule) within the reported errors (the precision promise),
    which are below 10^-5 of the largest entry; the second layer (whose input carries the first layer's
    error) to 10^-5 of a run at FLOAT_DPS = 10 digits (the float64 rule: the mpmath rule's second layer
    took another 9 s on a slow machine)."""
    gram = _gram(4, 8)
    low = propagate("tanh", gram, 2, beta=0.2, dps=5)
    high = propagate("tanh", gram, 1, beta=0.2, dps=11)
    ten = propagate("tanh", gram, 2, beta=0.2, dps=FLOAT_DPS)
    assert low.method == high.method == ten.method == "spherical"
    for layer, reference in ((1, high), (2, ten)):
        diff = np.abs(np.array(low.grams_mp[layer].tolist(), dtype=float) - np.array(reference.grams_mp[layer].tolist(), dtype=float))
        size = np.abs(reference.grams[layer]).max()
        assert np.all(diff <= 1e-5 * size)
        assert low.errors[layer].max() <= 1e-5 * size
        if layer == 1:
            assert np.all(diff <= low.errors[layer] + high.errors[layer] + 1e-15 * size)


@pytest.mark.slow
def test_propagate_kinked_activation_samples_above_ten_digits_unless_asked(monkeypatch):
    """ReLU at beta != 0: 'auto' takes the float64 cut rule up to FLOAT_DPS digits and samples above
    (and says so), or where that rule does not converge (here made to fail); asking for the spherical
    route of a collapsed input is refused in one line."""
    p = propagate("relu", _gram(4, 9), 1, beta=0.5, samples=2000, chains=2)
    assert p.method == "sampling"
    assert propagate("relu", _gram(4, 9), 1, beta=0.5, dps=FLOAT_DPS).method == "spherical"

    def fails(*args, **kwargs):
        raise PrecisionError("the float64 rule did not converge (made to fail)")

    monkeypatch.setattr(spherical, "_spherical_float", fails)
    assert propagate("relu", _gram(4, 9), 1, beta=0.5, dps=8, samples=2000, chains=2).method == "sampling"
    monkeypatch.undo()
    collapsed = np.outer(np.arange(1.0, 5.0), np.arange(1.0, 5.0)) + np.diag([1.0, 0, 0, 0])  # G Sigma G has rank 2
    with pytest.raises(BnsymInputError, match="spherical.*rank 2 < B - 1 = 3"):
        propagate("tanh", collapsed, 1, method="spherical")
    assert propagate("tanh", collapsed, 1, samples=2000, chains=2).method == "sampling"
    # nearly collapsed (the example 'collinear' input, condition number ~ 2e4): 'auto' samples too
    assert propagate("tanh", example_input("collinear", 4), 1, samples=2000, chains=2).method == "sampling"


def test_public_api_reaches_it():
    assert "spherical" in bnsym.meanfield.propagation.METHODS


@pytest.mark.slow
@pytest.mark.extended  # 9 s on a slow machine (the mpmath polar rule at 16 digits): -m extended
def test_map_sets_its_own_precision():
    """Found by review, measured before its fix: ``spherical_map`` sets its own precision: called at
    mpmath's default 15 digits with ``dps = 16`` it agrees with the Laplace method to 16 digits (at
    ``dps = 20`` it was 3.6e-15 off, reporting 7e-28; 16 digits keep the check at 4 s instead of 8 on a
    quiet machine)."""
    gram = _gram(4, 10)
    settings = make_settings("x**2", 4, eps="0.05", dps=16)
    value, _ = spherical_map(settings, mpmath.matrix(gram.tolist()))  # at mpmath's default precision
    with mpmath.workdps(settings.working_dps):
        want = laplace_map(settings, mpmath.matrix(gram.tolist()))[0]
        assert max(abs(value[i, j] - want[i, j]) for i in range(4) for j in range(4)) <= mpmath.mpf(10) ** -16 * abs(want[0, 0])


@pytest.mark.slow
def test_map_of_small_or_kink_free_activations():
    """Found by review, each measured before its fix:

    * the mass check is relative: tanh at ``gamma = 1e-3`` (entries ~ 1e-6) reports an error below
      ``10^-dps`` of its largest entry (it reported 6.6e-5), in float64 (8 digits) and in mpmath (11);
    * a kink that ``gamma x + beta`` never reaches is no kink: ReLU at ``beta = 5`` (B = 4, ``|x| < sqrt 3``)
      takes the polar rule and equals the identity at ``beta = 5``;
    * ``"auto"`` samples at an eps far below the scale of the input (tanh, ``eps = 1e-16``), where the
      polar rule's double-exponential rule fails."""
    gram = _gram(4, 10)
    for dps in (8, 11):  # the float64 rule and the mpmath rule
        small = propagate("tanh", gram, 1, gamma=1e-3, dps=dps)
        assert small.method == "spherical"
        assert small.errors[1].max() <= 10.0 ** -dps * np.abs(small.grams[1]).max()
    relu, identity = (propagate(a, gram, 1, beta=5, dps=8) for a in ("relu", "identity"))
    assert relu.method == identity.method == "spherical"
    np.testing.assert_allclose(relu.grams[1], identity.grams[1], rtol=1e-8)
    assert propagate("tanh", gram, 1, eps=1e-16, samples=2000, chains=2).method == "sampling"


def _conditioned_gram(b, condition, seed_):
    """A Gram matrix whose centred part G Sigma G has eigenvalues 1 down to 1 / condition on 1^perp."""
    rng = np.random.default_rng(seed_)
    basis = np.linalg.qr(np.column_stack([np.ones(b), rng.standard_normal((b, b - 1))]))[0][:, 1:]
    vectors = basis @ np.linalg.qr(rng.standard_normal((b - 1, b - 1)))[0]
    return (vectors * np.logspace(0, -np.log10(condition), b - 1)) @ vectors.T + 0.4


@pytest.mark.slow
def test_adaptive_angle_on_an_ill_conditioned_batch_against_laplace():
    """Condition number 1000 (past ADAPTIVE_ANGLE_CONDITION: each radial node's own angular rule; at 15
    digits the square rule fails there with 256^2 nodes): x^2 at B = 4 against the Laplace method at 12
    digits, on the pair whose 2 x 2 block of G Sigma G is the worst conditioned (about 5 s; 15 s at 15
    digits, where the same check passes with errors of 1e-21)."""
    gram = _conditioned_gram(4, 1000, 1)
    settings = make_settings("x**2", 4, dps=12)
    with mpmath.workdps(settings.working_dps):
        want = laplace_map(settings, mpmath.matrix(gram.tolist()))[0]
        centred = (np.eye(4) - 0.25) @ gram @ (np.eye(4) - 0.25)
        a, c = max(((a, c) for a in range(4) for c in range(a + 1, 4)),
                   key=lambda p: (centred[p[0], p[0]] + centred[p[1], p[1]]) ** 2 / np.linalg.det(centred[np.ix_(p, p)]))
        density = _pair(gram, a, c, settings.eps, settings.working_dps)
        f = Integrand(settings.activation, mpmath.mpf(1), mpmath.mpf(0))
        got = density.expect_polar([((f,), (f,)), ((f, f), ()), ((), (f, f))], mpmath.mpf(10) ** -13, settings.working_dps)
        for estimate, exact in zip(got, (want[a, c], want[a, a], want[c, c])):
            assert abs(estimate.value - exact) <= mpmath.mpf(10) ** -12 * abs(want[a, a])
            assert estimate.error <= mpmath.mpf(10) ** -12 * abs(want[a, a])


@pytest.mark.parametrize("eps, condition", [("0", None), ("0.05", None), ("0", 1000), ("0.01", 1000)])
def test_float64_polar_rule_against_laplace(eps, condition):
    """dps <= FLOAT_DPS: the polar rule in float64, every pair at once, against the Laplace method at 12
    digits (a different formula: one Schwinger integral of closed-form Gaussian kernels), x^2 at B = 6, a
    random batch and one of condition number 1000: within the two reported errors, the polar rule's
    below 10^-10 of the largest entry."""
    gram = _gram(6, 3) if condition is None else _conditioned_gram(6, condition, 2)
    settings = make_settings("x**2", 6, eps=eps, sigma_w=1.3, dps=10)
    with mpmath.workdps(settings.working_dps):
        value, error = spherical_map(settings, mpmath.matrix(gram.tolist()))
    exact = make_settings("x**2", 6, eps=eps, sigma_w=1.3, dps=12)
    with mpmath.workdps(exact.working_dps):
        want, want_error = (np.array(m.tolist(), dtype=float) for m in laplace_map(exact, mpmath.matrix(gram.tolist())))
    value, error = np.array(value.tolist(), dtype=float), np.array(error.tolist(), dtype=float)
    assert error.max() <= 1e-10 * np.abs(want).max()
    assert np.all(np.abs(value - want) <= error + want_error)


@pytest.mark.slow
@pytest.mark.extended  # the same comparison runs by default in test_propagate_chooses_the_spherical_route...
def test_float64_polar_rule_against_the_mpmath_rule():
    """tanh at beta = 0.2, B = 4: the float64 rule (10 digits) against the mpmath polar rule at 12 digits."""
    gram = _gram(4, 7)
    low = propagate("tanh", gram, 1, beta=0.2, dps=10, method="spherical")
    high = propagate("tanh", gram, 1, beta=0.2, dps=12, method="spherical")
    assert low.errors[1].max() <= 1e-10 * np.abs(high.grams[1]).max()
    assert np.all(np.abs(low.grams[1] - high.grams[1]) <= low.errors[1] + high.errors[1] + 1e-15)


@pytest.mark.parametrize("b, eps", [pytest.param(5, "0", marks=[pytest.mark.slow, pytest.mark.extended]), (6, "0.05")])
def test_float64_kinked_rule_against_laplace(b, eps):
    """ReLU through the float64 rule cut at its kink lines (here x_a = 0 and x_b = 0, the circle cut at
    their ends) against the Laplace method, within the two reported errors (below 10^-10)."""
    gram = _gram(b, 8)
    settings = make_settings("relu", b, eps=eps, dps=10)
    with mpmath.workdps(settings.working_dps):
        value, error = (np.array(m.tolist(), dtype=float)
                        for m in spherical_map(settings, mpmath.matrix(gram.tolist())))
        want, want_error = (np.array(m.tolist(), dtype=float)
                            for m in laplace_map(make_settings("relu", b, eps=eps, dps=12), mpmath.matrix(gram.tolist())))
    assert error.max() <= 1e-10 * np.abs(want).max()
    assert np.all(np.abs(value - want) <= error + want_error)


@pytest.mark.slow
@pytest.mark.extended  # off-origin kink lines run by default in ..._carries_the_odd_part_to_ten_digits[6-0-0.05]
def test_float64_kinked_rule_off_the_origin_against_the_nested_rule():
    """ReLU at beta = 0.2 (kink lines x = -0.2: rays cut where they cross them), B = 4: the float64 rule
    against the mpmath nested rule with the root-solved density, one pair at 11 digits (about 10 s)."""
    gram = _gram(4, 6)
    low = make_settings("relu", 4, beta="0.2", dps=10)
    with mpmath.workdps(low.working_dps):
        value, error = (np.array(m.tolist(), dtype=float) for m in spherical_map(low, mpmath.matrix(gram.tolist())))
    settings = make_settings("relu", 4, beta="0.2", dps=11)
    with mpmath.workdps(settings.working_dps):
        f = Integrand(settings.activation, mpmath.mpf(1), mpmath.mpf("0.2"))
        density = _pair(gram, 0, 2, settings.eps, settings.working_dps)
        got = SphereLaw(4, settings.working_dps).expect_weighted([((f,), (f,)), ((f, f), ())], density.ratio,
                                                                 mpmath.mpf(10) ** -12, None)
    for estimate, (a, c) in zip(got, ((0, 2), (0, 0))):
        assert error[a, c] <= 1e-10 * abs(value[0, 0])
        assert abs(value[a, c] - float(estimate.value)) <= error[a, c] + float(estimate.error) + 1e-15


@pytest.mark.parametrize("b, eps, beta", [(6, "0", "0.05"), pytest.param(6, "0.05", "0.3", marks=[pytest.mark.slow, pytest.mark.extended])])
def test_float64_kinked_rule_carries_the_odd_part_to_ten_digits(b, eps, beta):
    """|x + beta|: its square is x^2 + 2 beta x + beta^2, so V_aa is the identity's V_aa at beta = 0 (the
    Laplace method, exact) plus beta^2, while the rule, cut at the kink x = -beta near the origin,
    integrates the odd part 2 beta x, whose mean is 0.  Before the radial coordinate psi (u = sin^2 psi)
    that part converged slowly (the branch point r ~ sqrt(1 - u) at the origin, just past a piece's end):
    at beta = 0.05 the old rule raised a PrecisionError after 42 s.  Within the two reported errors, the
    rule's below 10^-10 of the largest entry (3 s)."""
    gram = mpmath.matrix(_gram(b, 11).tolist())
    with mpmath.workdps(30):
        value, error = (np.array(m.tolist(), dtype=float)
                        for m in spherical_map(make_settings("abs", b, beta=beta, eps=eps, dps=10), gram))
        want, want_error = (np.array(m.tolist(), dtype=float)
                            for m in laplace_map(make_settings("identity", b, eps=eps, dps=12), gram))
    assert error.max() <= 1e-10 * np.abs(value).max()
    offset = float(beta) ** 2
    assert np.all(np.abs(np.diag(value) - np.diag(want) - offset) <= np.diag(error) + np.diag(want_error) + 1e-15)
