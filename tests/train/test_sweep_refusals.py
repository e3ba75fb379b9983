"""Careless input to the sweep (issue 12): refused before any cell trains, never an endless read."""

from __future__ import annotations

import json
import math
import os

import pytest

from bnsym.cli import main
from bnsym.errors import BnsymInputError
from bnsym.train.sweep import grid, read_results


def _missing(tmp_path):
    return dict(dataset="mnist", data_dir=str(tmp_path / "missing"), width=8)


@pytest.mark.parametrize("kwargs, word", [
    (dict(batch_sizes=[1, 0]), "batch_sizes"), (dict(depths=[0]), "depths"), (dict(lr_scale=math.nan), "lr_scale"),
    (dict(lr_scale=-1.0), "lr_scale"), (dict(width=0), "width"), (dict(seeds=[-1]), "seeds"),
])
def test_grid_checks_its_settings(kwargs, word):
    args = dict(depths=[2], batch_sizes=[8])
    for key in ("depths", "batch_sizes", "seeds"):
        if key in kwargs:
            args[key] = kwargs.pop(key)
    with pytest.raises(BnsymInputError, match=word):
        grid(args["depths"], args["batch_sizes"], seeds=args.get("seeds", (0,)), dataset="mnist", **kwargs)


def test_sub_batches_are_a_grid_axis_that_must_divide_the_batch():
    cells = grid([2, 3], [1000], sub_batches=[8, 40], dataset="mnist")
    assert sorted((c.depth, c.batch_size, c.sub_batch) for c in cells) == [(2, 1000, 8), (2, 1000, 40), (3, 1000, 8), (3, 1000, 40)]
    assert len({str(c.config()) for c in cells}) == 4  # four distinct store keys
    assert [c.sub_batch for c in grid([2], [16], dataset="mnist", sub_batch=4)] == [4]
    with pytest.raises(BnsymInputError, match="sub-batch size 24 must divide every batch size"):
        grid([2], [1000], sub_batches=[24], dataset="mnist")
    with pytest.raises(BnsymInputError, match="sub_batches"):
        grid([2], [16], sub_batches=[1], dataset="mnist")
    with pytest.raises(BnsymInputError, match="not both"):
        grid([2], [16], sub_batches=[4], sub_batch=8, dataset="mnist")


@pytest.mark.parametrize("target, word", [(".", "directory"), ("blocker/r.sqlite", "not a directory"), ("missing/r.sqlite", "does not exist"), ("text.sqlite", "not a bnsym store")])
def test_bad_store_paths_are_refused_before_any_cell(target, word, tmp_path, monkeypatch, capsys):
    """A directory, a path below a regular file, a file that is not a store: one line, exit 2, nothing trained."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "blocker").write_text("")
    (tmp_path / "text.sqlite").write_text("depth,batch_size\n")
    assert main(["sweep", "--store", target, "--depths", "2", "--batch-sizes", "8", "--dataset", "mnist",
                 "--data-dir", str(tmp_path / "missing"), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("bnsym: error:") and "\n" not in err and word in err, err


def test_invalid_utf8_and_torn_lines_are_skipped(tmp_path):
    path = tmp_path / "r.jsonl"
    good = json.dumps({"depth": 2, "batch_size": 8, "status": "ok"})
    path.write_bytes(b"\xff\xfe\xfa not utf-8\n" + good.encode() + b"\n{\"depth\": 3, tor")
    assert [r["depth"] for r in read_results(path)] == [2]


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="needs /dev/zero")
def test_a_device_is_not_read_forever():
    with pytest.raises(BnsymInputError, match="not a regular file"):
        read_results("/dev/zero")


def test_idx_files_with_no_samples(tmp_path):
    import numpy as np

    from bnsym.train.datasets import load_dataset, write_idx

    for prefix in ("train", "t10k"):
        write_idx(tmp_path / f"{prefix}-images-idx3-ubyte.gz", np.zeros((0, 4, 4), np.uint8))
        write_idx(tmp_path / f"{prefix}-labels-idx1-ubyte.gz", np.zeros((0,), np.uint8))
    with pytest.raises(BnsymInputError, match="0 samples"):
        load_dataset("mnist", str(tmp_path), verify=False)
