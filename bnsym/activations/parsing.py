"""The safe reader of activation text: expressions in ``x`` to sympy, and its limits.

Text is parsed by Python's :func:`ast.parse` (``mode="eval"``) and the sympy
expression is built node by node from a whitelist; nothing the user writes is
ever evaluated by Python or by sympy's own parser.  Accepted:

* numbers (``int`` and decimal literals, which become exact rationals: ``0.1``
  is ``1/10``), the variable ``x`` and the constants ``pi``, ``E`` (= ``e``);
* ``+ - * / **`` and unary ``-``/``+``;
* calls of the sympy functions in :data:`FUNCTIONS` (positional arguments);
* calls of the named activations of :data:`~bnsym.activations.catalogue.NAMES`
  (any case, aliases allowed), read by this rule:

  - composition: ``name(expr)`` where ``expr`` contains ``x`` (or ``name`` has
    no parameters) is ``phi_name`` applied to ``expr``; parameters go by
    keyword, ``leaky_relu(x - 1, slope=0.2)``; ``leaky_relu(x)`` is the leaky
    ReLU with its default slope;
  - parameter syntax: ``name(p1, ..., k=v)`` where no argument contains ``x``
    and ``name`` has parameters is ``phi_name`` with those parameters, applied to
    ``x``: ``leaky_relu(0.2)``, ``relu_power(exponent=3)``, ``elu()``;
  - anything else (``leaky_relu(x, 0.2)``, a parameter that depends on ``x``)
    is refused with a message saying how to write it.

Everything else (attribute access, subscripts, strings, lambdas,
comprehensions, comparisons, boolean operators, ``:=``, starred or ``**``
arguments, names starting with ``_``, calls of unknown names) is refused with
:class:`~bnsym.errors.ActivationError`, one line naming what and where.

Limits, refused up front so that no input makes the analysis hang:
:data:`MAX_LENGTH` characters, :data:`MAX_NODES` syntax nodes, nesting depth
:data:`MAX_DEPTH` (:data:`MAX_CALL_DEPTH` for calls), :data:`MAX_EXPRESSION_SIZE` nodes of the
built sympy expression, numeric exponents of absolute value at most
:data:`MAX_EXPONENT` and exact numbers of at most :data:`MAX_NUMBER_BITS` bits.
"""

from __future__ import annotations

import ast
import decimal
import fractions
import numbers
from dataclasses import dataclass

import mpmath
import sympy as sp

from bnsym.activations.catalogue import NAMES, canonical_name, x
from bnsym.errors import ActivationError

#: Longest accepted activation text, in characters.
MAX_LENGTH = 1000
#: Most syntax nodes (numbers, names, operators, calls) in one activation text.
MAX_NODES = 300
#: Deepest nesting of operators and calls.
MAX_DEPTH = 20
#: Deepest nesting of function calls (``tanh(tanh(...))``), which drives the cost of the analysis.
MAX_CALL_DEPTH = 10
#: Most nodes of the sympy expression built (compositions such as ``gelu(gelu(x))`` copy their argument).
MAX_EXPRESSION_SIZE = 300
#: Largest absolute value of a numeric exponent (``x**64`` is fine, ``x**65`` is not).
MAX_EXPONENT = 64
#: Largest numerator or denominator, in bits, of an exact number met while reading.
MAX_NUMBER_BITS = 4096

#: Named constants.
CONSTANTS = {"pi": sp.pi, "E": sp.E, "e": sp.E}


def _sigmoid(z):
    return 1 / (1 + sp.exp(-z))


