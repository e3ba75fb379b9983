r"""The one-batch Gram map of any activation at any input batch: the spherical route (docs/theory.md section 7.1).

    V(Sigma)_ab = E[ phi(gamma x_a + beta) phi(gamma x_b + beta) ],   x = sqrt(B) G h / sqrt(|G h|^2 + B eps),
    h ~ N(0, sigma_w^2 Sigma),

for every activation (kinks included), ``gamma``, ``beta``, ``eps >= 0``, ``sigma_w > 0``, and every
``Sigma`` whose ``K = G Sigma G`` has rank ``B - 1``.  Each pair ``(a, b)`` is one two-dimensional integral
against the law of the pair ``(x_a, x_b)`` of :class:`bnsym.numerics.angular_gaussian.PairDensity` (closed
form); one such integral gives ``V_ab``, ``V_aa`` and ``V_bb`` together, so every diagonal entry is computed
``B - 1`` times and the spread of those values is added to its error.  Two rules:

* activations with no kink that ``gamma x + beta`` reaches (:func:`kinks_in_support`): the polar rule (:meth:`PairDensity.expect_polar`), whose radial coordinate
  is the Schwinger parameter itself, so no equation is solved; the law's total mass is integrated
  beside the entries and its distance from 1 is added to their errors;
* kinked activations: the sphere law's nested-angle rule, cut at the kinks, weighted by the density
  ratio (:meth:`bnsym.numerics.sphere.SphereLaw.expect_weighted`, :meth:`PairDensity.ratio`: one
  warm-started Newton solve per node, some thirty times slower).

Precision: each pair's rule level is raised until two levels agree to ``10^-dps / 10`` of the pair's
largest entry; the largest of the pair's three level differences is the error of each of its entries.
For the kinked rule: at ``eps = 0`` the density ratio is at most ``(lambda_max / g)^(n/2)`` (``g`` the
geometric mean of the nonzero eigenvalues of ``K``, ``n = B - 1``), so the sphere law runs with that many
more digits (its truncation of the angles stays below the promise); at ``eps > 0`` the ratio can be
larger (161 at the origin for ``K = G`` and ``eps / sigma_w^2 = 100``), which the extra digits do not
cover.  At ``eps = 0`` the ratio is analytic on the ellipse
and the rule converges geometrically; at ``eps > 0`` it vanishes to all orders at the ellipse's edge
and the convergence is slower.

Up to :data:`FLOAT_DPS` digits the polar rule runs in float64 for every pair at once
(:func:`~bnsym.numerics.angular_gaussian.polar_map_float`), kinked activations too (the circle and each ray cut at
the kink lines): one layer of tanh at B = 32 in about 2 s, of ReLU at ``beta = 0.2`` in about 3 s at B = 4
(the mpmath nested rule: 50 s at 11 digits) and 20 s at B = 16.  Where the float64
rule does not converge (values beyond its range, nearly collapsed batches) the mpmath rules take over.

Cost (mpmath): ``B (B - 1) / 2`` two-dimensional rules per layer of ``O(N M)`` nodes (``N`` radial, ``M``
angular), ``O(1)`` operations a node plus ``O(B)`` per radial node (the nested rule: ``O(B)`` a node):
measured (one pair, 15 digits) tanh B = 4 1.4 s, B = 8 2 s, B = 8 at eps = 1e-3 9 s; gelu B = 5, 30 digits,
eps = 0.1: 11 s; the kinked rule 34-50 s for one pair at B = 4.

May import: :mod:`bnsym.numerics`, :mod:`bnsym.meanfield.laplace` (the centred spectrum),
:mod:`bnsym.meanfield.results`, :mod:`bnsym.errors`, :mod:`bnsym.estimate`, mpmath.
"""

from __future__ import annotations

import math

import mpmath
import numpy as np

from bnsym.errors import BnsymError, PrecisionError
from bnsym.estimate import Estimate
from bnsym.meanfield.laplace import centred_spectrum, centred_spectrum_float
from bnsym.meanfield.results import Settings
from bnsym.numerics.angular_gaussian import PairDensity, polar_map_float
from bnsym.numerics.quadrature import geometric_mean
from bnsym.numerics.sphere import Integrand, SphereLaw

