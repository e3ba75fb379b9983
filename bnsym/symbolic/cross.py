r"""Cross-batch quantities in closed form (docs/theory.md section 13).

For ``f(s) = phi(gamma s + beta)`` a sum of piecewise power functions
(:class:`bnsym.symbolic.kernels.PowerSum`), ``D = f'``, ``n = B - 1`` and the
sphere moments of :mod:`bnsym.symbolic.moments`, at ``eps = 0``:

    c_x      = E[f(s_a)]^2                                          (every B >= 2),
    lambda_x = B t^2 E[1/chi_n]^2 / (q* - c*),   t = E[D(s)] - E[s^2 D(s)]/n   (B >= 3),

with ``E[1/chi_n] = sqrt(n) / ((n - 1) chi_ratio(1, n))`` (``chi_ratio`` of
:mod:`bnsym.symbolic.moments`), so that ``lambda_x = B n t^2 / ((n-1)^2 chi_ratio(1, n)^2 (q* - c*))``;
``lambda_x = 0`` at ``B = 2`` (batch norm's Jacobian vanishes) and
``E[D(z)]^2 / (q* - c*)`` at ``B = oo``.  ``t`` is written with ``D`` directly,
not through the integration by parts the engine's closed form uses
(:mod:`bnsym.numerics.cross`), so the tests compare two derivations.  Cost: a
few one-coordinate Gaussian closed forms.
"""

from __future__ import annotations

import sympy as sp

from bnsym.symbolic.kernels import PowerSum
from bnsym.symbolic.moments import chi_ratio, closed_sphere_moments, sphere_mean

#: The cross-batch quantities :func:`bnsym.derive` knows.
CROSS_BATCH = ("c_x", "lambda_x")


def cross_batch_closed_form(key: str, terms: PowerSum, b, n, order=None):
    """``(expr, domain)`` of ``key`` (``"c_x"`` or ``"lambda_x"``) for ``f = terms`` at batch size ``b = n + 1``."""
    mean = sphere_mean(terms, n, order)
    if key == "c_x":
        return mean**2, "every batch size B >= 2 (eps = 0)"
    if b == 2:
        return sp.Integer(0), "B = 2 (batch norm's Jacobian is zero)"
    spread = closed_sphere_moments(terms, n, gradient=False, order=order).spread
    d = terms.derivative()
    if b == sp.oo:
        return sphere_mean(d, n, order) ** 2 / spread, "B = oo"
    t = sphere_mean(d, n, order) - sphere_mean(d.times_power(2), n, order) / n
    return b * n * t**2 / ((n - 1) ** 2 * chi_ratio(1, n, order) ** 2 * spread), "batch sizes B >= 3 (eps = 0)"