#: sympy functions callable by name (exact case): name -> (function, fewest, most arguments).
#: Names of :data:`NAMES` (``tanh``, ``erf``, ``sin``, ``abs``, ``relu``, ``sigmoid``, ...) are callable too.
FUNCTIONS = {
    "exp": (sp.exp, 1, 1),
    "log": (sp.log, 1, 2),
    "sqrt": (sp.sqrt, 1, 1),
    "erfc": (sp.erfc, 1, 1),
    "cos": (sp.cos, 1, 1),
    "cosh": (sp.cosh, 1, 1),
    "sinh": (sp.sinh, 1, 1),
    "atan": (sp.atan, 1, 1),
    "asinh": (sp.asinh, 1, 1),
    "Abs": (sp.Abs, 1, 1),
    "Max": (sp.Max, 2, 16),
    "Min": (sp.Min, 2, 16),
    "max": (sp.Max, 2, 16),
    "min": (sp.Min, 2, 16),
    "sign": (sp.sign, 1, 1),
    "Heaviside": (sp.Heaviside, 1, 1),
    "floor": (sp.floor, 1, 1),
    "ceiling": (sp.ceiling, 1, 1),
}

_REFUSED = {
    ast.Attribute: "attribute access",
    ast.Subscript: "subscript",
    ast.Slice: "slice",
    ast.Lambda: "lambda",
    ast.ListComp: "comprehension",
    ast.SetComp: "comprehension",
    ast.DictComp: "comprehension",
    ast.GeneratorExp: "generator expression",
    ast.NamedExpr: "assignment expression (:=)",
    ast.Starred: "starred argument",
    ast.BoolOp: "boolean operator",
    ast.Compare: "comparison",
    ast.IfExp: "conditional expression",
    ast.JoinedStr: "f-string",
    ast.List: "list",
    ast.Tuple: "tuple",
    ast.Dict: "dict",
    ast.Set: "set",
}


@dataclass(frozen=True)
class Parsed:
    """An activation text read into sympy.

    ``expr`` is the expression in :data:`x`; ``key`` and ``parameters`` are set
    when the whole text is one named activation in parameter syntax
    (``"leaky_relu(0.2)"``, ``"elu()"``): its :data:`NAMES` key and its exact
    parameters, in the order of the defaults.
    """

    expr: sp.Expr
    key: str | None = None
    parameters: tuple = ()


def shown(text) -> str:
    """``repr`` of ``text`` cut to 80 characters, for one-line messages."""
    text = str(text)
    return repr(text if len(text) <= 80 else text[:77] + "...")


def first_line(exc) -> str:
    """``"Type: first line of the message"`` of an exception, cut to 120 characters."""
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {message[:120]}" if message else type(exc).__name__


def parse_expression(text: str, *, symbolic_parameters: bool = False) -> Parsed:
    """Read ``text``, an activation expression in ``x``, into a :class:`Parsed`.

    ``symbolic_parameters``: let names other than ``x`` stand for real symbols,
    but only as parameters of named activations (``"leaky_relu(a)"``).
    Raises :class:`ActivationError` (one line) for anything outside the
    grammar of the module docstring or its limits.  Cost: linear in the text
    (at most :data:`MAX_NODES` nodes, each one sympy operation on small numbers).
    """
    root = _syntax_tree(text)
    reader = _Reader(text, symbolic_parameters)
    body = root.body
    key, params = None, ()
    try:
        if isinstance(body, ast.Call) and isinstance(body.func, ast.Name) and canonical_name(body.func.id):
            expr, named = reader.named(body, canonical_name(body.func.id), parameter=False)
            if named is not None:
                key, params = canonical_name(body.func.id), tuple(named.items())
        else:
            expr = reader.build(body, parameter=False)
    except ActivationError:
        raise
    except Exception as exc:  # sympy's constructors raise many kinds of errors on odd input
        raise ActivationError(f"activation {shown(text)}: sympy cannot build it ({first_line(exc)})") from None
    if not isinstance(expr, sp.Expr):
        raise ActivationError(f"activation {shown(text)} is not an expression in x (got a {type(expr).__name__})")
    for power in expr.atoms(sp.Pow):
        if power.exp.is_Rational and abs(power.exp) > MAX_EXPONENT:
            raise ActivationError(
                f"activation {shown(text)}: the exponent {power.exp} exceeds the limit of {MAX_EXPONENT} in absolute value"
            )
    return Parsed(expr, key, params)


