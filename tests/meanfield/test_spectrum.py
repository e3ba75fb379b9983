"""The spectrum at the BSB1 point against independent references.

* forward eigenvalues vs a central finite difference of the Laplace-method
  map (docs/theory.md section 7), a different formula and a different integral;
* lambda_G vs the core engine's formula; identity closed forms;
* closed-form and quadrature evaluations of the same reduction agree;
* bad input.
"""

import math

import mpmath
import numpy as np
import pytest

import bnsym
from bnsym.errors import BnsymInputError
from bnsym.meanfield.laplace import laplace_map
from bnsym.meanfield.results import make_settings
from bnsym.meanfield.linearization import reduce_expectation, spectrum
from statistical import SEED_OFFSET


def _directions(b):
    """Pi_L = G diag(e1 - e3) G and Pi_M = x y^T + y x^T (x = e1 - e3, y = e2 - e4), as mpmath matrices."""
    g = mpmath.eye(b) - mpmath.ones(b, b) / b
    v = mpmath.zeros(b, b)
    v[0, 0], v[2, 2] = 1, -1
    pi_l = g * v * g
    x, y = mpmath.zeros(b, 1), mpmath.zeros(b, 1)
    x[0], x[2], y[1], y[3] = 1, -1, 1, -1
    pi_m = x * y.T + y * x.T
    return {"L": pi_l, "M": pi_m}


