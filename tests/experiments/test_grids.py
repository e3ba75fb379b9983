"""Axes and grids of a scan: exact points, one-line refusals (bad ranges, empty grids), the CLI errors."""

from __future__ import annotations

from fractions import Fraction

import pytest

from bnsym import validation
from bnsym.cli import main
from bnsym.errors import BnsymInputError
from bnsym.experiments.scanning import QUANTITIES, scan_grid


@pytest.mark.parametrize("text, a, b, n", [("0.05:2:40", "0.05", "2", 40), ("-1:1:7", "-1", "1", 7), ("1e-3:0.1:3", "0.001", "0.1", 3)])
def test_range_points_are_exact_decimals(text, a, b, n):
    """Against rational arithmetic: point k is a + (b - a) k / (n - 1), exact for a terminating
    decimal, else within 40 significant digits (-1:1:7 holds -2/3)."""
    points = validation.number_axis(text, name="gamma")
    expected = [Fraction(a) + (Fraction(b) - Fraction(a)) * k / (n - 1) for k in range(n)]
    for p, e in zip(points, expected):
        assert abs(Fraction(p) - e) <= abs(e) * Fraction(1, 10**39)
        if (e * 10**40).denominator == 1:
            assert Fraction(p) == e
    assert points[0] == a and points[-1] == b


def test_lists_numbers_and_batch_axes():
    assert validation.number_axis("0.1, 0.5,1,0.5", name="beta") == ["0.1", "0.5", "1"]
    assert validation.number_axis(0.1, name="beta") == ["0.1"]
    assert validation.number_axis("2:2:1", name="beta") == ["2"]
    assert validation.batch_axis("8,32,inf,8") == [8, 32, float("inf")]
    assert validation.batch_axis("4:16:4") == [4, 8, 12, 16]


@pytest.mark.parametrize("text, word", [
    ("1:1:5", "zero step"), ("0:1:1", "zero step"), ("0:1:0", "between 1 and"), ("0:1:-3", "between 1 and"),
    ("0:1:2.5", "must be an integer"), ("a:1:3", "expected a number"), ("0.1,x", "expected a number"),
    ("", "no values"), (" , ,", "no values"), ("0:1", "range 'a:b:n'"), ("inf", "finite"), ("0:1:10000000", "between 1 and"),
])
def test_bad_ranges_are_one_line(text, word):
    with pytest.raises(BnsymInputError, match=word) as info:
        validation.number_axis(text, name="gamma")
    assert "gamma" in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("value, word", [("8.5", "integer"), ("1,8", ">= 2"), ("", "no values"), ("4:6:4", "integer")])
def test_bad_batch_axes(value, word):
    with pytest.raises(BnsymInputError, match=word):
        validation.batch_axis(value)


def test_grid_is_the_product_of_its_axes_and_checks_every_point():
    cells = scan_grid("q", "relu", batch_size="8,16", gamma="0.5:1:3", eps="0,0.01")
    assert len(cells) == 2 * 3 * 2
    assert {(c.batch_size, c.gamma, c.eps) for c in cells} == {(b, g, e) for b in (8, 16) for g in ("0.5", "0.75", "1")
                                                              for e in ("0", "0.01")}
    for kwargs, word in [({"gamma": "-1:1:3"}, "gamma must be nonzero"), ({"eps": "-0.1,0"}, "eps must be >= 0"),
                         ({"sigma_w": "0,1"}, "sigma_w must be > 0"), ({"dps": 0}, "dps")]:
        with pytest.raises(BnsymInputError, match=word):
            scan_grid("q", "relu", batch_size=8, **kwargs)
    with pytest.raises(BnsymInputError, match="quantity"):
        scan_grid("lambda", "relu", batch_size=8)
    with pytest.raises(BnsymInputError, match="more than"):
        scan_grid("q", "relu", batch_size="2:1001:1000", gamma="1:2:1001")
    assert "lambda_G" in QUANTITIES and "backward_M" in QUANTITIES


@pytest.mark.parametrize("args, word", [
    (["--gamma", "1:1:4"], "zero step"), (["--gamma", ""], "no values"), (["--eps", "0:1:0"], "between 1 and"),
    (["--beta", "x"], "expected a number"), (["--plot", "out.txt"], "--plot must end in"),
])
def test_scan_cli_refuses_bad_grids_in_one_line_before_any_work(args, word, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["scan", "lambda_G", "relu", "-B", "8", "--store", "s.sqlite", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("bnsym: error:") and "\n" not in err and word in err, err
    assert not (tmp_path / "s.sqlite").exists()
