"""Kinked activations at beta != 0 and eps > 0 on small batches (docs/theory.md section 15.3).

Run: ``python benchmarks/bench_kinked_eps.py [--cases 3:8,4:8,5:8,6:10]``.  For ReLU at
``beta = 0.2`` it times ``bnsym.gradient_explosion_rate`` at ``eps = 0.05`` against the same call
at ``eps = 0`` (the baseline, measured in the same run: the sphere moments at one gain instead of
a radial integral of them), with every cache cleared before each call, and prints the ratio, the
value and its error.  Before the radial rule ended its panels at the pair crossings (and graded
the panels beside them) these cases raised PrecisionError; ``B:dps`` pairs choose the cases.
"""

from __future__ import annotations

import argparse
import time

from caches import clear_caches

import bnsym


def timed(batch_size, eps, dps):
    clear_caches()
    start = time.perf_counter()
    value = bnsym.gradient_explosion_rate("relu", batch_size, beta="0.2", eps=eps, dps=dps)
    return value, time.perf_counter() - start


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default="3:8,4:8,5:8,6:10", help="comma-separated B:dps (default 3:8,4:8,5:8,6:10)")
    args = parser.parse_args(argv)
    print(f"{'B':>3} {'dps':>4} {'eps=0 [s]':>10} {'eps=0.05 [s]':>13} {'ratio':>7}  lambda_G at eps=0.05")
    for case in args.cases.split(","):
        b, dps = (int(x) for x in case.split(":"))
        _, t0 = timed(b, 0, dps)
        value, t1 = timed(b, "0.05", dps)
        print(f"{b:>3} {dps:>4} {t0:>10.2f} {t1:>13.2f} {t1 / t0:>7.1f}  {value.value} +- {float(value.error):.1e}", flush=True)


if __name__ == "__main__":
    main()
