r"""The critical eps and the degenerate fixed point (docs/theory.md section 15).

At ``eps > 0`` the BSB1 scale ``a = sigma_w^2 (q - c)`` obeys
``a = F(a) = sigma_w^2 E_y[spread(gamma kappa(a, y))]``, ``kappa^2 = a y^2 / (a y^2 + B eps)``,
``y ~ chi_{B-1}`` (section 4.2).  As ``a -> 0``, ``kappa -> 0`` and only the
one-sided slopes ``a_+-`` of ``phi`` at ``beta`` matter: with the piecewise-linear
``psi(x) = a_+ x`` (x > 0), ``a_- x`` (x < 0),

    spread(gamma kappa) = kappa^2 spread_psi(gamma) + o(kappa^2),   E_y[kappa^2] = a (B-1) / (B eps) + o(a),

so ``F(a) = S0 a + o(a)`` with

    S0 = sigma_w^2 (B-1) spread_psi(gamma) / (B eps),      eps_c = sigma_w^2 (B-1) spread_psi(gamma) / B.

For ``phi`` differentiable at ``beta``, ``spread_psi = gamma^2 phi'(beta)^2 B/(B-1)`` and
``eps_c = sigma_w^2 gamma^2 phi'(beta)^2`` (1 for tanh); for ReLU at ``beta = 0`` it is
``sigma_w^2 gamma^2 (B-1)(q*_0 - c*_0)/B`` with the ``eps = 0`` fixed point (exact for every
``a``, since ReLU is homogeneous).  ``B = inf``: ``(B-1)/B -> 1`` and the Gaussian law.

For ``eps >= eps_c`` the degenerate point ``G Sigma* G = 0``, ``q* = c* = phi(beta)^2``, attracts
(a nondegenerate point may coexist where ``phi`` is flat at ``beta`` and steep around it: the engine
looks for one first, :func:`bnsym.meanfield.bsb1.bsb1_state`).  There ``J -> diag(D) G / sqrt(eps)`` with
``D_a = gamma a_(sign of gamma s_a)``, so

    lambda_G^deg = sigma_w^2 [(B-1) E[D_a^2] + E[D_a D_b]] / (B eps)     (B = inf: sigma_w^2 E[D^2] / eps),

the per-radius bracket of section 5.1 at ``kappa = 0``.  For ``phi`` differentiable at
``beta`` this is ``S0 = eps_c / eps``: 1 at ``eps_c`` and below 1 past it.  For a kink at
``beta`` (ReLU at 0) ``D`` stays random and ``lambda_G^deg`` exceeds ``S0``: it equals 1 only
at ``eps_g = sigma_w^2 [(B-1) E[D^2] + E[D_a D_b]] / B > eps_c``, so for
``eps_c <= eps < eps_g`` the forward signal collapses while gradients still explode.

Every sphere moment here is a closed form (section 3.4): cost O(1).  No critical eps exists
when both slopes vanish (``phi'(beta) = 0``, e.g. ``relu_power(1.5)`` at ``beta = 0``: the
degenerate point then attracts for every ``eps``) or when a slope is infinite.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import mpmath
import numpy as np

from bnsym.errors import BnsymError
from bnsym.estimate import ROUNDING, rounding_error
from bnsym.meanfield.results import Quantity, Settings, make_settings
from bnsym.numerics import closed_forms
from bnsym.numerics.float_rates import gegenbauer_rule
from bnsym.numerics.quadrature import legendre_float64

NONDEGENERATE = "nondegenerate"
DEGENERATE = "degenerate"


@dataclass(frozen=True)
class CriticalEps(Quantity):
    """``eps_c``: above it the BSB1 point is the degenerate ``G Sigma* G = 0``.

    ``value``/``error``: ``eps_c``; ``gradient_eps``: the eps at which the degenerate
    point's ``lambda_G`` equals 1 (``eps_g``, equal to ``eps_c`` for ``phi`` differentiable
    at ``beta``, larger at a kink); ``slopes``: ``(a_-, a_+)``, the one-sided slopes of
    ``phi`` at ``beta``.
    """

    gradient_eps: mpmath.mpf = mpmath.mpf(0)
    gradient_eps_error: mpmath.mpf = mpmath.mpf(0)
    slopes: tuple = ()

    def __str__(self) -> str:
        d = self.settings.dps
        return f"eps_c = {mpmath.nstr(self.value, d)}, eps_g = {mpmath.nstr(self.gradient_eps, d)}"


def critical_eps(activation, batch_size, *, gamma=1, beta=0, sigma_w=1, dps=15) -> CriticalEps:
    r"""The critical batch-norm ``eps`` past which the BSB1 fixed point is degenerate.

    ``eps_c = sigma_w^2 (B-1) spread_psi(gamma) / B`` (module docstring; docs/theory.md
    section 15), and ``gradient_eps``, where the degenerate ``lambda_G`` crosses 1.
    Arguments as for :func:`bnsym.fixed_point` (no ``eps``).  Cost: closed forms, O(1).
    Raises :class:`~bnsym.errors.BnsymError` (one line) when no critical eps exists.

    >>> print(critical_eps("tanh", 32))
    eps_c = 1.0, eps_g = 1.0
    >>> print(critical_eps("relu", 32, dps=10))
    eps_c = 0.3379259227, eps_g = 0.4920270337
    """
    settings = make_settings(activation, batch_size, gamma=gamma, beta=beta, sigma_w=sigma_w, dps=dps)
    return critical_from_settings(settings)


def critical_from_settings(settings: Settings) -> CriticalEps:
    """:class:`CriticalEps` for validated settings (``settings.eps`` is ignored)."""
    with mpmath.workdps(settings.working_dps):
        slopes = local_slopes(settings)
        if slopes[0] == 0 and slopes[1] == 0:
            raise BnsymError(
                f"no critical eps for {settings.activation.label} at beta={mpmath.nstr(settings.beta, 6)}: "
                "phi'(beta) = 0, so the scale map F(a) vanishes faster than a and the degenerate point attracts at every eps"
            )
        b = settings.batch_size
        ratio = 1 if b == math.inf else mpmath.mpf(b - 1) / b
        value = settings.sigma_w**2 * ratio * linear_spread(settings, slopes)
        g_eps = settings.sigma_w**2 * degenerate_bracket(settings, slopes)
    return CriticalEps(
        value, rounding_error(value, settings.working_dps), settings, meaning=ROUNDING, gradient_eps=g_eps,
        gradient_eps_error=rounding_error(g_eps, settings.working_dps), slopes=slopes,
    )


def regime(settings: Settings) -> str:
    """``"degenerate"`` when ``eps >= eps_c`` (a critical eps exists and is reached), else ``"nondegenerate"``."""
    if settings.eps == 0:
        return NONDEGENERATE
    try:
        crit = critical_from_settings(settings)
    except BnsymError:
        return NONDEGENERATE
    return DEGENERATE if settings.eps >= crit.value else NONDEGENERATE


def local_slopes(settings: Settings) -> tuple:
    """``(a_-, a_+)``: the one-sided derivatives of ``phi`` at ``beta`` (finite, else BnsymError)."""
    act, beta = settings.activation, settings.beta
    left = act.piece_index(beta)
    right = left + 1 if any(k == beta for k in act.numeric_kinks()) else left
    slopes = []
    for index in (left, right):
        try:
            slope = mpmath.mpf(act.mp_piece(index, True)(beta))
        except (TypeError, ValueError, ZeroDivisionError):
            slope = mpmath.nan
        slopes.append(slope)
        if not mpmath.isfinite(slope):
            raise BnsymError(
                f"no critical eps for {act.label} at beta={mpmath.nstr(beta, 6)}: phi has no finite slope there"
            )
    return tuple(slopes)


def psi_values(settings, slopes):
    """``(psi(gamma), psi(-gamma))`` and ``(D(+1), D(-1))`` for the law's ``s = +-1`` halves, with
    ``psi(x) = a_+ x`` (x > 0), ``a_- x`` (x < 0) and ``slopes = (a_-, a_+)`` (:func:`local_slopes`):
    the degree-1 part of ``s -> phi(beta + gamma s) - phi(beta)`` and its slope ``D``."""
    a_minus, a_plus = slopes
    g = settings.gamma
    f_plus = g * (a_plus if g > 0 else a_minus)  # psi(gamma * 1)
    f_minus = -g * (a_minus if g > 0 else a_plus)  # psi(gamma * -1)
    d_plus = g * (a_plus if g > 0 else a_minus)
    d_minus = g * (a_minus if g > 0 else a_plus)
    return (f_plus, f_minus), (d_plus, d_minus)


def linear_spread(settings: Settings, slopes) -> mpmath.mpf:
    """``spread_psi(gamma) = E[psi(gamma s_a)^2] - E[psi(gamma s_a) psi(gamma s_b)]`` (closed form)."""
    (f_plus, f_minus), _ = psi_values(settings, slopes)
    n = math.inf if settings.batch_size == math.inf else settings.batch_size - 1
    q = closed_forms.homogeneous_mean(f_plus**2, f_minus**2, 2, n)
    h = (f_plus, f_minus, 1)  # homogeneous convention: F(s) = F(-1) |s| for s < 0
    if n == math.inf:
        mean = closed_forms.homogeneous_mean(f_plus, f_minus, 1, n)
        return q - mean**2
    return q - closed_forms.homogeneous_pair(h, h, n)


def degenerate_bracket(settings: Settings, slopes) -> mpmath.mpf:
    """``[(B-1) E[D^2] + E[D_a D_b]] / B`` at ``kappa = 0`` (``E[D^2]`` at ``B = inf``)."""
    _, (d_plus, d_minus) = psi_values(settings, slopes)
    b = settings.batch_size
    n = math.inf if b == math.inf else b - 1
    d2 = closed_forms.homogeneous_mean(d_plus**2, d_minus**2, 0, n)
    if b == math.inf:
        return d2
    d11 = closed_forms.homogeneous_pair((d_plus, d_minus, 0), (d_plus, d_minus, 0), n)
    return ((b - 1) * d2 + d11) / b


#: Past the critical eps the search for a coexisting nondegenerate point is skipped when the bound of
#: :func:`coexistence_possible` stays below ``1 - COEXISTENCE_MARGIN`` (its float64 error is far smaller).
COEXISTENCE_MARGIN = 1e-3


#: Nodes of the one-coordinate law's float64 rule for the bound's variances.
PSI_NODES = 800


def coexistence_possible(settings: Settings) -> bool:
    r"""Whether a nondegenerate BSB1 point can coexist with the degenerate one (``eps >= eps_c``).

    A nondegenerate point needs ``F(a) = a`` for some ``a > 0``.  With ``psi = phi - E phi`` over the
    one-coordinate law, ``E[(sum_b psi_b)^2] >= 0`` gives ``E[psi_a psi_b] >= -Var_1 / (B-1)``, so

        spread(g) <= U(g) = B/(B-1) Var_1 phi(g s + beta)      (B = inf: U = spread),
        F(a) <= sigma_w^2 E_y[U(gamma kappa(a, y))] =: F_U(a).

    ``False`` when ``F_U(a)/a < 1 - COEXISTENCE_MARGIN`` on a log grid of ``a`` from ``10^-12`` to
    ``10^3`` times the ``eps = 0`` scale (where ``F_U(a)/a`` falls as ``1/a``): no such point.  ``True``
    otherwise, or when the float64 values are not finite (the caller then searches).  Cost: float64
    only, ``O(10^5)`` activation values (a few milliseconds).  (docs/theory.md section 15.1.)
    """
    b, eps, sw2 = settings.batch_size, float(settings.eps), float(settings.sigma_w) ** 2
    gamma, beta = abs(float(settings.gamma)), float(settings.beta)
    if b == math.inf:
        s, ws = np.polynomial.hermite_e.hermegauss(160)
        ws = ws / ws.sum()
        factor = 1.0
    elif b == 2:
        s, ws, factor = np.array([-1.0, 1.0]), np.array([0.5, 0.5]), 2.0
    else:
        s, ws, _, _ = gegenbauer_rule(b, PSI_NODES, 1)
        factor = b / (b - 1)
    kappas = np.geomspace(1e-9, 1.0, 200)
    with np.errstate(all="ignore"):
        values = settings.activation.np(np.outer(gamma * kappas, s) + beta)
        mean = values @ ws
        upper = factor * ((values - mean[:, None]) ** 2 @ ws)  # U(gamma kappa)
    if not np.all(np.isfinite(upper)):
        return True
    per_kappa2 = upper / kappas**2  # smooth in log kappa, constant as kappa -> 0 for phi with a slope at beta

    def bound(k2):
        k = np.sqrt(np.clip(k2, kappas[0] ** 2, 1.0))
        return np.interp(np.log(k), np.log(kappas), per_kappa2) * k * k

    a0 = max(float(sw2 * upper[-1]), 1e-300)
    grid = a0 * np.geomspace(1e-12, 1e3, 300)
    if b == math.inf:
        ratio = sw2 * bound(grid / (grid + eps)) / grid
    else:
        n = b - 1
        y, wy = legendre_float64(200)
        lo, hi = max(math.sqrt(n) - 12.0, 0.0), math.sqrt(n) + 12.0
        y = lo + (hi - lo) * (y + 1) / 2
        with np.errstate(divide="ignore"):
            log_density = (n - 1) * np.log(y) - y * y / 2
        wy = wy * np.exp(log_density - log_density.max())
        wy = wy / wy.sum()
        k2 = grid[:, None] * y[None, :] ** 2 / (grid[:, None] * y[None, :] ** 2 + b * eps)
        ratio = sw2 * (bound(k2) @ wy) / grid
    return not bool(np.all(ratio < 1 - COEXISTENCE_MARGIN))
