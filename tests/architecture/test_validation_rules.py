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


def test_numpy_reals_and_fractions_are_the_numbers_they_equal():
    """np.float32, np.int64 and Fraction were refused ("must be a finite real number"): mpmath takes none."""
    from fractions import Fraction

    import mpmath

    assert validation.real(np.float32(0.1), name="gamma") == mpmath.mpf(float(np.float32(0.1)))
    assert validation.real(np.int64(3), name="gamma") == 3
    with mpmath.workdps(60):
        assert abs(validation.real(Fraction(1, 3), name="gamma") - mpmath.mpf(1) / 3) < mpmath.mpf(10) ** -55
    assert bnsym.fixed_point("relu", 8, gamma=np.float32(2.0)).value == bnsym.fixed_point("relu", 8, gamma=2).value
    with mpmath.workdps(30):  # a long double by its exact binary value, not rounded to a float first
        p, q = (np.longdouble(1) / 3).as_integer_ratio()
        assert validation.real(np.longdouble(1) / 3, name="gamma") == mpmath.mpf(int(p)) / int(q)
    for bad in (np.float32("nan"), np.bool_(True), complex(1, 0)):
        with pytest.raises(BnsymInputError, match="gamma"):
            validation.real(bad, name="gamma")


def test_the_trainer_takes_its_bounds_from_the_validation_module():
    """The optimisers and the network configuration used their own checks (optim._number, network._check_int)."""
    import json

    from bnsym.train.network import NetworkConfig
    from bnsym.train.optim import SGD, RMSProp

    params = [np.zeros(3, np.float32)]
    for bad, word in ((0, "lr"), (math.nan, "lr"), ("x", "lr"), ("0.1", "lr must be a number, got the string"),
                      (10**400, "float64 holds")):
        with pytest.raises(BnsymInputError, match=word):
            SGD(params, bad)
    with pytest.raises(BnsymInputError, match=r"momentum must be a number in \[0, 1\)"):
        SGD(params, 0.1, momentum=1)
    with pytest.raises(BnsymInputError, match="rho"):
        RMSProp(params, 0.1, rho=-0.1)
    config = NetworkConfig(input_dim=4, num_classes=3, depth=np.int64(2), width=8.0, eps=np.float32(0.5))
    assert json.loads(json.dumps(config.as_dict()))["depth"] == 2 and config.width == 8 and config.eps == 0.5
    assert type(NetworkConfig(input_dim=4, num_classes=3, depth=2, width=8, eps=2**64).eps) is float  # numba takes it
    with pytest.raises(BnsymInputError, match=r"bn_momentum must be a number in \(0, 1\]"):
        NetworkConfig(input_dim=4, num_classes=3, depth=2, width=8, bn_momentum=1.5)


@pytest.mark.parametrize("kwargs, name", [
    ({"gamma": np.ones((30, 30))}, "gamma"),    # its repr is 59 lines
    ({"dps": 10**300}, "dps"),                   # 301 digits
    ({"gamma": "x" * 500}, "gamma"),
    ({"batch_size": [8] * 400}, "batch_size"),
    ({"dps": -10**5000}, "dps"),                # past the 4300 digits Python's repr of an int allows
    ({"gamma": type("OddShape", (), {"shape": 3, "__repr__": lambda self: "OddShape()"})()}, "gamma"),
])
def test_a_refused_value_is_echoed_on_one_short_line(kwargs, name):
    """A refusal names the argument and shows the value given, but on one line and cut to a few dozen
    characters (until 2026-12-08 an array was repeated whole: 4150 characters on 59 lines)."""
    args = {"batch_size": 8, **kwargs}
    with pytest.raises(BnsymInputError) as info:
        bnsym.fixed_point("relu", **args)
    message = str(info.value)
    assert message.startswith(name) and "\n" not in message and len(message) < 160
    shown = message.split(", got ")[-1]
    assert len(shown) <= validation.SHOWN_CHARACTERS
