"""The trainability grid (the paper's Fig. 3): test accuracy over depth and batch size.

Every cell (depth, batch size, seed) is one :func:`~bnsym.train.training.fit`
run with learning rate ``eta = lr_scale * B`` (the paper: ``1e-5 * B``).

Results file: JSON lines, one finished cell per line, holding the cell's
settings and its outcome (``status`` = ``"ok"``, ``"diverged"`` or
``"error"``).  Safety rules:

* only the parent process writes, one ``os.write`` of one whole line per cell
  on a file opened with ``O_APPEND`` and fsynced, under an exclusive
  ``flock`` (two sweeps sharing a file cannot interleave);
* a line that does not parse (a crash mid-write) is ignored on reading, and
  a newline is written before the next record so it cannot corrupt it;
* on a re-run, cells whose settings already appear in the file are skipped
  (resume); finished cells are never rewritten, and a cell finished meanwhile
  by another sweep sharing the file is not appended twice;
* cells run in ``jobs`` worker processes (spawned, each with
  ``cores // jobs`` BLAS threads); on Ctrl-C the workers are terminated and
  every cell written so far stays.

Cost: the sum over cells of ``epochs * n_train * flops_per_sample``.
"""

from __future__ import annotations

import fcntl
import itertools
import json
import math
import multiprocessing
import os
import signal
import sys
import time
import traceback
from dataclasses import asdict, dataclass
from pathlib import Path

from bnsym import validation
from bnsym.errors import BnsymInputError
from bnsym.train.network import NetworkConfig

#: Settings that identify a cell (a cell is skipped on resume when all of them match).
KEY_FIELDS = (
    "dataset", "depth", "batch_size", "seed", "width", "epochs", "train_size", "test_size", "lr_scale",
    "optimizer", "momentum", "activation", "sigma_w", "eps", "batch_norm", "sub_batch", "dtype",
)


@dataclass(frozen=True)
class Cell:
    """Settings of one run of the grid; ``sub_batch`` ``None`` = whole-batch statistics."""

    dataset: str
    depth: int
    batch_size: int
    seed: int = 0
    width: int = 384
    epochs: int = 1
    train_size: int | None = None
    test_size: int | None = None
    lr_scale: float = 1e-5
    optimizer: str = "sgd"
    momentum: float = 0.0
    # the architecture's defaults are those of NetworkConfig
    activation: str = NetworkConfig.activation
    sigma_w: float = NetworkConfig.sigma_w
    eps: float = NetworkConfig.eps
    batch_norm: bool = NetworkConfig.batch_norm
    sub_batch: int | None = NetworkConfig.sub_batch
    dtype: str = NetworkConfig.dtype
    data_dir: str | None = None
    verify: bool = True

    @property
    def lr(self) -> float:
        return self.lr_scale * self.batch_size

    def key(self) -> tuple:
        d = asdict(self)
        return tuple(_canonical(d[k]) for k in KEY_FIELDS)


def _canonical(value):
    return float(value) if isinstance(value, float) else value


def grid(depths, batch_sizes, seeds=(0,), **settings) -> list[Cell]:
    """All cells, deepest and smallest batch (slowest) first so the pool stays busy to the end.

    Checked here, before any cell runs: depths are integers >= 1, batch sizes integers >= 2
    (batch norm needs two samples), seeds non-negative integers, ``lr_scale`` a finite number
    > 0 (a NaN would make a key that never matches on resume), ``width`` and ``epochs`` >= 1.
    """
    if not depths or not batch_sizes:
        raise BnsymInputError("depths and batch_sizes must each hold at least one value")
    depths = [validation.integer(d, name="depths", minimum=1) for d in depths]
    batch_sizes = [validation.integer(b, name="batch_sizes", minimum=2) for b in batch_sizes]
    seeds = [validation.integer(s, name="seeds", minimum=0) for s in seeds]
    for name in ("width", "epochs"):
        if name in settings:
            settings[name] = validation.integer(settings[name], name=name, minimum=1)
    for name in ("lr_scale", "sigma_w"):
        if name in settings:
            settings[name] = validation.real_float(settings[name], name=name, positive=True)
    if "eps" in settings:
        settings["eps"] = validation.real_float(settings["eps"], name="eps", nonnegative=True)
    cells = [Cell(depth=d, batch_size=b, seed=s, **settings) for d, b, s in itertools.product(depths, batch_sizes, seeds)]
    return sorted(cells, key=lambda c: -c.depth * (1 + 30 / c.batch_size))


