"""Plain-text rendering of results: numbers to their promised digits, errors, aligned tables.

One place for what the command line prints and what a result's ``str`` shows (the CLI's
tables are the results' own text).  May import: mpmath only.
"""

from __future__ import annotations

import mpmath


def number_text(value, dps: int, *, strip: bool = True) -> str:
    """``value`` to ``dps`` significant digits (``inf``/``-inf``/``nan`` spelled out, ``""`` for None),
    without trailing zeros unless ``strip`` is false (stored values keep the digits promised)."""
    if value is None:
        return ""
    if mpmath.isinf(value):
        return "inf" if value > 0 else "-inf"
    if mpmath.isnan(value):  # (floats, mpf and NumPy scalars alike)
        return "nan"
    if not strip:
        return mpmath.nstr(value, dps, strip_zeros=False)
    return mpmath.nstr(value, dps, strip_zeros=True).removesuffix(".0")


def error_text(error) -> str:
    """An error estimate with two significant digits (``""`` for None; ints, floats and NumPy scalars too)."""
    if error is None:
        return ""
    if error == 0:
        return "0"
    if not isinstance(error, mpmath.mpf):
        error = mpmath.mpf(float(error))  # (nstr leaves a float's digits as they are; mpf refuses NumPy scalars)
    if mpmath.isinf(error):
        return "inf"
    return mpmath.nstr(error, 2).removesuffix(".0")


def table_text(rows, header=("quantity", "value", "error")) -> str:
    """Rows of strings as an aligned plain-text table under ``header``, a rule below it (ValueError for a
    row of another width than the header: a cell would be dropped or missing)."""
    rows = [tuple(header)] + [tuple(r) for r in rows]
    for row in rows:
        if len(row) != len(header):
            raise ValueError(f"a table row has {len(row)} cells for {len(header)} columns: {row!r}")
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = []
    for k, row in enumerate(rows):
        lines.append("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
        if k == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def settings_line(settings: dict, *, detail: str = "", digits: bool = True) -> str:
    """``"tanh, B = 8, gamma = 1, beta = 0, eps = 0, sigma_w = 1  (15 digits, quadrature)"`` from
    ``Settings.as_dict()``, ``detail`` (here ``"quadrature"``) after the digits; ``digits=False`` leaves
    the digits out (float64 and sampled results, which promise none)."""
    s = settings
    notes = ", ".join(([f"{s['dps']} digits"] if digits else []) + ([detail] if detail else []))
    return (f"{s['activation']}, B = {s['batch_size']}, gamma = {s['gamma']}, beta = {s['beta']}, eps = {s['eps']}, "
            f"sigma_w = {s['sigma_w']}" + (f"  ({notes})" if notes else ""))


class ShownAsText:
    """Mixin of the composite results: IPython and Jupyter display their text (``str``: the table the
    command line prints) instead of the dataclass repr, which stays for ``repr()``."""

    def _repr_pretty_(self, printer, cycle):
        printer.text(f"{type(self).__name__}(...)" if cycle else str(self))
