"""Activation text is read by a whitelist parser: injection attempts, oversized and
over-deep inputs are refused with a one-line BnsymInputError, quickly, and execute nothing.

Every attempt tries to create the file SENTINEL in the (temporary) working
directory; the tests assert it never appears.  Entry points covered:
bnsym.activation, bnsym.gradient_explosion_rate, bnsym.derive and the CLI.
"""

from __future__ import annotations

import time

import pytest

import bnsym
from bnsym.cli import main
from bnsym.errors import BnsymInputError

SECONDS = 2.0

ATTEMPTS = [
    "x + 0*len(open('SENTINEL','w').write('hi') and 'a')",
    "x + 0*__import__('os').system('touch SENTINEL')",
    "__import__('os').system('touch SENTINEL')",
    "x + 0*().__class__.__base__.__subclasses__()",
    "x.__class__",
    "x + (lambda: open('SENTINEL', 'w'))()",
    "x + 0*sum([open('SENTINEL', 'w') for i in [1]])",
    "x + 0*[1][0]",
    "x + 'SENTINEL'",
    "x + b'SENTINEL'",
    "x + (y := open('SENTINEL', 'w'))",
    "x + 0*max(*[open('SENTINEL', 'w')])",
    "open('SENTINEL', 'w')",
    "eval(\"open('SENTINEL','w')\")",
    "exec(\"open('SENTINEL','w')\")",
    "getattr(x, '__class__')",
    "x + 0*globals()",
    "__builtins__",
    "x if open('SENTINEL', 'w') else x",
    "x and open('SENTINEL', 'w')",
    "x < open('SENTINEL', 'w')",
    "tanh(x, **{'a': open('SENTINEL', 'w')})",
    "leaky_relu(x, slope=open('SENTINEL', 'w'))",
    "leaky_relu(open('SENTINEL', 'w'))",
    "relu_power(exponent=__import__('os').system('touch SENTINEL'))",
    "Max(0, x).func(x)",
    "f'{open(\"SENTINEL\", \"w\")}'",
    "x" + " + x" * 600,
    "(" * 250 + "x" + ")" * 250,
    "1+(" * 100 + "x" + ")" * 100,
    "-" * 900 + "x",
    "x**(10**10)",
    "x**-(10**10)",
    "10**10**10 * x",
    "((2**64)**64)**64 * x",
    "1*" + "tanh(" * 30 + "x" + ")" * 30,
    "1e999999 * x",
    "relu_power(10**9)",
    "x\x00",
    "x + 0*exp(exp(10**9))",
    "tanh(exp(exp(exp(64))))*x",
    "x**exp(exp(10**9))",
    "1*" + "elu(" * 5 + "x" + ")" * 5,
    "1*" + "gelu(" * 8 + "x" + ")" * 8,
]


def _one_line_refusal(call):
    start = time.perf_counter()
    with pytest.raises(BnsymInputError) as info:
        call()
    elapsed = time.perf_counter() - start
    message = str(info.value)
    assert message and "\n" not in message, message
    assert elapsed < SECONDS, (elapsed, message)
    return message


@pytest.fixture()
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    yield tmp_path
    assert not (tmp_path / "SENTINEL").exists()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("text", ATTEMPTS)
def test_activation_refuses_and_executes_nothing(text, workdir):
    _one_line_refusal(lambda: bnsym.activation(text))


@pytest.mark.parametrize("text", ATTEMPTS[:8] + ATTEMPTS[-10:])
def test_gradient_explosion_rate_refuses(text, workdir):
    _one_line_refusal(lambda: bnsym.gradient_explosion_rate(text, 4))


@pytest.mark.parametrize("text", ATTEMPTS[:8] + ATTEMPTS[-10:])
def test_derive_refuses(text, workdir):
    _one_line_refusal(lambda: bnsym.derive(text, "lambda_G"))


@pytest.mark.parametrize(
    "parameters",
    [
        {"slope": "__import__('os').system('touch SENTINEL')"},
        {"slope": "open('SENTINEL', 'w')"},
        {"slope": "a.__class__"},
        {"slope": "x"},
    ],
)
def test_parameter_text_is_parsed_safely(parameters, workdir):
    _one_line_refusal(lambda: bnsym.activation("leaky_relu", **parameters))
    _one_line_refusal(lambda: bnsym.derive("leaky_relu", "lambda_G", **parameters))


@pytest.mark.slow
def test_symbolic_parameter_text_stays_a_symbol(workdir):
    d = bnsym.derive("leaky_relu", "lambda_G", slope="a")
    assert {s.name for s in d.limit.free_symbols} == {"a"}


@pytest.mark.parametrize("text", ATTEMPTS[:6] + ["x**(10**10)", "1*" + "tanh(" * 30 + "x" + ")" * 30])
@pytest.mark.parametrize("command", [["report"], ["derive"]])
def test_cli_refuses_with_exit_code_2(text, command, workdir, capsys):
    start = time.perf_counter()
    args = [*command, text] + (["-B", "8"] if command == ["report"] else [])
    assert main(args) == 2
    assert time.perf_counter() - start < SECONDS
    err = capsys.readouterr().err.strip()
    assert err.startswith("bnsym: error:") and "\n" not in err, err


def test_limits_are_named_in_the_messages():
    assert "1000" in _one_line_refusal(lambda: bnsym.activation("x" + " + x" * 600))
    assert "64" in _one_line_refusal(lambda: bnsym.activation("x**65"))
    assert "deep" in _one_line_refusal(lambda: bnsym.activation("1*" + "tanh(" * 30 + "x" + ")" * 30))
    assert "attribute access" in _one_line_refusal(lambda: bnsym.activation("x.real"))
    assert "string literal" in _one_line_refusal(lambda: bnsym.activation("x + 'a'"))
    assert "unknown function 'open'" in _one_line_refusal(lambda: bnsym.activation("open(x)"))
    assert "'__import__'" in _one_line_refusal(lambda: bnsym.activation("__import__(x)"))
    assert "column" in _one_line_refusal(lambda: bnsym.activation("x + x.real"))


def test_no_eval_or_string_parser_in_the_activation_package():
    import ast
    import pathlib

    package = pathlib.Path(bnsym.__file__).parent
    for path in [*(package / "activations").glob("*.py"), package / "symbolic" / "expressions.py"]:
        source = path.read_text(encoding="utf-8")
        assert "sympy.parsing" not in source, path.name
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.Call):
                func = node.func
                name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
                assert name not in {"eval", "exec", "compile", "parse_expr", "__import__"}, (path.name, node.lineno)


@pytest.mark.parametrize("option", ["--gamma", "--beta", "-B"])
def test_cli_derive_options_execute_nothing(option, workdir, capsys):
    assert main(["derive", "relu", option, "__import__('os').system('touch SENTINEL')"]) == 2
    assert "\n" not in capsys.readouterr().err.strip()


def test_derive_gamma_and_beta_text_execute_nothing(workdir):
    for keyword in ("gamma", "beta"):
        _one_line_refusal(lambda keyword=keyword: bnsym.derive("relu", "q", **{keyword: "open('SENTINEL', 'w')"}))
