"""The analysis of an activation expression: its analytic pieces, kinks, growth and homogeneity.

:func:`analyse` cuts the real line at the kinks of ``phi`` (points where
``phi`` or ``phi'`` stops being analytic), checks that ``phi`` is real,
continuous and finite with ``phi'`` bounded on bounded sets and
``log|phi(x)| = o(x**2)`` (likewise ``phi'``), and finds the degree of
positive homogeneity.  Inputs come from :mod:`bnsym.activations.parsing`,
whose limits keep every step here bounded; the expensive sympy steps
(``simplify``, ``limit``) run only after cheap numeric checks leave the
answer open.
"""

from __future__ import annotations

from dataclasses import dataclass

import mpmath
import numpy as np
import sympy as sp

from bnsym.activations import special
from bnsym.activations.catalogue import x
from bnsym.errors import ActivationError


@dataclass(frozen=True)
class Piece:
    """``phi`` restricted to the open interval ``(lo, hi)``, where it is analytic.

    ``lo``/``hi`` are sympy numbers (``-oo``/``oo`` at the ends of the line);
    ``regular_lo``/``regular_hi`` tell whether the expression stays analytic
    at that endpoint (``False`` e.g. for ``x**(3/2)`` at 0), which decides the
    quadrature rule used next to it; ``root_lo``/``root_hi`` tell whether, at a
    non-regular end ``e``, ``phi`` and ``phi'`` are analytic in ``sqrt(|x - e|)``
    (``False`` at regular ends, where only ``regular_*`` is consulted)
    (half-integer powers such as ``x**(3/2)``: a square-root map makes the
    integrand analytic there, docs/theory.md section 3.2).
    """

    lo: sp.Expr
    hi: sp.Expr
    expr: sp.Expr
    derivative: sp.Expr
    regular_lo: bool = True
    regular_hi: bool = True
    root_lo: bool = False
    root_hi: bool = False


