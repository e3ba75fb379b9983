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
``spread``  ``q - c``, computed as ``E[f~^2] - E[f~_a f~_b]`` with ``f~ = f - mean``
``d2``      ``E[D_a^2]``                          lambda_G
``d11``     ``E[D_a D_b]``                        lambda_G
``sd2``     ``E[s_a^2 D_a^2]``                    lambda_G
``sd11``    ``E[s_a s_b D_a D_b]``                lambda_G
==========  ====================================  ==========================

Two methods give them: ``"closed form"`` for positively homogeneous
activations of integer degree at ``beta = 0`` (:mod:`bnsym.numerics.closed_forms`),
and ``"quadrature"`` for everything (:mod:`bnsym.numerics.sphere`).  ``method="auto"``
takes the closed form where it exists.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import mpmath

from bnsym.numerics import closed_forms
from bnsym.activations import Activation
from bnsym.errors import BnsymInputError, PrecisionError
from bnsym.estimate import ROUNDING, Estimate, rounding_error
from bnsym.numerics.sphere import Integrand, SphereLaw, converge

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
    return act.degree is not None and act.degree.is_integer and shift == 0


def resolve_method(method: str, act: Activation, shift) -> str:
    """Turn ``"auto"`` into the method used, or refuse a forced impossible one."""
    if method not in METHODS:
        raise BnsymInputError(f"method must be one of {', '.join(repr(m) for m in METHODS)}, got {method!r}")
    if method == "auto":
        return "closed form" if closed_form_applies(act, shift) else "quadrature"
    if method == "closed form" and not closed_form_applies(act, shift):
        why = "beta != 0" if act.degree is not None and act.degree.is_integer else "it is not positively homogeneous of integer degree"
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


def cached_at_tolerance(cache: dict, points, rtol, compute, digits: int) -> list:
    """Values at ``points`` to ``rtol``, from ``cache`` where known to ``rtol`` or better.

    ``cache`` maps ``mpmath.nstr(point, digits)`` to ``(tolerance, value)``; the points missing
    from it, or known only to a looser tolerance, are computed in one call
    ``compute(points, rtol)`` (a list of values) and stored.
    """
    keys = [mpmath.nstr(x, digits) for x in points]
    new = {k: x for k, x in zip(keys, points) if k not in cache or cache[k][0] > rtol}
    if new:
        cache.update((k, (rtol, value)) for k, value in zip(new, compute(list(new.values()), rtol)))
    return [cache[k][1] for k in keys]


def _homogeneous(act: Activation, integrand: Integrand):
    """``(a_+, a_-, p)`` of a homogeneous integrand: ``F(+-1)`` and its degree."""
    degree = int(act.degree) - (1 if integrand.derivative else 0) + integrand.power
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
    centred = [f.with_center(mean.value) for f, (mean, _) in zip(fs, singles)]
    centred_norms = law.expect_with_norms(centred, rtol)
    pairs = [(g, g) for g in centred] + ([(d, d) for d in ds] + [(sd, sd) for sd in sds] if gradient else [])
    values = law.expect_pairs(pairs, rtol)
    out = []
    for i in range(p):
        (mean, q), (_, q_centred) = singles[i], centred_norms[i]
        spread = q_centred - values[i]
        moments = dict(mean=mean, q=q, c=q - spread, spread=spread, method="quadrature")
        if gradient:
            moments.update(d2=singles[p + i][1], d11=values[p + i], sd2=singles[2 * p + i][1], sd11=values[2 * p + i])
        out.append(SphereMoments(**moments))
    return out


# ------------------------------------------------------------------ moments along the radius
#: The fields of :class:`SphereMoments` that :class:`MomentCurve` interpolates, each with the
#: field whose largest value on the curve sets its tolerance (its Cauchy-Schwarz scale).
CURVE_FIELDS = (("mean", "q"), ("q", "q"), ("c", "q"), ("spread", "spread"),
                ("d2", "d2"), ("d11", "d2"), ("sd2", "sd2"), ("sd11", "sd2"))
