"""Activation functions: parsing, derivatives, kinks and homogeneity.

An :class:`Activation` holds a sympy expression ``phi(x)`` of one real
variable together with everything the engine needs to integrate it exactly:

* ``derivative``: ``phi'(x)`` from sympy;
* ``pieces``: the real line cut at the *kinks* (points where ``phi`` or
  ``phi'`` stops being analytic) into intervals on each of which ``phi`` is one
  analytic expression; quadrature uses the kinks as breakpoints;
* ``degree``: the degree ``alpha`` of positive homogeneity
  (``phi(c x) = c**alpha phi(x)`` for ``c > 0``), or ``None``;
* ``mp`` / ``np`` callables for mpmath and NumPy evaluation.

Supported class (anything else is refused with :class:`ActivationError`):
``phi`` is real and continuous on the real line, piecewise analytic with
finitely many kinks, ``phi'`` is bounded on bounded sets, and
``log|phi(x)| = o(x**2)`` and likewise for ``phi'`` (so that every Gaussian
and sphere expectation of ``phi``, ``phi'`` and their products exists for
every gain ``gamma``).

Named activations (see :data:`NAMES`) take parameters as keywords
(``activation("leaky_relu", slope=0.2)``) or in call syntax
(``activation("leaky_relu(0.2)")``).  Any other string is parsed by sympy as
an expression in ``x``; decimals are converted to exact rationals, so
``"0.1*x"`` means ``x/10`` at every precision.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from functools import cached_property

import mpmath
import numpy as np
import sympy as sp
from sympy.parsing.sympy_parser import parse_expr, standard_transformations

from .errors import ActivationError

#: The real variable every activation is written in.
x = sp.Symbol("x", real=True)

_SELU_ALPHA = -sp.sqrt(2 / sp.pi) / (sp.erfc(1 / sp.sqrt(2)) * sp.exp(sp.Rational(1, 2)) - 1)
_SELU_SCALE = (
    (1 - sp.erfc(1 / sp.sqrt(2)) * sp.sqrt(sp.E))
    * sp.sqrt(2 * sp.pi)
    / sp.sqrt(
        2 * sp.erfc(sp.sqrt(2)) * sp.E**2
        + sp.pi * sp.erfc(1 / sp.sqrt(2)) ** 2 * sp.E
        - 2 * (2 + sp.pi) * sp.erfc(1 / sp.sqrt(2)) * sp.sqrt(sp.E)
        + sp.pi
        + 2
    )
)


def _elu(alpha):
    return sp.Piecewise((x, x > 0), (alpha * (sp.exp(x) - 1), True))


#: name -> (builder taking parameters, default parameters, one-line description)
NAMES = {
    "identity": (lambda: x, {}, "x"),
    "relu": (lambda: sp.Max(0, x), {}, "max(0, x)"),
    "leaky_relu": (
        lambda slope: sp.Piecewise((x, x > 0), (slope * x, True)),
        {"slope": sp.Rational(1, 100)},
        "x for x > 0, slope*x otherwise (default slope 0.01)",
    ),
    "relu_power": (
        lambda exponent: sp.Max(0, x) ** exponent,
        {"exponent": 2},
        "max(0, x)**exponent (default exponent 2)",
    ),
    "abs": (lambda: sp.Abs(x), {}, "|x|"),
    "tanh": (lambda: sp.tanh(x), {}, "tanh(x)"),
    "erf": (lambda: sp.erf(x), {}, "erf(x)"),
    "gelu": (lambda: x * (1 + sp.erf(x / sp.sqrt(2))) / 2, {}, "x * Phi(x), Phi the standard normal CDF"),
    "silu": (lambda: x / (1 + sp.exp(-x)), {}, "x * sigmoid(x) (swish)"),
    "sigmoid": (lambda: 1 / (1 + sp.exp(-x)), {}, "1 / (1 + exp(-x))"),
    "softplus": (lambda: sp.log(1 + sp.exp(x)), {}, "log(1 + exp(x))"),
    "elu": (_elu, {"alpha": 1}, "x for x > 0, alpha*(exp(x) - 1) otherwise (default alpha 1)"),
    "selu": (
        lambda: _SELU_SCALE * _elu(_SELU_ALPHA),
        {},
        "scale * elu_alpha(x) with the self-normalizing constants of Klambauer et al. (2017)",
    ),
    "sin": (lambda: sp.sin(x), {}, "sin(x)"),
}

_ALIASES = {"linear": "identity", "swish": "silu", "lrelu": "leaky_relu", "leakyrelu": "leaky_relu"}


@dataclass(frozen=True)
class Piece:
    """``phi`` restricted to the open interval ``(lo, hi)``, where it is analytic.

    ``lo``/``hi`` are sympy numbers (``-oo``/``oo`` at the ends of the line);
    ``regular_lo``/``regular_hi`` tell whether the expression stays analytic
    at that endpoint (``False`` e.g. for ``x**(3/2)`` at 0), which decides the
    quadrature rule used next to it.
    """

    lo: sp.Expr
    hi: sp.Expr
    expr: sp.Expr
    derivative: sp.Expr
    regular_lo: bool = True
    regular_hi: bool = True


@dataclass(frozen=True)
class Activation:
    """An activation function ``phi`` and the facts the engine needs about it.

    Build one with :func:`activation`; do not call the constructor directly.
    """

    name: str
    expr: sp.Expr
    pieces: tuple
    degree: object = None  # sympy number or None
    parameters: tuple = field(default=())

    # ------------------------------------------------------------------ facts
    @cached_property
    def derivative(self) -> sp.Expr:
        """``phi'(x)`` as a sympy expression (piecewise where ``phi`` is)."""
        if len(self.pieces) == 1:
            return self.pieces[0].derivative
        return sp.Piecewise(*[(p.derivative, x < p.hi) for p in self.pieces[:-1]], (self.pieces[-1].derivative, True))

    @property
    def kinks(self) -> tuple:
        """The breakpoints between pieces, as sympy numbers in increasing order."""
        return tuple(p.hi for p in self.pieces[:-1])

    @property
    def is_homogeneous(self) -> bool:
        """True when ``phi(c x) = c**degree phi(x)`` for every ``c > 0``."""
        return self.degree is not None

    @property
    def is_smooth(self) -> bool:
        """True when ``phi`` is analytic on the whole real line (no kinks)."""
        return len(self.pieces) == 1

    @property
    def label(self) -> str:
        """Short human-readable label, e.g. ``leaky_relu(slope=1/5)``."""
        if not self.parameters:
            return self.name
        args = ", ".join(f"{k}={v}" for k, v in self.parameters)
        return f"{self.name}({args})"

    def __str__(self) -> str:
        return self.label

    # -------------------------------------------------------------- numerics
    @cached_property
    def _mp_pieces(self):
        return tuple(
            (_clamped(sp.lambdify(x, p.expr, modules="mpmath"), p), _clamped(sp.lambdify(x, p.derivative, modules="mpmath"), p))
            for p in self.pieces
        )

    def mp_piece(self, index: int, derivative: bool = False):
        """mpmath callable of piece ``index``.

        Past a regular end it is the piece's analytic continuation; past an end
        where the piece is not analytic (``x**(5/4)`` at 0) the argument is
        clamped to that end, so that a node that rounding put a hair outside
        the piece gets the boundary value, not a complex branch.
        """
        return self._mp_pieces[index][1 if derivative else 0]

    @cached_property
    def _numeric_kinks_cache(self) -> dict:
        return {}

    def numeric_kinks(self) -> tuple:
        """The kinks as mpf at the current mpmath precision (cached per precision)."""
        prec = mpmath.mp.prec
        cache = self._numeric_kinks_cache
        if prec not in cache:
            cache[prec] = tuple(mpmath.mpf(str(sp.N(k, mpmath.mp.dps + 15))) for k in self.kinks)
        return cache[prec]

    def piece_index(self, value) -> int:
        """Index of the piece whose closed interval contains ``value`` (left piece at a kink)."""
        for i, kink in enumerate(self.numeric_kinks()):
            if value <= kink:
                return i
        return len(self.pieces) - 1

    def mp(self, value, derivative: bool = False):
        """Evaluate ``phi`` (or ``phi'``) at an mpmath number."""
        return self.mp_piece(self.piece_index(value), derivative)(value)

    @cached_property
    def _np_functions(self):
        modules = [{"erf": _np_erf, "erfc": _np_erfc}, "numpy"]
        return sp.lambdify(x, self.expr, modules=modules), sp.lambdify(x, self.derivative, modules=modules)

    def np(self, values, derivative: bool = False) -> np.ndarray:
        """Evaluate ``phi`` (or ``phi'``) elementwise on a NumPy array (float64)."""
        values = np.asarray(values, dtype=np.float64)
        # piecewise expressions evaluate every branch everywhere (x**(1/4) at x < 0);
        # the select keeps the right one, so the discarded branches' warnings are noise
        with np.errstate(invalid="ignore", divide="ignore"):
            out = self._np_functions[1 if derivative else 0](values)
        return np.broadcast_to(np.asarray(out, dtype=np.float64), values.shape).copy()


