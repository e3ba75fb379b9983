"""The exact Laplace (Schwinger) map of one batch at eps > 0 (docs/theory.md sections 7 and 15).

Checked against: the BSB1 fixed point of the radial-law route (bnsym.meanfield.bsb1, an independent
computation) to 30 digits; itself at dps + 10; the float64 two-parameter map of bnsym.meanfield.joint
on a duplicated pair; Monte Carlo of the definition (marked ``statistical``, seeds from
tests/statistical.py); the eps = 0 map; and, for ``symmetry_breaking`` at eps > 0, the eps = 0 BSB2 point.
"""

import mpmath
import numpy as np
import pytest

import bnsym
from bnsym.errors import BnsymInputError
from bnsym.meanfield import joint
from bnsym.meanfield.laplace import laplace_map, laplace_obstacle
from bnsym.meanfield.results import make_settings
from bnsym.meanfield.symmetry import symmetry_breaking
from bnsym.montecarlo import sampling
from bnsym.numerics.gaussian_kernels import homogeneous_coefficients
from statistical import seed, sigmas


def _random_gram(b, seed_value):
    x = np.random.default_rng(seed_value).standard_normal((b, b + 3))
    return x @ x.T / (b + 3)


def _map(name, gram, *, eps, sigma_w=1, dps=10, entries=None):
    settings = make_settings(name, gram.shape[0] if hasattr(gram, "shape") else gram.rows, eps=eps, sigma_w=sigma_w, dps=dps)
    with mpmath.workdps(settings.working_dps):
        m = gram if isinstance(gram, mpmath.matrix) else mpmath.matrix(np.asarray(gram).tolist())
        return laplace_map(settings, m, entries=entries)


FIXED_POINT_CASES = [
    ("relu", 5, "0.3", "1.5"),
    pytest.param("relu", 32, "0.001", "1.5", marks=pytest.mark.slow),  # 3 s: in the default run, not the fast one
    pytest.param("relu", 8, "0.3", "1", marks=pytest.mark.slow),
    # relu_power(2) at B = 8 and 5 (6 s each) with -m extended, to keep the full suite's 5 minutes
    pytest.param("relu_power(2)", 8, "0.001", "1", marks=[pytest.mark.slow, pytest.mark.extended]),
    pytest.param("relu_power(2)", 32, "0.3", "1.5", marks=pytest.mark.slow),
    pytest.param("relu_power(2)", 5, "0.3", "1.5", marks=[pytest.mark.slow, pytest.mark.extended]),
]


@pytest.mark.parametrize("name, b, eps, sigma_w", FIXED_POINT_CASES)
def test_bsb1_point_of_the_radial_route_is_a_fixed_point_of_the_map(name, b, eps, sigma_w):
    """bnsym.fixed_point at eps > 0 (radial law and scale equation, section 4.2) is reproduced by one layer of
    the Laplace map to 30 digits (measured: 1e-41 at 30 digits asked; sigma_w enters as eps / sigma_w^2)."""
    fp = bnsym.fixed_point(name, b, eps=eps, sigma_w=sigma_w, dps=30)
    assert fp.regime == "nondegenerate"
    settings = make_settings(name, b, eps=eps, sigma_w=sigma_w, dps=30)
    with mpmath.workdps(settings.working_dps):
        value, error = laplace_map(settings, fp.matrix(), entries=[(0, 0), (0, 1)])
        tol = mpmath.mpf(10) ** -30 * abs(fp.q)
        assert abs(value[(0, 0)] - fp.q) < tol and abs(value[(0, 1)] - fp.c) < tol
        assert error[(0, 0)] < tol and error[(0, 1)] < tol


@pytest.mark.parametrize("name, eps, sigma_w", [
    ("relu", "0.001", "1"), pytest.param("relu_power(2)", "0.3", "1.5", marks=pytest.mark.slow)])
