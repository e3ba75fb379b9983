"""Throughput of ``bnsym.simulate`` against NumPy's float64 matrix multiply.

Run: ``python benchmarks/bench_simulate.py`` (options: ``--activation``,
``--depth``, ``--width``, ``--batch-size``, ``--seeds``, ``--repeats``).

Default case (issue 5): depth 50, width 1024, B = 32, relu.  Flops are counted
honestly as the matrix products only, ``2 N N_in B`` per layer forward
(``W x``) and the same backward (``W^T dh``), i.e. ``4 N^2 B L`` per seed.
Achieved GFLOP/s = flops / wall time of ``simulate`` (which also draws the
``L N^2`` Gaussian weights, in parallel threads, runs batch norm, phi and
phi', and forms the per-layer Gram matrices).  Baseline: the same two
products on the same shapes (``(N, N) @ (N, B)`` and ``(N, N)^T @ (N, B)``),
timed in the same run with the same BLAS threading.  Also reported: the time
to draw one layer's weights (as ``simulate`` draws them), which bounds the
achievable ratio.  Target: ratio >= 0.5.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

import bnsym
from bnsym import simulation


def best_of(f, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        f()
        times.append(time.perf_counter() - start)
    return min(times)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--activation", default="relu")
    parser.add_argument("--depth", type=int, default=50)
    parser.add_argument("--width", type=int, default=1024)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    n, b, depth = args.width, args.batch_size, args.depth

    rng = np.random.default_rng(0)
    w = rng.standard_normal((n, n))
    x = rng.standard_normal((n, b))

    def matmuls():
        for _ in range(depth):
            w @ x
            w.T @ x

    simulate = lambda: bnsym.simulate(args.activation, b, depth, n, seeds=args.seeds)  # noqa: E731
    sim = simulate()  # warm-up (activation lambdify, BLAS init)
    flops_per_seed = 4.0 * n * n * b * depth
    assert abs(sim.flops - flops_per_seed * args.seeds) <= 1e-9 * sim.flops

    t_mm = best_of(matmuls, args.repeats)
    t_sim = best_of(simulate, args.repeats)
    net = simulation._Network(bnsym.activation(args.activation), None, 1, n, b, np.random.SeedSequence(0))
    t_gen = best_of(lambda: net.weights(1, n, out=w), max(args.repeats, 5))  # the library's own (threaded) draw

    baseline = flops_per_seed / t_mm / 1e9
    achieved = flops_per_seed * args.seeds / t_sim / 1e9
    print(f"bnsym.simulate({args.activation!r}, B={b}, depth={depth}, width={n}, seeds={args.seeds}); "
          f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', 'default')}")
    print(f"  matmul baseline      : {baseline:7.2f} GFLOP/s  ({t_mm / depth * 1e3:.2f} ms per layer, 2 products)")
    print(f"  simulate             : {achieved:7.2f} GFLOP/s  ({t_sim / (depth * args.seeds) * 1e3:.2f} ms per layer)")
    print(f"  ratio                : {achieved / baseline:7.3f}   (target >= 0.5)")
    print(f"  weights, one layer   : {t_gen * 1e3:7.2f} ms for {n * n} normals; ratio bound set by drawing them "
          f"(products + draws only): {(t_mm / depth) / (t_mm / depth + t_gen):.3f}")


if __name__ == "__main__":
    main()
