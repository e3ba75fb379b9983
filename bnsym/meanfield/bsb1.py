r"""The BSB1 fixed point of the mean-field Gram map (docs/theory.md section 4).

``eps = 0``.  The batch-norm output is ``phi(gamma s + beta)`` with ``s``
uniform on the sphere of radius ``sqrt(B)`` in ``1^perp``, whatever the
input Gram matrix, so the map lands on its fixed point in one step:

    q* = E[f(s_a)^2],   c* = E[f(s_a) f(s_b)],   f(s) = phi(gamma s + beta).

``eps > 0``.  With ``|G h|^2 = a y^2``, ``y ~ chi_{B-1}`` and ``a`` the
scale ``sigma_w^2 (q - c)`` of the previous layer, the output is
``phi(gamma kappa s + beta)``, ``kappa^2 = a y^2 / (a y^2 + B eps)``.  The
scale obeys the one-dimensional fixed-point equation

    a = sigma_w^2 E_y[ spread(gamma kappa(a, y)) ],   spread(g) = q(g) - c(g),

and then ``q* = E_y[q(gamma kappa)]``, ``c* = E_y[c(gamma kappa)]``.  The
sphere moments are evaluated once per radial node of a rule designed at a
scale ``a_d``; for nearby ``a`` the rule is reweighted, not re-evaluated
(:func:`bnsym.numerics.radial.reweight`), the equation is solved by the secant
method, and the rule is redesigned when the root leaves a 10% window around
``a_d``.  Two radial levels are compared for the error estimate.  At
``B = inf``, ``kappa^2 = a / (a + eps)`` is deterministic and the equation is
solved directly.

Past the critical eps (:mod:`bnsym.meanfield.critical`, docs/theory.md
section 15) the scale contracts to zero and the fixed point is the
degenerate ``G Sigma* G = 0``, ``q* = c* = phi(beta)^2`` (``regime="degenerate"``).
If the scale contracts where no critical eps exists,
:class:`~bnsym.errors.BnsymError` is raised.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import mpmath

from bnsym.numerics import radial
from bnsym.numerics.quadrature import size as rule_size
from bnsym.numerics.backward import bracket
from bnsym.errors import BnsymError, PrecisionError
from bnsym.estimate import ROUNDING, Estimate, combined_meaning, rounding_error, weighted_sum
from bnsym.meanfield.critical import DEGENERATE, coexistence_possible, regime
from bnsym.numerics.memo import cached_at_tolerance
from bnsym.numerics.curve import SharedCurve, shared_holder
from bnsym.numerics.roots import bisect
from bnsym.numerics.moments import MomentCurve, SphereMoments, curve_evaluation, moments_at_gains, radial_events, resolve_method
from bnsym.meanfield.results import FixedPoint, Settings, make_settings
from bnsym.numerics.sphere import SphereLaw

#: Radial rule levels tried before giving up (a kinked activation at beta != 0 may converge only
#: algebraically: ReLU at beta = 0.2, B = 8, eps = 0.01, dps 15 needs level 10; docs/theory.md 15.3).
MAX_RADIAL_LEVEL = 11
#: The root may move this far (relatively) from the design scale before the rule is redesigned.
WINDOW = mpmath.mpf("0.1")
#: Points of a design window at which ``a - F(a)`` is sampled when the inner secant runs off from it or the
#: Newton step points back into a window found without a root (:func:`_window_root`): a sign change is a root
#: the secant missed (tanh at B = 8 just below its critical eps), bisected; one sign is no root there (a
#: near-tangency, where the coexisting branch past eps_c ends), and later designs stay out of that window.
WINDOW_SAMPLES = 8


def fixed_point(activation, batch_size, *, gamma=1, beta=0, eps=0, sigma_w=1, dps=15, method="auto") -> FixedPoint:
    r"""The BSB1 fixed point ``Sigma* = (q*-c*) I + c* 1 1^T`` of the Gram map.

    ``activation``: a name (``"relu"``, ``"tanh"``, ``"leaky_relu(0.2)"``...),
    an expression in ``x`` or an :class:`~bnsym.activations.expression.Activation`.
    ``batch_size``: an integer ``>= 2`` or ``math.inf``.  ``gamma`` (nonzero),
    ``beta``, ``eps >= 0``, ``sigma_w > 0``: the network's parameters
    (``sigma_w`` only matters when ``eps > 0``).  ``dps``: the number of
    correct significant digits promised (1 to 100); the result's ``error`` is
    the estimated absolute error of ``q*`` (``c_error`` that of ``c*``), and
    :class:`~bnsym.errors.PrecisionError` is raised rather than returning fewer
    digits.  ``method``: ``"auto"`` (closed forms for positively homogeneous
    activations of integer degree at ``beta = 0``, quadrature otherwise),
    ``"closed form"`` or ``"quadrature"``.

    Cost at ``eps = 0``: one sphere expectation of each kind (milliseconds
    with a closed form, a fraction of a second to seconds with quadrature,
    growing with ``dps``); at ``eps > 0``, one per radial node (tens).

    >>> print(fixed_point("relu", 4, dps=20))
    q* = 0.5, c* = 0.084748294021083133231
    >>> print(fixed_point("identity", 10))
    q* = 1.0, c* = -0.111111111111111
    """
    return bsb1_state(make_settings(activation, batch_size, gamma=gamma, beta=beta, eps=eps, sigma_w=sigma_w, dps=dps, method=method)).fixed_point


# ------------------------------------------------------------------- state
@dataclass(frozen=True)
class RadialNode:
    """One node of the radial rule: weight, ``S^2 = a y^2 + B eps``, ``kappa^2``, moments."""

    weight: mpmath.mpf
    s_squared: mpmath.mpf
    kappa_squared: mpmath.mpf
    moments: SphereMoments


@dataclass(frozen=True)
class BSB1State:
    """Everything downstream quantities need at the fixed point.

    ``moments``: the sphere moments at gain ``gamma`` (``eps = 0``) or at
    ``gamma kappa*`` (``B = inf``, ``eps > 0``); ``radial``: for finite ``B``
    and ``eps > 0``, the nodes of the two finest radial rules (coarse, fine)
    at the solved scale.  ``scale`` is ``a* = sigma_w^2 (q* - c*)``.
    """

    settings: Settings
    fixed_point: FixedPoint
    scale: Estimate
    method: str
    moments: SphereMoments | None = None
    radial: tuple | None = None


@lru_cache(maxsize=128)
def bsb1_state(settings: Settings) -> BSB1State:
    """Solve for the fixed point under ``settings`` (cached per settings)."""
    method = resolve_method(settings.method, settings.activation, settings.beta)
    past_critical = regime(settings) == DEGENERATE
    with mpmath.workdps(settings.working_dps):
        law = SphereLaw(settings.batch_size, settings.working_dps)
        if settings.eps == 0:
            state = _exact(settings, law, method)
        elif past_critical:
            # the degenerate point attracts, but a nondegenerate point may coexist where phi is flat at beta and
            # steep around it (gelu at beta = -0.673, gamma = 2.652, eps = 0.05: lambda_G 1.93 there, 0.186 at
            # the degenerate point); networks started from inputs of ordinary scale reach it, so it is the answer
            # when the solve from the eps = 0 scale finds it before contracting by COEXISTING_FLOOR
            state = _coexisting(settings, law, method) if coexistence_possible(settings) else None
            if state is None:
                return _degenerate(settings, method)
        elif settings.batch_size == math.inf:
            state = _gaussian_with_eps(settings, law, method)
        else:
            state = _radial(settings, law, method)
    _check_precision(state.fixed_point)
    return state


#: Key of the radial :class:`~bnsym.numerics.moments.MomentCurve` in a moment cache.
CURVE = "moment curve"
#: Digits of a radial node's density drop that its moment tolerance does not use (section 15.3).
SLACK_MARGIN = 3


def moment_tolerance(settings: Settings):
    """Relative tolerance asked of every sphere expectation."""
    return mpmath.mpf(10) ** -(settings.dps + 4)


def _moments(settings, law, gain, method, cache=None):
    return _moments_at(settings, law, [gain], method, cache)[0]


def _moments_at(settings, law, gains, method, cache=None, rtol=None):
    """The sphere moments at each gain to ``rtol`` (default :func:`moment_tolerance`), those not in
    ``cache`` to that tolerance evaluated together (and cached)."""
    def compute(new, tol):
        return moments_at_gains(settings.activation, law, new, settings.beta, settings.gamma, tol, gradient=True, method=method)

    rtol = moment_tolerance(settings) if rtol is None else rtol
    return cached_at_tolerance({} if cache is None else cache, gains, rtol, compute, settings.working_dps)


def _make_fixed_point(settings, q: Estimate, c: Estimate, spread: Estimate, method, iterations=1):
    return FixedPoint(
        value=q.value,
        error=q.error,
        settings=settings,
        c=c.value,
        c_error=c.error,
        spread=spread.value,
        spread_error=spread.error,
        method=method,
        iterations=iterations,
        meaning=combined_meaning(q, c, spread),
    )



def _check_precision(fp: FixedPoint):
    dps = fp.settings.dps
    tol = mpmath.mpf(10) ** -dps
    for name, value, error in (("q*", fp.value, fp.error), ("q*-c*", fp.spread, fp.spread_error)):
        if value == 0:
            raise PrecisionError(
                f"{name} evaluates to exactly 0 at the working precision ({fp.settings.working_dps} digits): the "
                "activation is constant on the batch, or its values there cancel below that precision "
                "(e.g. 1 + erf(x) at very negative x); bnsym cannot tell which, so it gives no BSB1 point"
            )
        if error > tol * abs(value):
            raise PrecisionError(
                f"{name} reached only {mpmath.nstr(error / abs(value), 3)} relative error, "
                f"short of the {dps} digits asked (settings: {fp.settings.as_dict()})"
            )
    if fp.c_error > tol * abs(fp.value):
        raise PrecisionError(f"c* reached only {mpmath.nstr(fp.c_error, 3)} absolute error, short of {dps} digits")


# ------------------------------------------------------- past the critical eps
#: Past the critical eps, the solve from the eps = 0 scale looks for a nondegenerate point down to this
#: fraction of that scale before it settles for the degenerate one (docs/theory.md section 15).
COEXISTING_FLOOR = mpmath.mpf("1e-4")


class ScaleContracts(BnsymError):
    """The scale equation's iterates fall towards 0: no nondegenerate BSB1 point from this start."""


