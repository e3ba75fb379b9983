r"""Activations as sympy expressions, with symbolic parameters allowed.

The engine's :func:`bnsym.activation` needs numeric parameters (it checks
continuity, growth and kinks numerically).  Derivations also want a slope
``a`` or an exponent left as a symbol: ``"leaky_relu(a)"``, or
``symbolic_activation("leaky_relu", slope=sympy.Symbol("a"))``.  This
module builds the expression from :data:`bnsym.activations.NAMES` in that
case, and defers to :func:`bnsym.activation` (with all its checks) when every
parameter is a number.  ``"step"`` (the Heaviside function) is accepted here
for kernels only: the engine refuses it because it is not continuous.
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from sympy.parsing.sympy_parser import parse_expr, rationalize, standard_transformations

from ..activations import NAMES, Activation, _ALIASES, _split_call, activation, x
from ..errors import BnsymInputError

_TRANSFORMATIONS = standard_transformations + (rationalize,)

#: Names accepted here in addition to :data:`bnsym.activations.NAMES`.
KERNEL_ONLY = {"step": sp.Heaviside(x), "heaviside": sp.Heaviside(x)}


@dataclass(frozen=True)
class SymbolicActivation:
    """``expr`` (a sympy expression in :data:`bnsym.activations.x`) and its provenance.

    ``engine`` is the validated :class:`~bnsym.activations.Activation` when
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


def _parameter(value, name):
    if isinstance(value, sp.Basic):
        return value
    if isinstance(value, str):
        try:
            value = sp.sympify(value, rational=True)
        except (sp.SympifyError, SyntaxError, TypeError):
            raise BnsymInputError(f"activation: parameter {name} must be a number or a symbol name, got {value!r}") from None
        if isinstance(value, sp.Symbol):
            return sp.Symbol(value.name, real=True)
        return value
    try:
        return sp.nsimplify(sp.sympify(value, rational=True), rational=True)
    except (sp.SympifyError, TypeError):
        raise BnsymInputError(f"activation: parameter {name} must be a number or a sympy symbol, got {value!r}") from None


def symbolic_activation(spec, **parameters) -> SymbolicActivation:
    """Return the :class:`SymbolicActivation` for ``spec``.

    ``spec``: a :class:`~bnsym.activations.Activation`, a name (parameters in
    call syntax ``"leaky_relu(a)"`` or as keywords, numbers or symbols), an
    expression string in ``x``, or a sympy expression.  Raises
    :class:`~bnsym.errors.BnsymInputError` (naming ``activation``) otherwise.

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
        name, call_args = _split_call(spec.strip())
        key = _ALIASES.get(name.lower(), name.lower()) if name else None
        if key in KERNEL_ONLY and not call_args and not parameters:
            return SymbolicActivation("step", KERNEL_ONLY[key], None)
        if key in NAMES:
            builder, defaults, _ = NAMES[key]
            values = {**defaults, **_call_arguments(key, call_args), **_checked(key, parameters)}
            exact = {p: _parameter(v, p) for p, v in values.items()}
            symbols = tuple(sorted(set().union(*(e.free_symbols for e in exact.values())), key=str)) if exact else ()
            if not symbols:
                return _engine(key, exact)
            if key == "relu_power":
                raise BnsymInputError(
                    "activation: relu_power needs a numeric integer exponent for a closed form, "
                    f"got {exact['exponent']}"
                )
            label = f"{key}({', '.join(f'{p}={v}' for p, v in exact.items())})"
            return SymbolicActivation(label, builder(**exact), None, symbols)
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


def _engine(key, exact):
    act = activation(key, **exact)
    return SymbolicActivation(act.label, act.expr, act)


def _checked(key, parameters):
    defaults = NAMES[key][1]
    unknown = sorted(set(parameters) - set(defaults))
    if unknown:
        raise BnsymInputError(f"activation: {key} has no parameter {unknown[0]!r} (its parameters: {', '.join(defaults) or 'none'})")
    return dict(parameters)


def _call_arguments(key, call_args):
    """``{parameter: value}`` from the text between the parentheses of ``"name(...)"``.

    Evaluated by sympy's parser as a call, so ``"leaky_relu(a)"``,
    ``"leaky_relu(slope=1/5)"`` and ``"relu_power(3)"`` all work; names
    become real symbols and decimals exact rationals.
    """
    if not call_args or not call_args.strip():
        return {}
    defaults = NAMES[key][1]

    def collect(*args, **kwargs):
        if len(args) > len(defaults):
            raise BnsymInputError(f"activation: {key} takes {len(defaults)} parameter(s), got {len(args)}")
        return {**dict(zip(defaults, args)), **_checked(key, kwargs)}

    try:
        given = parse_expr(f"_collect({call_args})", local_dict={"_collect": collect}, transformations=_TRANSFORMATIONS)
    except BnsymInputError:
        raise
    except Exception as exc:  # sympy's parser raises many kinds of errors on bad syntax
        raise BnsymInputError(f"activation: cannot parse the parameters of {key}({call_args}): {exc}") from None
    return {p: v.xreplace({s: sp.Symbol(s.name, real=True) for s in v.free_symbols}) for p, v in given.items()}
