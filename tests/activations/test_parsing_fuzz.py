"""Fuzzing the activation parser: token soups and random syntax trees (with dunder names,
attribute access, subscripts, strings and calls) give a valid Activation or a one-line
BnsymInputError, never another exception, within a deadline, and never a side effect.
"""

from __future__ import annotations

import ast
import os
import pathlib
import tempfile

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import bnsym
from bnsym.errors import BnsymInputError

TOKENS = ["x", "x", "1", "2", "0.5", "pi", "E", "+", "-", "*", "/", "**", "(", ")", ",", "=", ".", "[", "]",
          "tanh", "relu", "leaky_relu", "gelu", "exp", "log", "sqrt", "Max", "abs", "slope", "__import__",
          "__class__", "open", "eval", "'s'", "lambda", ":", "for", "in", "if", "else", "and", "<", "10**10", "@"]
NAMES = ["x", "x", "pi", "e", "y", "__class__", "__import__", "_secret", "open", "tanh", "relu", "slope"]
FUNCTIONS = ["tanh", "relu", "leaky_relu", "relu_power", "gelu", "exp", "log", "sqrt", "Max", "abs", "sin",
             "open", "eval", "getattr", "__import__", "elu", "frobnicate"]
SENTINEL = "SENTINEL"

# a tree that, if anything evaluated it, would create the sentinel file
PAYLOAD = ast.parse(f"open({SENTINEL!r}, 'w')", mode="eval").body


def _leaf():
    return st.one_of(
        st.sampled_from(NAMES).map(lambda n: ast.Name(id=n, ctx=ast.Load())),
        st.integers(-5, 70).map(lambda v: ast.Constant(value=v)),
        st.sampled_from([0.1, 2.5, 1e-3]).map(lambda v: ast.Constant(value=v)),
        st.sampled_from(["s", b"b", None, True, 1j]).map(lambda v: ast.Constant(value=v)),
        st.just(PAYLOAD),
    )


def _extend(children):
    binop = st.builds(lambda a, op, b: ast.BinOp(left=a, op=op, right=b), children,
                      st.sampled_from([ast.Add(), ast.Sub(), ast.Mult(), ast.Div(), ast.Pow(), ast.Mod(), ast.BitXor()]), children)
    unary = st.builds(lambda op, a: ast.UnaryOp(op=op, operand=a), st.sampled_from([ast.USub(), ast.UAdd(), ast.Not()]), children)
    call = st.builds(
        lambda f, args, kw: ast.Call(func=ast.Name(id=f, ctx=ast.Load()), args=args,
                                     keywords=[ast.keyword(arg=k, value=v) for k, v in kw]),
        st.sampled_from(FUNCTIONS), st.lists(children, max_size=3),
        st.lists(st.tuples(st.sampled_from(["slope", "exponent", "alpha", "__class__"]), children), max_size=1, unique_by=lambda t: t[0]),
    )
    attribute = st.builds(lambda a, n: ast.Attribute(value=a, attr=n, ctx=ast.Load()), children, st.sampled_from(["real", "__class__", "func"]))
    subscript = st.builds(lambda a, b: ast.Subscript(value=a, slice=b, ctx=ast.Load()), children, children)
    compare = st.builds(lambda a, b: ast.Compare(left=a, ops=[ast.Lt()], comparators=[b]), children, children)
    return st.one_of(binop, binop, unary, call, call, attribute, subscript, compare)


trees = st.recursive(_leaf(), _extend, max_leaves=12).map(lambda t: ast.unparse(ast.fix_missing_locations(ast.Expression(body=t))))
soups = st.lists(st.sampled_from(TOKENS), min_size=1, max_size=14).map(" ".join)


def _check(text):
    with tempfile.TemporaryDirectory() as tmp:
        cwd = os.getcwd()
        os.chdir(tmp)
        try:
            try:
                act = bnsym.activation(text)
            except BnsymInputError as exc:
                assert str(exc) and "\n" not in str(exc), str(exc)
            else:
                assert isinstance(act, bnsym.Activation)
            assert not (pathlib.Path(tmp) / SENTINEL).exists()
        finally:
            os.chdir(cwd)


FUZZ = settings(max_examples=200, deadline=2000, derandomize=True, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(soups)
def test_token_soups(text):
    _check(text)


@FUZZ
@given(trees)
def test_random_syntax_trees(text):
    _check(text)


def _safe_leaf():
    return st.one_of(st.just(ast.Name(id="x", ctx=ast.Load())), st.sampled_from([1, 2, 3, 0.5]).map(lambda v: ast.Constant(value=v)))


def _safe_extend(children):
    binop = st.builds(lambda a, op, b: ast.BinOp(left=a, op=op, right=b), children,
                      st.sampled_from([ast.Add(), ast.Sub(), ast.Mult()]), children)
    call = st.builds(lambda f, a: ast.Call(func=ast.Name(id=f, ctx=ast.Load()), args=[a], keywords=[]),
                     st.sampled_from(["tanh", "relu", "leaky_relu", "gelu", "sin", "abs", "erf", "sigmoid", "softplus"]), children)
    return st.one_of(binop, call, call)


mostly_valid = st.recursive(_safe_leaf(), _safe_extend, max_leaves=5).map(
    lambda t: ast.unparse(ast.fix_missing_locations(ast.Expression(body=t))))


@settings(max_examples=25, deadline=5000, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(mostly_valid)
def test_expressions_that_reach_the_analysis(text):
    _check(text)
