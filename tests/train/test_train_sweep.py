"""The trainability sweep (cells, diverged and failed records, resume and retry on a cluster) and the train/plot CLIs."""

from __future__ import annotations

import json

import numpy as np
import pytest

import bnsym
from bnsym.cli import main
from bnsym.experiments.execution import dask_client, run_cells
from bnsym.experiments.store import Store
from bnsym.train.datasets import write_idx
from bnsym.train.sweep import grid, json_safe

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
    settings = {"dataset": "mnist", "data_dir": data_dir, "verify": False, "width": 16, "epochs": 2, "lr_scale": 1e-3}
    settings.update(kw)
    return grid([2, 3], [8, 16], **settings)


def test_diverged_and_failed_cells_are_records_not_crashes(tmp_path, data_dir):
    """Against the settings: a huge learning rate without batch norm diverges (and says at which
    step), a missing dataset is an 'error' record naming the cause; both strict JSON."""
    (diverged,) = grid([2], [8], dataset="mnist", data_dir=data_dir, verify=False, width=8, lr_scale=1e30,
                       batch_norm=False)
    (missing,) = grid([2], [8], dataset="mnist", data_dir=str(tmp_path / "missing"), width=8)
    records = [diverged.run(), missing.run()]
    assert [r["status"] for r in records] == ["diverged", "error"]
    assert records[0]["diverged_at"] >= 1
    assert "does not exist" in records[1]["error"]
    json.dumps(json_safe(records), allow_nan=False)
    assert diverged.config()["lr_scale"] == 1e30 and "data_dir" not in diverged.config()


@pytest.mark.slow
def test_sweep_on_a_cluster_resumes_retries_and_plots(tmp_path, data_dir, capsys):
    """Four toy cells (learnable: accuracy > 0.5 against chance 0.25) and one with missing data:
    the first run stores 4 ok + 1 error; the rerun trains only the error cell again (attempts 2,
    the ok rows untouched); ``bnsym sweep`` on the same store then has nothing to do, and
    ``bnsym plot-sweep`` reads the store."""
    store_path = tmp_path / "s.sqlite"
    cells = _cells(data_dir) + grid([2], [8], dataset="mnist", data_dir=str(tmp_path / "missing"), width=16)
    with dask_client(workers=2) as client:
        address = client.scheduler.address
        with Store(store_path) as store:
            first = run_cells(cells, store, scheduler=address, progress=False, log=None)
            assert sorted(r["status"] for r in first) == ["error", "ok", "ok", "ok", "ok"]
            ok = [r for r in first if r["status"] == "ok"]
            assert all(r["test_accuracy"] > 0.5 and r["lr"] == pytest.approx(1e-3 * r["batch_size"]) for r in ok)
            second = {r["key"]: r for r in run_cells(cells, store, scheduler=address, progress=False, log=None)}
            assert all(second[r["key"]] == r for r in ok)
            assert [r["attempts"] for r in second.values() if r["status"] == "error"] == [2]
        assert main(["sweep", "--store", str(store_path), "--depths", "2,3", "--batch-sizes", "8,16", "--lr-scale", "1e-3",
                     "--scheduler", "tcp://127.0.0.1:1", "--no-progress", "--dataset", "mnist", "--data-dir", data_dir,
                     "--no-verify", "--width", "16", "--epochs", "2"]) == 0
    assert "4 of 4 cells" in capsys.readouterr().out
    assert main(["plot-sweep", str(store_path), "-o", str(tmp_path / "h.png"), "--no-theory"]) == 0
    assert (tmp_path / "h.png").read_bytes()[:4] == b"\x89PNG"


def test_cli_train_plot_sweep_and_one_step(tmp_path, data_dir, monkeypatch, capsys):
    results = tmp_path / "r.sqlite"
    common = ["--dataset", "mnist", "--data-dir", data_dir, "--no-verify", "--width", "16"]
    with Store(results) as store:
        for cell in _cells(data_dir, epochs=1)[:2]:
            store.put(cell.config(), cell.run(), kind=cell.kind)

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
    out = capsys.readouterr().out
    assert "theory trainable depth" in out and "measured boundary (test accuracy >= 0.5)" in out
    assert main(["plot-sweep", str(results), "-o", str(png), "--threshold", "1.5"]) == 2
    assert "--threshold must be an accuracy" in capsys.readouterr().err

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
    text = tmp_path / "notes.txt"  # neither a store nor JSON lines (it said "no finished cells")
    text.write_text("root:x:0:0:root:/root:/bin/bash\n")
    assert main(["plot-sweep", str(text), "-o", str(tmp_path / "n.png")]) == 2
    err = capsys.readouterr().err
    assert "neither a bnsym store nor a JSON-lines file" in err and err.count("\n") == 1


def test_measured_boundary_is_the_deepest_trained_depth_per_batch_size():
    from bnsym.cli.plot_sweep import accuracy_table, measured_boundary

    acc = {(10, 8): 0.8, (20, 8): 0.3, (40, 8): 0.1, (10, 64): 0.85, (20, 64): 0.7, (40, 64): 0.55,
           (10, 512): 0.2}
    records = [{"depth": d, "batch_size": b, "status": "ok", "test_accuracy": a} for (d, b), a in acc.items()]
    records.append({"depth": 20, "batch_size": 512, "status": "diverged", "test_accuracy": None})
    depths, batches, table, _ = accuracy_table(records)
    assert measured_boundary(depths, batches, table, 0.5) == {8: (10, 20), 64: (40, None), 512: (None, 10)}
    assert measured_boundary(depths, batches, table, 0.6)[64] == (20, 40)


def test_fixed_batch_with_sub_batches_gives_sub_batch_columns(tmp_path, monkeypatch):
    """Fig. 3b: one batch size, statistics over sub-batches of several sizes: the columns (and the
    theory line) are the statistics batch sizes."""
    from bnsym.cli.plot_sweep import accuracy_table, column_axis, sweep_heatmap

    records = [{"depth": d, "batch_size": 1000, "sub_batch": g, "status": "ok", "test_accuracy": 0.5, "activation": "relu"}
               for d in (10, 20) for g in (8, 40, 200)]
    assert column_axis(records) == "sub_batch"
    _depths, columns, acc, _ = accuracy_table(records)
    assert columns == [8, 40, 200] and acc.shape == (2, 3)
    asked = []
    monkeypatch.setattr(bnsym, "trainable_depth", lambda activation, b, **kw: asked.append(b) or 30.0)
    sweep_heatmap(records, tmp_path / "b.png")
    assert min(asked) >= 4 and max(asked) <= 300  # the theory line spans the sub-batch sizes, not 1000
    mixed = records + [{"depth": 10, "batch_size": 64, "sub_batch": None, "status": "ok", "test_accuracy": 0.5}]
    assert column_axis(mixed) == "batch_size"


def test_default_title_names_the_data_set_and_protocol():
    """The paper's Fig. 3 is MNIST; a heatmap of another data set must say which (issue 16)."""
    from bnsym.cli.plot_sweep import protocol_title

    full = [{"activation": "relu", "dataset": "fashion-mnist", "epochs": 10, "optimizer": "sgd", "width": 384,
             "train_size": None, "test_size": None, "depth": d} for d in (10, 20)]
    title = protocol_title(full)
    assert "relu on fashion-mnist" in title and "10 epochs, sgd, width 384" in title and "train" not in title
    subset = [dict(full[0], epochs=1, train_size=20000, test_size=5000)]
    assert "(20000 train / 5000 test images), 1 epoch," in protocol_title(subset)
    assert "on mixed data sets" in protocol_title(full + [dict(full[0], dataset="mnist")])


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
