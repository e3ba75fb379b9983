r"""The Gegenbauer coefficients of an activation, and the BSB1 quantities as series in them.

docs/theory.md section 16.  Conventions (:mod:`bnsym.numerics.gegenbauer_basis`):
``n = B - 1``, ``nu = (B - 3)/2``, ``P_l = C_l^nu / C_l^nu(1)``, ``rho = -1/n``,
``d_l = dim H_l``, ``p_l = P_l(rho)`` and ``a_l = E1[f(s) P_l(s / sqrt(n))]`` with
``f(s) = phi(gamma s + beta)``, so that ``f = sum_l a_l d_l P_l`` (orthonormal
coefficients ``sqrt(d_l) a_l``).  With ``K = terms`` (sums over ``l = 0..K-1``):

* ``q* = sum d_l a_l^2``, ``c* = sum d_l a_l^2 p_l``, ``q* - c* = sum d_l a_l^2 (1 - p_l)``;
* ``lambda_G = sum (l(l+B-3)/(B-3)) d_l a_l^2 (1 - p_l) / sum d_l a_l^2 (1 - p_l)``;
* ``lambda_L = [A1 - q* - kap (C1 - c*)] / (2 (q* - c*))``, ``kap = 2n/(B-2)``, and
  ``lambda_M = n [n P1 + (2n C1 - B c*)/(B-2)] / (B (B-3) (q* - c*))``, with
  ``A1 = n sum d_l a_l c_l``, ``C1 = n sum d_l p_l a_l c_l``, ``P1 = n sum d_l p_l b_l^2``,
  where ``b_l``, ``c_l`` are the coefficients of ``t f`` and ``t^2 f`` (three-term recurrence).

Truncation errors are **rigorous bounds** (up to the quadrature error of the moments they
use), built from Parseval remainders that are known exactly because the full second
moments are computed directly: ``R0 = E1[f^2] - sum d_l a_l^2``, ``Rb = E1[t^2 f^2] - sum d_l b_l^2``,
``Rc = E1[t^4 f^2] - sum d_l c_l^2``, and the Dirichlet remainder
``R1 = E1[(n - s^2) f'^2] - sum l(l+B-3) d_l a_l^2``; with ``M >= |P_l(rho)|`` for all
``l >= K`` (:func:`~bnsym.numerics.gegenbauer_basis.laplace_bound`):
``|tail(q*)| = R0``, ``|tail(c*)| <= M R0``, ``0 <= tail(q* - c*) <= (1 + M) R0``,
the numerator of ``lambda_G`` has a tail in ``[0, (1 + M) R1 / (B-3)]``, and by
Cauchy-Schwarz ``|tail(A1)| <= n sqrt(R0 Rc)``, ``|tail(C1)| <= n M sqrt(R0 Rc)``,
``|tail(P1)| <= n M Rb``; a ratio's bound is the largest change over the corners of its
numerator's and denominator's intervals.

Domain: finite ``B >= 4``, ``eps = 0`` (``sigma_w`` is checked and drops out).  Cost: one
call of the sphere routine on ``terms + 2`` monomial integrands (a second of quadrature
at ``dps = 15`` for smooth ``phi``), plus ``O(terms^2)`` arithmetic.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import mpmath

from bnsym import validation
from bnsym.estimate import QUADRATURE, Estimate, Value
from bnsym.meanfield.bsb1 import moment_tolerance
from bnsym.meanfield.results import Settings, make_settings
from bnsym.numerics.gegenbauer_basis import (
    gegenbauer_coefficients,
    harmonic_dimension,
    laplace_bound,
    normalised_gegenbauer,
)
from bnsym.text import ShownAsText, error_text, number_text, table_text

#: The normalisation of the coefficients, stated in every result.
NORMALISATION = (
    "a_l = E1[f(s) P_l(s/sqrt(B-1))], P_l = C_l^((B-3)/2)/C_l^((B-3)/2)(1), "
    "f = sum_l a_l dimH_l P_l; orthonormal coefficients sqrt(dimH_l) a_l"
)


@dataclass(frozen=True)
class SeriesValue(Value):
    """A quantity summed over ``terms`` Gegenbauer degrees.

    ``error = truncation + quadrature``; ``truncation`` is a rigorous bound on the
    omitted tail (docs/theory.md section 16), ``quadrature`` the propagated error of the
    coefficients; ``meaning`` is ``"quadrature"`` (an estimate built on the quadrature's).
    """

    value: mpmath.mpf
    error: mpmath.mpf
    truncation: mpmath.mpf = field(default_factory=mpmath.mpf)
    quadrature: mpmath.mpf = field(default_factory=mpmath.mpf)
    name: str = ""

    def as_dict(self) -> dict:
        d = super().as_dict()
        d.update(name=self.name, truncation=float(self.truncation), quadrature=float(self.quadrature), bound="rigorous")
        return d


@dataclass(frozen=True)
class GegenbauerSeries(ShownAsText):
    """The coefficients ``a_l`` (``l = 0..terms+1``, Estimates), their dimensions and the series values.

    ``q``, ``c``, ``spread`` (``q* - c*``), ``rate`` (lambda_G), ``forward_L``, ``forward_M``
    are :class:`SeriesValue`; the ratios are ``None`` when ``terms = 1`` (the truncated
    ``q* - c*`` is 0).  ``remainders``: the Parseval remainders ``R0, Rb, Rc, R1`` and the bound ``M``.
    """

    settings: Settings
    terms: int
    coefficients: tuple
    dimensions: tuple
    q: SeriesValue
    c: SeriesValue
    spread: SeriesValue
    rate: SeriesValue | None
    forward_L: SeriesValue | None
    forward_M: SeriesValue | None
    remainders: dict
    normalisation: str = NORMALISATION

    @property
    def orthonormal(self) -> tuple:
        """``sqrt(dim H_l) a_l``: the coefficients in the orthonormal basis (``sum of squares = q*``)."""
        return tuple(mpmath.sqrt(d) * a.value for a, d in zip(self.coefficients, self.dimensions))

    def values(self) -> dict:
        """``{name: SeriesValue}`` of the series present."""
        items = {"q": self.q, "c": self.c, "spread": self.spread, "lambda_G": self.rate,
                 "forward_L": self.forward_L, "forward_M": self.forward_M}
        return {k: v for k, v in items.items() if v is not None}

    def text(self, show: int = 10) -> str:
        """The settings, the first ``show`` coefficients and the series values with their bounds (what
        ``bnsym gegenbauer`` prints; ``str`` shows 10 coefficients)."""
        d = self.settings.dps
        head = self.settings.line(detail=f"{self.terms} terms")
        rows = [(str(l), number_text(a.value, d), number_text(o, d))
                for l, (a, o) in enumerate(zip(self.coefficients[: max(show, 0)], self.orthonormal))]
        coefficients = table_text(rows, header=("l", "a_l", "sqrt(dimH_l) a_l"))
        rows = [(name, number_text(v.value, d), error_text(v.truncation), error_text(v.quadrature))
                for name, v in self.values().items()]
        series = table_text(rows, header=("series", "value", "truncation bound", "quadrature error"))
        return f"{head}\nnormalisation: {self.normalisation}\n{coefficients}\n\n{series}"

    def __str__(self) -> str:
        return self.text()

    def as_dict(self) -> dict:
        d = self.settings.dps
        return {
            "settings": self.settings.as_dict(),
            "terms": self.terms,
            "normalisation": self.normalisation,
            "coefficients": [
                {"l": l, "a": mpmath.nstr(a.value, d), "error": mpmath.nstr(a.error, 2), "dimH": mpmath.nstr(dim, d),
                 "orthonormal": mpmath.nstr(o, d)}
                for l, (a, dim, o) in enumerate(zip(self.coefficients, self.dimensions, self.orthonormal))
            ],
            "series": {k: v.as_dict() for k, v in self.values().items()},
            "remainders": {k: float(v) for k, v in self.remainders.items()},
        }


def gegenbauer(activation, batch_size, *, gamma=1, beta=0, sigma_w=1, terms=40, dps=15) -> GegenbauerSeries:
    r"""Gegenbauer coefficients of ``f(s) = phi(gamma s + beta)`` and the series for the BSB1 quantities.

    ``batch_size``: finite integer ``>= 4``; ``terms``: number of degrees ``K >= 1`` summed
    (``l = 0..K-1``; the coefficients are returned up to ``l = K + 1``, which the forward
    eigenvalues use); ``dps``: digits of the coefficients' quadrature.  Returns
    :class:`GegenbauerSeries`, each series value with a rigorous truncation bound
    (docs/theory.md section 16).  Smooth activations converge geometrically; kinked ones
    (ReLU) algebraically, and their bounds say so.  Cost: see the module docstring.

    >>> s = gegenbauer("identity", 10, terms=3)
    >>> mpmath.nstr(s.rate.value, 12), s.rate.truncation < 1e-30   # (B-2)/(B-3) = 8/7: the series ends at l = 1
    ('1.14285714286', True)
    """
    validation.finite_batch_size(batch_size, minimum=4, why="the Gegenbauer series")
    settings = make_settings(activation, batch_size, gamma=gamma, beta=beta, sigma_w=sigma_w, dps=dps)
    k = validation.integer(terms, name="terms", minimum=1)
    return series_from_settings(settings, k)


def series_from_settings(settings: Settings, terms: int) -> GegenbauerSeries:
    """:func:`gegenbauer` for validated settings (finite ``B >= 4``, ``eps = 0``)."""
    b, wdps = settings.batch_size, settings.working_dps
    coeffs, moments, guard = gegenbauer_coefficients(
        settings.activation, b, settings.gamma, settings.beta, terms + 1, moment_tolerance(settings), wdps
    )
    with mpmath.workdps(wdps + guard):
        return _series(settings, terms, coeffs, moments)


def _series(settings, k, a, moments):
    b = settings.batch_size
    n = b - 1
    rho = -mpmath.mpf(1) / n
    top = k + 2
    dims = [harmonic_dimension(l, b) for l in range(top)]
    p = [normalised_gegenbauer(l, b, rho) for l in range(top)]
    up = [mpmath.mpf(l + b - 3) / (2 * l + b - 3) for l in range(top + 1)]
    down = [mpmath.mpf(l) / (2 * l + b - 3) for l in range(top + 1)]
    zero = Estimate(mpmath.mpf(0))

    def coef(l):
        return a[l] if 0 <= l < top else zero

    bl = [down[l] * coef(l - 1) + up[l] * coef(l + 1) for l in range(k)]
    cl = [down[l] * (down[l - 1] if l else 0) * coef(l - 2) + (up[l] * down[l + 1] + down[l] * (up[l - 1] if l else 0)) * coef(l)
          + up[l] * up[l + 1] * coef(l + 2) for l in range(k)]
    rng = range(k)
    sq = [a[l] * a[l] * dims[l] for l in rng]
    q = _sum(sq)
    c = _sum(s * p[l] for l, s in zip(rng, sq))
    spread = _sum(s * (1 - p[l]) for l, s in zip(rng, sq))
    weight = [mpmath.mpf(l * (l + b - 3)) for l in rng]
    r0 = _nonnegative(moments["f2"].value - q.value)
    rb = _nonnegative(moments["tf2"].value - mpmath.fsum(dims[l] * bl[l].value ** 2 for l in rng))
    rc = _nonnegative(moments["ttf2"].value - mpmath.fsum(dims[l] * cl[l].value ** 2 for l in rng))
    r1 = _nonnegative(moments["dirichlet"].value - mpmath.fsum(w * s.value for w, s in zip(weight, sq)))
    bound = min(mpmath.mpf(1), laplace_bound(2 * (k // 2), b, rho))
    remainders = {"R0": r0, "Rb": rb, "Rc": rc, "R1": r1, "M": bound}
    out = {
        "q": _value("q", q, r0),
        "c": _value("c", c, bound * r0),
        "spread": _value("spread", spread, (1 + bound) * r0),
    }
    ratios = {"lambda_G": None, "forward_L": None, "forward_M": None}
    if spread.value > 0:
        numerator = _sum(w / (b - 3) * s * (1 - p[l]) for l, w, s in zip(rng, weight, sq))
        den = (spread, mpmath.mpf(0), (1 + bound) * r0)
        ratios["lambda_G"] = _ratio("lambda_G", (numerator, mpmath.mpf(0), (1 + bound) * r1 / (b - 3)), den)
        cross = mpmath.sqrt(r0 * rc)
        a1 = n * _sum(dims[l] * a[l] * cl[l] for l in rng)
        c1 = n * _sum(dims[l] * p[l] * a[l] * cl[l] for l in rng)
        p1 = n * _sum(dims[l] * p[l] * bl[l] * bl[l] for l in rng)
        e_a1, e_c1, e_p1 = n * cross, n * bound * cross, n * bound * rb
        kap = mpmath.mpf(2 * n) / (b - 2)
        num_l = (a1 - q - kap * (c1 - c)) / 2
        e_l = (e_a1 + r0 + kap * (e_c1 + bound * r0)) / 2
        ratios["forward_L"] = _ratio("forward_L", (num_l, -e_l, e_l), den)
        scale = mpmath.mpf(n) / (b * (b - 3))
        num_m = scale * (n * p1 + (2 * n * c1 - b * c) / (b - 2))
        e_m = scale * (n * e_p1 + (2 * n * e_c1 + b * bound * r0) / (b - 2))
        ratios["forward_M"] = _ratio("forward_M", (num_m, -e_m, e_m), den)
    return GegenbauerSeries(
        settings, k, tuple(a), tuple(dims), out["q"], out["c"], out["spread"],
        ratios["lambda_G"], ratios["forward_L"], ratios["forward_M"], remainders,
    )


def _sum(items):
    return sum(items, Estimate(mpmath.mpf(0)))


def _nonnegative(x):
    return x if x > 0 else mpmath.mpf(0)


def _value(name, est: Estimate, truncation) -> SeriesValue:
    return SeriesValue(est.value, est.error + truncation, truncation=truncation, quadrature=est.error, name=name, meaning=QUADRATURE)


def _ratio(name, numerator, denominator) -> SeriesValue:
    """``N/D`` with ``N + [lo, hi]`` and ``D + [lo, hi]`` tails: the bound is the largest corner change."""
    num, n_lo, n_hi = numerator
    den, d_lo, d_hi = denominator
    est = num / den
    corners = [(num.value + x) / (den.value + y) for x in (n_lo, n_hi) for y in (d_lo, d_hi)]
    if den.value + d_lo <= 0:
        truncation = mpmath.inf
    else:
        truncation = max(abs(v - est.value) for v in corners)
    return _value(name, est, truncation)
