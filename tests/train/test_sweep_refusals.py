"""Careless input to the sweep (issue 12): refused before any cell trains, retried where it failed,
never an endless read, never orphaned workers."""

from __future__ import annotations

import io
import json
import math
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from bnsym.errors import BnsymInputError
from bnsym.train.sweep import grid, read_results, run_sweep


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


def test_results_path_that_is_a_directory_is_refused_before_any_cell(tmp_path):
    with pytest.raises(BnsymInputError, match="directory"):
        run_sweep(grid([2], [8], **_missing(tmp_path)), tmp_path, progress=False, log=None)


def test_unwritable_results_path_is_refused(tmp_path):
    """A path below a regular file cannot be created (even by root); a read-only file (non-root)."""
    blocker = tmp_path / "file"
    blocker.write_text("")
    targets = [blocker / "r.jsonl"]
    if os.geteuid() != 0:
        read_only = tmp_path / "ro.jsonl"
        read_only.write_text("")
        read_only.chmod(0o444)
        targets.append(read_only)
    for target in targets:
        with pytest.raises(BnsymInputError, match="not writable|cannot create"):
            run_sweep(grid([2], [8], **_missing(tmp_path)), target, progress=False, log=None)


def test_invalid_utf8_and_torn_lines_are_skipped(tmp_path):
    path = tmp_path / "r.jsonl"
    good = json.dumps({"depth": 2, "batch_size": 8, "status": "ok"})
    path.write_bytes(b"\xff\xfe\xfa not utf-8\n" + good.encode() + b"\n{\"depth\": 3, tor")
    assert [r["depth"] for r in read_results(path)] == [2]


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="needs /dev/zero")
def test_a_device_is_not_read_forever():
    with pytest.raises(BnsymInputError, match="not a regular file"):
        read_results("/dev/zero")


def test_failed_cells_are_retried_and_jobs_are_capped(tmp_path):
    results = tmp_path / "r.jsonl"
    cells = grid([2, 3], [8], **_missing(tmp_path))
    first = run_sweep(cells, results, progress=False, log=None)
    assert [r["status"] for r in first] == ["error", "error"]
    log = io.StringIO()
    second = run_sweep(cells, results, jobs=64, progress=False, log=log)
    assert len(second) == 4  # both failed cells ran again
    assert "capped" in log.getvalue()
    third = run_sweep(cells, results, progress=False, log=None, retry_failed=False)
    assert len(third) == 4


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="parent-death signal is Linux-only")
def test_workers_die_with_a_killed_parent(tmp_path):
    """SIGKILL of the process that owns the pool takes its workers with it (bounded: 20 s)."""
    script = textwrap.dedent("""
        import multiprocessing, os, sys, time
        from bnsym.train import sweep
        def pid(_):
            return os.getpid()
        if __name__ == "__main__":
            pool = multiprocessing.get_context("spawn").Pool(2, initializer=sweep._worker_init, initargs=(os.getpid(),))
            print(" ".join(str(p) for p in set(pool.map(pid, range(8), chunksize=1))), flush=True)
            time.sleep(60)
    """)
    path = tmp_path / "owner.py"
    path.write_text(script)
    owner = subprocess.Popen([sys.executable, str(path)], stdout=subprocess.PIPE, text=True)
    try:
        workers = [int(p) for p in owner.stdout.readline().split()]
        assert workers
        owner.send_signal(signal.SIGKILL)
        owner.wait(timeout=10)
        deadline = time.monotonic() + 10
        alive = workers
        while alive and time.monotonic() < deadline:
            time.sleep(0.1)
            alive = [p for p in workers if _alive(p)]
        assert not alive, f"orphaned workers {alive}"
    finally:
        if owner.poll() is None:
            owner.kill()


def _alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


def test_idx_files_with_no_samples(tmp_path):
    import numpy as np

    from bnsym.train.datasets import load_dataset, write_idx

    for prefix in ("train", "t10k"):
        write_idx(tmp_path / f"{prefix}-images-idx3-ubyte.gz", np.zeros((0, 4, 4), np.uint8))
        write_idx(tmp_path / f"{prefix}-labels-idx1-ubyte.gz", np.zeros((0,), np.uint8))
    with pytest.raises(BnsymInputError, match="0 samples"):
        load_dataset("mnist", str(tmp_path), verify=False)
