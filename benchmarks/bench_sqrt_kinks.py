"""Speed of the nested two-coordinate rule on square-root kinks (``x_+^(3/2)``), against the rule of commit b9e0861,
before the tangency flags and branch points took the kink's sides into account, before a tangency with a logarithm
(odd ``n``) had the map of :class:`~bnsym.numerics.quadrature.LogEnd` instead of tanh-sinh, and before a Gauss panel
with a square-root map was one rule instead of blocks (docs/theory.md section 3.2).

Run: ``python benchmarks/bench_sqrt_kinks.py``.  For ``relu_power(1.5)`` at shift ``beta = 0.2`` each case computes
the pair of derivatives ``E[phi'(s_a) phi'(s_b)]`` (and at B = 5 the centred pair) with ``SphereLaw.expect_pairs``
twice in one process, caches cleared before each: as bnsym does it, and with the baseline switched in
(``SphereLaw._tangency_flag`` as it was, ``_branch_points`` empty at odd ``n`` and blind to the sides,
``quadrature.MAPPED_SINGLE_RULE`` 0, ``sphere.BRANCH_FLOOR`` 3).  Printed per case: seconds of each, the
ratio baseline / now, both values' difference and their reported errors.  About five minutes.
"""

from __future__ import annotations

import time

import mpmath

from bnsym.activations import activation
from bnsym.numerics import quadrature, sphere
from bnsym.numerics.sphere import Integrand, SphereLaw

CASES = [(6, 20, ("d", "f")), (6, 30, ("d", "f")), (8, 30, ("d", "f")), (5, 30, ("d", "f")), (5, 60, ("d", "f"))]


def _baseline():
    """Patch the rule back to that of b9e0861; returns the function that undoes it."""
    flag, points, single, floor = (SphereLaw._tangency_flag, SphereLaw._branch_points, quadrature.MAPPED_SINGLE_RULE,
                                   sphere.BRANCH_FLOOR)

    def old_flag(self, reg, covering_regular):
        if self.n == 2:
            return reg
        return "sqrt" if reg is True or (reg == "sqrt" and self.n % 2 == 0) else False

    def old_points(self, sines):
        if self.n % 2:
            return []
        return points(self, [(xi, reg, index, False, False) for xi, reg, index, _, _ in sines])

    SphereLaw._tangency_flag, SphereLaw._branch_points = old_flag, old_points
    quadrature.MAPPED_SINGLE_RULE, sphere.BRANCH_FLOOR = 0, 3

    def undo():
        SphereLaw._tangency_flag, SphereLaw._branch_points = flag, points
        quadrature.MAPPED_SINGLE_RULE, sphere.BRANCH_FLOOR = single, floor

    return undo


def run(batch_size, dps, kinds):
    """``(seconds, estimates)`` of the pairs of ``kinds`` at ``dps`` digits, in a fresh law, hints cleared."""
    sphere._LEVEL_HINTS.clear()
    act, beta = activation("relu_power(1.5)"), mpmath.mpf("0.2")
    law = SphereLaw(batch_size, dps + 10)
    start = time.perf_counter()
    with mpmath.workdps(dps + 10):
        made = {"d": Integrand(act, mpmath.mpf(1), beta, derivative=True),
                "f": Integrand(act, mpmath.mpf(1), beta, center=mpmath.mpf("0.3"))}
        out = law.expect_pairs([(made[k], made[k]) for k in kinds], mpmath.mpf(10) ** -(dps + 2))
    return time.perf_counter() - start, out


def main():
    print(f"{'B':>3} {'dps':>4} {'pairs':>6} {'now s':>8} {'before s':>9} {'ratio':>6}  difference / errors")
    for batch_size, dps, kinds in CASES:
        now, values = run(batch_size, dps, kinds)
        undo = _baseline()
        try:
            before, old = run(batch_size, dps, kinds)
        finally:
            undo()
        diffs = ", ".join(f"{mpmath.nstr(abs(a.value - b.value), 2)} / {mpmath.nstr(a.error, 2)}, "
                          f"{mpmath.nstr(b.error, 2)}" for a, b in zip(values, old))
        print(f"{batch_size:>3} {dps:>4} {','.join(kinds):>6} {now:>8.2f} {before:>9.2f} {before / now:>6.2f}  {diffs}",
              flush=True)


if __name__ == "__main__":
    main()
