r"""The sphere law of batch-normalized pre-activations, and its expectations.

This module owns every integral of the engine (docs/theory.md section 3).  For a
batch of size ``B`` write ``n = B - 1``.  At ``eps = 0`` the normalized
pre-activation is ``s = sqrt(B) u`` with ``u`` uniform on the unit sphere of
``1^perp``; every quantity bnsym computes reduces to

* one-coordinate expectations ``E[F(s_a)]``, where ``t = s_a / sqrt(n)`` has
  density proportional to ``(1 - t^2)^((n-3)/2)`` on ``[-1, 1]``, and
* two-coordinate expectations ``E[F(s_a) G(s_b)]``, ``<w_a, w_b> = rho = -1/n``.

Coordinates.  With ``t_a = sin(psi)`` the one-coordinate density becomes
``cos(psi)^(n-2)`` on ``[-pi/2, pi/2]``; given ``t_a``, the second coordinate
is ``t_b = rho sin(psi) + sqrt(1 - rho^2) cos(psi) sin(phi)`` with ``phi``
of density ``cos(phi)^(n-3)`` (the hyperspherical angles of ``u``).  Both
weights are analytic for every integer ``n``, which the Gegenbauer weight
``(1 - t^2)^((n-3)/2)`` is not at the end points when ``n`` is even; so
Gauss-Legendre panels in the angles converge geometrically for any ``B``,
also on pieces cut at kinks, where a Gauss-Jacobi rule in ``t`` would meet
the weight's branch point.

Methods, chosen per expectation:

* **Funk-Hecke** (docs/theory.md section 8), when ``F`` and ``G`` are analytic on
  the support: ``E[F G] = sum_k F_k G_k P_k(rho)`` with ``F_k = E[F p_k]``,
  ``p_k`` the orthonormal Gegenbauer polynomials (``lambda = (n-2)/2``) and
  ``P_k = p_k / p_k(1)``.  Only one-dimensional integrals are needed; the tail
  is bounded through Parseval, ``sum_{k>K} F_k^2 = E[F^2] - sum_{k<=K} F_k^2``.
  Cost ``O(N K)`` for ``N`` nodes and ``K`` terms.
* **Nested angles**, when ``F`` or ``G`` has kinks: Gauss-Legendre panels in
  ``psi`` cut at the kinks of ``F`` and at the ``psi`` where a kink line of
  ``G`` touches the circle (there the inner integral has a square-root
  singularity, removed by the map ``psi = psi* + w^2``), and panels in
  ``phi`` cut at the kinks of ``G``.  Pieces whose activation piece is not
  analytic at a kink (``x^(3/2)``) use tanh-sinh panels.  Cost ``O(N^2)``.
* ``B = 2``: ``s_a = +-1``, ``s_b = -s_a`` exactly.  ``B = inf``: ``s_a, s_b``
  independent standard Gaussians (truncated panels on the real line).

Large ``B``: the laws concentrate on ``|psi| ~ 1/sqrt(n)``; the panels are
truncated where the weight falls below ``10**-wp``, so the cost does not
grow with ``B``.

Every result is an :class:`~bnsym.estimate.Estimate`; its error is the
difference between two consecutive rule levels (plus the Funk-Hecke tail
bound), and the level is raised until it is below the tolerance asked for.
"""

from __future__ import annotations

import functools
import math
import operator
from dataclasses import dataclass, replace
from functools import cached_property
from typing import NamedTuple

import mpmath
import numpy as np

from bnsym.activations import Activation
from bnsym.errors import PrecisionError
from bnsym.estimate import Estimate, rounding_error
from bnsym.numerics.quadrature import (
    BLOCK,
    SIZES,
    LogEnd,
    breakpoint_panels,
    cut_key,
    float64_rule,
    merged_cuts,
    panel,
)

#: A complex branch point ``pi/2 + i g`` of the inner integrand is graded as the real point ``pi/2 + g / 4``
#: (:meth:`SphereLaw._branch_points`; measured at B = 5, ``x_+^(3/2)``: undivided, the nested rule left 1e-57 at
#: dps 60; halved, 1e-100 at dps 100).
BRANCH_GAP_DIVISOR = 4
#: Branch points closer than ``10^(-working_dps / BRANCH_FLOOR)`` to the inner range are not graded towards
#: (:meth:`SphereLaw._branch_points`): the outer nodes that see them lie within ``delta ~ gap^2`` of a tangency,
#: where an ungraded inner rule errs by about ``delta^(a+1)`` (``a >= 1/2``) and the outer weight is about
#: ``delta``, so that their terms err by less than ``10^-working_dps``.  (3 before 2026-12-08.  lambda_G of
#: relu_power(1.5), beta = 0.2, dps 30, with 3 and 5, same values and errors: B = 6 31.7 s and 26.4 s, B = 5 7.8 s
#: and 6.8 s, measured beside another job; with tanh-sinh at the tangencies of odd n, B = 6 77 s and 49 s.)
BRANCH_FLOOR = 5
#: At a tangency whose inner integral has ``delta^p log delta`` (a square-root kink at odd ``n``), the outer Gauss
#: panels' map has the order ``k`` that makes it ``v^(k (p+1) - 1) log v`` with ``k (p+1) >= LOG_MAP_DEGREE``
#: (:meth:`SphereLaw._tangency_flag`): Gauss then errs by about ``N^(-2 LOG_MAP_DEGREE)`` on that term.  Measured at
#: B = 6 (``x_+^(3/2)``, ``beta = 0.2``, wp 70): order 8 reached 5e-40, 5e-58 and 6e-73 with 96, 128 and 192 nodes
#: where tanh-sinh, the rule before, reached 3e-16, 5e-26 and 2e-36.
LOG_MAP_DEGREE = 24
#: Highest rule level for one-dimensional integrals, and for nested ones.
MAX_LEVEL_1D = len(SIZES) - 1
#: Points of the float64 Chebyshev probe that bounds a one-coordinate rule's start level from below
#: (:meth:`SphereLaw._resolved_level`), and the coefficient size (relative to the largest) it resolves.
PROBE_POINTS = 1024
PROBE_FLOOR = 1e-8  # (float64 noise of the probe's values is about 1e-16 times their log-magnitude: see _probe_values)
#: A probe has more points than PROBE_POINTS where needed (doubling, up to PROBE_MAX_POINTS) so that
#: neighbouring points are at most PROBE_SPACING times the activation's feature scale apart in its
#: argument ``gain s + shift`` (a bump of width 1/300 in ``s`` fell between the 1025 points of a panel 18
#: wide and was missed).  Past PROBE_MAX_POINTS the spacing grows with the gain (gain 1000 at B = inf:
#: 0.45); a hard limit there made polynomials refuse at gain 20000 (found by the review).
PROBE_SPACING = 0.125
PROBE_MAX_POINTS = 2**16
#: The start level has at least this fraction of the probe's coefficient count as nodes per panel:
#: enough to see every feature the probe resolves (the convergence loop then does the rest).
PROBE_NODES = 0.25
#: A plain Gauss panel of the one-coordinate rule whose probe needs more than SPLIT_ABOVE coefficients is
#: bisected, and its halves probed again, at most SPLIT_DEPTH times (:meth:`SphereLaw._splits`).  Two Gauss
#: blocks (:data:`~bnsym.numerics.quadrature.BLOCK` nodes each): the probe's points cluster at a panel's ends
#: as one Gauss rule's nodes do, but the composite rule's equal blocks resolve a feature at a panel's end
#: only once a block is about as narrow as the feature (softplus at gain 1000, B = inf, read as 256
#: coefficients: not with 4096 nodes at 256; split towards the corner now).  One block (64) was faster
#: still on steep activations but up to 1.4 times slower on ordinary finite-B, eps > 0 calls (tanh at B = 8,
#: eps = 0.5), whose panels it split (benchmarks/bench_split.py --also 64).
SPLIT_ABOVE = 2 * BLOCK
SPLIT_DEPTH = 16
#: At most this many split points per panel between kinks: the steep cases measured needed at most 6, and
#: float64 rounding of a saturated integrand (1 - tanh^2, noise of 1e-16 on values of 1e-12) reads as an
#: unresolved feature everywhere, so that without a cap the bisection went to full depth.
MAX_SPLITS = 24
MAX_LEVEL_2D = SIZES.index(256)
#: The truncation of the support for growing integrands (:meth:`SphereLaw._reach`) is found on this many
#: float64 points per side, up to REACH_SPAN times the Gaussian cut at ``B = inf``.
REACH_POINTS = 4096
REACH_SPAN = 6
#: ... beyond the points where ``|F|^p w`` exceeds ``10^-(wp + REACH_DIGITS)`` of its largest (the weight's own cut
#: keeps 5 digits more: with 5 here too, relu_power(2.5) at B = 32 widened its panels slightly and its
#: nested rule took 11.4 s instead of 1.2 s, found by the review).
REACH_DIGITS = 2


# --------------------------------------------------------------------------- integrands
class PieceEnd(NamedTuple):
    """The end of an activation piece at a kink: analytic there (``regular``), or analytic in the square root of
    the distance to it (``root``, as ``x^(3/2)``)."""

    regular: bool
    root: bool


