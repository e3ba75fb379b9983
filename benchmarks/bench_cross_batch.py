"""Time per call of ``bnsym.cross_batch`` at dps 15 and 30, and (``--bias``) the two
systematic effects of the simulation check in tests/meanfield/test_cross_batch.py.

    python benchmarks/bench_cross_batch.py            # timings (fresh caches per call)
    python benchmarks/bench_cross_batch.py --bias     # cubic bias of the antithetic lambda_x
                                                      # and width bias of the backward rate

Timings clear the fixed-point cache before each call, so they include the
fixed point and lambda_G that cross_batch builds on.  The bias study runs the
same one-layer responses as the test with 256 seeds: lambda_x at delta = 0.2 mu*
against 0.05 mu* (the cubic term of the cross map scales by 16 between them), and
the backward rate at widths 256 and 1024.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "meanfield"))

from test_cross_batch import one_layer_responses  # the test's own estimator

from bnsym.meanfield.bsb1 import bsb1_state
from bnsym.meanfield.decorrelation import cross_batch

CASES = [("relu", 32, {}), ("tanh", 32, {}), ("gelu", 8, {}), ("relu", math.inf, {}), ("tanh", 8, {"eps": 1e-3, "beta": 0.5})]


def timings():
    print(f"{'activation':<10} {'B':>4} {'params':<22} {'dps':>4} {'seconds':>8}  lambda_x")
    for name, b, kw in CASES:
        for dps in (15, 30):
            bsb1_state.cache_clear()
            start = time.perf_counter()
            r = cross_batch(name, b, dps=dps, **kw)
            elapsed = time.perf_counter() - start
            print(f"{name:<10} {b!s:>4} {kw!s:<22} {dps:>4} {elapsed:8.2f}  {r.lambda_x}")


def _one_layer(name, b, width, seeds, rel, seed=0):
    theory, measured = one_layer_responses(name, b, seed, width=width, seeds=seeds, delta=rel)
    return theory, measured["lambda_x"], measured["backward_rate"]


def _stat(v):
    return v.mean(), v.std(ddof=1) / math.sqrt(len(v))


def bias(seeds=256):
    for name, b in (("relu", 4), ("tanh", 32), ("gelu", 8)):
        theory, small, _ = _one_layer(name, b, 1024, seeds, 0.05)
        _, large, _ = _one_layer(name, b, 1024, seeds, 0.2)
        (m1, s1), (m2, s2) = _stat(small), _stat(large)
        print(f"{name} B={b}: lambda_x {float(theory.lambda_x):.5f}; delta 0.05 mu*: {m1:.5f} +- {s1:.5f}; "
              f"delta 0.2 mu*: {m2:.5f} +- {s2:.5f}; difference / its s.e. = {(m2 - m1) / math.hypot(s1, s2):.2f}")
        _, _, narrow = _one_layer(name, b, 256, seeds, 0.05)
        _, _, wide = _one_layer(name, b, 1024, seeds, 0.05)
        (m1, s1), (m2, s2) = _stat(narrow), _stat(wide)
        print(f"   backward rate {float(theory.backward_rate):.5f}; N=256: {m1:.5f} +- {s1:.5f} "
              f"(gap {(m1 - float(theory.backward_rate)) / s1:+.2f} s.e.); N=1024: {m2:.5f} +- {s2:.5f} "
              f"(gap {(m2 - float(theory.backward_rate)) / s2:+.2f} s.e.)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bias", action="store_true", help="measure the simulation check's systematic effects instead")
    args = parser.parse_args()
    bias() if args.bias else timings()
