r"""Activations as sympy expressions, with symbolic parameters allowed.

The engine's :func:`bnsym.activation` needs numeric parameters (it checks
continuity, growth and kinks numerically).  Derivations also want a slope
``a`` or an exponent left as a symbol: ``"leaky_relu(a)"``, or
``symbolic_activation("leaky_relu", slope=sympy.Symbol("a"))``.  This
module builds the expression from :data:`bnsym.activations.catalogue.NAMES` in that
case, and defers to :func:`bnsym.activation` (with all its checks) when every
parameter is a number.  Text is read by the safe parser
:func:`bnsym.activations.parsing.parse_expression` (nothing is evaluated as
code); names other than ``x`` become real symbols only where they are
parameters of a named activation.  ``"step"`` (the Heaviside function) is
accepted here for kernels only: the engine refuses it because it is not
continuous.
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from bnsym.activations import NAMES, Activation, activation, x
from bnsym.activations.catalogue import canonical_name
from bnsym.activations.parsing import exact_parameters, parse_expression
from bnsym.errors import ActivationError, BnsymInputError

#: Names accepted here in addition to :data:`bnsym.activations.catalogue.NAMES`.
KERNEL_ONLY = {"step": sp.Heaviside(x), "heaviside": sp.Heaviside(x)}


@dataclass(frozen=True)
class SymbolicActivation:
    """``expr`` (a sympy expression in :data:`bnsym.activations.catalogue.x`) and its provenance.

    ``engine`` is the validated :class:`~bnsym.activations.expression.Activation` when
    every parameter is numeric (``None`` for symbolic parameters or the step
    function); ``parameters`` lists the free symbols other than ``x``.
    """

    label: str
    expr: sp.Expr
    engine: Activation | None
    parameters: tuple = ()

    @property
    def derivative(self) -> sp.Expr:
        """``phi'(x)``; refuses expressions sympy cannot differentiate."""
        derivative = sp.diff(self.expr, x)
        if derivative.has(sp.Derivative, sp.Subs):
            raise BnsymInputError(
                f"activation: sympy cannot differentiate {self.label} (got {derivative}); "
                "write it with elementary functions, Max, Abs or Piecewise"
            )
        return derivative


def symbolic_activation(spec, **parameters) -> SymbolicActivation:
    """Return the :class:`SymbolicActivation` for ``spec``.

    ``spec``: a :class:`~bnsym.activations.expression.Activation`, a name (parameters
    as keywords, numbers or symbols), text read by the safe parser (parameters
    in call syntax ``"leaky_relu(a)"``, compositions ``"tanh(2*x)"``), or a
    sympy expression.  Raises :class:`~bnsym.errors.BnsymInputError` (naming
    ``activation``) otherwise.  Cost: parsing is linear in the text; numeric
    activations pay one engine analysis.

    >>> symbolic_activation("leaky_relu(a)").expr
    Piecewise((x, x > 0), (a*x, True))
    >>> symbolic_activation("relu").engine.label
    'relu'
    """
    if isinstance(spec, SymbolicActivation):
        return spec
    if isinstance(spec, Activation):
        return SymbolicActivation(spec.label, spec.expr, spec)
    if isinstance(spec, str):
        text = spec.strip()
        name = text.lower() if text.isidentifier() else None
        if name in KERNEL_ONLY and not parameters:
            return SymbolicActivation("step", KERNEL_ONLY[name], None)
        key = canonical_name(name)
        if key is not None:
            return _named(key, _exact(key, parameters))
        if parameters:
            raise BnsymInputError("activation: parameters can only be given with a bare activation name")
        try:
            parsed = parse_expression(text, symbolic_parameters=True)
        except ActivationError as exc:
            raise _about_activation(exc) from None
        if parsed.key is not None:
            return _named(parsed.key, dict(parsed.parameters))
        symbols = tuple(sorted(parsed.expr.free_symbols - {x}, key=str))
        if symbols:
            return SymbolicActivation(text, parsed.expr, None, symbols)
        act = activation(text)
        return SymbolicActivation(act.label, act.expr, act)
    if parameters:
        raise BnsymInputError("activation: parameters can only be given with a named activation")
    if isinstance(spec, sp.Basic) and len(spec.free_symbols) > 1:
        xs = [s for s in spec.free_symbols if s.name == "x"]
        if len(xs) != 1:
            raise BnsymInputError(f"activation: expression {spec} must be written in x (other symbols are parameters)")
        expr = spec.subs(xs[0], x)
        symbols = tuple(sorted(expr.free_symbols - {x}, key=str))
        return SymbolicActivation(str(expr), expr, None, symbols)
    act = activation(spec)
    return SymbolicActivation(act.label, act.expr, act)


def _exact(key, parameters):
    """Exact parameters of ``key`` (numbers, sympy symbols, or text read by the safe parser)."""
    try:
        return exact_parameters(key, parameters, symbolic=True)
    except ActivationError as exc:
        raise _about_activation(exc) from None


def _about_activation(exc):
    """``exc`` with its message made to name the argument ``activation`` (once)."""
    message = str(exc)
    return ActivationError(message if "activation" in message else f"activation: {message}")


def _named(key, exact):
    """The named activation ``key`` with parameters ``exact``: the engine's when all are numbers."""
    symbols = tuple(sorted(set().union(*(e.free_symbols for e in exact.values())), key=str)) if exact else ()
    if not symbols:
        act = activation(key, **exact)
        return SymbolicActivation(act.label, act.expr, act)
    label = f"{key}({', '.join(f'{p}={v}' for p, v in exact.items())})"
    return SymbolicActivation(label, NAMES[key][0](**exact), None, symbols)