#: Up to this many digits the polar rule runs in float64, every pair at once (kinked activations: the rule
#: cut at the kink lines; ReLU at beta = 0.2, one layer: B = 4 3.4 s, B = 8 3 s, B = 16 20 s, B = 32 2.6 min).
FLOAT_DPS = 10

#: Largest condition number of ``G Sigma G`` (on ``1^perp``) for which ``propagate``'s ``"auto"`` takes the
#: spherical route: the pair law concentrates as it grows, in angle more than in radius (measured, tanh,
#: B = 4, one layer with the mpmath polar rule's adaptive angle, ``ADAPTIVE_ANGLE_CONDITION``: 6 digits
#: 5.5 s at 1000 and 8.5 s at 10^4 (measured before 10 digits and fewer ran in float64, 0.2 s at 1000);
#: 15 digits 4 s at 10, 17 s at 100, 26 s at 1000, 55 s at 10^4; 30 digits 142 s at 1000).  Before the
#: adaptive angle, 1000 failed at 15 digits and this was 100.
AUTO_CONDITION = 1000


def spherical_obstacle(settings: Settings, gram, *, condition=None):
    """Why the spherical route cannot take ``gram`` (None when it can): ``K = G Sigma G`` must have rank
    ``B - 1``.  With ``condition`` (``propagate``'s ``"auto"``) also: condition number of ``K`` on ``1^perp``
    at most ``condition``, and at ``eps > 0`` a rate ``eps B / sigma_w^2`` within ``10^6`` of the geometric
    mean ``g`` of ``K``'s eigenvalues either way (the polar rule's span, :meth:`PairDensity.expect_polar`).
    Cost: one eigen-decomposition of ``K`` in mpmath."""
    with mpmath.workdps(settings.working_dps):
        lam, _ = centred_spectrum(gram, settings.working_dps)
        return _spectrum_obstacle(settings, lam, gram.rows, condition)


def _spectrum_obstacle(settings, lam, b, condition):
    """:func:`spherical_obstacle` from the nonzero eigenvalues ``lam`` of ``K``."""
    if b < 4:
        return f"the spherical route needs B >= 4, got {b}"
    if len(lam) < b - 1:
        return (f"G Sigma G has rank {len(lam)} < B - 1 = {b - 1} (inputs collapsed onto fewer directions), "
                "where the pair law has no density")
    if condition is None:
        return None
    ratio = max(lam) / min(lam)
    if ratio > condition:
        return (f"G Sigma G has condition number {mpmath.nstr(ratio, 3)} > {condition} (a nearly collapsed batch, "
                "whose pair law concentrates and costs the rule minutes)")
    spread = settings.eps * b / settings.sigma_w**2 / geometric_mean(lam)
    if settings.eps and not mpmath.mpf(10) ** -6 <= spread <= mpmath.mpf(10) ** 6:
        return (f"eps B / sigma_w^2 is {mpmath.nstr(spread, 3)} times the scale of G Sigma G, beyond the polar "
                "rule's span of 10^6 either way")
    return None


def kinks_in_support(settings: Settings):
    """The activation's kinks that the batch-normalized pre-activation ``gamma x + beta`` reaches:
    ``|(k - beta) / gamma| < sqrt(B - 1)`` (every coordinate of ``x`` lies in that interval, at any eps)."""
    limit = mpmath.sqrt(settings.batch_size - 1)
    return [k for k in settings.activation.numeric_kinks() if abs((k - settings.beta) / settings.gamma) < limit]


