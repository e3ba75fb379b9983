"""Optimisers and the training loop of bnsym.train."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bnsym.errors import BnsymInputError
from bnsym.train.datasets import Dataset
from bnsym.train.optim import RMSProp, SGD, make_optimizer
from bnsym.train.training import build, fit


def test_sgd_momentum_and_rmsprop_match_their_formulas():
    g = [np.array([1.0, -2.0]), np.array([0.5])]
    p = [np.zeros(2), np.ones(1)]
    sgd = SGD(p, lr=0.1, momentum=0.9)
    sgd.step([x.copy() for x in g])
    sgd.step([x.copy() for x in g])
    # v1 = g, v2 = 0.9 g + g; p = -0.1 (v1 + v2)
    np.testing.assert_allclose(p[0], -0.1 * 2.9 * g[0])
    plain = [np.zeros(2)]
    SGD(plain, lr=0.5).step([g[0].copy()])
    np.testing.assert_allclose(plain[0], -0.5 * g[0])
    q = [np.zeros(2)]
    rms = RMSProp(q, lr=0.01, rho=0.9, delta=1e-8)
    rms.step([g[0]])
    s = 0.1 * g[0] ** 2
    np.testing.assert_allclose(q[0], -0.01 * g[0] / (np.sqrt(s) + 1e-8))


@pytest.mark.parametrize("kwargs", [{"lr": 0}, {"lr": -1}, {"lr": math.nan}, {"lr": 0.1, "momentum": 1.0}])
def test_bad_optimizer_settings_are_refused(kwargs):
    with pytest.raises(BnsymInputError):
        make_optimizer("sgd", [np.zeros(1)], **kwargs)
    with pytest.raises(BnsymInputError, match="optimizer"):
        make_optimizer("adam", [np.zeros(1)], 0.1)


def _blobs(n=600, d=6, classes=3, seed=0):
    """Linearly separable Gaussian blobs."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((classes, d)) * 3
    y = rng.integers(0, classes, n)
    x = (centres[y] + rng.standard_normal((n, d))).astype(np.float32)
    return Dataset("blobs", x[: n * 5 // 6], y[: n * 5 // 6], x[n * 5 // 6:], y[n * 5 // 6:], classes)


@pytest.mark.parametrize("optimizer, lr, sub_batch", [("sgd", 0.05, None), ("rmsprop", 1e-3, 5), ("sgd", 0.05, 5)])
def test_a_shallow_network_learns_separable_blobs(optimizer, lr, sub_batch):
    data = _blobs()
    net, opt = build(data, depth=2, width=32, batch_size=20, lr=lr, optimizer=optimizer, momentum=0.5 if optimizer == "sgd" else 0.0,
                     sub_batch=sub_batch)
    result = fit(net, opt, data, epochs=3, batch_size=20)
    assert not result.diverged
    assert result.test_accuracy > 0.9
    assert set(result.grad_norms) == {"init", "after_first_step", "final"}
    assert all(len(v) == 3 and np.all(np.isfinite(v)) for v in result.grad_norms.values())
    assert result.steps == 3 * (500 // 20)
    assert len(result.history) == 3


def test_divergence_is_reported_not_raised():
    data = _blobs()
    net, opt = build(data, depth=3, width=16, batch_size=20, lr=1e30, batch_norm=False)
    result = fit(net, opt, data, epochs=2, batch_size=20)
    assert result.diverged
    assert math.isnan(result.test_accuracy)
    assert result.as_dict()["test_loss"] is None  # JSON-safe


def test_bad_training_arguments_are_refused():
    data = _blobs()
    with pytest.raises(BnsymInputError, match="sub_batch"):
        build(data, depth=2, width=4, batch_size=10, lr=0.1, sub_batch=4)
    with pytest.raises(BnsymInputError, match="batch_size"):
        build(data, depth=2, width=4, batch_size=10_000, lr=0.1)
    net, opt = build(data, depth=2, width=4, batch_size=10, lr=0.1)
    with pytest.raises(BnsymInputError, match="epochs"):
        fit(net, opt, data, epochs=0, batch_size=10)


def test_one_step_shrinks_the_dynamic_range_of_a_deep_network():
    from bnsym.train.first_steps import dynamic_range, fitted_rate, one_step

    data = _blobs(n=1200, d=20)
    net, opt = build(data, depth=30, width=64, batch_size=64, lr=1.0, dtype="float64")
    result = one_step(net, opt, data, steps=2, batch_size=64)
    assert result.norms.shape == (3, 30)
    # gradients explode towards the input at initialisation at the mean-field rate lambda_G(B = 64)
    # of the core engine (finite width 64 and one seed: a loose band)
    from bnsym import gradient_explosion_rate

    theory = float(gradient_explosion_rate("relu", 64, eps=1e-3).value)
    assert abs(result.rate_at_init - theory) < 0.1
    assert result.dynamic_range[0] > 100
    # one large step moves the early layers' weights enough to settle the gradients
    assert result.dynamic_range[1] < result.dynamic_range[0] / 5
    assert dynamic_range([1.0, 4.0, 2.0]) == 4.0
    assert fitted_rate([8.0, 4.0, 2.0]) == pytest.approx(4.0)


@pytest.mark.slow
def test_depth_5_reaches_85_percent_on_fashion_mnist_in_two_epochs():
    from bnsym.train.datasets import SYSTEM_DIRECTORIES, load_dataset

    import os

    if not os.path.isdir(SYSTEM_DIRECTORIES["fashion-mnist"]):
        pytest.skip("apt-get install dataset-fashion-mnist")
    data = load_dataset("fashion-mnist")
    net, opt = build(data, depth=5, width=384, batch_size=128, lr=0.02, momentum=0.9)
    result = fit(net, opt, data, epochs=2, batch_size=128)
    assert result.test_accuracy >= 0.85
