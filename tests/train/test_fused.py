"""The fused batch-norm and SGD kernels of bnsym.train.fused against NumPy written from the formulas."""

from __future__ import annotations

import numpy as np
import pytest

from bnsym.errors import BnsymInputError
from bnsym.train.fused import normalize_backward, normalize_forward
from bnsym.train.network import Network, NetworkConfig
from bnsym.train.optim import SGD, RMSProp


def _reference(h, gamma, beta, eps, relu, dy):
    """Two-pass float64 batch norm per group, and its backward pass ``gamma inv (dy - mean dy - xhat mean(dy xhat))``."""
    h = h.astype(np.float64)
    mean = h.mean(axis=1, keepdims=True)
    centred = h - mean
    var = (centred**2).mean(axis=1, keepdims=True)
    inv = 1 / np.sqrt(var + eps)
    xhat = centred * inv
    y = gamma * xhat + beta
    out = np.maximum(y, 0) if relu else y
    dy = dy * (y > 0) if relu else dy
    dh = gamma * inv * (dy - dy.mean(axis=1, keepdims=True) - xhat * (dy * xhat).mean(axis=1, keepdims=True))
    return centred, out, mean[:, 0], var[:, 0], dh, (dy * xhat).sum(axis=(0, 1)), dy.sum(axis=(0, 1))


@pytest.mark.parametrize("dtype, rtol", [(np.float64, 1e-12), (np.float32, 2e-5)])
@pytest.mark.parametrize("relu", [True, False])
def test_the_fused_batch_norm_matches_the_two_pass_formulas(dtype, rtol, relu):
    rng = np.random.default_rng(3)
    groups, b, n = 3, 5, 7
    # a mean 300 times the spread: the one-pass shifted sums must not cancel it away
    h = (300 + rng.standard_normal((groups, b, n))).astype(dtype)
    gamma = (1 + 0.3 * rng.standard_normal(n)).astype(dtype)
    beta = (0.2 * rng.standard_normal(n)).astype(dtype)
    dy = rng.standard_normal((groups, b, n)).astype(dtype)
    centred, out, mean, var, dh, g_gamma, g_beta = _reference(h, gamma, beta, 1e-3, relu, dy.astype(np.float64))
    stats = [np.empty((groups, n), dtype) for _ in range(4)]
    work, result = h.copy(), np.empty_like(h)
    normalize_forward(work, gamma, beta, 1e-3, relu, result, *stats)
    np.testing.assert_allclose(stats[0], mean, rtol=rtol)
    np.testing.assert_allclose(stats[1], var, rtol=50 * rtol if dtype == np.float32 else rtol)
    np.testing.assert_allclose(work, centred, atol=400 * rtol)  # h rounded at its own size (300)
    np.testing.assert_allclose(result, out, atol=10 * rtol)
    grad, gg, gb = dy.copy(), np.empty(n, dtype), np.empty(n, dtype)
    normalize_backward(grad, work, result, stats[2], stats[3], relu, gg, gb)
    np.testing.assert_allclose(grad, dh, atol=50 * rtol * np.abs(dh).max())
    np.testing.assert_allclose(gg, g_gamma, atol=50 * rtol * np.abs(g_gamma).max())
    np.testing.assert_allclose(gb, g_beta, atol=50 * rtol * np.abs(g_beta).max())


def test_a_nan_pre_activation_stays_nan_through_relu():
    """A diverged layer must not be masked by relu (divergence is read from the loss)."""
    h = np.array([[[np.nan, 1.0], [2.0, 3.0], [1.0, 4.0]]])
    out = np.empty_like(h)
    stats = [np.empty((1, 2)) for _ in range(4)]
    normalize_forward(h, np.ones(2), np.zeros(2), 1e-3, True, out, *stats)
    assert np.isnan(out[:, :, 0]).all() and np.isfinite(out[:, :, 1]).all()


def test_a_zero_variance_column_at_eps_0_gives_a_nan_loss_not_an_exception():
    """Dead units make a column constant; at eps = 0 its 1/sqrt(var) is inf, as in NumPy (read as divergence)."""
    net = Network(NetworkConfig(input_dim=3, num_classes=2, depth=2, width=4, eps=0.0, dtype="float64"), seed=0)
    net.parameters[0][:, 1] = 0  # W1's second column: h[:, 1] = 0 for every sample
    loss, _ = net.loss_and_gradients(np.random.default_rng(0).standard_normal((6, 3)), np.array([0, 1] * 3))
    assert np.isnan(loss)


def test_sgd_updates_float32_parameters_through_their_views():
    p = [np.zeros((2, 3), np.float32), np.ones(3, np.float32)]
    g = [np.full((2, 3), 2.0, np.float32), np.array([1.0, -1.0, 0.5], np.float32)]
    sgd = SGD(p, lr=0.25, momentum=0.5)
    sgd.step(g)
    sgd.step(g)
    # v1 = g, v2 = 1.5 g; p = p0 - 0.25 (v1 + v2) = p0 - 0.625 g
    np.testing.assert_allclose(p[0], -0.625 * g[0])
    np.testing.assert_allclose(p[1], 1 - 0.625 * g[1])
    assert p[0].dtype == np.float32


@pytest.mark.parametrize("optimizer", [SGD, RMSProp])
def test_parameters_that_cannot_be_updated_in_place_are_refused(optimizer):
    strided = np.zeros((4, 4))[:, ::2]
    with pytest.raises(BnsymInputError, match=r"parameters\[1\] must be writeable and C-contiguous"):
        optimizer([np.zeros(2), strided], lr=0.1)
    with pytest.raises(BnsymInputError, match=r"parameters\[1\] must be writeable and C-contiguous"):
        optimizer([np.zeros(2), np.zeros((3, 2), order="F")], lr=0.1)
    for dtype in (np.int64, np.float16):
        with pytest.raises(BnsymInputError, match=rf"parameters\[0\] must be a float32 or float64 array, got {np.dtype(dtype)}"):
            optimizer([np.zeros(2, dtype)], lr=0.1)
    opt = optimizer([np.zeros(2), np.zeros((2, 3))], lr=0.1)
    with pytest.raises(BnsymInputError, match="1 gradients were given for 2 parameters"):
        opt.step([np.zeros(2)])
    with pytest.raises(BnsymInputError, match=r"gradients\[1\] has shape \(3, 2\), its parameter \(2, 3\)"):
        opt.step([np.zeros(2), np.zeros((3, 2))])  # the right size, transposed


def test_rmsprop_in_float32_follows_its_formula():
    """The fused loop runs in float32 for float32 parameters: two steps against the formula in float64."""
    rng = np.random.default_rng(5)
    p0, grads = rng.standard_normal(1000), [rng.standard_normal(1000) for _ in range(2)]
    p = [p0.astype(np.float32)]
    opt = RMSProp(p, lr=1e-3, rho=0.9, delta=1e-8)
    s, expected = np.zeros(1000), p0.copy()
    for g in grads:
        opt.step([g.astype(np.float32)])
        s = 0.9 * s + 0.1 * g * g
        expected -= 1e-3 * g / (np.sqrt(s) + 1e-8)
    assert p[0].dtype == np.float32
    np.testing.assert_allclose(p[0], expected, rtol=0, atol=1e-6 * np.abs(p0).max())
