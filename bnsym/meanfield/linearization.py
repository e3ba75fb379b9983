r"""The spectrum of the forward and backward maps at the BSB1 fixed point.

docs/theory.md section 6.  At ``eps = 0`` both the linearised forward map
``Delta -> G dV[Delta] G`` and the backward operator ``T`` act on
``G Sym(B) G``, commute with permuting the batch, and so have one eigenvalue
on each of the three invariant subspaces ``span{G}`` (dimension 1), ``L``
(``B - 1``) and ``M`` (``B(B-3)/2``).

How each eigenvalue is computed.  By Schur's lemma, for ``Pi`` in one
subspace and any ``Y`` in ``G Sym(B) G`` with ``tr(Y Pi) != 0``,
``lambda = tr(Y A(Pi)) / tr(Y Pi)``; equally ``lambda = tr(Pi A(Y)) / tr(Pi Y)``
(the other isotypic parts of ``Y`` are orthogonal to ``Pi``).  With
``w = e1 - e2``, ``x = e1 - e3``, ``y = e2 - e4`` and ``s = sqrt(B) u``:

* forward (``u`` angular central Gaussian, docs/theory.md section 6):
  ``dV[Pi] = E[f f^T ((n/2B) s^T Pi s - tr(Pi)/2)] / (q* - c*)``; with input
  ``Pi`` and functional ``Y = w w^T``,

  - ``G``: the weight vanishes identically (scale invariance), ``lambda = 0``;
  - ``L`` (``Pi = G diag(x) G``, ``tr(Y Pi) = 1``):
    ``lambda_L = (n/2B) E[(f1 - f2)^2 (s1^2 - s3^2)] / (q* - c*)``;
  - ``M`` (``Pi = x y^T + y x^T``, ``tr(Y Pi) = -2``):
    ``lambda_M = -(n/2B) E[(f1 - f2)^2 (s1 - s3)(s2 - s4)] / (q* - c*)``.

* backward: ``T(Pi) = B/((q*-c*)(B-3)) E[P D Pi D P]`` with ``P = G - u u^T``
  and ``D = diag(gamma phi'(gamma s + beta))`` (docs/theory.md sections 2, 5);
  with input ``w w^T`` and functional ``Pi``, ``r = D w``,
  ``z = P r = r - (D1 - D2)/B 1 - u (u1 D1 - u2 D2)``:

  - ``G``: ``lambda_G = B/(2(q*-c*)(B-3)) E[|z|^2]`` (equals docs/theory.md section 5);
  - ``L``: ``lambda_L = B/((q*-c*)(B-3)) E[z1^2 - z3^2]``;
  - ``M``: ``lambda_M = -B/((q*-c*)(B-3)) E[(z1 - z3)(z2 - z4)]``.

Every expectation above is a polynomial in ``s1..s4`` times nonlinear factors
at ``s1`` and ``s2`` only.  docs/theory.md section 3 reduces it: given the
coordinates carrying nonlinear factors, the others are ``mu + w_i`` with
``mu = -(sum of the given)/m`` and ``w`` uniform on a sphere of radius
``R``, ``R^2 = B - sum(given^2) - m mu^2``, in ``1^perp`` of ``R^m``
(``m = B - #given``); its polynomial moments are Gaussian (Isserlis) moments
of ``G_m z`` divided by moments of ``chi_{m-1}``, exact rationals.  What is
left, ``E[N1(s1) s1^p N2(s2) s2^q]`` and ``E[N(s1) s1^p]`` with
``N = f^i D^j``, goes to :class:`bnsym.numerics.sphere.SphereLaw` (or to the
closed forms of :mod:`bnsym.numerics.closed_forms` for positively homogeneous
integrands of any degree at ``beta = 0``).

Domain: ``B >= 4`` (``M`` is empty and ``E[1/chi^2_{B-1}]`` diverges below)
or ``B = inf`` (forward G, L, M and backward G), any ``eps >= 0`` (past the critical eps,
the degenerate point's closed forms of docs/theory.md section 15.5; below it, section 15: at ``eps > 0`` every expectation is
averaged over the radial nodes of the fixed point, with gain ``gamma kappa``;
for homogeneous activations the keys scale as powers of ``kappa``).  Cost:
about 20 one- and two-coordinate sphere expectations at ``eps = 0``
(closed forms: milliseconds; quadrature: seconds); at ``eps > 0`` the same at
every radial node, interpolated along the radius for a smooth activation (17 to 65 gains: tanh
at B = 32, eps = 1e-3 takes about 1.3 s at dps 15, 13 s at dps 30), all nodes in one pass for a
kinked one, by homogeneity from ``kappa = 1`` with closed forms.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, replace
from functools import lru_cache

import mpmath
import sympy as sp

from bnsym.numerics import closed_forms
from bnsym.activations import Activation, Piece, x as _x
from bnsym.errors import BnsymInputError, PrecisionError
from bnsym.estimate import ROUNDING, Estimate, Value, rounding_error
from bnsym.numerics import radial
from bnsym.meanfield.bsb1 import SLACK_MARGIN, bsb1_state, moment_tolerance
from bnsym.meanfield.critical import DEGENERATE, degenerate_bracket, local_slopes, psi_values
from bnsym.numerics.curve import RadialCurve, SharedCurve, shared_holder
from bnsym.numerics.gaussian_kernels import integer_orthant
from bnsym.numerics.moments import centred_integrands, curve_evaluation, resolve_method
from bnsym.meanfield.results import FixedPoint, Settings, make_settings
from bnsym.numerics.sphere import Integrand, SphereLaw
from bnsym.text import ShownAsText, error_text, number_text, table_text

SUBSPACES = ("G", "L", "M")

_S = sp.symbols("s1:5")
_F = sp.symbols("F1 F2")
_D = sp.symbols("D1 D2")


# --------------------------------------------------------------------------- results
@dataclass(frozen=True)
class Eigenvalue(Value):
    """One eigenvalue of a map on ``G Sym(B) G``: its value and error, operator, subspace and multiplicity."""

    value: mpmath.mpf
    error: mpmath.mpf
    operator: str = "forward"  # "forward" or "backward"
    subspace: str = "G"  # "G", "L" or "M"
    multiplicity: int = 1

    def below_one(self):
        """True / False when ``|value| < 1`` / ``> 1`` beyond the error, else None."""
        if abs(self.value) + self.error < 1:
            return True
        if abs(self.value) - self.error > 1:
            return False
        return None


@dataclass(frozen=True)
class Spectrum(ShownAsText):
    """Forward and backward eigenvalues at the BSB1 point, one per subspace ``G, L, M``.

    ``stable``: True when both forward eigenvalues on ``L`` and ``M`` are
    below 1 in modulus (beyond their errors), False when one is above, None
    when undecided.  ``spectral_radius``: the backward eigenvalue of largest
    modulus; ``rate_is_G`` tells whether it is lambda_G.
    """

    settings: Settings
    fixed_point: FixedPoint
    forward: tuple
    backward: tuple
    method: str = ""

    def eigenvalue(self, operator: str, subspace: str) -> Eigenvalue:
        """The eigenvalue of ``operator`` (``"forward"`` or ``"backward"``) on ``subspace`` (``"G"``, ``"L"``, ``"M"``)."""
        if operator not in ("forward", "backward"):
            raise BnsymInputError(f"operator must be 'forward' or 'backward', got {operator!r}")
        group = self.forward if operator == "forward" else self.backward
        for e in group:
            if e.subspace == subspace:
                return e
        raise BnsymInputError(f"subspace must be one of {', '.join(repr(e.subspace) for e in group)}, got {subspace!r}")

    @property
    def stable(self):
        verdicts = [e.below_one() for e in self.forward if e.subspace != "G"]
        if False in verdicts:
            return False
        return None if None in verdicts else True

    @property
    def spectral_radius(self) -> Eigenvalue:
        return max(self.backward, key=lambda e: abs(e.value))

    @property
    def rate_is_G(self) -> bool:
        return self.spectral_radius.subspace == "G"

    def verdict(self) -> str:
        stable = {True: "locally stable", False: "unstable (batch symmetry breaks)", None: "undecided at this precision"}[self.stable]
        top = self.spectral_radius
        which = "lambda_G" if top.subspace == "G" else f"the {top.subspace} eigenvalue, not lambda_G"
        point = "BSB1 fixed point" if self.fixed_point.regime != DEGENERATE else "degenerate BSB1 point G Sigma G = 0 (eps past the critical eps)"
        return f"{point} {stable}; backward spectral radius is {which}"

    def __str__(self) -> str:
        """The settings, a table of the eigenvalues and the verdict (what ``bnsym spectrum`` prints)."""
        d = self.settings.dps
        rows = [(e.operator, e.subspace, "inf" if e.multiplicity == math.inf else str(e.multiplicity),
                 number_text(e.value, d), error_text(e.error)) for e in self.forward + self.backward]
        table = table_text(rows, header=("map", "subspace", "multiplicity", "eigenvalue", "error"))
        return f"{self.settings.line(detail=self.method)}\n{table}\n{self.verdict()}"

    def as_dict(self) -> dict:
        d = self.settings.dps

        def entry(e):
            return {
                "subspace": e.subspace,
                "multiplicity": "inf" if e.multiplicity == math.inf else e.multiplicity,
                "value": mpmath.nstr(e.value, d),
                "error": mpmath.nstr(e.error, 2),
            }

        return {
            "settings": self.settings.as_dict(),
            "method": self.method,
            "fixed_point": {"q": mpmath.nstr(self.fixed_point.q, d), "c": mpmath.nstr(self.fixed_point.c, d),
                            "regime": self.fixed_point.regime},
            "forward": [entry(e) for e in self.forward],
            "backward": [entry(e) for e in self.backward],
            "stable": self.stable,
            "spectral_radius": self.spectral_radius.subspace,
            "verdict": self.verdict(),
        }


# --------------------------------------------------------------------------- public API
def spectrum(activation, batch_size, *, gamma=1, beta=0, eps=0, sigma_w=1, dps=15, method="auto") -> Spectrum:
    r"""The eigenvalues of the forward and backward maps at the BSB1 fixed point.

    ``activation``, ``gamma``, ``beta``, ``eps``, ``sigma_w``, ``dps``, ``method`` as for
    :func:`bnsym.fixed_point`; ``batch_size`` an integer ``>= 4`` or ``math.inf``
    (forward eigenvalues and backward G only).  ``eps`` past the critical eps gives the
    spectrum at the degenerate point, the linearisation along the BSB1 ray (closed forms,
    docs/theory.md section 15.5; ``spectrum.fixed_point.regime`` says which).  Each eigenvalue is
    promised to ``dps`` digits relative to ``max(1, |value|)``
    (:class:`~bnsym.errors.PrecisionError` otherwise).  Cost: that of the
    fixed point plus about 20 sphere expectations.

    >>> sp = spectrum("identity", 10, dps=20)
    >>> [mpmath.nstr(e.value, 12) for e in sp.backward][0]  # lambda_G = (B-2)/(B-3)
    '1.14285714286'
    >>> sp.stable
    True
    """
    settings = make_settings(activation, batch_size, gamma=gamma, beta=beta, eps=eps, sigma_w=sigma_w, dps=dps, method=method)
    b = settings.batch_size
    if b != math.inf and b < 4:
        raise BnsymInputError(f"batch_size must be an integer >= 4 or inf for the spectrum (M is empty and T is infinite below), got {batch_size!r}")
    return spectrum_from_settings(settings)


#: At most this many digits are added (once) when an eigenvalue misses its promise (:func:`spectrum_from_settings`).
MAX_EXTRA_DIGITS = 20


def spectrum_from_settings(settings: Settings) -> Spectrum:
    """:func:`spectrum` for validated settings.

    Each eigenvalue is a combination of sphere expectations, each converged relative to its own size;
    where the combination cancels (tanh' or sin at a large gain: a backward M eigenvalue of 0.019 from
    terms of 690) the result can fall short of ``dps`` digits.  Then the whole spectrum is computed
    once more with as many more digits as were missing plus two (at most :data:`MAX_EXTRA_DIGITS`),
    and only if that also falls short is :class:`PrecisionError` raised."""
    used = settings
    state, values, method = _eigenvalue_estimates(used)
    tol = mpmath.mpf(10) ** -settings.dps
    shortfall = max(est.error / (tol * max(1, abs(est.value))) for est in values.values())
    if shortfall > 1:
        extra = math.ceil(math.log10(shortfall)) + 2
        if extra <= MAX_EXTRA_DIGITS:
            used = replace(settings, dps=settings.dps + extra)
            state, values, method = _eigenvalue_estimates(used)
    mult = multiplicities(settings.batch_size)
    out = {"forward": [], "backward": []}
    for (op, sub), est in values.items():
        # the keys are combined at the working precision: its rounding bounds the error from below (keys summed
        # at more digits, as the centred ones of a saturated activation are, carry smaller errors: found by the review)
        est = Estimate(est.value, max(est.error, rounding_error(est.value, used.working_dps)), meaning=est.meaning)
        if est.error > tol * max(1, abs(est.value)):
            raise PrecisionError(
                f"{op} eigenvalue on {sub} reached only {mpmath.nstr(est.error, 3)} absolute error, "
                f"short of the {settings.dps} digits asked"
            )
        out[op].append(Eigenvalue(est.value, est.error, operator=op, subspace=sub, multiplicity=mult[sub], meaning=est.meaning))
    return Spectrum(settings, state.fixed_point, tuple(out["forward"]), tuple(out["backward"]), method)


def _eigenvalue_estimates(settings: Settings):
    """``(state, {(operator, subspace): Estimate}, method)`` at ``settings``' precision."""
    state = bsb1_state(settings)
    b = settings.batch_size
    method = resolve_method(settings.method, settings.activation, settings.beta)
    with mpmath.workdps(settings.working_dps):
        law = SphereLaw(b, settings.working_dps)
        if state.fixed_point.regime == DEGENERATE:
            values = _degenerate_values(settings)
            method = "closed form"
        elif b == math.inf:
            values = _infinite_batch(settings, state, law, method)
        elif settings.eps == 0:
            values = _at_eps_zero(settings, state, law, method)
        else:
            records_at = _radial_source(settings, law, method)
            coarse, fine = (_radial_values(settings, state, level, records_at) for level in state.radial)
            values = {key: Estimate(v.value, v.error + abs(v.value - coarse[key].value), meaning=v.meaning)
                      for key, v in fine.items()}
    return state, values, method


