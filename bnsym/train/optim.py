r"""Optimisers that update a :class:`~bnsym.train.network.Network` in place.

SGD with momentum ``mu`` (heavy ball; ``mu = 0`` is plain SGD, the paper's Fig. 3a):

    v <- mu v + g,      p <- p - eta v

RMSProp (the paper's Fig. 3c), decay ``rho``, ``delta`` added to the root:

    s <- rho s + (1 - rho) g^2,      p <- p - eta g / (sqrt(s) + delta)

Cost: a few elementwise passes over the parameters per step; SGD without
momentum and RMSProp keep one state array per parameter at most.
"""

from __future__ import annotations

import math

import numpy as np

from bnsym.errors import BnsymInputError


def _number(name, value, low, high, *, low_open=False, high_open=False):
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if ok:
        ok = (value > low if low_open else value >= low) and (value < high if high_open else value <= high)
    if not ok:
        lo, hi = ("(" if low_open else "["), (")" if high_open else "]")
        raise BnsymInputError(f"{name} must be a number in {lo}{low}, {high}{hi}, got {value!r}")
    return float(value)


class SGD:
    """Stochastic gradient descent with optional heavy-ball momentum."""

    def __init__(self, parameters, lr, momentum=0.0):
        self.parameters = parameters
        self.lr = _number("lr", lr, 0, math.inf, low_open=True, high_open=True)
        self.momentum = _number("momentum", momentum, 0, 1, high_open=True)
        self.velocity = [np.zeros_like(p) for p in parameters] if self.momentum else None

    def step(self, gradients):
        lr = self.lr
        if self.velocity is None:
            for p, g in zip(self.parameters, gradients):
                g *= -lr  # the gradients are recomputed before the next step: reuse their memory
                p += g
            return
        for p, g, v in zip(self.parameters, gradients, self.velocity):
            v *= self.momentum
            v += g
            np.multiply(v, lr, out=g)  # as above: the gradient's memory holds the update
            p -= g


class RMSProp:
    """RMSProp (Tieleman and Hinton) with decay ``rho`` and stabiliser ``delta``."""

    def __init__(self, parameters, lr, rho=0.9, delta=1e-8):
        self.parameters = parameters
        self.lr = _number("lr", lr, 0, math.inf, low_open=True, high_open=True)
        self.rho = _number("rho", rho, 0, 1, high_open=True)
        self.delta = _number("delta", delta, 0, math.inf, low_open=True, high_open=True)
        self.square = [np.zeros_like(p) for p in parameters]

    def step(self, gradients):
        for p, g, s in zip(self.parameters, gradients, self.square):
            s *= self.rho
            s += (1 - self.rho) * (g * g)
            update = np.sqrt(s)
            update += self.delta
            np.divide(g, update, out=update)
            update *= self.lr
            p -= update


OPTIMIZERS = ("sgd", "rmsprop")


def make_optimizer(name, parameters, lr, *, momentum=0.0):
    """``SGD`` or ``RMSProp`` by name (``momentum`` applies to SGD only)."""
    key = str(name).strip().lower()
    if key == "sgd":
        return SGD(parameters, lr, momentum=momentum)
    if key == "rmsprop":
        return RMSProp(parameters, lr)
    raise BnsymInputError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {name!r}")
