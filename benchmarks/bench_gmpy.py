"""Speed of bnsym with mpmath's gmpy2 backend against its pure-Python backend.

Run: ``python benchmarks/bench_gmpy.py [--quick] [--repeats 2]``.  Each workload runs in a
fresh subprocess (``sys.executable -c ...``) ``--repeats`` times per backend: once with
``MPMATH_NOGMPY=1`` (mpmath's pure-Python integers) and once without it (gmpy2, if
installed), both with ``OPENBLAS_NUM_THREADS=1``.  The time is measured inside the child
with ``time.perf_counter`` around the call alone (imports excluded); the minimum over the
repeats is printed per backend with the ratio python / gmpy.  Each child also prints its
result: the value to the requested digits and a digest of the exact binary mantissas and
exponents, so the table says whether both backends agree bit for bit (``exact``), only to
the printed digits (``digits``) or not at all (``DIFFER``).  ``--quick`` runs the first two
workloads only.  The full run takes about two minutes on one core.
"""

from __future__ import annotations

import argparse
import sys

from fresh import fresh_process

# Each workload: (label, dps, expression evaluated in the child; must yield mpf values via
# the ``values`` helper of the child template below).
WORKLOADS = [
    ("gradient_explosion_rate tanh B=32", 15, 'bnsym.gradient_explosion_rate("tanh", 32, dps=15)'),
    ("gradient_explosion_rate tanh B=32", 30, 'bnsym.gradient_explosion_rate("tanh", 32, dps=30)'),
    ("gradient_explosion_rate tanh B=32", 60, 'bnsym.gradient_explosion_rate("tanh", 32, dps=60)'),
    ("gradient_explosion_rate tanh B=32", 100, 'bnsym.gradient_explosion_rate("tanh", 32, dps=100)'),
    ("gradient_explosion_rate gelu B=32", 30, 'bnsym.gradient_explosion_rate("gelu", 32, dps=30)'),
    ("gradient_explosion_rate relu B=32", 30, 'bnsym.gradient_explosion_rate("relu", 32, dps=30)'),
    ("fixed_point tanh B=5", 100, 'bnsym.fixed_point("tanh", 5, dps=100)'),
    ("spectrum tanh B=8", 30, 'bnsym.spectrum("tanh", 8, dps=30)'),
    ("propagate relu 8x8 Gram depth 3", 30, 'bnsym.propagate("relu", GRAM, 3, dps=30)'),
]

CHILD = r"""
import hashlib, json, time
import mpmath, mpmath.libmp, numpy as np
import bnsym

x = np.random.default_rng(0).standard_normal((8, 20))
GRAM = x @ x.T / 20  # a random 8 x 8 Gram matrix (for propagate)


def values(r):
    # The mpf results of r, in a fixed order.
    if hasattr(r, "grams_mp"):
        return [e for g in r.grams_mp for e in g]
    if hasattr(r, "forward") and hasattr(r, "backward"):
        return [e.value for e in tuple(r.forward) + tuple(r.backward)]
    if hasattr(r, "q") and hasattr(r, "c"):
        return [r.q, r.c]
    return [r.value]


start = time.perf_counter()
result = {expr}
elapsed = time.perf_counter() - start
vals = [mpmath.mpf(v) for v in values(result)]
exact = repr([(s, int(m), int(e), int(b)) for s, m, e, b in (v._mpf_ for v in vals)])
print(json.dumps({{
    "backend": mpmath.libmp.BACKEND,
    "time": elapsed,
    "digest": hashlib.sha256(exact.encode()).hexdigest()[:16],
    "digits": [mpmath.nstr(v, {dps}) for v in vals],
}}))
"""


def run_child(expr, dps, gmpy):
    return fresh_process(CHILD.format(expr=expr, dps=dps), env={"MPMATH_NOGMPY": None if gmpy else "1"})


def measure(expr, dps, gmpy, repeats):
    runs = [run_child(expr, dps, gmpy) for _ in range(repeats)]
    best = min(runs, key=lambda r: r["time"])
    if any(r["digest"] != best["digest"] for r in runs):
        best["digest"] = "unstable"
    return best


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="only the first two workloads")
    parser.add_argument("--repeats", type=int, default=2, help="fresh processes per backend (default 2)")
    args = parser.parse_args(argv)
    workloads = WORKLOADS[:2] if args.quick else WORKLOADS
    print(f"{'workload':34} {'dps':>4} {'python [s]':>11} {'gmpy [s]':>9} {'ratio':>6}  {'agree':7} value")
    all_agree = True
    for label, dps, expr in workloads:
        py = measure(expr, dps, False, args.repeats)
        gm = measure(expr, dps, True, args.repeats)
        if gm["backend"] != "gmpy" or py["backend"] != "python":
            sys.exit(f"backends are {py['backend']} / {gm['backend']}: is gmpy2 installed?")
        if py["digest"] == gm["digest"] != "unstable":
            agree = "exact"
        elif py["digits"] == gm["digits"]:
            agree = "digits"
        else:
            agree, all_agree = "DIFFER", False
        shown = [d for d in gm["digits"] if d not in ("0.0", "0")]  # skip exact zeros
        first = shown[-1] if "propagate" in label else shown[0]
        print(
            f"{label:34} {dps:>4} {py['time']:>11.3f} {gm['time']:>9.3f} {py['time'] / gm['time']:>6.2f}  "
            f"{agree:7} {first[:24]}",
            flush=True,
        )
        if agree == "DIFFER":
            for a, b in zip(py["digits"], gm["digits"]):
                if a != b:
                    print(f"    python {a}\n    gmpy   {b}")
    print("all values agree" if all_agree else "SOME VALUES DIFFER between the backends")


if __name__ == "__main__":
    main()