def _clamped(func, piece):
    """``func`` with its argument clamped to the non-regular ends of ``piece``."""
    lo = None if piece.regular_lo or piece.lo == -sp.oo else mpmath.mpf(str(sp.N(piece.lo, 60)))
    hi = None if piece.regular_hi or piece.hi == sp.oo else mpmath.mpf(str(sp.N(piece.hi, 60)))
    if lo is None and hi is None:
        return func

    def clamped(value):
        if lo is not None and value < lo:
            value = lo
        elif hi is not None and value > hi:
            value = hi
        return func(value)

    return clamped


_np_erf = np.frompyfunc(math.erf, 1, 1)
_np_erfc = np.frompyfunc(math.erfc, 1, 1)


# --------------------------------------------------------------------- parsing
def activation(spec, **parameters) -> Activation:
    """Return the :class:`Activation` for ``spec``.

    ``spec`` is an :class:`Activation` (returned unchanged), a name from
    :data:`NAMES` (parameters as keywords or ``"name(value)"``), a string
    holding an expression in ``x`` (``"x*(1+erf(x/sqrt(2)))/2"``,
    ``"Max(0, x)**2"``), or a sympy expression in one symbol.

    Raises :class:`ActivationError` with the reason when ``spec`` is not a
    supported activation.  Cost: one symbolic analysis (milliseconds to a
    second); results are cached per expression.

    >>> activation("relu").kinks
    (0,)
    >>> activation("leaky_relu", slope=0.2).degree
    1
    >>> activation("tanh").is_smooth
    True
    """
    if isinstance(spec, Activation):
        if parameters:
            raise ActivationError("parameters cannot be given together with an Activation object")
        return spec
    if isinstance(spec, str):
        text = spec.strip()
        if not text:
            raise ActivationError("activation must be a name or an expression in x, got an empty string")
        name, call_args = _split_call(text)
        key = _ALIASES.get(name.lower(), name.lower()) if name is not None else None
        if key in NAMES:
            return _named(key, call_args, parameters)
        if parameters:
            raise ActivationError(
                f"unknown activation name {text!r} given with parameters {sorted(parameters)}; "
                f"named activations are: {', '.join(NAMES)}"
            )
        expr = _parse(text)
        return _analyse(expr, name=text)
    if isinstance(spec, sp.Basic):
        if parameters:
            raise ActivationError("parameters can only be given with a named activation")
        return _analyse(_as_function_of_x(spec), name=str(spec))
    raise ActivationError(
        f"activation must be a name ({', '.join(NAMES)}), an expression string in x, "
        f"or a sympy expression; got {type(spec).__name__}"
    )


