"""Times per call of the Gegenbauer series, the alpha-ReLU transition and the weight-gradient moments.

Run: ``python benchmarks/bench_gegenbauer.py`` (add ``--engine`` to also time ``bnsym.spectrum`` of
``relu_power(1.6)`` at B = 8, the engine's quadrature route to the same lambda_L: about a minute).
Each line is the best of ``REPEATS`` calls in this process (the quadrature rules are cached after
the first; the first call, with cold caches, is printed too).  docs/theory.md section 16.
"""

from __future__ import annotations

import sys
import time

import mpmath

import bnsym
from bnsym.meanfield.transition import power_forward_eigenvalues

REPEATS = 3


def timed(label, f):
    times = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        value = f()
        times.append(time.perf_counter() - start)
    print(f"{label:58s} first {times[0]:7.3f} s   best {min(times):7.3f} s   {value}")


def main(argv) -> int:
    timed("gegenbauer('tanh', 32, terms=40)", lambda: mpmath.nstr(bnsym.gegenbauer("tanh", 32, terms=40).rate.value, 12))
    timed("gegenbauer('tanh', 32, terms=40, dps=30)",
          lambda: mpmath.nstr(bnsym.gegenbauer("tanh", 32, terms=40, dps=30).rate.value, 12))
    timed("gegenbauer('relu', 8, terms=40)", lambda: mpmath.nstr(bnsym.gegenbauer("relu", 8, terms=40).rate.value, 12))
    timed("gegenbauer('gelu', 1000, terms=20)", lambda: mpmath.nstr(bnsym.gegenbauer("gelu", 1000, terms=20).rate.value, 12))
    timed("alpha_transition(8)", lambda: str(bnsym.alpha_transition(8)))
    timed("alpha_transition(32, dps=30)", lambda: str(bnsym.alpha_transition(32, dps=30)))
    timed("power_forward_eigenvalues(1.6, 8) (closed form)", lambda: mpmath.nstr(power_forward_eigenvalues(1.6, 8, 25)[0], 15))
    timed("weight_gradients('relu', 32, 10)", lambda: mpmath.nstr(bnsym.weight_gradients("relu", 32, 10).layers[0].value, 12))
    if "--engine" in argv:
        start = time.perf_counter()
        spec = bnsym.spectrum("relu_power(1.6)", 8)
        print(f"{'spectrum(relu_power(1.6), 8) (engine quadrature)':58s} once  {time.perf_counter() - start:7.3f} s   "
              f"{mpmath.nstr(spec.eigenvalue('forward', 'L').value, 15)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
