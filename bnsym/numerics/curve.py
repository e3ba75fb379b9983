r"""Analytic functions of the radial factor ``kappa``, interpolated in tiers (docs/theory.md section 15.3).

At ``eps > 0`` every radial node of the scale law needs sphere expectations at gain
``gamma kappa`` (``0 < kappa <= 1``).  For an activation with no kink in the sphere support they
are analytic in ``kappa``, so a :class:`RadialCurve` interpolates them from a few Chebyshev
points instead of evaluating them at every node: the sphere moments of the fixed point
(:class:`bnsym.numerics.moments.MomentCurve`) and the eigenvalue integrands of the spectrum
(:mod:`bnsym.meanfield.linearization`) are both such curves.

A *record* is a mapping from field names to :class:`~bnsym.estimate.Estimate`; each field has a
*reference* field whose largest value on the curve sets its tolerance (its Cauchy-Schwarz scale,
or itself).

May import: :mod:`bnsym.estimate`, :mod:`bnsym.errors`, :mod:`bnsym.numerics.sphere` (the one
convergence loop), :mod:`bnsym.numerics.memo`, mpmath.
"""

from __future__ import annotations

from functools import lru_cache

import mpmath

from bnsym.errors import PrecisionError
from bnsym.estimate import Estimate
from bnsym.numerics.memo import cached_at_tolerance
from bnsym.numerics.sphere import converge

#: Chebyshev-Lobatto levels: level ``k`` has ``2^(k+2)`` intervals (nested: each level reuses the last).
CURVE_MAX_LEVEL = 5
#: The lowest level whose Chebyshev coefficients may accept a piece (``N = 8``: the decay is
#: judged on at least three coefficients).
CURVE_MIN_ACCEPT = 1
#: Tolerances (in digits) up to which the curve is one tier; past it tiers are half that many digits apart.
ONE_TIER_DIGITS = 40
#: A curve analytic only on ``(floor, 1]`` has its tiers on ``[lo, 1]`` with ``lo`` at least
#: ``floor + FLOOR_MARGIN (1 - floor)``: the singularity at ``floor`` is then at least the
#: interval's length away from it (Bernstein ellipse parameter ``3 + 2 sqrt 2 = 5.8``, about 0.77
#: digits per point).
FLOOR_MARGIN = mpmath.mpf(1) / 2


