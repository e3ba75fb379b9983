"""Running a grid of cells on Dask and writing each finished cell to the store (docs/theory.md section 17).

A *cell* is any picklable object with ``kind`` (a string), ``config()`` (the JSON dict that
identifies it), ``run()`` (returns its record, a JSON-able dict with a ``status``; it must
not raise) and ``cost()`` (relative cost: the slowest cells are submitted first).  Cells
that are cheaper evaluated together (the float64 scan) are grouped into *blocks*: objects
with ``cells``, ``cost()`` and ``run_all()`` (one record per cell, in order); a block is one
Dask task, and its records are written one transaction each like any other.

:func:`run_cells` skips the cells the store holds finished, submits the others to a Dask
client (:func:`dask_client`: an existing scheduler, or a LocalCluster of one single-threaded
worker process per core with BLAS pinned to one thread), and writes each record from the
client, in its own transaction, as its future completes.  A worker that dies has its cells
rerun elsewhere by the scheduler; a client that dies loses only the cells not yet written,
which the next run computes.  A cell whose future fails (the worker died too often, or
``run`` raised) becomes a row with status ``"error"``, run again next time.
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket
import sys
from contextlib import contextmanager

from bnsym import validation
from bnsym.errors import BnsymError, BnsymInputError
from bnsym.experiments.store import canonical

#: Environment of LocalCluster workers: one BLAS / OpenMP thread each (one worker per core).
WORKER_ENV = {name: "1" for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                                     "NUMEXPR_NUM_THREADS", "VECLIB_MAXIMUM_THREADS")}
#: Seconds to wait for an existing scheduler to answer before giving up.
CONNECT_TIMEOUT = 3.0


def _distributed():
    try:
        import distributed
    except ImportError:  # pragma: no cover - installed with the experiments and test extras
        raise BnsymError("running a grid needs Dask: pip install 'bnsym[experiments]'") from None
    return distributed


@contextmanager
def dask_client(scheduler=None, *, workers=None, timeout: float = CONNECT_TIMEOUT):
    """A ``distributed.Client``: connected to ``scheduler`` (an address such as
    ``tcp://host:8786``) within ``timeout`` seconds, or, without one, to a new LocalCluster of
    ``workers`` (default: the number of cores) single-threaded processes, closed on exit."""
    distributed = _distributed()
    if scheduler is not None:
        address, host, port = validation.network_address(scheduler, name="--scheduler")
        try:  # a plain TCP probe first: an unreachable address fails fast, without a half-built Client
            socket.create_connection((host, port), timeout=timeout).close()
        except OSError as exc:
            raise BnsymInputError(f"--scheduler {scheduler}: no Dask scheduler answered within {timeout:g} s "
                                  f"({exc.strerror or type(exc).__name__})") from None
        try:
            client = distributed.Client(address, timeout=timeout, set_as_default=False)
        except Exception as exc:  # noqa: BLE001 - something answered, but not a Dask scheduler
            raise BnsymInputError(f"--scheduler {scheduler}: no Dask scheduler there ({type(exc).__name__})") from None
        try:
            yield client
        finally:
            client.close()
        return
    n = (os.cpu_count() or 1) if workers is None else validation.integer(workers, name="workers", minimum=1)
    cluster = distributed.LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None,
                                       env=dict(WORKER_ENV), silence_logs=logging.ERROR)
    try:
        client = distributed.Client(cluster, set_as_default=False)
        try:
            yield client
        finally:
            client.close()
    finally:
        cluster.close()


def evaluate(task) -> list[dict]:
    """Run one task on a worker (the function Dask calls): the records of its cells, in order."""
    return task.run_all() if hasattr(task, "run_all") else [task.run()]


def _task_key(task) -> str:
    cells = getattr(task, "cells", (task,))
    digest = hashlib.sha256("\n".join(canonical(c.config()) for c in cells).encode()).hexdigest()[:20]
    return f"bnsym-{cells[0].kind}-{digest}"


def run_cells(cells, store, *, scheduler=None, workers=None, progress=True, log=sys.stderr,
              retry_failed=True, timeout: float = CONNECT_TIMEOUT, group=None) -> list[dict]:
    """Run the ``cells`` not finished in ``store``; return the store's rows of all ``cells``.

    A cell with a row of status ``"error"`` is run again unless ``retry_failed`` is False.
    Duplicate cells count once.  ``group`` (optional) maps the list of cells to run to a list
    of blocks (see the module docstring).  Cost: the cells' own cost, plus one store
    transaction per cell; no Dask client is started when nothing is left to run.
    """
    unique = {}
    for cell in cells:
        unique.setdefault(canonical(cell.config()), cell)
    if not unique:
        raise BnsymInputError("the grid has no cells")
    done = store.finished_keys() if retry_failed else {row["key"] for row in store.rows()}
    todo = sorted(((k, c) for k, c in unique.items() if k not in done), key=lambda kc: -kc[1].cost())
    if log:
        print(f"{len(unique) - len(todo)} of {len(unique)} cells already in {store.path}; running {len(todo)}", file=log)
    if todo:
        distributed = _distributed()
        tasks = [cell for _, cell in todo] if group is None else sorted(group([c for _, c in todo]), key=lambda t: -t.cost())
        with dask_client(scheduler, workers=workers, timeout=timeout) as client:
            futures = {}
            for rank, task in enumerate(tasks):
                future = client.submit(evaluate, task, key=_task_key(task), pure=False, priority=len(tasks) - rank)
                futures[future] = task
            bar = None
            if progress:
                from tqdm import tqdm

                bar = tqdm(total=len(todo), unit="cell", dynamic_ncols=True, file=sys.stderr)
            try:
                for future in distributed.as_completed(list(futures), loop=client.loop):
                    task = futures.pop(future)
                    cells_of_task = getattr(task, "cells", (task,))
                    try:
                        records = future.result()
                    except Exception as exc:  # noqa: BLE001 - the cells become "error" rows, run again next time
                        records = [dict(c.config(), status="error", error=f"{type(exc).__name__}: {exc}") for c in cells_of_task]
                    for cell, record in zip(cells_of_task, records):
                        store.put(cell.config(), record, kind=cell.kind)
                    if bar is not None:
                        bar.set_postfix_str(records[-1].get("status", "") if records else "", refresh=False)
                        bar.update(len(cells_of_task))
            finally:
                if bar is not None:
                    bar.close()
                if futures:
                    client.cancel(list(futures))
    return store.rows(keys=set(unique))