def test_precision_promise_at_thirty_digits(name, eps, sigma_w):
    """dps 30 against dps 40 on a random Sigma (B = 5, three entries including the largest diagonal one):
    the promise (10^-30 of the largest entry) and the reported error bound the difference."""
    gram = _random_gram(5, 3)
    top = int(np.argmax(np.diag(gram - gram.mean(axis=0) - gram.mean(axis=1)[:, None])))
    entries = [(top, top), (2, 4)]
    low, low_err = _map(name, gram, eps=eps, sigma_w=sigma_w, dps=30, entries=entries)
    high, _ = _map(name, gram, eps=eps, sigma_w=sigma_w, dps=40, entries=entries)
    with mpmath.workdps(60):
        size = max(abs(v) for v in high.values())
        for key in entries:
            diff = abs(low[key] - high[key])
            assert diff < mpmath.mpf(10) ** -30 * size, key
            assert diff <= low_err[key] + mpmath.mpf(10) ** -38 * size, key


def test_float_path_against_high_precision():
    gram = _random_gram(6, 4)
    fast, fast_err = _map("relu", gram, eps="0.05", sigma_w="1.3", dps=12)
    entries = [(0, 0), (1, 1), (0, 4), (2, 5)]
    slow, _ = _map("relu", gram, eps="0.05", sigma_w="1.3", dps=20, entries=entries)
    size = float(max(abs(v) for v in fast))
    for a, c in entries:
        diff = abs(float(fast[a, c] - slow[(a, c)]))
        assert diff < 1e-12 * size and diff <= float(fast_err[a, c]) + 1e-15 * size


@pytest.mark.parametrize("name, eps, sigma_w", [("relu", 0.05, 1.0), ("relu_power(2)", 0.3, 1.5)])
def test_within_batch_block_of_the_two_parameter_map(name, eps, sigma_w):
    """The two-Schwinger map of bnsym.meanfield.joint (section 14.2, its own e^{-B eps (s+t)} factor and
    sigma_w^2 in S) on the duplicated pair [[A, A], [A, A]] is the one-parameter map V(A) at eps > 0."""
    b = 6
    a = _random_gram(b, 5)
    settings = make_settings(name, b)
    coeffs = tuple(float(v) for v in homogeneous_coefficients(settings.activation))
    s = joint.centred_pairs(np.block([[a, a], [a, a]]), b, [(0, 1)], sigma_w=sigma_w)
    cross, _ = joint.cross_map(coeffs, s, batch_size=b, eps=eps, levels=(5, 7))
    value, _ = _map(name, a, eps=eps, sigma_w=sigma_w, dps=12)
    ref = np.array(value.tolist(), dtype=float)
    assert np.abs(cross[0] - ref).max() < 1e-9 * np.abs(ref).max()


@pytest.mark.statistical
@pytest.mark.parametrize("name, eps, sigma_w, case", [("relu", 0.3, 1.5, 1), ("relu_power(2)", 0.05, 1.0, 2)])
def test_against_monte_carlo_of_the_definition(name, eps, sigma_w, case):
    """4e5 samples of B_phi(h) B_phi(h)^T, h ~ N(0, sigma_w^2 Sigma) (bnsym.montecarlo.sampling, the
    definition) at a random Sigma (B = 5): each of the 15 upper-triangular entries within ``sigmas(15) = 4.5``
    standard errors (Bonferroni; samples i.i.d., CLT): false-failure probability <= 1e-4 by design."""
    gram = _random_gram(5, 6)
    value, _ = _map(name, gram, eps=eps, sigma_w=sigma_w, dps=12)
    ref = np.array(value.tolist(), dtype=float)
    mc = sampling.gram_map(name, gram, eps=eps, sigma_w=sigma_w, samples=400_000, seed=seed(case))
    iu = np.triu_indices(5)
    z = np.abs(mc.mean - ref)[iu] / mc.stderr[iu]
    assert z.max() < sigmas(len(z)), z.max()


def test_eps_zero_unchanged_and_sigma_w_drops_out():
    """At eps = 0 the map is the section 7 map, independent of sigma_w; it is continuous as eps -> 0."""
    gram = _random_gram(6, 7)
    entries = [(0, 0), (1, 4)]
    base, _ = _map("relu", gram, eps=0, dps=20, entries=entries)
    scaled, _ = _map("relu", gram, eps=0, sigma_w="1.7", dps=20, entries=entries)
    near, _ = _map("relu", gram, eps="1e-12", dps=20, entries=entries)
    with mpmath.workdps(30):
        size = max(abs(v) for v in base.values())
        assert max(abs(base[k] - scaled[k]) for k in entries) == 0
        assert max(abs(base[k] - near[k]) for k in entries) < 1e-10 * size
    # the reference value of tests/meanfield/test_propagate.py's doctest (unchanged at eps = 0)
    p = bnsym.propagate("relu", np.diag([1.0, 2.0, 3.0, 4.0]), 3, dps=10)
    assert [round(float(d), 6) for d in p.distance_L[1:]] == [0.143759, 0.076757, 0.040659]


