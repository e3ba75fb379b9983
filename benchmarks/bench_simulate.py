"""Time per seed of ``bnsym.simulate``, conditional against explicit weights, and the
conditional method against the roof it is bound by.

Run: ``python benchmarks/bench_simulate.py`` (options: ``--activation``, ``--depth``,
``--batch-size``, ``--widths``, ``--repeats``).

Default cases (issue 15): ``(N, B, L) = (1024, 32, 50), (4096, 32, 50), (65536, 32, 50),
(262144, 32, 50)``, relu.  The explicit method runs only where
:func:`bnsym.montecarlo.simulation.memory_needed` fits the memory limit (else
"skipped (needs X GiB)"); speed-up = explicit time / conditional time (goal: >= 10 at
N = 1024, B = 32).

Roof of the conditional method, measured in the same run with the same BLAS threading:
per layer its main thread performs 5 products ``(B x N) @ (N x B)`` (Gram matrices) and 3
products ``(B x B) @ (B x N)``, while a second thread draws 2 arrays of ``(B - 1) x N``
standard normals ahead (the forward ``A`` and the backward ``E``), so
``roof = L max(5 t_gram + 3 t_right, 2 t_normal (B - 1) / B)`` with NumPy's own matmul at
those shapes and NumPy's ``standard_normal`` on one ``Generator`` (``t_normal`` for
``B x N``).  Batch norm, ``phi``, ``phi'`` and the batch-norm backward pass (``O(N B)``
elementwise work each, on the main thread) are not in the roof, so the fraction reached is
below 1 even for a perfect implementation; the column "bound" says which part sets the roof.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

import bnsym
from bnsym.montecarlo import simulation


def best_of(f, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        f()
        times.append(time.perf_counter() - start)
    return min(times)


def roof_per_layer(n, b, repeats):
    """``(max(5 t_gram + 3 t_right, 2 t_normal (b - 1) / b), parts, bound)`` for one layer of the
    conditional method (seconds): ``parts = (t_gram, t_right, t_normal)``, ``bound`` the
    name of the larger side."""
    rng = np.random.default_rng(0)
    rows = rng.standard_normal((b, n))
    small = rng.standard_normal((b, b))
    out = np.empty((b, n))
    t_gram = best_of(lambda: rows @ rows.T, repeats)
    t_right = best_of(lambda: np.matmul(small, rows, out=out), repeats)
    t_normal = best_of(lambda: rng.standard_normal(out=out), repeats)
    products, normals = 5 * t_gram + 3 * t_right, 2 * t_normal * (b - 1) / b
    return max(products, normals), (t_gram, t_right, t_normal), "products" if products >= normals else "normals"


def seeds_for(n):
    return 8 if n <= 1024 else 2 if n <= 4096 else 1


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--activation", default="relu")
    parser.add_argument("--depth", type=int, default=50)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--widths", default="1024,4096,65536,262144")
    parser.add_argument("--repeats", type=int, default=2, help="best of this many runs (small widths)")
    args = parser.parse_args(argv)
    b, depth = args.batch_size, args.depth
    widths = [int(w) for w in args.widths.split(",")]
    limit = simulation.memory_limit_gib()
    print(f"bnsym.simulate({args.activation!r}, B={b}, depth={depth}); time per seed; memory limit {limit:g} GiB; "
          f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', 'default')}, {os.cpu_count()} cores")
    for method in simulation.METHODS:  # warm-up (activation lambdify, BLAS init, thread pool)
        bnsym.simulate(args.activation, b, 3, 64, seeds=1, method=method)
    print(f"{'N':>8} {'explicit':>24} {'conditional':>12} {'speed-up':>9} {'roof':>9} {'of roof':>8} {'bound':>9}   "
          f"roof parts per layer: gram, right, normals")
    for n in widths:
        seeds = seeds_for(n)
        repeats = args.repeats if n <= 4096 else 1

        def run(method, n=n, seeds=seeds, repeats=repeats):
            return best_of(lambda: bnsym.simulate(args.activation, b, depth, n, seeds=seeds, method=method),
                           repeats) / seeds

        need = simulation.memory_needed("explicit", depth, n, n, b) / 1024**3
        t_exp = run("explicit") if need <= limit else None
        t_cond = run("conditional")
        roof, parts, bound = roof_per_layer(n, b, max(3, repeats))
        roof *= depth
        explicit = f"{t_exp:10.3f} s" if t_exp is not None else f"skipped (needs {need:.0f} GiB)"
        speedup = f"{t_exp / t_cond:8.1f}x" if t_exp is not None else f"{'-':>9}"
        print(f"{n:>8} {explicit:>24} {t_cond:10.3f} s {speedup} {roof:7.3f} s {roof / t_cond:7.1%} {bound:>9}   "
              + ", ".join(f"{t * 1e3:.3g} ms" for t in parts))


if __name__ == "__main__":
    main()