def spherical_map(settings: Settings, gram, *, float_only=False):
    """``(V(Sigma), error)`` by the spherical route, as mpmath matrices (see the module docstring).

    Sets its own precision: ``settings.working_dps`` plus, for kinked activations, the digits the
    density ratio's bound takes.  Raises :class:`~bnsym.errors.BnsymError` when ``G Sigma G`` has rank
    below ``B - 1`` and :class:`~bnsym.errors.PrecisionError` when a pair does not converge.
    ``float_only``: raise the float64 rule's :class:`~bnsym.errors.PrecisionError` instead of falling back
    to the mpmath rules (``propagate``'s ``"auto"`` on kinked activations, which samples rather than wait
    minutes per pair for the nested rule); requires ``settings.dps`` within the float64 rule's range.
    """
    b = gram.rows
    kinks = kinks_in_support(settings)
    kinked = bool(kinks)
    if float_only and settings.dps > FLOAT_DPS:
        raise ValueError(f"float_only needs dps <= {FLOAT_DPS}, got {settings.dps}")
    if settings.dps <= FLOAT_DPS:
        try:
            value, error = _spherical_float(settings, np.array(gram.tolist(), dtype=float), kinks)
            return mpmath.matrix(value.tolist()), mpmath.matrix(error.tolist())
        except PrecisionError:  # not reached in float64 (values beyond its range, a nearly collapsed batch)
            if float_only:
                raise
            # otherwise the mpmath rules below
    working = settings.working_dps
    with mpmath.workdps(working):
        lam, vecs = centred_spectrum(gram, working)
        obstacle = _spectrum_obstacle(settings, lam, b, None)
        if obstacle is not None:
            raise BnsymError(obstacle)
        # the nested rule truncates the sphere law's angles at 10^-working_dps of its weight; the ratio
        # rho_K / rho_G is at most (lambda_max / g)^(n/2) at eps = 0 (more at eps > 0, see the docstring)
        extra = max(0, math.ceil(float((b - 1) / 2 * mpmath.log10(max(lam) / geometric_mean(lam))))) if kinked else 0
    working += extra
    with mpmath.workdps(working):
        if extra:
            lam, vecs = centred_spectrum(gram, working)
        rate = settings.eps / settings.sigma_w**2
        f = Integrand(settings.activation, mpmath.mpf(settings.gamma), mpmath.mpf(settings.beta))
        rtol = mpmath.mpf(10) ** -settings.dps / 10
        law = SphereLaw(b, working) if kinked else None
        value, error = mpmath.matrix(b, b), mpmath.matrix(b, b)
        diagonal = {}  # a -> [estimates of V_aa]
        for a in range(b):
            for c in range(a + 1, b):
                density = PairDensity(lam, (vecs[a], vecs[c]), b, rate)
                if kinked:
                    cross, first, second = law.expect_weighted(_pair_integrands(f), density.ratio, rtol, None)
                else:
                    cross, first, second, mass = density.expect_polar(_pair_integrands(f) + [((), ())], rtol, working)
                    # the law's total mass is 1 exactly: its distance from 1, a relative error of the rule,
                    # is added in units of the pair's largest entry
                    size = max(abs(e.value) for e in (cross, first, second))
                    slack = (abs(mass.value - 1) + mass.error) * size
                    cross, first, second = (Estimate(e.value, e.error + slack) for e in (cross, first, second))
                # the rule's level was accepted on the largest of the three differences; one entry's own
                # difference can be small by accident (levels need not converge monotonically)
                bound = max(cross.error, first.error, second.error)
                cross, first, second = (Estimate(e.value, bound) for e in (cross, first, second))
                value[a, c] = value[c, a] = cross.value
                error[a, c] = error[c, a] = cross.error
                diagonal.setdefault(a, []).append(first)
                diagonal.setdefault(c, []).append(second)
        for a, estimates in diagonal.items():
            value[a, a] = estimates[0].value
            spread = max(abs(e.value - estimates[0].value) for e in estimates)
            error[a, a] = max(e.error for e in estimates) + spread
    return value, error


def _spherical_float(settings, gram, kinks):
    """:func:`spherical_map` in float64 (``dps <= FLOAT_DPS``): the polar rule for every pair at once, cut at the
    lines ``x_a, x_b = (k - beta) / gamma`` of the ``kinks`` (:func:`~bnsym.numerics.angular_gaussian.polar_map_float`)."""
    b = gram.shape[0]
    lam, vecs = centred_spectrum_float(gram)
    obstacle = _spectrum_obstacle(settings, [mpmath.mpf(float(x)) for x in lam], b, None)
    if obstacle is not None:
        raise BnsymError(obstacle)
    activation, gamma, beta = settings.activation, float(settings.gamma), float(settings.beta)
    return polar_map_float(lam, vecs, b, float(settings.eps / settings.sigma_w**2),
                           lambda x: activation.np(gamma * x + beta), 10.0 ** -settings.dps / 10,
                           kinks=[float((k - settings.beta) / settings.gamma) for k in kinks])


def _pair_integrands(f):
    """The pair integrands giving ``V_ab``, ``V_aa`` and ``V_bb`` from the law of ``(x_a, x_b)``."""
    return [((f,), (f,)), ((f, f), ()), ((), (f, f))]
