"""Careless input to the mean-field entry points: a one-line BnsymInputError naming the argument
(issue 12), never a traceback from deep inside mpmath or numpy, never a silent wrong answer."""

from __future__ import annotations

import math

import pytest

import bnsym
from bnsym.cli import main
from bnsym.errors import BnsymInputError


@pytest.mark.parametrize("kwargs, word", [
    (dict(gamma="1/0"), "gamma"), (dict(beta="1/0"), "beta"), (dict(eps="1/0"), "eps"),
    (dict(dps=math.nan), "dps"), (dict(dps=math.inf), "dps"), (dict(dps=0), "dps"), (dict(dps=101), "dps"),
])
def test_real_and_precision_arguments(kwargs, word):
    with pytest.raises(BnsymInputError, match=word):
        bnsym.gradient_explosion_rate("relu", 8, **kwargs)


@pytest.mark.parametrize("option", ["--gamma", "--beta", "--eps", "--sigma-w"])
def test_every_real_option_of_the_cli_refuses_a_division_by_zero(option, capsys):
    assert main(["report", "relu", "-B", "8", option, "1/0"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("bnsym: error:") and "\n" not in err


def test_spectrum_lookup_names_the_bad_key():
    spec = bnsym.spectrum("relu", 8, dps=8)
    with pytest.raises(BnsymInputError, match="operator"):
        spec.eigenvalue("sideways", "L")
    with pytest.raises(BnsymInputError, match="subspace"):
        spec.eigenvalue("forward", "X")
    assert spec.eigenvalue("backward", "G").value == spec.backward[0].value


def test_spectrum_checks_sigma_w(capsys):
    with pytest.raises(BnsymInputError, match="sigma_w"):
        bnsym.spectrum("relu", 8, sigma_w=-1)
    assert main(["spectrum", "relu", "-B", "8", "--sigma-w", "-1"]) == 2
    assert "sigma_w" in capsys.readouterr().err


@pytest.mark.parametrize("kwargs, word", [
    (dict(delta=0), "delta"), (dict(delta=math.inf), "delta"), (dict(delta=1.5), "delta"),
    (dict(power_steps=-1), "power_steps"), (dict(max_depth=0), "max_depth"),
    (dict(tol=0), "tol"), (dict(tol=math.nan), "tol"),
    (dict(sizes=2.7), "sizes"), (dict(sizes=True), "sizes"), (dict(sizes=8), "sizes"), (dict(seed=-1), "seed"),
])
def test_symmetry_breaking_arguments(kwargs, word):
    """Checked before any work: delta = 0 used to return the unstable BSB1 point as a 'stable BSB2'."""
    with pytest.raises(BnsymInputError, match=word):
        bnsym.symmetry_breaking("relu_power(2)", 8, **kwargs)
