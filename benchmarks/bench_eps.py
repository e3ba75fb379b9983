"""Cost of ``eps > 0`` against ``eps = 0`` (docs/theory.md section 15).

Run: ``python benchmarks/bench_eps.py [--dps 15,30]``.  For tanh and relu at B = 32 it times
``bnsym.gradient_explosion_rate`` and ``bnsym.spectrum`` at eps = 0 and eps = 1e-3 with every
cache cleared before each call (a fresh process would also pay the import, about the same for
both; the spectrum's symbolic reduction, the same at every eps, is done once before its
timings), and prints the ratio eps = 1e-3 / eps = 0 per quantity, activation and dps.  The target
of issue 17 is a ratio of at most 3 for a smooth activation.
"""

from __future__ import annotations

import argparse
import time

from caches import clear_caches

import bnsym


def timed(quantity, activation, eps, dps):
    clear_caches()
    start = time.perf_counter()
    if quantity == "lambda_G":
        value = bnsym.gradient_explosion_rate(activation, 32, eps=eps, dps=dps)
    else:
        value = bnsym.spectrum(activation, 32, eps=eps, dps=dps).eigenvalue("backward", "M")
    return value, time.perf_counter() - start


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dps", default="15,30", help="comma-separated precisions (default 15,30)")
    args = parser.parse_args(argv)
    print(f"{'quantity':9} {'activation':10} {'dps':>4} {'eps=0 [s]':>10} {'eps=1e-3 [s]':>13} {'ratio':>7}  value at eps=1e-3")
    for dps in (int(d) for d in args.dps.split(",")):
        for quantity in ("lambda_G", "spectrum"):
            for activation in ("relu", "tanh"):
                if quantity == "spectrum":  # the symbolic reduction (the same at every eps) outside the timing
                    bnsym.spectrum(activation, 32, dps=8)
                _, t0 = timed(quantity, activation, 0, dps)
                value, t1 = timed(quantity, activation, "1e-3", dps)
                label = "" if quantity == "lambda_G" else "backward M = "
                shown = value if quantity == "lambda_G" else f"{value.value} +- {float(value.error):.1e}"
                print(f"{quantity:9} {activation:10} {dps:>4} {t0:>10.2f} {t1:>13.2f} {t1 / t0:>7.1f}  {label}{shown}", flush=True)


if __name__ == "__main__":
    main()