@dataclass(frozen=True)
class Integrand:
    """``F(s) = scale * s**power * (phi^(d)(gain * s + shift) - center)**exponent``, ``d`` = 0 or 1.

    Piecewise analytic in ``s``, with breakpoints ``(kink - shift) / gain`` at
    the kinks of the activation.  ``gain`` must be nonzero.  ``center`` and ``exponent`` give the
    centred powers ``(f - E f)^i s^p`` whose expectations do not cancel where ``f`` is nearly
    constant (docs/theory.md section 3.2, "Saturated activations").
    """

    activation: Activation
    gain: mpmath.mpf
    shift: mpmath.mpf
    derivative: bool = False
    power: int = 0
    scale: mpmath.mpf = mpmath.mpf(1)
    center: mpmath.mpf = mpmath.mpf(0)  # subtracted from phi^(d) before the power, the s**power and the scale
    exponent: int = 1

    @property
    def base(self):
        """Key of the activation evaluation shared by integrands differing only in power/scale."""
        return (id(self.activation), self.derivative, self.gain, self.shift)

    def breakpoints(self):
        """``[(s_k, flag)]`` in increasing ``s``: where ``F`` stops being analytic.

        ``flag`` is ``True`` when both pieces are analytic at the kink, ``"sqrt"`` when each is
        analytic in the square root of the distance to it (``x^(3/2)``), else ``False``.
        """
        out = []
        for s_k, below, above in self._kink_pieces():
            if below.regular and above.regular:
                flag = True
            elif (below.regular or below.root) and (above.regular or above.root):
                flag = "sqrt"
            else:
                flag = False
            out.append((s_k, flag))
        return out

    def regular_sides(self):
        """``[(s_k, below, above)]`` at the kinks of :meth:`breakpoints`: whether the piece that ``F`` follows
        just below ``s_k`` (``s < s_k``), and the one just above, is analytic at ``s_k`` (the zero piece of
        ReLU is; ``x^(3/2)`` is not)."""
        return [(s_k, below.regular, above.regular) for s_k, below, above in self._kink_pieces()]

    def _kink_pieces(self):
        """``[(s_k, below, above)]`` in increasing ``s``: each kink with the ends of the pieces beside it that
        face it, as :class:`PieceEnd` (a negative ``gain`` swaps the activation's left and right)."""
        out = []
        pieces = self.activation.pieces
        for i, kink in enumerate(self.activation.numeric_kinks()):
            left = PieceEnd(pieces[i].regular_hi, pieces[i].root_hi)
            right = PieceEnd(pieces[i + 1].regular_lo, pieces[i + 1].root_lo)
            out.append(((kink - self.shift) / self.gain, *((left, right) if self.gain > 0 else (right, left))))
        out.sort(key=lambda item: item[0])
        return out

    def piece(self, s_mid):
        """The analytic continuation of ``phi^(d)`` valid around ``s_mid``."""
        index = self.activation.piece_index(self.gain * s_mid + self.shift)
        return self.activation.mp_piece(index, self.derivative)

    @cached_property
    def _finishing(self):
        """``(power, scale, center, exponent)`` of :meth:`finish`, each ``None`` where it changes nothing
        (compared once)."""
        return (self.power or None, None if self.scale == 1 else self.scale, self.center or None,
                None if self.exponent == 1 else self.exponent)

    def finish(self, s, base_value):
        """``scale * s**power * (base_value - center)**exponent``."""
        return _finished(s, base_value, *self._finishing)

    def evaluate(self, s):
        """``F(s)`` (picking the piece that contains ``s``)."""
        return self.finish(s, self.piece(s)(self.gain * s + self.shift))

    def evaluate_float(self, s):
        """``F`` at a float64 array ``s`` (the activation's NumPy form, :meth:`Activation.np`)."""
        value = self.activation.np(float(self.gain) * s + float(self.shift), derivative=self.derivative)
        power, scale, center, exponent = self._finishing
        return _finished(s, value, power, None if scale is None else float(scale),
                         None if center is None else float(center), exponent)

    def with_center(self, center):
        """The same integrand with ``phi^(d) - center`` in place of ``phi^(d) - self.center``."""
        return replace(self, center=center)


