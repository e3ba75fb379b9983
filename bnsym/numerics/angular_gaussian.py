r"""The law of two batch-normalized coordinates at a general Gram matrix (docs/theory.md section 7.1).

For ``u ~ N(0, K)`` on ``1^perp`` (``K = G Sigma G``, rank ``n = B - 1``), ``T = |u|^2`` and a rate
``r = eps / sigma_w^2 >= 0``, the batch-normalized pair ``x = (u_a, u_b) / sqrt(T/B + r)`` has, inside the
ellipse ``x^T G_ab^-1 x < B``, the density

    rho_K(x) = -(1/2 pi) Res_{s = s*} Psi(s) [ 1/(B h(s)^2) + r / h(s) ],
    S(s) = [K (I + 2 s K)^-1]_ab = sum_i c_i v_i v_i^T,   c_i = lambda_i / (1 + 2 s lambda_i),   v_i = (e_a, e_b) . w_i,
    q(s) = x^T S(s)^-1 x,   h(s) = q(s)/(2B) - s,
    Psi(s) = prod_i (1 + 2 s lambda_i)^(-1/2) det S(s)^(-1/2) e^{-r q(s)/2},

where ``s*`` is the real zero of ``h`` right of ``-1/(2 lambda_max)`` (``h`` falls from positive to
``-inf`` there).  The residue at that simple zero of ``h`` is

    Res = (Psi' h' - Psi h'') / (B h'^3) + r Psi / h'.

Derivation: the joint Laplace-Fourier transform of ``(u_a, u_b, T)`` is ``prod (1 + 2 s lambda_i)^(-1/2)``
times a Gaussian of covariance ``S(s)``; the Bromwich inversion in ``T``, integrated against the change
of variables ``Y = sqrt(T/B + r) x`` before inverting, leaves a rational-exponential function of ``s``
whose only singularity right of the branch points is the pole at ``h = 0`` (``S(s)`` has a
positive-definite Hermitian part there).  For ``K = G`` and ``r = 0`` it gives the sphere law
``(n-2)/(2 pi B sqrt(det G_ab)) (1 - x^T G_ab^-1 x / B)^((n-4)/2)``.

:class:`PairDensity` returns ``rho_K / rho_G`` (the density against the sphere law of
:mod:`bnsym.numerics.sphere`), which at ``r = 0`` is analytic up to the ellipse's edge.  Cost per point:
a bracketed Newton solve for ``s*`` (warm-started at the previous point's root) of ``O(n)``
operations per step, then ``O(n)`` for the residue.

:func:`polar_map_float` is the polar rule in float64 for every pair of a batch at once, kinks included
(:mod:`bnsym.meanfield.spherical` uses it up to 10 digits).

May import: :mod:`bnsym.errors`, :mod:`bnsym.estimate`, :mod:`bnsym.numerics.quadrature`,
:mod:`bnsym.numerics.sphere` (its convergence loop), mpmath, numpy.
"""

from __future__ import annotations

from functools import lru_cache
from itertools import pairwise

import mpmath
import numpy as np

from bnsym.errors import PrecisionError
from bnsym.estimate import Estimate, rounding_error
from bnsym.numerics.quadrature import (
    SIZES,
    float64_rule,
    geometric_mean,
    panel,
    schwinger_rule,
    schwinger_scale,
)
from bnsym.numerics.sphere import converge, evaluator, hinted_level

#: Highest level of the polar rule (``SIZES[level]`` radial nodes).
MAX_POLAR_LEVEL = SIZES.index(256)


