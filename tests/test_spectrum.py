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
@pytest.mark.parametrize("b", [4, 8, pytest.param(32, marks=pytest.mark.slow)])
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
        (dict(activation="relu", batch_size=math.inf), "batch_size"),
        (dict(activation="relu", batch_size=8, eps=0.001), "eps"),
        (dict(activation="relu", batch_size=8, dps=0), "dps"),
        (dict(activation="relu", batch_size=8, gamma=0), "gamma"),
    ],
)
def test_bad_input(kwargs, word):
    with pytest.raises(BnsymInputError, match=word):
        spectrum(**kwargs)


# --------------------------------------------------------------------------- simulation
def _far_input(b, subspace):
    """A Gram matrix far from BSB1 whose deviation lies in ``subspace``:
    L: orthogonal inputs of squared norms spread over [0.5, 2]; M: two equal blocks
    (correlation 0.9 within, 0.1 across; unit norms), whose L part is zero by symmetry."""
    if subspace == "L":
        return np.diag(np.linspace(0.5, 2.0, b))
    half = np.arange(b) < b // 2
    gram = np.where(half[:, None] == half[None, :], 0.9, 0.1)
    np.fill_diagonal(gram, 1.0)
    return gram


def _simulated_rates(activation, b, subspace, *, width=1024, depth=40, burn_in=8, seeds=6, top=10, backward_seeds=8):
    """Measured (forward, backward) rates on ``subspace`` and the spectrum, from bnsym.simulate.

    Forward: from the far input, least-squares slope of X_{l+1} on X_l over layers
    burn_in..depth (after the nonlinear transient the finite-width fluctuations keep
    feeding X, and E[Sigma^{l+1} | Sigma^l] = V(Sigma^l) exactly).  Backward: BSB1 input
    (orthogonal), output gradients with Gram G + 0.9 P (P in ``subspace``), slope of the
    normalised subspace part of Pi^{l-1} on that of Pi^l over the top ``top`` layers.
    """
    from bnsym.montecarlo.rates import backward_rate, forward_rate, seeded_gradient

    spec = spectrum(activation, b, dps=10)
    fp = spec.fixed_point
    star = fp.array()
    sim = bnsym.simulate(activation, b, depth, width, seeds=seeds, input=("gram", _far_input(b, subspace)))
    forward = forward_rate(sim.grams, star, subspace, (burn_in, depth))
    sim = bnsym.simulate(activation, b, top + 3, width, seeds=backward_seeds, input="orthogonal",
                         output_gradient=seeded_gradient(b, subspace))
    backward = backward_rate(sim.gradient_grams, subspace, (3, top + 3))
    return spec, forward, backward


def _check_within_3_sigma(spec, forward, backward, subspace):
    for measured, op in ((forward, "forward"), (backward, "backward")):
        if measured is None:
            continue
        lam = float(spec.eigenvalue(op, subspace).value)
        lo, hi = measured.interval(3)
        assert lo <= lam <= hi, (op, subspace, lam, measured.value, measured.stderr)


def test_simulated_rates_fast_representative():
    """tanh, B = 8, L subspace, width 1024: forward and backward rates within 3 sigma."""
    spec, forward, backward = _simulated_rates("tanh", 8, "L", depth=20, seeds=4, top=6, backward_seeds=4)
    _check_within_3_sigma(spec, forward, backward, "L")