def _coexisting(settings, law, method):
    """The nondegenerate fixed point that coexists with the attracting degenerate one past the critical
    eps, or ``None`` when the scale contracts below :data:`COEXISTING_FLOOR` of its start."""
    try:
        if settings.batch_size == math.inf:
            return _gaussian_with_eps(settings, law, method, floor=COEXISTING_FLOOR)
        return _radial(settings, law, method, floor=COEXISTING_FLOOR)
    except ScaleContracts:
        return None


def _degenerate(settings, method):
    """``G Sigma* G = 0``: every sample has the representation ``phi(beta) 1`` (docs/theory.md section 15)."""
    with mpmath.workdps(settings.working_dps):
        level = settings.activation.mp(settings.beta) ** 2
        exact = Estimate(level, rounding_error(level, settings.working_dps), meaning=ROUNDING)
        zero = Estimate(mpmath.mpf(0), mpmath.mpf(0), meaning=ROUNDING)
    fp = FixedPoint(value=exact.value, error=exact.error, settings=settings, c=exact.value, c_error=exact.error,
                    spread=zero.value, spread_error=zero.error, method=method, iterations=0, meaning=ROUNDING,
                    regime=DEGENERATE)
    return BSB1State(settings, fp, zero, method)


# ------------------------------------------------------------------ eps = 0
def _exact(settings, law, method):
    m = _moments(settings, law, settings.gamma, method)
    fp = _make_fixed_point(settings, m.q, m.c, m.spread, method)
    return BSB1State(settings, fp, settings.sigma_w**2 * m.spread, method, moments=m)


