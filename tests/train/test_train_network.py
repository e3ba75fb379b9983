"""The hand-written backward pass of bnsym.train.network against central finite differences."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bnsym.errors import BnsymInputError
from bnsym.train.network import Network, NetworkConfig

H = 2e-5  # finite-difference step (float64); fourth-order central stencil: error ~ H^4 f^(5) + 1e-16 / H


def _randomise(net, rng):
    """Non-trivial gamma, beta and biases so that every parameter matters."""
    for name, p in zip(net.names, net.parameters):
        if name.startswith(("gamma", "beta", "b")):
            p[...] = rng.standard_normal(p.shape) * 0.5 + (1.0 if name.startswith("gamma") else 0.0)


def _finite_differences(net, x, y):
    grads = []
    for p in net.parameters:
        fd = np.zeros_like(p)
        for idx in np.ndindex(p.shape):
            old = p[idx]
            values = []
            for step in (2 * H, H, -H, -2 * H):
                p[idx] = old + step
                values.append(net.loss_and_gradients(x, y)[0])
            p[idx] = old
            fd[idx] = (-values[0] + 8 * values[1] - 8 * values[2] + values[3]) / (12 * H)
        grads.append(fd)
    return grads


def _check(net, x, y, tol=1e-6):
    net.loss_and_gradients(x, y)
    analytic = [g.copy() for g in net.gradients]
    numeric = _finite_differences(net, x, y)
    for name, a, n in zip(net.names, analytic, numeric):
        scale = max(np.linalg.norm(a), np.linalg.norm(n))
        if scale < 1e-9:  # a gradient that vanishes identically (e.g. beta feeding a batch norm)
            continue
        err = np.linalg.norm(a - n) / scale
        assert err < tol, f"{name}: relative error {err:.3g} (|grad| {scale:.3g})"


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    depth=st.integers(1, 3),
    width=st.integers(2, 5),
    input_dim=st.integers(2, 4),
    classes=st.integers(2, 4),
    groups=st.integers(1, 3),
    group=st.integers(3, 5),  # sub-batches of 2: see test_sub_batches_of_two_pass_almost_no_gradient
    use_sub_batch=st.booleans(),
    activation=st.sampled_from(["tanh", "identity"]),
    seed=st.integers(0, 2**31 - 1),
)
def test_gradients_match_finite_differences(depth, width, input_dim, classes, groups, group, use_sub_batch,
                                            activation, seed):
    batch = groups * group if use_sub_batch else group + groups  # whole-batch statistics: any batch >= 2
    config = NetworkConfig(input_dim=input_dim, num_classes=classes, depth=depth, width=width,
                           activation=activation, dtype="float64", eps=1e-3,
                           sub_batch=group if use_sub_batch else None)
    rng = np.random.default_rng(seed)
    net = Network(config, seed=seed)
    _randomise(net, rng)
    x = rng.standard_normal((batch, input_dim))
    y = rng.integers(0, classes, batch)
    _check(net, x, y)


def test_sub_batches_of_two_pass_almost_no_gradient():
    """B = 2: xhat = +-1/sqrt(1 + eps/var), so the gradient below a batch norm is O(eps/var) (docs/theory.md
    section 5) and can fall to the finite-difference round-off floor: compare with an absolute floor too.
    """
    config = NetworkConfig(input_dim=3, num_classes=2, depth=2, width=3, activation="tanh", dtype="float64",
                           sub_batch=2)
    rng = np.random.default_rng(3)
    net = Network(config, seed=3)
    _randomise(net, rng)
    x, y = rng.standard_normal((4, 3)), rng.integers(0, 2, 4)
    net.loss_and_gradients(x, y)
    analytic = [g.copy() for g in net.gradients]
    numeric = _finite_differences(net, x, y)
    for name, a, n in zip(net.names, analytic, numeric):
        np.testing.assert_allclose(a, n, rtol=1e-6, atol=1e-10, err_msg=name)


@pytest.mark.parametrize("sub_batch", [None, 3])
def test_relu_gradients_match_finite_differences(sub_batch):
    # fixed seeds: no pre-activation lies within the step of the kink at 0
    config = NetworkConfig(input_dim=4, num_classes=3, depth=3, width=5, activation="relu", dtype="float64",
                           sub_batch=sub_batch)
    rng = np.random.default_rng(7)
    net = Network(config, seed=3)
    _randomise(net, rng)
    _check(net, rng.standard_normal((6, 4)), rng.integers(0, 3, 6))


@pytest.mark.parametrize("activation", ["tanh", "relu", "gelu"])
def test_gradients_without_batch_norm(activation):
    config = NetworkConfig(input_dim=3, num_classes=3, depth=2, width=4, activation=activation, dtype="float64",
                           batch_norm=False, sigma_b=0.3)
    rng = np.random.default_rng(11)
    net = Network(config, seed=5)
    _check(net, rng.standard_normal((5, 3)), rng.integers(0, 3, 5))


def test_general_activation_with_batch_norm_matches_finite_differences():
    config = NetworkConfig(input_dim=3, num_classes=2, depth=2, width=3, activation="gelu", dtype="float64")
    rng = np.random.default_rng(2)
    net = Network(config, seed=2)
    _randomise(net, rng)
    _check(net, rng.standard_normal((4, 3)), rng.integers(0, 2, 4))


def test_sub_batches_are_normalised_independently():
    config = NetworkConfig(input_dim=4, num_classes=3, depth=3, width=6, dtype="float64", sub_batch=4)
    whole = NetworkConfig(**{**config.as_dict(), "sub_batch": None})
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((12, 4)), rng.integers(0, 3, 12)
    _, logits = Network(config, seed=1).loss_and_gradients(x, y)
    for g in range(3):
        rows = slice(4 * g, 4 * g + 4)
        _, alone = Network(whole, seed=1).loss_and_gradients(x[rows], y[rows])
        np.testing.assert_allclose(logits[rows], alone, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("batch_norm, activation, sub_batch", [(True, "relu", None), (True, "relu", 2),
                                                           (True, "softplus", None), (False, "softplus", None)])
def test_work_arrays_kept_between_steps_do_not_leak(batch_norm, activation, sub_batch):
    """The per-layer work arrays survive between calls and are rebuilt when the batch size changes: a
    network that has seen batches of 6, 4, then 6 rows gives, every time, exactly the loss, logits and
    gradients of a fresh copy with the same parameters (which has no history)."""
    config = NetworkConfig(input_dim=3, num_classes=3, depth=3, width=5, activation=activation,
                           batch_norm=batch_norm, sub_batch=sub_batch, dtype="float64")
    rng = np.random.default_rng(2)
    reused = Network(config, seed=3)
    for batch in (6, 4, 6):
        x, y = rng.standard_normal((batch, 3)), rng.integers(0, 3, batch)
        fresh = Network(config, seed=3)
        for p, q in zip(fresh.parameters, reused.parameters):
            p[...] = q
        loss, logits = reused.loss_and_gradients(x, y)
        loss_f, logits_f = fresh.loss_and_gradients(x, y)
        assert loss == loss_f
        np.testing.assert_array_equal(logits, logits_f)
        for name, g, gf in zip(reused.names, reused.gradients, fresh.gradients):
            np.testing.assert_array_equal(g, gf, err_msg=name)
        for p, g in zip(reused.parameters, reused.gradients):
            p -= 0.1 * g  # a step, so that the next batch meets different parameters


def test_float32_stays_float32_and_running_statistics_converge():
    config = NetworkConfig(input_dim=5, num_classes=3, depth=2, width=8, bn_momentum=0.5)
    net = Network(config)
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((64, 5)) * 3 + 1).astype(np.float32)
    y = rng.integers(0, 3, 64)
    for _ in range(40):
        loss, logits = net.loss_and_gradients(x, y)
    assert logits.dtype == np.float32
    assert all(p.dtype == np.float32 for p in net.parameters + net.gradients + net.running_mean + net.running_var)
    # with the same batch every time, evaluation mode (running stats) reproduces training mode
    # up to the unbiased/biased variance factor 64/63
    h = x @ net.parameters[0]
    np.testing.assert_allclose(net.running_mean[0], h.mean(0), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(net.running_var[0], h.var(0) * 64 / 63, rtol=1e-4)
    train_pred = np.argmax(logits, 1)
    assert np.mean(np.argmax(net.logits(x), 1) == train_pred) > 0.9


def test_flops_count():
    net = Network(NetworkConfig(input_dim=10, num_classes=3, depth=3, width=7))
    # forward and weight gradients: every layer; input gradients: all but the first (no gradient into the data)
    assert net.flops_per_sample() == 2 * (10 * 7 + 2 * 49 + 7 * 3) * 2 + 2 * (2 * 49 + 7 * 3)


@pytest.mark.parametrize(
    "kwargs, word",
    [
        ({"depth": 0}, "depth"),
        ({"width": 2.5}, "width"),
        ({"num_classes": 1}, "num_classes"),
        ({"sub_batch": 1}, "sub_batch"),
        ({"sigma_w": 0.0}, "sigma_w"),
        ({"eps": -1.0}, "eps"),
        ({"eps": float("nan")}, "eps"),
        ({"dtype": "float16"}, "dtype"),
        ({"bn_momentum": 0.0}, "bn_momentum"),
        ({"bn_momentum": "0.1"}, "bn_momentum"),
        ({"activation": "no_such_thing(x"}, "activation"),
    ],
)
def test_bad_configuration_is_refused(kwargs, word):
    base = dict(input_dim=3, num_classes=3, depth=2, width=4)
    with pytest.raises(BnsymInputError, match=word):
        Network(NetworkConfig(**{**base, **kwargs}))


def test_bad_batches_are_refused():
    net = Network(NetworkConfig(input_dim=3, num_classes=3, depth=2, width=4, sub_batch=4))
    x = np.zeros((8, 3), np.float32)
    with pytest.raises(BnsymInputError, match="shape"):
        net.loss_and_gradients(np.zeros((8, 5)), np.zeros(8, int))
    with pytest.raises(BnsymInputError, match="labels"):
        net.loss_and_gradients(x, np.full(8, 3))
    with pytest.raises(BnsymInputError, match="labels"):
        net.loss_and_gradients(x, np.zeros(8))
    with pytest.raises(BnsymInputError, match="sub-batches"):
        net.loss_and_gradients(np.zeros((6, 3)), np.zeros(6, int))
    with pytest.raises(BnsymInputError, match="labels are required"):
        net.evaluate(x, None)
