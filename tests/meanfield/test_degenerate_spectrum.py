"""The spectrum at the degenerate point past the critical eps (docs/theory.md section 15.5)
against independent references:

* forward, at a kink: central differences of the exact one-batch map at eps > 0 (the Laplace
  map of section 15.4) along the BSB1 ray ``Sigma = t G``, small ``t``;
* phi differentiable at beta: every eigenvalue is ``sigma_w^2 gamma^2 phi'(beta)^2 / eps`` with
  ``phi'`` by numerical differentiation;
* backward, at a kink: the operator ``(sigma_w^2/eps) E[G D Pi D G]`` sampled over the sign
  patterns of a BSB1 Gaussian;
* consistency with lambda_G and the critical eps, and the dps + 10 recomputation.
"""

import math

import mpmath
import numpy as np
import pytest

import bnsym
from bnsym.meanfield.laplace import laplace_map
from bnsym.meanfield.results import make_settings
from statistical import seed, within


def _directions(b):
    g = mpmath.eye(b) - mpmath.ones(b, b) / b
    v = mpmath.zeros(b, b)
    v[0, 0], v[2, 2] = 1, -1
    x, y = mpmath.zeros(b, 1), mpmath.zeros(b, 1)
    x[0], x[2], y[1], y[3] = 1, -1, 1, -1
    return {"G": g, "L": g * v * g, "M": x * y.T + y * x.T}


@pytest.mark.parametrize("activation, b, gamma", [("relu", 6, 1), ("leaky_relu(0.2)", 5, "-1.3")])
def test_forward_eigenvalues_are_the_jacobian_of_the_exact_map_along_the_bsb1_ray(activation, b, gamma):
    """The map is homogeneous of degree 1 near ``Sigma = 0``; its Jacobian at ``t G`` (``t = 1e-9``,
    step ``1e-13``) is the spectrum up to ``O(t / eps)`` and ``O((h/t)^2)``, both about 1e-8."""
    eps = 2 * bnsym.critical_eps(activation, b, gamma=gamma, dps=20).value
    spec = bnsym.spectrum(activation, b, gamma=gamma, eps=eps, dps=20)
    assert spec.fixed_point.regime == "degenerate"
    settings = make_settings(activation, b, gamma=gamma, eps=eps, dps=25)
    entries = [(0, 0), (1, 1), (0, 1)]
    with mpmath.workdps(settings.working_dps):
        t, h = mpmath.mpf("1e-9"), mpmath.mpf("1e-13")
        star = t * _directions(b)["G"]
        for sub, pi in _directions(b).items():
            values = []
            for sign in (1, -1):
                v, _ = laplace_map(settings, star + sign * h * pi, entries=entries)
                values.append(v[(0, 0)] + v[(1, 1)] - 2 * v[(0, 1)])
            slope = (values[0] - values[1]) / (2 * h) / (pi[0, 0] + pi[1, 1] - 2 * pi[0, 1])
            assert abs(slope - spec.eigenvalue("forward", sub).value) < 1e-6, (sub, slope)


def test_differentiable_phi_gives_S0_on_every_subspace():
    """gelu at beta = 0.3, gamma = 0.7, sigma_w = 1.3, eps = 1.5 eps_c: G, L, M forward and backward
    all equal ``sigma_w^2 gamma^2 phi'(beta)^2 / eps`` (phi' by mpmath.diff), at B = 8 and B = inf."""
    gelu = lambda x: x * (1 + mpmath.erf(x / mpmath.sqrt(2))) / 2
    with mpmath.workdps(40):
        s0_eps = mpmath.mpf("1.3") ** 2 * mpmath.mpf("0.7") ** 2 * mpmath.diff(gelu, mpmath.mpf("0.3")) ** 2
    eps = mpmath.mpf("1.5") * s0_eps
    for b in (8, math.inf):
        spec = bnsym.spectrum("gelu", b, gamma="0.7", beta="0.3", sigma_w="1.3", eps=eps, dps=30)
        assert spec.fixed_point.regime == "degenerate"
        assert len(spec.forward) == 3 and len(spec.backward) == (3 if b == 8 else 1)
        with mpmath.workdps(40):
            for e in spec.forward + spec.backward:
                assert abs(e.value - s0_eps / eps) < 1e-28, (e.operator, e.subspace, e.value)
                assert e.error < 1e-29


@pytest.mark.statistical
def test_backward_eigenvalues_against_sampled_sign_patterns():
    """``lambda_L = (sigma_w^2/eps) E[z_1^2 - z_3^2]``, ``lambda_M = -(sigma_w^2/eps) E[(z_1 - z_3)(z_2 - z_4)]``,
    ``z = G D (e_1 - e_2)``, ``D_a = gamma a_(sign of gamma s_a)``, ``s ~ N(0, G)``: 4 * 10^5 samples
    per case; 4 comparisons share the 1e-4 false-failure budget (bounded terms: the normal limit
    is accurate far into the tail at this size)."""
    rng = np.random.default_rng(seed(41))
    cases = [("relu", 8, 1.0, (0.0, 1.0)), ("leaky_relu(0.2)", 6, -1.3, (0.2, 1.0))]
    for activation, b, gamma, (a_minus, a_plus) in cases:
        eps = 2 * bnsym.critical_eps(activation, b, gamma=gamma, dps=15).value
        spec = bnsym.spectrum(activation, b, gamma=gamma, eps=eps, dps=15)
        g = rng.standard_normal((400_000, b))
        g -= g.mean(axis=1, keepdims=True)
        d = gamma * np.where(gamma * g > 0, a_plus, a_minus)
        r = np.zeros_like(d)
        r[:, 0], r[:, 1] = d[:, 0], -d[:, 1]
        z = r - r.mean(axis=1, keepdims=True)
        scale = 1 / float(eps)
        samples = {"L": scale * (z[:, 0] ** 2 - z[:, 2] ** 2), "M": -scale * (z[:, 0] - z[:, 2]) * (z[:, 1] - z[:, 3])}
        for sub, x in samples.items():
            exact = float(spec.eigenvalue("backward", sub).value)
            assert within(x.mean(), x.std(ddof=1) / math.sqrt(len(x)), exact, comparisons=4), (activation, sub, x.mean(), exact)


def test_degenerate_spectrum_is_consistent_and_keeps_its_digits():
    """Backward G is lambda_G at the degenerate point, forward G is ``eps_c / eps`` (the scale's
    contraction), and dps 30 agrees with dps 40 (ReLU, B = 32, eps = 0.5 and 3)."""
    ce = bnsym.critical_eps("relu", 32, dps=40)
    for eps in ("0.5", "3"):
        spec = bnsym.spectrum("relu", 32, eps=eps, dps=30)
        fine = bnsym.spectrum("relu", 32, eps=eps, dps=40)
        rate = bnsym.gradient_explosion_rate("relu", 32, eps=eps, dps=30)
        with mpmath.workdps(50):
            assert abs(spec.eigenvalue("backward", "G").value - rate.value) < 1e-29
            assert abs(fine.eigenvalue("forward", "G").value - ce.value / mpmath.mpf(eps)) < 1e-38
            for a, b in zip(spec.forward + spec.backward, fine.forward + fine.backward):
                assert abs(a.value - b.value) <= mpmath.mpf(10) ** -30 * max(1, abs(b.value))