class RadialCurve:
    r"""Records (``{field: Estimate}``) as functions of ``kappa`` in ``(0, 1]``, interpolated in tiers.

    A radial node where the chi density is ``10^-d`` of its peak needs its values only to
    about ``rtol 10^d``: its weight carries the rest.  So the curve is a set of *tiers*: tier
    ``e`` is an interpolant on ``[lo_e, 1]`` accurate to ``rtol 10^e``, built only when a node
    needs it, with its points evaluated at that looser tolerance.  Up to 40 digits
    (:data:`ONE_TIER_DIGITS`) there is one tier, ``e = 0``, reaching down to the nodes whose error
    may be as large as the values; past that, a second tier at half the digits takes the far
    tail (measured: tanh at B = 32, eps = 1e-3, one tier is fastest at 15 and 30 digits, and two
    tiers at 60 digits, where one tier needs more than 129 points).  A node allowed ``e_i``
    digits of slack uses the tightest tier that covers it, among the tiers with ``e <= e_i``.  A
    node whose slack exceeds the digits of ``rtol`` (its error may be larger than the values)
    gets the value of a tier that covers it, or the lowest tier's end value with the error
    ``2 x`` the field's largest value.

    Each tier is the polynomial of degree ``N`` through ``N + 1`` Chebyshev-Lobatto points of
    ``[lo_e, 1]``, ``N = 4, 8, ..., 128`` (nested), raised by the engine's one convergence loop
    (:func:`bnsym.numerics.sphere.converge`).  Its Chebyshev coefficients
    ``c_k = (2/N) sum''_j f_j cos(pi j k / N)`` (the double prime halves the end terms, and
    ``c_0``, ``c_N`` are halved) measure its error, as in Chebfun's chopping rule: the degree is
    accepted when ``E = 2 (|c_(N-1)| + |c_N|)`` is below the tier's tolerance times each field's
    scale (the largest value of its reference field on the tier, or its largest point error over
    the tolerance if that is larger), the last quarter of the coefficients is no larger than the
    third or than that tolerance (the decay is established, or has reached the rounding plateau)
    and ``N >= 8``.  ``E`` is the error reported, plus the points' own errors times the Lebesgue
    constant ``1 + (2/pi) log(N + 1)``.  For geometric decay ``|c_k| ~ C r^k`` (an analytic
    function: ``r`` is set by its nearest complex singularity) the interpolation error is at
    most ``2 sum_{k > N} |c_k| ~ 2 C r^(N+1) / (1 - r)``, which ``E`` exceeds whenever ``r <= 1/2``.

    A kinked activation's records are analytic only above a ``floor`` (the largest ``kappa`` at
    which a kink meets the edge of the sphere support,
    :func:`bnsym.numerics.moments.gain_floor`): its tiers stop at a cap ``floor + FLOOR_MARGIN
    (1 - floor)``, and a node below the cap that is not negligible is left to the caller.

    ``evaluate(kappas, rtol)`` gives the exact records at a list of points to ``rtol`` (all the
    new points of a level in one call); ``fields`` is a tuple of ``(name, reference)``.  Cost:
    ``N + 1`` evaluations per tier (typically 17 to 65 for tier 0, 9 to 17 for the others), then
    ``O(N)`` per interpolated node and field.  :meth:`at` returns ``None`` when a tier needs a
    degree above 128 (the caller then evaluates node by node).
    """

    def __init__(self, evaluate, fields, working_dps: int, rtol, floor=0):
        self.evaluate = evaluate
        self.fields = tuple(fields)
        self.working_dps = working_dps
        self.rtol = rtol
        # analytic only on (floor, 1]: no tier reaches below the cap (see `at`)
        self.cap = mpmath.mpf(0) if floor <= 0 else floor + (1 - floor) * FLOOR_MARGIN
        self.tiers = {}  # slack digits e -> (lo, fit); fit = (points, weights, {field: (values, error)}, first record)
        self.failed = False
        self._values = {}  # nstr(kappa) -> (rtol it was evaluated to, record)

    # -------------------------------------------------------------- records (subclasses adapt them)
    def field(self, record, name) -> Estimate:
        """The Estimate of field ``name`` in ``record``."""
        return record[name]

    def record(self, fields: dict, like):
        """A record holding ``fields``, of the kind of ``like`` (an evaluated record)."""
        return dict(fields)

    # -------------------------------------------------------------- public
    def at(self, kappas, slacks):
        """The records at each ``kappa`` in ``(0, 1]``, or ``None`` if not representable.

        ``slacks[i] >= 0`` is the number of decimal digits by which node ``i``'s error may exceed
        ``rtol`` (the caller's bound on its weight: see the class docstring).  A curve built with
        a ``floor`` gives ``None`` in place of the record of a node below its cap whose weight is
        not negligible: the caller evaluates that node itself.
        """
        with mpmath.workdps(self.working_dps):
            if self.failed:
                return None
            top, wanted, direct = self._wanted(kappas, slacks)
            chosen = [None] * len(kappas)
            for e in sorted({w for w, own in zip(wanted, direct) if w is not None and not own}):
                members = [i for i, w in enumerate(wanted) if w == e and not direct[i] and self._covering(kappas[i], e) is None]
                if members:
                    self._extend(e, min(kappas[i] for i in members))
                    if self.failed:
                        return None
                for i, w in enumerate(wanted):
                    if w == e and not direct[i]:
                        chosen[i] = self._covering(kappas[i], e)
            if not self.tiers:  # every node negligible: one tight tier still anchors the values
                self._extend(0, max(min(kappas), self.cap))
                if self.failed:
                    return None
            lowest = min(self.tiers, key=lambda e: self.tiers[e][0])
            out = []
            for kappa, tier, own in zip(kappas, chosen, direct):
                if own:
                    out.append(None)
                    continue
                if tier is None:  # negligible weight: any tier that covers it, else the lowest tier's end
                    tier = self._covering(kappa, top)
                    if tier is None:
                        out.append(self._clamped(lowest))
                        continue
                out.append(self._interpolate(tier, kappa))
            return out

    def covers(self, kappas, slacks) -> bool:
        """True when :meth:`at` would answer every node from the tiers already built, evaluating no new point."""
        with mpmath.workdps(self.working_dps):
            if self.failed or not self.tiers:
                return False
            _, wanted, direct = self._wanted(kappas, slacks)
            return all(w is None or own or self._covering(kappa, w) is not None
                       for kappa, w, own in zip(kappas, wanted, direct))

    # -------------------------------------------------------------- internals
    def _wanted(self, kappas, slacks):
        """``(top, wanted, direct)``: the digits of ``rtol``; each node's tier (``None``: negligible, its
        slack exceeds ``top``); whether the caller evaluates it itself (below a kinked curve's cap)."""
        top = int(-mpmath.log10(self.rtol) + mpmath.mpf("1e-9"))  # a slack past this allows an error larger than the values
        step = top if top <= ONE_TIER_DIGITS else top // 2
        wanted = [None if d >= top + 1 else step * (int(d) // step) for d in slacks]
        direct = [w is not None and kappa < self.cap for kappa, w in zip(kappas, wanted)]
        return top, wanted, direct

    def _covering(self, kappa, slack):
        """The tightest built tier with ``e <= slack`` whose interval contains ``kappa`` (or None)."""
        for e in sorted(self.tiers):
            if e <= slack and kappa >= self.tiers[e][0]:
                return e
        return None

    def _extend(self, e, lo):
        """(Re)build tier ``e`` down to ``lo``, with a margin in ``1 - kappa`` (20%, doubled on a rebuild)."""
        rebuild = e in self.tiers
        lo = max(1 - (1 - lo) * (2 if rebuild else mpmath.mpf("1.2")), lo / (16 if rebuild else 4), self.cap)
        fit = self._build(lo, self.rtol * mpmath.mpf(10) ** e)
        if fit is None:
            self.failed = True
        else:
            self.tiers[e] = (lo, fit)

    def _clamped(self, e):
        _, (_, _, table, like) = self.tiers[e]
        fields = {name: Estimate(ys[-1], error + 2 * max(abs(y) for y in ys)) for name, (ys, error) in table.items()}
        return self.record(fields, like)

    def _nodes(self, xs, rtol):
        """The exact records at each point of ``xs`` to ``rtol``; points not yet known to ``rtol``
        are evaluated in one call."""
        return cached_at_tolerance(self._values, xs, rtol, self.evaluate, self.working_dps)

    @staticmethod
    def _points(lo, level):
        n = 2 ** (level + 2)
        mid, half = (1 + lo) / 2, (1 - lo) / 2
        # j = 0 is kappa = 1 exactly, the eps = 0 gain, shared by every tier and the scale equation
        return [mpmath.mpf(1) if j == 0 else mid + half * mpmath.cos(mpmath.pi * j / n) for j in range(n + 1)]

    def _scale(self, values, name, ref, rtol):
        largest = max(abs(self.field(m, ref).value) for m in values)
        return max(largest, max(self.field(m, name).error for m in values) / rtol)

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
                scale = self._scale(values, name, ref, rtol)
                c = [abs(x) for x in chebyshev_coefficients([self.field(m, name).value for m in values])]
                estimate = 2 * (c[n - 1] + c[n])
                # decaying, or already below the tolerance (then rounding may make a plateau)
                settled = max(c[(3 * n) // 4:]) <= max(c[n // 2:(3 * n) // 4] + [rtol * scale])
                if estimate > rtol * scale or not settled:
                    return None
                worst[name] = estimate
            converged["at"] = current
            return worst

        try:
            gaps = converge(level_values, judge, ("radial curve", id(self), mpmath.nstr(rtol, 3)), 0, CURVE_MAX_LEVEL,
                            "radial curve did not converge")
        except PrecisionError:
            return None
        _, points, values = converged["at"]
        lebesgue = 1 + 2 / mpmath.pi * mpmath.log(len(points))
        table = {}
        for name, _ in self.fields:
            ys = [self.field(m, name).value for m in values]
            node_error = max(self.field(m, name).error for m in values)
            table[name] = (ys, gaps[name] + lebesgue * node_error)
        return points, _lobatto_weights(len(points) - 1), table, values[0]

    def _interpolate(self, e, kappa):
        """Second barycentric form on tier ``e``, its factors ``w_j / (kappa - x_j)`` shared by all fields."""
        _, (points, weights, table, like) = self.tiers[e]
        for j, p in enumerate(points):
            if kappa == p:
                return self.record({name: Estimate(ys[j], error) for name, (ys, error) in table.items()}, like)
        factors = [w / (kappa - p) for p, w in zip(points, weights)]
        den = mpmath.fsum(factors)
        return self.record({name: Estimate(mpmath.fdot(factors, ys) / den, error) for name, (ys, error) in table.items()}, like)


@lru_cache(maxsize=16)
def shared_holder(*key) -> dict:
    """The holder of a :class:`SharedCurve` for ``key`` (what the curve holds and the settings it depends
    on), the 16 latest keys kept: the latest curve built, under ``"curve"``.  The radial moments
    (:mod:`bnsym.meanfield.bsb1`) and the spectrum's eigenvalue integrands
    (:mod:`bnsym.meanfield.linearization`) at gain ``gamma kappa`` depend on the activation, ``B``,
    ``gamma``, ``beta``, ``dps`` and the method, not on ``eps`` or ``sigma_w`` (docs/theory.md section
    15.3), so every ``eps > 0`` and ``sigma_w`` shares one holder."""
    return {}


class SharedCurve:
    """A :class:`RadialCurve` shared by the solves at one set of settings, and this solve's own.

    ``holder`` is a dict kept per settings (:func:`shared_holder`; its ``"curve"``: the latest curve built);
    ``make()`` builds a new curve.  :meth:`at` answers from the shared curve while it covers every
    node (:meth:`RadialCurve.covers`: no new point), else from this solve's own curve, made on first
    need, which then becomes the shared one unless it fails (a curve that failed does not replace
    one that did not).  A solve evaluates at most one curve of its own, and a solve inside the
    range an earlier one covered evaluates none (docs/theory.md section 15.3).  Its values then come
    from tiers built on another interval: equal to its own curve's within the errors, not digit for
    digit.
    """

    def __init__(self, holder: dict, make):
        self.holder, self.make, self.own = holder, make, None

    def at(self, kappas, slacks):
        """:meth:`RadialCurve.at`, from the shared curve or this solve's own."""
        shared = self.holder.get("curve")
        if self.own is None and shared is not None and shared.covers(kappas, slacks):
            return shared.at(kappas, slacks)
        if self.own is None:
            self.own = self.make()
        records = self.own.at(kappas, slacks)
        if not self.own.failed or shared is None or shared.failed:
            self.holder["curve"] = self.own
        return records


def chebyshev_coefficients(values):
    """Chebyshev coefficients of the interpolant through values at the Lobatto points ``cos(pi j / N)``:
    ``c_k = (2/N) sum''_j f_j cos(pi j k / N)``, ``c_0`` and ``c_N`` halved.  Cost ``O(N^2)`` (the cosines cached)."""
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