def _finite_difference_eigenvalue(activation, b, subspace, dps):
    """tr(w w^T dV[Pi]) / tr(w w^T Pi), w = e1 - e2, by a central difference of the Laplace map."""
    fp = bnsym.fixed_point(activation, b, dps=dps)
    settings = make_settings(activation, b, dps=dps)
    entries = [(0, 0), (1, 1), (0, 1)]
    values = []
    with mpmath.workdps(settings.working_dps):
        star = fp.matrix()
        pi = _directions(b)[subspace]
        h = mpmath.mpf(10) ** -(dps // 3)
        for sign in (1, -1):
            v, _ = laplace_map(settings, star + sign * h * pi, entries=entries)
            values.append(v[(0, 0)] + v[(1, 1)] - 2 * v[(0, 1)])
        denominator = pi[0, 0] + pi[1, 1] - 2 * pi[0, 1]
        return (values[0] - values[1]) / (2 * h) / denominator


@pytest.mark.parametrize("activation", ["identity", "relu"])
@pytest.mark.parametrize("b", [4, 8, pytest.param(32, marks=[pytest.mark.slow, pytest.mark.extended])])  # 3 s each: -m extended (and the representative below)
def test_forward_eigenvalues_match_finite_difference_of_laplace_map(activation, b):
    spec = spectrum(activation, b, dps=25)
    for sub in ("L", "M"):
        fd = _finite_difference_eigenvalue(activation, b, sub, dps=66)
        value = spec.eigenvalue("forward", sub).value
        with mpmath.workdps(40):
            assert abs(fd - value) < mpmath.mpf(10) ** -20 * max(1, abs(value)), (sub, fd, value)


def test_forward_eigenvalues_b32_relu_fast_representative():
    """A cheaper B = 32 check (15 digits) kept in the fast suite."""
    spec = spectrum("relu", 32, dps=15)
    fd = _finite_difference_eigenvalue("relu", 32, "M", dps=36)
    assert abs(fd - spec.eigenvalue("forward", "M").value) < 1e-12


@pytest.mark.parametrize("b", [4, 7, 16])
def test_identity_closed_forms(b):
    """identity: forward L = M = (B-1)/(B+1) (angular central Gaussian), backward G = (B-2)/(B-3)."""
    spec = spectrum("identity", b, dps=30)
    mpmath.mp.dps = 40
    for sub in ("L", "M"):
        assert abs(spec.eigenvalue("forward", sub).value - mpmath.mpf(b - 1) / (b + 1)) < 1e-28
    assert abs(spec.eigenvalue("backward", "G").value - mpmath.mpf(b - 2) / (b - 3)) < 1e-28
    assert spec.eigenvalue("forward", "G").value == 0
    mpmath.mp.dps = 15


@pytest.mark.parametrize("activation", ["relu", "tanh", "relu_power(2)"])
def test_backward_G_is_the_engine_rate(activation):
    spec = spectrum(activation, 8, dps=15)
    rate = bnsym.gradient_explosion_rate(activation, 8, dps=15)
    assert abs(spec.eigenvalue("backward", "G").value - rate.value) < 1e-13 * rate.value


def test_closed_form_and_quadrature_agree():
    a = spectrum("leaky_relu(0.3)", 5, dps=10, method="closed form")
    b = spectrum("leaky_relu(0.3)", 5, dps=10, method="quadrature")
    for ea, eb in zip(a.forward + a.backward, b.forward + b.backward):
        assert abs(ea.value - eb.value) < 1e-9 * max(1, abs(ea.value))


def test_polynomial_reduction_against_sphere_sampling():
    """E[s1^2 s2 s3 s4^2] and friends by the exact reduction vs direct sampling of the sphere law."""
    import sympy as sp

    b = 6
    s1, s2, s3, s4 = sp.symbols("s1:5")
    rng = np.random.default_rng(0)
    z = rng.standard_normal((400000, b))
    z -= z.mean(axis=1, keepdims=True)
    s = math.sqrt(b) * z / np.linalg.norm(z, axis=1, keepdims=True)
    for expr, sample in (
        (s1**2 * s2 * s3 * s4**2, s[:, 0] ** 2 * s[:, 1] * s[:, 2] * s[:, 3] ** 2),
        (s3**2 * s4**2, s[:, 2] ** 2 * s[:, 3] ** 2),
        (s1 * s2 * s3 * s4, s[:, 0] * s[:, 1] * s[:, 2] * s[:, 3]),
    ):
        (value,) = reduce_expectation(expr, b).values() if reduce_expectation(expr, b) else (0,)
        exact = float(value)
        mc, se = sample.mean(), sample.std() / math.sqrt(len(sample))
        assert abs(exact - mc) < 4 * se, (expr, exact, mc, se)


def test_relu_power_2_breaks_symmetry():
    spec = spectrum("relu_power(2)", 8, dps=12)
    assert spec.stable is False
    assert spec.eigenvalue("forward", "L").value > 1


@pytest.mark.parametrize(
    "kwargs, word",
    [
        (dict(activation="relu", batch_size=3), "batch_size"),
        (dict(activation="relu", batch_size=8, eps=-0.001), "eps"),
        (dict(activation="relu", batch_size=8, eps=math.nan), "eps"),
        (dict(activation="relu", batch_size=8, eps=0.001, sigma_w=0), "sigma_w"),
        (dict(activation="relu", batch_size=8, dps=0), "dps"),
        (dict(activation="relu", batch_size=8, gamma=0), "gamma"),
    ],
)
def test_bad_input(kwargs, word):
    with pytest.raises(BnsymInputError, match=word):
        spectrum(**kwargs)


# --------------------------------------------------------------------------- simulation


# ------------------------------------------------------------------ against real finite-width networks
#: Master seed offset of the statistical tests (run the suite with another to check that no verdict
#: depends on the machine or the seed): ``BNSYM_TEST_SEED=7 python -m pytest``.
MASTER_SEED = SEED_OFFSET  # BNSYM_TEST_SEED, read in one place (tests/statistical.py)
#: Half-width of the acceptance interval in standard errors.  With ``SEEDS`` >= 64 independent
#: networks the mean over seeds is normal to within the t_63 correction; P(|t_63| > 4.5) = 3.0e-5,
#: so each check below fails by chance with probability at most 3e-5 (two checks per test: 6e-5).
SIGMAS = 4.5
SEEDS = 64
#: Measured finite-width bias of the one-layer backward response, E[ratio] - lambda = a / N (2026-12-01,
#: python - see the closing note of issue 15): at N = 2048 with 128 seeds, a over the twelve cases below
#: ranges from -8.3 +- 8.7 (tanh B = 8, L) to +12.0 +- 6.5 (tanh B = 32, M), every |a| + 3 sigma below 32;
#: tanh B = 8, L also gave a = -42 +- 17 at N = 4096 and -46 +- 36 at N = 16384.  BIAS_A = 40 bounds
#: them; the test adds BIAS_A / N to the 4.5-sigma interval.
BIAS_A = 40.0
#: Width of the backward check: bias bound 40 / 8192 = 0.0049, standard error about 0.0025 at 64 seeds.
BACKWARD_WIDTH = 8192


def _gradient_draw(cov):
    """``output_gradient`` whose rows are ``N(0, cov)`` (a symmetric square root: cov may be singular)."""
    lam, vec = np.linalg.eigh(cov)
    factor = vec * np.sqrt(np.clip(lam, 0, None))

    def draw(rng, width, batch):
        return rng.standard_normal((width, factor.shape[0])) @ factor.T

    return draw


def _direction(b, subspace):
    """Unit-Frobenius ``P`` in ``subspace``; ``"G"``: ``G / |G|``."""
    from bnsym.subspaces import subspace_direction

    if subspace == "G":
        g = np.eye(b) - 1.0 / b
        return g / np.linalg.norm(g)
    return subspace_direction(b, subspace)


def _forward_response(activation, b, subspace, *, width, seeds, delta=1e-3, eps=0):
    """Per-seed ``<P, Sigma^1_+ - Sigma^1_-> / (2 t)`` of one layer of a real width-``width`` network.

    Inputs with Gram matrices ``Sigma* +- t P`` (``P`` a unit-Frobenius direction in ``subspace``,
    ``t = delta (q* - c*)``) go through the same weights (same seeds).  Since
    ``E[Sigma^1 | Sigma^0] = V(Sigma^0)`` holds exactly at any width (the rows of ``h`` are i.i.d.
    given the input), the mean over seeds is the central difference of the mean-field map along
    ``P``: the forward eigenvalue up to ``O(delta^2)`` (about 1e-6 relative here, far below the
    standard error).  Unbiased by construction: no finite-width or transient bias.
    """
    fp = bnsym.fixed_point(activation, b, dps=10, eps=eps)
    star = fp.array()
    p = _direction(b, subspace)
    step = delta * float(fp.spread)
    runs = [bnsym.simulate(activation, b, 1, width, seeds=seeds, seed=MASTER_SEED, input=("gram", star + sign * step * p),
                           fit_layers=(0, 1), eps=eps) for sign in (1, -1)]
    diff = runs[0].grams[:, 1] - runs[1].grams[:, 1]
    return np.einsum("ij,sij->s", p, diff) / (2 * step)


def _backward_response(activation, b, subspace, *, width, seeds, amplitude=0.9, eps=0):
    """Per-seed ``<P, Pi^0_+ - Pi^0_-> / (2 t <P, P>)`` of one layer of a real network at ``Sigma*``.

    Output gradients with Gram ``G +- t P`` (``P`` in ``subspace`` at spectral norm 1, ``t =
    amplitude``) through the same weights and the same normals.  ``Pi^0`` is linear in the output
    gradient's covariance, so the ratio is unbiased for the finite-width backward operator at any
    ``t`` (no ``O(t^2)`` term); its only bias is the finite width itself, ``O(1/N)`` (``BIAS_A``).
    """
    star = bnsym.fixed_point(activation, b, dps=10, eps=eps).array()
    p = _direction(b, subspace)
    p = p / np.abs(np.linalg.eigvalsh(p)).max()
    g = np.eye(b) - 1.0 / b
    runs = [bnsym.simulate(activation, b, 1, width, seeds=seeds, seed=MASTER_SEED + 1, input=("gram", star),
                           output_gradient=_gradient_draw(g + sign * amplitude * p), fit_layers=(0, 1), eps=eps)
            for sign in (1, -1)]
    diff = runs[0].gradient_grams[:, 0] - runs[1].gradient_grams[:, 0]
    return np.einsum("ij,sij->s", p, diff) / (2 * amplitude * float(np.sum(p * p)))


def _assert_within(ratios, lam, bias=0.0):
    mean, stderr = ratios.mean(), ratios.std(ddof=1) / math.sqrt(len(ratios))
    assert abs(mean - lam) <= SIGMAS * stderr + bias, (mean, stderr, lam, bias)
    return stderr


CASES = [(a, b, s) for a in ("tanh", "relu", "gelu") for b in (8, 32) for s in ("L", "M")]
FAST = {("tanh", 8, "L"), ("relu", 32, "M")}


def _marked(cases, fast, extended=frozenset()):
    """``cases`` as pytest params: those in ``fast`` run in the fast suite, those in ``extended`` only with
    ``-m extended``, the others with the slow ones."""
    return [c if c in fast else pytest.param(*c, marks=[pytest.mark.slow] + ([pytest.mark.extended] if c in extended else []))
            for c in cases]


#: gelu's backward response at B = 32 (11 and 12 s: the simulator's erf at width 8192) runs with -m extended:
#: gelu keeps B = 8 and B = 32 keeps tanh and ReLU in the default run
BACKWARD_EXTENDED = frozenset({("gelu", 32, "L"), ("gelu", 32, "M"),
                               # B = 32 on L (3 to 4 s each) too, and tanh on M (7 s): ReLU keeps B = 32 on M in the
                               # default run, tanh keeps B = 8
                               ("tanh", 32, "L"), ("relu", 32, "L"), ("tanh", 32, "M")})


@pytest.mark.parametrize("activation, b, subspace", _marked(CASES, FAST))
def test_forward_eigenvalue_is_the_one_layer_response_of_a_real_network(activation, b, subspace):
    """Forward eigenvalues on L and M against real width-1024 networks (unbiased estimator; false-failure
    probability 3e-5 by design: 4.5 sigma over 64 seeds).  Replaces the far-input slope, which mixed the
    nonlinear transient with finite-width fluctuations of the slow subspaces (0.890 +- 0.003 against
    lambda_M = 0.909 for tanh at B = 32: an xfail until 2026-12-01)."""
    ratios = _forward_response(activation, b, subspace, width=1024, seeds=SEEDS)
    lam = float(spectrum(activation, b, dps=10).eigenvalue("forward", subspace).value)
    stderr = _assert_within(ratios, lam)
    assert stderr < 0.02 * abs(lam)  # sharp enough to tell lambda_M = 0.67 from 0.71


@pytest.mark.parametrize("activation, b, subspace", _marked(CASES, FAST, BACKWARD_EXTENDED))
def test_backward_eigenvalue_is_the_one_layer_response_of_a_real_network(activation, b, subspace):
    """Backward eigenvalues on L and M (relu-32-M among them: 0.7423 +- 0.0046 against 0.7261 on one
    machine with the old top-layers slope) against the one-layer response at width BACKWARD_WIDTH: false-failure
    probability 3e-5 by design (4.5 sigma over 64 seeds) plus the measured O(1/N) bias bound BIAS_A / N."""
    width = BACKWARD_WIDTH
    ratios = _backward_response(activation, b, subspace, width=width, seeds=SEEDS)
    lam = float(spectrum(activation, b, dps=10).eigenvalue("backward", subspace).value)
    stderr = _assert_within(ratios, lam, bias=BIAS_A / width)
    assert stderr < 0.01 * abs(lam)


# ------------------------------------------------------------------ eps > 0 (docs/theory.md section 15)
EPS_CASES = [("relu", b, s) for b in (8, 32, 128) for s in ("L", "M")] + [("tanh", 8, "L"), ("tanh", 32, "M"), ("tanh", 128, "L")]
EPS_FAST = set()  # relu-32-M (4 s) in the default run, not the fast one
#: ReLU at B = 128 (4 s each) runs with -m extended; tanh keeps B = 128 in the default run.  tanh at
#: B = 32 (the longest of the suite, 17-34 s; its eps > 0 spectrum is the cost) too, since tanh at
#: B = 8 and 128 stay in the default run (2026-12-07, to keep the full run under 5 minutes; the
#: backward tanh-32-M case at eps > 0, 7 s, went to -m extended the same day).
EPS_EXTENDED = frozenset({("relu", 128, "L"), ("relu", 128, "M"), ("tanh", 32, "M")})


@pytest.mark.parametrize("activation, b, subspace", _marked(EPS_CASES, EPS_FAST, EPS_EXTENDED))
def test_eps_forward_eigenvalue_is_the_one_layer_response(activation, b, subspace):
    """eps = 1e-3 (the paper's value): forward eigenvalues against real width-1024 networks (unbiased
    one-layer estimator, exact in law; false-failure probability 3e-5 by design: 4.5 sigma, 64 seeds)."""
    ratios = _forward_response(activation, b, subspace, width=1024, seeds=SEEDS, eps=1e-3)
    lam = float(spectrum(activation, b, eps=1e-3, dps=10).eigenvalue("forward", subspace).value)
    stderr = _assert_within(ratios, lam)
    assert stderr < 0.02 * abs(lam)


@pytest.mark.slow
def test_eps_forward_G_eigenvalue_is_the_one_layer_response():
    """eps = 0.1, where the scale direction G no longer vanishes (F'(a*) = 0.19 for ReLU at B = 8):
    4.5 sigma over 64 seeds, false-failure probability 3e-5."""
    ratios = _forward_response("relu", 8, "G", width=1024, seeds=SEEDS, eps=0.1)
    lam = float(spectrum("relu", 8, eps=0.1, dps=10).eigenvalue("forward", "G").value)
    _assert_within(ratios, lam)


@pytest.mark.slow
@pytest.mark.parametrize("activation, b, subspace", [
    ("relu", 8, "L"),
    pytest.param("relu", 32, "M", marks=pytest.mark.extended),  # 5 s: -m extended (relu-8-L stays)
    pytest.param("relu", 128, "L", marks=pytest.mark.extended),  # 18 s on a quiet machine: -m extended
    pytest.param("tanh", 32, "M", marks=pytest.mark.extended)])  # 7 s: -m extended
def test_eps_backward_eigenvalue_is_the_one_layer_response(activation, b, subspace):
    """eps = 1e-3: backward eigenvalues against the one-layer response at BACKWARD_WIDTH (4.5 sigma over 64
    seeds, false-failure probability 3e-5, plus the eps = 0 bias bound BIAS_A / N: at eps = 1e-3 kappa
    differs from 1 by about 1e-3, far below what could change an O(1/N) coefficient measured to +-10)."""
    ratios = _backward_response(activation, b, subspace, width=BACKWARD_WIDTH, seeds=SEEDS, eps=1e-3)
    lam = float(spectrum(activation, b, eps=1e-3, dps=10).eigenvalue("backward", subspace).value)
    _assert_within(ratios, lam, bias=BIAS_A / BACKWARD_WIDTH)


@pytest.mark.slow
@pytest.mark.statistical
def test_gradient_rate_near_the_critical_eps_is_the_one_layer_response():
    """ReLU, B = 32, eps = 0.3 (eps_c = 0.338): lambda_G = 1.45953 against the one-layer backward G
    response of width-8192 networks at Sigma* (64 seeds, 4.5 sigma: false-failure probability 3e-5,
    plus the bias bound BIAS_A / N).  Deep networks from a random input measure 4-6% less here
    (docs/theory.md section 15.1): the scale relaxes at the forward G eigenvalue 0.888 per layer, so
    after 20 layers q - c is still 11% above q* - c*, where the rate is lower.  Measured (2026-12-02):
    1.45885 +- 0.00104 at N = 8192; from input Sigma*, depth 30, fit 2-28: 1.4582 at N = 4096."""
    ratios = _backward_response("relu", 32, "G", width=BACKWARD_WIDTH, seeds=SEEDS, eps=0.3)
    lam = float(bnsym.gradient_explosion_rate("relu", 32, eps=0.3, dps=10))
    _assert_within(ratios, lam, bias=BIAS_A / BACKWARD_WIDTH)


@pytest.mark.slow
def test_eps_spectrum_limits_and_consistency():
    """eps -> 0 recovers the eps = 0 spectrum; backward G is lambda_G at eps > 0; dps + 10 recomputation."""
    small = spectrum("relu", 8, eps=1e-14, dps=12)
    zero = spectrum("relu", 8, dps=12)
    for a, b in zip(small.forward[1:] + small.backward, zero.forward[1:] + zero.backward):
        assert abs(a.value - b.value) < 1e-11
    assert abs(small.eigenvalue("forward", "G").value) < 1e-11
    spec = spectrum("leaky_relu(0.2)", 16, eps="0.05", dps=12)
    rate = bnsym.gradient_explosion_rate("leaky_relu(0.2)", 16, eps="0.05", dps=12)
    assert abs(spec.eigenvalue("backward", "G").value - rate.value) < 1e-11 * rate.value
    fine = spectrum("leaky_relu(0.2)", 16, eps="0.05", dps=22)
    for a, b in zip(spec.forward + spec.backward, fine.forward + fine.backward):
        assert abs(a.value - b.value) <= mpmath.mpf(10) ** -12 * max(1, abs(b.value))


@pytest.mark.slow
def test_eps_spectrum_from_the_radial_curve_is_the_node_by_node_spectrum(monkeypatch):
    """At eps > 0 a smooth activation's eigenvalue integrands are interpolated along the radius
    (docs/theory.md section 15.3); a second evaluation at every radial node (the route of kinked
    activations, forced here) agrees within the two reported errors, which meet the 8 digits."""
    activation, kwargs = "gelu", dict(gamma="1.3", beta="0.2", eps="0.01", dps=8)
    curve = spectrum(activation, 6, **kwargs)
    monkeypatch.setattr("bnsym.meanfield.linearization.curve_evaluation", lambda *args: None)  # no curve
    direct = spectrum(activation, 6, **kwargs)
    for a, b in zip(curve.forward + curve.backward, direct.forward + direct.backward):
        assert (a.operator, a.subspace) == (b.operator, b.subspace)
        assert abs(a.value - b.value) <= a.error + b.error, (a, b)
        assert a.error <= mpmath.mpf(10) ** -8 * max(1, abs(a.value))


def test_infinite_batch_forward_eigenvalues():
    """B = inf: the identity gives L = M = 1 (the limit of (B-1)/(B+1)), and tanh lies within
    O(1/B) of the finite-B spectrum at B = 2000 (a second method: the four-coordinate reduction)."""
    ident = spectrum("identity", math.inf, dps=20)
    for sub in ("L", "M"):
        assert abs(ident.eigenvalue("forward", sub).value - 1) < 1e-18
    inf, big = spectrum("tanh", math.inf, dps=10), spectrum("tanh", 2000, dps=10)
    for sub in ("L", "M"):
        assert abs(inf.eigenvalue("forward", sub).value - big.eigenvalue("forward", sub).value) < 2.0 / 2000


@pytest.mark.slow  # 3 s: in the default run, not the fast one
def test_infinite_batch_forward_g_at_eps_is_the_scale_maps_slope_to_30_digits():
    """B = inf, eps > 0: the forward eigenvalue on G is the slope F'(a*) of the scale map
    ``F(a) = sigma_w^2 Var phi(gamma sqrt(a/(a+eps)) z + beta)`` at its root.  Reference: the map by
    mpmath.quad at 50 digits, its root by findroot and its slope by mpmath.diff (a second method:
    quadrature on the line and numerical differentiation, against the engine's closed-form slope
    on its Gaussian rules).  A central difference in the engine gave only 1e-9 at 10 digits."""
    with mpmath.workdps(50):
        gamma, beta, eps, sigma_w = mpmath.mpf("1.3"), mpmath.mpf("0.2"), mpmath.mpf("0.001"), mpmath.mpf("1.1")

        def moments(g):
            def weight(z):
                return mpmath.exp(-z * z / 2) / mpmath.sqrt(2 * mpmath.pi)
            mean = mpmath.quad(lambda z: mpmath.tanh(g * z + beta) * weight(z), [-mpmath.inf, 0, mpmath.inf])
            second = mpmath.quad(lambda z: mpmath.tanh(g * z + beta) ** 2 * weight(z), [-mpmath.inf, 0, mpmath.inf])
            return second - mean * mean

        def scale_map(a):
            return sigma_w**2 * moments(gamma * mpmath.sqrt(a / (a + eps)))

        root = mpmath.findroot(lambda a: a - scale_map(a), mpmath.mpf("0.5"))
        slope = mpmath.diff(scale_map, root)
    spec = spectrum("tanh", math.inf, gamma="1.3", beta="0.2", eps="0.001", sigma_w="1.1", dps=30)
    found = spec.eigenvalue("forward", "G")
    with mpmath.workdps(50):
        assert abs(found.value - slope) <= mpmath.mpf(10) ** -30, (found, slope)
        assert found.error <= mpmath.mpf(10) ** -30
        assert abs(spec.fixed_point.spread * sigma_w**2 - root) <= mpmath.mpf(10) ** -29


def test_an_eigenvalue_short_of_its_digits_is_recomputed_with_more(monkeypatch):
    """Where an eigenvalue's terms cancel (sin at gamma = 24, B = 8, eps = 1e-3: a backward M eigenvalue of
    -0.0190 from terms of 690), it fell short of the digits asked and spectrum raised PrecisionError
    after a minute (at dps 8; at dps 5 for eps = 0.05).  The spectrum is now computed once more with the
    missing digits plus two.  Here the first pass is made 3 digits short by hand (the real cases take
    minutes); the second must be asked for more digits, and its values must hold against a computation
    at 10 more digits."""
    from bnsym.estimate import Estimate
    from bnsym.meanfield import linearization

    real = linearization._eigenvalue_estimates
    asked = []

    def first_pass_short(settings):
        state, values, method = real(settings)
        asked.append(settings.dps)
        if len(asked) == 1:
            values = {k: Estimate(v.value, v.error + mpmath.mpf(10) ** (3 - settings.dps) * max(1, abs(v.value)),
                                  meaning=v.meaning) for k, v in values.items()}
        return state, values, method

    monkeypatch.setattr(linearization, "_eigenvalue_estimates", first_pass_short)
    sp = bnsym.spectrum("tanh", 8, gamma="1.3", dps=10)
    assert asked[0] == 10 and asked[1] >= 15 and len(asked) == 2
    _, reference, _ = real(make_settings("tanh", 8, gamma="1.3", dps=20))
    for e in sp.forward + sp.backward:
        assert e.error <= mpmath.mpf(10) ** -10 * max(1, abs(e.value))
        assert abs(e.value - reference[(e.operator, e.subspace)].value) <= e.error + mpmath.mpf(10) ** -18