def parse_number(text: str, what: str, *, symbolic: bool = False) -> sp.Expr:
    """Read ``text`` (a parameter value such as ``"0.2"``, ``"1/5"``, ``"sqrt(2)"``, or with
    ``symbolic`` a name such as ``"a"``) into an exact sympy number or expression in real symbols.

    ``what`` names the argument in the refusal.  Never contains ``x``.
    Cost: as :func:`parse_expression`.
    """
    root = _syntax_tree(text, what=what)
    value = _Reader(text, symbolic, what=what).build(root.body, parameter=True)
    if value.has(x):
        raise ActivationError(f"{what} must not depend on x, got {shown(text)}")
    return value


def exact_parameters(key: str, given: dict, *, symbolic: bool = False) -> dict:
    """The parameters of the named activation ``key``: ``given`` over the defaults, as exact sympy values.

    Values may be sympy numbers, Python or mpmath numbers, or text (read by
    :func:`parse_number`); with ``symbolic`` also sympy expressions in symbols
    other than ``x``.  Refuses unknown parameter names, non-real or infinite
    values, and ``relu_power`` exponents outside ``[1, MAX_EXPONENT]``.
    Cost: constant.
    """
    defaults = NAMES[key][1]
    for name in given:
        if name not in defaults:
            raise ActivationError(
                f"{key} has no parameter {name!r}"
                + (f"; its parameters are: {', '.join(defaults)}" if defaults else "; it takes no parameters")
            )
    exact = {name: _exact_value(given.get(name, default), f"{key}: parameter {name}", symbolic) for name, default in defaults.items()}
    if key == "relu_power":
        exponent = exact["exponent"]
        if exponent.free_symbols:
            raise ActivationError(f"relu_power: the exponent must be a number (>= 1) for a closed form, got {exponent}")
        if not exponent >= 1:
            raise ActivationError(
                f"relu_power: exponent must be >= 1 (phi' must stay bounded near the kink), got {exponent}"
            )
        if exponent > MAX_EXPONENT:
            raise ActivationError(f"relu_power: exponent must be at most {MAX_EXPONENT}, got {exponent}")
    return exact


def _exact_value(value, what, symbolic):
    """An exact sympy value for a parameter given as text, a number or a sympy object."""
    if isinstance(value, str):
        value = parse_number(value, what, symbolic=symbolic)
    elif isinstance(value, bool) or not isinstance(value, (sp.Basic, numbers.Number, mpmath.mpf)):
        raise ActivationError(f"{what} must be a real number, got {value!r}")
    elif isinstance(value, numbers.Integral):
        value = sp.Integer(int(value))
    elif isinstance(value, fractions.Fraction):
        value = sp.Rational(value.numerator, value.denominator)
    elif isinstance(value, decimal.Decimal):
        if not value.is_finite():
            raise ActivationError(f"{what} must be a finite real number, got {value!r}")
        value = sp.Rational(str(value))
    elif not isinstance(value, sp.Basic):
        try:
            value = sp.nsimplify(sp.sympify(value, rational=True), rational=True)
        except (sp.SympifyError, TypeError, ValueError, OverflowError):
            raise ActivationError(f"{what} must be a finite real number, got {value!r}") from None
    if not isinstance(value, sp.Expr):
        raise ActivationError(f"{what} must be a real number, got {value!r}")
    if value.has(x):
        raise ActivationError(f"{what} must not depend on x, got {value}")
    if value.free_symbols:
        if symbolic:
            return value
        raise ActivationError(f"{what} must be a finite real number, got {value}")
    if value.has(sp.Float):
        value = sp.nsimplify(value, rational=True)
    if not (value.is_real and value.is_finite):
        raise ActivationError(f"{what} must be a finite real number, got {value}")
    return value


