"""``bnsym kernel`` (docs/theory.md section 14): the written .npy against the library, the JSON summary,
the sampled and high-precision methods, one-line errors."""

from __future__ import annotations

import json

import numpy as np

import bnsym
from bnsym.cli import main


def _inputs(tmp_path, m=8, d=6):
    path = tmp_path / "x.npy"
    x = np.random.default_rng(3).standard_normal((m, d))
    np.save(path, x)
    return path, x


def test_laplace_kernel_file_is_the_library_kernel(tmp_path, capsys):
    path, x = _inputs(tmp_path, m=16)
    out = tmp_path / "k.npy"
    assert main(["kernel", "relu", "--inputs", str(path), "-L", "2", "-B", "8", "--kind", "ntk", "-o", str(out), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["method"] == "two-parameter Laplace, float64" and summary["error_meaning"] == "quadrature"
    assert np.array_equal(np.load(out), bnsym.kernel("relu", x, 2, batch_size=8, kind="ntk").value)


def test_sampled_and_high_precision_methods(tmp_path, capsys):
    path, x = _inputs(tmp_path)
    out = tmp_path / "k.npy"
    assert main(["kernel", "tanh", "--inputs", str(path), "-L", "1", "-B", "4", "-o", str(out), "--samples", "2000", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["error_meaning"] == "standard error" and "Monte Carlo" in summary["method"]
    assert np.array_equal(np.load(out), bnsym.kernel("tanh", x, 1, batch_size=4, samples=2000).value)  # same seeds
    assert main(["kernel", "relu", "--inputs", str(path), "-L", "1", "-B", "4", "-o", str(out), "--dps", "6"]) == 0
    assert "two-parameter Laplace, mpmath" in capsys.readouterr().out
    fast = bnsym.kernel("relu", x, 1, batch_size=4)
    assert np.abs(np.load(out) - fast.value).max() <= fast.error + 1e-6


def test_errors_are_one_line(tmp_path, capsys):
    path, _ = _inputs(tmp_path)
    out = tmp_path / "k.npy"
    for extra, word in ((["--method", "laplace", "--beta", "0.1"], "beta"), (["--chains", "2"], "chains")):
        assert main(["kernel", "tanh" if "--chains" in extra else "relu", "--inputs", str(path), "-L", "1", "-B", "4",
                     "-o", str(out)] + extra) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and word in err


def test_high_precision_ntk_from_the_command_line(tmp_path, capsys):
    """``--kind ntk --dps 10`` on one batch of 5: the mpmath NTK, written rounded to float64, within the
    float64 NTK's error of it."""
    path, x = _inputs(tmp_path, m=5)
    out = tmp_path / "k.npy"
    assert main(["kernel", "relu", "--inputs", str(path), "-L", "2", "-B", "5", "--kind", "ntk", "--dps", "10",
                 "-o", str(out), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["kind"] == "ntk" and summary["method"] == "two-parameter Laplace, mpmath"
    fast = bnsym.kernel("relu", x, 2, batch_size=5, kind="ntk")
    assert np.abs(np.load(out) - fast.value).max() <= fast.error + 1e-10
