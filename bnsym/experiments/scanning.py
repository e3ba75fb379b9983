"""Parameter scans: one engine quantity over a grid of batch size, gamma, beta, eps and sigma_w.

Quantities (:data:`QUANTITIES`): ``lambda_G`` (:func:`bnsym.gradient_explosion_rate`),
``trainable_depth`` (:func:`bnsym.trainable_depth`, growth factor e^16), ``q`` and ``c``
(:func:`bnsym.fixed_point`), and the spectrum's eigenvalues ``forward_G``, ``forward_L``,
``forward_M``, ``backward_G``, ``backward_L``, ``backward_M`` (:func:`bnsym.spectrum`).
Each grid point is one :class:`ScanCell`, evaluated by the public function at the promised
``dps`` (cost: that function's cost, about 0.1-0.5 s at dps 15 for a smooth activation at
eps = 0; closed forms milliseconds).  A point the engine refuses (a
:class:`~bnsym.errors.BnsymError`, e.g. the spectrum at B = 3) is a finished row with
status ``"failed"`` and the engine's message; any other exception a row with status
``"error"``, tried again on the next run.  ``precision="double"``: :class:`FloatBlock`.
See docs/theory.md section 17.
"""

from __future__ import annotations

import itertools
import math
import time
from dataclasses import asdict, dataclass, field

import mpmath

from bnsym import validation
from bnsym.errors import BnsymError, BnsymInputError
from bnsym.estimate import Value
from bnsym.text import ShownAsText, error_text, number_text, table_text

#: Quantities a scan evaluates.
QUANTITIES = ("lambda_G", "trainable_depth", "q", "c",
              "forward_G", "forward_L", "forward_M", "backward_G", "backward_L", "backward_M")
#: Swept parameters besides the batch size, in the order of a grid.
AXES = ("gamma", "beta", "eps", "sigma_w")
#: Most points of one scan.
MAX_POINTS = 1_000_000


@dataclass(frozen=True)
class ScanCell:
    """One grid point: parameters as exact decimal strings, the batch size an ``int`` or ``"inf"``."""

    quantity: str
    activation: str
    batch_size: object
    gamma: str = "1"
    beta: str = "0"
    eps: str = "0"
    sigma_w: str = "1"
    dps: int | None = 15
    method: str = "auto"
    precision: str = "mpmath"

    #: The kind of row this cell makes in a results store.
    kind = "scan"

    def config(self) -> dict:
        return asdict(self)

    def cost(self) -> float:
        if self.precision == "double":
            return 1e-4
        return 1.0 + (float(self.eps) > 0) * 10 + self.quantity.startswith(("forward", "backward"))

    def run(self) -> dict:
        """Evaluate the point: its record (never raises)."""
        if self.precision == "double":
            return FloatBlock((self,)).run_all()[0]
        record = self.config()
        start = time.perf_counter()
        try:
            result = _evaluate(self)
            record.update(status="ok", value=float(result.value), error=float(result.error), meaning=result.meaning,
                          value_text=number_text(result.value, self.dps, strip=False))
        except BnsymError as exc:
            record.update(status="failed", message=f"{type(exc).__name__}: {exc}")
        except Exception as exc:  # noqa: BLE001 - unexpected: recorded, the scan goes on
            record.update(status="error", message=f"{type(exc).__name__}: {exc}")
        record["seconds"] = round(time.perf_counter() - start, 4)
        return record


def _evaluate(cell: ScanCell) -> Value:
    from bnsym.meanfield.bsb1 import fixed_point
    from bnsym.meanfield.depth import trainable_depth
    from bnsym.meanfield.gradients import gradient_explosion_rate
    from bnsym.meanfield.linearization import spectrum

    b = math.inf if cell.batch_size == "inf" else cell.batch_size
    kw = {"gamma": cell.gamma, "beta": cell.beta, "eps": cell.eps, "sigma_w": cell.sigma_w, "dps": cell.dps, "method": cell.method}
    q = cell.quantity
    if q == "lambda_G":
        return gradient_explosion_rate(cell.activation, b, **kw)
    if q == "trainable_depth":
        return trainable_depth(cell.activation, b, **kw)
    if q in ("q", "c"):
        fp = fixed_point(cell.activation, b, **kw)
        return fp if q == "q" else Value(fp.c, fp.c_error, meaning=fp.meaning)
    operator, subspace = q.split("_")
    return spectrum(cell.activation, b, **kw).eigenvalue(operator, subspace)


#: Quantities of the float64 path (``precision="double"``).
DOUBLE_QUANTITIES = ("lambda_G", "q", "c")
#: Points per task of the float64 path.
BLOCK = 2000


