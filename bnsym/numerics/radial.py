r"""The radial integral that ``eps > 0`` adds (docs/theory.md section 4).

With ``eps > 0`` the batch-norm map no longer forgets ``|G h|``.  At a BSB1
point of scale ``a = sigma_w^2 (q - c)``, ``|G h|^2 = a y^2`` with ``y``
chi-distributed with ``n = B - 1`` degrees of freedom,

    p_n(y) = y^(n-1) exp(-y^2/2) / (2^(n/2-1) Gamma(n/2)),   y > 0,

and the normalized pre-activation is ``kappa s`` with
``kappa^2 = a y^2 / (a y^2 + B eps)``.  Expectations become
``int E_sphere[...](kappa(y)) p_n(y) dy``.

:func:`chi_rule` returns panels of Gauss-Legendre nodes for that integral:
truncated where ``p_n`` is below ``10^-working_dps`` of its peak, split into panels
at most :data:`MAX_PANEL_WIDTH` wide where that support is wide (``n`` past about 10^4), graded
geometrically towards ``y = 0`` down to ``y_eps = sqrt(B eps / a)`` (the
integrand has its singularities at ``y = +- i y_eps``), and cut at the radii where
a kink of ``phi`` enters the support of the sphere law or two kink lines cross on
its edge (there the sphere expectations are not analytic), each panel beside such a
radius with the rule its flag calls for (:func:`~bnsym.numerics.quadrature.breakpoint_panels`).

:func:`reweight` moves a rule designed for scale ``a_d`` to a nearby scale
``a`` without new integrand evaluations: substituting ``y = r y'``,
``r = sqrt(a_d / a)``, keeps every ``kappa`` at its node and multiplies the
weights by ``r p_n(r y) / p_n(y) = r^n exp(-(r^2 - 1) y^2 / 2)``.
"""

from __future__ import annotations

import mpmath

from bnsym.numerics.quadrature import breakpoint_panels, panel
from bnsym.numerics.roots import bisect

#: Relative change of scale a rule may be reweighted over (its truncation has that margin).
REWEIGHT_MARGIN = mpmath.mpf("0.15")
#: The widest panel of the radial rule where the support is wider than twice this (``n`` past
#: about ``10^4``): the chi density's peak has width ``1/sqrt 2`` whatever ``n``, while the support
#: grows with the margin, ``0.3 sqrt(n)``; one panel over ``[268, 373]`` at ``n = 10^5`` did not
#: converge at any level.
MAX_PANEL_WIDTH = 24
#: The ends of the support are bisected to a width of ``2^-SUPPORT_BITS`` relative to themselves
#: (they only place the rule's outer panels, with :data:`REWEIGHT_MARGIN` beyond them).
SUPPORT_BITS = 60


def _log_density(n, y):
    return (n - 1) * mpmath.log(y) - y * y / 2 - (mpmath.mpf(n) / 2 - 1) * mpmath.log(2) - mpmath.loggamma(mpmath.mpf(n) / 2)


def density_drop(n: int, y):
    """``log10(p_n(y_peak) / p_n(y))``: how many decimal digits ``p_n`` at ``y`` lies below its peak."""
    peak = mpmath.sqrt(n - 1) if n > 1 else mpmath.mpf(10) ** -3  # chi_1 peaks at 0, flat there
    return (_log_density(n, peak) - _log_density(n, y)) / mpmath.log(10)


def support(n: int, working_dps: int):
    """``(y_lo, y_hi)`` outside of which ``p_n`` is below ``10^-(working_dps+5)`` of its peak, with the reweighting margin."""
    drop = (working_dps + 5) * mpmath.log(10)
    if n == 1:
        return mpmath.mpf(0), mpmath.sqrt(2 * drop) * (1 + REWEIGHT_MARGIN)
    y0 = mpmath.sqrt(n - 1)

    def h(y):  # log p(y) - log p(y0)
        return (n - 1) * mpmath.log(y / y0) - (y * y - y0 * y0) / 2 + drop

    width = mpmath.mpf(2) ** -min(SUPPORT_BITS, mpmath.mp.prec - 4)  # (below 64 bits, what the precision resolves)
    hi = bisect(h, y0, y0 + mpmath.sqrt(2 * drop) + 2 * mpmath.sqrt(drop), width)[1]
    tiny = mpmath.mpf(10) ** -working_dps
    lo = bisect(h, y0, tiny, width)[1] if h(tiny) < 0 else mpmath.mpf(0)
    return max(lo, mpmath.mpf(0)) / (1 + REWEIGHT_MARGIN), hi * (1 + REWEIGHT_MARGIN)


def chi_rule(n: int, level: int, working_dps: int, *, y_eps, singular_radii=()):
    """Nodes ``y_j`` and weights ``w_j`` with ``sum w_j g(y_j) ~ int g(y) p_n(y) dy``.

    ``y_eps``: modulus of the integrand's complex singularities (panels graded by factors of 2
    from ``2 y_eps``); ``singular_radii``: ``(y_j, flag)`` where the integrand is not analytic,
    ``flag`` that of :func:`~bnsym.numerics.quadrature.breakpoint_panels` (``"sqrt"``: analytic
    in ``sqrt|y - y_j|`` on each side; ``False``: any algebraic singularity): panels end there
    and the panels beside them are graded (docs/theory.md section 15.3).
    """
    lo, hi = support(n, working_dps)
    cuts = []
    if hi - lo > 2 * MAX_PANEL_WIDTH:  # large n: the reweighting margin spans many widths of the density's peak
        pieces = int(mpmath.ceil((hi - lo) / MAX_PANEL_WIDTH))
        cuts += [(lo + (hi - lo) * k / pieces, True) for k in range(1, pieces)]
    if y_eps > 0:
        y = 2 * y_eps
        while y < hi:
            if y > lo:
                cuts.append((y, True))
            y *= 2
    cuts += list(singular_radii)
    nodes, weights = [], []
    for a, b, kind, (smooth_lo, smooth_hi) in breakpoint_panels(lo, hi, cuts, working_dps):
        ys, ws = panel(a, b, level, working_dps, kind=kind, smooth_lo=smooth_lo, smooth_hi=smooth_hi)
        for y, w in zip(ys, ws):
            if y <= 0:
                continue
            nodes.append(y)
            weights.append(w * mpmath.exp(_log_density(n, y)))
    return nodes, weights


def reweight(n: int, nodes, weights, ratio):
    """Weights for scale ``a`` of a rule built for ``a_d``; ``ratio = a_d / a``."""
    r = mpmath.sqrt(ratio)
    factor = r**n
    return [w * factor * mpmath.exp(-(ratio - 1) * y * y / 2) for y, w in zip(nodes, weights)]


def kappa_squared(a, y, batch_size, eps):
    """``a y^2 / (a y^2 + B eps)``."""
    r2 = a * y * y
    return r2 / (r2 + batch_size * eps)


def radius_at(kappa, a, batch_size, eps):
    """The radius ``y`` whose radial factor is ``kappa`` (the inverse of :func:`kappa_squared`):
    ``y = sqrt(B eps kappa^2 / (a (1 - kappa^2)))``, for ``0 < kappa < 1``."""
    return mpmath.sqrt(batch_size * eps * kappa * kappa / (a * (1 - kappa * kappa)))
