"""The ``bnsym report`` command line: output formats and one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from bnsym.cli import main


def test_report_table(capsys):
    assert main(["report", "relu", "--batch-size", "32"]) == 0
    out = capsys.readouterr().out
    assert "lambda_G" in out and "1.52195283055188" in out and "trainable_depth" in out


def test_report_json(capsys):
    assert main(["report", "tanh", "-B", "inf", "--dps", "20", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["settings"]["batch_size"] == "inf"
    assert payload["settings"]["dps"] == 20
    assert payload["lambda_G"]["value"].startswith("1.177807232304")
    assert float(payload["lambda_G"]["error"]) < 1e-20


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (["report", "nosuch", "-B", "4"], "unknown activation 'nosuch'"),
        (["report", "relu", "-B", "1"], "batch_size must be >= 2"),
        (["report", "relu", "-B", "4.5"], "batch_size must be an integer"),
        (["report", "relu", "-B", "4", "--dps", "0"], "dps must be between 1 and 100"),
        (["report", "relu", "-B", "4", "--eps", "-1"], "eps must be >= 0"),
        (["report", "relu", "-B", "4", "--gamma", "0"], "gamma must be nonzero"),
        (["report", "relu", "-B", "4", "--sigma-w", "nan"], "sigma_w must be finite"),
        (["report", "exp(x**3)", "-B", "4"], "grows"),
        (["report", "relu", "-B", "4", "--beta", "0.5", "--method", "closed form"], "does not apply"),
    ],
)
def test_errors_are_one_line_on_stderr(capsys, argv, fragment):
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("bnsym: error: ")
    assert fragment in lines[0]


def test_console_script_entry_point():
    proc = subprocess.run([sys.executable, "-m", "bnsym", "report", "identity", "-B", "10", "--json"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["lambda_G"]["value"] == "1.14285714285714"
