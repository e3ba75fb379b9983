r"""The gradient explosion rate lambda_G (docs/theory.md section 5).

lambda_G is the eigenvalue of the backward operator ``T`` on the symmetric
direction ``G``: the factor by which the expected squared gradient norm
grows per layer, walking from the output towards the input.  With the
per-radius ``bracket`` of :mod:`bnsym.numerics.backward`,

* ``eps = 0``, ``B >= 4``:
  ``lambda_G = bracket / ((q* - c*) (B - 3))``, using
  ``E[B / |G h|^2] = B / (sigma_w^2 (q* - c*) (B - 3))``;
* ``eps = 0``, ``B = 2``: ``G - u u^T = 0``, so ``lambda_G = 0`` exactly;
* ``eps = 0``, ``B = 3``: ``E[1/chi^2_2]`` diverges, ``lambda_G = inf``;
* ``eps > 0``, finite ``B``: ``lambda_G = sigma_w^2 E_y[bracket(kappa) / S^2]``
  over the radial rule of the fixed point (two levels compared);
* ``B = inf``: ``lambda_G = sigma_w^2 E[D^2] / (a* + eps)``, which at
  ``eps = 0`` is ``E[D^2] / (q* - c*)`` with ``c* = E[f]^2``;
* past the critical eps (degenerate point, docs/theory.md section 15):
  ``lambda_G = sigma_w^2 [(B-1) E[D^2] + E[D_a D_b]] / (B eps)`` with ``D`` the
  one-sided slopes of ``phi`` at ``beta`` (``sigma_w^2 E[D^2] / eps`` at ``B = inf``).
"""

from __future__ import annotations

import math

import mpmath

from bnsym.numerics.backward import bracket
from bnsym.errors import PrecisionError
from bnsym.estimate import ROUNDING, Estimate, rounding_error
from bnsym.meanfield.critical import DEGENERATE, degenerate_bracket, local_slopes
from bnsym.meanfield.bsb1 import bsb1_state
from bnsym.meanfield.results import GradientExplosionRate, Settings, make_settings


def gradient_explosion_rate(
    activation, batch_size, *, gamma=1, beta=0, eps=0, sigma_w=1, dps=15, method="auto"
) -> GradientExplosionRate:
    r"""lambda_G, the per-layer growth factor of the expected squared gradient norm.

    Arguments as for :func:`bnsym.fixed_point`.  The value is an
    ``mpmath.mpf`` promised to ``dps`` significant digits (``error`` is the
    estimated absolute error; :class:`~bnsym.errors.PrecisionError` is raised
    rather than returning fewer).  Exactly ``0`` at ``B = 2`` and ``inf`` at
    ``B = 3`` with ``eps = 0``.  Cost: that of the fixed point plus four
    more sphere expectations per gain (they are computed together).

    >>> print(gradient_explosion_rate("identity", 10, dps=30))  # (B-2)/(B-3) = 8/7
    1.14285714285714285714285714286
    >>> print(gradient_explosion_rate("relu", math.inf, dps=20))  # pi/(pi-1)
    1.46694220692425986
    """
    settings = make_settings(activation, batch_size, gamma=gamma, beta=beta, eps=eps, sigma_w=sigma_w, dps=dps, method=method)
    return rate_from_settings(settings)


def rate_from_settings(settings: Settings) -> GradientExplosionRate:
    """lambda_G for validated :class:`~bnsym.meanfield.results.Settings`."""
    state = bsb1_state(settings)
    b = settings.batch_size
    with mpmath.workdps(settings.working_dps):
        if state.fixed_point.regime == DEGENERATE:
            # J -> diag(D) G / sqrt(eps): the bracket at kappa = 0 (docs/theory.md section 15)
            value = settings.sigma_w**2 * degenerate_bracket(settings, local_slopes(settings)) / settings.eps
            rate = Estimate(value, rounding_error(value, settings.working_dps), meaning=ROUNDING)
        elif settings.eps == 0 and b == 2:
            rate = Estimate(mpmath.mpf(0), meaning=ROUNDING)  # exact: J = 0
        elif settings.eps == 0 and b == 3:
            rate = Estimate(mpmath.inf, meaning=ROUNDING)  # exact: E[1/chi^2_2] diverges
        elif b == math.inf:
            rate = settings.sigma_w**2 * state.moments.d2 / (state.scale + settings.eps)
        elif settings.eps == 0:
            spread = Estimate(state.fixed_point.spread, state.fixed_point.spread_error, meaning=state.fixed_point.meaning)
            rate = bracket(state.moments, b) / (spread * (b - 3))
        else:
            coarse, fine = state.radial
            rate = Estimate(fine.rate.value, fine.rate.error + abs(fine.rate.value - coarse.rate.value))
    result = GradientExplosionRate(rate.value, rate.error, settings, fixed_point=state.fixed_point, method=state.method,
                                   meaning=rate.meaning, regime=state.fixed_point.regime)
    _check(result)
    return result


def _check(result: GradientExplosionRate):
    value, error = result.value, result.error
    if not mpmath.isfinite(value) or value == 0:
        return
    if error > mpmath.mpf(10) ** -result.settings.dps * abs(value):
        raise PrecisionError(
            f"lambda_G reached only {mpmath.nstr(error / abs(value), 3)} relative error, "
            f"short of the {result.settings.dps} digits asked"
        )
