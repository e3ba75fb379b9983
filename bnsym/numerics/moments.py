r"""The sphere moments that every mean-field quantity is built from.

At one effective gain ``g`` (``g = gamma`` at ``eps = 0``, ``g = gamma kappa``
with ``kappa = |Gh| / sqrt(|Gh|^2 + B eps)`` otherwise) and shift ``beta``,
with ``f(s) = phi(g s + beta)`` and ``D(s) = gamma phi'(g s + beta)``:

==========  ====================================  ==========================
name        expectation                           used by
==========  ====================================  ==========================
``mean``    ``E[f(s_a)]``                         centring (no cancellation)
``q``       ``E[f(s_a)^2]``                       fixed point
``c``       ``E[f(s_a) f(s_b)]``                  fixed point
``spread``  ``q - c``, computed as ``E[f~^2] - E[f~_a f~_b]`` with ``f~ = f - mean`` (at more working
            digits where ``f - mean`` cancels: :func:`centring_law`)
``d2``      ``E[D_a^2]``                          lambda_G
``d11``     ``E[D_a D_b]``                        lambda_G
``sd2``     ``E[s_a^2 D_a^2]``                    lambda_G
``sd11``    ``E[s_a s_b D_a D_b]``                lambda_G
==========  ====================================  ==========================

Two methods give them: ``"closed form"`` for positively homogeneous
activations of any degree ``alpha > 0`` at ``beta = 0`` (:mod:`bnsym.numerics.closed_forms`:
finite Fourier sums for integer degrees, hypergeometric series for ``x_+^(3/2)`` and the like),
and ``"quadrature"`` for everything (:mod:`bnsym.numerics.sphere`).  ``method="auto"``
takes the closed form where it exists.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import mpmath

from bnsym.numerics import closed_forms
from bnsym.activations import Activation
from bnsym.errors import BnsymInputError
from bnsym.estimate import ROUNDING, Estimate, rounding_error
from bnsym.numerics.curve import RadialCurve
from bnsym.numerics.quadrature import weaker_flag
from bnsym.numerics.sphere import Integrand, SphereLaw

METHODS = ("auto", "closed form", "quadrature")


@dataclass(frozen=True)
class SphereMoments:
    """The sphere expectations at one gain (see the module docstring)."""

    mean: Estimate
    q: Estimate
    c: Estimate
    spread: Estimate
    d2: Estimate | None = None
    d11: Estimate | None = None
    sd2: Estimate | None = None
    sd11: Estimate | None = None
    method: str = "quadrature"


def closed_form_applies(act: Activation, shift) -> bool:
    """True when the homogeneous closed forms cover ``act`` at this shift."""
    return act.degree is not None and act.degree > 0 and shift == 0


def resolve_method(method: str, act: Activation, shift) -> str:
    """Turn ``"auto"`` into the method used, or refuse a forced impossible one."""
    if method not in METHODS:
        raise BnsymInputError(f"method must be one of {', '.join(repr(m) for m in METHODS)}, got {method!r}")
    if method == "auto":
        return "closed form" if closed_form_applies(act, shift) else "quadrature"
    if method == "closed form" and not closed_form_applies(act, shift):
        why = "beta != 0" if act.degree is not None else "it is not positively homogeneous"
        raise BnsymInputError(f"method='closed form' does not apply to {act.label}: {why}; use method='quadrature' or 'auto'")
    return method


def sphere_moments(act: Activation, law: SphereLaw, gain, shift, gamma, rtol, *, gradient: bool, method: str) -> SphereMoments:
    """The :class:`SphereMoments` of ``act`` at ``gain``, ``shift`` on ``law``.

    ``rtol`` bounds each expectation's error relative to its Cauchy-Schwarz
    scale (``sqrt(E[F^2] E[G^2])``).  ``gradient=False`` skips the four
    ``D`` moments.  Cost: closed form ``O(1)``; quadrature one Funk-Hecke
    series (smooth ``phi``) or one nested angle integral (kinked ``phi``).
    """
    return moments_at_gains(act, law, [gain], shift, gamma, rtol, gradient=gradient, method=method)[0]


def moments_at_gains(act: Activation, law: SphereLaw, gains, shift, gamma, rtol, *, gradient: bool, method: str) -> list:
    """:func:`sphere_moments` at each gain of ``gains``, evaluated together.

    By quadrature all gains share the rule levels and the convergence loops: three loops in all
    (first and second moments, centred second moments, pairs), each evaluating every gain on the
    same nodes, and the Funk-Hecke series of all gains share one Gegenbauer recurrence per level
    (docs/theory.md section 15.3).  The result at each gain is the same as a call of
    :func:`sphere_moments` at that gain alone, up to the errors it reports (a level is accepted
    when every gain has converged at it).  Cost for ``P`` gains: about ``P / 3`` times one gain's
    cost for a smooth ``phi`` and ``P`` times for a kinked one (the kinks of different gains
    split the panels of all).
    """
    with mpmath.workdps(law.working_dps):
        fs = [Integrand(act, gain, shift) for gain in gains]
        ds = [Integrand(act, gain, shift, derivative=True, scale=gamma) for gain in gains]
        sds = [Integrand(act, gain, shift, derivative=True, power=1, scale=gamma) for gain in gains]
        if method == "closed form":
            return [_closed(act, law, f, d, sd, gradient) for f, d, sd in zip(fs, ds, sds)]
        return _quadrature(law, fs, ds, sds, rtol, gradient)


def _homogeneous(act: Activation, integrand: Integrand):
    """``(a_+, a_-, p)`` of a homogeneous integrand: ``F(+-1)`` and its degree (an int or an mpf)."""
    degree = closed_forms.real_number(act.degree - (1 if integrand.derivative else 0) + integrand.power)
    return integrand.evaluate(mpmath.mpf(1)), integrand.evaluate(mpmath.mpf(-1)), degree


def _rounded(value, working_dps):
    """A closed-form value evaluated at the working precision: its error is a few units of the last place."""
    return Estimate(value, rounding_error(value, working_dps), meaning=ROUNDING)


def _closed(act, law, f, d, sd, gradient):
    n = law.n
    hf = _homogeneous(act, f)
    square = (hf[0] ** 2, hf[1] ** 2, 2 * hf[2])
    mean = _rounded(closed_forms.homogeneous_mean(*hf, n), law.working_dps)
    q = _rounded(closed_forms.homogeneous_mean(*square, n), law.working_dps)
    c = _rounded(closed_forms.homogeneous_pair(hf, hf, n), law.working_dps)
    moments = dict(mean=mean, q=q, c=c, spread=q - c, method="closed form")
    if gradient:
        hd, hsd = _homogeneous(act, d), _homogeneous(act, sd)
        moments.update(
            d2=_rounded(closed_forms.homogeneous_mean(hd[0] ** 2, hd[1] ** 2, 2 * hd[2], n), law.working_dps),
            d11=_rounded(closed_forms.homogeneous_pair(hd, hd, n), law.working_dps),
            sd2=_rounded(closed_forms.homogeneous_mean(hsd[0] ** 2, hsd[1] ** 2, 2 * hsd[2], n), law.working_dps),
            sd11=_rounded(closed_forms.homogeneous_pair(hsd, hsd, n), law.working_dps),
        )
    return SphereMoments(**moments)


def _quadrature(law, fs, ds, sds, rtol, gradient):
    """The moments at every gain (one integrand triple ``f, D, sD`` per gain), sharing the loops."""
    p = len(fs)
    singles = law.expect_with_norms(fs + (ds + sds if gradient else []), rtol)
    own, centred, centred_norms = centred_integrands(law, fs, rtol, singles[:p])
    derivatives = [(d, d) for d in ds] + [(sd, sd) for sd in sds] if gradient else []
    if own is law:  # one call: the pairs of every integrand share the rule levels
        values = law.expect_pairs([(g, g) for g in centred] + derivatives, rtol)
    else:
        values = own.expect_pairs([(g, g) for g in centred], rtol) + (law.expect_pairs(derivatives, rtol) if derivatives else [])
    out = []
    for i in range(p):
        (mean, q), (_, q_centred) = singles[i], centred_norms[i]
        spread = q_centred - values[i]
        moments = dict(mean=mean, q=q, c=q - spread, spread=spread, method="quadrature")
        if gradient:
            moments.update(d2=singles[p + i][1], d11=values[p + i], sd2=singles[2 * p + i][1], sd11=values[2 * p + i])
        out.append(SphereMoments(**moments))
    return out


def centred_integrands(law: SphereLaw, fs, rtol, singles=None):
    """``(own, centred, norms)``: the integrands ``f - c`` of ``fs`` with ``c`` within ``rtol sd(f)`` of
    ``E[f]``, the law ``own`` (:func:`centring_law`: ``law`` or the same law at more working digits)
    on which they keep their digits, and their ``(E[f - c], E[(f - c)^2])`` there.

    ``singles`` are the ``(E[f], E[f^2])`` of ``fs`` on ``law`` (computed here when not given: a caller
    that has them from a shared pass passes them).  The first centre is ``E[f]``; where
    ``E[f - c]^2`` exceeds a hundredth of ``E[(f - c)^2]`` (``E[f]`` is known only to ``rtol
    sqrt(E[f^2])``, more than ``sd(f)`` when ``f`` is nearly constant: tanh at ``beta = 40``), ``c``
    moves by ``E[f - c]``, summed at ``own``'s digits, and the pass is repeated (at most
    :data:`RECENTRES` times).  Expectations that depend on ``f`` only through differences
    ``f_a - f_b`` may use ``f - c`` for ``f`` (docs/theory.md section 3.2).  Cost: one pass of the
    one-coordinate rule on ``own`` per centre, plus :func:`centring_law`'s.
    """
    if singles is None:
        singles = law.expect_with_norms(fs, rtol)
    centred = [f.with_center(mean.value) for f, (mean, _) in zip(fs, singles)]
    own = centring_law(law, fs, singles, rtol)
    norms = own.expect_with_norms(centred, rtol)
    for _ in range(RECENTRES):
        off = [abs(m1.value) ** 2 > m2.value / 100 for m1, m2 in norms]
        if not any(off):
            break
        with mpmath.workdps(own.working_dps):  # the moved centre at the centred pass's digits
            centred = [g.with_center(g.center + m1.value) if moved else g for g, moved, (m1, _) in zip(centred, off, norms)]
        norms = own.expect_with_norms(centred, rtol)
    return own, centred, norms


def centring_law(law: SphereLaw, fs, singles, rtol) -> SphereLaw:
    """The law (``law`` itself, or the same law at more working digits) on which ``f - E[f]`` keeps its digits.

    ``singles`` are the ``(E[f], E[f^2])`` of the integrands ``fs`` to be centred.  ``f - c`` with
    ``c = E[f]`` cancels about ``L = log10(|c| / sd(f))`` digits, ``sd(f)^2 = E[f^2] - c^2`` (a saturated
    activation: tanh at ``beta = 20``, B = 32, has ``sd/|c|`` about ``1e-17``), and its expectations need
    ``D = -log10(rtol)`` digits more, so the working precision must be at least ``D + L + 2``; when it
    is not, the centred expectations run at ``D + L + 4`` digits.  Where ``E[f^2] - c^2`` is itself
    rounding (below ``10^-(working_dps - 2)`` of ``E[f^2]``), at least half the working digits cancel:
    ``L`` is taken as all of them, ``E[f]`` and ``E[f^2]`` are evaluated again at the digits this gives
    and ``L`` is estimated again from them (at most :data:`CENTRING_RAISES` times).  The centred moments
    are invariant under the choice of ``c`` (``E[(f_a - c)^2] - E[(f_a - c)(f_b - c)] = E[f^2] -
    E[f_a f_b]``), but a ``c`` off by more than ``sd(f)`` makes that difference cancel;
    :func:`centred_integrands` then moves ``c`` by ``E[f - c]`` (``E[f]`` is known to ``rtol sqrt(E[f^2])``, more than ``sd(f)`` when
    ``L > D``: tanh at ``beta = 40``).  Cost: none when no digits are missing; else
    the centred expectations at the higher precision, and one more pass of the plain ones for each
    raise past rounding (docs/theory.md section 3.2).
    """
    digits = -mpmath.log10(rtol)
    current = law
    for _ in range(CENTRING_RAISES):
        lost, rounded = 0, False
        for mean, second in singles:
            c2, q = mean.value ** 2, second.value
            if q == 0 or c2 == 0:
                continue
            variance = q - c2
            if variance <= q * mpmath.mpf(10) ** -(current.working_dps - 2):
                lost, rounded = max(lost, current.working_dps), True
            else:
                lost = max(lost, mpmath.log10(c2 / variance) / 2)
        need = int(mpmath.ceil(digits + lost)) + 2
        if need <= current.working_dps:
            return current
        current = SphereLaw(law.batch_size, need + 2)
        if not rounded:
            return current
        singles = current.expect_with_norms(fs, rtol)  # at these digits E[f^2] - E[f]^2 may resolve
    return current


#: How many times :func:`centring_law` raises the working digits past a variance that is only rounding.
CENTRING_RAISES = 3
#: How many times the centred moments move their centre by ``E[f - c]`` when it is off by more than a tenth
#: of ``sd(f)`` (one suffices: the move is accurate to ``rtol`` of the centred scale).
RECENTRES = 2


# ------------------------------------------------------------------ moments along the radius
#: The fields of :class:`SphereMoments` that :class:`MomentCurve` interpolates, each with the
#: field whose largest value on the curve sets its tolerance (its Cauchy-Schwarz scale).
CURVE_FIELDS = (("mean", "q"), ("q", "q"), ("c", "q"), ("spread", "spread"),
                ("d2", "d2"), ("d11", "d2"), ("sd2", "sd2"), ("sd11", "sd2"))


def smooth_in_gain(act: Activation, shift, gamma, n) -> bool:
    """True when no kink of ``act`` can enter the sphere support ``|gain s| <= |gamma| sqrt(n)``
    for any gain ``gamma kappa``, ``0 < kappa <= 1``: then every sphere moment is analytic in
    ``kappa`` there and a :class:`~bnsym.numerics.curve.RadialCurve` applies (finite ``n``)."""
    reach = abs(gamma) * mpmath.sqrt(n)
    return all(abs(x - shift) > reach for x in act.numeric_kinks())


def gain_events(act: Activation, shift, gamma, law: SphereLaw) -> list:
    """The ``kappa`` in ``(0, 1]`` (sorted) at which a sphere moment of ``act`` at gain
    ``gamma kappa`` may fail to be analytic in ``kappa`` (docs/theory.md section 15.3).

    With kinks ``x_j`` at ``s = u_j / (gamma kappa)``, ``u_j = x_j - shift``, each one-coordinate
    moment is an integral of pieces analytic in ``(s, kappa)`` against a density analytic inside
    ``|s| < sqrt(n)``, between breakpoints that move analytically with ``kappa``: it changes form
    only where a breakpoint meets the edge of the support, ``kappa = |u_j| / (|gamma| sqrt(n))``.
    A pair moment on the ellipse ``s_a^2 - 2 rho s_a s_b + s_b^2 <= n (1 - rho^2)`` changes form
    where a kink line touches the ellipse (the same ``kappa``) and where two kink lines meet on
    it: ``kappa = sqrt(u_j^2 - 2 rho u_j u_k + u_k^2) / (|gamma| sqrt(n (1 - rho^2)))``
    (``j = k``: ``|u_j| sqrt(2 / (n (1 + rho)))``; at ``B = 3``, ``n = 2``, the pairs lie on the
    edge itself and the crossing is still an event).  ``B = inf`` has none.
    Cost ``O(K^2)`` for ``K`` kinks.
    """
    return sorted({k for k, _ in _events(act, shift, gamma, law)})


def _events(act: Activation, shift, gamma, law: SphereLaw) -> list:
    """``[(kappa, m)]`` of :func:`gain_events`, each with twice the order of its singularity for an
    ``act`` whose derivative jumps at its kinks (a lower bound otherwise): the moments are analytic
    plus ``|kappa - kappa_j|^(m/2)`` on one side, ``m = n - 1`` where a kink line meets the edge of
    the support, ``m = n`` where two meet on it (docs/theory.md section 15.3)."""
    n = law.n
    if n == math.inf:
        return []
    scale = abs(gamma)
    us = [x - shift for x in act.numeric_kinks()]
    events = [(abs(u) / (scale * mpmath.sqrt(n)), n - 1) for u in us]
    if n >= 2:
        rho = law.rho
        events += [(mpmath.sqrt(u * u - 2 * rho * u * v + v * v) / (scale * mpmath.sqrt(n * (1 - rho * rho))), n)
                   for u in us for v in us]
    return [(k, m) for k, m in events if 0 < k <= 1]


def radial_events(act: Activation, shift, gamma, law: SphereLaw) -> list:
    """``[(kappa, flag)]``: :func:`gain_events` with the breakpoint flag of
    :func:`~bnsym.numerics.quadrature.breakpoint_panels` that a rule in ``kappa`` (or the radius)
    should give each.  When every kink of ``act`` is analytic on each side (flag ``True`` in
    :meth:`~bnsym.numerics.sphere.Integrand.breakpoints`) the moments are analytic plus powers
    ``|kappa - kappa_j|^(m/2 + i)`` there: ``True`` (plain Gauss panels) for ``m`` even, and for
    ``m`` odd once the Gauss error of a panel end, ``N^-(m + 2)``, is below ``10^-working_dps`` at
    ``N = 100`` (``2 (m + 2) >= working_dps``); else ``"sqrt"`` (the map ``v -> v^2`` makes the
    half-integer powers analytic).  Kinks analytic in the square root of the distance
    (``"sqrt"``) give powers ``m/2 + i/2``: ``"sqrt"``; any other kink: ``False`` (tanh-sinh).
    Where events coincide the weaker flag holds (docs/theory.md section 15.3)."""
    kink_flags = {flag for _, flag in Integrand(act, mpmath.mpf(1), shift).breakpoints()}
    out = {}
    for kappa, m in _events(act, shift, gamma, law):
        if False in kink_flags:
            flag = False
        elif kink_flags == {True} and (m % 2 == 0 or 2 * (m + 2) >= law.working_dps):
            flag = True
        else:
            flag = "sqrt"
        out[kappa] = flag if kappa not in out else weaker_flag(out[kappa], flag)
    return sorted(out.items(), key=lambda item: item[0])


def gain_floor(act: Activation, shift, gamma, law: SphereLaw):
    """The largest of :func:`gain_events` (0 if there is none): above it the sphere moments are
    analytic in ``kappa`` and a :class:`~bnsym.numerics.curve.RadialCurve` may interpolate them.
    ``B <= 3`` gives 1: no analytic range is claimed there."""
    if law.n != math.inf and law.n < 3:
        return mpmath.mpf(1)
    events = gain_events(act, shift, gamma, law)
    return events[-1] if events else mpmath.mpf(0)


def curve_evaluation(evaluate, act: Activation, shift, gamma, law: SphereLaw):
    """How a :class:`~bnsym.numerics.curve.RadialCurve` of sphere moments at gains ``gamma kappa``
    evaluates its points (docs/theory.md section 15.3): ``(evaluate, 0)`` when no kink reaches the
    support for any ``kappa`` in ``(0, 1]`` (:func:`smooth_in_gain`: all points in one pass, their
    panels coincide); ``(one at a time, floor)`` above a kink's :func:`gain_floor` (the kinks of
    several gains would split the panels of all); ``None`` when no range is analytic (floor 1).
    ``evaluate(kappas, rtol)`` gives one record per ``kappa``."""
    if smooth_in_gain(act, shift, gamma, law.n):
        return evaluate, 0
    floor = gain_floor(act, shift, gamma, law)
    if floor >= 1:
        return None
    return (lambda kappas, rtol: [evaluate([kappa], rtol)[0] for kappa in kappas]), floor


class MomentCurve(RadialCurve):
    """The :class:`SphereMoments` as functions of ``kappa`` (docs/theory.md section 15.3): a
    :class:`~bnsym.numerics.curve.RadialCurve` whose records are :class:`SphereMoments`, with
    the fields of :data:`CURVE_FIELDS` (the first four with ``gradient=False``).
    ``evaluate(kappas, rtol)`` gives the exact moments at a list of points
    (:func:`moments_at_gains`)."""

    def __init__(self, evaluate, working_dps: int, rtol, gradient: bool = True, floor=0):
        super().__init__(evaluate, CURVE_FIELDS if gradient else CURVE_FIELDS[:4], working_dps, rtol, floor)

    def field(self, record, name):
        return getattr(record, name)

    def record(self, fields, like):
        return SphereMoments(method=like.method, **fields)