# ------------------------------------------------------- B = inf, eps > 0
def _gaussian_with_eps(settings, law, method, floor=None):
    """Solve ``a = sigma_w^2 spread(gamma sqrt(a/(a+eps)))`` by the secant method."""
    sw2, eps, gamma = settings.sigma_w**2, settings.eps, settings.gamma
    cache = {}

    def moments_at(a):
        return _moments(settings, law, gamma * mpmath.sqrt(a / (a + eps)), method, cache)

    def g(a):
        return a - sw2 * moments_at(a).spread.value

    a0 = sw2 * _moments(settings, law, gamma, method, cache).spread.value
    a = _secant(g, a0, a0 * (1 + mpmath.mpf(1) / 16), settings, what="scale sigma_w^2 (q*-c*) at B=inf",
                lower=None if floor is None else floor * a0)
    m = moments_at(a)
    # error of the root from the error of the spread: |da| = sw2 |d spread| / |1 - F'(a)|
    h = a * mpmath.mpf(10) ** -(settings.working_dps // 3)
    slope = (g(a + h) - g(a - h)) / (2 * h)
    a_error = sw2 * m.spread.error / abs(slope) if slope != 0 else mpmath.inf
    fp = _make_fixed_point(settings, m.q, m.c, m.spread, method, iterations=len(cache))
    return BSB1State(settings, fp, Estimate(a, a_error), method, moments=m)


def _secant(g, x0, x1, settings, *, what, lower=None):
    """Root of ``g`` by the secant method from ``x0, x1``, to the working precision; BnsymError once an
    iterate falls below ``lower`` (default ``10^-working_dps x0``, relative to the start: the scale of a
    saturated activation is itself tiny, ``2e-31`` for tanh at ``beta = 20``, and an absolute floor of
    ``10^-working_dps`` took it for a contraction): the scale contracts towards 0."""
    tol = mpmath.mpf(10) ** -(settings.working_dps - 3)
    start = x0
    g0, g1 = g(x0), g(x1)
    for _ in range(100):
        if g1 == 0:  # an exact root at the working precision
            return x1
        if g1 == g0:
            if abs(x1 - x0) <= tol * abs(x1):
                return x1
            break
        x2 = x1 - g1 * (x1 - x0) / (g1 - g0)
        if x2 <= 0:
            x2 = x1 / 2
        x0, g0, x1, g1 = x1, g1, x2, g(x2)
        if abs(x1 - x0) <= tol * abs(x1):
            return x1
        if x1 < (mpmath.mpf(10) ** -(settings.working_dps) * abs(start) if lower is None else lower):
            break
    raise ScaleContracts(
        f"no BSB1 fixed point with a positive {what}: the scale contracts towards 0 "
        f"(eps={mpmath.nstr(settings.eps, 6)} is too large for sigma_w={mpmath.nstr(settings.sigma_w, 6)})"
    )


# ---------------------------------------------------- finite B, eps > 0
@dataclass(frozen=True)
class RadialLevel:
    """The solved scale and the radial nodes of one rule level."""

    scale: mpmath.mpf
    nodes: tuple
    q: Estimate
    c: Estimate
    spread: Estimate
    rate: Estimate  # lambda_G at this level, part of the convergence criterion
    designs: int


def _radial(settings, law, method, floor=None):
    b, eps, sw2 = settings.batch_size, settings.eps, settings.sigma_w**2
    cache = {}
    # analytic in kappa (above a kink's floor): interpolate the moments along the radius (docs/theory.md section 15)
    plan = curve_evaluation(
        lambda kappas, rtol: _moments_at(settings, law, [settings.gamma * kappa for kappa in kappas], method, cache, rtol),
        settings.activation, settings.beta, settings.gamma, law,
    ) if method == "quadrature" else None
    if plan is not None:  # shared by every eps and sigma_w at these settings (the moments at single gains stay with the solve)
        cache[CURVE] = SharedCurve(
            shared_holder("moments", settings.activation, b, settings.gamma, settings.beta, settings.dps, method),
            lambda: MomentCurve(plan[0], settings.working_dps, moment_tolerance(settings), floor=plan[1]))
    a = sw2 * _moments(settings, law, settings.gamma, method, cache).spread.value
    tol = mpmath.mpf(10) ** -(settings.dps + 2)
    level = _start_level(settings, a, tol)
    levels = []
    while True:
        if level > MAX_RADIAL_LEVEL:
            raise PrecisionError(
                f"the radial integral over |Gh| did not converge to {settings.dps} digits "
                f"(B={b}, eps={mpmath.nstr(eps, 6)})"
            )
        current = _solve_level(settings, law, method, level, a, cache, floor)
        levels.append(current)
        a = current.scale
        if len(levels) >= 2:
            coarse = levels[-2]
            if all(
                abs(x.value - y.value) <= tol * abs(y.value)
                for x, y in ((coarse.q, current.q), (coarse.spread, current.spread), (coarse.rate, current.rate))
            ) and abs(coarse.c.value - current.c.value) <= tol * abs(current.q.value):
                break
        level += 1
    coarse = levels[-2]

    def with_rule_error(fine, rough):
        return Estimate(fine.value, fine.error + abs(fine.value - rough.value))

    q = with_rule_error(current.q, coarse.q)
    c = with_rule_error(current.c, coarse.c)
    spread = with_rule_error(current.spread, coarse.spread)
    fp = _make_fixed_point(settings, q, c, spread, method, iterations=sum(lv.designs for lv in levels))
    return BSB1State(settings, fp, sw2 * spread, method, radial=(coarse, current))


def _start_level(settings, a, tol):
    """The first radial level worth evaluating sphere moments on.

    At least ``0.35 * working_dps`` nodes per panel, and a rule that integrates
    the chi density's own moments (``E[1] = 1``, ``E[y^2] = n``) to ``tol``:
    a coarser rule would steer the scale equation with a wrong density, and
    its moments would be thrown away anyway.  Costs no sphere expectation.
    """
    b, eps = settings.batch_size, settings.eps
    n = b - 1
    level = 0
    while rule_size(level) < 0.35 * settings.working_dps:
        level += 1
    with mpmath.workdps(settings.working_dps):
        y_eps = mpmath.sqrt(b * eps / a)
        while level < MAX_RADIAL_LEVEL:
            ys, ws = radial.chi_rule(n, level, settings.working_dps, y_eps=y_eps)
            if abs(mpmath.fsum(ws) - 1) <= tol and abs(mpmath.fsum(w * y * y for y, w in zip(ys, ws)) - n) <= tol * n:
                break
            level += 1
    return level


def _solve_level(settings, law, method, level, a_start, cache, floor=None) -> RadialLevel:
    """Solve the scale equation with the level-``level`` radial rule."""
    b, eps, sw2 = settings.batch_size, settings.eps, settings.sigma_w**2
    n = b - 1
    a_design = a_start
    a_floor = a_start * (mpmath.mpf(10) ** -(settings.working_dps) if floor is None else floor)
    ceiling, bottom = mpmath.inf, mpmath.mpf(0)  # no root in a window found at or above / at or below these
    for designs in range(1, 200):
        ys, ws, nodes_k, moments = _design(settings, law, method, level, a_design, cache)

        def spread_of(a, ys=ys, ws=ws, moments=moments):
            weights = radial.reweight(n, ys, ws, a_design / a)
            return sw2 * mpmath.fsum(w * m.spread.value for w, m in zip(weights, moments))

        lo, hi = a_design * (1 - WINDOW), a_design * (1 + WINDOW)
        f_design = spread_of(a_design)
        # Newton-like step with a slope measured inside the window
        h = a_design * WINDOW / 4
        slope = 1 - (spread_of(a_design + h) - spread_of(a_design - h)) / (2 * h)
        step = (a_design - f_design) / slope if slope != 0 else a_design - f_design
        target = a_design - step
        # a Newton step back into a window found without a root (it points at a positive minimum of a - F(a))
        probe = target >= ceiling * (1 - WINDOW) or target <= bottom * (1 + WINDOW)
        if lo < target < hi and not probe:
            try:
                a = _secant(lambda x: x - spread_of(x), a_design, target, settings, what="scale sigma_w^2 (q*-c*)")
            except ScaleContracts:  # the secant ran off from inside the window
                probe = True
            else:
                if lo <= a <= hi:
                    return _level_values(settings, a_design, a, ys, ws, nodes_k, moments, designs)
                target = a
        if probe:  # settle the window itself: a root by bisection, or one sign of a - F(a) on all of it
            sign, root = _window_root(lambda x: x - spread_of(x), lo, hi, settings.working_dps)
            if root is not None:
                return _level_values(settings, a_design, root, ys, ws, nodes_k, moments, designs)
            if sign > 0:  # a > F(a) on the whole window (a near-tangency): no root here, the scale falls
                ceiling, target = min(ceiling, lo), a_design / 2
            else:  # a < F(a) on the whole window: the scale grows
                bottom, target = max(bottom, hi), a_design * 2
        # move the design scale towards the root (at most a factor 2 per redesign), never back into a window
        # found without a root (the Newton step of a positive minimum of a - F(a) points back at it)
        if not mpmath.isfinite(target) or target <= 0:
            target = a_design / 2
        a_design = min(max(target, a_design / 2), a_design * 2, ceiling * (1 - WINDOW))
        a_design = max(a_design, bottom * (1 + WINDOW))
        if bottom * (1 + WINDOW) > ceiling * (1 - WINDOW):
            raise PrecisionError(
                f"the scale equation's root lies between two windows found without one ({mpmath.nstr(bottom, 6)} "
                f"and {mpmath.nstr(ceiling, 6)}), where the secant runs off (B={b}, eps={mpmath.nstr(eps, 6)})")
        if a_design < a_floor:
            break
    else:  # no root and no contraction shown (the scale grew, or crept down from window to window)
        raise PrecisionError(
            f"the scale equation sigma_w^2 (q*-c*) = F(...) was not solved in {designs} designs of the radial rule "
            f"(the design scale went from {mpmath.nstr(a_start, 6)} to {mpmath.nstr(a_design, 6)}; B={b}, "
            f"eps={mpmath.nstr(eps, 6)})"
        )
    raise ScaleContracts(
        f"no BSB1 fixed point with a positive scale sigma_w^2 (q*-c*): it contracts towards 0 "
        f"(eps={mpmath.nstr(eps, 6)} is too large for sigma_w={mpmath.nstr(settings.sigma_w, 6)}, gamma={mpmath.nstr(settings.gamma, 6)})"
    )


def _window_root(g, lo, hi, working_dps):
    """``(0, root)`` for a root of ``g`` in ``[lo, hi]`` (bisection to ``10^-(working_dps-3)`` relative), or
    ``(1, None)`` / ``(-1, None)`` if ``g > 0`` / ``g < 0`` on all of it.

    ``g`` at :data:`WINDOW_SAMPLES` + 1 equally spaced points; a sign change between two is bisected.  Where they
    share one sign, the extremum nearest zero (around the least ``|g|`` among them) is refined by golden-section
    search on its two neighbouring intervals, so that two roots closer than the samples' spacing (2.5% of the
    scale, found by the review) are not read as none; if it reaches zero, the root between it and the nearer
    sample is bisected.  Assumes one extremum between neighbouring samples.  Cost: about 40 evaluations of ``g``
    (the scale equation reweighted, no sphere expectation) plus one per bisection step."""
    xs = [lo + (hi - lo) * i / WINDOW_SAMPLES for i in range(WINDOW_SAMPLES + 1)]
    gs = [g(x) for x in xs]
    tol = mpmath.mpf(10) ** -(working_dps - 3)

    def root(a, b, ga):
        lo, hi = bisect(g, a, b, tol, ga=ga)
        return (lo + hi) / 2

    for x0, x1, g0, g1 in zip(xs, xs[1:], gs, gs[1:]):
        if g0 == 0:
            return 0, x0
        if mpmath.sign(g0) != mpmath.sign(g1):
            return 0, root(x0, x1, g0)
    if gs[-1] == 0:
        return 0, xs[-1]
    sign = mpmath.sign(gs[0])
    i = min(range(len(xs)), key=lambda j: abs(gs[j]))
    a, b = xs[max(i - 1, 0)], xs[min(i + 1, len(xs) - 1)]
    ratio = (mpmath.sqrt(5) - 1) / 2
    for _ in range(30):  # golden section for the least sign * g on [a, b]
        c, d = b - ratio * (b - a), a + ratio * (b - a)
        if sign * g(c) < sign * g(d):
            b = d
        else:
            a = c
    m = (a + b) / 2
    gm = g(m)
    if sign * gm > 0:
        return int(sign), None
    return 0, root(xs[i], m, gs[i]) if gm != 0 else m


def _design(settings, law, method, level, a_design, cache):
    """Radial nodes for the design scale and the sphere moments at each."""
    b, eps = settings.batch_size, settings.eps
    n = b - 1
    beps = b * eps
    # the radii where a kink enters the one-coordinate support or two kink lines cross on the
    # edge of the pair support: the moments are not analytic in the radius there, so the rule's
    # panels end there, each with the map its singularity calls for (docs/theory.md section 15.3)
    singular = [(radial.radius_at(k, a_design, b, eps), flag)
                for k, flag in radial_events(settings.activation, settings.beta, settings.gamma, law) if k < 1]
    ys, ws = radial.chi_rule(n, level, settings.working_dps, y_eps=mpmath.sqrt(beps / a_design), singular_radii=singular)
    kappas = [radial.kappa_squared(a_design, y, b, eps) for y in ys]
    curve = cache.get(CURVE)
    moments = None
    # a node where the chi density is 10^-d of its peak needs its moments only to about
    # rtol 10^d: SLACK_MARGIN digits are kept for the reweighting to nearby scales and the
    # node's panel width (docs/theory.md section 15.3)
    slacks = [max(radial.density_drop(n, y) - SLACK_MARGIN, 0) for y in ys]
    if curve is not None:
        moments = curve.at([mpmath.sqrt(k2) for k2 in kappas], slacks)
    if moments is None:  # not representable: every node by its own sphere expectations
        moments = [None] * len(kappas)
    base = moment_tolerance(settings)
    digits = -mpmath.log10(base)
    for i, (y, k2, slack) in enumerate(zip(ys, kappas, slacks)):
        if moments[i] is None:  # (below a kinked curve's cap, or no curve)
            # the rate weights a node by 1/s^2 = 1/(a y^2 + B eps): up to (a n + B eps)/(B eps)
            # times the chi density's weight near y = 0, which the slack must not spend
            lift = max(mpmath.log10((a_design * n + beps) / (a_design * y * y + beps)), 0)
            negligible = slack - lift >= digits + 1  # its error may exceed its values
            moments[i] = _moments_at(settings, law, [settings.gamma * mpmath.sqrt(k2)], method, cache,
                                     LOOSEST_NODE_RTOL if negligible else base)[0]
    return ys, ws, kappas, moments


#: The relative tolerance asked of a radial node's moments evaluated one by one when its weight
#: is negligible (a chi density and 1/s^2 weight below the tolerance by more than its digits):
#: such a node still gets a few digits, not the full precision, which its centred moments cannot
#: reach in the far tail (density 10^-30 of its peak, gains down to 1e-15): ``phi(gain s + beta)
#: - E phi`` cancels about ``-log10(gain)`` digits there.  Other nodes get the full tolerance.
LOOSEST_NODE_RTOL = mpmath.mpf("1e-3")


def _level_values(settings, a_design, a, ys, ws, kappas, moments, designs) -> RadialLevel:
    b, eps, sw2 = settings.batch_size, settings.eps, settings.sigma_w**2
    weights = radial.reweight(b - 1, ys, ws, a_design / a)
    nodes = tuple(
        RadialNode(w, a_design * y * y + b * eps, k2, m) for w, y, k2, m in zip(weights, ys, kappas, moments)
    )
    q = weighted_sum(weights, [m.q for m in moments])
    c = weighted_sum(weights, [m.c for m in moments])
    spread = weighted_sum(weights, [m.spread for m in moments])
    rate = sw2 * weighted_sum(
        [node.weight / node.s_squared for node in nodes], [bracket(m, b, k2) for m, k2 in zip(moments, kappas)]
    )
    return RadialLevel(a, nodes, q, c, spread, rate, designs)
