r"""Fused elementwise passes of the trainer, compiled by numba: the batch-norm layer and the optimisers' updates.

NumPy makes one pass over memory per operation: the batch-norm layer took about ten passes
over its ``B x N`` array per layer and direction, and SGD with momentum four over the
parameters.  Each kernel here does the same arithmetic in one to three loops (the formulas
are those of :mod:`bnsym.train.network` and :mod:`bnsym.train.optim`, docs/theory.md
section 9).  Sums over the batch are accumulated in float64 whatever the arrays' dtype; the
optimisers' updates run in the parameters' dtype (their scalars are passed in it), as NumPy's
passes did.  An SGD step takes 9 to 11% less time than with the NumPy passes, an RMSProp step
18 to 37% less (README.md, "Trainer throughput").

Shapes: a pre-activation is a ``(groups, b, N)`` view (``b`` rows per batch-norm group);
per-group statistics are ``(groups, N)``; the optimisers take 1-D views of contiguous
arrays.  Kernels are compiled on first use for each dtype (about 2 s in all) and cached on disk
where numba can (:func:`_compiled`).

May import: numpy and numba only.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit


def _compiled(function):
    """``function`` compiled by numba with NumPy's arithmetic errors (``1/0`` is inf, as in the NumPy
    passes these kernels replace: a zero-variance column at ``eps = 0`` gives NaN, read as divergence,
    not an exception), cached on disk where numba finds a writable cache directory, else compiled in
    each process (numba refuses ``cache=True`` at import when it finds none)."""
    try:
        return njit(cache=True, error_model="numpy")(function)
    except RuntimeError:
        return njit(error_model="numpy")(function)


@_compiled
def normalize_forward(h, gamma, beta, eps, relu, out, mean, var, inv, scale):  # pragma: no cover - compiled
    """Batch norm of each group of ``h`` (overwritten by its centred value) into ``out``.

    Per group and column: ``mean``, biased ``var``, ``inv = 1 / sqrt(var + eps)``,
    ``scale = gamma inv``; ``h <- h - mean``; ``out = (h - mean) scale + beta``, then
    ``max(out, 0)`` when ``relu``.  The moments come from one pass of shifted sums
    (``K`` = the group's first row: ``mean = K + E[h - K]``, ``var = E[(h - K)^2] - E[h - K]^2``,
    in float64), which cancel only as far as ``|E[h] - K|`` exceeds the spread; a second pass
    writes ``h - mean`` and ``out``.
    """
    groups, b, n = h.shape
    for g in range(groups):
        k = np.empty(n)
        s1 = np.zeros(n)
        s2 = np.zeros(n)
        for j in range(n):
            k[j] = h[g, 0, j]
        for i in range(1, b):
            for j in range(n):
                d = h[g, i, j] - k[j]
                s1[j] += d
                s2[j] += d * d
        for j in range(n):
            e1 = s1[j] / b
            v = max(s2[j] / b - e1 * e1, 0.0)
            iv = 1.0 / math.sqrt(v + eps)
            k[j] += e1
            mean[g, j] = k[j]
            var[g, j] = v
            inv[g, j] = iv
            scale[g, j] = iv * gamma[j]
        floor = 0.0 if relu else -np.inf
        for i in range(b):
            for j in range(n):
                d = h[g, i, j] - k[j]
                h[g, i, j] = d
                out[g, i, j] = max(d * scale[g, j] + beta[j], floor)


@_compiled
def normalize_backward(grad, centred, out, inv, scale, relu, g_gamma, g_beta):  # pragma: no cover - compiled
    """Back through the batch norm of each group: ``grad`` (``dL/dy``, ``y`` the normalised output) becomes ``dL/dh``.

    With ``relu``, ``grad`` is first set to 0 where ``out <= 0`` (``out = relu(y)``).  Per group
    and column, with ``c = centred = h - mean``: ``S = sum dy``, ``T = inv sum dy c`` (the sum of
    ``dy xhat``); ``g_beta = sum_groups S``, ``g_gamma = sum_groups T``; then
    ``dh = scale (dy - S / b) - c scale inv T / b``.  Cost: two loops over ``grad``.
    """
    groups, b, n = grad.shape
    for j in range(n):
        g_gamma[j] = 0.0
        g_beta[j] = 0.0
    for g in range(groups):
        s = np.zeros(n)
        t = np.zeros(n)
        for i in range(b):
            for j in range(n):
                d = grad[g, i, j]
                if relu and out[g, i, j] <= 0.0:
                    d = 0.0
                    grad[g, i, j] = 0.0
                s[j] += d
                t[j] += d * centred[g, i, j]
        for j in range(n):
            t[j] *= inv[g, j]
            g_gamma[j] += t[j]
            g_beta[j] += s[j]
            s[j] /= b
            t[j] *= scale[g, j] * inv[g, j] / b
        for i in range(b):
            for j in range(n):
                grad[g, i, j] = scale[g, j] * (grad[g, i, j] - s[j]) - centred[g, i, j] * t[j]


@_compiled
def momentum_update(p, g, v, lr, mu):  # pragma: no cover - compiled
    """Heavy-ball SGD, one loop: ``v <- mu v + g``, ``p <- p - lr v``."""
    for i in range(p.size):
        vi = mu * v[i] + g[i]
        v[i] = vi
        p[i] -= lr * vi


@_compiled
def plain_update(p, g, lr):  # pragma: no cover - compiled
    """SGD without momentum, one loop: ``p <- p - lr g``."""
    for i in range(p.size):
        p[i] -= lr * g[i]


@_compiled
def rmsprop_update(p, g, s, lr, rho, rest, delta):  # pragma: no cover - compiled
    """RMSProp, one loop: ``s <- rho s + rest g^2`` (``rest = 1 - rho``), ``p <- p - lr g / (sqrt(s) + delta)``.

    Pass the scalars in the arrays' dtype: float32 scalars keep the loop in float32, where it is
    vectorised (63 microseconds for a 384 x 384 layer, against 192 for NumPy's passes; float64
    scalars promote it, 228)."""
    for i in range(p.size):
        gi = g[i]
        si = rho * s[i] + rest * gi * gi
        s[i] = si
        p[i] -= lr * gi / (np.sqrt(si) + delta)
