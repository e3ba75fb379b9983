"""The alpha-ReLU transition (docs/theory.md section 16) against the engine, the scan and real networks.

* the closed-form forward eigenvalues of relu_power(alpha) against bnsym.spectrum at integer
  alpha (the engine's closed forms) and, through the moments they are built from, against the
  engine's sphere quadrature at non-integer alpha;
* alpha_transition(B) inside the brackets of the symmetry-breaking scan (B = 8: (1.5, 1.75);
  B = 32: (1, 1.25)), lambda_L(alpha*) = 1, recomputation at dps + 10;
* the one-layer response of real width-1024 networks on each side of alpha*(8);
* bad input and the CLI.
"""

from __future__ import annotations

import json
import math

import mpmath
import numpy as np
import pytest

import bnsym
from bnsym.activations import activation
from bnsym.cli import main
from bnsym.errors import BnsymError, BnsymInputError
from bnsym.meanfield.transition import (
    alpha_transition,
    power_forward_eigenvalues,
    transition_scan,
)
from bnsym.numerics.closed_forms import half_moment, orthant_moment
from bnsym.numerics.sphere import Integrand, SphereLaw

from statistical import SEED_OFFSET as MASTER_SEED  # BNSYM_TEST_SEED, read in one place


@pytest.mark.parametrize("alpha", [1, 2, 3])
@pytest.mark.parametrize("b", [5, 8, 32])
def test_closed_form_eigenvalues_equal_the_engine_spectrum(alpha, b):
    spec = bnsym.spectrum("relu" if alpha == 1 else f"relu_power({alpha})", b, dps=20)
    lam_l, lam_m = power_forward_eigenvalues(alpha, b, 30)
    assert abs(lam_l - spec.eigenvalue("forward", "L").value) < 1e-18
    assert abs(lam_m - spec.eigenvalue("forward", "M").value) < 1e-18


@pytest.mark.slow
def test_non_integer_moments_equal_the_sphere_quadrature():
    """relu_power(1.6) at B = 8: the five moments of lambda_L and lambda_M, closed form against the
    engine's nested angle quadrature (tanh-sinh panels at the kink)."""
    a, b, wd = mpmath.mpf("1.6"), 8, 16
    with mpmath.workdps(wd):
        law = SphereLaw(b, wd)
        act = activation("relu_power(1.6)")
        one, zero = mpmath.mpf(1), mpmath.mpf(0)
        f, f1, f2 = (Integrand(act, one, zero, power=k) for k in (0, 1, 2))
        pairs = law.expect_pairs([(f, f), (f2, f), (f1, f1)], mpmath.mpf(10) ** -10)
        for value, (p, q) in zip(pairs, [(a, a), (a + 2, a), (a + 1, a + 1)]):
            assert abs(value.value - orthant_moment(p, q, -1 / mpmath.mpf(b - 1), b - 1)) <= value.error + 1e-13
        singles = law.expect_with_norms([f, f1], mpmath.mpf(10) ** -12)
        assert abs(singles[0][1].value - half_moment(2 * a, b - 1)) < 1e-11
        assert abs(singles[1][1].value - half_moment(2 * a + 2, b - 1)) < 1e-11


@pytest.mark.parametrize("b, lo, hi, brief", [(8, 1.5, 1.75, 1.619), (32, 1.0, 1.25, 1.082), (5, 3.5, 4.5, 3.904),
                                              (16, 1.0, 1.5, 1.194)])
def test_transition_inside_the_scan_bracket(b, lo, hi, brief):
    """The scan of notebooks/signal_propagation.ipynb (B = 8, 32) and the brief's table (3 decimals)."""
    t = alpha_transition(b)
    assert lo < t.value < hi
    assert abs(t.value - brief) < 1e-3
    assert t.error < 1e-15 * t.value
    lam_l, lam_m = power_forward_eigenvalues(t.value, b, 40)
    assert abs(lam_l - 1) < 1e-14 and lam_m < 1  # L crosses, M stays below
    (_, below, _), (_, above, _) = transition_scan(b, [lo, hi])
    assert below < 1 < above