def _syntax_tree(text, what="activation"):
    """``ast.parse(text, mode="eval")`` after the length, node and depth limits."""
    if not isinstance(text, str):
        raise ActivationError(f"{what} must be text, got {type(text).__name__}")
    if len(text) > MAX_LENGTH:
        raise ActivationError(f"{what} text is {len(text)} characters long; the limit is {MAX_LENGTH}")
    try:
        root = ast.parse(text.strip(), mode="eval")
    except SyntaxError as exc:
        where = f" at column {exc.offset}" if exc.offset else ""
        raise ActivationError(f"cannot parse {what} {shown(text)}: {exc.msg}{where}") from None
    except (ValueError, RecursionError, MemoryError) as exc:
        raise ActivationError(f"cannot parse {what} {shown(text)}: {type(exc).__name__}") from None
    count = 0
    stack = [(root.body, 1, 0)]
    while stack:
        node, depth, calls = stack.pop()
        if isinstance(node, ast.Call):
            calls += 1
            if calls > MAX_CALL_DEPTH:
                raise ActivationError(f"{what} {shown(text)} nests function calls more than {MAX_CALL_DEPTH} deep")
        count += 1
        if count > MAX_NODES:
            raise ActivationError(f"{what} {shown(text)} has more than {MAX_NODES} syntax nodes; simplify it")
        if depth > MAX_DEPTH:
            raise ActivationError(f"{what} {shown(text)} is nested more than {MAX_DEPTH} levels deep")
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.expr_context, ast.operator, ast.unaryop)):
                continue
            # a call's function name and keyword wrappers do not add a level
            same = isinstance(child, ast.keyword) or (isinstance(node, ast.Call) and child is node.func)
            stack.append((child, depth if same else depth + 1, calls))
    return root


def _size(expr) -> int:
    """Nodes of the tree of ``expr``, counted up to ``MAX_EXPRESSION_SIZE + 1`` (cost bounded by that)."""
    count = 0
    for count, _ in enumerate(sp.preorder_traversal(expr), start=1):
        if count > MAX_EXPRESSION_SIZE:
            break
    return count


def _too_large(expr) -> bool:
    """True when the tree of ``expr`` has more than :data:`MAX_EXPRESSION_SIZE` nodes."""
    return _size(expr) > MAX_EXPRESSION_SIZE


def _bits(number) -> int:
    return max(abs(number.p).bit_length(), number.q.bit_length())


