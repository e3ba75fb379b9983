"""Figures of a scan: a line plot (one line per batch size) or heatmaps (two swept axes).

Swept axes are those of gamma, beta, eps, sigma_w that take more than one value in the
rows.  None: the quantity against the batch size (log axis); one: the quantity against it,
one line per batch size; two: one heatmap per batch size.  Points that are not ``ok`` are
gaps (lines) or marked ``x`` (heatmaps).  See docs/theory.md section 17.
"""

from __future__ import annotations

import math

import numpy as np

from bnsym.errors import BnsymInputError
from bnsym.experiments.scanning import AXES
from bnsym.plotting import pyplot

_LABELS = {"gamma": "gamma", "beta": "beta", "eps": "eps", "sigma_w": "sigma_w"}


def swept_axes(rows) -> list[str]:
    """The parameters among :data:`~bnsym.experiments.scanning.AXES` with more than one value."""
    return [a for a in AXES if len({float(r[a]) for r in rows}) > 1]


def _batch(value):
    return math.inf if value == "inf" else int(value)


def scan_figure(rows, path, *, title=None) -> str:
    """Draw the scan ``rows`` (store rows of one quantity and activation) to ``path``; return the kind drawn."""
    if not rows:
        raise BnsymInputError("the scan holds no points to plot")
    quantities = {r["quantity"] for r in rows} | set()
    if len(quantities) != 1 or len({r["activation"] for r in rows}) != 1:
        raise BnsymInputError("plot one quantity of one activation at a time")
    quantity = quantities.pop()
    axes = swept_axes(rows)
    if len(axes) > 2:
        raise BnsymInputError(f"a plot shows at most two swept axes besides the batch size, this scan sweeps {', '.join(axes)}")
    plt = pyplot()
    batches = sorted({_batch(r["batch_size"]) for r in rows})

    def value(r):
        return r["value"] if r.get("status") == "ok" and r.get("value") is not None else math.nan

    fixed = ", ".join(f"{a} = {rows[0][a]}" for a in AXES if a not in axes)
    label = title or f"{quantity} of {rows[0]['activation']} ({fixed})"
    if len(axes) < 2:
        fig, ax = plt.subplots(figsize=(6.5, 4.5))
        if not axes:
            finite = [b for b in batches if b != math.inf]
            ys = [value(next(r for r in rows if _batch(r["batch_size"]) == b)) for b in finite]
            ax.plot(finite, ys, "o-")
            ax.set_xscale("log", base=2)
            ax.set_xlabel("batch size B")
        else:
            a = axes[0]
            for b in batches:
                mine = sorted((r for r in rows if _batch(r["batch_size"]) == b), key=lambda r: float(r[a]))
                ax.plot([float(r[a]) for r in mine], [value(r) for r in mine], "-", marker="." if len(mine) < 60 else None,
                        label=f"B = {b}")
            ax.set_xlabel(_LABELS[a])
            ax.legend(fontsize=8)
        ax.set_ylabel(quantity)
        ax.grid(alpha=0.3)
        ax.set_title(label, fontsize=10)
        kind = "line"
    else:
        xa, ya = axes
        fig, panels = plt.subplots(1, len(batches), figsize=(4.5 * len(batches) + 1, 4), squeeze=False)
        for ax, b in zip(panels[0], batches):
            mine = [r for r in rows if _batch(r["batch_size"]) == b]
            xs = sorted({float(r[xa]) for r in mine})
            ys = sorted({float(r[ya]) for r in mine})
            grid = np.full((len(ys), len(xs)), np.nan)
            for r in mine:
                grid[ys.index(float(r[ya])), xs.index(float(r[xa]))] = value(r)
            mesh = ax.pcolormesh(xs, ys, np.ma.masked_invalid(grid), shading="nearest", cmap="viridis")
            fig.colorbar(mesh, ax=ax, label=quantity)
            bad = [(float(r[xa]), float(r[ya])) for r in mine if r.get("status") != "ok"]
            if bad:
                ax.plot(*zip(*bad), "rx", ms=6)
            ax.set_xlabel(_LABELS[xa])
            ax.set_ylabel(_LABELS[ya])
            ax.set_title(f"B = {b}", fontsize=10)
        fig.suptitle(label, fontsize=10)
        kind = "heatmap"
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return kind
