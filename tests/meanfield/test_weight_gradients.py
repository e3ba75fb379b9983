"""Weight-gradient moments (docs/theory.md section 16): m_l / m_L = lambda_G^(L - l).

* closed form for the identity network, and the engine's lambda_G powers;
* the reference trainer's per-layer weight-gradient norms at initialisation (bnsym.train.network,
  ``weight_gradient_norms``): real finite-width networks, float64, eps = 0, orthogonal inputs;
* bad input and the CLI.
"""

from __future__ import annotations

import json
import math

import mpmath
import numpy as np
import pytest

import bnsym
from bnsym.cli import main
from bnsym.errors import BnsymInputError
from bnsym.meanfield.weight_gradient_moments import weight_gradients

from statistical import SEED_OFFSET as MASTER_SEED  # BNSYM_TEST_SEED, read in one place


def test_identity_network_closed_form():
    b, depth = 12, 5
    w = weight_gradients("identity", b, depth, dps=30)
    with mpmath.workdps(40):
        lam = mpmath.mpf(b - 2) / (b - 3)
        spread = mpmath.mpf(b) / (b - 1)
        for m in w.layers:
            assert abs(m.value - lam ** (depth - m.layer)) < 1e-28
            assert abs(m.per_entry - spread * lam ** (depth - m.layer)) < 1e-28
    assert w.frobenius_ratio(1, (784, 100, 100, 100, 100, 100)) == pytest.approx(7.84 * float(lam) ** 4)


def test_relu_powers_of_the_rate_with_propagated_error():
    w = weight_gradients("relu", 32, 4, dps=20)
    rate = bnsym.gradient_explosion_rate("relu", 32, dps=25)
    with mpmath.workdps(40):
        assert abs(w.layers[0].value - rate.value**3) < 1e-18
    assert 0 < w.layers[0].error < 1e-18 and w.layers[-1].value == 1


def _trainer_norms(b, width, depth, seeds, seed):
    from bnsym.train.network import Network, NetworkConfig

    config = NetworkConfig(input_dim=width, num_classes=10, depth=depth, width=width, activation="relu", eps=0.0,
                           dtype="float64")
    rows = []
    for s in range(seeds):
        rng = np.random.default_rng([seed, s])
        q, _ = np.linalg.qr(rng.standard_normal((width, b)))
        x = q.T * math.sqrt(width)  # orthogonal samples: a BSB1 input Gram matrix
        net = Network(config, seed=int(rng.integers(2**31)))
        net.loss_and_gradients(x, rng.integers(0, 10, b))
        rows.append(net.weight_gradient_norms()[:depth] ** 2)  # readout excluded
    return np.array(rows)


@pytest.mark.slow
def test_trainer_weight_gradients_at_initialisation():
    """The reference trainer at initialisation: relu, B = 16, width 256, depth 5, 64 independent networks
    (fresh weights, orthogonal inputs, random labels).  The ratio of means E|dW^l|^2 / E|dW^5|^2, with its
    delta-method standard error, must equal lambda_G^(5 - l) within 4.5 standard errors (P(|t_63| > 4.5)
    = 3e-5 per layer, four layers: 1.2e-4 by the union bound, at most 1e-4 in practice since the layers
    share networks and are positively correlated) plus the finite-width bias: README, "How wide is
    wide", measures the per-layer gradient growth within 1% of lambda_G for B >= 6, N >= 128 (allowed
    here as (1.01^(5-l) - 1) lambda_G^(5-l)); measured for this design with 400 networks
    (2026-12-02, seed 1000): layers 1 to 4 at -0.5% +- 0.6%, +0.2% +- 0.5%, -0.1% +- 0.4%, -0.1% +- 0.3%
    (at width 128: -2.2% +- 0.7% at layer 1, so the bias shrinks with width as it should).
    Time: 1-2 s on one core; oversubscribed OpenBLAS threads can make it 20 s."""
    b, width, depth = 16, 256, 5
    rows = _trainer_norms(b, width, depth, seeds=64, seed=MASTER_SEED + 29)
    theory = weight_gradients("relu", b, depth, dps=10)
    top = rows[:, -1]
    for ell in range(1, depth):
        r = rows[:, ell - 1]
        ratio = r.mean() / top.mean()
        stderr = ((r - ratio * top) / top.mean()).std(ddof=1) / math.sqrt(len(r))
        expected = float(theory.layers[ell - 1].value)
        bias = (1.01 ** (depth - ell) - 1) * expected
        assert abs(ratio - expected) <= 4.5 * stderr + bias, (ell, ratio, stderr, expected)
    # sharp enough to exclude one power more or less of lambda_G = 1.59 at layer 1
    assert 4.5 * stderr + bias < 0.2 * expected


def test_bad_input():
    for args, word in [(("relu", 8, 0), "depth"), (("relu", 8, 2.5), "depth"), (("relu", 1, 3), "batch_size")]:
        with pytest.raises(BnsymInputError) as info:
            weight_gradients(*args)
        assert word in str(info.value) and "\n" not in str(info.value)


def test_cli_json_matches_api(capsys):
    assert main(["weight-gradients", "identity", "-B", "10", "-L", "3", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert [float(m["relative"]) for m in payload["layers"]] == pytest.approx([(8 / 7) ** 2, 8 / 7, 1], rel=1e-14)
    assert main(["weight-gradients", "relu", "-B", "10", "-L", "0"]) == 2