class _Reader:
    """Builds the sympy expression of one syntax tree, refusing what is not whitelisted."""

    def __init__(self, text, symbolic, what="activation"):
        self.text = text
        self.symbolic = symbolic
        self.what = what

    def fail(self, node, message):
        column = getattr(node, "col_offset", None)
        where = f" at column {column + 1}" if column is not None else ""
        raise ActivationError(f"{self.what} {shown(self.text)}: {message}{where}")

    def refuse(self, node, description):
        self.fail(node, f"{description} is not allowed (only numbers, x, pi, E, + - * / ** and calls of known functions)")

    def build(self, node, parameter):
        """The sympy value of ``node``; ``parameter``: inside a parameter of a named activation."""
        if isinstance(node, ast.Constant):
            return self.number(node)
        if isinstance(node, ast.Name):
            return self.name(node, parameter)
        if isinstance(node, ast.UnaryOp):
            if isinstance(node.op, ast.USub):
                return -self.build(node.operand, parameter)
            if isinstance(node.op, ast.UAdd):
                return self.build(node.operand, parameter)
            self.refuse(node, f"the operator {type(node.op).__name__}")
        if isinstance(node, ast.BinOp):
            return self.binary(node, parameter)
        if isinstance(node, ast.Call):
            result = self.call(node, parameter)
            if _too_large(result):
                self.fail(node, f"the expression grows beyond {MAX_EXPRESSION_SIZE} sympy nodes; simplify it")
            self.check_constant(node, result)
            return result
        self.refuse(node, _REFUSED.get(type(node), f"{type(node).__name__} syntax"))

    def number(self, node):
        value = node.value
        if isinstance(value, (str, bytes)):
            self.refuse(node, "a string literal")
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            self.refuse(node, f"the constant {value!r}")
        if isinstance(value, int):
            number = sp.Integer(value)
        else:
            literal = ast.get_source_segment(self.text.strip(), node) or repr(value)
            try:
                number = sp.Rational(literal.replace("_", ""))
            except (TypeError, ValueError):  # pragma: no cover - Python accepted the literal
                self.fail(node, f"cannot read the number {literal}")
        if _bits(number) > MAX_NUMBER_BITS:
            self.fail(node, f"the number is larger than {MAX_NUMBER_BITS} bits")
        return number

    def name(self, node, parameter):
        name = node.id
        if name.startswith("_"):
            self.refuse(node, f"the name {name!r} (names starting with _)")
        if name == "x":
            return x
        if name in CONSTANTS:
            return CONSTANTS[name]
        if name in FUNCTIONS or canonical_name(name):
            self.fail(node, f"{name} is a function; call it, e.g. {name}(x)")
        if parameter and self.symbolic:
            return sp.Symbol(name, real=True)
        if self.what != "activation":
            self.fail(node, f"unknown name {name!r}; a parameter must be a number")
        raise ActivationError(
            f"unknown activation {shown(self.text)}: the name {name!r} at column {node.col_offset + 1} is not "
            f"a built-in name ({', '.join(NAMES)}) and an activation is an expression in x alone (it uses {name})"
        )

    def binary(self, node, parameter):
        op = node.op
        if not isinstance(op, (ast.Add, ast.Sub, ast.Mult, ast.Div, ast.Pow)):
            self.refuse(node, f"the operator {type(op).__name__}")
        left = self.build(node.left, parameter)
        right = self.build(node.right, parameter)
        if isinstance(op, ast.Pow):
            self.check_power(node, left, right)
            result = left**right
        elif isinstance(op, ast.Add):
            result = left + right
        elif isinstance(op, ast.Sub):
            result = left - right
        elif isinstance(op, ast.Mult):
            result = left * right
        else:
            result = left / right
        if isinstance(result, sp.Rational) and _bits(result) > MAX_NUMBER_BITS:
            self.fail(node, f"a number larger than {MAX_NUMBER_BITS} bits arises")
        if isinstance(op, ast.Pow) and _too_large(result):
            self.fail(node, f"the expression grows beyond {MAX_EXPRESSION_SIZE} sympy nodes; simplify it")
        if isinstance(op, (ast.Pow, ast.Mult)):
            self.check_constant(node, result)
        return result

    def check_constant(self, node, value):
        """Refuse a constant (no ``x``, no symbols) beyond ``2**MAX_NUMBER_BITS`` in absolute value.

        Checked at every call and power, so that towers such as ``exp(exp(exp(64)))``
        stop at the first level too large to evaluate cheaply.
        """
        if isinstance(value, sp.Rational) or not getattr(value, "is_number", False):
            return
        try:
            number = sp.N(value, 15)
            if number.has(sp.zoo, sp.nan, sp.oo, -sp.oo):
                return  # the analysis refuses these with its own reason
            too_large = bool(abs(number) > sp.Integer(2) ** MAX_NUMBER_BITS)
        except (TypeError, ValueError, OverflowError, ArithmeticError):
            self.fail(node, "a constant here cannot be evaluated")
        if too_large:
            self.fail(node, f"a constant larger than 2**{MAX_NUMBER_BITS} in absolute value arises")

    def check_power(self, node, base, exponent):
        if not exponent.is_number:
            return
        if isinstance(exponent, sp.Rational):
            size = abs(exponent)
        else:
            try:
                size = abs(float(sp.N(exponent, 15)))
            except (TypeError, ValueError, OverflowError, ArithmeticError):
                self.fail(node, "the exponent cannot be evaluated to a real number")
        if not size <= MAX_EXPONENT:
            self.fail(node, f"the exponent {exponent} exceeds the limit of {MAX_EXPONENT} in absolute value")
        if isinstance(base, sp.Rational) and isinstance(exponent, sp.Rational) and _bits(base) * size > MAX_NUMBER_BITS:
            self.fail(node, f"the power is larger than {MAX_NUMBER_BITS} bits")

    def call(self, node, parameter):
        func = node.func
        if not isinstance(func, ast.Name):
            self.refuse(node, f"calling the result of {_REFUSED.get(type(func), type(func).__name__ + ' syntax')} (only plain function names can be called)")
        name = func.id
        if name.startswith("_"):
            self.refuse(node, f"the name {name!r} (names starting with _)")
        for argument in node.args:
            if isinstance(argument, ast.Starred):
                self.refuse(argument, "a starred argument")
        for keyword in node.keywords:
            if keyword.arg is None:
                self.refuse(keyword.value, "a ** argument")
        if name in FUNCTIONS:
            function, fewest, most = FUNCTIONS[name]
            if node.keywords:
                self.fail(node, f"{name} takes no keyword arguments")
            if not fewest <= len(node.args) <= most:
                count = str(fewest) if fewest == most else f"{fewest} to {most}"
                self.fail(node, f"{name} takes {count} argument(s), got {len(node.args)}")
            return function(*(self.build(a, parameter) for a in node.args))
        key = canonical_name(name)
        if key is None:
            self.fail(
                node,
                f"unknown function {name!r}; known are {', '.join(sorted(FUNCTIONS))} and the activations {', '.join(NAMES)}",
            )
        expr, _ = self.named(node, key, parameter)
        return expr

    def named(self, node, key, parameter):
        """``(expr, parameters)`` of a call of a named activation; ``parameters`` is ``None`` for composition."""
        builder, defaults, _ = NAMES[key]
        inner = parameter or self.symbolic
        args = [self.build(a, inner) for a in node.args]
        keywords = {}
        for keyword in node.keywords:
            if keyword.arg not in defaults:
                known = f"its parameters are: {', '.join(defaults)}" if defaults else "it takes no parameters"
                self.fail(keyword.value, f"{key} has no parameter {keyword.arg!r} ({known})")
            if keyword.arg in keywords:
                self.fail(keyword.value, f"parameter {keyword.arg} of {key} is given twice")
            value = self.build(keyword.value, inner)
            if value.has(x):
                self.fail(keyword.value, f"parameter {keyword.arg} of {key} must not depend on x")
            keywords[keyword.arg] = value
        with_x = [a for a in args if a.has(x)]
        example = f"{key}(x, {next(iter(defaults))}=...)" if defaults else f"{key}(x)"
        if with_x or (not defaults and args):
            if len(args) != 1:
                self.fail(
                    node,
                    f"{key} applied to an expression takes that one expression and its parameters by keyword, e.g. {example}",
                )
            (argument,) = args
            others = sorted(str(s) for s in argument.free_symbols if s != x)
            if others:
                self.fail(node, f"only parameters of named activations may be symbols, but the argument of {key} uses {', '.join(others)}")
            params = self.parameters(node, key, keywords)
            outer = builder(**params)
            if argument == x:
                return outer, None
            if _size(outer) + outer.count(x) * _size(argument) > MAX_EXPRESSION_SIZE:
                self.fail(node, f"the expression grows beyond {MAX_EXPRESSION_SIZE} sympy nodes; simplify it")
            return outer.xreplace({x: argument}), None
        if len(args) > len(defaults):
            self.fail(
                node,
                f"{key} takes {len(defaults)} parameter(s) ({', '.join(defaults) or 'none'}), got {len(args)}; "
                f"to apply it to an expression write {example}",
            )
        given = dict(zip(defaults, args))
        for name in keywords:
            if name in given:
                self.fail(node, f"parameter {name} of {key} is given twice")
        given.update(keywords)
        params = self.parameters(node, key, given)
        return builder(**params), params

    def parameters(self, node, key, given):
        try:
            return exact_parameters(key, given, symbolic=self.symbolic)
        except ActivationError as exc:
            self.fail(node, str(exc))