@dataclass(frozen=True)
class FloatBlock:
    """Cells of one activation and batch size evaluated together in float64
    (:func:`bnsym.numerics.float_rates.double_rates`; docs/theory.md section 17)."""

    cells: tuple

    def cost(self) -> float:
        return 1e-4 * len(self.cells)

    def run_all(self) -> list[dict]:
        from bnsym.numerics.float_rates import double_rates

        start = time.perf_counter()
        records = [c.config() for c in self.cells]
        usable = [i for i, c in enumerate(self.cells) if float(c.eps) == 0]
        for i, c in enumerate(self.cells):
            if float(c.eps) != 0:
                records[i].update(status="failed", message="precision double needs eps = 0")
        if usable:
            first = self.cells[usable[0]]
            b = math.inf if first.batch_size == "inf" else first.batch_size
            try:
                table = double_rates(first.activation, b, [float(self.cells[i].gamma) for i in usable],
                                    [float(self.cells[i].beta) for i in usable])
            except BnsymError as exc:
                for i in usable:
                    records[i].update(status="failed", message=f"{type(exc).__name__}: {exc}")
            else:
                for j, i in enumerate(usable):
                    value, error = table[self.cells[i].quantity]
                    v, e = float(value[j]), float(error[j])
                    if math.isfinite(v) and e <= 1e-12 * abs(v) + 1e-300:
                        records[i].update(status="ok", value=v, error=e, meaning="quadrature", value_text=repr(v))
                    else:
                        records[i].update(status="failed", message=f"float64 rules reached only {e:.2g} absolute error on {v!r}")
        seconds = round((time.perf_counter() - start) / len(self.cells), 6)
        for r in records:
            r["seconds"] = seconds
        return records


def float_blocks(cells) -> list[FloatBlock]:
    """The cells grouped by (activation, batch size) into blocks of at most :data:`BLOCK`."""
    groups = {}
    for c in cells:
        groups.setdefault((c.activation, c.batch_size), []).append(c)
    return [FloatBlock(tuple(g[i:i + BLOCK])) for g in groups.values() for i in range(0, len(g), BLOCK)]


def scan_grid(quantity, activation, *, batch_size, gamma="1", beta="0", eps="0", sigma_w="1", dps=15,
              method="auto", precision="mpmath") -> list[ScanCell]:
    """Every point of the grid, checked before any is evaluated.

    Each axis is a range ``"a:b:n"``, a comma list, a number or a sequence
    (:func:`bnsym.validation.number_axis`, :func:`bnsym.validation.batch_axis`); gamma must be
    nonzero, eps >= 0, sigma_w > 0; the activation must parse; at most :data:`MAX_POINTS` points.
    ``precision="double"`` (float64, :data:`DOUBLE_QUANTITIES` only) ignores ``dps`` and ``method``.
    """
    from bnsym.activations import activation as parse_activation

    validation.choice(quantity, name="quantity", options=QUANTITIES)
    validation.choice(precision, name="precision", options=("mpmath", "double"))
    if precision == "double":
        validation.choice(quantity, name="quantity with precision double", options=DOUBLE_QUANTITIES)
    if not isinstance(activation, str):
        raise BnsymInputError(f"activation must be a name or an expression in x, got {activation!r}")
    parse_activation(activation)
    dps = validation.dps(dps)
    validation.choice(method, name="method", options=("auto", "closed form", "quadrature"))
    batches = ["inf" if b == math.inf else b for b in validation.batch_axis(batch_size)]
    conditions = {"gamma": {"nonzero": True}, "beta": {}, "eps": {"nonnegative": True}, "sigma_w": {"positive": True}}
    axes = {}
    for name, value in zip(AXES, (gamma, beta, eps, sigma_w)):
        axes[name] = validation.number_axis(value, name=name)
        for point in axes[name]:
            validation.real(point, name=name, **conditions[name])
    size = len(batches) * math.prod(len(v) for v in axes.values())
    if size == 0:
        raise BnsymInputError("the grid has no cells")
    if size > MAX_POINTS:
        raise BnsymInputError(f"the grid has {size} points, more than the {MAX_POINTS} a scan may hold")
    if precision == "double":
        dps, method = None, "float64"
    return [ScanCell(quantity, activation, b, g, be, e, s, dps, method, precision)
            for b, g, be, e, s in itertools.product(batches, *axes.values())]


@dataclass(frozen=True)
class ScanPoint(Value):
    """One evaluated grid point: ``value`` (``mpmath.mpf`` at the promised digits, ``nan`` if
    not ``ok``), ``error``, ``meaning``; ``settings`` the cell's configuration; ``status``
    (``"ok"``, ``"failed"``, ``"error"``) and the engine's ``message`` when not ok."""

    settings: dict = field(default_factory=dict)
    status: str = "ok"
    message: str = ""