def _at_eps_zero(settings, state, law, method):
    b = settings.batch_size
    evaluator = _Evaluator(settings, law, method)
    spread = Estimate(state.fixed_point.spread, state.fixed_point.spread_error)
    raw = {key: evaluator.expectation(expr) for key, expr in _expressions(b).items()}
    forward_scale = Estimate(mpmath.mpf(b - 1)) / (2 * b) / spread
    backward_scale = Estimate(mpmath.mpf(b)) / ((b - 3) * spread)
    return {
        ("forward", "G"): Estimate(mpmath.mpf(0)),
        ("forward", "L"): forward_scale * raw["forward L"],
        ("forward", "M"): -forward_scale * raw["forward M"] / 2,
        ("backward", "G"): backward_scale * raw["backward G"] / 2,
        ("backward", "L"): backward_scale * raw["backward L"],
        ("backward", "M"): -backward_scale * raw["backward M"],
    }


def _radial_values(settings, state, level, records_at):
    r"""Eigenvalues at ``eps > 0``, finite ``B``, on one radial level (docs/theory.md section 15).

    With ``R^2 = (S^2 - B eps) / a*`` at each radial node (``|G h|^2 = a* R^2``) and the sphere
    expectations at gain ``gamma kappa`` (``records_at(kappas, slacks)``, the fields of
    :func:`_radial_fields`):
    forward ``lambda_X = (sigma_w^2 / (2 a*)) E_R[(R^2/B) raw_X(kappa)]`` (``X = L``; ``M`` with
    ``-1/2``), ``lambda_G^fwd = (sigma_w^2 / (2 a*)) E_R[(R^2 - n) spread(kappa)]``;
    backward ``lambda_X = sigma_w^2 E_R[(B / S^2) sum_p kappa^(2p) raw_(X,p)(kappa)]`` with
    ``z = G D w - kappa^2 u (u . D w)`` (``G``: ``1/2``, ``M``: ``-1``).
    """
    b, eps, sw2 = settings.batch_size, settings.eps, settings.sigma_w**2
    a = state.scale
    r2s = [(node.s_squared - b * eps) / a.value for node in level.nodes]
    # a node where the chi density of R is 10^-d of its peak needs its values only to about rtol 10^d
    slacks = [max(radial.density_drop(b - 1, mpmath.sqrt(r2)) - SLACK_MARGIN, 0) for r2 in r2s]
    records = records_at([mpmath.sqrt(node.kappa_squared) for node in level.nodes], slacks)
    totals = {key: Estimate(mpmath.mpf(0)) for key in
              (("forward", "G"), ("forward", "L"), ("forward", "M"), ("backward", "G"), ("backward", "L"), ("backward", "M"))}
    for node, r2, record in zip(level.nodes, r2s, records):
        kappa2 = node.kappa_squared
        wf = node.weight * r2 / b
        totals["forward", "G"] += node.weight * (r2 - (b - 1)) * node.moments.spread
        totals["forward", "L"] += wf * record["forward L"]
        totals["forward", "M"] += wf * record["forward M"]
        wb = node.weight * b / node.s_squared
        for sub in SUBSPACES:
            raw = sum((kappa2**p * record[f"backward {sub} {p}"] for p in range(3)), Estimate(mpmath.mpf(0)))
            totals["backward", sub] += wb * raw
    forward_scale = Estimate(sw2) / (2 * a)
    return {
        ("forward", "G"): forward_scale * totals["forward", "G"],
        ("forward", "L"): forward_scale * totals["forward", "L"],
        ("forward", "M"): -forward_scale * totals["forward", "M"] / 2,
        ("backward", "G"): sw2 * totals["backward", "G"] / 2,
        ("backward", "L"): sw2 * totals["backward", "L"],
        ("backward", "M"): -sw2 * totals["backward", "M"],
    }


