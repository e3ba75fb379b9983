"""What results show: their text (the CLI's tables) and a repr that does not repeat the settings.

The numbers in a result's text are its own values at the promised digits (checked against the
fields, not against fixed strings), and the repr of a composite result stays short: before
bnsym.text, ``repr(cross_batch("relu", 8))`` ran to 4,400 characters, the activation's pieces
printed once per value.
"""

from __future__ import annotations

import math

import mpmath
import pytest

import bnsym
from bnsym.text import ShownAsText, error_text, number_text, table_text


def test_number_text_gives_the_digits_asked_and_spells_out_the_non_finite():
    assert number_text(mpmath.mpf(2) / 3, 20) == mpmath.nstr(mpmath.mpf(2) / 3, 20)
    assert number_text(mpmath.mpf(5), 15) == "5"
    assert number_text(mpmath.mpf(5), 15, strip=False) == "5.00000000000000"  # a stored value keeps its digits
    assert number_text(mpmath.inf, 15) == "inf" and number_text(-mpmath.inf, 15) == "-inf"
    assert number_text(math.nan, 15) == "nan" and number_text(mpmath.nan, 15) == "nan"
    assert number_text(None, 15) == "" and error_text(None) == "" and error_text(0) == "0"
    assert error_text(mpmath.mpf("1.234e-20")) == "1.2e-20" and error_text(6.58615490272818e-07) == "6.6e-7"
    import numpy as np

    assert error_text(np.float32(0.001234)) == "0.0012" and error_text(np.int64(3)) == "3" and error_text(3) == "3"
    assert error_text(math.inf) == "inf" and error_text(mpmath.inf) == "inf"


def test_table_text_aligns_its_columns_under_a_rule():
    lines = table_text([("a", "1"), ("long name", "22")], header=("quantity", "value")).splitlines()
    assert lines[0] == "quantity   value" and lines[1] == "---------  -----"
    assert lines[2] == "a          1" and lines[3] == "long name  22"


class _Printer:  # what IPython hands to _repr_pretty_
    def __init__(self):
        self.out = ""

    def text(self, s):
        self.out += s


def _shown(result):
    printer = _Printer()
    result._repr_pretty_(printer, False)
    return printer.out


def test_cross_batch_text_holds_its_values_at_the_promised_digits():
    r = bnsym.cross_batch("tanh", 8, dps=20)
    text = str(r)
    assert text.splitlines()[0].startswith("tanh, B = 8, gamma = 1, beta = 0, eps = 0, sigma_w = 1  (20 digits")
    for q in (r.lambda_x, r.lambda_G, r.correlation_rate):
        assert mpmath.nstr(q.value, 20, strip_zeros=True) in text
        assert mpmath.nstr(q.error, 2) in text
    assert isinstance(r, ShownAsText) and _shown(r) == text
    assert len(repr(r)) < 1500 and "Piece(" not in repr(r)


def test_spectrum_text_lists_every_eigenvalue_and_the_verdict():
    spec = bnsym.spectrum("relu", 8, dps=18)
    text = str(spec)
    for e in spec.forward + spec.backward:
        assert number_text(e.value, 18) in text
    assert text.splitlines()[-1] == spec.verdict()
    assert _shown(spec) == text and "Piece(" not in repr(spec)


def test_gegenbauer_text_shows_the_coefficients_asked_and_every_series():
    series = bnsym.gegenbauer("tanh", 8, terms=12)
    text = series.text(show=3)
    assert "normalisation: " + series.normalisation in text
    rows = [line.split() for line in text.splitlines()]
    shown = [r for r in rows if r and r[0] in ("0", "1", "2", "3")]
    assert [r[0] for r in shown] == ["0", "1", "2"]
    assert shown[1][1] == number_text(series.coefficients[1].value, 15)
    for name, v in series.values().items():
        assert any(r[:2] == [name, number_text(v.value, 15)] for r in rows)
    assert str(series) == series.text(show=10)


def test_weight_gradients_text_has_one_row_per_layer():
    result = bnsym.weight_gradients("relu", 8, 4)
    rows = str(result).splitlines()[4:]
    assert [r.split()[0] for r in rows] == ["1", "2", "3", "4"]
    assert [r.split()[1] for r in rows] == [number_text(m.value, 15) for m in result.layers]