def _log_size(f, s, values=None):
    """``(log |F(s)|, sign F(s))`` on a float64 array ``s``, with mpmath (at :data:`LOG_SIZE_DPS` digits) where
    ``F`` is not finite in float64, each such point evaluated once: ``exp(3 s)`` past ``s = 236.6`` (B = 10^5)
    is finite in its logarithm, and an ``inf`` there made :meth:`SphereLaw._reach` keep the whole support,
    where no rule converged; NaN (``inf - inf`` of a centred integrand whose centre overflows too) takes its
    sign from mpmath as well (:meth:`SphereLaw._probe_values`).  ``values``: ``F``'s float64 values at ``s``,
    if already evaluated."""
    values = np.asarray(f.evaluate_float(s) if values is None else values, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_size, sign = np.log(np.abs(values)), np.sign(values)
    over = np.flatnonzero(~np.isfinite(values))
    if over.size:
        with mpmath.workdps(LOG_SIZE_DPS):
            exact = [f.evaluate(mpmath.mpf(float(v))) for v in s[over]]
            log_size[over] = [float(mpmath.log(abs(x))) for x in exact]
            sign[over] = [float(mpmath.sign(x)) for x in exact]
    return log_size, sign


#: Digits of the mpmath values of :func:`_log_size` (only their logarithm and sign are used, as floats).
LOG_SIZE_DPS = 20


def _finished(s, value, power, scale, center, exponent):
    """``scale * s**power * (value - center)**exponent``, each of ``power``, ``scale``, ``center``,
    ``exponent`` skipped when None (:attr:`Integrand._finishing`); arithmetic only, so mpf scalars or
    float64 arrays."""
    if center is not None:
        value = value - center
    if exponent is not None:
        value = value**exponent
    if power is not None:
        value = value * s**power
    if scale is not None:
        value = value * scale
    return value


def evaluator(funcs, s_mid):
    """``s -> {id(F): F(s)}`` for the integrands ``funcs`` on a region around ``s_mid`` that no kink of theirs
    enters: each is evaluated with its analytic piece at ``s_mid`` (no look-up per point), the activation
    once per distinct :attr:`Integrand.base` (integrands that differ only in power, scale or centre share
    it).  Cost per call: one activation piece per base and ``O(1)`` per integrand."""
    groups = {}
    for f in funcs:
        groups.setdefault(f.base, (f.gain, f.shift, f.piece(s_mid), []))[3].append(f)
    groups = list(groups.values())

    def values(s):
        out = {}
        for gain, shift, piece, members in groups:
            value = piece(gain * s + shift)
            for f in members:
                out[id(f)] = f.finish(s, value)
        return out

    return values


# --------------------------------------------------------------------------- the law
#: Level at which the last expectation of the same kind converged, keyed by
#: (batch size, working_dps, kind, activation label): later calls start one level
#: below it instead of climbing from the bottom (the error estimate is still
#: the difference of two consecutive levels).
_LEVEL_HINTS: dict = {}


def hinted_level(key, default):
    """One level below the one at which the last expectation stored under ``key`` converged, else ``default``."""
    return max(_LEVEL_HINTS[key] - 1, 0) if key in _LEVEL_HINTS else default


def _hint_key(law, kind, funcs):
    return (law.batch_size, law.working_dps, kind, tuple(sorted({f.activation.label for f in funcs})))


class SphereLaw:
    """Joint law of two coordinates of ``s = sqrt(B) u`` for one batch size.

    ``batch_size`` is an integer >= 2 or ``math.inf``; ``working_dps`` is the working
    precision in decimal digits (all arithmetic runs at it).
    """

    def __init__(self, batch_size, working_dps: int):
        self.batch_size = batch_size
        self.working_dps = working_dps
        self._rules = {}  # one-coordinate rules by (level, cuts)
        self._node_memo = {}  # activation-piece values at the nodes of a rule, by (base, rule)
        self._probes = {}  # Chebyshev coefficients needed per integrand and panels (_resolved_level)
        self._split_memo = {}  # extra panel ends per set of integrands (_splits)
        self._spectra = {}  # float64 Chebyshev probes per integrand and piece (_probe_spectrum)
        self._reaches = {}  # truncation points per integrand (_reach)
        self.infinite = batch_size == math.inf
        self.n = math.inf if self.infinite else batch_size - 1
        with mpmath.workdps(working_dps):
            if self.infinite:
                self.rho = mpmath.mpf(0)
            else:
                self.rho = -mpmath.mpf(1) / self.n
                self.c = mpmath.sqrt(1 - self.rho**2)
                self.root_n = mpmath.sqrt(self.n)

    # ---------------------------------------------------------------- weights
    @cached_property
    def _outer_norm(self):
        n = self.n
        return mpmath.sqrt(mpmath.pi) * mpmath.gamma(mpmath.mpf(n - 1) / 2) / mpmath.gamma(mpmath.mpf(n) / 2)

    @cached_property
    def _inner_norm(self):
        n = self.n
        return mpmath.sqrt(mpmath.pi) * mpmath.gamma(mpmath.mpf(n - 2) / 2) / mpmath.gamma(mpmath.mpf(n - 1) / 2)

    def _truncation(self, exponent):
        """Half-width of the angle interval where ``cos^exponent`` exceeds ``10^-(working_dps+5)``."""
        if exponent <= 0:
            return mpmath.pi / 2
        target = (self.working_dps + 5) * mpmath.log(10)
        value = mpmath.acos(mpmath.exp(-target / exponent))
        return min(value, mpmath.pi / 2)

    @cached_property
    def psi_max(self):
        return self._truncation(self.n - 2)

    @cached_property
    def phi_max(self):
        return self._truncation(self.n - 3)

    @cached_property
    def gauss_cut(self):
        """Half-width ``L`` of the truncated real line at ``B = inf`` (for integrands of moderate growth:
        :meth:`_reach`)."""
        return mpmath.sqrt(2 * (self.working_dps + 5) * mpmath.log(10)) + 1

    def _reach(self, funcs, inner=False):
        """Half-width of the truncated support of the rule's coordinate (``s`` at ``B = inf``, ``psi``, or
        with ``inner`` the inner angle ``phi``) for the integrands ``funcs``: at least :attr:`gauss_cut`,
        :attr:`psi_max` or :attr:`phi_max` (where the weight alone falls below ``10^-(wp+5)``), and
        beyond every point where ``|F|^p w`` (``p = 1, 2``, ``w`` the weight ``exp(-s^2/2)``,
        ``cos(psi)^(n-2)`` or ``cos(phi)^(n-3)``) is above ``10^-(wp+REACH_DIGITS)`` of its largest.  A fixed cut
        ignored the growth of ``F``: ``x^40 + x`` at ``B = inf`` gave lambda_G = 20.25397 for 20.25316.
        ``|F|`` is replaced by its running maximum outwards from 0 (the largest of ``|F|^p w`` is
        unchanged, since ``w`` falls outwards), and for ``phi`` it is taken at ``|s_b| = sqrt(n)
        min(1, |rho| + c |sin phi|)``, a bound over the outer angle.  Float64 on
        :data:`REACH_POINTS` points of ``[0, T]`` (``T = REACH_SPAN L``, or ``pi/2``) per side;
        :class:`PrecisionError` if an integrand has not decayed by ``T`` at ``B = inf``.  Cached per
        integrand."""
        default = self.gauss_cut if self.infinite else (self.phi_max if inner else self.psi_max)
        reach = float(default)
        for f in funcs:
            key = (f.base, f._finishing, inner)
            if key not in self._reaches:
                self._reaches[key] = self._decay_point(f, inner)
            reach = max(reach, self._reaches[key])
        if reach == float(default):
            return default
        return mpmath.pi / 2 if not self.infinite and reach >= math.pi / 2 else mpmath.mpf(reach)

    def _decay_point(self, f, inner):
        """:meth:`_reach` of one integrand, as a float (0 when ``F`` vanishes).  On the sphere the points are
        :data:`REACH_POINTS` on ``[0, pi/2)``, and where ``REACH_SPAN`` times the weight's own cut
        (:attr:`psi_max`, :attr:`phi_max`) is below ``pi/2`` (from B of about 5000) as many again on that
        window: one step of the grid on all of ``[0, pi/2]`` (``3.8e-4``) was ten to twenty times the weight's
        width at B = 10^11, and the rules' panels as wide.  The coarse points beyond the window still see
        mass far out (a first version searched the window alone and cut ``x + exp(-100 (x - 70)^2 + 3400)``
        at B = 10^4 at ``s = 11.6``: ``E[F] = 0 +- 0`` for ``3.6e33``, found by the review)."""
        if self.infinite:
            end = REACH_SPAN * float(self.gauss_cut)
            t = np.linspace(0, end, REACH_POINTS)
            s, log_w = t, -t * t / 2
        else:
            end = math.pi / 2
            t = np.linspace(0, end, REACH_POINTS)
            window = REACH_SPAN * float(self.phi_max if inner else self.psi_max)
            if window < end:
                t = np.union1d(np.linspace(0, window, REACH_POINTS), t)
            t = t[:-1]  # (pi/2 itself: cos = 0)
            sin_t, exponent = np.sin(t), (self.n - 3 if inner else self.n - 2)
            root_n = float(self.root_n)
            s = root_n * (np.minimum(1.0, abs(float(self.rho)) + float(self.c) * sin_t) if inner else sin_t)
            with np.errstate(divide="ignore"):
                log_w = exponent * np.log(np.cos(t))
        depth = (self.working_dps + REACH_DIGITS) * math.log(10)
        last = 0.0
        with np.errstate(all="ignore"):
            for sign in (1.0, -1.0):
                log_size = _log_size(f, sign * s)[0]
                log_size = np.maximum.accumulate(np.where(np.isnan(log_size), np.inf, log_size))
                for power in (1, 2):
                    g = power * log_size + log_w
                    peak = np.max(g)
                    if peak == -np.inf:
                        continue
                    above = np.flatnonzero(g >= peak - depth) if np.isfinite(peak) else np.flatnonzero(g == np.inf)
                    index = above[-1]
                    if index == t.size - 1 and not self.infinite:
                        return math.pi / 2  # not decayed before the edge: the whole support
                    if index == t.size - 1:
                        raise PrecisionError(f"the integrand has not decayed against the Gaussian weight by "
                                             f"|s| = {end:.3g} (it grows too fast for its expectation at B=inf)")
                    last = max(last, t[min(index + 1, t.size - 1)])
        return last

    # ------------------------------------------------------------- 1D panels
    def _s_panels_1d(self, funcs, level, split=True):
        """``([(s_j, weight_j, panel_j)], panels)`` for the one-coordinate law (cached per level and cuts):
        panels between the integrands' kinks, and (``split``) between the points of :meth:`_splits`."""
        extra = [self._splits(funcs)] if split else []
        cuts = merged_cuts([*(f.breakpoints() for f in funcs), *extra], self.working_dps)
        reach = self._reach(funcs)
        key = (level, mpmath.nstr(reach, self.working_dps - 3),
               tuple((mpmath.nstr(s, self.working_dps - 3), regular) for s, regular in cuts))
        if key not in self._rules:
            self._rules[key] = self._one_coordinate_rule(cuts, level, reach)
        return self._rules[key]

    def _splits(self, funcs):
        """Extra panel ends ``[(s, True)]`` where the integrands are analytic but steep: each plain Gauss
        panel between kinks whose float64 probe (:meth:`_probe`, the largest over ``funcs``) needs more
        than :data:`SPLIT_ABOVE` Chebyshev coefficients is bisected in its own coordinate, and each half
        again, to depth :data:`SPLIT_DEPTH` and at most :data:`MAX_SPLITS` points per panel.  The pieces
        are graded towards a narrow feature
        (tanh at gain 100 varies over 0.01 of a support of width 11 at B = 32: a single Gauss panel
        needed more than 4096 nodes for 14 digits).  Cached per set of integrands; cost
        ``PROBE_POINTS`` float64 evaluations per integrand and probed piece."""
        key = tuple(sorted({(f.base, f._finishing) for f in funcs}, key=repr))
        if key not in self._split_memo:
            cuts = merged_cuts((f.breakpoints() for f in funcs), self.working_dps)
            points = []
            for lo, hi, kind, smooth in self._panel_edges(cuts, self._reach(funcs)):
                if kind == "gauss" and not any(smooth):
                    lo, hi = float(lo), float(hi)
                    scales = [self._finite_scale(f, lo, hi) for f in funcs]
                    found = []
                    self._bisect(funcs, scales, lo, hi, SPLIT_DEPTH, found)
                    points += found
            to_s = (lambda t: mpmath.mpf(t)) if self.infinite else (lambda t: self.root_n * mpmath.sin(t))
            self._split_memo[key] = [(to_s(t), True) for t in sorted(points)]
        return self._split_memo[key]

    def _bisect(self, funcs, scales, lo, hi, depth, points):
        """Split points of ``[lo, hi]`` into ``points``: coefficients count from :data:`PROBE_FLOOR` of each
        integrand's largest on the whole panel (``scales``), not of the piece's own, so that float64
        rounding where an integrand is tiny beside its panel's largest is not counted.  Rounding over a
        whole saturated panel (tanh' far in its tail: 1e-16 on values of 1e-12) still reads as a feature;
        :data:`MAX_SPLITS` bounds its cost (without a bound: 13100 pieces for tanh at B = inf, beta = 12)."""
        if depth == 0 or len(points) >= MAX_SPLITS:
            return
        if max(self._probe(f, lo, hi, scale) for f, scale in zip(funcs, scales)) <= SPLIT_ABOVE:
            return
        middle = (lo + hi) / 2
        points.append(middle)
        self._bisect(funcs, scales, lo, middle, depth - 1, points)
        self._bisect(funcs, scales, middle, hi, depth - 1, points)

    def _panel_edges(self, cuts, reach):
        """Panels of the one-coordinate rule on ``[-reach, reach]`` between ``cuts`` (points in ``s``), in the
        rule's coordinate: ``s`` at ``B = inf``, the angle ``psi`` (``s = sqrt(n) sin psi``) otherwise."""
        if self.infinite:
            return breakpoint_panels(-reach, reach, cuts, self.working_dps)
        psi_cuts = [(mpmath.asin(s / self.root_n), reg) for s, reg in cuts if abs(s) < self.root_n]
        return breakpoint_panels(-reach, reach, psi_cuts, self.working_dps)

    def _resolved_level(self, funcs, split=True):
        """The least rule level at which every plain Gauss panel of the one-coordinate rule has at least
        :data:`PROBE_NODES` times as many nodes as the float64 Chebyshev interpolant of each integrand
        times the law's density needs on it (coefficients down to :data:`PROBE_FLOOR` of the largest on any
        of the integrand's panels, from :data:`PROBE_POINTS` points).  Below it a feature narrower than the node spacing (tanh at gain
        100, 0.01 wide) can fall between the nodes of two levels, which then agree on a wrong value: a
        start level is never below this one (docs/theory.md section 3.2).  Panels with a smoothing map
        or tanh-sinh rule (beside kinks) are not probed.  Cost: ``PROBE_POINTS`` float64 evaluations
        and one FFT per integrand and panel (cached per integrand)."""
        _, edges = self._s_panels_1d(funcs, 0, split)
        probed = [(float(lo), float(hi)) for lo, hi, kind, smooth in edges if kind == "gauss" and not any(smooth)]
        need = 0
        for f in funcs:
            key = (f.base, f._finishing, tuple((float(lo), float(hi)) for lo, hi, _, _ in edges))
            if key not in self._probes:
                # coefficients count from PROBE_FLOOR of the integrand's largest over all its panels (see _bisect)
                scale = max([self._finite_scale(f, lo, hi) for lo, hi in probed] or [0])
                self._probes[key] = max([self._probe(f, lo, hi, scale) for lo, hi in probed] or [0])
            need = max(need, self._probes[key])
        return _least_level(PROBE_NODES * need)

    def _nested_floor(self, funcs):
        """:meth:`_resolved_level` of the nested rule's integrands (their one-coordinate resolution bounds
        each angle's rule from below); :class:`PrecisionError` at once if that is past the nested rule's
        largest level (measured: E[tanh'(30 s_a) tanh'(30 s_b)] at B = 65 came out 0 +- 0)."""
        floor = self._resolved_level(_distinct(funcs), split=False)  # the nested rules' panels are not split
        if floor > MAX_LEVEL_2D:
            raise PrecisionError(f"two-coordinate expectation: the integrands need more than {SIZES[MAX_LEVEL_2D]} "
                                 f"nodes per panel to be resolved (B={self.batch_size})")
        return floor

    def _probe_spectrum(self, f, lo, hi):
        """``(a, unit, largest)``: the Chebyshev coefficients of ``F`` times the law's density on ``[lo, hi]``
        (the panel's coordinate) are ``unit * a_k`` in magnitude, from ``m + 1`` Chebyshev-Lobatto points in
        float64 (``m`` from :meth:`_probe_points`); ``largest`` is the largest of them.  ``unit`` is 1 unless
        the product leaves float64's range on the panel (:meth:`_probe_values`); then ``unit`` and
        ``largest`` are mpf.  ``(None, 1, 0)`` if all the values are zero, ``(None, 1, inf)`` if one is not finite."""
        key = (f.base, f._finishing, lo, hi)
        if key not in self._spectra:
            self._spectra[key] = self._chebyshev_probe(f, lo, hi)
        return self._spectra[key]

    def _probe_points(self, f, lo, hi):
        """Points ``m`` of the probe of ``f`` on ``[lo, hi]``: the least ``PROBE_POINTS * 2^k`` whose
        Chebyshev-Lobatto spacing, at most ``pi (hi - lo) / (2 m)`` in the panel's coordinate, is at most
        :data:`PROBE_SPACING` times the activation's :attr:`~bnsym.activations.Activation.feature_scale`
        in its argument (``|ds/dpsi| <= sqrt(n)`` on the sphere), and at most :data:`PROBE_MAX_POINTS`."""
        stretch = abs(float(f.gain)) * (hi - lo) * (1.0 if self.infinite else float(self.root_n))
        spacing = PROBE_SPACING * f.activation.feature_scale
        m = PROBE_POINTS
        while math.pi * stretch / (2 * m) > spacing and m < PROBE_MAX_POINTS:
            m *= 2
        return m

    def _chebyshev_probe(self, f, lo, hi):
        """:meth:`_probe_spectrum`, uncached."""
        m = self._probe_points(f, lo, hi)
        x = np.cos(np.pi * np.arange(m + 1) / m)
        # the ends pulled in by 1e-9 of the width: a panel that ends on a kink sees its own piece there
        # (relu' sampled exactly at 0 gave one nonzero value, a flat spectrum and 768-node rules)
        t = (lo + hi) / 2 + (hi - lo) / 2 * (1 - 1e-9) * x
        values, unit = self._probe_values(f, t)
        if not np.all(np.isfinite(values)):  # NaN even in mpmath (_probe_values): unresolved
            return None, 1.0, math.inf
        if not np.any(values):
            return None, 1.0, 0.0
        a = np.abs(np.fft.rfft(np.concatenate([values, values[-2:0:-1]])).real)[: m + 1] / m
        return a, unit, unit * float(a.max())

    def _probe_values(self, f, t):
        """``(v, unit)`` with ``unit * v`` the values of ``F`` times the law's density at the points ``t`` of the
        panel's coordinate, ``v`` float64 (NaN only where ``F`` is NaN in mpmath too).  Where the product leaves float64's
        range (``exp(10 s)^4 exp(-s^2/2)`` peaks at ``e^800``, near ``s = 40``) it is formed from logarithms,
        ``log |F|`` (:func:`_log_size`) plus the log-density, and ``unit`` is a power of 2 (an mpf) near the
        largest magnitude; else ``unit = 1``.  (A finite product is taken as it is, underflow included: a
        first version rebuilt all-tiny panels from logarithms too, and sigmoid' at ``beta = -660``, whose NumPy
        form is 0 on ``[-709, -355]`` beside correct values below, cost five times the time, found by the
        review.)  The overflowing pieces otherwise read as unresolved features:
        the bisection piled 20 points near ``s = 35`` and the rule refused (``spectrum('exp(x)', inf,
        gamma=10)``).  On the sphere the log-density is ``(n - 2) log1p(-2 sin^2(t/2))``: ``cos(t)^(n-2)``
        in float64 carries a relative error of about ``n 1e-16`` (``1e-4`` at ``B = 10^12``, read as a feature
        everywhere: tanh raised PrecisionError there)."""
        with np.errstate(all="ignore"):
            if self.infinite:
                s, log_w = t, -t * t / 2
            else:
                s, log_w = float(self.root_n) * np.sin(t), (self.n - 2) * np.log1p(-2 * np.sin(t / 2) ** 2)
            base = np.asarray(f.evaluate_float(s), dtype=float)
            values = base * np.exp(log_w)
            if np.all(np.isfinite(values)):  # (values that underflow to 0 are negligible beside the panel's scale)
                return values, 1.0
            log_f, sign = _log_size(f, s, base)
            # a subnormal float64 F is not trusted (sigmoid' is 0 on [-709, -355] and 1.6e-309 repaired below):
            # it counts as 0, as it would in the product
            log_f[np.isfinite(base) & (np.abs(base) < np.finfo(float).tiny)] = -np.inf
            log_v = log_f + log_w
            top = np.nanmax(log_v)
            if not np.isfinite(top):  # every value 0 (or NaN): nothing to scale
                return values, 1.0
            shift = int(np.floor(top / math.log(2)))
            return sign * np.exp(log_v - shift * math.log(2)), mpmath.ldexp(1, shift)

    def _finite_scale(self, f, lo, hi):
        """The largest probe coefficient of ``f`` on ``[lo, hi]`` (:meth:`_probe_spectrum`), or 0 where its
        values are not finite (each piece then counts from its own largest)."""
        largest = self._probe_spectrum(f, lo, hi)[2]
        return largest if mpmath.isfinite(largest) else 0.0

    def _probe(self, f, lo, hi, scale=0.0):
        """Chebyshev coefficients needed on the panel ``[lo, hi]``: the index of the last one above
        :data:`PROBE_FLOOR` times ``scale`` or the panel's own largest, whichever is larger (see
        :meth:`_resolved_level`); :data:`PROBE_MAX_POINTS` + 1 (more than any rule has nodes) where ``F``'s
        values are not finite, so that the panel is split or the rule refuses."""
        a, unit, largest = self._probe_spectrum(f, float(lo), float(hi))
        if a is None:
            return 0 if largest == 0 else PROBE_MAX_POINTS + 1
        floor = float(PROBE_FLOOR * max(scale, largest) / unit)
        above = np.flatnonzero(a > floor)
        return int(above[-1]) + 1 if above.size else 0

    def _one_coordinate_rule(self, cuts, level, reach):
        edges = self._panel_edges(cuts, reach)
        if self.infinite:
            out = []
            norm = 1 / mpmath.sqrt(2 * mpmath.pi)
            for index, (lo, hi, kind, smooth) in enumerate(edges):
                nodes, weights = panel(lo, hi, level, self.working_dps, kind=kind, smooth_lo=smooth[0], smooth_hi=smooth[1])
                for s, w in zip(nodes, weights):
                    out.append((s, w * norm * mpmath.exp(-s * s / 2), index))
            return out, edges
        root_n = self.root_n
        out = []
        norm = 1 / self._outer_norm
        for index, (lo, hi, kind, smooth) in enumerate(edges):
            nodes, weights = panel(lo, hi, level, self.working_dps, kind=kind, smooth_lo=smooth[0], smooth_hi=smooth[1])
            for psi, w in zip(nodes, weights):
                out.append((root_n * mpmath.sin(psi), w * norm * mpmath.cos(psi) ** (self.n - 2), index))
        return out, edges

    def _panel_pieces(self, funcs, edges):
        """For each panel, the analytic piece of each integrand on it."""
        result = []
        for lo, hi, _, _ in edges:
            mid = (lo + hi) / 2
            s_mid = mid if self.infinite else self.root_n * mpmath.sin(mid)
            result.append([f.piece(s_mid) for f in funcs])
        return result

    def _node_values(self, f, rule):
        """``F(s_j)`` at every node of a one-coordinate rule from :meth:`_s_panels_1d`.

        The activation-piece values are memoised per (activation, derivative, gain, shift) and
        rule, so integrands differing only in power, scale or centre, and later calls on the
        same rule, share them.
        """
        nodes, edges = rule
        key = (f.base, id(nodes))
        memo = self._node_memo.get(key)
        if memo is None or memo[0] is not f.activation:  # the stored activation guards the id
            pieces = [row[0] for row in self._panel_pieces([f], edges)]
            memo = (f.activation, [pieces[j](f.gain * s + f.shift) for s, _, j in nodes])
            self._node_memo[key] = memo
        return [f.finish(s, v) for (s, _, _), v in zip(nodes, memo[1])]

    def _values_1d(self, funcs, level):
        """``[(E[F], E[F^2])]`` for each integrand at one rule level."""
        rule = self._s_panels_1d(funcs, level)
        weights = [w for _, w, _ in rule[0]]
        sums = []
        for f in funcs:
            values = self._node_values(f, rule)
            weighted = [w * v for w, v in zip(weights, values)]
            sums.append([mpmath.fsum(weighted), mpmath.fdot(weighted, values)])
        return sums

    # ------------------------------------------------------------ public API
    def _floored(self, value, error) -> Estimate:
        """``Estimate(value, error)`` with the error at least the rounding at the working precision
        (two rule levels that agree exactly still carry it: an error of exactly 0 would be a claim)."""
        return Estimate(value, max(error, rounding_error(value, self.working_dps)))

    def expect(self, funcs, rtol, start_level=None):
        """``[E[F(s_a)]]`` for each integrand, each as an Estimate.

        The error of each is at most ``rtol * sqrt(E[F^2])`` (checked by
        comparing two rule levels).  Also returns nothing else; see
        :meth:`expect_with_norms` for the second moments.
        """
        return [first for first, _ in self.expect_with_norms(funcs, rtol, start_level)]

    def expect_with_norms(self, funcs, rtol, start_level=None):
        """``[(E[F], E[F^2])]`` as Estimates, sharing one set of evaluations."""
        funcs = list(funcs)
        with mpmath.workdps(self.working_dps):
            if self.batch_size == 2:
                out = []
                for f in funcs:
                    a, b = f.evaluate(mpmath.mpf(1)), f.evaluate(mpmath.mpf(-1))
                    out.append((Estimate((a + b) / 2), Estimate((a * a + b * b) / 2)))
                return out
            key = _hint_key(self, "1d", funcs)
            level = max(self._start_level(start_level, two_d=False, key=key), self._resolved_level(funcs))
            def judge(current, previous):
                errors = [(abs(c[0] - p[0]), abs(c[1] - p[1])) for c, p in zip(current, previous)]
                if all(e1 <= rtol * mpmath.sqrt(abs(c[1])) and e2 <= rtol * abs(c[1]) for (e1, e2), c in zip(errors, current)):
                    return [(self._floored(c[0], e1), self._floored(c[1], e2)) for c, (e1, e2) in zip(current, errors)]
                return None

            return converge(
                lambda n: self._values_1d(funcs, n), judge, key, level, MAX_LEVEL_1D,
                f"one-coordinate expectation did not converge to {mpmath.nstr(rtol, 3)} "
                f"with {SIZES[MAX_LEVEL_1D]} nodes per panel (B={self.batch_size})",
            )

    def expect_pairs(self, pairs, rtol, start_level=None):
        """``[E[F(s_a) G(s_b)]]`` for each ``(F, G)`` in ``pairs``, as Estimates.

        Each error is at most ``rtol * sqrt(E[F^2] E[G^2])``.
        """
        pairs = [tuple(p) for p in pairs]
        with mpmath.workdps(self.working_dps):
            if self.batch_size == 2:
                out = []
                for f, g in pairs:
                    one, minus = mpmath.mpf(1), mpmath.mpf(-1)
                    out.append(Estimate((f.evaluate(one) * g.evaluate(minus) + f.evaluate(minus) * g.evaluate(one)) / 2))
                return out
            if self.infinite:
                distinct = _distinct([f for pair in pairs for f in pair])
                norms = dict(zip(map(id, distinct), self.expect_with_norms(distinct, rtol / 2)))
                return [norms[id(f)][0] * norms[id(g)][0] for f, g in pairs]
            results = [None] * len(pairs)
            smooth, kinked = [], []
            for index, (f, g) in enumerate(pairs):
                f_cuts, g_cuts = self._inner_cuts(f), self._inner_cuts(g)
                if not f_cuts and not g_cuts:
                    smooth.append(index)
                elif not f_cuts:  # exchangeable: put the kinked function outside
                    kinked.append((index, g, f))
                else:
                    kinked.append((index, f, g))
            if smooth:
                values = self._funk_hecke([pairs[i] for i in smooth], rtol, start_level)
                for i, v in zip(smooth, values):
                    results[i] = v
            if kinked:
                distinct = _distinct([f for _, pair_f, pair_g in kinked for f in (pair_f, pair_g)])
                norms = dict(zip(map(id, distinct), self.expect_with_norms(distinct, rtol)))
                scales = [mpmath.sqrt(norms[id(f)][1].value * norms[id(g)][1].value) for _, f, g in kinked]
                values = self._nested([((f,), (g,)) for _, f, g in kinked], scales, rtol, start_level)
                for (i, _, _), v in zip(kinked, values):
                    results[i] = v
            return results

    # --------------------------------------------------------------- helpers
    def _start_level(self, start_level, two_d, key=None):
        if start_level is not None:
            return start_level
        if key is not None and key in _LEVEL_HINTS:
            return hinted_level(key, None)
        return _least_level(0.45 * self.working_dps if two_d else 0.8 * self.working_dps)

    def _inner_cuts(self, f, reach=None):
        """Kinks of ``f`` inside the support that matters at this precision (``[-reach, reach]`` in the
        rule's coordinate; :meth:`_reach` of ``f`` by default)."""
        cuts = f.breakpoints()
        reach = self._reach([f]) if reach is None else reach
        if self.infinite:
            return [c for c in cuts if abs(c[0]) < reach]
        limit = self.root_n * mpmath.sin(reach) if reach < mpmath.pi / 2 else self.root_n
        return [c for c in cuts if abs(c[0]) < limit]

    # ------------------------------------------------------------ Funk-Hecke
    def _funk_hecke(self, pairs, rtol, start_level):
        """The Funk-Hecke series of each pair, first on one panel between kinks, then (if that fails and
        :meth:`_splits` splits the panels) on the split panels.  One panel is the fast rule: a composite rule
        needs about K/2 nodes on every panel to integrate the degree-K Gegenbauer polynomials, one panel
        K/2 in all.  But a feature too narrow for one panel of 4096 nodes needs the split (measured: tanh at
        gain 100, B = 8, 15 digits: PrecisionError in 24 s on one panel, 73 s on split panels)."""
        funcs = _distinct([f for pair in pairs for f in pair])
        try:
            return self._funk_hecke_rule(pairs, funcs, rtol, start_level, split=False)
        except PrecisionError:
            if not self._splits(funcs):
                raise
        return self._funk_hecke_rule(pairs, funcs, rtol, start_level, split=True)

    def _funk_hecke_rule(self, pairs, funcs, rtol, start_level, split):
        key = _hint_key(self, "funk-hecke-split" if split else "funk-hecke", funcs)
        level = max(self._start_level(start_level, two_d=False, key=key), self._resolved_level(funcs, split))
        def judge(current, previous):
            out = [self._floored(value, abs(value - old) + tail) for (value, tail, _), (old, _, _) in zip(current, previous)]
            ok = all(e.error <= rtol * scale for e, (_, _, scale) in zip(out, current))
            return out if ok else None

        return converge(
            lambda n: self._funk_hecke_level(pairs, funcs, rtol, n, split), judge, key, level, MAX_LEVEL_1D,
            f"Funk-Hecke series did not converge to {mpmath.nstr(rtol, 3)} (B={self.batch_size})",
        )

    def _funk_hecke_level(self, pairs, funcs, rtol, level, split):
        """``[(value, tail_bound, scale)]`` of the truncated Funk-Hecke series at one level.

        ``scale = sqrt(E[F^2] E[G^2])`` bounds ``|E[F G]|``; the series stops
        once the Parseval tail bound of every pair is below ``rtol * scale / 100``.
        """
        rule = self._s_panels_1d(funcs, level, split)
        nodes = rule[0]
        root_n = self.root_n
        ts = [s / root_n for s, _, _ in nodes]
        weighted, second = {}, {}
        for f in funcs:
            values = self._node_values(f, rule)
            weighted[id(f)] = [w * v for (_, w, _), v in zip(nodes, values)]
            second[id(f)] = mpmath.fdot(weighted[id(f)], values)
        n = mpmath.mpf(self.n)
        lam = (n - 2) / 2

        def a(k):  # orthonormal Gegenbauer recurrence  t p_k = a_{k+1} p_{k+1} + a_k p_{k-1}
            if k == 0:
                return mpmath.mpf(0)
            if k == 1:
                return mpmath.sqrt(1 / n)
            return mpmath.sqrt(k * (k + 2 * lam - 1) / (4 * (k + lam) * (k + lam - 1)))

        k_max = (len(nodes) - 1) // 2
        look = 10  # |P_j(rho)| is bounded over the next `look` degrees
        a_list = [a(k) for k in range(k_max + look + 2)]
        big_p = []  # P_k(rho) = p_k(rho) / p_k(1)
        pr_prev, pr_curr, p1_prev, p1_curr = mpmath.mpf(0), mpmath.mpf(1), mpmath.mpf(0), mpmath.mpf(1)
        for k in range(k_max + look + 1):
            big_p.append(pr_curr / p1_curr)
            pr_prev, pr_curr = pr_curr, (self.rho * pr_curr - a_list[k] * pr_prev) / a_list[k + 1]
            p1_prev, p1_curr = p1_curr, (p1_curr - a_list[k] * p1_prev) / a_list[k + 1]
        state = [
            {"total": mpmath.mpf(0), "rf": second[id(f)], "rg": second[id(g)], "tail": mpmath.inf,
             "scale": mpmath.sqrt(abs(second[id(f)] * second[id(g)]))}
            for f, g in pairs
        ]
        # The coefficients F_k = sum_j w_j F(s_j) p_k(t_j) in fixed point: integers scaled by 2^bits,
        # exact products and sums, one rounding per recurrence step (the orthonormal recurrence is
        # stable for |t| < 1); 40 guard bits over the working precision absorb the rounding of the
        # K steps and of the sums over the nodes.  Python's integer dot products are some twenty
        # times faster than mpmath's fdot at these sizes.
        bits = mpmath.mp.prec + 40
        fixed_t = [_fixed(t, bits) for t in ts]
        fixed_a = [_fixed(x, bits) for x in a_list]
        # each function's weighted values are scaled by its own power of two (its largest one
        # becomes about 2^bits), so that tiny integrands keep their relative precision
        shift = {id(f): bits - _exponent(weighted[id(f)]) for f in funcs}
        fixed_w = {id(f): [_fixed(x, shift[id(f)]) for x in weighted[id(f)]] for f in funcs}
        one = 1 << bits
        p_prev, p_curr = [0] * len(ts), [one] * len(ts)
        for k in range(k_max + 1):
            coeff = {id(f): mpmath.ldexp(sum(map(operator.mul, fixed_w[id(f)], p_curr)), -bits - shift[id(f)]) for f in funcs}
            ahead = max(abs(p) for p in big_p[k + 1 : k + 1 + look])
            done = True
            for st, (f, g) in zip(state, pairs):
                cf, cg = coeff[id(f)], coeff[id(g)]
                st["total"] += cf * cg * big_p[k]
                st["rf"] -= cf * cf
                st["rg"] -= cg * cg
                # Parseval: sum_{j>k} F_j^2 = E[F^2] - sum_{j<=k} F_j^2
                st["tail"] = mpmath.sqrt(max(st["rf"], 0) * max(st["rg"], 0)) * ahead
                done = done and st["tail"] <= rtol * st["scale"] / 100
            if done:
                break
            a0, a1 = fixed_a[k], fixed_a[k + 1]
            p_prev, p_curr = p_curr, [(t * pc - a0 * pp) // a1 for t, pc, pp in zip(fixed_t, p_curr, p_prev)]
        return [(st["total"], st["tail"], st["scale"]) for st in state]

    def expect_weighted(self, pairs, density, rtol, size, start_level=None):
        """``[E[F(s_a) G(s_b) w(s_a, s_b)]]`` under the sphere law, for a density ratio ``w = density``.

        ``F`` and ``G`` are tuples of integrands, each standing for their product (``()`` is 1), so
        ``((f, f), ())`` gives the second moment of ``f`` under the weighted law.  Every pair takes the
        nested-angle rule (the weight couples the coordinates); each error is at most ``rtol * size``.
        ``size=None``: relative to the largest of the values.  ``density(s_a, s_b)`` should be analytic on the
        ellipse for geometric convergence (:class:`~bnsym.numerics.angular_gaussian.PairDensity` is at
        ``eps = 0``; at ``eps > 0`` it is smooth but flat at the edge, and the rule converges more slowly).
        Finite ``B >= 4`` only.
        """
        if self.infinite or self.batch_size < 4:
            raise ValueError("expect_weighted needs a finite batch size >= 4")
        pairs = [(tuple(f), tuple(g)) for f, g in pairs]
        with mpmath.workdps(self.working_dps):
            return self._nested(pairs, None if size is None else [size] * len(pairs), rtol, start_level, density)

    # --------------------------------------------------------- nested angles
    def _nested(self, pairs, scales, rtol, start_level, density=None):
        """The nested-angle rule for pairs ``(F, G)`` of factor tuples, each error at most ``rtol`` times its scale
        (``scales=None``: the largest of the values).  Without a density, at ``B >= 4`` and ``rtol >=
        FLOAT_NESTED_RTOL``, in float64 (:meth:`_nested_float`), falling back to mpmath if that does not converge."""
        if density is None and scales is not None and self.n >= 3 and rtol >= FLOAT_NESTED_RTOL:
            try:
                return self._nested_float(pairs, scales, rtol, start_level)
            except PrecisionError:
                pass
        funcs = [f for pair in pairs for factors in pair for f in factors]
        key = _hint_key(self, "nested" if density is None else "weighted", funcs)
        level = max(self._start_level(start_level, two_d=True, key=key), self._nested_floor(funcs))
        layout = self._nested_layout(pairs)  # the panels and cuts do not depend on the level

        def judge(current, previous):
            out = [self._floored(value, abs(value - old)) for value, old in zip(current, previous)]
            sizes = [max(abs(v) for v in current)] * len(current) if scales is None else scales
            return out if all(e.error <= rtol * s for e, s in zip(out, sizes)) else None

        return converge(
            lambda n: self._nested_level(pairs, layout, n, density), judge, key, level, MAX_LEVEL_2D,
            f"two-coordinate expectation did not converge to {mpmath.nstr(rtol, 3)} "
            f"with {SIZES[MAX_LEVEL_2D]}^2 nodes per panel (B={self.batch_size})",
        )

    def _nested_layout(self, pairs):
        """``(outer_funcs, inner_funcs, inner_products, g_cuts, phi_reach, edges)`` of the nested rule: the
        distinct integrands, the kinks of the inner ones, the half-width of the inner angle's support
        (:meth:`_reach`), and the outer panels in ``psi`` (on the reach of all the integrands, cut at the kinks
        of the outer ones and where a kink line of an inner one is tangent to the circle of ``phi``)."""
        root_n, rho, c = self.root_n, self.rho, self.c
        outer_funcs = _distinct([f for factors, _ in pairs for f in factors])
        inner_funcs = _distinct([g for _, factors in pairs for g in factors])
        inner_products = _distinct([factors for _, factors in pairs], key=_product_key)
        f_cuts = merged_cuts((self._inner_cuts(f) for f in outer_funcs), self.working_dps)
        g_cuts = self._sided_cuts(inner_funcs)
        # outer breakpoints in psi: kinks of F, and tangencies of the kink lines of G
        psi_cuts = [(mpmath.asin(s / root_n), reg) for s, reg in f_cuts if abs(s) < root_n]
        tangent = []
        for s, reg, below, above in g_cuts:
            tau = s / root_n
            if abs(tau) >= 1:
                continue
            for sign in (1, -1):
                t_star = rho * tau + sign * c * mpmath.sqrt(1 - tau * tau)
                if abs(t_star) < 1:
                    # the circle lies below the kink line beyond this tangency when it touches the line at its
                    # top (sin phi = xi = +1), above it when at its bottom
                    top = tau - rho * t_star > 0
                    tangent.append((mpmath.asin(t_star), self._tangency_flag(reg, below if top else above)))
        psi_reach = self._reach(outer_funcs + inner_funcs)
        edges = breakpoint_panels(-psi_reach, psi_reach, psi_cuts + tangent, self.working_dps)
        return outer_funcs, inner_funcs, inner_products, g_cuts, self._reach(inner_funcs, inner=True), edges

    def _tangency_flag(self, reg, covering_regular):
        """The flag of the outer breakpoint where an inner kink line of flag ``reg`` is tangent to the circle;
        ``covering_regular``: whether the piece that covers the whole circle on the side where the line misses
        it is analytic at the kink.

        Near the tangency, at distance ``delta`` in ``psi``, the inner integral is analytic on the side where
        the line misses the circle when the covering piece is analytic at the kink, and analytic plus
        ``delta^(k/2 + (n-2)/2)`` (``k = 0, 1, 2, ...``) where the line cuts it, for any kink whose pieces are
        analytic in the square root of the distance to it (docs/theory.md section 3.2): ``"sqrt"``, the
        square-root map.  When the covering piece is not analytic (``x^(3/2)`` covering the circle), its branch
        point beside the circle adds ``delta^p`` on both sides, ``p = a + (n - 2)/2`` for the piece's power
        ``a``: a half-integer for even ``n`` (``"sqrt"``), an integer with a logarithm for odd ``n`` (a
        :class:`~bnsym.numerics.quadrature.LogEnd` whose map makes ``delta^p log delta`` at least
        ``v^LOG_MAP_DEGREE log v`` for the least ``p``, ``(n - 1)/2``).  Any other kink: ``False`` (tanh-sinh).
        At ``n = 2`` the inner law sits on ``phi = +-pi/2`` and a tangency is a plain kink."""
        if self.n == 2:
            return reg
        if reg is True or (reg == "sqrt" and (covering_regular or self.n % 2 == 0)):
            return "sqrt"
        if reg == "sqrt":  # odd n: delta^p log delta with p >= (n - 1)/2 (the piece's power a >= 1/2)
            return LogEnd(max(2, math.ceil(LOG_MAP_DEGREE / ((self.n - 1) / 2 + 1))))
        return False

    def _branch_points(self, sines):
        """Singular points of the inner integrand outside ``[-pi/2, pi/2]``, for the grading of its panels
        (``sines``: :meth:`_kink_sines` at this outer node).

        On the circle ``s_b = sqrt(n) (base + spread sin phi)`` a kink at ``s_b = sqrt(n) (base + spread xi)``
        is crossed at ``phi_k = asin(xi)``; the piece beyond it, continued, is singular again where
        ``sin phi = xi`` next: at ``+-pi - phi_k`` when ``|xi| < 1``, and at ``+-pi/2 + i acosh|xi|`` when the
        line misses the circle.  Near a tangency of the outer rule both come within ``O(sqrt(delta))`` of an end
        of the inner range, and an ungraded Gauss panel there converged to about ``delta^(a+1)`` only
        (``x_+^(3/2)`` at B = 5: 1e-20 at ``delta = 1e-8``, and the nested rule stalled near 1e-30; at B = 6,
        1e-24 at ``delta = 1e-7`` at every level).  A reflection is returned as the real point; a complex pair
        as the real point ``+-(pi/2 + acosh|xi| / BRANCH_GAP_DIVISOR)``, so that the graded piece beside the
        end sees it at a Bernstein parameter of about 8.  Only for square-root kinks (one of whose pieces is not
        analytic at the kink): every reflection, and a complex pair only when the piece covering the circle is
        not analytic (``x^(3/2)``, not ReLU's zero piece).  Points closer than ``10^(-working_dps /
        BRANCH_FLOOR)`` are left (they would cost ``log2`` of their distance in pieces at each of the many outer
        nodes beside a tangency, and are not needed there).  Analytic kinks (ReLU, the step) have no such points:
        their pieces are entire."""
        nearest = mpmath.mpf(10) ** (-mpmath.mpf(self.working_dps) / BRANCH_FLOOR)
        out = []
        for xi, reg, _, below, above in sines:
            crossing = abs(xi) < 1
            # a reflection is a branch point of the piece that is not analytic (a "sqrt" kink has one), beyond the
            # range's end on one side of the crossing or beyond the crossing on the other, and both inner panels
            # beside it are graded; a complex pair is one of the piece that covers the circle (below it when xi > 1)
            if reg != "sqrt" or (not crossing and (below if xi > 0 else above)):
                continue
            sign = 1 if xi > 0 else -1
            if crossing:
                gap = mpmath.pi / 2 - abs(mpmath.asin(xi))  # the reflection's distance beyond the end
                point, far = sign * mpmath.pi - mpmath.asin(xi), mpmath.mpf(1) / 2
            else:
                gap = mpmath.acosh(abs(xi)) / BRANCH_GAP_DIVISOR
                point, far = sign * (mpmath.pi / 2 + gap), 1
            if nearest <= gap < far:  # (farther ones never grade a panel of the inner range)
                out.append(point)
        return out

    def _nested_level(self, pairs, layout, level, density=None):
        """The nested rule's sums at one level (``layout``: :meth:`_nested_layout` of ``pairs``)."""
        n, root_n = self.n, self.root_n
        outer_funcs, inner_funcs, inner_products, g_cuts, phi_reach, edges = layout
        outer_norm = 1 / self._outer_norm
        inner_norm = None if n == 2 else 1 / self._inner_norm
        totals = [mpmath.mpf(0) for _ in pairs]
        for lo, hi, kind, smooth in edges:
            mid = (lo + hi) / 2
            outer_values = evaluator(outer_funcs, root_n * mpmath.sin(mid))
            nodes, weights = panel(lo, hi, level, self.working_dps, kind=kind, smooth_lo=smooth[0], smooth_hi=smooth[1])
            for psi, w in zip(nodes, weights):
                cos_psi, sin_psi = mpmath.cos_sin(psi)
                wo = w * outer_norm * cos_psi ** (n - 2)
                s1 = root_n * sin_psi
                f_values = outer_values(s1)
                weight = None if density is None else (lambda s2, s1=s1: density(s1, s2))
                inner = self._inner_integrals(inner_funcs, inner_products, g_cuts, phi_reach, sin_psi, cos_psi, level,
                                              inner_norm, weight)
                for i, (factors_f, factors_g) in enumerate(pairs):
                    totals[i] += wo * _product(f_values, factors_f) * inner[_product_key(factors_g)]
        return totals

    def _inner_integrals(self, funcs, products, g_cuts, phi_reach, sin_psi, cos_psi, level, inner_norm, weight=None):
        """``{key: E[prod G(s_b) w | psi]}`` for each product of inner integrands (key :func:`_product_key`)."""
        n, root_n, rho, c = self.n, self.root_n, self.rho, self.c
        base = rho * sin_psi
        spread = c * cos_psi
        keyed = [(_product_key(p), p) for p in products]
        sums = {key: mpmath.mpf(0) for key, _ in keyed}
        at, along = root_n * base, root_n * spread  # s_b = at + along sin(phi)
        if n == 2:
            for s2 in (at + along, at - along):  # sin(phi) = +-1
                values = evaluator(funcs, s2)(s2)
                for key, p in keyed:
                    sums[key] += _product(values, p) / 2
            return sums
        sines = self._kink_sines(g_cuts, base, spread)
        edges = breakpoint_panels(-phi_reach, phi_reach, [(phi, reg) for phi, reg, _ in self._phi_cuts(sines)],
                                  self.working_dps, beyond=self._branch_points(sines))
        for lo, hi, kind, smooth in edges:
            inner_values = evaluator(funcs, at + along * mpmath.sin((lo + hi) / 2))
            nodes, weights = panel(lo, hi, level, self.working_dps, kind=kind, smooth_lo=smooth[0], smooth_hi=smooth[1])
            for phi, w in zip(nodes, weights):
                cos_phi, sin_phi = mpmath.cos_sin(phi)
                wi = w * inner_norm * cos_phi ** (n - 3)
                s2 = at + along * sin_phi
                if weight is not None:
                    wi = wi * weight(s2)
                values = inner_values(s2)
                for key, p in keyed:
                    sums[key] += wi * _product(values, p)
        return sums

    def _kink_sines(self, g_cuts, base, spread):
        """``[(xi, flag, index, below, above)]``: the ``sin phi`` at which the inner circle ``s_b = sqrt(n) (base +
        spread sin phi)`` meets the line of the kink ``g_cuts[index]`` of an inner integrand (any real ``xi``: the
        circle crosses the line where ``|xi| < 1``), with that kink's flag and sides (:meth:`_sided_cuts`); empty
        for a circle of no width."""
        if spread <= 0:
            return []
        return [((s / self.root_n - base) / spread, reg, index, below, above)
                for index, (s, reg, below, above) in enumerate(g_cuts)]

    @staticmethod
    def _phi_cuts(sines):
        """``[(phi, flag, index)]``: where the inner circle crosses a kink line (``sines``: :meth:`_kink_sines`)."""
        return [(mpmath.asin(xi), reg, index) for xi, reg, index, *_ in sines if abs(xi) < 1]

    def _sided_cuts(self, funcs):
        """``[(s, flag, below, above)]``: the merged kinks of ``funcs`` inside their reach (:meth:`_inner_cuts`,
        :func:`~bnsym.numerics.quadrature.merged_cuts`), each with whether every integrand with a kink there is
        analytic on the side below it and on the side above (:meth:`Integrand.regular_sides`)."""
        sides = {}
        for f in funcs:
            for s, below, above in f.regular_sides():
                key = cut_key(s, self.working_dps)
                was_below, was_above = sides.get(key, (True, True))
                sides[key] = (was_below and below, was_above and above)
        cuts = merged_cuts((self._inner_cuts(f) for f in funcs), self.working_dps)
        return [(s, reg, *sides[cut_key(s, self.working_dps)]) for s, reg in cuts]  # (every cut is some f's kink)

    # ------------------------------------------------------ nested angles, float64
    def _nested_float(self, pairs, scales, rtol, start_level):
        """The nested-angle rule of :meth:`_nested` in float64, vectorised over each panel's nodes, for
        ``rtol >= FLOAT_NESTED_RTOL`` (docs/theory.md section 3.2).  The outer panels, their kinds and the
        inner cuts are those of the mpmath rule (computed in mpmath, once per outer panel; the inner
        panels are not graded, since their ends move with the outer node); the nodes,
        the weights and the integrands (:meth:`Integrand.evaluate_float`) are float64.  Each error is the
        difference of two levels plus ``FLOAT_ROUNDING`` times the sum of the absolute terms.
        Raises :class:`PrecisionError` as :meth:`_nested` does."""
        funcs = [f for pair in pairs for factors in pair for f in factors]
        key = _hint_key(self, "nested, float64", funcs)
        level = max(self._start_level(start_level, two_d=True, key=key), self._nested_floor(funcs))
        sizes = [float(s) for s in scales]
        layout = self._nested_layout(pairs)  # the panels and cuts do not depend on the level

        def judge(current, previous):
            (values, magnitudes), (old, _) = current, previous
            errors = np.abs(values - old) + FLOAT_ROUNDING * magnitudes
            if not np.all(np.isfinite(values)) or np.any(errors > float(rtol) * np.array(sizes)):
                return None
            return [Estimate(mpmath.mpf(float(v)), mpmath.mpf(float(e))) for v, e in zip(values, errors)]

        return converge(
            lambda level: self._nested_level_float(pairs, layout, level), judge, key, level, MAX_LEVEL_2D,
            f"two-coordinate expectation (float64) did not converge to {mpmath.nstr(rtol, 3)} "
            f"with {SIZES[MAX_LEVEL_2D]}^2 nodes per panel (B={self.batch_size})",
        )

    def _nested_level_float(self, pairs, layout, level):
        """``(values, magnitudes)``: float64 arrays of :meth:`_nested_level`'s sums and of their absolute terms
        (``layout``: :meth:`_nested_layout` of ``pairs``)."""
        totals, magnitudes = np.zeros(len(pairs)), np.zeros(len(pairs))
        with np.errstate(all="ignore"):  # overflow or NaN in a piece's unused branch: the judge refuses non-finite sums
            for edge in layout[-1]:
                self._outer_panel_float(pairs, layout, edge, level, totals, magnitudes)
        return totals, magnitudes

    def _outer_panel_float(self, pairs, layout, edge, level, totals, magnitudes):
        """Add one outer panel's terms of :meth:`_nested_level_float` into ``totals`` and ``magnitudes``."""
        n, root_n = self.n, float(self.root_n)
        outer_funcs, inner_funcs, inner_products, g_cuts, phi_reach, _ = layout
        lo, hi, kind, smooth = edge
        psi, wo = _float_panel(float(lo), float(hi), kind, smooth, level)
        sin_psi, cos_psi = np.sin(psi), np.cos(psi)
        wo = wo * float(1 / self._outer_norm) * cos_psi ** (n - 2)
        f_values = {id(f): f.evaluate_float(root_n * sin_psi) for f in outer_funcs}
        base, spread = float(self.rho) * sin_psi, float(self.c) * cos_psi
        inner = {_product_key(p): np.zeros(psi.size) for p in inner_products}
        # the inner panels at this outer panel's middle: within it no kink line turns tangent, so each
        # inner panel is bounded by the same cuts (or +-phi_reach) at every outer node
        mid = (lo + hi) / 2
        crossings = self._phi_cuts(self._kink_sines(g_cuts, self.rho * mpmath.sin(mid), self.c * mpmath.cos(mid)))
        index = {phi: k for phi, _, k in crossings}
        # not graded: a split point would stay put while the cuts beside it move with psi
        for a, b, inner_kind, inner_smooth in breakpoint_panels(-phi_reach, phi_reach,
                                                                [(phi, reg) for phi, reg, _ in crossings],
                                                                self.working_dps, grade=False):
            ends = []
            for point in (a, b):
                if point in index:  # sin phi = (s_k / sqrt(n) - base) / spread, at each outer node
                    xi = (float(g_cuts[index[point]][0]) / root_n - base) / spread
                    ends.append(np.clip(np.arcsin(np.clip(xi, -1, 1)), -float(phi_reach), float(phi_reach)))
                else:
                    ends.append(np.full(psi.shape, float(point)))
            phi, wi = _float_panel(ends[0], np.maximum(ends[1], ends[0]), inner_kind, inner_smooth, level)
            wi = wi * float(1 / self._inner_norm) * np.cos(phi) ** (n - 3)
            s2 = root_n * (base[:, None] + spread[:, None] * np.sin(phi))
            g_values = {id(g): g.evaluate_float(s2) for g in inner_funcs}
            for p in inner_products:
                inner[_product_key(p)] += (wi * _product(g_values, p, np.ones(s2.shape))).sum(axis=1)
        for i, (factors_f, factors_g) in enumerate(pairs):
            terms = wo * _product(f_values, factors_f, np.ones(psi.shape)) * inner[_product_key(factors_g)]
            totals[i] += terms.sum()
            magnitudes[i] += np.abs(terms).sum()


# --------------------------------------------------------------------------- utilities
#: ``_nested`` takes the float64 rule when the relative tolerance asked is at least this.
FLOAT_NESTED_RTOL = 1e-12
#: Relative rounding of a float64 sum of the nested rule's terms, in units of their absolute sum.
FLOAT_ROUNDING = 1e-14


@functools.lru_cache(maxsize=256)
def _unit_panel(kind, smooth, level):
    """``(left, right, weights)`` of :func:`~bnsym.numerics.quadrature.panel` on ``[0, 1]`` as float64 arrays:
    node ``k`` is at ``left[k]`` from 0 and ``right[k]`` from 1 (both kept, each accurate near its end)."""
    left, weights, right = float64_rule(panel, mpmath.mpf(0), mpmath.mpf(1), level, kind=kind, smooth_lo=smooth[0],
                                        smooth_hi=smooth[1], complements=True)
    return left, right, weights


def _float_panel(lo, hi, kind, smooth, level):
    """Nodes and weights of :func:`~bnsym.numerics.quadrature.panel` on ``[lo, hi]`` in float64; ``lo`` and ``hi``
    floats or arrays (a trailing axis of nodes is added), each node taken from its nearer end."""
    left, right, weights = _unit_panel(kind, tuple(smooth), level)
    lo, hi = np.asarray(lo, dtype=float)[..., None], np.asarray(hi, dtype=float)[..., None]
    width = hi - lo
    nodes = np.where(left < right, lo + width * left, hi - width * right)
    return nodes, width * weights


def converge(evaluate, judge, key, level, max_level, failure):
    """The one convergence loop of the engine: raise the rule level until two levels agree.

    Used by the sphere laws, by :class:`bnsym.numerics.moments.MomentCurve` (the
    interpolation degree of the moments in the radial gain, docs/theory.md section 15), and by
    the high-precision joint map (:func:`bnsym.meanfield.joint.cross_block`,
    :func:`bnsym.meanfield.laplace.backward_term`, both judged by :func:`parts_agree`), its
    single-batch map (:func:`bnsym.meanfield.laplace.laplace_map`) and the polar rule of the pair law
    (:meth:`bnsym.numerics.angular_gaussian.PairDensity.expect_polar`).

    ``evaluate(level)`` gives the values at one rule level; ``judge(current, previous)`` returns
    the Estimates when the two consecutive levels agree to the tolerance, else ``None``.  The
    level that converged is remembered under ``key`` so later calls start there.  Raises
    :class:`PrecisionError` with ``failure`` past ``max_level``.
    """
    previous = evaluate(level)
    while level + 1 <= max_level:
        current = evaluate(level + 1)
        result = judge(current, previous)
        if result is not None:
            _LEVEL_HINTS[key] = level + 1
            return result
        previous = current
        level += 1
    raise PrecisionError(failure)


def parts_agree(current, previous, tolerance, sizes=None):
    """The judge of :func:`converge` for matrix-valued integrals of several parts (a value and its
    slope, say; each part a list of rows): the entrywise sum over parts of ``|current - previous|``
    when every part's largest difference is at most ``tolerance`` times its size, else ``None``.
    ``sizes[i]`` is part ``i``'s size, or None (the default for all) for its own largest entry.
    The sum bounds the error of the sum of the parts as well as each part's."""
    diffs = []
    for part, (now, before) in enumerate(zip(current, previous)):
        given = None if sizes is None else sizes[part]
        size = max(abs(v) for row in now for v in row) if given is None else abs(given)
        diff = [[abs(x - y) for x, y in zip(rc, rp)] for rc, rp in zip(now, before)]
        if max(max(row) for row in diff) > tolerance * size:
            return None
        diffs.append(diff)
    return [[sum(column) for column in zip(*rows)] for rows in zip(*diffs)]


def _exponent(values):
    """``e`` with ``2^(e-1) <= max |v| < 2^e`` (0 when every value is zero)."""
    largest = max((abs(v) for v in values), default=mpmath.mpf(0))
    return 0 if largest == 0 else int(mpmath.frexp(largest)[1])


def _fixed(x, bits):
    """``round(x * 2^bits)`` as a Python integer (fixed point with ``bits`` fraction bits)."""
    return int(mpmath.nint(mpmath.ldexp(x, bits)))


def _product_key(factors):
    """Key of a product of integrands (their ids in order; ``()`` is the constant 1)."""
    return tuple(map(id, factors))


def _product(values, factors, one=None):
    """``prod values[id(f)]`` over ``factors`` (``one`` for no factor: an mpf 1 by default, or an array of ones
    for float64 values)."""
    if len(factors) == 1:
        return values[id(factors[0])]
    result = mpmath.mpf(1) if one is None else one
    for f in factors:
        result = result * values[id(f)]
    return result


def _least_level(nodes):
    """The least rule level with at least ``nodes`` nodes per panel (at most :data:`MAX_LEVEL_1D`)."""
    level = 0
    while SIZES[level] < nodes and level < MAX_LEVEL_1D:
        level += 1
    return level


def _distinct(items, key=id):
    """``items`` without repeats (by ``key``, the identity by default), in order."""
    seen, out = set(), []
    for item in items:
        if key(item) not in seen:
            seen.add(key(item))
            out.append(item)
    return out