def _radial_source(settings, law, method):
    """``records_at(kappas, slacks)``: the fields of :func:`_radial_fields` at gain ``gamma kappa``.

    Closed forms: by homogeneity from the values at ``kappa = 1``.  Quadrature: a
    :class:`~bnsym.numerics.curve.RadialCurve` in ``kappa`` when no kink reaches the sphere
    support, or above a kink's :func:`~bnsym.numerics.moments.gain_floor` (docs/theory.md
    section 15.3), and the other nodes' gains evaluated in one shared pass.
    """
    b = settings.batch_size
    fields = _radial_fields(b)
    if method == "closed form":  # degree alpha: every key scales as kappa^(i alpha + j (alpha - 1))
        homogeneous = _Evaluator(settings, law, method)
        return lambda kappas, slacks: [{name: homogeneous.expectation(expr, kappa=k) for name, expr in fields.items()}
                                       for k in kappas]
    rtol = moment_tolerance(settings)
    centre = all(_shift_invariant(expr) for expr in fields.values())

    def evaluate(kappas, tol):
        evaluators = [_Evaluator(settings, law, method, gain=settings.gamma * k, rtol=tol) for k in kappas]
        return [{name: ev.combine(expr, values) for name, expr in fields.items()}
                for ev, values in zip(evaluators, _values_of(evaluators, _keys_of(fields.values(), b), centre=centre))]

    plan = curve_evaluation(evaluate, settings.activation, settings.beta, settings.gamma, law)
    if plan is None:
        return lambda kappas, slacks: evaluate(kappas, rtol)
    curve = SharedCurve(shared_holder("eigenvalues", settings.activation, b, settings.gamma, settings.beta, settings.dps, method),
                        lambda: RadialCurve(plan[0], [(name, name) for name in fields], settings.working_dps, rtol, plan[1]))

    def from_curve(kappas, slacks):
        records = curve.at(kappas, slacks)
        if records is None:
            return evaluate(kappas, rtol)
        below = [i for i, r in enumerate(records) if r is None]  # (below a kinked curve's cap)
        for i, r in zip(below, evaluate([kappas[i] for i in below], rtol) if below else []):
            records[i] = r
        return records

    return from_curve


