"""The trainability grid (the paper's Fig. 3): test accuracy over depth and batch size.

Every cell (depth, batch size, seed) is one :func:`~bnsym.train.training.fit`
run with learning rate ``eta = lr_scale * B`` (the paper: ``1e-5 * B``).  This module
describes a cell and trains it (:func:`run_cell`, which never raises: a failure is a
record with ``status = "error"``, a divergence one with ``status = "diverged"`` and the
step where it happened).  Running a grid on a cluster and storing the records is
:mod:`bnsym.experiments` (docs/theory.md section 17).

Cost: the sum over cells of ``epochs * n_train * flops_per_sample``.
"""

from __future__ import annotations

import itertools
import json
import math
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

    #: The kind of row this cell makes in a results store.
    kind = "train"

    def config(self) -> dict:
        """The settings that identify the cell (:data:`KEY_FIELDS`): its key in a results store."""
        return record_config(asdict(self))

    def run(self) -> dict:
        """Train the cell; its record (see :func:`run_cell`)."""
        return run_cell(self)

    def cost(self) -> float:
        """Relative cost, for scheduling the slowest cells first."""
        return self.depth * (1 + 30 / (self.sub_batch or self.batch_size))


def record_config(record: dict) -> dict:
    """The :data:`KEY_FIELDS` of a cell or of a stored record (floats as floats, missing as ``None``)."""
    return {k: float(record[k]) if isinstance(record.get(k), float) else record.get(k) for k in KEY_FIELDS}


def grid(depths, batch_sizes, seeds=(0,), sub_batches=(None,), **settings) -> list[Cell]:
    """All cells, deepest and smallest batch (slowest) first so the workers stay busy to the end.

    The axes are depth, batch size, sub-batch size (the batch over which batch norm takes its
    statistics; ``None``: the whole batch; the paper's Fig. 3b fixes the batch at 1000 and
    varies this) and seed.  Checked here, before any cell runs: depths are integers >= 1,
    batch sizes integers >= 2 (batch norm needs two samples), sub-batch sizes integers >= 2
    that divide every batch size, seeds non-negative integers, ``lr_scale`` a finite number
    > 0 (a NaN would make a key that never matches on resume), ``width`` and ``epochs`` >= 1.
    """
    if "sub_batch" in settings:  # one sub-batch size for every cell, as a Cell field
        if tuple(sub_batches) != (None,):
            raise BnsymInputError("give sub_batch (one size) or sub_batches (a grid axis), not both")
        sub_batches = (settings.pop("sub_batch"),)
    if not depths or not batch_sizes or not sub_batches:
        raise BnsymInputError("depths, batch_sizes and sub_batches must each hold at least one value")
    depths = [validation.integer(d, name="depths", minimum=1) for d in depths]
    batch_sizes = [validation.integer(b, name="batch_sizes", minimum=2) for b in batch_sizes]
    seeds = [validation.integer(s, name="seeds", minimum=0) for s in seeds]
    sub_batches = [None if g is None else validation.integer(g, name="sub_batches", minimum=2) for g in sub_batches]
    for g in sub_batches:
        if g is not None and any(b % g for b in batch_sizes):
            raise BnsymInputError(f"sub-batch size {g} must divide every batch size, got batch sizes {batch_sizes}")
    for name in ("width", "epochs"):
        if name in settings:
            settings[name] = validation.integer(settings[name], name=name, minimum=1)
    for name in ("lr_scale", "sigma_w"):
        if name in settings:
            settings[name] = validation.real_float(settings[name], name=name, positive=True)
    if "eps" in settings:
        settings["eps"] = validation.real_float(settings["eps"], name="eps", nonnegative=True)
    cells = [Cell(depth=d, batch_size=b, seed=s, sub_batch=g, **settings)
             for d, b, g, s in itertools.product(depths, batch_sizes, sub_batches, seeds)]
    return sorted(cells, key=lambda c: -c.cost())


def json_safe(value):
    """``value`` with every non-finite float (nan, inf: strict JSON has none) replaced by ``None``."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


#: Longest line read from a results file; a longer line is not a record and is skipped.
MAX_LINE_BYTES = 1 << 20


def read_results(path) -> list[dict]:
    """Every complete record of a JSON-lines results file (the format of sweeps before the
    results store of :mod:`bnsym.experiments`).

    Lines that are not a JSON object with a ``depth`` (torn writes, invalid UTF-8, lines
    over :data:`MAX_LINE_BYTES`) are skipped; the file must be a regular file (a device such
    as ``/dev/zero`` is refused, it would never end).  Cost: one pass over the file.
    """
    path = Path(path)
    if not path.exists():
        return []
    if not path.is_file():
        kind = "a directory" if path.is_dir() else "not a regular file"
        raise BnsymInputError(f"results file {str(path)!r} is {kind}")
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



_DATA = {}


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
    except Exception as exc:  # noqa: BLE001 - recorded, not fatal: the sweep goes on
        record.update(status="error", error=f"{type(exc).__name__}: {exc}",
                      traceback=traceback.format_exc(limit=3), seconds=round(time.perf_counter() - start, 3))
    return record
