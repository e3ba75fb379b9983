"""Random audit: the engine's lambda_G (8 digits) against the Monte Carlo witness (3 10^5 samples).

Usage: ``python results/audit_lambda_g.py SEED COUNT [--steep]``.  Each line draws an activation, B,
gamma (0.3 to 8, or 3 to 40 with ``--steep``), beta and eps, and prints both values and
z = (engine - Monte Carlo) / its standard error; ``<<<`` marks |z| > 5 or an engine failure.
Runs of 2026-12-07 (seeds 1 and 2, and 3 with --steep) are in ``audit_lambda_g.log``: seed 1 found the
coexisting fixed point past the critical eps (gelu, z = -558), fixed in the same session.
"""
import math
import random
import sys
import time

import bnsym
from bnsym.montecarlo import sampling

args = [a for a in sys.argv[1:] if not a.startswith("--")]
rng = random.Random(int(args[0]) if args else 0)
acts = ["tanh", "gelu", "relu", "silu", "erf(x)", "elu", "leaky_relu(0.2)", "softplus", "relu_power(2)", "x**3 + x", "sin(x)", "abs", "relu_power(1.5)", "swish" ]
count = int(args[1]) if len(args) > 1 else 20
for i in range(count):
    act = rng.choice(acts)
    b = rng.choice([4, 5, 6, 8, 16, 32, 100])
    low, high = (3, 40) if "--steep" in sys.argv else (0.3, 8)
    gamma = round(math.exp(rng.uniform(math.log(low), math.log(high))), 3)
    beta = round(rng.uniform(-1, 1), 3) if rng.random() < 0.6 else 0
    eps = rng.choice([0, 0, 1e-3, 0.05])
    kw = dict(gamma=gamma, beta=beta, eps=eps)
    t = time.time()
    try:
        v = bnsym.gradient_explosion_rate(act, b, dps=8, **kw)
        val, reg = float(v.value), getattr(v, "regime", "")
    except Exception as e:
        val, reg = None, f"{type(e).__name__}: {str(e)[:100]}"
    t1 = time.time() - t
    try:
        mc = sampling.gradient_explosion_rate(act, b, samples=300_000, seed=i + 1, **kw)
        m, se = float(mc.value), float(mc.error)
    except Exception:
        m, se = None, None
    z = None if (val is None or m is None or se == 0) else (val - m) / se
    flag = "  <<<" if (z is not None and abs(z) > 5) or val is None else ""
    print(f"{act:16} B={b:<4} g={gamma:<6} beta={beta:<6} eps={eps:<6} engine={val} ({t1:.1f}s) mc={m}+-{se} z={None if z is None else round(z,1)} {reg}{flag}", flush=True)