#: Longest line read from a results file; a longer line is not a record and is skipped.
MAX_LINE_BYTES = 1 << 20


def read_results(path) -> list[dict]:
    """Every complete record of a results file.

    Lines that are not a JSON object with a ``depth`` (torn writes, invalid UTF-8, lines over
    :data:`MAX_LINE_BYTES`) are skipped; the file must be a regular file (a device such as
    ``/dev/full`` or ``/dev/zero`` is refused, it would never end).
    """
    path = Path(path)
    if not path.exists():
        return []
    _regular_file(path)
    records = []
    with open(path, "rb") as f:
        while True:
            line = f.readline(MAX_LINE_BYTES + 1)
            if not line:
                break
            if len(line) > MAX_LINE_BYTES:  # skip the rest of an over-long line
                while line and not line.endswith(b"\n"):
                    line = f.readline(MAX_LINE_BYTES + 1)
                continue
            try:
                record = json.loads(line.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError):
                continue
            if isinstance(record, dict) and "depth" in record:
                records.append(record)
    return records


def _regular_file(path: Path):
    if not path.is_file():
        kind = "a directory" if path.is_dir() else "not a regular file"
        raise BnsymInputError(f"results file {str(path)!r} is {kind}")


def _check_writable(path: Path):
    """Refuse, before any cell trains, a results path that cannot be appended to."""
    if path.exists():
        _regular_file(path)
    elif not path.parent.is_dir():
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise BnsymInputError(f"results file {str(path)!r}: cannot create its directory ({exc.strerror})") from None
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        os.close(fd)
    except OSError as exc:
        raise BnsymInputError(f"results file {str(path)!r} is not writable ({exc.strerror})") from None


#: Statuses of finished cells: skipped on resume.  An ``"error"`` cell (missing data, ...) is retried.
FINISHED = ("ok", "diverged")


def record_key(record: dict) -> tuple:
    return tuple(_canonical(record.get(k)) for k in KEY_FIELDS)