class PairDensity:
    """``rho_K(x) / rho_G(x)`` for the pair ``(a, b)``: see the module docstring.

    ``eigenvalues``: the positive eigenvalues ``lambda_i`` of ``K`` (exactly ``n = B - 1`` of them);
    ``rows``: ``(v_a, v_b)``, the entries ``a`` and ``b`` of the matching unit eigenvectors;
    ``rate``: ``eps / sigma_w^2``.  Arithmetic at the caller's precision.
    """

    def __init__(self, eigenvalues, rows, batch_size: int, rate):
        self.lam = list(eigenvalues)
        va, vb = rows
        self.paa = [x * x for x in va]
        self.pab = [x * y for x, y in zip(va, vb)]
        self.pbb = [y * y for y in vb]
        self.b = mpmath.mpf(batch_size)
        self.rate = mpmath.mpf(rate)
        n = len(self.lam)
        self.mean = geometric_mean(self.lam)
        # the sphere law: (n-2)/(2 pi B sqrt(det G_ab)) (1 - x^T G_ab^-1 x / B)^((n-4)/2)
        g_diag, g_off = 1 - 1 / self.b, -1 / self.b
        det_g = g_diag * g_diag - g_off * g_off
        self.g_inv = (g_diag / det_g, -g_off / det_g)
        self.iso_norm = (n - 2) / (2 * mpmath.pi * self.b * mpmath.sqrt(det_g))
        self.iso_power = mpmath.mpf(n - 4) / 2
        self.root = mpmath.mpf(0)

    def _local(self, s, xa, xb, order):
        """``(q, q')`` at ``s`` for ``q = x^T S(s)^-1 x``; with ``order == 2`` also ``q''``,
        ``prod (1 + 2 s lambda_i)^(-1/2) det S^(-1/2)`` and its logarithmic derivative (``Psi`` without ``e^{-r q/2}``)."""
        c = [lam / (1 + 2 * s * lam) for lam in self.lam]
        derivatives = [c, [-2 * x * x for x in c]]  # c and dc/ds
        if order == 2:
            derivatives.append([8 * x * x * x for x in c])  # d2c/ds2
        entries = [mpmath.fdot(d, w) for d in derivatives for w in (self.paa, self.pab, self.pbb)]
        det = _det(entries)
        q, q1, q2 = _forms(entries, det, xa, xb)
        if order == 1:
            return q, q1
        prod = mpmath.fprod(lam / ci for lam, ci in zip(self.lam, c))  # prod (1 + 2 s lambda_i)
        trace = _trace(entries, det)  # tr(S^-1 S')
        return q, q1, q2, 1 / mpmath.sqrt(prod * det), -mpmath.fsum(c) - trace / 2

    def _solve(self, xa, xb):
        """The zero ``s*`` of ``h`` right of ``-1/(2 lambda_max)``.

        Solved as ``F(u) = 2 B s / q(s) - 1 = 0`` in ``u = 1 / (1 + 2 s g)`` (``g`` the geometric mean of the
        ``lambda_i``): ``F`` falls through ``(0, 1)`` (``u -> 0`` is the ellipse's edge, ``F(1) = -1``), it is linear
        in ``u`` for ``K`` proportional to ``G``, and ``u`` keeps its relative precision near the edge.
        Newton from the previous point's root, kept inside a bracket (bisection when a step leaves it).
        """
        if xa == 0 and xb == 0:
            return mpmath.mpf(0)
        g = self.mean
        lo, hi = mpmath.mpf(0), mpmath.mpf(1)  # F(lo) > 0 > F(hi) = -1 (s* > 0: h(0) = q(0)/(2B) > 0)
        u = min(max(1 / (1 + 2 * self.root * g), hi / 2**40), hi * (1 - mpmath.mpf(2) ** -40))
        tol = mpmath.eps * 16
        two_b = 2 * self.b
        for _ in range(200):
            s = (1 - u) / (2 * g * u)
            q, q1 = self._local(s, xa, xb, 1)
            f = two_b * s / q - 1
            if f > 0:
                lo = u
            else:
                hi = u
            # dF/du = dF/ds ds/du,  dF/ds = 2B (q - s q') / q^2,  ds/du = -1 / (2 g u^2)
            slope = -two_b * (q - s * q1) / (q * q) / (2 * g * u * u)
            step = f / slope if slope else hi - lo
            # converged: a step below the rounding of u, or F at its own rounding (near the edge, where
            # u* is below the rounding of F, u* is known to an absolute, not relative, precision)
            if abs(step) <= tol * u or abs(f) <= tol:
                u = min(max(u - step, lo), hi)
                if not u > 0:
                    break
                self.root = (1 - u) / (2 * g * u)
                return self.root
            u = u - step if lo < u - step < hi else (lo + hi) / 2
        raise PrecisionError(f"the angular Gaussian pair density: no root of h at x = ({mpmath.nstr(xa, 8)}, {mpmath.nstr(xb, 8)})")

    def ratio(self, xa, xb):
        """``rho_K(x) / rho_G(x)`` at ``x = (xa, xb)`` inside the ellipse (0 on and outside it).

        ``F(u)`` cancels about ``-log10(inside)`` digits (``inside = 1 - x^T G_ab^-1 x / B``), so within about
        ``10^-working_dps`` of the edge the value loses its digits (a PrecisionError where that is detected);
        the sphere law's angle truncation keeps its nodes farther in for generic kinks.  Cost: a Newton
        solve of a few ``O(n)`` steps from the previous point's root."""
        ga, gb = self.g_inv
        inside = 1 - (ga * (xa * xa + xb * xb) + 2 * gb * xa * xb) / self.b
        if inside <= 0:
            return mpmath.mpf(0)
        s = self._solve(xa, xb)
        q, q1, q2, psi, dlog = self._local(s, xa, xb, 2)
        two_b = 2 * self.b
        h1, h2 = q1 / two_b - 1, q2 / two_b
        psi, dlog = psi * mpmath.exp(-self.rate * q / 2), dlog - self.rate * q1 / 2
        if not (h1 and mpmath.isfinite(psi) and isinstance(psi, mpmath.mpf)):
            raise PrecisionError(f"the angular Gaussian pair density lost its precision at x = ({mpmath.nstr(xa, 8)}, "
                                 f"{mpmath.nstr(xb, 8)}), {mpmath.nstr(inside, 3)} from the ellipse's edge")
        residue = (psi * dlog * h1 - psi * h2) / (self.b * h1**3) + self.rate * psi / h1
        return -residue / (2 * mpmath.pi) / (self.iso_norm * inside**self.iso_power)

    # ------------------------------------------------------------------ polar rule
    def polar_weight(self, u, ca, cb):
        """``(r, W)`` of the polar coordinates ``x = r theta``, ``theta = (ca, cb)`` a unit vector, ``u in (0, 1]``:
        ``u = 1 / (1 + 2 s g)`` is the zero of ``h`` at ``x`` written as ``u`` (``g`` the geometric mean of
        the ``lambda_i``), so no root is solved, and ``rho_K(x) dx = W du dtheta`` (docs/theory.md section 7.1):

            S(s) = u S^(u),  S^ = sum_i gamma_i v_i v_i^T,  gamma_i = lambda_i g / D_i,  D_i = lambda_i + u (g - lambda_i),
            p = theta^T S^-1 theta,  r^2 = B (1 - u) / (g p),  H' = g r^2 p' + B,  H'' = g r^2 p'',
            Psi = g^(n/2) u^(n/2 - 1) prod D_i^(-1/2) det S^^(-1/2) e^{-r B (1 - u) / (2 g u)},
            W = B Psi / (4 pi g p) [ 2 g ((log Psi)' H' - H'') / H'^2 + rate / u ]

        (primes are ``d/du``).  Every factor is analytic in ``u`` on ``[0, 1]`` up to the explicit power of
        ``u``; nothing cancels as ``u -> 0`` (the ellipse's edge), where the same formula in ``s`` would.
        """
        return self._polar_weight(self._radial_terms(u), u, ca, cb)

    def _radial_terms(self, u, s=None):
        """The parts of :meth:`polar_weight` that do not depend on ``theta``: the entries of ``S^``, ``S^'``,
        ``S^''``, ``det S^``, ``Psi``, the ``theta``-free part of ``(log Psi)'`` and ``1 - u`` (``O(n)``
        operations).  Given the Schwinger parameter ``s`` of ``u``, ``1 - u = 2 g s u`` and the factor
        ``e^{-rate B s}`` are taken from it, not from ``u`` (where ``1 - u`` cancels when ``rate >> g``)."""
        g, n = self.mean, len(self.lam)
        one_minus = 1 - u if s is None else 2 * g * s * u
        d = [lam + u * (g - lam) for lam in self.lam]
        ratio = [(g - lam) / di for lam, di in zip(self.lam, d)]  # D_i' / D_i
        gam = [lam * g / di for lam, di in zip(self.lam, d)]
        gam1 = [-x * y for x, y in zip(gam, ratio)]
        gam2 = [2 * x * y * y for x, y in zip(gam, ratio)]
        entries = [mpmath.fdot(c, w) for c in (gam, gam1, gam2) for w in (self.paa, self.pab, self.pbb)]
        det = _det(entries)
        trace = _trace(entries, det)  # tr(S^-1 S^')
        half = mpmath.mpf(n) / 2
        dlog = (half - 1) / u - mpmath.fsum(ratio) / 2 - trace / 2
        psi = g**half * u ** (half - 1) / mpmath.sqrt(mpmath.fprod(d) * det)
        if self.rate:
            psi *= mpmath.exp(-self.rate * self.b * (one_minus / (2 * g * u) if s is None else s))
        return entries, det, dlog, psi, one_minus

    def _polar_weight(self, terms, u, ca, cb):
        """:meth:`polar_weight` from the ``theta``-free :meth:`_radial_terms` (``O(1)`` operations)."""
        r2, weight = _weight(terms, u, ca, cb, self.mean, self.rate, self.b, mpmath.pi)
        return mpmath.sqrt(r2), weight

    def expect_polar(self, pairs, rtol, working_dps):
        """``[E_K[F(x_a) G(x_b)]]`` for pairs of factor tuples (``()`` is 1) of integrands analytic on the
        ellipse, by the polar rule (docs/theory.md section 7.1).

        Radial coordinate: Gauss-Legendre in ``u`` on ``[0, 1]`` with both ends smoothed (square-root
        behaviour at ``u = 1``, the origin, and ``u^((n-4)/2)`` at ``u = 0``) at ``eps = 0``; at ``eps > 0``
        the double-exponential rule of :func:`~bnsym.numerics.quadrature.schwinger_rule` in ``s`` for the
        factor ``e^{-rate B s}`` (the weight still computed in ``u``); both with ``SIZES[level]`` nodes
        (:func:`~bnsym.numerics.quadrature.panel`), the level raised by the engine's convergence loop until
        two levels agree to ``rtol`` of the largest value (the pair ``((), ())``, the law's mass, to
        ``rtol``).  Angle: the trapezoidal rule on ``[0, pi)`` (``x -> -x`` folds the circle: ``rho_K`` is
        even), with ``SIZES[level]`` points at every radial node (the square rule), or, when ``K``'s condition
        number exceeds :data:`ADAPTIVE_ANGLE_CONDITION`, at each radial node its own rule, doubled from 16
        points by the same loop until two sizes agree to ``rtol / 4`` of a first estimate of the result,
        shared evenly by the radial weights (a node of weight ``w`` among ``N`` gets ``1 / (N |w|)`` of it).
        The angle needs more points than the radius as ``K`` grows ill-conditioned (measured, tanh, B = 4,
        15 digits: ``u`` 24, 24 to 32, 32 and 48 nodes, the angle 32, 64, 128 and over 256, at condition
        numbers 1, 10, 100 and 1000), so past 100 a square rule spends most of its nodes in ``u``.  The
        error is the two radial levels' difference, plus (adaptive) the angular differences summed with
        the radial weights.

        Cost ``O(N M)`` nodes of ``O(1)`` operations plus ``O(N n)`` (``N`` radial, ``M`` angular nodes).
        At ``eps > 0`` the ``s`` rule spans ``log(g / (rate B))``: far from ``rate B ~ g`` (below ``1e-6``
        or above ``1e6`` of it) it needs many levels or fails with a PrecisionError.
        """
        mass = [p == ((), ()) for p in pairs]  # the law's total mass: judged against 1, apart from the entries

        def judge(current, previous):
            (now, angular), (before, _) = current, previous
            size = max((abs(v) for v, m in zip(now, mass) if not m), default=mpmath.mpf(1))
            out = [Estimate(v, max(abs(v - w), rounding_error(v, working_dps)) + e)
                   for v, w, e in zip(now, before, angular)]
            return out if all(e.error <= rtol * (1 if m else size) for e, m in zip(out, mass)) else None

        funcs = {id(f): f for pair in pairs for factors in pair for f in factors}
        reach = mpmath.sqrt(len(self.lam))  # |x_a| < sqrt(B - 1) on the ellipse
        if any(abs(s) < reach for f in funcs.values() for s, _ in f.breakpoints()):
            raise ValueError("expect_polar needs integrands analytic on the ellipse |x| < sqrt(B - 1): a kink "
                             "inside it needs the nested rule (SphereLaw.expect_weighted)")
        labels = tuple(sorted({f.activation.label for f in funcs.values()}))
        steep = max((abs(f.gain) * reach for f in funcs.values()), default=0)  # for the message only
        key = ("polar", len(self.lam) + 1, working_dps, labels)
        start = hinted_level(key, next(i for i, n in enumerate(SIZES) if n >= working_dps // 2))
        angle_key = ("polar angle", len(self.lam) + 1, working_dps, labels)
        tolerances = None  # the square rule: SIZES[level] angles at every radial node
        if max(self.lam) > ADAPTIVE_ANGLE_CONDITION * min(self.lam):
            # each radial node's own angular rule, to an absolute tolerance: rtol / 4 of the sizes of a first
            # estimate (the start level, square), so the radial weights sum it to at most rtol / 4 of the result
            rough, _ = self._polar_level(pairs, funcs, start, working_dps, None, angle_key)
            size = max((abs(v) for v, m in zip(rough, mass) if not m), default=mpmath.mpf(1))
            tolerances = [rtol / 4 * (1 if m else size) for m in mass]
        return converge(lambda level: self._polar_level(pairs, funcs, level, working_dps, tolerances, angle_key),
                        judge, key, start,
                        MAX_POLAR_LEVEL, f"the polar rule of the pair law did not converge to {mpmath.nstr(rtol, 3)} with "
                        f"{SIZES[MAX_POLAR_LEVEL]} radial nodes (B={len(self.lam) + 1}, eigenvalues of G Sigma G from "
                        f"{mpmath.nstr(min(self.lam), 3)} to {mpmath.nstr(max(self.lam), 3)}, eps B / sigma_w^2 = "
                        f"{mpmath.nstr(self.rate * self.b, 3)}, the activations' arguments spanning +-{mpmath.nstr(steep, 3)}; "
                        "a nearly collapsed batch, or eps far from the scale of G Sigma G, concentrates the law, and "
                        "a steep activation varies faster than the rule resolves: use fewer digits or method='sampling')")

    def _polar_level(self, pairs, funcs, level, working_dps, tolerances, angle_key):
        """``(totals, angular errors)`` of the polar rule with ``SIZES[level]`` radial nodes."""
        m = SIZES[level]
        if self.rate:  # e^{-rate B s}: the double-exponential rule in s (it stops where the factor is negligible)
            g, decay = self.mean, self.rate * self.b
            ss, ws = schwinger_rule(schwinger_scale(self.lam, decay), decay, 1, m, working_dps)
            nodes = [1 / (1 + 2 * g * x) for x in ss]
            weights = [w * 2 * g * u * u for w, u in zip(ws, nodes)]  # du = -2 g u^2 ds
            radial = [self._radial_terms(u, x) for u, x in zip(nodes, ss)]
        else:
            nodes, weights = panel(mpmath.mpf(0), mpmath.mpf(1), level, working_dps, smooth_lo=True, smooth_hi=True)
            radial = [self._radial_terms(u) for u in nodes]
        totals = [mpmath.mpf(0) for _ in pairs]
        errors = [mpmath.mpf(0) for _ in pairs]
        for u, w, terms in zip(nodes, weights, radial):
            # a node's angular error counts with its radial weight: the weights share the tolerance evenly
            own = None if tolerances is None else [t / (len(nodes) * abs(w)) if w else mpmath.inf for t in tolerances]
            values, angular = self._angular(pairs, funcs, u, terms, working_dps, own, angle_key, m)
            for index, (v, e) in enumerate(zip(values, angular)):
                totals[index] += w * v
                errors[index] += abs(w) * e
        return totals, errors

    def _angular(self, pairs, funcs, u, terms, working_dps, tolerances, key, square):
        """``(values, errors)``: the integrals over ``theta in [0, pi)`` of ``W(theta, u)`` times each pair's
        integrand at ``x = +-r theta``, by trapezoidal rules of ``ANGLE_SIZES[level]`` points (each size
        reuses the last one's points), raised by the engine's loop until two sizes agree to the absolute
        ``tolerances`` (one per pair)."""
        sums = {}  # points -> raw sums over k pi / points
        last = {}
        values_at = evaluator(list(funcs.values()), mpmath.mpf(0))  # no kink enters the ellipse

        def level_values(level, points=None):
            points = ANGLE_SIZES[level] if points is None else points
            coarse = sums.get(points // 2)
            table = _angles(points, working_dps)
            # a doubled rule adds the odd points to the coarser rule's sum
            raw = list(coarse) if coarse is not None else [mpmath.mpf(0) for _ in pairs]
            for ca, cb in (table[1::2] if coarse is not None else table):
                r, density = self._polar_weight(terms, u, ca, cb)
                if not density:
                    continue
                for sign in (1, -1):
                    xa, xb = sign * r * ca, sign * r * cb
                    values_a, values_b = values_at(xa), values_at(xb)
                    for index, (fa, gb) in enumerate(pairs):
                        term = density
                        for f in fa:
                            term = term * values_a[id(f)]
                        for g in gb:
                            term = term * values_b[id(g)]
                        raw[index] += term
            sums[points] = raw
            step = mpmath.pi / points
            return [x * step for x in raw]

        def judge(current, previous):
            differences = [abs(x - y) for x, y in zip(current, previous)]
            if any(d > t for d, t in zip(differences, tolerances)):
                return None
            last["values"] = current
            return differences

        if tolerances is None:  # the square rule: ``square`` points, its error judged with the radial one
            return level_values(None, square), [mpmath.mpf(0) for _ in pairs]
        # from 16 against 32 points at every node: the doublings reuse their points, so starting low costs
        # only the comparisons, and a node's need is not its neighbour's (a hint would only ratchet up)
        errors = converge(level_values, judge, key, 1, len(ANGLE_SIZES) - 1,
                          f"the polar rule's angle did not converge to {mpmath.nstr(min(tolerances), 3)} with {ANGLE_SIZES[-1]} "
                          f"points at u = {mpmath.nstr(u, 5)} (B={len(self.lam) + 1}, eigenvalues of G Sigma G from "
                          f"{mpmath.nstr(min(self.lam), 3)} to {mpmath.nstr(max(self.lam), 3)}: a nearly collapsed "
                          "batch concentrates the law; use fewer digits or method='sampling')")
        return last["values"], errors


#: Condition number of ``K`` above which the polar rule gives each radial node its own angular rule, below
#: which every node has ``SIZES[level]`` angles.  Measured, one layer of tanh at B = 4, 15 digits
#: (``propagate(..., method="spherical")``): at condition 100, 17 s against the square rule's 29 s; at
#: 1000, 26 s where the square rule fails with 256^2 nodes; at 10^4 both fail.  On well-conditioned
#: batches the two are within 20% of each other either way (tanh at eps = 1e-3, gelu at eps = 0.05,
#: B = 4 to 6: the square rule 15-20% faster; condition 10 and 30: the adaptive rule 15-20% faster).
ADAPTIVE_ANGLE_CONDITION = 100

#: Sizes of the adaptive angular trapezoidal rule (each doubles the last, so it reuses its points).
ANGLE_SIZES = (8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096)


@lru_cache(maxsize=32)
def _angles(points, working_dps):
    """``(cos theta_k, sin theta_k)`` for ``theta_k = k pi / points``, ``k = 0..points-1``."""
    with mpmath.workdps(working_dps):
        return tuple((mpmath.cospi(mpmath.mpf(k) / points), mpmath.sinpi(mpmath.mpf(k) / points)) for k in range(points))


def _weight(terms, u, ca, cb, g, rate, b, pi):
    """``(r^2, W)`` of :meth:`PairDensity.polar_weight` from its ``theta``-free terms ``(entries of S^, S^',
    S^'', det S^, theta-free (log Psi)', Psi, 1 - u)``; arithmetic only, so mpf scalars or broadcasting
    numpy arrays (``pi`` is mpmath's or numpy's)."""
    entries, det, dlog, psi, one_minus = terms
    p, p1, p2 = _forms(entries, det, ca, cb)
    r2 = b * one_minus / (g * p)
    h1, h2 = g * r2 * p1 + b, g * r2 * p2
    if rate:
        dlog = dlog - rate * (r2 * p1 / u - b * one_minus / (g * u * u)) / 2
    bracket = 2 * g * (dlog * h1 - h2) / (h1 * h1)
    if rate:
        bracket = bracket + rate / u
    return r2, b * psi / (4 * pi * g * p) * bracket


def _det(entries):
    """``det S`` of a 2 x 2 symmetric matrix from ``entries`` (``S_11, S_12, S_22`` first); arithmetic only, so
    mpf scalars or NumPy arrays."""
    return entries[0] * entries[2] - entries[1] * entries[1]


def _trace(entries, det):
    """``tr(S^-1 S')`` of a 2 x 2 symmetric matrix function from ``entries`` (``S_11, S_12, S_22``, then the same
    of ``S'``) and ``det = det S``; arithmetic only."""
    s11, s12, s22, d11, d12, d22 = entries[:6]
    return (s22 * d11 - 2 * s12 * d12 + s11 * d22) / det


def _forms(entries, det, xa, xb):
    """``(q, q', q'')`` of ``q = x^T S^-1 x`` for a 2 x 2 matrix function: ``q' = -y^T S' y``,
    ``q'' = 2 (S' y)^T S^-1 (S' y) - y^T S'' y`` with ``y = S^-1 x``.  ``entries``: ``(S_11, S_12, S_22)``,
    the same of ``S'``, and (or not, then ``q''`` is None) of ``S''``; ``det = det S``."""
    s11, s12, s22, d11, d12, d22 = entries[:6]
    ya, yb = (s22 * xa - s12 * xb) / det, (s11 * xb - s12 * xa) / det
    q = xa * ya + xb * yb
    za, zb = d11 * ya + d12 * yb, d12 * ya + d22 * yb  # S' y
    q1 = -(ya * za + yb * zb)
    if len(entries) < 9:
        return q, q1, None
    e11, e12, e22 = entries[6:]
    wa, wb = (s22 * za - s12 * zb) / det, (s11 * zb - s12 * za) / det  # S^-1 S' y
    return q, q1, 2 * (za * wa + zb * wb) - (ya * (e11 * ya + e12 * yb) + yb * (e12 * ya + e22 * yb))


# ---------------------------------------------------------------------------------- float64, all pairs
#: Nodes per chunk of the float64 polar rules (pairs x angles x radial nodes), bounding their memory
#: (a few dozen arrays of this many float64, times ``n`` for the radial terms).
FLOAT_CHUNK = 2**17


def polar_map_float(eigenvalues, vectors, batch_size: int, rate: float, phi, tolerance: float, kinks=()):
    """``(V, error)``, ``B x B`` float64 arrays: ``V_ab = E[phi(x_a) phi(x_b)]`` over the pair law of every pair
    by the polar rule of :meth:`PairDensity.expect_polar` in float64, all pairs at once.

    ``eigenvalues`` (``n = B - 1`` positive values) and ``vectors`` (``B x n``, unit columns) are ``K``'s;
    ``rate = eps / sigma_w^2``; ``phi`` maps a float64 array to an array of the same shape (the activation
    with its gain and shift); ``kinks``: the points of the ``x`` axis where ``phi`` has a kink (``(k - beta)
    / gamma`` for the activation's kinks ``k`` within reach).  The weight is the formula of
    :meth:`PairDensity.polar_weight`, with ``Psi`` in logarithms (``prod D_i`` overflows past B ~ 300).

    Without kinks, the square rule: ``SIZES[level]`` radial nodes (Gauss in ``u`` with both ends smoothed at
    ``eps = 0``, the double-exponential rule in ``s`` at ``eps > 0``) and ``(lambda_max / lambda_min)^(1/4)``
    times as many angles, rounded, at most 8 times (the angle is what an ill-conditioned ``K`` makes hard),
    trapezoidal.  With kinks (docs/theory.md section 7.1), the circle is cut where a kink line meets the
    ellipse's edge and where two kink lines cross (the same angles for every pair: the edge is
    ``x^T G_ab^-1 x = B``), with a tanh-sinh rule on each arc (as many more angles); along each ray the
    radius is cut where the ray crosses a kink line (:func:`_ray_crossing`: ``r^2(u) = B (1 - u) / (g p(u))``
    falls from the edge to 0), and at ``eps > 0``
    at ``u = c 4^j`` (``c = rate B / (2 g)`` below 1: the factor ``e^{-c (1 - u) / u}`` has a layer of width
    ``c`` at the edge), and at ``u = 1/4``; Gauss-Legendre in ``psi``, ``u = sin^2 psi``, on each piece
    (``u^((n-4)/2) du`` at the edge and the radius ``r ~ sqrt(1 - u)`` at the origin, which odd parts of
    ``phi`` carry, are both analytic in ``psi``).

    The level is raised by the engine's loop from 16 nodes until two levels agree to ``tolerance`` of the
    largest entry and every pair's mass to ``tolerance``; the error is the level difference
    plus the mass's distance from 1 times the entry's size, plus ``1e-14`` of the largest entry (the float64
    rounding of sums of up to ``10^6`` terms), and each diagonal entry gets the spread of its ``B - 1``
    values.  Cost per level: ``O(B^2 N^2)`` nodes of ``O(1)`` flops plus ``O(B^2 n N)`` (square rule),
    ``O(B^2 n N^2)`` (kinked: each ray has its own radial nodes).  Memory: chunks of :data:`FLOAT_CHUNK`
    nodes (times ``n``).  Promises at most 12 digits (the float64 rounding of the weight's sums); raises
    :class:`~bnsym.errors.PrecisionError` past :data:`MAX_POLAR_LEVEL` or on non-finite values.
    """
    lam = np.asarray(eigenvalues, dtype=np.float64)
    vecs = np.asarray(vectors, dtype=np.float64)
    b = batch_size
    g = float(np.exp(np.log(lam).mean()))
    first, second = np.triu_indices(b, 1)
    rows = (vecs[first] ** 2, vecs[first] * vecs[second], vecs[second] ** 2)  # per pair: v_a^2, v_a v_b, v_b^2
    law = (lam, g, float(rate), b)
    kinks = tuple(float(k) for k in kinks)

    def level_values(level):
        out = np.zeros((4, first.size))  # V_ab, V_aa, V_bb, mass per pair
        rule = _kinked_level if kinks else _square_level
        with np.errstate(all="ignore"):  # zero-width pieces and weights; the judge refuses non-finite sums
            return rule(law, rows, phi, kinks, level, out)

    def judge(current, previous):
        size = np.abs(current[:3]).max()
        diff = np.abs(current - previous)
        if not np.all(np.isfinite(current)) or diff[:3].max() > tolerance * size or diff[3].max() > tolerance:
            return None
        slack = (np.abs(current[3] - 1) + diff[3]) * np.abs(current[:3]).max(axis=0)  # per pair, in its entries' units
        return current, diff[:3].max(axis=0) + slack + 1e-14 * size

    values, errors = converge(level_values, judge, ("polar, float64", b, bool(kinks)), SIZES.index(16), MAX_POLAR_LEVEL,
                              f"the float64 polar rule of the pair law did not converge to {tolerance:.1e} with "
                              f"{SIZES[MAX_POLAR_LEVEL]} nodes a coordinate (B={b}, eigenvalues of G Sigma G from "
                              f"{lam.min():.3g} to {lam.max():.3g}, eps B / sigma_w^2 = {rate * b:.3g}): ask for more "
                              "digits (the mpmath rules) or method='sampling'")
    v, e = np.zeros((b, b)), np.zeros((b, b))
    v[first, second] = v[second, first] = values[0]
    e[first, second] = e[second, first] = errors
    for index in range(b):  # V_aa from its B - 1 pairs: the first value, their spread in the error
        own = np.concatenate([values[1][first == index], values[2][second == index]])
        own_errors = np.concatenate([errors[first == index], errors[second == index]])
        v[index, index] = own[0]
        e[index, index] = own_errors.max() + np.abs(own - own[0]).max()
    return v, e


def _stretch(lam):
    """How many times as many angles as radial nodes: ``(lambda_max / lambda_min)^(1/4)``, rounded, at most 8
    (condition 4096; past it the rule's memory grows without converging: the caller falls back to mpmath)."""
    return min(8, max(1, round(float(lam.max() / lam.min()) ** 0.25)))


def _float_terms(law, rows, u, s=None):
    """The ``theta``-free terms of :meth:`PairDensity._radial_terms` in float64 at radial nodes ``u`` (an array
    broadcasting with ``rows``' leading axes; ``rows``: ``v_a^2, v_a v_b, v_b^2`` with the eigen index last),
    ``Psi`` through its logarithm; ``s``: the Schwinger parameters of ``u`` (at ``eps > 0``, when known)."""
    lam, g, rate, b = law
    n = lam.size
    entries, d, ratio = _float_entries(law, rows, u, 3)
    det = _det(entries)
    trace = _trace(entries, det)
    dlog = (n / 2 - 1) / u - ratio.sum(axis=-1) / 2 - trace / 2
    one_minus = 1 - u if s is None else 2 * g * s * u
    log_psi = n / 2 * np.log(g) + (n / 2 - 1) * np.log(u) - (np.log(d).sum(axis=-1) + np.log(det)) / 2
    if rate:
        log_psi = log_psi - rate * b * (one_minus / (2 * g * u) if s is None else s)
    return entries, det, dlog, np.exp(log_psi), one_minus


def _float_entries(law, rows, u, orders):
    """The entries ``(S^_aa, S^_ab, S^_bb)`` of ``S^(u)`` and, for ``orders`` 2 and 3, of ``S^'`` and ``S^''``
    (``S^ = sum_i gamma_i v_i v_i^T``, ``gamma_i = lambda_i g / D_i``), with ``D_i`` and ``D_i' / D_i``."""
    lam, g, _, _ = law
    d = lam + u[..., None] * (g - lam)
    ratio = (g - lam) / d
    gam = lam * g / d
    factors = (gam, -gam * ratio, 2 * gam * ratio**2)[:orders]
    return tuple(np.einsum("...i,...i->...", c, row) for c in factors for row in rows), d, ratio


def _accumulate(out, where, law, terms, u, ca, cb, weights, phi):
    """Add ``W weights`` times ``(phi_a phi_b, phi_a^2, phi_b^2, 1)`` at ``x = r theta`` into ``out[:, where]``,
    summed over every axis but the first (pairs); ``ca, cb``, ``u`` and ``weights`` broadcast with the terms."""
    _, g, rate, b = law
    r2, density = _weight(terms, u, ca, cb, g, rate, b, np.pi)
    factor = np.where(weights > 0, density * weights, 0.0)
    r = np.sqrt(r2)
    fa, fb = phi(r * ca), phi(r * cb)
    axes = tuple(range(1, factor.ndim))
    out[0, where] += (factor * fa * fb).sum(axis=axes)
    out[1, where] += (factor * fa * fa).sum(axis=axes)
    out[2, where] += (factor * fb * fb).sum(axis=axes)
    out[3, where] += factor.sum(axis=axes)


def _square_level(law, rows, phi, kinks, level, out):
    """The square polar rule (no kinks) at ``level``, accumulated into ``out``."""
    lam, g, rate, b = law
    m = SIZES[level]
    if rate:
        decay = rate * b
        ss, ws = float64_rule(schwinger_rule, mpmath.mpf(float(schwinger_scale(lam.tolist(), decay))), mpmath.mpf(decay), 1, m)
        u = 1 / (1 + 2 * g * ss)
        weights = ws * 2 * g * u * u  # du = -2 g u^2 ds
    else:
        u, weights = float64_rule(panel, mpmath.mpf(0), mpmath.mpf(1), level, smooth_lo=True, smooth_hi=True)
        ss = None
    # the angle needs more nodes than the radius as K grows ill-conditioned (see expect_polar): about
    # (lambda_max / lambda_min)^(1/4) times as many
    points = m * _stretch(lam)
    angles = np.pi * np.arange(points) / points
    ca, cb = np.cos(angles), np.sin(angles)
    step = max(1, FLOAT_CHUNK // (u.size * points))
    for lo in range(0, rows[0].shape[0], step):
        where = slice(lo, lo + step)
        chunk = tuple(row[where][:, None, None, :] for row in rows)  # pairs x radial x angle x n
        terms = _float_terms(law, chunk, u[None, :, None], None if ss is None else ss[None, :, None])
        for sign in (1, -1):  # x -> -x folds the circle onto [0, pi)
            _accumulate(out, where, law, terms, u[None, :, None], sign * ca, sign * cb,
                        (weights * np.pi / points)[None, :, None] * np.ones_like(ca), phi)
    return out


def _kinked_level(law, rows, phi, kinks, level, out):
    """The polar rule with cuts at the kink lines (see :func:`polar_map_float`) at ``level``, into ``out``."""
    _, g, rate, b = law
    edges = _kink_angles(b, kinks)
    # as in the square rule, _stretch times as many angles (two levels double them)
    extra = round(2 * np.log2(_stretch(law[0])))
    tn, tw = float64_rule(panel, mpmath.mpf(0), mpmath.mpf(1), min(level + extra, len(SIZES) - 1), kind="tanh-sinh")
    angles = np.concatenate([lo + (hi - lo) * tn for lo, hi in pairwise(edges)])
    angle_weights = np.concatenate([(hi - lo) * tw for lo, hi in pairwise(edges)])
    ca, cb = np.cos(angles), np.sin(angles)
    plain, plain_w = float64_rule(panel, mpmath.mpf(0), mpmath.mpf(1), level)
    layer = rate * b / (2 * g)
    fixed = [layer * 4.0**j for j in range(20) if 0 < layer * 4.0**j < 1]  # the e^{-c (1-u)/u} layer at the edge
    # and u = 1/4, so that no piece spans both ends' neighbourhoods (the weight's singularities near them,
    # at u = -lambda_i / (g - lambda_i), approach the edge for small lambda_i and the origin for large ones)
    fixed.append(0.25)
    pieces = 2 * len(kinks) + len(fixed) + 1
    step = max(1, FLOAT_CHUNK // (angles.size * pieces * plain.size))
    for lo in range(0, rows[0].shape[0], step):
        where = slice(lo, lo + step)
        chunk = tuple(row[where][:, None, None, :] for row in rows)  # pairs x angles x 1 x n
        pairs = chunk[0].shape[0]
        cuts = [np.full((pairs, angles.size), u) for u in fixed]
        for k in kinks:
            for c in (ca, cb):  # the ray crosses x_a = k (or x_b = k) at r = k / c when k c > 0
                with np.errstate(divide="ignore"):
                    target = np.where(k * c > 0, (k / np.where(c == 0, 1, c)) ** 2, np.inf)
                cuts.append(_ray_crossing(law, chunk, ca, cb, target))
        # the radial coordinate psi, u = sin^2 psi: sqrt(u) = sin psi (the edge's u^((n-4)/2) du) and
        # sqrt(1 - u) = cos psi (r near the origin, odd in x) are both analytic in it, so Gauss-Legendre on
        # each piece needs no smoothing map, however near either end a crossing falls
        psi = np.arcsin(np.sqrt(np.sort(np.stack(cuts, axis=-1), axis=-1)))
        bounds = np.concatenate([np.zeros((pairs, angles.size, 1)), psi,
                                 np.full((pairs, angles.size, 1), np.pi / 2)], axis=-1)
        lows, widths = bounds[..., :-1, None], np.diff(bounds, axis=-1)[..., None]
        nodes = (lows + widths * plain).reshape(pairs, angles.size, -1)  # pairs x angles x radial
        weights = (widths * plain_w).reshape(pairs, angles.size, -1)
        sin, cos = np.sin(nodes), np.cos(nodes)
        u = sin * sin
        weights = weights * 2 * sin * cos * angle_weights[None, :, None]  # du = 2 sin psi cos psi dpsi
        safe = np.where(u > 0, u, 1.0)  # zero-width pieces have u = 0 and weight 0
        with np.errstate(divide="ignore", invalid="ignore"):
            # the Schwinger parameter from 1 - u = cos^2 psi, which keeps its digits near the origin
            terms = _float_terms(law, chunk, safe, cos * cos / (2 * g * safe))
            _accumulate(out, where, law, terms, safe, ca[None, :, None], cb[None, :, None], weights, phi)
    return out


def _ray_crossing(law, rows, ca, cb, target):
    """``u`` in ``[0, 1]`` where ``r^2(u) = B (1 - u) / (g p(u))`` along the ray ``theta = (ca, cb)`` equals
    ``target`` (pairs x angles): Newton's method on ``log r^2`` in ``w = log(1 - u)`` (where ``log r^2 = w -
    log p + const`` is nearly linear), kept in a bracket (bisection when a step leaves it), until
    ``|log r^2 - log target| <= 1e-14`` or 30 steps (``r^2`` falls from the edge at ``u = 0`` to 0 at ``u = 1``);
    0 where ``target`` is at or beyond the edge (no crossing: a zero-width piece)."""
    _, g, _, b = law

    def log_radius2(u):  # log r^2 and its derivative in w = log(1 - u), where it is nearly linear
        entries = tuple(e[..., 0] for e in _float_entries(law, rows, u[..., None], 2)[0])
        p, p1, _ = _forms(entries, _det(entries), ca, cb)
        return np.log(b * (1 - u) / (g * p)), 1 + (1 - u) * p1 / p

    with np.errstate(divide="ignore", invalid="ignore"):
        goal = np.log(target)
        edge = log_radius2(np.zeros(target.shape))[0]
        crosses = goal < edge
        lo, hi = np.zeros(target.shape), np.ones(target.shape)
        u = np.where(crosses, np.clip(1 - np.exp(goal - edge), 0.0, 1 - 1e-12), 0.5)
        for _ in range(30):
            f, slope = log_radius2(u)
            f = f - goal
            lo, hi = np.where(f > 0, u, lo), np.where(f > 0, hi, u)
            step = 1 - (1 - u) * np.exp(-f / slope)  # Newton in w = log(1 - u)
            done = np.abs(f) <= 1e-14
            u = np.where(done, u, np.where((step >= lo) & (step <= hi), step, (lo + hi) / 2))
            if np.all(done[crosses]):
                break
    return np.where(crosses, u, 0.0)


def _kink_angles(b, kinks):
    """The angles in ``[0, 2 pi]`` where a kink line ``x_a = k`` or ``x_b = k`` meets the ellipse's edge
    ``x^T G_ab^-1 x = B`` or two kink lines cross inside it, with 0 and ``2 pi``, sorted."""
    inverse = np.linalg.inv(np.array([[1 - 1 / b, -1 / b], [-1 / b, 1 - 1 / b]]))
    angles = [0.0, 2 * np.pi]
    for k in kinks:
        # (k, y) on the edge: inverse[1,1] y^2 + 2 inverse[0,1] k y + inverse[0,0] k^2 - B = 0 (and its mirror)
        a2, a1, a0 = inverse[1, 1], 2 * inverse[0, 1] * k, inverse[0, 0] * k * k - b
        disc = a1 * a1 - 4 * a2 * a0
        if disc <= 0:
            continue
        for y in ((-a1 + np.sqrt(disc)) / (2 * a2), (-a1 - np.sqrt(disc)) / (2 * a2)):
            angles += [np.arctan2(y, k) % (2 * np.pi), np.arctan2(k, y) % (2 * np.pi)]
    for ka in kinks:
        for kb in kinks:
            point = np.array([ka, kb])
            if (ka or kb) and point @ inverse @ point < b:
                angles.append(np.arctan2(kb, ka) % (2 * np.pi))
    return np.unique(np.array(angles))
