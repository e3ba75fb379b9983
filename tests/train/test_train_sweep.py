"""The trainability sweep (resume, atomic appends, interruption, parallel jobs) and the train/plot CLIs."""

from __future__ import annotations

import json

import numpy as np
import pytest

import bnsym
from bnsym.cli import main
from bnsym.train import sweep as sweep_module
from bnsym.train.datasets import write_idx
from bnsym.train.sweep import append_record, grid, read_results, run_sweep

STEMS = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


@pytest.fixture
def data_dir(tmp_path):
    """A learnable toy IDX dataset: the label is which quarter of the 4x4 image is bright."""
    rng = np.random.default_rng(0)
    directory = tmp_path / "toy"
    directory.mkdir()
    for prefix, n in (("train", 256), ("t10k", 64)):
        y = rng.integers(0, 4, n)
        x = rng.integers(0, 60, (n, 4, 4))
        for k in range(n):
            r, c = divmod(int(y[k]), 2)
            x[k, 2 * r:2 * r + 2, 2 * c:2 * c + 2] += 180
        write_idx(directory / f"{prefix}-images-idx3-ubyte.gz", x.astype(np.uint8))
        write_idx(directory / f"{prefix}-labels-idx1-ubyte.gz", y.astype(np.uint8))
    return str(directory)


def _cells(data_dir, **kw):
    settings = dict(dataset="mnist", data_dir=data_dir, verify=False, width=16, epochs=2, lr_scale=1e-3)
    settings.update(kw)
    return grid([2, 3], [8, 16], **settings)


def test_sweep_writes_every_cell_and_resumes(tmp_path, data_dir):
    results = tmp_path / "r.jsonl"
    records = run_sweep(_cells(data_dir), results, jobs=1, progress=False, log=None)
    assert len(records) == 4
    assert {(r["depth"], r["batch_size"]) for r in records} == {(2, 8), (2, 16), (3, 8), (3, 16)}
    assert all(r["status"] == "ok" and r["lr"] == pytest.approx(1e-3 * r["batch_size"]) for r in records)
    assert all(r["test_accuracy"] > 0.5 for r in records)  # toy data: chance is 0.25
    before = results.read_bytes()
    run_sweep(_cells(data_dir), results, jobs=1, progress=False, log=None)
    assert results.read_bytes() == before  # nothing re-run
    # a different setting is a different cell
    assert len(run_sweep(_cells(data_dir, width=8)[:1], results, progress=False, log=None)) == 5


def test_interrupted_sweep_keeps_finished_cells(tmp_path, data_dir, monkeypatch):
    results = tmp_path / "r.jsonl"
    real = sweep_module.run_cell
    calls = []

    def flaky(cell):
        calls.append(cell)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(cell)

    monkeypatch.setattr(sweep_module, "run_cell", flaky)
    with pytest.raises(KeyboardInterrupt):
        run_sweep(_cells(data_dir), results, jobs=1, progress=False, log=None)
    assert len(read_results(results)) == 2
    monkeypatch.setattr(sweep_module, "run_cell", real)
    assert len(run_sweep(_cells(data_dir), results, jobs=1, progress=False, log=None)) == 4


def test_torn_last_line_is_ignored_and_sealed(tmp_path):
    results = tmp_path / "r.jsonl"
    append_record(results, {"depth": 2, "batch_size": 8})
    with open(results, "ab") as f:
        f.write(b'{"depth": 3, "batch_')  # a crash mid-write
    assert len(read_results(results)) == 1
    append_record(results, {"depth": 4, "batch_size": 8})
    assert [r["depth"] for r in read_results(results)] == [2, 4]


def test_diverged_and_failed_cells_are_recorded(tmp_path, data_dir):
    results = tmp_path / "r.jsonl"
    cells = grid([2], [8], dataset="mnist", data_dir=data_dir, verify=False, width=8, lr_scale=1e30,
                 batch_norm=False)
    cells += grid([2], [8], dataset="mnist", data_dir=str(tmp_path / "missing"), width=8)
    records = run_sweep(cells, results, progress=False, log=None)
    status = sorted(r["status"] for r in records)
    assert status == ["diverged", "error"]
    error = next(r for r in records if r["status"] == "error")
    assert "does not exist" in error["error"]
    json.dumps(records, allow_nan=False)  # strict JSON on disk