def test_sigma_w_enters_as_eps_over_sigma_w_squared():
    gram = _random_gram(5, 8)
    entries = [(0, 0), (1, 3)]
    one, _ = _map("relu_power(2)", gram, eps="0.3", sigma_w="2", dps=20, entries=entries)
    two, _ = _map("relu_power(2)", gram, eps="0.075", dps=20, entries=entries)
    other, _ = _map("relu_power(2)", gram, eps="0.3", dps=20, entries=entries)
    with mpmath.workdps(30):
        size = max(abs(v) for v in one.values())
        assert max(abs(one[k] - two[k]) for k in entries) < 1e-19 * size
        assert max(abs(one[k] - other[k]) for k in entries) > 1e-3 * size


def test_degenerate_input_maps_to_zero_at_eps_positive():
    """A constant batch (G Sigma G = 0 up to rounding) maps to 0 at eps > 0 (phi(0) = 0)."""
    value, _ = _map("relu", np.ones((5, 5)), eps="0.1", dps=20, entries=[(0, 0), (0, 1)])
    assert max(abs(v) for v in value.values()) < 1e-25
    value, _ = _map("relu", np.ones((5, 5)), eps="0.1", dps=10)
    assert max(abs(v) for v in value) < 1e-14


def test_obstacle_only_for_non_homogeneous_or_beta():
    assert laplace_obstacle(make_settings("relu", 8, eps="0.3", sigma_w=2)) is None
    assert "homogeneous" in laplace_obstacle(make_settings("tanh", 8, eps="0.3"))
    assert "beta" in laplace_obstacle(make_settings("relu", 8, beta=1, eps="0.3"))


def test_propagate_uses_the_exact_map_at_eps_positive():
    """propagate at eps > 0 (ReLU, B = 6) is the Laplace map (method "laplace", quadrature errors) and tends
    to the BSB1 point of the radial route."""
    gram = _random_gram(6, 9)
    p = bnsym.propagate("relu", gram, 12, eps=0.1, sigma_w=1.2, dps=10)
    assert p.method == "laplace" and p.grams_mp is not None and p.chains is None
    assert max(float(e.max()) for e in p.errors) < 1e-10
    assert p.distance[12] < 0.05 * p.distance[1]
    assert all(p.distance[l + 1] < p.distance[l] for l in range(3, 12))
    assert p.fixed_point.regime == "nondegenerate"


def test_propagate_past_the_critical_eps_collapses():
    """ReLU at B = 6 past eps_c (0.323): the Gram matrix tends to the degenerate point 0; the centred part
    shrinks by about S0 = eps_c / eps per layer (docs/theory.md section 15.1)."""
    crit = float(bnsym.critical_eps("relu", 6, dps=15))
    eps = 2 * crit
    p = bnsym.propagate("relu", np.eye(6), 20, eps=eps, dps=10)
    assert p.method == "laplace" and p.fixed_point.regime == "degenerate"
    g = np.eye(6) - 1 / 6
    norms = [np.linalg.norm(g @ m @ g) for m in p.grams]
    assert abs(norms[20] / norms[19] - crit / eps) < 1e-5


@pytest.fixture(scope="module")
def eps_zero_bsb2():
    return symmetry_breaking("relu_power(2)", 8, sizes=3, power_steps=0).fixed_point