def test_scalar_results_repr_leaves_the_settings_to_their_attribute():
    fp = bnsym.fixed_point("tanh", 8)
    assert "settings=" not in repr(fp) and repr(fp).startswith("FixedPoint(value=")
    assert repr(fp.settings) == ("Settings(activation='tanh', batch_size=8, gamma=1, beta=0, eps=0, sigma_w=1, "
                                 "dps=15, method='auto')")
    assert repr(fp.settings.activation) == "Activation('tanh', tanh(x))"


@pytest.mark.parametrize("bad", [("x",), ("x", "y", "z")])
def test_table_text_refuses_rows_of_another_width(bad):
    with pytest.raises(ValueError, match="cells for 2 columns"):
        table_text([bad], header=("a", "b"))


def test_propagation_and_kernel_keep_their_matrices_out_of_the_repr():
    import numpy as np

    p = bnsym.propagate("relu", np.diag([1.0, 2.0, 3.0, 4.0, 5.0, 6.0]), 3, dps=10)
    rows = str(p).splitlines()[4:]
    assert [r.split()[0] for r in rows] == ["0", "1", "2", "3"]
    assert [float(r.split()[1]) for r in rows] == pytest.approx([float(d) for d in p.distance], rel=1e-5)
    assert "array(" not in repr(p) and len(repr(p)) < 1200

    x = np.random.default_rng(0).standard_normal((16, 5))
    k = bnsym.kernel("relu", x, 2, batch_size=8, dps=None)
    assert "digits" not in str(k).splitlines()[0]  # a float64 kernel promises no number of digits
    assert repr(k).startswith("Kernel(kind='nngp', inputs=16, batch_size=8, depth=2,") and "array(" not in repr(k)
    rows = str(k).splitlines()[4:]
    diagonals = [float(np.mean(np.diag(m))) for m in k.nngp]
    assert [float(r.split()[1]) for r in rows] == pytest.approx(diagonals, rel=1e-9)
    assert [r.split()[2] for r in rows] == [error_text(e) for e in k.layer_errors]


def test_joint_propagation_text_has_the_cross_batch_correlation_per_layer():
    import numpy as np

    x = np.random.default_rng(1).standard_normal((8, 8))
    p = bnsym.propagate("relu", x @ x.T / 8, 2, batch_size=4, dps=10)
    rows = str(p).splitlines()[4:]
    assert [float(r.split()[1]) for r in rows] == pytest.approx([p.cross_batch_correlation(l) for l in range(3)], rel=1e-7)
    assert "array(" not in repr(p)


def test_simulation_text_holds_its_estimates_and_a_reference_column_when_given():
    sim = bnsym.simulate("relu", 8, 3, 32, seeds=2)
    q, _ = sim.fixed_point()
    rows = {r.split()[0]: r.split() for r in str(sim).splitlines()[3:6]}
    assert float(rows["rate"][2]) == pytest.approx(sim.rate, rel=1e-5) and float(rows["q"][1]) == pytest.approx(q.value, rel=1e-5)
    assert "mean field" not in str(sim) and "grams=" not in repr(sim) and len(repr(sim)) < 1000
    text = sim.text({"rate": "1.78819", "q": "0.5", "c": "0.125"})
    assert text.splitlines()[1].split()[-2:] == ["mean", "field"] and text.splitlines()[3].endswith("1.78819")


def test_scan_text_shows_the_swept_axes_and_elides_the_middle_of_a_long_scan():
    from bnsym.experiments.scanning import Scan, ScanPoint

    def point(k, status="ok"):
        settings = {"batch_size": 8, "gamma": str(k), "beta": "0", "eps": "0", "sigma_w": "1", "dps": 12}
        if status != "ok":
            return ScanPoint(mpmath.mpf("nan"), math.nan, settings=settings, status=status, message="no fixed point")
        return ScanPoint(mpmath.mpf(k) / 3, mpmath.mpf("1e-14"), settings=settings)

    scan = Scan("lambda_G", tuple(point(k) for k in range(1, 30)) + (point(30, "failed"),), ":memory:")
    full = scan.text().splitlines()
    assert full[0].split() == ["B", "gamma", "lambda_G", "error", "status"] and len(full) == 32
    assert full[2].split() == ["8", "1", number_text(mpmath.mpf(1) / 3, 12), "1.0e-14", "ok"]
    assert full[-1].split()[:2] == ["8", "30"] and full[-1].endswith("failed: no fixed point")
    short = str(scan).splitlines()
    assert len(short) == 2 + 20 + 1 and short[12].startswith("... 10 more") and short[-1].split() == full[-1].split()
    assert repr(scan) == "Scan(quantity='lambda_G', points=30, failed=1, store=':memory:')"