def test_parallel_jobs(tmp_path, data_dir):
    results = tmp_path / "r.jsonl"
    records = run_sweep(_cells(data_dir, epochs=1), results, jobs=2, progress=False, log=None)
    assert len(records) == 4 and all(r["status"] == "ok" for r in records)


def test_cli_sweep_train_plot_and_one_step(tmp_path, data_dir, monkeypatch, capsys):
    results = tmp_path / "r.jsonl"
    common = ["--dataset", "mnist", "--data-dir", data_dir, "--no-verify", "--width", "16"]
    assert main(["sweep", "-o", str(results), "--depths", "2,3", "--batch-sizes", "8,16", "--lr-scale", "1e-3",
                 "--no-progress", *common]) == 0
    assert "4 of 4 cells" in capsys.readouterr().out

    calls = []

    class StandIn:  # the engine's trainable_depth: float(result) = log(K)/log(lambda_G)
        def __init__(self, value):
            self.value = value

        def __float__(self):
            return float(self.value)

    def fake_depth(activation, batch_size, *, gamma=1, beta=0, eps=0, sigma_w=1, dps=15, factor=1e6):
        calls.append((activation, batch_size, eps, factor))
        return StandIn(np.log(factor) / np.log(np.pi / (np.pi - 1)))

    monkeypatch.setattr(bnsym, "trainable_depth", fake_depth)
    png = tmp_path / "heat.png"
    assert main(["plot-sweep", str(results), "-o", str(png), "--factor", "1e4"]) == 0
    assert png.stat().st_size > 1000 and png.read_bytes()[:4] == b"\x89PNG"
    assert calls and all(c[0] == "relu" and c[3] == 1e4 and c[1] >= 4 for c in calls)
    assert "theory trainable depth" in capsys.readouterr().out

    assert main(["train", "--depth", "2", "-B", "16", "--lr", "0.05", "--epochs", "2", "--no-progress", *common]) == 0
    out = capsys.readouterr().out
    assert "test accuracy" in out and "after_first_step" in out

    assert main(["one-step", "--depth", "4", "-B", "16", "--steps", "2", "--lr", "0.5", "--plot",
                 str(tmp_path / "one.png"), *common]) == 0
    assert "dynamic range" in capsys.readouterr().out
    assert (tmp_path / "one.png").exists()


def test_cli_errors_are_one_line(tmp_path, capsys):
    assert main(["plot-sweep", str(tmp_path / "none.jsonl")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["train", "--dataset", "mnist", "--data-dir", str(tmp_path), "--no-progress"]) == 2
    assert "not found" in capsys.readouterr().err
    empty = tmp_path / "e.jsonl"
    empty.write_text("")
    assert main(["plot-sweep", str(empty)]) == 2
    assert "no finished cells" in capsys.readouterr().err


def test_a_cell_finished_meanwhile_by_another_sweep_is_not_appended_twice(tmp_path, data_dir, monkeypatch):
    results = tmp_path / "r.jsonl"
    real = sweep_module.run_cell

    def racing(cell):  # another sweep sharing the file finishes the same cell first
        record = real(cell)
        append_record(results, dict(record, seconds=-1.0))
        return record

    monkeypatch.setattr(sweep_module, "run_cell", racing)
    records = run_sweep(_cells(data_dir, epochs=1), results, jobs=1, progress=False, log=None)
    assert len(records) == 4 and all(r["seconds"] == -1.0 for r in records)


def test_heatmap_survives_a_batch_size_the_engine_cannot_do(tmp_path, monkeypatch, capsys):
    from bnsym.cli.plot_sweep import sweep_heatmap
    from bnsym.errors import BnsymError

    def fake_depth(activation, batch_size, **kwargs):
        if batch_size == 8:
            raise BnsymError("no fixed point here")
        return 10.0 + batch_size

    monkeypatch.setattr(bnsym, "trainable_depth", fake_depth)
    records = [{"depth": d, "batch_size": b, "status": "ok", "test_accuracy": 0.5, "activation": "relu"}
               for d in (2, 10, 40) for b in (4, 16)]
    curve = sweep_heatmap(records, tmp_path / "h.png")
    assert np.isnan(curve[8]) and curve[16] == 26.0
    assert "no theory point at B = 8" in capsys.readouterr().err
    assert (tmp_path / "h.png").read_bytes()[:4] == b"\x89PNG"