def _degenerate_values(settings):
    r"""Eigenvalues at the degenerate point ``G Sigma* G = 0`` (docs/theory.md section 15.5).

    Near it ``phi(BN h) = phi(beta) 1 + psi(G h) / sqrt(eps) + O(|G h|^2)`` with ``psi`` the
    degree-1 part of ``x -> phi(beta + gamma x)`` (:func:`~bnsym.meanfield.critical.psi_values`),
    so the forward map is ``K -> (sigma_w^2 / eps) G V_psi(K) G`` to first order, ``K = G Sigma G``
    and ``V_psi`` the Gaussian kernel; it is positively homogeneous of degree 1, and its
    linearisation along the BSB1 ray ``t G`` is that at ``K = G`` for every ``t``.  With the
    degree-1 arc-cosine kernel ``V_ab = k J(rho)`` at ``k = (B-1)/B``, ``rho = -1/(B-1)``,
    ``J(rho) = [s2 (sin t + (pi - t) rho) + m2 (sin t - t rho)] / (2 pi)``, ``cos t = rho``,
    ``J'(rho) = [s2 (pi - t) - m2 t] / (2 pi)`` (the orthant moments
    :func:`~bnsym.numerics.gaussian_kernels.integer_orthant` of degrees 1 and 0), ``s2 = psi(1)^2 + psi(-1)^2``,
    ``m2 = 2 psi(1) psi(-1)``, ``c_d = s2 / 2``:

        forward  G: (sigma_w^2/eps) k (c_d - J),  L: (sigma_w^2/eps) [(c_d - J + rho J')(1 - 2/B) + 2 J'/B],
                 M: (sigma_w^2/eps) J'
        backward X: (sigma_w^2/eps) c_X E[raw_X] with kappa = 0 (z = G D w, D = gamma a_(sign of gamma s)),

    ``c_G = 1/2``, ``c_L = 1``, ``c_M = -1`` (the ``kappa -> 0`` limit of :func:`_radial_values`).
    For ``phi`` differentiable at ``beta`` (``psi`` linear) every eigenvalue is
    ``S0 = sigma_w^2 gamma^2 phi'(beta)^2 / eps``.  ``B = inf``: ``k = 1``, ``rho = 0``, ``2/B = 0``,
    backward ``G`` only.  Every term is a closed form: cost O(1).
    """
    b, scale = settings.batch_size, settings.sigma_w**2 / settings.eps
    slopes = local_slopes(settings)
    (p, m), (d_plus, d_minus) = psi_values(settings, slopes)
    infinite = b == math.inf
    k, rho = (mpmath.mpf(1), mpmath.mpf(0)) if infinite else (mpmath.mpf(b - 1) / b, mpmath.mpf(-1) / (b - 1))
    two_over_b = 0 if infinite else mpmath.mpf(2) / b
    s2, m2 = p * p + m * m, 2 * p * m
    # J = s2 O_1(rho) + m2 O_1(-rho), J' = s2 O_0(rho) - m2 O_0(-rho) (Price's theorem, degree 1)
    j = s2 * integer_orthant(1, rho) + m2 * integer_orthant(1, -rho)
    dj = s2 * integer_orthant(0, rho) - m2 * integer_orthant(0, -rho)
    cd = s2 / 2
    values = {
        ("forward", "G"): scale * k * (cd - j),
        ("forward", "L"): scale * ((cd - j + rho * dj) * (1 - two_over_b) + two_over_b * dj),
        ("forward", "M"): scale * dj,
    }
    if infinite:
        values["backward", "G"] = scale * degenerate_bracket(settings, slopes)
    else:
        n, parts = b - 1, _backward_parts(b)

        def key_value(key):  # D^j s^p at kappa = 0: homogeneous of degree p, D(+-1) = d_+-
            ends = [(d_plus**jj, d_minus**jj * (-1) ** pp, pp) for ii, jj, pp in key]
            if len(ends) == 1:
                return closed_forms.homogeneous_mean(*ends[0], n)
            return closed_forms.homogeneous_pair(ends[0], ends[1], n)

        for sub, factor in (("G", mpmath.mpf(1) / 2), ("L", 1), ("M", -1)):
            terms = _reduced(parts[sub][0], b)
            raw = mpmath.fsum(_rational(c) * (key_value(key) if key else 1) for key, c in terms.items())
            values["backward", sub] = scale * factor * raw
    return {key: Estimate(v, rounding_error(v, settings.working_dps), meaning=ROUNDING) for key, v in values.items()}


