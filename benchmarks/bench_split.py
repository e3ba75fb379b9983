"""The split threshold of the one-coordinate rule (docs/theory.md section 3.2): cost and values at
the current ``SPLIT_ABOVE`` (two Gauss blocks, 128 coefficients) against the old 256, and (``--also
64``) one block.

Run: ``python benchmarks/bench_split.py [--quick]``.  Each workload runs in a fresh subprocess per
threshold (``sys.executable -c ...``), the threshold set in the child before the call
(``bnsym.numerics.sphere.SPLIT_ABOVE``), with ``OPENBLAS_NUM_THREADS=1``; the time is measured in the
child around the call alone (imports excluded).  The table prints both times, the ratio old / new
(above 1: the new threshold is faster), both values with their errors, and whether they agree
within the sum of the two errors (``ok``), or ``FAILED`` where a call raised.  ``--quick`` runs the
first three workloads.  The full run takes about three minutes on one core (six with ``--also 64``).
"""

from __future__ import annotations

import argparse

from fresh import fresh_process

OLD = 256
WORKLOADS = [
    ("softplus, gain 1000, B = inf", 'bnsym.gradient_explosion_rate("softplus", math.inf, gamma=1000)'),
    ("tanh, gain 100, B = inf", 'bnsym.gradient_explosion_rate("tanh", math.inf, gamma=100)'),
    ("tanh, gain 100, B = 32", 'bnsym.gradient_explosion_rate("tanh", 32, gamma=100)'),
    ("gelu, gain 300, B = inf", 'bnsym.gradient_explosion_rate("gelu", math.inf, gamma=300)'),
    ("tanh, B = 32, dps 30", 'bnsym.gradient_explosion_rate("tanh", 32, dps=30)'),
    ("tanh, B = 32, eps 1e-3", 'bnsym.gradient_explosion_rate("tanh", 32, eps=1e-3)'),
    ("gelu, B = 8, eps 1e-3", 'bnsym.gradient_explosion_rate("gelu", 8, eps=1e-3)'),
    ("erf, gain 3, B = 5", 'bnsym.gradient_explosion_rate("erf", 5, gamma=3)'),
    ("tanh, B = 8, eps 0.5", 'bnsym.gradient_explosion_rate("tanh", 8, eps=0.5)'),
    ("gelu, B = 8, eps 0.3, shifted", 'bnsym.gradient_explosion_rate("gelu", 8, gamma=2.652, beta=-0.673, eps=0.3)'),
]

CHILD = r"""
import json, math, sys, time
import mpmath
import bnsym
from bnsym.numerics import sphere

threshold, call = int(sys.argv[1]), sys.argv[2]
if threshold:
    sphere.SPLIT_ABOVE = threshold
start = time.perf_counter()
try:
    r = eval(call)
    out = {"value": mpmath.nstr(r.value, 30), "error": float(r.error)}
except Exception as error:  # reported in the table, not raised
    out = {"failed": f"{type(error).__name__}: {str(error)[:60]}"}
out["seconds"] = time.perf_counter() - start
print(json.dumps(out))
"""


def run(threshold, call):
    return fresh_process(CHILD, threshold, call)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the first three workloads only")
    parser.add_argument("--also", type=int, default=None, help="a third threshold to time (e.g. 64)")
    args = parser.parse_args(argv)
    import mpmath

    from bnsym.numerics.sphere import SPLIT_ABOVE

    print(f"split threshold: {SPLIT_ABOVE} coefficients (new) against {OLD} (old)")
    also = f" {args.also:>5} [s]" if args.also else ""
    print(f"{'workload':30} {'old [s]':>8} {'new [s]':>8} {'old/new':>8}{also}  {'new value +- error':44} agree")
    for label, call in WORKLOADS[:3] if args.quick else WORKLOADS:
        old, new = run(OLD, call), run(0, call)
        third = f" {run(args.also, call)['seconds']:>9.1f}" if args.also else ""
        if "failed" in new:
            print(f"{label:30} {old['seconds']:>8.1f} {new['seconds']:>8.1f} {'':>8}  FAILED {new['failed']}", flush=True)
            continue
        shown = f"{new['value']} +- {new['error']:.1e}"
        if "failed" in old:
            agree = f"old FAILED ({old['failed']})"
        else:
            with mpmath.workdps(40):
                gap = abs(mpmath.mpf(old["value"]) - mpmath.mpf(new["value"]))
                agree = "ok" if gap <= old["error"] + new["error"] else f"DIFFER by {mpmath.nstr(gap, 2)}"
        ratio = old["seconds"] / new["seconds"]
        print(f"{label:30} {old['seconds']:>8.1f} {new['seconds']:>8.1f} {ratio:>8.2f}{third}  {shown:44} {agree}", flush=True)


if __name__ == "__main__":
    main()
