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
    with mpmath.workdps(law.working_dps):
        f = Integrand(act, gain, shift)
        d = Integrand(act, gain, shift, derivative=True, scale=gamma)
        sd = Integrand(act, gain, shift, derivative=True, power=1, scale=gamma)
        if method == "closed form":
            return _closed(act, law, f, d, sd, gradient)
        return _quadrature(law, f, d, sd, rtol, gradient)


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


def _quadrature(law, f, d, sd, rtol, gradient):
    (mean, q), = law.expect_with_norms([f], rtol)
    centred = f.with_center(mean.value)
    (_, q_centred), = law.expect_with_norms([centred], rtol)
    pairs = [(centred, centred)]
    singles = []
    if gradient:
        pairs += [(d, d), (sd, sd)]
        singles = law.expect_with_norms([d, sd], rtol)
    values = law.expect_pairs(pairs, rtol)
    spread = q_centred - values[0]
    c = q - spread
    moments = dict(mean=mean, q=q, c=c, spread=spread, method="quadrature")
    if gradient:
        moments.update(d2=singles[0][1], d11=values[1], sd2=singles[1][1], sd11=values[2])
    return SphereMoments(**moments)


# ------------------------------------------------------------------ moments along the radius
#: The fields of :class:`SphereMoments` that :class:`MomentCurve` interpolates, each with the
#: field whose largest value on the curve sets its tolerance (its Cauchy-Schwarz scale).
CURVE_FIELDS = (("mean", "q"), ("q", "q"), ("c", "q"), ("spread", "spread"),
                ("d2", "d2"), ("d11", "d2"), ("sd2", "sd2"), ("sd11", "sd2"))
#: Chebyshev-Lobatto levels: level ``k`` has ``2^(k+2)`` intervals (nested: each level reuses the last).
CURVE_MAX_LEVEL = 5


def smooth_in_gain(act: Activation, shift, gamma, n) -> bool:
    """True when no kink of ``act`` can enter the sphere support ``|gain s| <= |gamma| sqrt(n)``
    for any gain ``gamma kappa``, ``0 < kappa <= 1``: then every sphere moment is analytic in
    ``kappa`` there and :class:`MomentCurve` applies (finite ``n``)."""
    reach = abs(gamma) * mpmath.sqrt(n)
    return all(abs(x - shift) > reach for x in act.numeric_kinks())


