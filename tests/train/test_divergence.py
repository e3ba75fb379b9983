"""A run whose loss is non-finite or has grown past DIVERGENCE_FACTOR times its first loss is
diverged, everywhere (issue 12: ``--lr 1e6`` ended at train loss 9.9e26 with ``diverged: false``)."""

from __future__ import annotations

import math

import numpy as np

from bnsym.train.datasets import Dataset
from bnsym.train.training import DIVERGENCE_FACTOR, build, fit


def _data(n=256, d=20, classes=10, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.random((n, d), dtype=np.float32)
    y = rng.integers(0, classes, n)
    return Dataset("synthetic", x, y, x[:64], y[:64], classes)


def test_huge_learning_rate_is_diverged():
    data = _data()
    net, opt = build(data, depth=3, width=32, batch_size=32, lr=1e6, seed=1)
    result = fit(net, opt, data, epochs=2, batch_size=32)
    assert result.diverged
    assert result.diverged_at is not None and result.diverged_at <= result.steps
    assert result.as_dict()["diverged"] is True


def test_sane_learning_rate_is_not_diverged():
    data = _data()
    net, opt = build(data, depth=3, width=32, batch_size=32, lr=1e-2, seed=1)
    result = fit(net, opt, data, epochs=2, batch_size=32)
    assert not result.diverged and result.diverged_at is None
    assert math.isfinite(result.test_loss)
    assert result.train_loss < DIVERGENCE_FACTOR * math.log(10)
