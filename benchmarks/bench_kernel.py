"""Speed and memory of ``bnsym.kernel`` (the float64 two-parameter Laplace path, docs/theory.md section 14).

Run: ``OPENBLAS_NUM_THREADS=1 python benchmarks/bench_kernel.py [--full]``.  Target case: 1,024 inputs
(random Gaussian, d = 784), B = 32, depth 10, ReLU, NNGP and NTK.  By default it measures what
takes about a minute on one core and extrapolates, saying so: the NNGP's first layer at M = 1,024
and the NTK's first layer at M = 256; the cost per layer is the same at every layer for a fixed
rule level (it is ``k (k + 1)/2`` pair integrals, ``k = M / B``), so depth 10 is ten times a
layer and M = 1,024 is (32 * 33) / (8 * 9) = 14.7 times M = 256.  ``--full`` runs the whole case.
Peak memory is tracemalloc's peak of NumPy allocations during the call.

Also timed: the sampled path (``method="sampling"``, tanh, M = 256, B = 32, one layer, default
10,000 samples and 8 chains: cost ``O(samples chains M^2)`` per layer, extrapolated to M = 1,024,
depth 10), the high-precision path (``dps=15``, two batches of 4, one layer; ratio against the
float64 path on the same inputs, measured in the same run), the high-precision NTK (one batch of 5
at 15 digits against the float64 NTK; two batches of 4 at 8 digits against the NNGP of the same
inputs at 8 digits) and, for scale, the single-batch
mpmath Laplace map at B = 32, 30 digits.  The high-precision path at M = 1,024, B = 32 is out of
reach (a cross block of B = 4 takes about 30 s; the cost grows like ``r^3 + B^2`` per node).

``OPENBLAS_NUM_THREADS=1`` mattered on a shared machine: the per-node eigendecompositions are
64 x 64, and OpenBLAS's threads made them 25 times slower under load (measured).  The float64 joint
map now limits the BLAS pools to one thread itself (:func:`bnsym.blas.one_thread`).
"""

from __future__ import annotations

import argparse
import os
import time
import tracemalloc

import numpy as np

import bnsym


def measure(kind, m, depth, b=32, d=784):
    x = np.random.default_rng(0).standard_normal((m, d))
    tracemalloc.start()
    start = time.perf_counter()
    result = bnsym.kernel("relu", x, depth, batch_size=b, kind=kind)
    elapsed = time.perf_counter() - start
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return elapsed, peak, result


def timed(f):
    start = time.perf_counter()
    out = f()
    return out, time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="run M = 1024, depth 10 for both kinds (many minutes)")
    args = parser.parse_args()
    print(f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', 'default')}, {os.cpu_count()} cores")
    cases = [("nngp", 1024, 10, 1024, 10), ("ntk", 1024, 10, 1024, 10)] if args.full else \
        [("nngp", 1024, 1, 1024, 10), ("ntk", 256, 1, 1024, 10)]
    for kind, m, depth, target_m, target_depth in cases:
        elapsed, peak, result = measure(kind, m, depth)
        pairs = lambda n: (n // 32) * (n // 32 + 1) / 2
        factor = target_depth / depth * pairs(target_m) / pairs(m)
        note = "" if factor == 1 else f" -> extrapolated to M = {target_m}, depth {target_depth}: {elapsed * factor:.0f} s"
        print(f"{kind}: M = {m}, depth {depth}: {elapsed:.1f} s, peak {peak / 2**20:.0f} MiB, "
              f"error estimate {result.error:.1g} (largest entry {np.abs(result.value).max():.3g}){note}")
    x = np.random.default_rng(2).standard_normal((256, 784))
    sampled, elapsed = timed(lambda: bnsym.kernel("tanh", x, 1, batch_size=32))
    print(f"sampled (tanh), M = 256, depth 1: {elapsed:.1f} s, error {sampled.error:.1g} (standard error) "
          f"-> extrapolated to M = 1024, depth 10: {elapsed * 16 * 10:.0f} s")
    small = np.random.default_rng(3).standard_normal((8, 6))
    _, t_fast = timed(lambda: bnsym.kernel("relu", small, 1, batch_size=4))
    exact, t_exact = timed(lambda: bnsym.kernel("relu", small, 1, batch_size=4, dps=15))
    print(f"high precision (15 digits), 2 batches of 4, depth 1: {t_exact:.1f} s, {t_exact / t_fast:.0f} x the float64 path "
          f"({t_fast:.3f} s); error {float(exact.error):.1g}")
    one = np.random.default_rng(4).standard_normal((5, 6))
    _, t_fast = timed(lambda: bnsym.kernel("relu", one, 2, batch_size=5, kind="ntk"))
    exact, t_exact = timed(lambda: bnsym.kernel("relu", one, 2, batch_size=5, kind="ntk", dps=15))
    print(f"high-precision NTK (15 digits), 1 batch of 5, depth 2: {t_exact:.1f} s, {t_exact / t_fast:.0f} x the float64 "
          f"NTK ({t_fast:.3f} s); error {float(exact.error):.1g}")
    _, t_nngp = timed(lambda: bnsym.kernel("relu", small, 1, batch_size=4, dps=8))
    exact, t_ntk = timed(lambda: bnsym.kernel("relu", small, 1, batch_size=4, kind="ntk", dps=8))
    print(f"high-precision NTK (8 digits), 2 batches of 4, depth 1: {t_ntk:.1f} s, {t_ntk / t_nngp:.1f} x the NNGP at "
          f"8 digits ({t_nngp:.1f} s; the float64 NTK refuses B = 4); error {float(exact.error):.1g}")
    gram = np.random.default_rng(1).standard_normal((32, 784))
    start = time.perf_counter()
    bnsym.propagate("relu", gram @ gram.T / 784, 1, dps=30)
    print(f"single batch, mpmath Laplace map, B = 32, 30 digits: {time.perf_counter() - start:.1f} s per layer")


if __name__ == "__main__":
    main()