@dataclass(frozen=True)
class Scan(ShownAsText):
    """The points of a scan in grid order, and the store they were written to; ``rows`` holds the
    points' store rows in the same order when :func:`scan` was asked for them (what ``bnsym scan
    --json`` prints and its plot reads), else nothing."""

    quantity: str
    points: tuple
    store: str
    rows: tuple = field(default=(), compare=False)

    def values(self) -> list[float]:
        return [float(p.value) for p in self.points]

    @property
    def failed(self) -> tuple:
        return tuple(p for p in self.points if p.status != "ok")

    def text(self, limit: int | None = None) -> str:
        """A table of the points in grid order: the batch size, the axes that vary, the value with its error and
        the status (what ``bnsym scan`` prints); with ``limit``, the first and last ``limit // 2`` rows around a
        line saying how many are left out (``str`` shows 20)."""
        swept = [a for a in AXES if len({p.settings.get(a) for p in self.points}) > 1]

        def row(p):
            ok = p.status == "ok"
            digits = int(p.settings.get("dps") or 15)
            return (str(p.settings.get("batch_size")), *(str(p.settings.get(a)) for a in swept),
                    number_text(p.value, digits) if ok else "", error_text(p.error) if ok else "",
                    "ok" if ok else f"{p.status}: {p.message}")

        points = list(self.points)
        header = ("B", *swept, self.quantity, "error", "status")
        if limit is None or len(points) <= limit:
            return table_text([row(p) for p in points], header)
        half = max(limit // 2, 1)
        gap = (f"... {len(points) - 2 * half} more",) + ("",) * (len(header) - 1)
        return table_text([row(p) for p in points[:half]] + [gap] + [row(p) for p in points[-half:]], header)

    def __str__(self) -> str:
        return self.text(limit=20)

    def __repr__(self) -> str:  # the points are an attribute (a scan may hold a million)
        return f"Scan(quantity={self.quantity!r}, points={len(self.points)}, failed={len(self.failed)}, store={self.store!r})"


def point_from_row(row: dict) -> ScanPoint:
    """A :class:`ScanPoint` from a store row of a scan cell."""
    settings = {k: row[k] for k in ScanCell.__dataclass_fields__}
    if row.get("status") == "ok":
        with mpmath.workdps(max(20, int(row.get("dps") or 15) + 5)):
            value = mpmath.mpf(row["value_text"]) if row.get("value_text") not in (None, "inf", "-inf") else mpmath.mpf(
                row.get("value_text") or "nan")
        return ScanPoint(value, row.get("error") or 0.0, meaning=row.get("meaning", "quadrature"), settings=settings)
    return ScanPoint(mpmath.mpf("nan"), math.nan, settings=settings, status=row.get("status", "error"),
                     message=row.get("message", row.get("error", "")))


def scan(quantity, activation, *, batch_size, gamma="1", beta="0", eps="0", sigma_w="1", dps=15, method="auto",
         precision="mpmath", store=":memory:", scheduler=None, workers=None, progress=False, rows=False) -> Scan:
    """Evaluate ``quantity`` of ``activation`` over a grid on Dask, writing every point to ``store``.

    Axes as in :func:`scan_grid`; points already finished in ``store`` (a path, default an
    in-memory store) are not evaluated again.  ``scheduler`` is the address of an existing
    Dask scheduler; without it a LocalCluster of ``workers`` single-threaded processes
    (default one per core) is started for the call.  Cost: the points' own cost divided by
    the number of workers, plus about 2 s to start a LocalCluster.  ``precision="double"``
    evaluates lambda_G, q or c in float64 for blocks of points at once (about 1e-4 s a point,
    checked against the mpmath path to 1e-12 relative).  With ``rows`` the result keeps the store
    rows too (``Scan.rows``, in grid order; without it they are not held past the call).  docs/theory.md section 17.
    """
    from bnsym.experiments.execution import run_cells
    from bnsym.experiments.store import Store, canonical

    cells = scan_grid(quantity, activation, batch_size=batch_size, gamma=gamma, beta=beta, eps=eps,
                      sigma_w=sigma_w, dps=dps, method=method, precision=precision)
    with Store(store) as db:
        by_key = {row["key"]: row for row in run_cells(cells, db, scheduler=scheduler, workers=workers, progress=progress,
                                                       log=None, group=float_blocks if precision == "double" else None)}
        ordered = tuple(by_key[canonical(c.config())] for c in cells)
        return Scan(quantity, tuple(point_from_row(row) for row in ordered), db.path, ordered if rows else ())