def _split_call(text):
    match = re.fullmatch(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*(?:\((.*)\))?\s*", text)
    if not match:
        return None, None
    return match.group(1), match.group(2)


def _named(key, call_args, parameters):
    builder, defaults, _ = NAMES[key]
    params = dict(defaults)
    if call_args is not None and call_args.strip():
        values = [v.strip() for v in call_args.split(",")]
        names = list(defaults)
        if len(values) > len(names):
            raise ActivationError(f"{key} takes {len(names)} parameter(s) ({', '.join(names) or 'none'}), got {len(values)}")
        for pname, value in zip(names, values):
            if "=" in value:
                pname, value = (s.strip() for s in value.split("=", 1))
            params[pname] = value
    for pname, value in parameters.items():
        if pname not in defaults:
            raise ActivationError(
                f"{key} has no parameter {pname!r}"
                + (f"; its parameters are: {', '.join(defaults)}" if defaults else "; it takes no parameters")
            )
        params[pname] = value
    exact = {}
    for pname, value in params.items():
        try:
            number = sp.nsimplify(sp.sympify(value, rational=True), rational=True)
        except (sp.SympifyError, TypeError, SyntaxError):
            raise ActivationError(f"{key}: parameter {pname} must be a real number, got {value!r}") from None
        if not (number.is_real and number.is_finite):
            raise ActivationError(f"{key}: parameter {pname} must be a finite real number, got {value!r}")
        exact[pname] = number
    if key == "relu_power" and not exact["exponent"] >= 1:
        raise ActivationError(
            f"relu_power: exponent must be >= 1 (phi' must stay bounded near the kink), got {exact['exponent']}"
        )
    return _analyse(builder(**exact), name=key, parameters=tuple(exact.items()))


_PARSE_LOCALS = {
    "x": x,
    "Max": sp.Max,
    "Min": sp.Min,
    "Abs": sp.Abs,
    "abs": sp.Abs,
    "max": sp.Max,
    "min": sp.Min,
    "erf": sp.erf,
    "erfc": sp.erfc,
    "exp": sp.exp,
    "log": sp.log,
    "sqrt": sp.sqrt,
    "tanh": sp.tanh,
    "sigmoid": lambda z: 1 / (1 + sp.exp(-z)),
    "relu": lambda z: sp.Max(0, z),
    "pi": sp.pi,
    "E": sp.E,
    "e": sp.E,
    "Heaviside": sp.Heaviside,
    "sign": sp.sign,
}


def _parse(text):
    try:
        expr = parse_expr(text, local_dict=dict(_PARSE_LOCALS), transformations=standard_transformations, evaluate=True)
    except Exception as exc:  # sympy raises many kinds of errors on bad syntax
        raise ActivationError(
            f"cannot parse activation {text!r}: not a known name ({', '.join(NAMES)}) "
            f"and not a valid expression in x ({type(exc).__name__}: {exc})"
        ) from None
    if not isinstance(expr, sp.Basic):
        raise ActivationError(f"activation {text!r} does not define an expression in x")
    others = sorted(str(s) for s in expr.free_symbols if s.name != "x")
    if others:
        raise ActivationError(
            f"unknown activation {text!r}: not a built-in name ({', '.join(NAMES)}) and not an expression "
            f"in x alone (it uses {', '.join(others)})"
        )
    return _as_function_of_x(expr, text)


def _as_function_of_x(expr, text=None):
    shown = text if text is not None else str(expr)
    expr = sp.sympify(expr)
    if not isinstance(expr, sp.Expr):
        raise ActivationError(f"activation {shown!r} is not an expression in x (got a {type(expr).__name__})")
    free = expr.free_symbols
    if len(free) > 1:
        names = ", ".join(sorted(str(s) for s in free))
        raise ActivationError(f"activation {shown!r} must be a function of one real variable, but has symbols {names}")
    if free:
        (symbol,) = free
        expr = expr.subs(symbol, x)
    else:
        raise ActivationError(f"activation {shown!r} does not depend on x (a constant activation has no dynamics)")
    return sp.nsimplify(expr, rational=True) if expr.has(sp.Float) else expr


# --------------------------------------------------------------------- analysis
_ANALYSIS_CACHE: dict = {}


def _analyse(expr, name, parameters=()):
    key = (sp.srepr(expr), name, parameters)
    if key not in _ANALYSIS_CACHE:
        _ANALYSIS_CACHE[key] = _build(expr, name, parameters)
    return _ANALYSIS_CACHE[key]


def _build(expr, name, parameters):
    undefined = expr.atoms(sp.core.function.AppliedUndef)
    if undefined:
        shown = ", ".join(sorted(str(u.func) for u in undefined))
        raise ActivationError(f"activation {name!r} uses unknown function(s) {shown}")
    if expr.has(sp.I) or expr.has(sp.zoo) or expr.has(sp.nan) or expr.has(sp.oo):
        raise ActivationError(f"activation {name!r} is not a real, finite function of x")
    pieces = _pieces(expr, name)
    _check_real_and_finite(pieces, name)
    _check_growth(pieces, name)
    act = Activation(name=name, expr=expr, pieces=pieces, degree=_homogeneity(pieces), parameters=parameters)
    return act


def _pieces(expr, name):
    """Cut the real line at the kinks of ``expr`` and return its analytic pieces."""
    try:
        folded = sp.piecewise_fold(expr.rewrite(sp.Piecewise))
    except Exception as exc:  # pragma: no cover - sympy internals
        raise ActivationError(f"cannot analyse activation {name!r}: {exc}") from None
    cuts = set()
    for rel in folded.atoms(sp.Rel):
        if isinstance(rel, (sp.Eq, sp.Ne)):
            continue
        try:
            roots = sp.solveset(rel.lhs - rel.rhs, x, sp.S.Reals)
        except Exception:  # pragma: no cover
            roots = None
        if not isinstance(roots, sp.FiniteSet):
            raise ActivationError(
                f"activation {name!r}: cannot locate the kinks of the condition {rel} "
                "(only finitely many isolated kinks are supported)"
            )
        cuts.update(r for r in roots if r.is_real)
    for atom in folded.atoms(sp.Function):
        if isinstance(atom, (sp.floor, sp.ceiling, sp.frac, sp.sign, sp.Heaviside, sp.DiracDelta)):
            raise ActivationError(f"activation {name!r} contains {atom.func.__name__}, which is not continuous")
    cuts = sorted(cuts, key=lambda r: float(r))
    edges = [-sp.oo, *cuts, sp.oo]
    raw = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        raw.append((lo, hi, _branch_at(folded, _interior_point(lo, hi))))
    # merge neighbours that are the same analytic function
    merged = [list(raw[0])]
    for lo, hi, piece in raw[1:]:
        if sp.simplify(piece - merged[-1][2]) == 0:
            merged[-1][1] = hi
        else:
            merged.append([lo, hi, piece])
    pieces = []
    for i, (lo, hi, piece) in enumerate(merged):
        if i > 0:
            left = merged[i - 1][2]
            if sp.simplify(left.subs(x, lo) - piece.subs(x, lo)) != 0:
                raise ActivationError(
                    f"activation {name!r} jumps at x = {lo} (from {left.subs(x, lo)} to {piece.subs(x, lo)}); "
                    "phi must be continuous"
                )
        derivative = sp.diff(piece, x)
        pieces.append(
            Piece(
                lo=lo,
                hi=hi,
                expr=piece,
                derivative=derivative,
                regular_lo=lo == -sp.oo or _analytic_at(piece, lo),
                regular_hi=hi == sp.oo or _analytic_at(piece, hi),
            )
        )
    for i, piece in enumerate(pieces):
        for end, side in ((piece.lo, "+"), (piece.hi, "-")):
            if end.is_infinite:
                continue
            if not _bounded_near(piece.derivative, end, side):
                raise ActivationError(
                    f"activation {name!r}: phi' is unbounded next to x = {end}; bnsym needs phi' bounded on bounded sets "
                    "(otherwise E[phi'^2], and with it the gradient, may not exist)"
                )
    return tuple(pieces)


def _interior_point(lo, hi):
    if lo == -sp.oo and hi == sp.oo:
        return sp.Integer(0)
    if lo == -sp.oo:
        return hi - 1
    if hi == sp.oo:
        return lo + 1
    return (lo + hi) / 2


def _branch_at(folded, point):
    if not isinstance(folded, sp.Piecewise):
        return folded
    for branch, cond in folded.args:
        value = cond.subs(x, point) if not isinstance(cond, bool) else cond
        if value in (True, sp.true):
            return _branch_at(sp.piecewise_fold(branch), point) if isinstance(branch, sp.Piecewise) else branch
    raise ActivationError(f"activation is undefined at x = {point}")  # pragma: no cover


def _analytic_at(expr, point) -> bool:
    """True when ``expr`` has a Taylor expansion at ``point`` (no fractional powers, no logs)."""
    try:
        series = sp.series(expr, x, point, 4).removeO()
        shifted = sp.expand(series.subs(x, x + point))
        return bool(shifted.is_polynomial(x)) and not shifted.has(sp.log)
    except Exception:
        return False


def _bounded_near(expr, point, side) -> bool:
    try:
        value = sp.limit(expr, x, point, dir=side)
        if value.is_finite:
            return True
        if value.is_infinite:
            return False
    except Exception:
        pass
    f = sp.lambdify(x, expr, modules="mpmath")
    sign = 1 if side == "+" else -1
    with mpmath.workdps(40):
        try:
            values = [abs(f(mpmath.mpf(sp.N(point, 50)) + sign * mpmath.mpf(10) ** -k)) for k in (8, 16, 24)]
        except (ZeroDivisionError, ValueError, OverflowError):
            return False
    return values[2] <= 2 * values[0] + 1


def _check_real_and_finite(pieces, name):
    """Refuse complex values or singularities inside a piece, sampled on a fine grid."""
    with mpmath.workdps(30):
        grid = [mpmath.mpf(k) / 8 for k in range(-400, 401)]
        for piece, (lo, hi) in zip(pieces, [(p.lo, p.hi) for p in pieces]):
            f = sp.lambdify(x, piece.expr, modules="mpmath")
            df = sp.lambdify(x, piece.derivative, modules="mpmath")
            lo_f = -mpmath.inf if lo == -sp.oo else mpmath.mpf(sp.N(lo, 40))
            hi_f = mpmath.inf if hi == sp.oo else mpmath.mpf(sp.N(hi, 40))
            for t in grid:
                if not lo_f < t < hi_f:
                    continue
                for g, what in ((f, "phi"), (df, "phi'")):
                    try:
                        value = g(t)
                    except (ZeroDivisionError, ValueError, OverflowError, TypeError):
                        raise ActivationError(f"activation {name!r}: {what} cannot be evaluated at x = {t}") from None
                    if isinstance(value, mpmath.mpc):
                        if abs(value.imag) > 1e-20 * (1 + abs(value.real)):
                            raise ActivationError(
                                f"activation {name!r} is not real-valued: {what}({mpmath.nstr(t, 6)}) = {mpmath.nstr(value, 6)}"
                            )
                    elif not mpmath.isfinite(value):
                        raise ActivationError(
                            f"activation {name!r}: {what} is not finite at x = {mpmath.nstr(t, 6)} (singular point)"
                        )


def _check_growth(pieces, name):
    """Refuse ``phi`` (or ``phi'``) growing like ``exp(c x**2)``, ``c > 0``, or faster."""
    for piece, end in ((pieces[0], -sp.oo), (pieces[-1], sp.oo)):
        for expr, what in ((piece.expr, "phi"), (piece.derivative, "phi'")):
            rate = _growth_rate(expr, end)
            if rate is None or rate > 0:
                shown = "faster than any Gaussian" if rate is None or rate == sp.oo else f"like exp({rate} x^2)"
                raise ActivationError(
                    f"activation {name!r}: {what} grows {shown} as x -> {end}; bnsym needs log|phi(x)| = o(x^2) "
                    "so that the Gaussian and sphere expectations exist for every gain"
                )


def _growth_rate(expr, end):
    """``lim log|expr| / x**2`` as ``x -> end`` (0 for sub-Gaussian growth, ``None`` if unknown).

    A numeric look at x = 250 ... 2000 settles the usual cases (the ratio
    decays at least like 1/x for sub-Gaussian growth); sympy's limit is asked
    only when the numbers are ambiguous.
    """
    if expr.is_zero:
        return 0
    f = sp.lambdify(x, expr, modules="mpmath")
    sign = 1 if end == sp.oo else -1
    with mpmath.workdps(30):
        try:
            ratios = [mpmath.log(abs(f(sign * mpmath.mpf(t))) + mpmath.mpf(10) ** -300) / t**2 for t in (250, 500, 1000, 2000)]
        except (ZeroDivisionError, ValueError, OverflowError, TypeError):
            ratios = None
    if ratios is not None:
        top = max(abs(r) for r in ratios)
        if top < 1e-9 or (ratios[-1] < 1e-3 and abs(ratios[-1]) <= 0.6 * abs(ratios[1])):
            return 0
    try:
        rate = sp.limit(sp.log(sp.Abs(expr)) / x**2, x, end)
        if rate.is_extended_real:
            return max(rate, 0)
    except Exception:
        pass
    return None


def _homogeneity(pieces):
    """Degree ``alpha`` with ``phi(c x) = c**alpha phi(x)`` for ``c > 0``, or ``None``."""
    if len(pieces) > 2 or (len(pieces) == 2 and pieces[0].hi != 0):
        return None
    degrees = set()
    for piece in pieces:
        if piece.expr.is_zero:
            continue
        ratio = sp.simplify(x * piece.derivative / piece.expr)
        if ratio.free_symbols or not ratio.is_real:
            return None
        degrees.add(ratio)
    if len(degrees) != 1:
        return None
    (degree,) = degrees
    if len(pieces) == 1 and not (degree.is_integer and degree > 0):
        return None  # a single analytic piece homogeneous across 0 must be an integer power
    return degree if degree > 0 else None