#: Cases where the far-input forward measurement is biased (not the eigenvalue: see below).
_CONTAMINATED = {("tanh", 32, "M"), ("gelu", 32, "M"), ("relu", 32, "M")}
_CONTAMINATION = (
    "far-input forward M rate biased at B = 32 (width 1024, 6 seeds; measured 2026-11-25 and 2026-12-01): "
    "tanh 0.890 +- 0.003 (lambda_M = 0.909), gelu 0.710 +- 0.010 (lambda_M = 0.670), relu 0.695 +- 0.002 "
    "(lambda_M = 0.681; 0.689 +- 0.003 with another input realisation, so its earlier pass was marginal).  "
    "The slope of X_{l+1} on X_l mixes the nonlinear transient with finite-width fluctuations of the slow "
    "subspaces (tanh: M itself; gelu, relu: L, lambda_L = 0.988, 0.931, lambda_L^2 > lambda_M) fed into M by "
    "the quadratic terms of V.  The eigenvalues agree with a 4x10^5-sample finite difference of the sampled map "
    "(tanh 0.894 +- 0.024, gelu 0.660 +- 0.021) and with the one-layer antithetic response of the same networks "
    "(test_forward_eigenvalue_is_the_one_layer_response_of_a_real_network).  Measured: "
)


@pytest.mark.slow
@pytest.mark.parametrize("subspace", ["L", "M"])
@pytest.mark.parametrize("b", [8, 32])
@pytest.mark.parametrize("activation", ["tanh", "relu", "gelu"])
def test_simulated_rates_match_eigenvalues(activation, b, subspace):
    spec, forward, backward = _simulated_rates(activation, b, subspace)
    _check_within_3_sigma(spec, None, backward, subspace)  # the backward check holds everywhere
    if (activation, b, subspace) in _CONTAMINATED:
        lo, hi = forward.interval(3)
        lam = float(spec.eigenvalue("forward", subspace).value)
        if not lo <= lam <= hi:
            pytest.xfail(_CONTAMINATION + f"{forward.value:.4f} +- {forward.stderr:.4f} against {lam:.4f}")
    _check_within_3_sigma(spec, forward, None, subspace)


def _one_layer_response(activation, b, subspace, *, width=1024, seeds=24, delta=1e-3):
    """Per-seed ``<P, Sigma^1_+ - Sigma^1_-> / (2 t)`` of a real finite-width network.

    Two inputs with Gram matrices ``Sigma* +- t P`` (``P`` a unit-Frobenius direction in
    ``subspace``, ``t = delta (q* - c*)``)
    go through the same weights (same seed, same input frame): E[Sigma^1 | Sigma^0] = V(Sigma^0)
    holds exactly at any width, so the mean over seeds estimates the central difference of the
    mean-field map along ``P``, i.e. the forward eigenvalue (up to O(delta^2)), without the
    nonlinear cross-talk a far input brings.  Common weights cancel most of the finite-width noise.
    """
    from bnsym.subspaces import subspace_direction

    fp = bnsym.fixed_point(activation, b, dps=10)
    star = fp.array()
    p = subspace_direction(b, subspace)
    step = delta * float(fp.spread)
    runs = [bnsym.simulate(activation, b, 1, width, seeds=seeds, input=("gram", star + sign * step * p),
                           fit_layers=(0, 1)) for sign in (1, -1)]
    diff = runs[0].grams[:, 1] - runs[1].grams[:, 1]
    return np.einsum("ij,sij->s", p, diff) / (2 * step)


@pytest.mark.parametrize("activation, b, subspace", [("tanh", 32, "M"), ("gelu", 32, "M"), ("relu", 32, "M"), ("gelu", 32, "L"), ("relu", 8, "M")])
def test_forward_eigenvalue_is_the_one_layer_response_of_a_real_network(activation, b, subspace):
    """The forward eigenvalues against finite-width simulation without the far-input protocol's bias
    (see _CONTAMINATION): the M eigenvalues of tanh, gelu and relu at B = 32 lie in the 3-sigma interval."""
    ratios = _one_layer_response(activation, b, subspace)
    mean, stderr = ratios.mean(), ratios.std(ddof=1) / math.sqrt(len(ratios))
    lam = float(spectrum(activation, b, dps=10).eigenvalue("forward", subspace).value)
    assert abs(mean - lam) <= 3 * stderr, (mean, stderr, lam)
    assert stderr < 0.02 * lam  # the check is sharp enough to tell 0.67 from 0.71