#: Chebyshev-Lobatto levels: level ``k`` has ``2^(k+2)`` intervals (nested: each level reuses the last).
CURVE_MAX_LEVEL = 5
#: The lowest level whose Chebyshev coefficients may accept a piece (``N = 8``: the decay is
#: judged on at least three coefficients).
CURVE_MIN_ACCEPT = 1
#: Tolerances (in digits) up to which the curve is one tier; past it tiers are half that many digits apart.
ONE_TIER_DIGITS = 40


def smooth_in_gain(act: Activation, shift, gamma, n) -> bool:
    """True when no kink of ``act`` can enter the sphere support ``|gain s| <= |gamma| sqrt(n)``
    for any gain ``gamma kappa``, ``0 < kappa <= 1``: then every sphere moment is analytic in
    ``kappa`` there and :class:`MomentCurve` applies (finite ``n``)."""
    reach = abs(gamma) * mpmath.sqrt(n)
    return all(abs(x - shift) > reach for x in act.numeric_kinks())


class MomentCurve:
    r"""The sphere moments as functions of the radial factor ``kappa``, interpolated in tiers.

    At ``eps > 0`` every radial node ``y`` needs the moments at gain ``gamma kappa(y)``
    (docs/theory.md sections 4.2 and 15.3).  For an activation without kinks in the support
    (:func:`smooth_in_gain`) they are analytic in ``kappa``, so they are interpolated instead.

    A radial node where the chi density is ``10^-d`` of its peak needs its moments only to
    about ``rtol 10^d``: its weight carries the rest.  So the curve is a set of *tiers*: tier
    ``e`` is an interpolant on ``[lo_e, 1]`` accurate to ``rtol 10^e``, built only when a node
    needs it, with its points evaluated at that looser tolerance.  Up to 40 digits
    (:data:`ONE_TIER_DIGITS`) there is one tier, ``e = 0``, reaching down to the nodes whose error
    may be as large as the moments; past that, a second tier at half the digits takes the far
    tail (measured: tanh at B = 32, eps = 1e-3, one tier is fastest at 15 and 30 digits, and two
    tiers at 60 digits, where one tier needs more than 129 points).  A node allowed ``e_i``
    digits of slack uses the tightest tier that covers it, among the tiers with ``e <= e_i``.  A
    node whose slack exceeds the digits of ``rtol`` (its error may be larger than the moments)
    gets the value of a tier that covers it, or the lowest tier's end value with the error
    ``2 x`` the field's largest value.

    Each tier is the polynomial of degree ``N`` through ``N + 1`` Chebyshev-Lobatto points of
    ``[lo_e, 1]``, ``N = 4, 8, ..., 128`` (nested), raised by the engine's one convergence loop
    (:func:`bnsym.numerics.sphere.converge`).  Its Chebyshev coefficients
    ``c_k = (2/N) sum''_j f_j cos(pi j k / N)`` (the double prime halves the end terms, and
    ``c_0``, ``c_N`` are halved) measure its error, as in Chebfun's chopping rule: the degree is
    accepted when ``E = 2 (|c_(N-1)| + |c_N|)`` is below the tier's tolerance times each field's
    largest value on the tier, the last quarter of the coefficients is no larger than the third
    or than that tolerance (the decay is established, or has reached the rounding plateau) and
    ``N >= 8``.  ``E`` is the error reported, plus the points'
    own errors times the Lebesgue constant ``1 + (2/pi) log(N + 1)``.  For geometric decay
    ``|c_k| ~ C r^k`` (an analytic function: ``r`` is set by its nearest complex singularity)
    the interpolation error is at most ``2 sum_{k > N} |c_k| ~ 2 C r^(N+1) / (1 - r)``, which
    ``E`` exceeds whenever ``r <= 1/2``.

    ``evaluate(kappas, rtol)`` gives the exact moments at a list of points to ``rtol`` (all the
    new points of a level in one call, :func:`moments_at_gains`).  Cost: ``N + 1`` sphere-moment
    evaluations per tier (typically 17 to 65 for tier 0, 9 to 17 for the others), then ``O(N)``
    per interpolated node and field.  :meth:`at` returns ``None`` when a tier needs a degree
    above 128 (the caller then evaluates the moments node by node).
    """

    def __init__(self, evaluate, working_dps: int, rtol, gradient: bool = True):
        self.evaluate = evaluate
        self.working_dps = working_dps
        self.rtol = rtol
        self.fields = CURVE_FIELDS if gradient else CURVE_FIELDS[:4]
        self.tiers = {}  # slack digits e -> (lo, fit); fit = (points, weights, {field: (values, error)}, method)
        self.failed = False
        self._values = {}  # kappa -> (rtol it was evaluated to, SphereMoments)

    def at(self, kappas, slacks):
        """:class:`SphereMoments` at each ``kappa`` in ``(0, 1]``, or ``None`` if not representable.

        ``slacks[i] >= 0`` is the number of decimal digits by which node ``i``'s error may exceed
        ``rtol`` (the caller's bound on its weight: see the class docstring).
        """
        with mpmath.workdps(self.working_dps):
            if self.failed:
                return None
            top = int(-mpmath.log10(self.rtol) + mpmath.mpf("1e-9"))  # a slack past this allows an error larger than the moments
            step = top if top <= ONE_TIER_DIGITS else top // 2
            wanted = [None if d >= top + 1 else step * (int(d) // step) for d in slacks]
            chosen = [None] * len(kappas)
            for e in sorted(set(w for w in wanted if w is not None)):
                members = [i for i, w in enumerate(wanted) if w == e and self._covering(kappas[i], e) is None]
                if members:
                    self._extend(e, min(kappas[i] for i in members))
                    if self.failed:
                        return None
                for i, w in enumerate(wanted):
                    if w == e:
                        chosen[i] = self._covering(kappas[i], e)
            if not self.tiers:  # every node negligible: one tight tier still anchors the values
                self._extend(0, min(kappas))
                if self.failed:
                    return None
            lowest = min(self.tiers, key=lambda e: self.tiers[e][0])
            out = []
            for kappa, tier in zip(kappas, chosen):
                if tier is None:  # negligible weight: any tier that covers it, else the lowest tier's end
                    tier = self._covering(kappa, top)
                    if tier is None:
                        out.append(self._clamped(lowest))
                        continue
                out.append(self._interpolate(tier, kappa))
            return out

    def _covering(self, kappa, slack):
        """The tightest built tier with ``e <= slack`` whose interval contains ``kappa`` (or None)."""
        for e in sorted(self.tiers):
            if e <= slack and kappa >= self.tiers[e][0]:
                return e
        return None

    def _extend(self, e, lo):
        """(Re)build tier ``e`` down to ``lo``, with a margin in ``1 - kappa`` (20%, doubled on a rebuild)."""
        rebuild = e in self.tiers
        lo = max(1 - (1 - lo) * (2 if rebuild else mpmath.mpf("1.2")), lo / (16 if rebuild else 4))
        fit = self._build(lo, self.rtol * mpmath.mpf(10) ** e)
        if fit is None:
            self.failed = True
        else:
            self.tiers[e] = (lo, fit)

    def _clamped(self, e) -> SphereMoments:
        _, (_, _, table, method) = self.tiers[e]
        fields = {name: Estimate(ys[-1], error + 2 * max(abs(y) for y in ys)) for name, (ys, error) in table.items()}
        return SphereMoments(method=method, **fields)

    # -------------------------------------------------------------- internals
    def _nodes(self, xs, rtol):
        """The exact moments at each point of ``xs`` to ``rtol``; points not yet known to ``rtol``
        are evaluated in one call."""
        return cached_at_tolerance(self._values, xs, rtol, self.evaluate, self.working_dps)

    @staticmethod
    def _points(lo, level):
        n = 2 ** (level + 2)
        mid, half = (1 + lo) / 2, (1 - lo) / 2
        # j = 0 is kappa = 1 exactly, the eps = 0 gain, shared by every tier and the scale equation
        return [mpmath.mpf(1) if j == 0 else mid + half * mpmath.cos(mpmath.pi * j / n) for j in range(n + 1)]

    def _build(self, lo, rtol):
        """The fit of one tier on ``[lo, 1]`` to ``rtol``, or ``None`` past degree 128."""
        converged = {}

        def level_values(level):
            points = self._points(lo, level)
            return level, points, self._nodes(points, rtol)

        def judge(current, previous):
            level, points, values = current
            if level < CURVE_MIN_ACCEPT:
                return None
            worst = {}
            n = len(points) - 1
            for name, ref in self.fields:
                scale = max(abs(getattr(m, ref).value) for m in values)
                c = [abs(x) for x in _chebyshev_coefficients([getattr(m, name).value for m in values])]
                estimate = 2 * (c[n - 1] + c[n])
                # decaying, or already below the tolerance (then rounding may make a plateau)
                settled = max(c[(3 * n) // 4:]) <= max(c[n // 2:(3 * n) // 4] + [rtol * scale])
                if estimate > rtol * scale or not settled:
                    return None
                worst[name] = estimate
            converged["at"] = current
            return worst

        try:
            gaps = converge(level_values, judge, ("moment curve", id(self), mpmath.nstr(rtol, 3)), 0, CURVE_MAX_LEVEL,
                            "moment curve did not converge")
        except PrecisionError:
            return None
        _, points, values = converged["at"]
        lebesgue = 1 + 2 / mpmath.pi * mpmath.log(len(points))
        table = {}
        for name, _ in self.fields:
            ys = [getattr(m, name).value for m in values]
            node_error = max(getattr(m, name).error for m in values)
            table[name] = (ys, gaps[name] + lebesgue * node_error)
        return points, _lobatto_weights(len(points) - 1), table, values[0].method

    def _interpolate(self, e, kappa) -> SphereMoments:
        """Second barycentric form on tier ``e``, its factors ``w_j / (kappa - x_j)`` shared by all fields."""
        _, (points, weights, table, method) = self.tiers[e]
        for j, p in enumerate(points):
            if kappa == p:
                return SphereMoments(method=method, **{name: Estimate(ys[j], error) for name, (ys, error) in table.items()})
        factors = [w / (kappa - p) for p, w in zip(points, weights)]
        den = mpmath.fsum(factors)
        fields = {name: Estimate(mpmath.fdot(factors, ys) / den, error) for name, (ys, error) in table.items()}
        return SphereMoments(method=method, **fields)


def _chebyshev_coefficients(values):
    """Chebyshev coefficients of the interpolant through values at the Lobatto points ``cos(pi j / N)``."""
    n = len(values) - 1
    ends = [v / 2 if j in (0, n) else v for j, v in enumerate(values)]
    out = []
    for k, row in enumerate(_cosines(n, mpmath.mp.dps)):
        c = 2 * mpmath.fdot(ends, row) / n
        out.append(c / 2 if k in (0, n) else c)
    return out


@lru_cache(maxsize=16)
def _cosines(n, dps):
    """``cos(pi j k / n)`` for ``k, j = 0..n`` at ``dps`` digits (rows ``k``)."""
    with mpmath.workdps(dps):
        return tuple(tuple(mpmath.cospi(mpmath.mpf(j * k % (2 * n)) / n) for j in range(n + 1)) for k in range(n + 1))


def _lobatto_weights(n):
    """Barycentric weights of the ``n + 1`` Chebyshev-Lobatto points: ``(-1)^j``, halved at the ends."""
    return [(mpmath.mpf(-1) ** j) / (2 if j in (0, n) else 1) for j in range(n + 1)]
