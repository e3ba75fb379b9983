r"""Optimisers that update a :class:`~bnsym.train.network.Network` in place.

SGD with momentum ``mu`` (heavy ball; ``mu = 0`` is plain SGD, the paper's Fig. 3a):

    v <- mu v + g,      p <- p - eta v

RMSProp (the paper's Fig. 3c), decay ``rho``, ``delta`` added to the root:

    s <- rho s + (1 - rho) g^2,      p <- p - eta g / (sqrt(s) + delta)

Cost: one fused pass over the parameters per step (:mod:`bnsym.train.fused`); SGD
with momentum and RMSProp keep one state array per parameter.  The
parameters are updated in place, so they must be C-contiguous float32 or float64
arrays (a :class:`~bnsym.train.network.Network`'s are); an optimiser keeps the arrays
it was given (replace a parameter's values with ``p[...] = ...``, not the array).
"""

from __future__ import annotations

import math

import numpy as np

from bnsym.errors import BnsymInputError
from bnsym.train.fused import momentum_update, plain_update, rmsprop_update
from bnsym.validation import interval


def _flat_parameters(parameters):
    """1-D views of ``parameters`` (written through by the updates), or a BnsymInputError."""
    views = []
    for k, p in enumerate(parameters):
        if not isinstance(p, np.ndarray) or p.dtype not in (np.float32, np.float64):
            raise BnsymInputError(f"parameters[{k}] must be a float32 or float64 array, got "
                                  f"{p.dtype if isinstance(p, np.ndarray) else type(p).__name__}")
        if not p.flags.c_contiguous or not p.flags.writeable:
            raise BnsymInputError(f"parameters[{k}] must be writeable and C-contiguous (it is updated in place "
                                  f"through a flat view); pass np.ascontiguousarray of it and keep that array")
        views.append(p.reshape(-1))
    return views


def _flat_gradients(gradients, parameters, views):
    """``gradients`` as 1-D arrays of their parameters' dtypes (views when they already are), each
    of its parameter's shape, or a BnsymInputError."""
    if len(gradients) != len(views):
        raise BnsymInputError(f"{len(gradients)} gradients were given for {len(views)} parameters")
    for k, (g, p) in enumerate(zip(gradients, parameters)):
        if np.shape(g) != p.shape:
            raise BnsymInputError(f"gradients[{k}] has shape {np.shape(g)}, its parameter {p.shape}")
    return [np.ascontiguousarray(g, dtype=v.dtype).reshape(-1) for g, v in zip(gradients, views)]


class _Optimizer:
    """What SGD and RMSProp share: the parameters, their flat views (updated in place) and ``lr``."""

    def __init__(self, parameters, lr):
        self.parameters = list(parameters)
        self.lr = interval(lr, name="lr", low=0, high=math.inf, low_open=True, high_open=True)
        self._flat = _flat_parameters(self.parameters)

    def _steps(self, gradients):
        """``(p, g, t)`` per parameter: its flat view, its gradient flattened, and the scalar type of its
        dtype (the updates run in the parameters' dtype, as NumPy's passes did; vectorised in float32)."""
        flat = _flat_gradients(gradients, self.parameters, self._flat)
        return [(p, g, p.dtype.type) for p, g in zip(self._flat, flat)]


class SGD(_Optimizer):
    """Stochastic gradient descent with optional heavy-ball momentum."""

    def __init__(self, parameters, lr, momentum=0.0):
        super().__init__(parameters, lr)
        self.momentum = interval(momentum, name="momentum", low=0, high=1, high_open=True)
        self.velocity = [np.zeros_like(p) for p in self._flat] if self.momentum else None

    def step(self, gradients):
        """Update the parameters in place from ``gradients`` (one array per parameter)."""
        steps = self._steps(gradients)
        if self.velocity is None:
            for p, g, t in steps:
                plain_update(p, g, t(self.lr))
            return
        for (p, g, t), v in zip(steps, self.velocity):
            momentum_update(p, g, v, t(self.lr), t(self.momentum))


class RMSProp(_Optimizer):
    """RMSProp (Tieleman and Hinton) with decay ``rho`` and stabiliser ``delta``."""

    def __init__(self, parameters, lr, rho=0.9, delta=1e-8):
        super().__init__(parameters, lr)
        self.rho = interval(rho, name="rho", low=0, high=1, high_open=True)
        self.delta = interval(delta, name="delta", low=0, high=math.inf, low_open=True, high_open=True)
        self.square = [np.zeros_like(p) for p in self._flat]

    def step(self, gradients):
        """Update the parameters in place from ``gradients`` (one array per parameter)."""
        for (p, g, t), s in zip(self._steps(gradients), self.square):
            rmsprop_update(p, g, s, t(self.lr), t(self.rho), t(1 - self.rho), t(self.delta))


OPTIMIZERS = ("sgd", "rmsprop")


def make_optimizer(name, parameters, lr, *, momentum=0.0):
    """``SGD`` or ``RMSProp`` by name (``momentum`` applies to SGD only)."""
    key = str(name).strip().lower()
    if key == "sgd":
        return SGD(parameters, lr, momentum=momentum)
    if key == "rmsprop":
        return RMSProp(parameters, lr)
    raise BnsymInputError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {name!r}")
