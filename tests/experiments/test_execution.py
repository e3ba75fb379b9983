"""Grids on Dask: the default LocalCluster (single-threaded workers, BLAS pinned), scans checked
against closed forms, failed points as rows, resume without a cluster, unreachable schedulers."""

from __future__ import annotations

import math
import os
import socket
import time

import mpmath
import pytest

from bnsym.cli import main
from bnsym.errors import BnsymInputError
from bnsym.experiments.execution import dask_client, run_cells
from bnsym.experiments.scanning import scan, scan_grid
from bnsym.experiments.store import Store


def _dead_address():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"tcp://127.0.0.1:{s.getsockname()[1]}"  # nobody listens once the socket is closed


def test_an_unreachable_scheduler_is_a_clear_error_within_seconds():
    start = time.monotonic()
    with pytest.raises(BnsymInputError, match="no Dask scheduler answered within 1 s"), dask_client(_dead_address(), timeout=1):
        pass
    assert time.monotonic() - start < 4
    with pytest.raises(BnsymInputError, match="--scheduler must be an address"), dask_client("", timeout=1):
        pass


def test_a_finished_grid_needs_no_cluster(tmp_path):
    """Resume: every point already in the store, so no client is even started (the address is dead)."""
    cells = scan_grid("q", "relu", batch_size="8,16", gamma="1,2")
    with Store(tmp_path / "s.sqlite") as store:
        for c in cells:
            store.put(c.config(), c.run(), kind=c.kind)
        rows = run_cells(cells + cells[:1], store, scheduler=_dead_address(), progress=False, log=None)
    assert len(rows) == 4 and all(r["status"] == "ok" for r in rows)
    assert sorted(r["value"] for r in rows) == [0.5, 0.5, 2.0, 2.0]  # relu: q* = gamma^2 / 2
    with pytest.raises(BnsymInputError, match="no cells"), Store(tmp_path / "s.sqlite") as store:
        run_cells([], store, progress=False, log=None)


@pytest.fixture(scope="module")
def local_cluster():
    """The default cluster of ``run_cells`` (a LocalCluster of single-threaded workers), shared by the tests here."""
    with dask_client(workers=2) as client:
        yield client


@pytest.mark.slow
def test_local_cluster_workers_are_single_threaded_with_blas_pinned(local_cluster):
    info = local_cluster.scheduler_info()["workers"]
    assert len(info) == 2 and all(w["nthreads"] == 1 for w in info.values())
    assert set(local_cluster.run(os.environ.get, "OMP_NUM_THREADS").values()) == {"1"}
    assert set(local_cluster.run(os.environ.get, "OPENBLAS_NUM_THREADS").values()) == {"1"}


@pytest.mark.slow
def test_scan_on_the_cluster_against_closed_forms(local_cluster, tmp_path, capsys):
    """identity: lambda_G = (B - 2)/(B - 3) whatever gamma; relu: q* = gamma^2 / 2; the spectrum at
    B = 3 (refused by the engine) a 'failed' row with the engine's message, not a crash; then the CLI
    on the same store evaluates nothing new and draws the line plot and the heatmap."""
    address = local_cluster.scheduler.address
    store = tmp_path / "s.sqlite"
    rate = scan("lambda_G", "identity", batch_size="5,8,16", gamma="0.5:2:4", store=store, scheduler=address, dps=20,
                rows=True)
    assert len(rate.points) == 12 and not rate.failed
    # the store rows (what --json prints and the plots read) are in the points' grid order
    assert [(r["batch_size"], r["value"]) for r in rate.rows] == [(p.settings["batch_size"], float(p.value)) for p in rate.points]
    with mpmath.workdps(40):
        for p in rate.points:
            b = p.settings["batch_size"]
            assert abs(p.value - mpmath.mpf(b - 2) / (b - 3)) < 1e-19
    q = scan("q", "relu", batch_size=8, gamma="0.5,1,3", beta="0", store=store, scheduler=address)
    assert [float(p.value) for p in q.points] == [0.125, 0.5, 4.5]
    spec = scan("forward_L", "relu", batch_size="3,8", store=store, scheduler=address)
    assert spec.points[0].status == "failed" and spec.points[1].status == "ok"
    assert ">= 4" in spec.points[0].message and math.isnan(spec.points[0].value)
    assert main(["scan", "lambda_G", "identity", "-B", "5,8,16", "--gamma", "0.5:2:4", "--dps", "20", "--store", str(store),
                 "--scheduler", "tcp://127.0.0.1:1", "--plot", str(tmp_path / "line.png"), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "wrote" in out and (tmp_path / "line.png").read_bytes()[:4] == b"\x89PNG"
    assert main(["scan", "q", "relu", "-B", "8,16", "--gamma", "0.5,1", "--beta", "0,0.5", "--store", str(store),
                 "--scheduler", address, "--plot", str(tmp_path / "heat.png"), "--no-progress", "--json"]) == 0
    assert (tmp_path / "heat.png").read_bytes()[:4] == b"\x89PNG"
    with Store(store) as s:
        # the heatmap's 8 points share 2 with the earlier q scan (B = 8, beta = 0, gamma 0.5 and 1)
        assert s.counts() == {("scan", "ok"): 12 + 3 + 1 + 6, ("scan", "failed"): 1}
    # the float64 path on the cluster agrees with the mpmath path to 1e-12 relative
    fast = scan("lambda_G", "tanh", batch_size="8,32", gamma="1.9", beta="-0.7", precision="double",
                store=store, scheduler=address)
    exact = scan("lambda_G", "tanh", batch_size="8,32", gamma="1.9", beta="-0.7", store=store, scheduler=address)
    assert not fast.failed and not exact.failed
    for f, e in zip(fast.points, exact.points):
        assert abs(float(f.value) / float(e.value) - 1) < 1e-12


def test_double_precision_blocks_against_closed_forms_and_refusals():
    """The float64 path's blocks, run in this process: identity lambda_G = (B-2)/(B-3) and
    q* = gamma^2 + beta^2; eps > 0 and a kinked activation are 'failed' rows, not crashes."""
    from bnsym.experiments.scanning import float_blocks

    cells = scan_grid("lambda_G", "identity", batch_size="5,9", gamma="0.5:2:4", beta="0,0.5", eps="0,0.1",
                      precision="double")
    blocks = float_blocks(cells)
    assert sorted(len(b.cells) for b in blocks) == [16, 16]
    records = [r for b in blocks for r in b.run_all()]
    for r in records:
        if r["eps"] == "0":
            assert r["status"] == "ok" and abs(r["value"] - (r["batch_size"] - 2) / (r["batch_size"] - 3)) < 1e-13
        else:
            assert r["status"] == "failed" and "eps = 0" in r["message"]
    (q,) = float_blocks(scan_grid("q", "identity", batch_size=8, gamma="1.5", beta="0.5", precision="double"))
    assert abs(q.run_all()[0]["value"] - 2.5) < 1e-13
    (relu,) = float_blocks(scan_grid("lambda_G", "relu", batch_size=8, precision="double"))
    assert relu.run_all()[0]["status"] == "failed" and "kinks" in relu.run_all()[0]["message"]
    with pytest.raises(BnsymInputError, match="precision double"):
        scan_grid("forward_L", "tanh", batch_size=8, precision="double")
