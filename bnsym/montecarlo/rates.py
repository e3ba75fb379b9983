r"""Per-layer rates measured in simulated networks, with their standard errors over seeds.

The forward rate of ``Sigma^l -> Sigma*`` and the backward growth of the gradient
Gram on the invariant subspaces ``L`` and ``M`` (docs/theory.md section 6), from the
arrays of :class:`bnsym.montecarlo.simulation.Simulation`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from bnsym.estimate import STANDARD_ERROR, Value
from bnsym.subspaces import subspace_direction, subspace_index, subspace_parts


@dataclass(frozen=True)
class MeasuredRate(Value):
    """A per-layer contraction factor on one subspace measured in simulated networks.

    ``value`` is the slope pooled over seeds, ``error`` (also ``.stderr``) its jackknife
    standard error over seeds, ``rates`` the per-seed slopes; ``layers`` the layers used.
    """

    value: float
    error: float
    subspace: str = "L"
    rates: tuple = ()
    layers: tuple = ()
    meaning: str = field(default=STANDARD_ERROR, kw_only=True)


def forward_rate(grams, star, subspace: str, layers) -> MeasuredRate:
    r"""Per-layer rate of ``Sigma^l -> Sigma*`` on ``subspace`` ("L" or "M") in simulated Grams.

    ``grams``: array ``(seeds, depth+1, B, B)`` (e.g. :attr:`bnsym.montecarlo.simulation.Simulation.grams`);
    ``star``: the fixed point; ``layers = (lo, hi)``.  With ``X_l`` the
    ``subspace`` part of ``G (Sigma^l - Sigma*) G``, the estimate per seed is the least-squares slope
    ``sum_l <X_{l+1}, X_l> / sum_l <X_l, X_l>`` over ``lo <= l < hi``.  Since
    ``E[Sigma^{l+1} | Sigma^l] = V(Sigma^l)`` exactly at finite width (fresh
    Gaussian weights), the slope estimates the forward eigenvalue once
    ``X_l`` is small (the finite-width fluctuations keep feeding it).
    """
    index = subspace_index(subspace)
    lo, hi = layers
    sums = []
    for run in np.asarray(grams):
        parts = [subspace_parts(g - star)[index] for g in run[lo : hi + 1]]
        num = sum(float(np.sum(a * b)) for a, b in zip(parts[1:], parts[:-1]))
        den = sum(float(np.sum(a * a)) for a in parts[:-1])
        sums.append((num, den))
    return _measured(subspace, sums, layers)


def backward_rate(gradient_grams, subspace: str, layers) -> MeasuredRate:
    r"""Per-layer growth of the ``subspace`` part of the gradient Gram ``Pi^l`` walking down.

    With ``Y_l`` the ``subspace`` part of ``Pi^l`` divided by its ``G`` scale
    ``m_l = tr(G Pi^l)/(B-1)``, the per-seed estimate is
    ``sum_l <P Pi^{l-1}, P Pi^l>/m_l^2 / sum_l |P Pi^l|^2/m_l^2`` over ``lo < l <= hi``:
    the slope of ``Pi^{l-1} = T(Pi^l)`` restricted to the subspace.
    """
    index = subspace_index(subspace)
    lo, hi = layers
    sums = []
    for run in np.asarray(gradient_grams):
        num = den = 0.0
        for l in range(hi, lo, -1):
            parts_top = subspace_parts(run[l])
            scale = np.trace(parts_top[0]) / (run.shape[-1] - 1)
            top = parts_top[index] / scale
            below = subspace_parts(run[l - 1])[index] / scale
            num += float(np.sum(below * top))
            den += float(np.sum(top * top))
        sums.append((num, den))
    return _measured(subspace, sums, layers)


def _measured(subspace, sums, layers):
    """Pooled slope ``sum num / sum den`` over seeds, with its jackknife standard error over seeds."""
    sums = np.array(sums)
    num, den = sums[:, 0], sums[:, 1]
    value = float(num.sum() / den.sum())
    k = len(sums)
    if k < 2:
        return MeasuredRate(value, math.inf, subspace=subspace, rates=(value,), layers=tuple(layers))
    leave_out = (num.sum() - num) / (den.sum() - den)
    stderr = float(math.sqrt((k - 1) / k * np.sum((leave_out - leave_out.mean()) ** 2)))
    return MeasuredRate(value, stderr, subspace=subspace, rates=tuple(float(v) for v in num / den), layers=tuple(layers))


def seeded_gradient(batch_size: int, subspace: str, amplitude: float = 0.9):
    """``output_gradient`` for :func:`bnsym.simulate` whose rows are ``N(0, G + t P)``,
    ``P`` the :func:`subspace_direction` scaled to spectral norm 1 and ``t = amplitude < 1``
    (so the covariance stays positive semidefinite)."""
    b = int(batch_size)
    direction = subspace_direction(b, subspace)
    cov = np.eye(b) - 1 / b + amplitude * direction / np.abs(np.linalg.eigvalsh(direction)).max()
    lam, vec = np.linalg.eigh(cov)
    factor = vec * np.sqrt(np.clip(lam, 0, None))

    def draw(rng, width, batch):
        return rng.standard_normal((width, b)) @ factor.T

    return draw