def analyse(expr, name):
    """``(pieces, degree)`` of the activation ``expr`` (a sympy expression in ``x``), or a refusal.

    ``pieces`` is a tuple of :class:`Piece` covering the real line, ``degree``
    the degree of positive homogeneity or ``None``.  Raises
    :class:`ActivationError` naming ``name`` when ``expr`` is outside the
    supported class.  Cost: milliseconds to about a second (a grid of 801
    mpmath evaluations per piece, a few sympy limits and series).
    """
    undefined = expr.atoms(sp.core.function.AppliedUndef)
    if undefined:
        shown = ", ".join(sorted(str(u.func) for u in undefined))
        raise ActivationError(f"activation {name!r} uses unknown function(s) {shown}")
    if expr.has(sp.I) or expr.has(sp.zoo) or expr.has(sp.nan) or expr.has(sp.oo):
        raise ActivationError(f"activation {name!r} is not a real, finite function of x")
    pieces = _pieces(expr, name)
    _check_float_range(pieces, name)
    _check_real_and_finite(pieces, name)
    _check_growth(pieces, name)
    return pieces, _homogeneity(pieces)


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
        if _same_function(piece, merged[-1][2]):
            merged[-1][1] = hi
        else:
            merged.append([lo, hi, piece])
    pieces = []
    for i, (lo, hi, piece) in enumerate(merged):
        if i > 0:
            left = merged[i - 1][2]
            if not _numerically_zero(left.subs(x, lo) - piece.subs(x, lo)):
                raise ActivationError(
                    f"activation {name!r} jumps at x = {lo} (from {left.subs(x, lo)} to {piece.subs(x, lo)}); "
                    "phi must be continuous"
                )
        derivative = sp.diff(piece, x)
        regular_lo = lo == -sp.oo or _analytic_at(piece, lo)
        regular_hi = hi == sp.oo or _analytic_at(piece, hi)
        pieces.append(
            Piece(
                lo=lo,
                hi=hi,
                expr=piece,
                derivative=derivative,
                regular_lo=regular_lo,
                regular_hi=regular_hi,
                # only asked where the end is not regular (a regular end is analytic in the root too)
                root_lo=not regular_lo and _root_analytic_at(piece, derivative, lo, +1),
                root_hi=not regular_hi and _root_analytic_at(piece, derivative, hi, -1),
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


def _numbers(expr, points, dps=40):
    """``expr`` evaluated by mpmath at ``points`` (``None`` where it cannot be evaluated to a real)."""
    f = sp.lambdify(x, expr, modules="mpmath")
    out = []
    with mpmath.workdps(dps):
        for point in points:
            try:
                value = f(mpmath.mpf(point))
            except (ZeroDivisionError, ValueError, OverflowError, TypeError):
                value = None
            if isinstance(value, mpmath.mpc) or (value is not None and not mpmath.isfinite(value)):
                value = None
            out.append(value)
    return out


def _numerically_zero(number) -> bool:
    """True when the constant ``number`` vanishes to 40 digits (continuity at a kink)."""
    try:
        value = sp.N(number, 50)
        return bool(abs(value) < sp.Float("1e-40"))
    except (TypeError, ValueError, OverflowError):
        return False


def _same_function(a, b) -> bool:
    """True when the analytic expressions ``a`` and ``b`` are equal; numbers first, sympy only to confirm."""
    points = ("-2.3", "-0.7", "0.45", "1.9", "3.1")
    va, vb = _numbers(a, points), _numbers(b, points)
    for p, q in zip(va, vb):
        if p is not None and q is not None and abs(p - q) > mpmath.mpf(10) ** -30 * (1 + abs(p)):
            return False
    return sp.simplify(a - b) == 0


def _numerical_constant(expr, piece):
    """The value ``expr`` takes at points inside ``piece`` when it is the same at all of them (a cheap
    pre-check), else ``None`` (also when it evaluates nowhere)."""
    lo = -10 if piece.lo == -sp.oo else float(piece.lo)
    hi = 10 if piece.hi == sp.oo else float(piece.hi)
    points = [repr(lo + (hi - lo) * t) for t in (0.13, 0.37, 0.61, 0.89)]
    values = [v for v in _numbers(expr, points) if v is not None]
    if values and all(abs(v - values[0]) <= mpmath.mpf(10) ** -25 * (1 + abs(values[0])) for v in values):
        return values[0]
    return None


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


def _analytic_at(expr, point, variable=x) -> bool:
    """True when ``expr`` has a Taylor expansion in ``variable`` at ``point`` (no fractional powers, no logs)."""
    try:
        series = sp.series(expr, variable, point, 4).removeO()
        shifted = sp.expand(series.subs(variable, variable + point))
        return bool(shifted.is_polynomial(variable)) and not shifted.has(sp.log)
    except Exception:
        return False


_ROOT = sp.Symbol("u", positive=True)


def _root_analytic_at(expr, derivative, point, side) -> bool:
    """True when ``expr`` and ``derivative`` are analytic in ``u = sqrt(side (x - point))`` at ``u = 0``
    (``side = +1`` for the piece right of ``point``, ``-1`` for the piece left of it)."""
    return all(_analytic_at(e.subs(x, point + side * _ROOT**2), 0, _ROOT) for e in (expr, derivative))


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


#: The largest finite float64 (``numpy.finfo(float).max``).
FLOAT_MAX = float(np.finfo(np.float64).max)


def _check_float_range(pieces, name):
    """Refuse a constant of ``phi`` or ``phi'`` (once sympy has built them) beyond the float64 range.

    bnsym evaluates every activation in float64 too (the quadrature's probes, the sampling witnesses,
    the float64 paths), and such a constant cannot be written there (``x + exp(-(1e200 x)^2)`` has
    ``1e400`` in its exponent, and the feature it writes into ``phi``, of width ``1e-200``, is also far
    below what any rule resolves).  Cost: one pass over the expression trees.
    """
    for piece in pieces:
        for expr, what in ((piece.expr, "phi"), (piece.derivative, "phi'")):
            walk = sp.preorder_traversal(expr)
            for node in walk:
                if not node.is_number:
                    continue
                walk.skip()  # a whole constant (``exp(800)``), checked by its value, not its parts
                try:
                    too_large = bool(abs(sp.N(node, 15)) > FLOAT_MAX)
                except (TypeError, ValueError, ArithmeticError):
                    continue  # not a real number: the checks below refuse it with their own reason
                if too_large:
                    raise ActivationError(
                        f"activation {name!r}: {what} holds the constant {sp.N(node, 3)}, beyond the float64 range "
                        f"(about 1.8e308) in which bnsym also evaluates every activation (the quadrature's probes, "
                        f"the sampling witnesses)"
                    )


def _check_real_and_finite(pieces, name):
    """Refuse complex values or singularities inside a piece, sampled on the grid k/8, |k| <= 400.

    A vectorized float64 pass (NumPy gives NaN or inf where the value is
    complex, undefined or overflows) clears most points in milliseconds; the
    mpmath pass at 30 digits runs only at the points it could not clear, and
    names the point and the reason.  Cost: about 1600 float64 evaluations plus
    one mpmath evaluation per uncleared point.
    """
    with mpmath.workdps(30):
        for piece in pieces:
            f = sp.lambdify(x, piece.expr, modules="mpmath")
            df = sp.lambdify(x, piece.derivative, modules="mpmath")
            for k in _unclear_grid_points(piece):
                t = mpmath.mpf(int(k)) / 8
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


def _unclear_grid_points(piece):
    """Grid indices ``k`` (point ``k/8``) inside ``piece`` where phi or phi' is not a finite float64."""
    ks = np.arange(-400, 401)
    grid = ks / 8.0
    lo = -np.inf if piece.lo == -sp.oo else float(piece.lo)
    hi = np.inf if piece.hi == sp.oo else float(piece.hi)
    inside = (grid > lo) & (grid < hi)
    ks, points = ks[inside], grid[inside]
    modules = [{"erf": special.erf, "erfc": special.erfc}, "numpy"]
    unclear = np.zeros(points.shape, dtype=bool)
    for expr in (piece.expr, piece.derivative):
        try:
            with np.errstate(all="ignore"):
                values = np.asarray(sp.lambdify(x, expr, modules=modules)(points))
                values = np.broadcast_to(values, points.shape).astype(np.float64)
            unclear |= ~np.isfinite(values)
        except Exception:  # anything NumPy cannot do is left to the mpmath pass
            return ks
    return ks[unclear]


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
        ratio = x * piece.derivative / piece.expr
        value = _numerical_constant(ratio, piece)
        if value is None or value < mpmath.mpf(10) ** -20:
            # not constant, or a degree <= 0 (refused below): sympy's simplify is not asked, since it does not
            # end on some (tanh(1e155 x) 1e-155, whose ratio is 0 to 40 digits on the grid, expands 515 double angles)
            return None
        ratio = sp.simplify(ratio)
        if ratio.free_symbols or not ratio.is_real:
            return None
        degrees.add(ratio)
    if len(degrees) != 1:
        return None
    (degree,) = degrees
    if len(pieces) == 1 and not (degree.is_integer and degree > 0):
        return None  # a single analytic piece homogeneous across 0 must be an integer power
    return degree if degree > 0 else None