class MomentCurve:
    r"""The sphere moments as functions of the radial factor ``kappa`` on ``[lo, 1]``.

    At ``eps > 0`` every radial node ``y`` needs the moments at gain ``gamma kappa(y)``
    (docs/theory.md sections 4.2 and 15).  For an activation without kinks in the
    support (:func:`smooth_in_gain`) they are analytic in ``kappa``, so they are
    interpolated instead: barycentric interpolation on ``N + 1`` Chebyshev-Lobatto points
    of ``[lo, 1]``, ``N = 4, 8, ..., 128`` (nested), raised by the engine's one convergence
    loop (:func:`bnsym.numerics.sphere.converge`) until the degree-``N/2`` interpolant
    reproduces the ``N/2`` new points to ``rtol`` times each field's largest value.  The
    interpolant of degree ``N`` is returned with that discrepancy as its error, plus the
    nodes' own errors times the Lebesgue constant ``1 + (2/pi) log(N + 1)``.

    ``evaluate(kappa)`` returns the :class:`SphereMoments` at one ``kappa``.  Cost:
    ``N + 1`` sphere-moment evaluations per interval (typically 9 to 33 at
    ``eps = 1e-3``, where ``kappa`` stays close to 1), then ``O(N)`` per interpolated node.
    :meth:`at` returns ``None`` when the degree needed exceeds 128 (the caller then
    evaluates the moments node by node).
    """

    def __init__(self, evaluate, working_dps: int, rtol, gradient: bool = True):
        self.evaluate = evaluate
        self.working_dps = working_dps
        self.rtol = rtol
        self.fields = CURVE_FIELDS if gradient else CURVE_FIELDS[:4]
        self.lo = None
        self.fit = None  # (nodes, weights, values per field, errors per field)
        self.failed = False
        self._values = {}

    def at(self, kappas, lo):
        """:class:`SphereMoments` at each ``kappa`` in ``(0, 1]`` (``None`` if not representable).

        The curve covers ``[lo', 1]`` with ``lo' <= lo`` (rebuilt lower when ``lo`` falls below it).
        A ``kappa`` below the curve gets the moments at its lower end, with the error ``2 x``
        the field's largest value on the curve: the caller puts there only radial nodes
        whose density is negligible (below ``10^-(dps+8)`` of its peak), the same bound
        on the integrand that truncating the radial support already assumes.
        """
        with mpmath.workdps(self.working_dps):
            if self.failed or lo <= 0:
                return None
            if self.lo is None or lo < self.lo:
                self._build(lo * mpmath.mpf("0.9"))
                if self.failed:
                    return None
            return [self._interpolate(k) if k >= self.lo else self._clamped() for k in kappas]

    def _clamped(self) -> SphereMoments:
        _, _, table, method = self.fit
        fields = {name: Estimate(ys[-1], error + 2 * max(abs(y) for y in ys)) for name, (ys, error) in table.items()}
        return SphereMoments(method=method, **fields)

    # -------------------------------------------------------------- internals
    def _node(self, x):
        key = mpmath.nstr(x, self.working_dps)
        if key not in self._values:
            self._values[key] = self.evaluate(x)
        return self._values[key]

    def _points(self, level):
        n = 2 ** (level + 2)
        mid, half = (1 + self.lo) / 2, (1 - self.lo) / 2
        # j = 0 is kappa = 1 exactly, the eps = 0 gain, shared with the start of the scale equation
        return [mpmath.mpf(1) if j == 0 else mid + half * mpmath.cos(mpmath.pi * j / n) for j in range(n + 1)]

    def _build(self, lo):
        self.lo = lo
        scales = {}

        def level_values(level):
            points = self._points(level)
            return points, [self._node(x) for x in points]

        def judge(current, previous):
            points, values = current
            old_points, old_values = previous
            for _, ref in self.fields:
                scales[ref] = max(abs(getattr(m, ref).value) for m in values)
            weights = _lobatto_weights(len(old_points) - 1)
            worst = {}
            for name, ref in self.fields:
                ys = [getattr(m, name).value for m in old_values]
                gap = max(abs(_barycentric(old_points, weights, ys, x) - getattr(m, name).value)
                          for x, m in zip(points[1::2], values[1::2]))
                if gap > self.rtol * scales[ref]:
                    return None
                worst[name] = gap
            self._converged = current
            return worst

        try:
            gaps = converge(level_values, judge, ("moment curve", id(self)), 0, CURVE_MAX_LEVEL,
                            "moment curve did not converge")
        except PrecisionError:
            self.failed = True
            return
        points, values = self._converged
        lebesgue = 1 + 2 / mpmath.pi * mpmath.log(len(points))
        table = {}
        for name, _ in self.fields:
            ys = [getattr(m, name).value for m in values]
            node_error = max(getattr(m, name).error for m in values)
            table[name] = (ys, gaps[name] + lebesgue * node_error)
        self.fit = (points, _lobatto_weights(len(points) - 1), table, values[0].method)

    def _interpolate(self, kappa) -> SphereMoments:
        points, weights, table, method = self.fit
        fields = {}
        for name, (ys, error) in table.items():
            fields[name] = Estimate(_barycentric(points, weights, ys, kappa), error)
        return SphereMoments(method=method, **fields)


def _lobatto_weights(n):
    """Barycentric weights of the ``n + 1`` Chebyshev-Lobatto points: ``(-1)^j``, halved at the ends."""
    return [(mpmath.mpf(-1) ** j) / (2 if j in (0, n) else 1) for j in range(n + 1)]


def _barycentric(points, weights, values, x):
    """The interpolating polynomial through ``(points, values)`` at ``x`` (second barycentric form)."""
    num = den = mpmath.mpf(0)
    for p, w, v in zip(points, weights, values):
        d = x - p
        if d == 0:
            return v
        num += w * v / d
        den += w / d
    return num / den
