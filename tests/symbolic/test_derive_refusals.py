"""Careless input to ``bnsym.derive`` and ``bnsym derive`` (issue 12): one-line refusals, bounded work."""

from __future__ import annotations

import pytest

import bnsym
from bnsym.cli import main
from bnsym.errors import BnsymInputError


@pytest.mark.parametrize("terms", [2.5, 0, -2, True, 10**6])
def test_series_terms(terms):
    with pytest.raises(BnsymInputError, match="series_terms"):
        bnsym.derive("relu", "lambda_G", series_terms=terms)


@pytest.mark.parametrize("dps", ["-1", "0", "1000000"])
def test_cli_dps_outside_the_promise_is_refused(dps, capsys):
    """``--dps -1`` printed 1.0e+1 and ``--dps 0`` printed .0e+0 for 1.788; ``--dps 1000000`` hung."""
    assert main(["derive", "relu", "-B", "8", "--dps", dps]) == 2
    err = capsys.readouterr().err.strip()
    assert "dps" in err and "\n" not in err


def test_cli_negative_series_is_refused(capsys):
    assert main(["derive", "relu", "--series", "-2"]) == 2
    assert "series_terms" in capsys.readouterr().err


def test_huge_concrete_batch_is_fast_and_right():
    """``derive(relu, lambda_G, B = 10^9).value`` took minutes of exact integer algebra; now the closed
    form is derived in a symbol and evaluated numerically: checked against the engine."""
    import time

    start = time.perf_counter()
    d = bnsym.derive("relu", "lambda_G", batch_size=10**9)
    value = d.value
    assert time.perf_counter() - start < 30
    engine = bnsym.gradient_explosion_rate("relu", 10**9, dps=20)
    assert abs(value - engine.value) < 1e-12


def test_high_degree_has_no_symbolic_hang():
    import time

    start = time.perf_counter()
    with pytest.raises(BnsymInputError, match="degree 50"):
        bnsym.derive("x**50", "lambda_G")
    assert time.perf_counter() - start < 30
