"""Files a command reads or writes (issue 12): every bad path is a one-line error before any work."""

from __future__ import annotations

import json

import numpy as np
import pytest

from bnsym.cli import main


def _one_line_error(capsys, word):
    err = capsys.readouterr().err.strip()
    assert err.startswith("bnsym: error:") and "\n" not in err, err
    assert word in err, err


@pytest.mark.parametrize("command", [
    ["propagate", "relu", "-B", "4", "-L", "1", "--plot"],
    ["simulate", "relu", "-B", "4", "-L", "1", "-N", "8", "--plot"],
])
@pytest.mark.parametrize("target, word", [("missing/x.png", "does not exist"), ("x.txt", "must end in"), (".", "must end in")])
def test_plot_targets_are_checked_first(command, target, word, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(command + [target]) == 2
    _one_line_error(capsys, word)


def test_plot_target_that_is_a_directory(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "fig.png").mkdir()
    assert main(["propagate", "relu", "-B", "4", "-L", "1", "--plot", "fig.png"]) == 2
    _one_line_error(capsys, "directory")


@pytest.mark.parametrize("content, word", [(b"", "cannot read"), (b"\x93NUMPY garbage", "cannot read")])
def test_unreadable_npy_input(content, word, tmp_path, capsys):
    path = tmp_path / "g.npy"
    path.write_bytes(content)
    assert main(["propagate", "relu", "-B", "4", "-L", "1", "--input", str(path)]) == 2
    _one_line_error(capsys, word)


def test_complex_npy_input_is_refused_not_truncated(tmp_path, capsys):
    path = tmp_path / "g.npy"
    np.save(path, np.eye(4) * (1 + 1j))
    assert main(["propagate", "relu", "-B", "4", "-L", "1", "--input", str(path)]) == 2
    _one_line_error(capsys, "complex")


@pytest.mark.parametrize("factor", ["1", "nan", "0.5", "inf"])
def test_plot_sweep_factor(factor, tmp_path, capsys):
    results = tmp_path / "r.jsonl"
    results.write_text(json.dumps({"depth": 2, "batch_size": 8, "status": "ok", "test_accuracy": 0.5}) + "\n")
    assert main(["plot-sweep", str(results), "--factor", factor, "-o", str(tmp_path / "h.png")]) == 2
    _one_line_error(capsys, "--factor")


def test_plot_sweep_output_directory(tmp_path, capsys):
    results = tmp_path / "r.jsonl"
    results.write_text(json.dumps({"depth": 2, "batch_size": 8, "status": "ok", "test_accuracy": 0.5}) + "\n")
    assert main(["plot-sweep", str(results), "-o", str(tmp_path)]) == 2
    _one_line_error(capsys, "--output")
