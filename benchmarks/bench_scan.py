"""Points per second of a lambda_G scan: the float64 path against the mpmath path, one process.

    python benchmarks/bench_scan.py [--points 10000] [--mpmath-points 20] [--batch-size 32]

Times ``bnsym.numerics.float_rates.double_rates`` on a gamma x beta grid of tanh at one batch
size (after one warm-up call that builds the rules and compiles phi), and
``bnsym.gradient_explosion_rate`` at dps 15 on a sample of the same grid (after one warm-up
point), and prints both rates, their ratio and the largest relative difference on the sample.
Both run in this process on one core (BLAS pinned to one thread): divide by the cores of a
cluster for ``bnsym scan``, which adds a LocalCluster start (a few seconds).
"""

from __future__ import annotations

import argparse
import os

for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")

import time

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=10_000)
    parser.add_argument("--mpmath-points", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()

    import bnsym
    from bnsym.numerics.float_rates import double_rates

    side = round(args.points ** 0.5)
    gamma, beta = (a.ravel() for a in np.meshgrid(np.linspace(0.05, 2, side), np.linspace(-1, 1, side)))
    double_rates("tanh", args.batch_size, gamma[:1], beta[:1])
    start = time.perf_counter()
    table = double_rates("tanh", args.batch_size, gamma, beta)
    fast = time.perf_counter() - start
    rng = np.random.default_rng(0)
    sample = rng.choice(len(gamma), size=args.mpmath_points + 1, replace=False)
    bnsym.gradient_explosion_rate("tanh", args.batch_size, gamma=float(gamma[sample[0]]), beta=float(beta[sample[0]]))
    start = time.perf_counter()
    worst = 0.0
    for i in sample[1:]:
        exact = float(bnsym.gradient_explosion_rate("tanh", args.batch_size, gamma=float(gamma[i]), beta=float(beta[i])))
        worst = max(worst, abs(table["lambda_G"][0][i] / exact - 1))
    slow = time.perf_counter() - start
    print(f"tanh lambda_G, B = {args.batch_size}, {len(gamma)} float64 points in {fast:.2f} s: {len(gamma) / fast:,.0f} points/s")
    print(f"mpmath path (dps 15), {args.mpmath_points} points in {slow:.2f} s: {args.mpmath_points / slow:.2f} points/s")
    print(f"ratio {len(gamma) / fast / (args.mpmath_points / slow):,.0f}x; largest relative difference on the sample {worst:.1e}; "
          f"largest two-level error estimate {np.max(table['lambda_G'][1] / table['lambda_G'][0]):.1e}")


if __name__ == "__main__":
    main()