#: Both eps (the linearity in eps; 14 s on a quiet machine) with -m extended, to keep the default suite
#: within its 5 minutes; eps = 1e-3 alone by default.
@pytest.mark.slow
@pytest.mark.parametrize("epsilons", [(1e-3,), pytest.param((1e-4, 1e-3), marks=pytest.mark.extended)])
def test_bsb2_point_at_small_eps_approaches_the_eps_zero_point(eps_zero_bsb2, epsilons):
    """relu_power(2), B = 8 (BSB1 unstable): at eps = 1e-4 and 1e-3 the BSB2 point found by the search with the
    eps > 0 map is a fixed point (residual < 1e-9), and it differs from the eps = 0 point by O(eps)
    (measured: q2 moves by 1.8e-3 at eps = 1e-4 and 1.8e-2 at eps = 1e-3, relative 3.7e-4 and 3.6e-3)."""
    ref = np.array(eps_zero_bsb2.q + eps_zero_bsb2.c_within + (eps_zero_bsb2.c_across,))
    moves = []
    for eps in epsilons:
        result = symmetry_breaking("relu_power(2)", 8, eps=eps, sizes=3, power_steps=0)
        assert result.broken is True and result.method == "laplace"
        assert result.settings.eps == mpmath.mpf(eps)
        point = result.fixed_point
        assert point.sizes == (5, 3) and point.converged and point.residual < 1e-9
        found = np.array(point.q + point.c_within + (point.c_across,))
        moves.append(np.abs(found - ref).max() / np.abs(ref).max())
    if len(moves) == 1:  # eps = 1e-3: 3.6e-3 measured
        assert 1e-3 < moves[0] < 1e-2
        return
    assert moves[0] < 1e-3
    assert 5 < moves[1] / moves[0] < 15  # linear in eps


@pytest.mark.parametrize(
    "kwargs, word",
    [
        (dict(eps=-0.1), "eps"),
        (dict(eps=float("inf")), "eps"),
        (dict(eps=float("nan")), "eps"),
        (dict(eps="abc"), "eps"),
        (dict(sigma_w=0), "sigma_w"),
        (dict(sigma_w=-1.0), "sigma_w"),
    ],
)
def test_bad_input(kwargs, word):
    with pytest.raises(BnsymInputError, match=word) as info:
        symmetry_breaking("relu_power(2)", 8, **kwargs)
    assert "\n" not in str(info.value)


def test_cli_accepts_eps_and_sigma_w(capsys):
    import json

    from bnsym.cli import main

    assert main(["symmetry-breaking", "relu", "-B", "6", "--eps", "0.1", "--sigma-w", "1.2", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["broken"] is False and out["spectrum"]["settings"]["eps"] == "0.1"
    assert out["spectrum"]["settings"]["sigma_w"] == "1.2"


def test_a_scan_over_eps_shares_the_radial_curve_and_agrees_with_fresh_solves(monkeypatch):
    """The sphere moments at gain gamma kappa do not depend on eps or sigma_w (numerics.curve.shared_holder): after
    eps = 1e-2, the solves at 5e-3 and at sigma_w = 1.2 take their radial nodes from the same curve, with no
    new sphere expectation but their own at kappa = 1, and each agrees with a fresh solve (caches cleared)
    within the two errors."""
    from bnsym.meanfield import bsb1
    from bnsym.numerics.curve import shared_holder

    bsb1.bsb1_state.cache_clear()
    shared_holder.cache_clear()
    bnsym.gradient_explosion_rate("tanh", 16, eps="1e-2", dps=12)
    calls = []
    evaluate = bsb1.moments_at_gains
    monkeypatch.setattr(bsb1, "moments_at_gains", lambda *a, **k: calls.extend(a[2]) or evaluate(*a, **k))
    shared = [bnsym.gradient_explosion_rate("tanh", 16, eps="5e-3", dps=12),
              bnsym.gradient_explosion_rate("tanh", 16, eps="1e-2", sigma_w="1.2", dps=12)]
    assert calls == [1, 1]  # the gains evaluated: gamma = 1 (kappa = 1), once per solve
    for value, kwargs in zip(shared, [{"eps": "5e-3"}, {"eps": "1e-2", "sigma_w": "1.2"}]):
        bsb1.bsb1_state.cache_clear()
        shared_holder.cache_clear()
        fresh = bnsym.gradient_explosion_rate("tanh", 16, dps=12, **kwargs)
        assert abs(value.value - fresh.value) <= value.error + fresh.error
    bsb1.bsb1_state.cache_clear()
    shared_holder.cache_clear()
