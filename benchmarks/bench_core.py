"""Speed of the core engine against nested general-purpose ``mpmath.quad``.

Run: ``python benchmarks/bench_core.py``.  Prints, for tanh at B = 32 and
30 digits, the cold time (rule caches empty), the warm time (a new gamma
with rules cached), and the time nested ``mpmath.quad`` needs for the same
sphere expectations (from the densities of docs/theory.md section 3) at the same precision, measured in the same run; the ratio is
baseline / engine.  Targets: cold < 2 s, warm < 0.5 s, ratio >= 20.  Also
times large batch sizes through the quadrature path.
"""

from __future__ import annotations

import time

import mpmath
from caches import clear_caches

import bnsym


def timed(f):
    start = time.perf_counter()
    value = f()
    return value, time.perf_counter() - start


def nested_quad_moments(b, dps):
    """The seven sphere expectations lambda_G needs for tanh, by nested mpmath.quad.

    One coordinate: E[f], E[f^2], E[D^2], E[s^2 D^2] over the density of
    ``t = s/sqrt(B-1)``; pairs: E[f f], E[D D], E[s D s D] over the disk
    density of docs/theory.md section 3 (``f = tanh``, ``D = sech^2``).
    """
    n = b - 1
    with mpmath.workdps(dps):
        rho = -mpmath.mpf(1) / n
        root, c = mpmath.sqrt(n), mpmath.sqrt(1 - rho**2)
        ea, eb = mpmath.mpf(b - 4) / 2, mpmath.mpf(b - 5) / 2
        f = mpmath.tanh
        d = lambda s: mpmath.sech(s) ** 2
        sd = lambda s: s * mpmath.sech(s) ** 2
        norm_t = mpmath.quad(lambda t: (1 - t * t) ** ea, [-1, 1])
        norm_v = mpmath.quad(lambda v: (1 - v * v) ** eb, [-1, 1])

        def single(g):
            return mpmath.quad(lambda t: g(root * t) * (1 - t * t) ** ea, [-1, 0, 1]) / norm_t

        def pair(g):
            def outer(t):
                w = mpmath.sqrt(1 - t * t)
                inner = mpmath.quad(lambda v: g(root * (rho * t + c * w * v)) * (1 - v * v) ** eb, [-1, 1])
                return g(root * t) * inner * (1 - t * t) ** ea

            return mpmath.quad(outer, [-1, 0, 1]) / (norm_t * norm_v)

        singles = [single(g) for g in (f, lambda s: f(s) ** 2, lambda s: d(s) ** 2, lambda s: sd(s) ** 2)]
        pairs = [pair(g) for g in (f, d, sd)]
        return singles, pairs


def main():
    b, dps = 32, 30
    clear_caches()
    cold, t_cold = timed(lambda: bnsym.gradient_explosion_rate("tanh", b, dps=dps))
    warm, t_warm = timed(lambda: bnsym.gradient_explosion_rate("tanh", b, gamma="0.9", dps=dps))
    (singles, pairs), t_ref = timed(lambda: nested_quad_moments(b, dps))
    agree = max(abs(cold.fixed_point.c - pairs[0]), abs(cold.fixed_point.q - singles[1]))
    print(f"tanh, B={b}, dps={dps}: lambda_G = {mpmath.nstr(cold.value, dps)} (error {mpmath.nstr(cold.error, 2)})")
    print(f"  engine, cold (all 8 sphere moments):   {t_cold:8.3f} s   target < 2 s")
    print(f"  engine, warm (gamma = 0.9):            {t_warm:8.3f} s   target < 0.5 s")
    print(f"  nested mpmath.quad, same 7 moments:    {t_ref:8.3f} s   max |q*, c* difference| = {mpmath.nstr(agree, 2)}")
    print(f"  speed-up (baseline / engine cold):     {t_ref / t_cold:8.1f} x   target >= 20 x")
    print(f"  speed-up (baseline / engine warm):     {t_ref / t_warm:8.1f} x")
    print("large batches, ReLU through the quadrature path (closed form for comparison):")
    for big in (10**3, 10**4, 10**5):
        quad, t_quad = timed(lambda: bnsym.gradient_explosion_rate("relu", big, dps=20, method="quadrature"))
        closed, t_closed = timed(lambda: bnsym.gradient_explosion_rate("relu", big, dps=30))
        rel = abs(quad.value - closed.value) / closed.value
        print(f"  B={big:>6}: quadrature {t_quad:6.2f} s, closed form {t_closed:6.3f} s, relative difference {mpmath.nstr(rel, 2)}")
    for big in (10**3, 10**5):
        smooth, t_smooth = timed(lambda: bnsym.gradient_explosion_rate("tanh", big, dps=20))
        print(f"  tanh B={big:>6}: {t_smooth:6.2f} s, lambda_G = {mpmath.nstr(smooth.value, 20)}")


if __name__ == "__main__":
    main()