def _infinite_batch(settings, state, law, method):
    r"""``B = inf`` (docs/theory.md section 15): the coordinates are independent Gaussians, the gain
    ``g = gamma kappa*`` is deterministic (``kappa*^2 = a*/(a* + eps)``), and the finite-B
    expressions tend to ``lambda_L = [E[f^2 s^2] - E[f^2] - 2 E[f] (E[f s^2] - E[f])] / (2 Var f)``,
    ``lambda_M = E[f s]^2 / Var f`` (``f = phi(g s + beta)``, ``s ~ N(0, 1)``; both unchanged when
    ``f - c`` replaces ``f``, and computed so, with ``c`` about ``E[f]``); forward ``G`` is
    0 at ``eps = 0`` and the slope ``F'(a*)`` of the scale equation otherwise (closed form,
    :func:`_scale_slope`); backward only ``G`` (``lambda_G``).  Cost: four one-coordinate
    expectations and one centring pass (with eps > 0, four more and a centring pass at each of the
    three points of the slope and its sensitivity to ``a*``).
    """
    from bnsym.meanfield.gradients import rate_from_settings

    a, eps = state.scale, settings.eps
    gain = settings.gamma if eps == 0 else settings.gamma * mpmath.sqrt(a.value / (a.value + eps))
    rtol = moment_tolerance(settings)
    # f - c for f (c about E[f], on a law with more digits where f is nearly constant): the
    # expressions are invariant under f -> f - c since E[s] = 0, E[s^2] = 1 (docs/theory.md section 3.2)
    own, (centred,), _ = centred_integrands(law, [Integrand(settings.activation, gain, settings.beta)], rtol)
    f = [replace(centred, power=p) for p in (0, 1, 2)] + [replace(centred, power=2, exponent=2)]
    (m0, q0), (m1, _), (m2, _), (fs2_sq, _) = own.expect_with_norms(f, rtol)
    variance = Estimate(state.fixed_point.spread, state.fixed_point.spread_error)
    rate = rate_from_settings(settings)
    values = {
        ("forward", "L"): (fs2_sq - q0 - 2 * m0 * (m2 - m0)) / (2 * variance),
        ("forward", "M"): m1 * m1 / variance,
        ("backward", "G"): Estimate(rate.value, rate.error, meaning=rate.meaning),
    }
    if eps == 0:
        values["forward", "G"] = Estimate(mpmath.mpf(0))
    else:
        values["forward", "G"] = _scale_slope(settings, law, method, a)
    return dict(sorted(values.items(), key=lambda item: (item[0][0], SUBSPACES.index(item[0][1]))))


def _scale_slope(settings, law, method, a):
    r"""``F'(a*)`` at ``B = inf``, in closed form (docs/theory.md section 15).

    ``F(a) = sigma_w^2 V(g(a))`` with ``V(g) = Var phi(g z + beta)``, ``z ~ N(0, 1)``, and
    ``g(a) = gamma sqrt(a / (a + eps))``, so

        F'(a) = sigma_w^2 V'(g) g eps / (2 a (a + eps)),
        V'(g) = 2 E[phi phi'(g z + beta) z] - 2 E[phi(g z + beta)] E[phi'(g z + beta) z],

    and by Stein's identity ``E[h'(z) z] = E[h(z) (z^2 - 1)]`` (``h`` continuous and piecewise smooth,
    as every activation is), with ``f = phi(g z + beta) - c`` for any constant ``c``,

        g V'(g) = E[f^2 (z^2 - 1)] - 2 E[f] E[f (z^2 - 1)],

    which holds ``phi`` only through ``f``: ``c`` about ``E[phi]``, on the law
    :func:`~bnsym.numerics.moments.centred_integrands` chooses, keeps the digits of a nearly
    constant ``phi`` (tanh at ``beta = 20``; docs/theory.md section 3.2).
    Four one-coordinate expectations at the moments' tolerance.  The error adds to theirs the
    change of the slope across ``a* +- error(a*)`` (the root's own error), measured by two more
    evaluations.  (A central difference in ``a`` lost a third of the working digits to its step:
    1.2e-9 at 10 digits.)
    """
    sw2, eps, beta = settings.sigma_w**2, settings.eps, settings.beta
    rtol = moment_tolerance(settings)
    act = settings.activation

    def slope(x):
        g = settings.gamma * mpmath.sqrt(x / (x + eps))
        own, (f,), _ = centred_integrands(law, [Integrand(act, g, beta)], rtol)
        mean, f_z2, square, square_z2 = own.expect(
            [f, replace(f, power=2), replace(f, exponent=2), replace(f, power=2, exponent=2)], rtol)
        return sw2 * (square_z2 - square - 2 * mean * (f_z2 - mean)) * (eps / (2 * x * (x + eps)))

    value = slope(a.value)
    if a.error > 0:
        spread = abs(slope(a.value + a.error).value - slope(a.value - a.error).value) / 2
        value = Estimate(value.value, value.error + spread, meaning=value.meaning)
    return value


