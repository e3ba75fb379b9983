"""A scan over eps at fixed settings: lambda_G of tanh at B = 32 for six eps values in one process.

Run: ``python benchmarks/bench_eps_scan.py [--dps 15,30] [--baseline]``.  The moment curve of the
radial solve is shared by the solves at every eps (``numerics.curve.shared_holder``, a
``numerics.curve.SharedCurve``; docs/theory.md section 15.3): a solve whose radial nodes lie in
the range an earlier solve's curve covers evaluates no point on it.  The scan runs twice, eps
decreasing (each solve inside the last one's range) and increasing (each reaching lower kappa).
``--baseline`` also times each scan with the sharing undone (the holders cleared before every
solve, as in fresh processes), in the same run, and prints the ratio.  Caches are cleared before
each scan.
"""

from __future__ import annotations

import argparse
import time

from caches import clear_caches

import bnsym
from bnsym.numerics.curve import shared_holder

EPS = ("1e-3", "3e-3", "1e-2", "3e-2", "0.1", "0.3")


def scan(dps, shared, order):
    clear_caches()
    start = time.perf_counter()
    values = []
    for eps in order:
        if not shared:
            shared_holder.cache_clear()
        values.append(bnsym.gradient_explosion_rate("tanh", 32, eps=eps, dps=dps))
    return values, time.perf_counter() - start


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dps", default="15,30", help="comma-separated precisions (default 15,30)")
    parser.add_argument("--baseline", action="store_true", help="also time the scan without the shared curve")
    args = parser.parse_args(argv)
    bnsym.gradient_explosion_rate("tanh", 32, dps=8)  # imports and first compilations outside the timings
    for dps in (int(d) for d in args.dps.split(",")):
        for label, order in (("decreasing", EPS[::-1]), ("increasing", EPS)):
            values, shared = scan(dps, True, order)
            line = f"dps {dps:3d}, eps {label}: shared curve {shared:6.2f} s"
            if args.baseline:
                fresh_values, fresh = scan(dps, False, order)
                worst = max(abs(a.value - b.value) / (a.error + b.error) for a, b in zip(values, fresh_values))
                line += (f", fresh curve each {fresh:6.2f} s, ratio {fresh / shared:4.1f}, "
                         f"largest |difference| / (sum of errors) {float(worst):.3f}")
            print(line, flush=True)
            print("   ", ", ".join(f"eps {e}: {mpmath_str(v)}" for e, v in zip(order, values)))


def mpmath_str(v):
    return str(v.value)[:14]


if __name__ == "__main__":
    main()
