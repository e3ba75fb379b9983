"""The :class:`Activation` object and :func:`activation`, the one way to build it.

:func:`activation` accepts a name of :data:`~bnsym.activations.catalogue.NAMES`
(parameters as keywords, ``activation("leaky_relu", slope=0.2)``), text read
by the safe parser of :mod:`bnsym.activations.parsing` (an expression in
``x`` in which named activations compose, ``"tanh(2*x)"``, ``"relu(x - 1)"``,
or take parameters, ``"leaky_relu(0.2)"``; see that module for the rule), or
a sympy expression in one symbol; it returns an :class:`Activation`
analysed by :mod:`bnsym.activations.analysis`, with mpmath and NumPy
evaluators of ``phi`` and ``phi'``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import mpmath
import numpy as np
import sympy as sp
from sympy.printing.numpy import NumPyPrinter

from bnsym.activations import special
from bnsym.activations.analysis import analyse
from bnsym.activations.catalogue import NAMES, canonical_name, x
from bnsym.activations.parsing import (
    exact_parameters,
    first_line,
    parse_expression,
    shown,
)
from bnsym.errors import ActivationError

#: Digits of the numeric kinks: above the largest working precision (100 promised + guards).
KINK_DPS = 160
#: Digits of the mpmath evaluation that replaces a non-finite float64 value of the NumPy form
#: (:meth:`Activation.np`): enough that the rounding to float64 is the only error.
REPAIR_DPS = 30


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

    def __repr__(self) -> str:
        # the label and the formula; the pieces and facts are attributes (printed in full they ran to
        # hundreds of characters in every result's repr)
        return f"Activation({self.label!r}, {self.expr})"

    @cached_property
    def feature_scale(self) -> float:
        """The narrowest width the expression itself writes into ``phi``: the least ``|c|^(-1/k)`` over the
        monomials ``c x^k`` (``k >= 1``) of the polynomial parts of the arguments of the non-polynomial
        functions and powers in ``phi'`` (``exp(-(300 x)^4)``: ``(300^4)^(-1/4) = 1/300``; also
        ``1/(1 + (300 x)^2)^50`` and ``exp(-(300 x)^4/(1 + x^2))``), and 1 if there is none (or if that
        is wider).  A heuristic, not a bound: a feature that no coefficient names (a bump
        built from a narrow difference of wide functions) is not seen.  The sphere rules' float64 probe
        samples ``x`` at most :data:`~bnsym.numerics.sphere.PROBE_SPACING` times this apart.  Cost: one
        pass over the expression tree."""
        return feature_scale(self.derivative)

    # -------------------------------------------------------------- numerics
    @cached_property
    def _mp_pieces(self):
        return tuple(
            (_clamped(sp.lambdify(x, stable_form(p.expr), modules="mpmath"), p, p.expr),
             _clamped(sp.lambdify(x, stable_form(p.derivative), modules="mpmath"), p, p.derivative))
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
    def _numeric_kinks(self) -> tuple:
        with mpmath.workdps(KINK_DPS):
            return tuple(mpmath.mpf(str(sp.N(k, KINK_DPS))) for k in self.kinks)

    def numeric_kinks(self) -> tuple:
        """The kinks as mpf carrying :data:`KINK_DPS` digits (more than any working precision, so
        that comparisons and breakpoints are exact at every precision bnsym promises)."""
        return self._numeric_kinks

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
        modules = [{"erf": special.erf, "erfc": special.erfc, "choose_branch": choose_branch}, "numpy"]
        # the settings lambdify gives its own printer for these modules
        printer = WherePrinter({"fully_qualified_modules": False, "inline": True, "allow_unknown_functions": True})
        return (sp.lambdify(x, stable_form(self.expr), modules=modules, printer=printer),
                sp.lambdify(x, stable_form(self.derivative), modules=modules, printer=printer))

    def np(self, values, derivative: bool = False) -> np.ndarray:
        """Evaluate ``phi`` (or ``phi'``) elementwise on a NumPy array (float64); a new array.

        Where the NumPy form is not finite at a finite argument (sigmoid' written
        ``exp(-x) / (1 + exp(-x))**2`` is ``inf / inf`` below ``x = -709``), the entry is
        evaluated again (:meth:`_repaired`: in ``numpy.longdouble``, else with :meth:`mp` at
        :data:`REPAIR_DPS` digits) and rounded to float64 (an overflow stays ``inf``).  Cost: one
        pass over the result, plus the repair of each such entry.
        """
        values = np.asarray(values, dtype=np.float64)
        # piecewise expressions evaluate every branch everywhere (x**(1/4) at x < 0);
        # the where keeps the right one, so the discarded branches' warnings are noise
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            out = self._np_functions[1 if derivative else 0](values)
        if not (isinstance(out, np.ndarray) and out.dtype == np.float64 and out.shape == values.shape
                and not np.may_share_memory(out, values)):
            out = np.broadcast_to(np.asarray(out, dtype=np.float64), values.shape).copy()
        bad = ~np.isfinite(out)
        if bad.any():
            bad &= np.isfinite(values)
            out[bad] = self._repaired(values[bad], derivative)
        return out

    def _repaired(self, values, derivative):
        """:meth:`np` at ``values`` where the float64 form was not finite: first in ``numpy.longdouble``
        (exponent range to 1e4932 where the platform has it: ``exp(800)`` is finite there), then, for
        what is still not finite, :meth:`mp` at :data:`REPAIR_DPS` digits (about 20 us a value)."""
        with np.errstate(all="ignore"):
            try:
                out = np.asarray(self._np_functions[1 if derivative else 0](values.astype(np.longdouble)))
                out = np.broadcast_to(out, values.shape).astype(np.float64)
            except TypeError:  # a function without a longdouble loop
                out = np.full(values.shape, np.nan)
        still = ~np.isfinite(out)
        if still.any():
            with mpmath.workdps(REPAIR_DPS):
                out[still] = [float(self.mp(mpmath.mpf(float(v)), derivative)) for v in values[still]]
        return out


def choose_branch(condition, if_true, if_false):
    """``numpy.where(condition, if_true, if_false)``, without a masked copy when both branches are
    finite scalars: ``if_true * c + if_false * (not c)`` is then exact (one of the two terms is
    exactly zero) and branch-free, about 10 times faster than ``where`` on a random sign pattern
    (ReLU's ``phi'``).  Cost: two or three passes over ``condition``."""
    if np.ndim(if_true) == 0 and np.ndim(if_false) == 0 and np.isfinite(if_true) and np.isfinite(if_false):
        condition = np.asarray(condition)
        if if_true == 0:  # a step: one product (the condition is the printed code's own temporary)
            return np.multiply(np.logical_not(condition, out=condition if condition.ndim else None), float(if_false))
        out = np.multiply(condition, float(if_true))
        if if_false != 0:
            out += np.multiply(np.logical_not(condition), float(if_false))
        return out
    return np.where(condition, if_true, if_false)


class WherePrinter(NumPyPrinter):
    """NumPy printer writing ``Piecewise((e1, c1), (e2, c2), ...)`` as nested :func:`choose_branch`.

    Same values as sympy's ``numpy.select`` form (the first true condition wins; ``nan`` where
    none holds), about 4 times faster on ``10^4``-element arrays (ReLU: one comparison and one
    selection pass instead of stacking every branch and condition), and 10 times faster again
    where both branches are constants (a step such as ReLU's ``phi'``).
    """

    def _print_Piecewise(self, expr):
        *pieces, (last, condition) = expr.args
        if condition == sp.true:
            result = self._print(last)
        else:
            result = f"choose_branch({self._print(condition)}, {self._print(last)}, {self._module_format(self._module + '.nan')})"
        for piece, condition in reversed(pieces):
            result = f"choose_branch({self._print(condition)}, {self._print(piece)}, {result})"
        return result


def stable_form(expr):
    """``expr`` with ``c (1 + erf(u))`` written ``c erfc(-u)``, ``c (1 - erf(u))`` written ``c erfc(u)``, and
    ``c (1 - tanh(u)^2)`` (sympy's derivative of tanh) written ``c sech(u)^2``.

    The same function, evaluated without the cancellation that makes ``1 + erf(u)`` exactly 0
    at the working precision for ``u`` below about ``-sqrt(working digits * log 10)`` (gelu at
    ``beta = -20``: the true value is ~1e-89), and ``1 - tanh(u)^2`` rounding noise of 1e-16 on
    values of 1e-17 in float64 at ``|u| = 20`` (which the sphere rules' probes read as an
    unresolved feature).  Cost: one pass over the expression tree.
    """

    def rewrite(add):
        erfs = [a for a in add.args if a.as_coeff_Mul()[1].func == sp.erf]
        squares = [a for a in add.args if _is_tanh_square(a.as_coeff_Mul()[1])]
        if len(erfs) + len(squares) != 1:
            return add
        coeff, term = (erfs or squares)[0].as_coeff_Mul()
        constant = sum((a for a in add.args if a.is_Number), sp.Integer(0))
        rest = add - (erfs or squares)[0] - constant
        if squares:
            return rest - coeff * sp.sech(term.base.args[0]) ** 2 if constant == -coeff else add
        if constant == coeff:
            return rest + coeff * sp.erfc(-term.args[0], evaluate=False)  # sympy would rewrite erfc(-u) as 2 - erfc(u)
        if constant == -coeff:
            return rest - coeff * sp.erfc(term.args[0])
        return add

    def candidate(e):
        return e.is_Add and any(a.as_coeff_Mul()[1].func == sp.erf or _is_tanh_square(a.as_coeff_Mul()[1])
                                for a in e.args)

    return expr.replace(candidate, rewrite)


def feature_scale(expr) -> float:
    """:attr:`Activation.feature_scale` of a sympy expression in ``x``: the least ``|c|^(-1/k)`` over the
    monomials ``c x^k`` (``k >= 1``) of the numerators and denominators of the rational arguments of
    its functions and of its powers that are not polynomial (``exp(u)``, ``tanh(u)``, ``u^(-50)``,
    ``u^(1/2)``), and 1 if there is none or if that is wider."""
    widths = [1.0]
    for node in sp.preorder_traversal(expr):
        if isinstance(node, sp.Function) and not isinstance(node, sp.Piecewise):
            arguments = node.args
        elif isinstance(node, sp.Pow) and not (node.exp.is_Integer and node.exp >= 0):
            arguments = (node.base, node.exp)
        else:
            continue
        for u in arguments:
            if not u.has(x):
                continue
            numerator, denominator = sp.fraction(sp.together(u))
            for part in ((numerator, denominator) if denominator.has(x) else (u,)):
                if part.has(x) and part.is_polynomial(x):
                    widths += [float(abs(c)) ** (-1.0 / k) for (k,), c in sp.Poly(part, x).terms()
                               if k >= 1 and c.is_number and c != 0]
    return min(widths)


def _is_tanh_square(term):
    """Whether ``term`` is ``tanh(u)**2``."""
    return term.is_Pow and term.exp == 2 and term.base.func == sp.tanh


def _clamped(func, piece, expr):
    """``func`` (the mpmath form of ``expr`` on ``piece``) with its argument clamped to the non-regular
    ends of ``piece``; at such an end it gives the one-sided limit of ``expr`` (its written form may be
    ``0/0`` there: ``(3/2) (-x)^(3/2) / x`` at 0), computed once, when first needed, to
    :data:`KINK_DPS` digits."""
    lo = None if piece.regular_lo or piece.lo == -sp.oo else mpmath.mpf(str(sp.N(piece.lo, 60)))
    hi = None if piece.regular_hi or piece.hi == sp.oo else mpmath.mpf(str(sp.N(piece.hi, 60)))
    if lo is None and hi is None:
        return func
    ends = {}

    def end_value(side):
        if side not in ends:
            point, direction = (piece.lo, "+") if side == "lo" else (piece.hi, "-")
            try:
                ends[side] = mpmath.mpf(str(sp.N(sp.limit(expr, x, point, direction), KINK_DPS)))
            except (TypeError, ValueError, NotImplementedError):  # no limit sympy can take: the written form there
                ends[side] = func(lo if side == "lo" else hi)
        return +ends[side]  # (rounded to the working precision)

    def clamped(value):
        if lo is not None and value <= lo:
            return end_value("lo")
        if hi is not None and value >= hi:
            return end_value("hi")
        return func(value)

    return clamped


def activation(spec, **parameters) -> Activation:
    """Return the :class:`Activation` for ``spec``.

    ``spec`` is an :class:`Activation` (returned unchanged), a name from
    :data:`NAMES` (parameters as keywords), a string holding an expression in
    ``x`` read by :func:`~bnsym.activations.parsing.parse_expression`
    (``"x*(1+erf(x/sqrt(2)))/2"``, ``"Max(0, x)**2"``, ``"tanh(2*x)"``,
    ``"leaky_relu(0.2)"``), or a sympy expression in one symbol.

    Raises :class:`ActivationError` (one line) with the reason when ``spec``
    is not a supported activation; no text is ever evaluated as code.  Cost:
    one symbolic analysis (milliseconds to a second); results are cached per
    expression.

    >>> activation("relu").kinks
    (0,)
    >>> activation("leaky_relu", slope=0.2).degree
    1
    >>> activation("tanh(2*x)").is_smooth
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
        key = canonical_name(text) if text.isidentifier() else None
        if key is not None:
            exact = exact_parameters(key, parameters)
            return _analysed(NAMES[key][0](**exact), key, tuple(exact.items()))
        if parameters:
            raise ActivationError(
                f"parameters {sorted(parameters)} can only be given with a bare activation name ({', '.join(NAMES)}), "
                f"not with {shown(text)}; write them inside the text, e.g. leaky_relu(x, slope=0.2)"
            )
        parsed = parse_expression(text)
        if parsed.key is not None:
            return _analysed(parsed.expr, parsed.key, parsed.parameters)
        return _analysed(_as_function_of_x(parsed.expr, text), text)
    if isinstance(spec, sp.Basic):
        if parameters:
            raise ActivationError("parameters can only be given with a named activation")
        return _analysed(_as_function_of_x(spec), str(spec))
    raise ActivationError(
        f"activation must be a name ({', '.join(NAMES)}), an expression string in x, "
        f"or a sympy expression; got {type(spec).__name__}"
    )


def _as_function_of_x(expr, text=None):
    """``expr`` rewritten in the real symbol ``x`` (its one free symbol), decimals made rational."""
    label = shown(text if text is not None else expr)
    if not isinstance(expr, sp.Expr):
        raise ActivationError(f"activation {label} is not an expression in x (got a {type(expr).__name__})")
    free = expr.free_symbols
    if len(free) > 1:
        names = ", ".join(sorted(str(s) for s in free))
        raise ActivationError(f"activation {label} must be a function of one real variable, but has symbols {names}")
    if not free:
        raise ActivationError(f"activation {label} does not depend on x (a constant activation has no dynamics)")
    (symbol,) = free
    expr = expr.subs(symbol, x)
    return sp.nsimplify(expr, rational=True) if expr.has(sp.Float) else expr


_ANALYSIS_CACHE: dict = {}


def _analysed(expr, name, parameters=()):
    """The cached :class:`Activation` of ``expr`` labelled ``name``."""
    key = (sp.srepr(expr), name, parameters)
    if key not in _ANALYSIS_CACHE:
        try:
            pieces, degree = analyse(expr, name)
        except ActivationError:
            raise
        except Exception as exc:  # sympy and mpmath raise many kinds of errors on odd expressions
            raise ActivationError(f"cannot analyse activation {shown(name)}: {first_line(exc)}") from None
        _ANALYSIS_CACHE[key] = Activation(name=name, expr=expr, pieces=pieces, degree=degree, parameters=parameters)
    return _ANALYSIS_CACHE[key]
