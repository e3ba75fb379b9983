"""Speed of the float64 nested two-coordinate rule against the mpmath nested rule (docs/theory.md 3.2).

Run: ``python benchmarks/bench_nested.py [--dps 8] [--quick]``.  For kinked activations at
``beta != 0`` (where the BSB1 fixed point needs the nested rule), ``lambda_G`` is computed twice
in the same process at ``--dps`` digits: once as bnsym does it (the float64 nested rule, since
the moments are asked to ``10^-(dps+4) >= FLOAT_NESTED_RTOL``) and once with the float64 rule
switched off (``sphere.FLOAT_NESTED_RTOL`` set to 1: the mpmath rule, the baseline), the caches
cleared before each.  A reference at ``dps + 6`` digits (mpmath) gives each run's actual error,
printed beside its reported error.  Printed per case: seconds of each, the ratio mpmath / float64,
and the errors.  ``--quick``: the first case only.  About two minutes at the default 8 digits.
"""

from __future__ import annotations

import argparse
import time

import mpmath

import bnsym
from bnsym.meanfield import bsb1
from bnsym.numerics import sphere

CASES = [
    ("relu", 8, {"beta": 0.2, "eps": 0.05, "sigma_w": 1.5}),
    ("leaky_relu(0.2)", 16, {"beta": 0.5, "eps": 0.01}),
    ("abs", 6, {"beta": -0.4, "gamma": 0.7}),
    ("elu", 8, {}),
]


def _timed(name, b, kwargs, dps, float_rtol):
    sphere.FLOAT_NESTED_RTOL = float_rtol
    bsb1.bsb1_state.cache_clear()
    start = time.perf_counter()
    rate = bnsym.gradient_explosion_rate(name, b, dps=dps, **kwargs)
    return rate, time.perf_counter() - start


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dps", type=int, default=8, help="digits asked (float64 rule up to 8)")
    parser.add_argument("--quick", action="store_true", help="the first case only")
    args = parser.parse_args(argv)
    default = sphere.FLOAT_NESTED_RTOL
    print(f"bench_nested: lambda_G at {args.dps} digits, float64 nested rule (FLOAT_NESTED_RTOL = {default:g}) "
          f"against the mpmath nested rule (baseline), same process")
    print(f"{'case':48s} {'float64 s':>10s} {'mpmath s':>10s} {'ratio':>7s}   {'|float - ref|':>13s} {'reported':>9s}"
          f"   {'|mpmath - ref|':>14s}")
    for name, b, kwargs in CASES[:1] if args.quick else CASES:
        fast, t_fast = _timed(name, b, kwargs, args.dps, default)
        slow, t_slow = _timed(name, b, kwargs, args.dps, 1.0)
        ref, _ = _timed(name, b, kwargs, args.dps + 6, 1.0)
        label = f"{name} B={b} {kwargs}"
        print(f"{label:48s} {t_fast:10.2f} {t_slow:10.2f} {t_slow / t_fast:7.1f}   "
              f"{mpmath.nstr(abs(fast.value - ref.value), 2):>13s} {mpmath.nstr(fast.error, 2):>9s}   "
              f"{mpmath.nstr(abs(slow.value - ref.value), 2):>14s}", flush=True)
    sphere.FLOAT_NESTED_RTOL = default


if __name__ == "__main__":
    main()
