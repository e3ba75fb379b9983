r"""lambda_G, q* and c* in float64 for many (gamma, beta) points at once (docs/theory.md section 17).

The mpmath engine (:mod:`bnsym.numerics.sphere`) evaluates one parameter point at a time at
any precision.  A scan of thousands of points at 12-13 digits does not need that: here the
laws of docs/theory.md section 3.1 are discretised once per batch size, in float64, and the
integrands of all points are evaluated as NumPy arrays (and matrix products).

Law (``eps = 0``, ``n = B - 1``, ``rho = -1/n``, ``lambda = (n - 2)/2``): ``s = sqrt(n) t``,
``t = sin psi`` with weight ``cos(psi)^(n-2)`` on ``[-pi/2, pi/2]`` (Gauss-Legendre in ``psi``,
cut where the weight falls below :data:`CUT`).  Pairs by Funk-Hecke (section 8):

    E[F(s_a) G(s_b)] = sum_k F_k G_k P_k(rho),   F_k = E[F(s) p_k(t)],

``p_k`` the orthonormal Gegenbauer polynomials of the weight ``(1 - t^2)^(lambda - 1/2)``
(recurrence ``t p_k = b_{k+1} p_{k+1} + b_k p_{k-1}``,
``b_k^2 = k (k + 2 lambda - 1) / (4 (k + lambda)(k + lambda - 1))``) and
``P_k = C_k^lambda / C_k^lambda(1)``, ``(k + 2 lambda) P_{k+1} = 2 (k + lambda) rho P_k - k P_{k-1}``.
Moments (section 3.5, ``f = phi(gamma s + beta)``, ``D = gamma phi'(gamma s + beta)``):
``spread = E[(f - m)^2] - E[(f_a - m)(f_b - m)]`` (no cancellation), ``q = E[f^2]``,
``c = q - spread``, and section 5.2's

    lambda_G = [ (B-1) E[D_a^2] + E[D_a D_b] - E[s_a^2 D_a^2] + E[s_a s_b D_a D_b] ] / (spread (B - 3)).

Domain: activations without kinks, ``eps = 0``, finite ``B >= 4``.  Error: the difference
between the two rules of :data:`LEVELS` (nodes, Funk-Hecke terms); the finer value is
returned.  Cost per point: ``sum K`` evaluations of ``phi`` and ``phi'`` and three
``K x T`` matrix-vector products (done as one matrix product for all points).
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from bnsym import validation
from bnsym.activations import activation as parse_activation
from bnsym.errors import BnsymInputError
from bnsym.numerics.quadrature import legendre_float64

#: ``(nodes, Funk-Hecke terms)`` of the two rules compared.
LEVELS = ((384, 144), (512, 192))
#: Relative weight below which the ``psi`` range is cut.
CUT = 1e-30


@lru_cache(maxsize=64)
def gegenbauer_rule(batch_size: int, nodes: int, terms: int):
    """``(s [K], w [K], basis [K, T], P [T])``: coordinates, normalised weights, ``w_i p_k(t_i)``, ``P_k(rho)``."""
    n = batch_size - 1
    lam = (n - 2) / 2
    x, w = legendre_float64(nodes)
    k_outer = n - 2
    top = math.pi / 2 if k_outer <= 0 else min(math.pi / 2, math.acos(CUT ** (1.0 / k_outer)))
    psi = top * x
    weights = w * np.cos(psi) ** k_outer
    weights /= weights.sum()
    t = np.sin(psi)
    p = np.empty((nodes, terms))
    p[:, 0] = 1.0
    b = [0.0] + [math.sqrt(k * (k + 2 * lam - 1) / (4 * (k + lam) * (k + lam - 1))) for k in range(1, terms)]
    if terms > 1:
        p[:, 1] = t / b[1]
    for k in range(1, terms - 1):
        p[:, k + 1] = (t * p[:, k] - b[k] * p[:, k - 1]) / b[k + 1]
    rho = -1.0 / n
    big_p = np.empty(terms)
    big_p[0], big_p[1:2] = 1.0, rho
    for k in range(1, terms - 1):
        big_p[k + 1] = (2 * (k + lam) * rho * big_p[k] - k * big_p[k - 1]) / (k + 2 * lam)
    return math.sqrt(n) * t, weights, weights[:, None] * p, big_p


def _moments(phi, batch_size, nodes, terms, gamma, beta):
    s, w, basis, big_p = gegenbauer_rule(batch_size, nodes, terms)
    x = gamma[:, None] * s + beta[:, None]
    f = phi.np(x)
    d = gamma[:, None] * phi.np(x, derivative=True)
    mean = f @ w
    centred = f - mean[:, None]

    def pair(values):  # E[F(s_a) F(s_b)] for each point, by Funk-Hecke
        coefficients = values @ basis
        return (coefficients * coefficients) @ big_p

    spread = (centred * centred) @ w - pair(centred)
    q = (f * f) @ w
    d2 = (d * d) @ w
    sd2 = (s * s * d * d) @ w
    rate = ((batch_size - 1) * d2 + pair(d) - sd2 + pair(s * d)) / (spread * (batch_size - 3))
    return {"lambda_G": rate, "q": q, "c": q - spread}


def double_rates(activation, batch_size, gamma, beta) -> dict:
    """``{"lambda_G", "q", "c"}``, each ``(value, error)`` arrays over the points ``gamma[i], beta[i]``.

    ``activation`` must have no kinks, ``batch_size`` be a finite integer >= 4, ``gamma``
    nonzero and finite, ``beta`` finite (one-line :class:`~bnsym.errors.BnsymInputError`
    otherwise).  Accuracy: checked against the mpmath engine to 1e-12 relative
    (docs/theory.md section 17); the ``error`` is the two-level difference.
    """
    phi = parse_activation(activation)
    if not phi.is_smooth:
        raise BnsymInputError(f"precision double needs an activation without kinks, {phi.label} has kinks at {phi.kinks}")
    b = validation.finite_batch_size(batch_size, minimum=4, why="precision double")
    gamma = np.atleast_1d(np.asarray(gamma, dtype=np.float64))
    beta = np.broadcast_to(np.asarray(beta, dtype=np.float64), gamma.shape)
    if gamma.ndim != 1 or not (np.all(np.isfinite(gamma)) and np.all(gamma != 0) and np.all(np.isfinite(beta))):
        raise BnsymInputError("gamma must be finite and nonzero and beta finite at every point (one-dimensional arrays)")
    coarse, fine = (_moments(phi, b, nodes, terms, gamma, beta) for nodes, terms in LEVELS)
    return {k: (fine[k], np.abs(fine[k] - coarse[k])) for k in fine}
