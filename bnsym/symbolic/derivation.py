r"""``derive``: closed-form mean-field quantities as functions of the batch size.

At ``eps = 0`` (docs/theory.md sections 4 and 5), with ``n = B - 1`` and the
sphere moments of :mod:`bnsym.symbolic.moments`,

    q*       = E[f(s_a)^2],        c* = E[f(s_a) f(s_b)],     f(s) = phi(gamma s + beta),
    lambda_G = [(B-1) E[D_a^2] + E[D_a D_b] - E[s_a^2 D_a^2] + E[s_a s_b D_a D_b]] / ((q* - c*)(B - 3)),

(the bracket is the engine's own :func:`bnsym.numerics.backward.bracket`), valid for
``B >= 4``; ``lambda_G = 0`` at ``B = 2`` and ``oo`` at ``B = 3``.  Closed
forms exist when ``phi(gamma s + beta)`` is a sum of piecewise power
functions: every polynomial (any ``gamma``, ``beta``, also symbolic), and
identity, ReLU, ``relu_power`` with integer exponent, leaky ReLU (slope
numeric or symbolic) and ``|x|`` at ``beta = 0`` (any ``gamma``; lambda_G
does not depend on it, and ``q*``, ``c*`` scale as ``|gamma|^(2 alpha)``).

Where there is no closed form (other activations, ``beta != 0`` for the
kinked ones, ``eps > 0``), :func:`derive` says so: with a numeric batch size
and numeric parameters it returns a :class:`Derivation` with ``expr = None``
holding the engine's numeric value (and its error); with a symbolic batch
size it raises :class:`~bnsym.errors.BnsymInputError`.  It never returns an
unevaluated integral.

Cost: a fraction of a second to a few seconds (sympy simplification and the
``B -> oo`` series dominate).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property

import mpmath
import sympy as sp

from bnsym import validation
from bnsym.numerics.backward import bracket
from bnsym.errors import BnsymInputError
from bnsym.symbolic.expressions import symbolic_activation
from bnsym.symbolic.kernels import power_terms
from bnsym.symbolic.forward import INTEGRANDS, sphere_expectation
from bnsym.symbolic.moments import closed_sphere_moments
from bnsym.symbolic.cross import CROSS_BATCH, cross_batch_closed_form

#: The default symbolic batch size.
B = sp.Symbol("B", integer=True, positive=True)

#: Highest degree of a piecewise power activation derived in closed form (work grows fast with it).
MAX_SYMBOLIC_DEGREE = 12

#: Above this batch size a concrete B is derived in a symbol and substituted unevaluated.
SYMBOLIC_ABOVE = 1000

#: Largest number of terms of the 1/B series (sympy's series cost grows quickly with it).
MAX_SERIES_TERMS = 12

#: Quantity names and what they mean.
QUANTITIES = {
    "q": "q*, the diagonal of the BSB1 fixed point, E[f(s_a)^2]",
    "c": "c*, the off-diagonal of the BSB1 fixed point, E[f(s_a) f(s_b)]",
    "spread": "q* - c*, the variance of the centred pre-activations per sigma_w^2",
    "correlation": "c*/q*, the correlation at the fixed point",
    "lambda_G": "the gradient explosion rate per layer (eigenvalue of the backward map on G)",
    "lambda_L": "the forward eigenvalue on L = {G diag(v) G} (convergence rate of the Gram matrix, docs/theory.md section 6)",
    "lambda_M": "the forward eigenvalue on M, the rest of G Sym(B) G (docs/theory.md section 6)",
    "c_x": "the constant entry of the cross-batch block at the CBSB1 fixed point, E[f(s_a)]^2 (docs/theory.md section 13)",
    "lambda_x": "the cross-batch decorrelation rate, forward and backward (docs/theory.md section 13)",
}
_FORWARD = ("lambda_L", "lambda_M")
_ALIASES = {"q*": "q", "c*": "c", "lambda": "lambda_G", "lambdag": "lambda_G", "rate": "lambda_G", "lambda_g": "lambda_G"}


@dataclass(frozen=True)
class Derivation:
    r"""A derived quantity: exact ``expr`` in sympy, or the engine's number where none exists.

    ``expr``: the closed form (``None`` when there is none; then ``numeric``
    holds the engine's result and ``reason`` says why).  ``batch_size``: the
    symbol or integer it was derived for; ``symbols``: its free symbols,
    a symbolic batch size first, even where ``expr`` does not depend on it
    (the argument order of :attr:`mp`).  ``limit``: the
    ``B -> oo`` limit and ``series`` the first terms of the expansion in
    ``1/B`` (``c_0 + c_1/B + c_2/B^2 ...``, one entry per power), for a
    symbolic batch size.  ``domain`` states where the formula holds.
    ``value``/``error``: the number when ``expr`` has no free symbols (error
    0, exact) or the engine's value and error.
    """

    activation: str
    quantity: str
    batch_size: object
    expr: sp.Expr | None
    limit: sp.Expr | None = None
    series: tuple | None = None
    numeric: object = field(default=None, repr=False)
    reason: str = ""
    domain: str = ""
    gamma: object = 1
    beta: object = 0
    eps: object = 0
    dps: int = 30

    @property
    def closed_form(self) -> bool:
        return self.expr is not None

    @property
    def symbols(self) -> tuple:
        if self.expr is None:
            return ()
        free = self.expr.free_symbols
        first = [self.batch_size] if isinstance(self.batch_size, sp.Symbol) else []
        return tuple(first + sorted(free - set(first), key=lambda s: s.name))

    @property
    def latex(self) -> str | None:
        """LaTeX of ``expr`` (``None`` without a closed form)."""
        return None if self.expr is None else sp.latex(self.expr)

    @cached_property
    def mp(self):
        """``expr`` as an mpmath callable of :attr:`symbols` (in that order)."""
        if self.expr is None:
            raise BnsymInputError(f"{self.quantity} of {self.activation} has no closed form ({self.reason}); use .value")
        return sp.lambdify(self.symbols, self.expr, modules="mpmath")

    def evaluate(self, dps: int = 30, **values) -> mpmath.mpf:
        """``expr`` at ``values`` (keyword per symbol name, e.g. ``B=16, a=0.1``) with ``dps`` digits."""
        names = [s.name for s in self.symbols]
        missing = [n for n in names if n not in values]
        unknown = [n for n in values if n not in names]
        if missing or unknown:
            raise BnsymInputError(
                f"values: {self.quantity} depends on {', '.join(names) or 'nothing'}; "
                + (f"missing {', '.join(missing)}" if missing else f"unknown {', '.join(unknown)}")
            )
        working_dps = validation.dps(dps) + 10
        with mpmath.workdps(working_dps):
            args = [_mp_number(values[n], n, working_dps) for n in names]
            return self.mp(*args)  # carries the working precision

    @property
    def value(self):
        """The number, when there is one (closed form without free symbols, or the engine's)."""
        if self.expr is None:
            return _numeric_value(self.numeric, self.quantity)[0]
        if self.expr.free_symbols:
            raise BnsymInputError(f"{self.quantity} depends on {', '.join(s.name for s in self.symbols)}; use .evaluate(...)")
        if not self.expr.is_finite:
            return mpmath.inf
        with mpmath.workdps(self.dps + 10):
            return mpmath.mpf(sp.N(self.expr, self.dps + 10))

    @property
    def error(self):
        """0 for a closed form; the engine's error estimate otherwise."""
        if self.expr is None:
            return _numeric_value(self.numeric, self.quantity)[1]
        return mpmath.mpf(0)

    def __str__(self) -> str:
        if self.expr is None:
            v, e = _numeric_value(self.numeric, self.quantity)
            return f"{self.quantity} = {mpmath.nstr(v, 20)} +- {mpmath.nstr(e, 2)} (no closed form: {self.reason})"
        return f"{self.quantity} = {self.expr}"


def _mp_number(value, name, working_dps):
    """``value`` as an mpf (sympy numbers evaluated to ``working_dps`` + 5 digits)."""
    if isinstance(value, sp.Basic):
        return mpmath.mpf(sp.N(value, working_dps + 5))
    return validation.real(value, name=name)


def _numeric_value(result, quantity):
    if quantity == "c":
        return result.c, result.c_error
    if quantity == "spread":
        return result.spread, result.spread_error
    if quantity == "correlation":
        return result.c / result.value, (result.c_error + abs(result.correlation) * result.error) / result.value
    return result.value, result.error


# ----------------------------------------------------------------------- derive
def derive(
    activation,
    quantity: str = "lambda_G",
    batch_size=B,
    *,
    gamma=1,
    beta=0,
    eps=0,
    series_terms: int = 3,
    dps: int = 30,
    simplify: bool = True,
    **parameters,
) -> Derivation:
    r"""Derive ``quantity`` for ``activation`` as a closed form in the batch size.

    ``activation``: a name (``"relu"``, ``"leaky_relu(a)"`` with a symbolic
    slope, ``"relu_power(3)"``), an expression in ``x`` or an Activation;
    named parameters may also be given as keywords (``slope=Symbol("a")``).
    ``quantity``: one of :data:`QUANTITIES` (``"q"``, ``"c"``, ``"spread"``,
    ``"correlation"``, ``"lambda_G"``, and the forward eigenvalues
    ``"lambda_L"``, ``"lambda_M"`` of :mod:`bnsym.symbolic.forward`, and the cross-batch ``"c_x"``,
    ``"lambda_x"`` of :mod:`bnsym.symbolic.cross`, docs/theory.md section 13).  ``batch_size``: a sympy Symbol
    (default ``B``; the result holds for every integer ``B >= 2``, and for
    lambda_G ``B >= 4``), an integer ``>= 2`` or ``oo``.  ``gamma`` (nonzero),
    ``beta``: numbers or symbols; ``eps``: only 0 has closed forms.
    ``series_terms``: how many terms of the ``1/B`` expansion to keep.
    ``dps``: digits of the engine's value where no closed form exists.

    >>> d = derive("identity", "lambda_G")
    >>> d.expr, d.limit
    ((B - 2)/(B - 3), 1)
    >>> derive("relu", "q", gamma=sp.Symbol("gamma", positive=True)).expr
    gamma**2/2
    """
    key = _quantity(quantity)
    series_terms = validation.integer(series_terms, name="series_terms", minimum=1)
    if series_terms > MAX_SERIES_TERMS:
        raise BnsymInputError(f"series_terms must be at most {MAX_SERIES_TERMS} (sympy's series cost grows fast), got {series_terms}")
    dps = validation.dps(dps)
    user_b, b = _batch_size(batch_size)
    concrete = None
    if isinstance(b, sp.Integer) and b > SYMBOLIC_ABOVE:
        # exact integer arithmetic in B (factorials, huge rationals) would take minutes: derive in a
        # symbol and put the number in unevaluated at the end (values are then computed numerically)
        concrete, b = b, sp.Symbol("B", integer=True, positive=True)
    act = symbolic_activation(activation, **parameters)
    act.derivative  # refuses what sympy cannot differentiate
    g = _number_or_symbol(gamma, "gamma", nonzero=True)
    be = _number_or_symbol(beta, "beta")
    e = _number_or_symbol(eps, "eps", nonnegative=True)
    terms = power_terms(act.expr, g, be) if e == 0 else None
    degree = max((term.degree for term in terms.terms), default=0) if terms is not None else 0
    if terms is None or degree > MAX_SYMBOLIC_DEGREE:
        reason = _no_closed_form_reason(act, be, e) if terms is None else (
            f"degree {degree} > {MAX_SYMBOLIC_DEGREE}: sympy's algebra of the Gamma ratios would take minutes")
        return _numeric(act, key, user_b, b, g, be, e, dps, reason)
    n = b - 1
    expr, domain = _closed_form(key, terms, b, n)
    if simplify:
        expr = _simplify(expr, b)
    limit = series = None
    if concrete is not None:
        with sp.evaluate(False):
            expr = expr.xreplace({b: concrete})
        b = concrete
    if isinstance(b, sp.Symbol):
        if expr.has(sp.gamma):
            # sympy cannot expand Gamma ratios at infinity: use their Stirling series (moments.chi_ratio)
            asymptotic, _ = _closed_form(key, terms, b, n, order=series_terms + 1)
            series = _series(asymptotic, b, series_terms)
            limit = series[0]
        else:
            limit = _coefficient(sp.limit(expr, b, sp.oo)) if expr.has(b) else expr
            series = _series(expr, b, series_terms)
    back = {b: user_b} if isinstance(b, sp.Symbol) else {}
    return Derivation(
        activation=act.label,
        quantity=key,
        batch_size=user_b,
        expr=expr.xreplace(back),
        limit=None if limit is None else limit.xreplace(back),
        series=None if series is None else tuple(t.xreplace(back) for t in series),
        reason="closed form: sphere moments of piecewise power functions (docs/theory.md section 3)",
        domain=domain if isinstance(b, sp.Symbol) else f"B = {user_b}",
        dps=dps,
        gamma=g,
        beta=be,
        eps=e,
    )


def _quantity(quantity):
    if not isinstance(quantity, str):
        raise BnsymInputError(f"quantity must be one of {', '.join(QUANTITIES)}, got {quantity!r}")
    key = _ALIASES.get(quantity.strip().lower(), quantity.strip())
    if key not in QUANTITIES:
        raise BnsymInputError(f"quantity must be one of {', '.join(QUANTITIES)}, got {quantity!r}")
    return key


def _batch_size(value):
    """``(as given, internal)``: a Symbol becomes an integer positive one; integers are checked >= 2."""
    if isinstance(value, sp.Symbol):
        return value, sp.Symbol(value.name, integer=True, positive=True)
    if value == sp.oo or (isinstance(value, float) and value == math.inf):
        return sp.oo, sp.oo
    if isinstance(value, sp.Integer):
        value = int(value)
    if isinstance(value, sp.Basic):
        raise BnsymInputError(f"batch_size must be a sympy Symbol, an integer >= 2 or oo, got {value}")
    b = validation.batch_size(value)
    if b == math.inf:
        return sp.oo, sp.oo
    return b, sp.Integer(b)


def _number_or_symbol(value, name, *, nonzero=False, nonnegative=False):
    if isinstance(value, sp.Basic) and value.free_symbols:
        return value
    if isinstance(value, sp.Basic):
        number = value
    else:
        validation.real(value, name=name, nonzero=nonzero, nonnegative=nonnegative)
        number = sp.nsimplify(sp.sympify(str(value), rational=True), rational=True)
    if not (number.is_real and number.is_finite):
        raise BnsymInputError(f"{name} must be a finite real number or a sympy symbol, got {value!r}")
    if nonzero and number == 0:
        raise BnsymInputError(f"{name} must be nonzero, got {value!r}")
    if nonnegative and number < 0:
        raise BnsymInputError(f"{name} must be >= 0, got {value!r}")
    return number


def _closed_form(key, terms, b, n, order=None):
    if key in CROSS_BATCH:
        return cross_batch_closed_form(key, terms, b, n, order)
    moments = closed_sphere_moments(terms, n, gradient=key == "lambda_G", order=order)
    if key in _FORWARD:
        if b in (2, 3):
            raise BnsymInputError(f"batch_size: {key} is derived for B >= 4 (the subspace M needs four samples), got {b}")
        factor = sp.Rational(1, 2) if b == sp.oo else n / (2 * b)
        expectation = sphere_expectation(INTEGRANDS[key], terms, n, order)
        return factor * expectation / moments.spread, "batch sizes B >= 4 (eps = 0)"
    if key == "q":
        return moments.q, "every batch size B >= 2"
    if key == "c":
        return moments.c, "every batch size B >= 2"
    if key == "spread":
        return moments.spread, "every batch size B >= 2"
    if key == "correlation":
        return moments.c / moments.q, "every batch size B >= 2"
    # lambda_G
    if b == sp.oo:
        return moments.d2 / moments.spread, "B = oo"
    if b == 2:
        return sp.Integer(0), "B = 2 (G - u u^T = 0: no gradient passes batch norm)"
    if b == 3:
        return sp.oo, "B = 3 (E[1/chi^2_2] diverges at eps = 0)"
    return bracket(moments, b) / (moments.spread * (b - 3)), "batch sizes B >= 4 (eps = 0)"


def _simplify(expr, b):
    """A compact form of ``expr``: a quotient of factored polynomials in ``B``, ``sqrt(B)``,
    ``sqrt(B - 2)``, ``theta = acos(1/(B-1))`` (``acos(-1/(B-1)) = pi - theta``) and the parameters.

    Rational-function arithmetic (``cancel``, ``factor``, reduction by ``sqrt(B)^2 = B``)
    instead of ``sympy.simplify``: the same result class, a hundred times faster.
    """
    if not isinstance(b, sp.Symbol):
        return sp.factor_terms(sp.simplify(expr))
    theta = sp.Symbol("theta", positive=True)
    p, q = sp.Symbol("P", positive=True), sp.Symbol("Q", positive=True)
    e = expr.xreplace({sp.acos(-1 / (b - 1)): sp.pi - theta})
    for base, root in ((b, p), (b - 2, q)):
        e = e.replace(
            lambda t, base=base: t.is_Pow and t.base == base and t.exp.is_Rational and t.exp.q == 2,
            lambda t, root=root: root ** (2 * t.exp),
        )
    numerator, denominator = sp.fraction(sp.cancel(sp.together(e)))

    def reduce(z):
        return sp.rem(sp.rem(sp.expand(z), p**2 - b, p), q**2 - (b - 2), q)

    out = sp.factor(reduce(numerator)) / sp.factor(reduce(denominator))
    return out.xreplace({theta: sp.acos(1 / (b - 1)), p: sp.sqrt(b), q: sp.sqrt(b - 2)})


def _coefficient(expr):
    return sp.factor(sp.cancel(sp.together(expr)))


def _series(expr, b, terms):
    """``(c_0, c_1/B, ..., c_{terms-1}/B^(terms-1))`` of the expansion at ``B = oo``."""
    if terms < 1:
        raise BnsymInputError(f"series_terms must be >= 1, got {terms}")
    t = sp.Symbol("t", positive=True)
    expansion = sp.series(expr.subs(b, 1 / t), t, 0, terms).removeO()
    expansion = sp.expand(expansion)
    return tuple(_coefficient(expansion.coeff(t, k)) / b**k for k in range(terms))


def _no_closed_form_reason(act, beta, eps):
    if eps != 0:
        return "eps > 0 adds a radial integral over the chi_{B-1} law"
    if beta != 0 and power_terms(act.expr) is not None:
        return f"beta = {beta} breaks the positive homogeneity of {act.label}"
    return f"{act.label}(gamma s + beta) is not a polynomial on each half-line s < 0, s > 0"


def _numeric(act, key, user_b, b, g, be, e, dps, reason):
    symbolic = [what for what, v in (("batch_size", b), ("gamma", g), ("beta", be), ("eps", e)) if isinstance(v, sp.Basic) and v.free_symbols]
    if act.parameters:
        symbolic.append("activation parameters " + ", ".join(map(str, act.parameters)))
    if symbolic or act.engine is None:
        raise BnsymInputError(
            f"{symbolic[0].split()[0] if symbolic else 'activation'}: no closed form for {key} of {act.label} ({reason}); "
            + (f"a numeric value needs numeric {', '.join(symbolic)}" if symbolic else "and the numeric engine does not accept it")
        )
    from bnsym.meanfield.bsb1 import fixed_point
    from bnsym.meanfield.gradients import gradient_explosion_rate

    batch = math.inf if b == sp.oo else int(b)
    kwargs = dict(gamma=_decimal(g), beta=_decimal(be), eps=_decimal(e), dps=dps)
    if key in _FORWARD:
        from bnsym.meanfield.linearization import spectrum

        result = spectrum(act.engine, batch, **kwargs).eigenvalue("forward", key[-1])
    elif key in CROSS_BATCH:
        from bnsym.meanfield.decorrelation import cross_batch

        result = getattr(cross_batch(act.engine, batch, **kwargs), key)
    elif key == "lambda_G":
        result = gradient_explosion_rate(act.engine, batch, **kwargs)
    else:
        result = fixed_point(act.engine, batch, **kwargs)
    return Derivation(act.label, key, user_b, None, numeric=result, reason=reason, domain=f"B = {user_b}", gamma=g, beta=be, eps=e, dps=dps)


def _decimal(number):
    """An exact sympy number as a decimal string the engine parses at full precision."""
    return str(number) if number.is_Integer else str(sp.N(number, validation.MAX_DPS + 30))