@pytest.mark.slow
def test_engine_spectrum_is_one_at_the_transition():
    """bnsym.spectrum (quadrature, tanh-sinh panels at the kink: about 15 s of CPU) at alpha*(8) gives
    lambda_L = 1 within its error (measured 0.999999999999998 +- 4.9e-11 at dps = 6)."""
    t = alpha_transition(8)
    spec = bnsym.spectrum(f"relu_power({mpmath.nstr(t.value, 15)})", 8, dps=6)
    lam = spec.eigenvalue("forward", "L")
    assert abs(lam.value - 1) <= lam.error + 1e-6  # 1e-6: the promised dps = 6


def test_recomputation_at_more_digits_agrees():
    low, high = alpha_transition(8, dps=15), alpha_transition(8, dps=25)
    assert abs(low.value - high.value) <= low.error + high.error
    assert high.error < 1e-25


def test_transition_tends_to_one_at_large_batch():
    """lambda_L -> alpha as B -> inf (the brief's large-B limit): alpha* decreases towards 1."""
    values = [alpha_transition(b, dps=10).value for b in (10, 64, 1000)]
    assert values[0] > values[1] > values[2] > 1 and values[2] - 1 < 5e-3


def _response(alpha, b, *, width, seeds, seed, delta=1e-3):
    """One-layer forward response along L of real networks at Sigma*(alpha) (the unbiased estimator of
    tests/meanfield/test_spectrum.py: E[Sigma^1 | Sigma^0] = V(Sigma^0) at any width)."""
    from bnsym.subspaces import subspace_direction

    with mpmath.workdps(20):
        a = mpmath.mpf(alpha)
        q, c = half_moment(2 * a, b - 1), orthant_moment(a, a, -1 / mpmath.mpf(b - 1), b - 1)
    star = np.full((b, b), float(c)) + np.eye(b) * float(q - c)
    p = subspace_direction(b, "L")
    step = delta * float(q - c)
    runs = [bnsym.simulate(f"relu_power({alpha})", b, 1, width, seeds=seeds, seed=seed, input=("gram", star + sign * step * p),
                           fit_layers=(0, 1)) for sign in (1, -1)]
    diff = runs[0].grams[:, 1] - runs[1].grams[:, 1]
    return np.einsum("ij,sij->s", p, diff) / (2 * step)


@pytest.mark.parametrize("alpha", [1.3, 2.0])
def test_real_networks_on_each_side_of_the_transition(alpha):
    """B = 8 (alpha* = 1.6193): at alpha = 1.3 the L response of a real width-1024 network is below 1,
    at alpha = 2 above, and each equals the closed-form lambda_L.  Mean over 64 networks, 4.5 standard
    errors: P(|t_63| > 4.5) = 3e-5 per alpha by design; the estimator has no finite-width bias (only
    O(delta^2) = 1e-6 relative)."""
    b = 8
    ratios = _response(alpha, b, width=1024, seeds=64, seed=MASTER_SEED + 17)
    mean, stderr = ratios.mean(), ratios.std(ddof=1) / math.sqrt(len(ratios))
    lam_l = float(power_forward_eigenvalues(alpha, b, 20)[0])
    assert abs(mean - lam_l) <= 4.5 * stderr, (mean, stderr, lam_l)
    assert stderr < 0.01
    assert (mean - 4.5 * stderr > 1) if alpha > alpha_transition(b, dps=8).value else (mean + 4.5 * stderr < 1)


def test_no_transition_at_b4_and_bad_input():
    with pytest.raises(BnsymError, match="no alpha-ReLU transition at B = 4"):
        alpha_transition(4)
    for kwargs, word in [({"batch_size": 3}, "batch_size"), ({"batch_size": "inf"}, "batch_size"),
                         ({"batch_size": 8, "alpha_max": 1}, "alpha_max"), ({"batch_size": 8, "dps": 0}, "dps")]:
        with pytest.raises(BnsymInputError) as info:
            alpha_transition(**kwargs)
        assert word in str(info.value) and "\n" not in str(info.value)


def test_cli_transition_and_verdict(capsys):
    assert main(["symmetry-breaking", "--transition", "-B", "8,32", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    values = [float(t["alpha"]) for t in payload["transitions"]]
    assert abs(values[0] - 1.6192638) < 1e-6 and 1 < values[1] < 1.25
    assert main(["symmetry-breaking", "relu", "-B", "8", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["broken"] is False and payload["bsb2"] is None
    assert main(["symmetry-breaking", "--transition", "-B", "4"]) == 1
    assert "no alpha-ReLU transition" in capsys.readouterr().err
