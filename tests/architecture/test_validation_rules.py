"""One validation module, one rule per kind of argument, applied by every entry point."""

from __future__ import annotations

import math

import numpy as np
import pytest

import bnsym
from bnsym import validation
from bnsym.cli import main
from bnsym.errors import BnsymInputError
from bnsym.meanfield.propagation import example_input


@pytest.mark.parametrize("value, expected", [(8, 8), (8.0, 8), (np.int64(8), 8)])
def test_integral_values_are_accepted_everywhere(value, expected):
    assert validation.integer(value, name="n", minimum=1) == expected
    assert validation.batch_size(value) == expected
    sim = bnsym.simulate("relu", value, 2, 16, seeds=1)
    assert sim.grams.shape[-1] == expected
    prop = bnsym.propagate("relu", example_input("random", 8), 1, batch_size=value, dps=8)
    assert prop.grams[0].shape == (expected, expected)


@pytest.mark.parametrize("value", [8.5, True, "8", math.nan, math.inf, None, -1])
def test_non_integers_are_refused_with_the_argument_named(value):
    with pytest.raises(BnsymInputError, match="depth"):
        validation.integer(value, name="depth", minimum=1)
    with pytest.raises(BnsymInputError, match="depth"):
        bnsym.simulate("relu", 8, value, 16, seeds=1)
    with pytest.raises(BnsymInputError, match="depth"):
        bnsym.propagate("relu", example_input("random", 8), value, dps=8)


def test_infinite_batch_is_refused_where_a_matrix_is_needed(capsys):
    assert main(["propagate", "relu", "-B", "inf", "--depth", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "batch_size must be finite" in err
    with pytest.raises(BnsymInputError, match="finite"):
        example_input("random", math.inf)
    with pytest.raises(BnsymInputError, match="finite batch sizes"):
        bnsym.fixed_point("relu", math.inf).array()


def test_negative_seed_is_one_line(capsys):
    assert main(["propagate", "relu", "-B", "8", "--depth", "1", "--seed", "-1"]) == 2
    assert "seed must be" in capsys.readouterr().err


def test_propagate_with_an_infinite_batch_size_is_one_line():
    """``int(inf)`` used to end in an OverflowError traceback."""
    with pytest.raises(BnsymInputError, match="batch_size must be finite"):
        bnsym.propagate("relu", example_input("random", 6), 1, batch_size=math.inf)
