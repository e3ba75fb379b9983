"""Speed of the NumPy reference trainer: one epoch of Fashion-MNIST, depth 20, width 384, batch 128, float32.

Prints samples/s, the achieved GFLOP/s (matrix-product FLOPs of forward and
backward, ``B (6 (d N + (L-1) N^2 + N C) - 2 d N)`` per step: no gradient
into the data), NumPy's own float32 matrix-multiply throughput on the same three shapes measured in the same run
(before and after the epoch, best of the two), their ratio (target >= 60%),
and the peak memory (``ru_maxrss`` of the process; ``tracemalloc`` peak of a
few training steps).

    python benchmarks/bench_train.py [--threads N] [--epochs 1] [--data-dir DIR]

``--threads`` sets OPENBLAS_NUM_THREADS / OMP_NUM_THREADS before NumPy is
imported (default: leave the environment alone).  Needs
``apt-get install dataset-fashion-mnist`` or ``--data-dir``.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time


def matmul_gflops(np, batch, width, repeats=200):
    """Best-of-3 throughput of the three products of a hidden layer: X W, G W^T, X^T G."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, width), dtype=np.float32)
    w = rng.standard_normal((width, width), dtype=np.float32)
    g = rng.standard_normal((batch, width), dtype=np.float32)
    out_bn = np.empty((batch, width), np.float32)
    out_nn = np.empty((width, width), np.float32)
    flops = 3 * 2 * batch * width * width
    best = 0.0
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(repeats):
            np.matmul(x, w, out=out_bn)
            np.matmul(g, w.T, out=out_bn)
            np.matmul(x.T, g, out=out_nn)
        best = max(best, flops * repeats / (time.perf_counter() - start) / 1e9)
    return best


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=None, help="BLAS threads (default: environment)")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--depth", type=int, default=20)
    parser.add_argument("--width", type=int, default=384)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--data-dir", default=None)
    args = parser.parse_args(argv)
    if args.threads is not None:
        for key in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[key] = str(args.threads)
    import tracemalloc

    import numpy as np

    from bnsym.train.datasets import load_dataset
    from bnsym.train.training import build, fit

    data = load_dataset("fashion-mnist", args.data_dir)
    B, N, L = args.batch_size, args.width, args.depth
    network, optimizer = build(data, depth=L, width=N, batch_size=B, lr=0.01, momentum=0.9, dtype="float32")
    ref_before = matmul_gflops(np, B, N)
    result = fit(network, optimizer, data, epochs=args.epochs, batch_size=B)
    ref_after = matmul_gflops(np, B, N)
    reference = max(ref_before, ref_after)
    samples = result.steps * B
    achieved = network.flops_per_sample() * samples / result.seconds / 1e9

    tracemalloc.start()
    x, y = data.x_train[:B], data.y_train[:B]
    for _ in range(5):
        network.loss_and_gradients(x, y)
        optimizer.step(network.gradients)
    traced_peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    maxrss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux

    threads = args.threads if args.threads is not None else os.environ.get("OPENBLAS_NUM_THREADS", "default")
    print(f"bench_train: Fashion-MNIST, depth {L}, width {N}, batch {B}, float32, SGD+momentum, "
          f"{args.epochs} epoch(s), BLAS threads {threads}, {os.cpu_count()} CPUs")
    print(f"  steps                      {result.steps}")
    print(f"  training time              {result.seconds:.2f} s")
    print(f"  samples/s                  {samples / result.seconds:.0f}")
    print(f"  achieved                   {achieved:.1f} GFLOP/s  ({network.flops_per_sample() / 1e6:.2f} MFLOP/sample)")
    print(f"  NumPy float32 matmul       {reference:.1f} GFLOP/s  (same shapes; before {ref_before:.1f}, after {ref_after:.1f})")
    print(f"  ratio                      {100 * achieved / reference:.1f}%  (target >= 60%)")
    print(f"  peak RSS                   {maxrss_mib:.0f} MiB (includes the dataset, {data.x_train.nbytes / 2**20:.0f} MiB of float32 training images)")
    print(f"  tracemalloc peak per step  {traced_peak / 2**20:.1f} MiB (activations, gradients, scratch)")
    print(f"  test accuracy              {result.test_accuracy:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
