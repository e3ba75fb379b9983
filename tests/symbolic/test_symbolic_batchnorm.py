"""The batch-norm map and its Jacobian in sympy: structural facts proven, and numeric cross-checks."""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp

from bnsym.errors import BnsymInputError
from bnsym.symbolic import (
    batchnorm_map,
    centring_residual,
    jacobian,
    normalization_jacobian,
    normalization_jacobian_residual,
    pre_activations,
    scale_invariance_residual,
    structural_facts,
    vanishes,
)
from bnsym.symbolic.batchnorm import centring, normalization, squared_scale

GAMMA = sp.Symbol("gamma", positive=True)
BETA = sp.Symbol("beta", real=True)
EPS = sp.Symbol("epsilon", positive=True)


@pytest.mark.parametrize(("b", "act"), [(2, "relu"), (3, "relu"), (5, "relu"), (4, "tanh")])
def test_structural_facts_at_eps_zero(b, act):
    facts = structural_facts(b, act, 0, gamma=GAMMA, beta=BETA)
    assert facts == {
        "J 1 = 0 (centring)": True,
        "dN/dh = sqrt(B)/S (G - kappa^2 u u^T)": True,
        "J h = 0 (scale invariance)": True,
    }


@pytest.mark.parametrize("b", [3, 5])
def test_facts_with_symbolic_eps(b):
    assert vanishes(centring_residual(b, "relu", EPS, gamma=GAMMA, beta=BETA), b, EPS)
    assert vanishes(normalization_jacobian_residual(b, EPS), b, EPS)
    # scale invariance is lost once eps > 0: the proof must fail
    assert not vanishes(scale_invariance_residual(b, "identity", EPS), b, EPS)


@pytest.mark.slow  # -m extended (5 to 7 s each): test_structural_facts_at_eps_zero and test_facts_with_symbolic_eps
@pytest.mark.extended  # prove the same facts at B = 5 in the default run
@pytest.mark.parametrize("b", [6, 7, 8])
def test_structural_facts_up_to_eight(b):
    assert all(structural_facts(b, "relu", 0, gamma=GAMMA, beta=BETA).values())
    assert vanishes(normalization_jacobian_residual(b, EPS), b, EPS)


def test_vanishes_detects_false_claims():
    b = 4
    h = pre_activations(b)
    n_jac = normalization_jacobian(b, 0, h)
    s = sp.sqrt(squared_scale(b, 0, h))
    wrong = [
        sp.sqrt(b) / s * (sp.eye(b) - (centring(b) * h) * (centring(b) * h).T / s**2),  # I instead of G
        sp.sqrt(b) / s * centring(b),  # the u u^T term forgotten
    ]
    for claim in wrong:
        assert not vanishes(n_jac - claim, b)
    # at eps > 0 the kappa^2 matters: kappa = 1 is wrong
    h_eps = normalization_jacobian(b, EPS, h)
    s_eps = sp.sqrt(squared_scale(b, EPS, h))
    g_h = centring(b) * h
    kappa_one = sp.sqrt(b) / s_eps * (centring(b) - g_h * g_h.T / squared_scale(b, 0, h))
    assert not vanishes(h_eps - kappa_one, b, EPS)


def _numeric_batchnorm(h, phi, gamma, beta, eps):
    centred = h - h.mean()
    return phi(gamma * centred / np.sqrt(centred.var() + eps) + beta)


def test_map_and_jacobian_match_numpy_and_finite_differences():
    b, gamma, beta, eps = 5, 1.3, 0.2, 1e-3
    rng = np.random.default_rng(7)
    point = rng.normal(size=b)
    h = pre_activations(b)
    subs = dict(zip(h, point))
    bn = batchnorm_map(b, "tanh", sp.Rational(1, 1000), gamma=sp.Rational(13, 10), beta=sp.Rational(1, 5))
    value = np.array([float(e.subs(subs)) for e in bn])
    assert np.allclose(value, _numeric_batchnorm(point, np.tanh, gamma, beta, eps), rtol=0, atol=1e-13)
    jac = jacobian(b, "tanh", sp.Rational(1, 1000), gamma=sp.Rational(13, 10), beta=sp.Rational(1, 5))
    jac_value = np.array(jac.subs(subs).evalf(), dtype=float)
    step = 1e-6
    fd = np.empty((b, b))
    for j in range(b):
        e = np.zeros(b)
        e[j] = step
        fd[:, j] = (_numeric_batchnorm(point + e, np.tanh, gamma, beta, eps) - _numeric_batchnorm(point - e, np.tanh, gamma, beta, eps)) / (2 * step)
    assert np.allclose(jac_value, fd, rtol=0, atol=1e-8)


def test_normalization_has_norm_sqrt_b_and_mean_zero():
    b = 6
    n = normalization(b)
    point = dict(zip(pre_activations(b), [sp.Rational(k * k - 3, 7) for k in range(b)]))
    values = [v.subs(point) for v in n]
    assert sp.simplify(sum(values)) == 0
    assert sp.simplify(sum(v**2 for v in values) - b) == 0


def test_bad_batch_sizes_are_refused():
    with pytest.raises(BnsymInputError, match="batch_size"):
        batchnorm_map(1)
    with pytest.raises(BnsymInputError, match="batch_size"):
        jacobian(sp.Symbol("B"))
    with pytest.raises(BnsymInputError, match="eps"):
        batchnorm_map(3, eps=-1)