def multiplicities(batch_size: int) -> dict:
    """Dimensions of the invariant subspaces: ``G`` 1, ``L`` B-1, ``M`` B(B-3)/2 (``inf`` at ``B = inf``)."""
    if batch_size == math.inf:
        return {"G": 1, "L": math.inf, "M": math.inf}
    return {"G": 1, "L": batch_size - 1, "M": batch_size * (batch_size - 3) // 2}


# --------------------------------------------------------------------------- the expressions
def _expressions(b: int) -> dict:
    """The expectations (sympy polynomials in s1..s4, F1, F2, D1, D2) whose values give the eigenvalues."""
    s1, s2, s3, s4 = _S
    f1, f2 = _F
    d1, d2 = _D
    sb = sp.sqrt(sp.Integer(b))
    u = [s / sb for s in _S]
    proj = u[0] * d1 - u[1] * d2  # u . r
    shift = (d1 - d2) / b  # mean of r
    z = [d1 - shift - u[0] * proj, -d2 - shift - u[1] * proj, -shift - u[2] * proj, -shift - u[3] * proj]
    # |z|^2 = |G r|^2 - (u.r)^2 (z is orthogonal to 1)
    z_norm = d1**2 + d2**2 - (d1 - d2) ** 2 / b - proj**2
    return {
        "forward L": (f1 - f2) ** 2 * (s1**2 - s3**2),
        "forward M": (f1 - f2) ** 2 * 2 * (s1 - s3) * (s2 - s4),
        "backward G": z_norm,
        "backward L": z[0] ** 2 - z[2] ** 2,
        "backward M": (z[0] - z[2]) * (z[1] - z[3]),
    }


@lru_cache(maxsize=None)
def _backward_parts(b: int) -> dict:
    """The backward expressions at ``eps > 0`` split by powers of ``kappa^2``: ``{X: (E_0, E_1, E_2)}``
    with ``z = G D w - kappa^2 u (u . D w)`` (docs/theory.md section 15)."""
    k2 = sp.Symbol("k2")
    d1, d2 = _D
    sb = sp.sqrt(sp.Integer(b))
    u = [s / sb for s in _S]
    proj = u[0] * d1 - u[1] * d2
    shift = (d1 - d2) / b
    z = [d1 - shift - k2 * u[0] * proj, -d2 - shift - k2 * u[1] * proj, -shift - k2 * u[2] * proj, -shift - k2 * u[3] * proj]
    z_norm = d1**2 + d2**2 - (d1 - d2) ** 2 / b - (2 * k2 - k2**2) * proj**2
    exprs = {"G": z_norm, "L": z[0] ** 2 - z[2] ** 2, "M": (z[0] - z[2]) * (z[1] - z[3])}
    out = {}
    for key, expr in exprs.items():
        poly = sp.Poly(sp.expand(expr), k2)
        out[key] = tuple(poly.coeff_monomial(k2**p) for p in range(3))
    return out


def _radial_fields(b: int) -> dict:
    """The expectations of the eps > 0 spectrum at one gain: ``forward L``, ``forward M`` and
    ``backward X p`` (the ``kappa^(2p)`` part of :func:`_backward_parts`)."""
    forward, parts = _expressions(b), _backward_parts(b)
    fields = {"forward L": forward["forward L"], "forward M": forward["forward M"]}
    fields.update((f"backward {sub} {p}", e) for sub in SUBSPACES for p, e in enumerate(parts[sub]))
    return fields


# --------------------------------------------------------------------------- reduction to two coordinates
@lru_cache(maxsize=None)
def _gauss_moment(indices: tuple, m: int):
    """``E[prod_k X_{indices_k}]`` for ``X ~ N(0, G_m)`` (Isserlis), ``G_m = I - 11^T/m``."""
    if not indices:
        return sp.Integer(1)
    if len(indices) % 2:
        return sp.Integer(0)
    first, rest = indices[0], indices[1:]
    total = sp.Integer(0)
    for k, other in enumerate(rest):
        cov = 1 - sp.Rational(1, m) if other == first else -sp.Rational(1, m)
        total += cov * _gauss_moment(tuple(sorted(rest[:k] + rest[k + 1 :])), m)
    return total


def _sphere_moment(exponents: tuple, m: int):
    """``E[prod_i w_i^{j_i}]`` for ``w`` uniform on the unit sphere of ``1^perp`` in ``R^m``.

    ``w = G z / |G z|`` with ``|G z| ~ chi_{m-1}`` independent of ``w``.
    """
    total = sum(exponents)
    if total % 2:
        return sp.Integer(0)
    indices = tuple(sorted(i for i, j in enumerate(exponents) for _ in range(j)))
    chi = sp.Integer(1)
    for k in range(total // 2):
        chi *= m - 1 + 2 * k
    return _gauss_moment(indices, m) / chi


@lru_cache(maxsize=None)
def _conditional(rest_exponents: tuple, given: tuple, b: int):
    """``E[prod s_rest^k | s_given]`` as a polynomial in the given coordinates (exact)."""
    given_syms = [_S[i] for i in given]
    m = b - len(given)
    mu = -sum(given_syms, sp.Integer(0)) / m
    radius2 = b - sum((s**2 for s in given_syms), sp.Integer(0)) - m * mu**2
    result = sp.Integer(0)
    ranges = [range(k + 1) for k in rest_exponents]

    def walk(i, js):
        nonlocal result
        if i == len(ranges):
            total = sum(js)
            if total % 2:
                return
            coef = sp.Integer(1)
            for k, j in zip(rest_exponents, js):
                coef *= sp.binomial(k, j)
            result += coef * mu ** (sum(rest_exponents) - total) * _sphere_moment(tuple(js), m) * radius2 ** (total // 2)
            return
        for j in ranges[i]:
            walk(i + 1, js + [j])

    walk(0, [])
    return sp.expand(result)


def reduce_expectation(expr, b: int) -> dict:
    """Reduce ``E[expr]`` to one- and two-coordinate expectations (exact rational coefficients).

    ``expr`` is a polynomial in ``s1..s4`` and the nonlinear factors ``F1, F2``
    (``f(s1), f(s2)``), ``D1, D2`` (``D(s1), D(s2)``).  Returns
    ``{key: coefficient}`` where ``key`` is ``()`` (a constant),
    ``((i, j, p),)`` for ``E[f^i D^j s^p]`` or ``((i1, j1, p1), (i2, j2, p2))``
    for ``E[f^i1 D^j1 s1^p1 f^i2 D^j2 s2^p2]``.
    """
    gens = (*_F, *_D, *_S)
    poly = sp.Poly(sp.expand(expr), *gens)
    out = defaultdict(lambda: sp.Integer(0))
    for monom, coef in poly.terms():
        a1, a2, b1, b2, k1, k2, k3, k4 = monom
        if a1 + b1 == 0 and a2 + b2 > 0:  # exchangeability: put the nonlinear coordinate first
            a1, a2, b1, b2, k1, k2 = a2, a1, b2, b1, k2, k1
        exps = [k1, k2, k3, k4]
        if a1 + b1 and a2 + b2:
            given = (0, 1)
        elif a1 + b1:
            given = (0,)
        else:
            given = ()
        rest = tuple(k for i, k in enumerate(exps) if i not in given and k)
        cond = _conditional(rest, given, b) if rest else sp.Integer(1)
        for i in given:
            cond = cond * _S[i] ** exps[i]
        cond_poly = sp.Poly(sp.expand(cond), *[_S[i] for i in given]) if given else None
        if not given:
            out[()] += coef * cond
            continue
        for powers, c in cond_poly.terms():
            if len(given) == 1:
                key = ((a1, b1, powers[0]),)
            else:
                key = ((a1, b1, powers[0]), (a2, b2, powers[1]))
                if key[1] < key[0]:
                    key = (key[1], key[0])
            out[key] += coef * c
    return {k: v for k, v in out.items() if v != 0}


# --------------------------------------------------------------------------- evaluation
_PRODUCTS: dict = {}


def _product_activation(act: Activation, f_power: int, d_power: int) -> Activation:
    """``phi^i phi'^j`` as an Activation with the same kinks (kept alive for stable ids)."""
    key = (id(act), f_power, d_power)
    if key not in _PRODUCTS:
        pieces = []
        for p in act.pieces:
            expr = p.expr**f_power * p.derivative**d_power
            pieces.append(Piece(p.lo, p.hi, expr, sp.diff(expr, _x), p.regular_lo, p.regular_hi, p.root_lo, p.root_hi))
        whole = act.expr**f_power * act.derivative**d_power
        product = Activation(name=f"{act.label}^{f_power}*d{act.label}^{d_power}", expr=whole, pieces=tuple(pieces))
        _PRODUCTS[key] = (act, product)
    return _PRODUCTS[key][1]


#: reduce_expectation results by (expression, B): the eps > 0 spectrum asks for them at every radial node.
_REDUCED: dict = {}


def _reduced(expr, b: int) -> dict:
    key = (expr, b)
    if key not in _REDUCED:
        _REDUCED[key] = reduce_expectation(expr, b)
    return _REDUCED[key]


def _rational(coefficient):
    """An exact rational coefficient of :func:`reduce_expectation` at the working precision."""
    r = sp.Rational(coefficient)
    return mpmath.mpf(r.p) / r.q


def _keys_of(exprs, b: int) -> list:
    """The one- and two-coordinate keys that the expectations of ``exprs`` reduce to."""
    keys = {}
    for expr in exprs:
        keys.update(dict.fromkeys(_reduced(expr, b)))
    return list(keys)


class _Evaluator:
    """Evaluates reduced expectations at one gain on one sphere law, memoising integrands."""

    def __init__(self, settings: Settings, law: SphereLaw, method: str, gain=None, rtol=None):
        self.settings = settings
        self.law = law
        self.method = method
        self.gain = settings.gamma if gain is None else gain  # gamma kappa at eps > 0
        self.closed = {}
        self.integrands = {}
        self.rtol = moment_tolerance(settings) if rtol is None else rtol
        self.center = mpmath.mpf(0)  # f - center stands for f (:func:`_values_of`)
        self.centred_law = None  # the law the centred keys are evaluated on, once centred

    def integrand(self, spec, centred: bool = False) -> Integrand:
        """``f^i s^p`` for ``spec = (i, 0, p)`` (``(f - center)^i s^p`` if ``centred``), ``D^j s^p`` for
        ``(0, j, p)`` and ``f^i D^j s^p`` otherwise (which has no centred form)."""
        i, j, p = spec
        if (spec, centred) not in self.integrands:
            act, gamma, gain, beta = self.settings.activation, self.settings.gamma, self.gain, self.settings.beta
            if j == 0:
                f = Integrand(act, gain, beta, power=p, center=self.center if centred else mpmath.mpf(0), exponent=i)
            elif i == 0:
                f = Integrand(act, gain, beta, derivative=True, power=p, scale=gamma**j, exponent=j)
            elif centred:
                raise ValueError(f"internal: the key {spec} mixes f and phi' and has no centred form")
            else:
                f = Integrand(_product_activation(act, i, j), gain, beta, power=p, scale=gamma**j)
            self.integrands[spec, centred] = f
        return self.integrands[spec, centred]

    def centre_on(self, center, law):
        """Let ``f - center``, on ``law``, stand for ``f`` in the keys evaluated ``centred``."""
        self.center, self.centred_law = center, law
        self.integrands = {key: f for key, f in self.integrands.items() if not key[1]}

    def _degree(self, spec):
        """Homogeneity degree of ``f^i D^j s^p`` (an int or an mpf; None where it is ``<= -1``,
        where the sphere expectation of ``|s|^p`` diverges)."""
        alpha = self.settings.activation.degree
        i, j, p = spec
        deg = i * alpha + j * (alpha - 1) + p
        return closed_forms.real_number(deg) if deg > -1 else None

    def expectation(self, expr, kappa=None) -> Estimate:
        """``E[expr]`` at this evaluator's gain; with ``kappa`` (closed forms only), at gain
        ``gain * kappa`` by homogeneity: each key ``f^i D^j s^p`` scales as ``kappa^(i alpha + j (alpha - 1))``."""
        keys = list(_reduced(expr, self.settings.batch_size))
        if self.method == "closed form":
            values = {key: self._closed_cached(key) for key in keys}
        else:
            values = _values_of([self], keys, centre=_shift_invariant(expr))[0]
        return self.combine(expr, values, kappa)

    def combine(self, expr, values: dict, kappa=None) -> Estimate:
        """``E[expr]`` from the values of its keys (``kappa`` as in :meth:`expectation`)."""
        total = Estimate(mpmath.mpf(0))
        alpha = self.settings.activation.degree
        for key, coef in _reduced(expr, self.settings.batch_size).items():
            c = _rational(coef)
            if kappa is not None:
                c = c * kappa ** closed_forms.real_number(sum(i * alpha + j * (alpha - 1) for i, j, _ in key))
            total = total + c * values[key]
        return total

    def _closed_cached(self, key):
        if key not in self.closed:
            self.closed[key] = self._closed(key)
        return self.closed[key]

    def _closed(self, key):
        if not key:
            return Estimate(mpmath.mpf(1))
        n = self.law.n
        hom = []
        for spec in key:
            f = self.integrand(spec)
            deg = self._degree(spec)
            if deg is None:
                raise BnsymInputError(f"method='closed form' needs homogeneity degrees > -1 (the expectation of {spec} diverges)")
            hom.append((f.evaluate(mpmath.mpf(1)), f.evaluate(mpmath.mpf(-1)), deg))
        if len(hom) == 1:
            return Estimate(closed_forms.homogeneous_mean(*hom[0], n))
        return Estimate(closed_forms.homogeneous_pair(hom[0], hom[1], n))


def _shift_invariant(expr) -> bool:
    """Whether ``expr`` is unchanged when ``F1, F2`` become ``F1 + c, F2 + c`` (exact, sympy)."""
    if expr not in _INVARIANT:
        c = sp.Symbol("c")
        _INVARIANT[expr] = sp.expand(expr.subs({_F[0]: _F[0] + c, _F[1]: _F[1] + c}, simultaneous=True) - expr) == 0
    return _INVARIANT[expr]


_INVARIANT: dict = {}


def _values_of(evaluators, keys, *, centre: bool) -> list:
    """By quadrature, the values of ``keys`` at each evaluator's gain (one dict per evaluator), all
    gains in one pass: one call of the sphere law for the one-coordinate keys and one for the
    pairs, sharing their convergence loops (the evaluators share one law and one tolerance).

    With ``centre`` (every expression the keys come from is :func:`_shift_invariant`: all of this
    module's depend on ``f`` only through ``f_1 - f_2``, docs/theory.md section 6.2) the keys that
    hold ``f`` alone are evaluated with ``f - c`` for ``f``, ``c`` about ``E[f]``
    (:func:`~bnsym.numerics.moments.centred_integrands`, on a law at more working digits where
    ``f`` is nearly constant; once per evaluator): their uncentred terms would cancel (tanh at
    ``beta = 20``: ``f`` within ``e^-29`` of 1)."""
    law, rtol = evaluators[0].law, evaluators[0].rtol
    holds_f = [k for k in keys if any(i and not j for i, j, _ in k)]
    if centre and holds_f:
        if any(ev.centred_law is None for ev in evaluators):
            fs = [Integrand(ev.settings.activation, ev.gain, ev.settings.beta) for ev in evaluators]
            chosen, centred, _ = centred_integrands(law, fs, rtol)
            for ev, g in zip(evaluators, centred):
                ev.centre_on(g.center, chosen)
        groups = [(holds_f, evaluators[0].centred_law, True), ([k for k in keys if k not in holds_f], law, False)]
    else:
        groups = [(list(keys), law, False)]
    out = [{(): Estimate(mpmath.mpf(1))} if () in keys else {} for _ in evaluators]
    for chosen, on, centred in groups:
        singles = [k for k in chosen if len(k) == 1]
        pairs = [k for k in chosen if len(k) == 2]
        if singles:
            results = iter(on.expect_with_norms([ev.integrand(k[0], centred) for ev in evaluators for k in singles], rtol))
            for values in out:
                values.update((k, first) for k, (first, _) in zip(singles, results))
        if pairs:
            results = iter(on.expect_pairs(
                [(ev.integrand(k[0], centred), ev.integrand(k[1], centred)) for ev in evaluators for k in pairs], rtol))
            for values in out:
                values.update(zip(pairs, results))
    return out