def json_safe(value):
    """``value`` with every non-finite float (nan, inf: strict JSON has none) replaced by ``None``."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def append_record(path, record: dict, *, skip_present=False) -> bool:
    """Append ``record`` as one JSON line: O_APPEND, a single write, fsync, under flock.

    Non-finite floats are written as ``null``.  With ``skip_present``, a
    record whose cell is already in the file (finished meanwhile by another
    sweep sharing it) is not written again.  Returns whether it was written.
    """
    line = json.dumps(json_safe(record), sort_keys=True, allow_nan=False).encode() + b"\n"
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        if skip_present and record_key(record) in {record_key(r) for r in read_results(path) if r.get("status") in FINISHED}:
            return False
        size = os.fstat(fd).st_size
        if size:
            with open(path, "rb") as f:
                f.seek(size - 1)
                if f.read(1) != b"\n":
                    line = b"\n" + line  # seal a torn last line
        os.write(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)
    return True


# ---------------------------------------------------------------------- workers
_DATA = {}


def _worker_init(parent_pid):
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C
    _die_with_parent(parent_pid)


def _die_with_parent(parent_pid):
    """On Linux, ask the kernel to kill this worker when its parent dies (even by SIGKILL)."""
    if sys.platform.startswith("linux"):
        import ctypes

        try:
            libc = ctypes.CDLL("libc.so.6", use_errno=True)
            libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        except OSError:  # pragma: no cover - no libc: workers may outlive a killed parent
            pass
        if os.getppid() != parent_pid:  # the parent died before prctl took effect
            os._exit(1)


def run_cell(cell: Cell) -> dict:
    """Train one cell and return its record (never raises)."""
    from bnsym.train.datasets import load_dataset
    from bnsym.train.training import build, fit

    record = {k: v for k, v in asdict(cell).items() if k not in ("data_dir", "verify")}
    record["lr"] = cell.lr
    start = time.perf_counter()
    try:
        key = (cell.dataset, cell.data_dir, cell.verify)
        if key not in _DATA:
            _DATA.clear()
            _DATA[key] = load_dataset(cell.dataset, cell.data_dir, verify=cell.verify)
        data = _DATA[key].subset(cell.train_size, cell.test_size)
        network, optimizer = build(
            data, depth=cell.depth, width=cell.width, batch_size=cell.batch_size, lr=cell.lr,
            activation=cell.activation, optimizer=cell.optimizer, momentum=cell.momentum, sigma_w=cell.sigma_w,
            eps=cell.eps, batch_norm=cell.batch_norm, sub_batch=cell.sub_batch, dtype=cell.dtype, seed=cell.seed,
        )
        result = fit(network, optimizer, data, epochs=cell.epochs, batch_size=cell.batch_size, seed=cell.seed)
        out = result.as_dict()
        out.pop("history")
        record.update(out)
        record["status"] = "diverged" if result.diverged else "ok"
    except Exception as exc:  # recorded, not fatal: the sweep goes on
        record.update(status="error", error=f"{type(exc).__name__}: {exc}",
                      traceback=traceback.format_exc(limit=3), seconds=round(time.perf_counter() - start, 3))
    return record


def run_sweep(cells, results_path, *, jobs=1, progress=True, log=sys.stderr, retry_failed=True) -> list[dict]:
    """Run the ``cells`` not finished in ``results_path``; return every record of the file afterwards.

    A cell is finished when the file holds a record of it with status ``"ok"`` or
    ``"diverged"``; a cell recorded as ``"error"`` is run again unless ``retry_failed`` is
    False.  ``jobs`` is capped at the number of cores and of cells to run (more processes
    than cores only compete for them).  The results path is checked for writing first.
    """
    results_path = Path(results_path)
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise BnsymInputError(f"jobs must be an integer >= 1, got {jobs!r}")
    _check_writable(results_path)
    records = read_results(results_path)
    done = {record_key(r) for r in records if r.get("status") in FINISHED or not retry_failed}
    todo = [c for c in cells if c.key() not in done]
    useful = max(1, min(os.cpu_count() or 1, len(todo)))
    if jobs > useful:
        if log:
            print(f"sweep: {jobs} jobs capped at {useful} ({os.cpu_count()} cores, {len(todo)} cells to run)", file=log)
        jobs = useful
    if log:
        print(f"sweep: {len(cells) - len(todo)} of {len(cells)} cells already in {results_path}; "
              f"running {len(todo)} with {jobs} job(s)", file=log)
    bar = None
    if progress and todo:
        from tqdm import tqdm

        bar = tqdm(total=len(todo), unit="cell", dynamic_ncols=True)

    def finish(record):
        append_record(results_path, record, skip_present=True)
        if bar is not None:
            acc = record.get("test_accuracy")
            bar.set_postfix(depth=record["depth"], B=record["batch_size"], status=record["status"],
                            acc="-" if acc is None else f"{acc:.3f}")
            bar.update(1)

    try:
        if jobs == 1 or len(todo) <= 1:
            for cell in todo:
                finish(run_cell(cell))
        else:
            threads = str(max(1, (os.cpu_count() or 1) // jobs))
            saved = {k: os.environ.get(k) for k in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")}
            os.environ.update({k: threads for k in saved})
            try:
                pool = multiprocessing.get_context("spawn").Pool(jobs, initializer=_worker_init, initargs=(os.getpid(),),
                                                                  maxtasksperchild=None)
            finally:
                for k, v in saved.items():
                    if v is None:
                        os.environ.pop(k, None)
                    else:
                        os.environ[k] = v
            try:
                for record in pool.imap_unordered(run_cell, todo):
                    finish(record)
                pool.close()
            except BaseException:
                pool.terminate()
                raise
            finally:
                pool.join()
    finally:
        if bar is not None:
            bar.close()
    return read_results(results_path)
