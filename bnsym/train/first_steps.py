r"""The one-step experiment: dynamic range of per-layer gradient norms before and after k steps.

docs/theory.md section 9: at initialisation the weight-gradient norms of a deep
batch-norm network grow like ``lambda_G^((L-l)/2)`` from the last layer down
to the first, a dynamic range of ``lambda_G^(L/2)``; after one optimisation
step they settle into an equilibrium with a much smaller range.

The *dynamic range* of a set of per-layer norms ``g_1..g_L`` (hidden layers
only, readout excluded) is ``max g_l / min g_l``.  :func:`one_step` records
the norms on the same fixed probe batch at initialisation and after each of
``k`` SGD/RMSProp steps on fresh training batches.  The fitted per-layer
growth ``exp(-2 * slope)`` of ``log g_l`` against ``l`` at initialisation
estimates ``lambda_G`` (squared norms).

Cost: ``k + 1`` forward/backward passes plus ``k`` optimiser steps.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bnsym.errors import BnsymInputError


@dataclass(frozen=True)
class OneStepResult:
    """``norms[s]``: hidden-layer weight-gradient norms (layer 1 first) after ``s`` steps, ``s = 0..k``."""

    norms: np.ndarray
    dynamic_range: np.ndarray
    rate_at_init: float
    losses: tuple

    def as_dict(self) -> dict:
        return {
            "norms": self.norms.tolist(),
            "dynamic_range": self.dynamic_range.tolist(),
            "rate_at_init": self.rate_at_init,
            "losses": list(self.losses),
        }


def dynamic_range(norms) -> float:
    """``max / min`` of positive per-layer norms (``inf`` if some norm is 0, ``nan`` if not finite)."""
    norms = np.asarray(norms, dtype=float)
    if not np.all(np.isfinite(norms)):
        return float("nan")
    low = norms.min()
    return float("inf") if low == 0 else float(norms.max() / low)


def fitted_rate(norms) -> float:
    """``exp(-2 slope)`` of a least-squares line through ``log norms[l]`` against ``l``: lambda per layer."""
    norms = np.asarray(norms, dtype=float)
    if len(norms) < 2 or not np.all(np.isfinite(norms)) or np.any(norms <= 0):
        return float("nan")
    slope = np.polyfit(np.arange(len(norms)), np.log(norms), 1)[0]
    return float(np.exp(-2 * slope))


def one_step(network, optimizer, data, *, steps, batch_size, seed=0) -> OneStepResult:
    """Per-layer gradient norms on a fixed probe batch at initialisation and after each of ``steps`` steps."""
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
        raise BnsymInputError(f"steps must be an integer >= 1, got {steps!r}")
    n = len(data.x_train)
    if batch_size > n:
        raise BnsymInputError(f"batch_size ({batch_size}) exceeds the {n} training samples")
    rng = np.random.default_rng(seed)
    probe = rng.choice(n, batch_size, replace=False)
    depth = network.config.depth
    rows, losses = [], []

    def probe_norms():
        momentum = [(rm.copy(), rv.copy()) for rm, rv in zip(network.running_mean or [], network.running_var or [])]
        loss, _ = network.loss_and_gradients(data.x_train[probe], data.y_train[probe])
        for (rm, rv), (m0, v0) in zip(zip(network.running_mean or [], network.running_var or []), momentum):
            rm[...], rv[...] = m0, v0  # the probe must not move the running statistics
        return network.weight_gradient_norms()[:depth], loss

    with np.errstate(all="ignore"):
        norms, loss = probe_norms()
        rows.append(norms)
        losses.append(loss)
        for _ in range(steps):
            idx = rng.choice(n, batch_size, replace=False)
            network.loss_and_gradients(data.x_train[idx], data.y_train[idx])
            optimizer.step(network.gradients)
            norms, loss = probe_norms()
            rows.append(norms)
            losses.append(loss)
    table = np.array(rows)
    return OneStepResult(
        norms=table,
        dynamic_range=np.array([dynamic_range(r) for r in table]),
        rate_at_init=fitted_rate(table[0]),
        losses=tuple(float(v) for v in losses),
    )
