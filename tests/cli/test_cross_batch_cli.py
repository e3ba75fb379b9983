"""``bnsym cross-batch`` (docs/theory.md section 13): JSON output against the library, table output, one-line errors."""

from __future__ import annotations

import json

import mpmath

from bnsym.cli import main
from bnsym.meanfield.decorrelation import cross_batch


def test_json_matches_the_library(capsys):
    assert main(["cross-batch", "relu", "--batch-size", "6", "--dps", "20", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    engine = cross_batch("relu", 6, dps=20)
    assert mpmath.mpf(out["c_x"]["value"]) == mpmath.mpf(45) / 256
    with mpmath.workdps(30):
        assert abs(mpmath.mpf(out["lambda_x"]["value"]) - engine.lambda_x.value) < 1e-19
    assert out["multiplicity"] == 25 and out["correlation_rate"]["meaning"] == "rounding"


def test_table_and_errors(capsys):
    assert main(["cross-batch", "identity", "-B", "2"]) == 0
    text = capsys.readouterr().out
    assert "lambda_x (multiplicity 1)" in text and "undefined" in text
    assert main(["cross-batch", "tanh", "-B", "8", "--sigma-w", "0"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "sigma_w" in err
