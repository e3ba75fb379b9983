"""Random audit of the engine against the Monte Carlo witness: fixed point, cross-batch theory, propagate.

Usage: ``python results/audit_engine.py WHAT SEED COUNT [--steep]`` with WHAT one of

- ``fixed``: q*, c* (``bnsym.fixed_point``, 8 digits) against ``sampling.fixed_point`` (4 10^5 samples);
- ``cross``: c_x and lambda_x (``bnsym.cross_batch``) against one layer of the sampled joint map of two
  batches started at the engine's joint fixed point ``[[S*, c_x 11^T], [c_x 11^T, S*]]``: the mean of the
  sampled cross block must return c_x, and the sampled derivative along a random centred cross block T
  (``joint_map(..., theta=[[0, T], [T^T, 0]])``, Price's theorem, no finite difference) projected on
  ``G T G`` must return lambda_x (the eigenspace is the whole centred cross block, multiplicity (B-1)^2).
  Errors: the standard error over 8 independent seeds (a t statistic with 7 degrees of freedom, for
  which |t| > 5 has probability 1.6e-3);
- ``spectrum``: the forward eigenvalues (``bnsym.spectrum``) against central differences of the sampled
  Gram map at the fixed point, ``Sigma* +- delta E`` with ``E`` a unit direction in the subspace
  (``subspaces.subspace_direction``; ``G`` itself for the scale eigenvalue at eps > 0), ``delta = 0.01 (q* - c*)``,
  the same draws on both sides, projected on ``E``; the standard error over 8 seeds (t7);
- ``propagate``: one layer of ``bnsym.propagate`` (its general route for non-homogeneous phi) from a random
  input Gram matrix against ``sampling.gram_map`` (4 10^5 samples), the largest entrywise |z|.

Each line draws an activation, B, gamma (0.3 to 8, or 3 to 40 with ``--steep``), beta and eps and prints
the engine's value, the witness's with its standard error, and z; ``<<<`` marks |z| > 5 or a failure.
With independent draws, |z| > 5 has probability 6e-7 per comparison when the engine is right (the
``propagate`` line takes the largest of B(B+1)/2 entries: at most 4e-4 for B = 32).
"""
import math
import random
import sys
import time

import numpy as np

import bnsym
from bnsym.montecarlo import sampling

ACTIVATIONS = ["tanh", "gelu", "relu", "silu", "erf(x)", "elu", "leaky_relu(0.2)", "softplus", "relu_power(2)",
               "x**3 + x", "sin(x)", "abs", "relu_power(1.5)", "swish"]


def draw(rng, steep):
    act = rng.choice(ACTIVATIONS)
    b = rng.choice([4, 5, 6, 8, 16, 32])
    low, high = (3, 40) if steep else (0.3, 8)
    gamma = round(math.exp(rng.uniform(math.log(low), math.log(high))), 3)
    beta = round(rng.uniform(-1, 1), 3) if rng.random() < 0.6 else 0
    eps = rng.choice([0, 0, 1e-3, 0.05])
    return act, b, {"gamma": gamma, "beta": beta, "eps": eps}


def flag(z):
    return "  <<<" if z is None or not math.isfinite(z) or abs(z) > 5 else ""


def audit_fixed(act, b, kw, i):
    fp = bnsym.fixed_point(act, b, dps=8, **kw)
    try:
        mc = sampling.fixed_point(act, b, samples=400_000, seed=i + 1, **kw)
    except bnsym.BnsymError as e:  # the sampled scale collapsed: agreement when the engine is degenerate
        return f"{fp.regime} q*={float(fp.value):.6g}; witness: {str(e)[:60]}{'' if fp.regime == 'degenerate' else '  <<<'}"
    out = []
    for name, v, m, se in (("q*", fp.value, mc.q, mc.q_stderr), ("c*", fp.c, mc.c, mc.c_stderr)):
        z = (float(v) - m) / se if se > 0 else float("nan")
        out.append(f"{name}={float(v):.6g} mc={m:.6g}+-{se:.2g} z={z:.1f}{flag(z)}")
    return f"{getattr(fp, 'regime', '')} " + " ".join(out)


def centring(b):
    return np.eye(b) - 1.0 / b


def audit_cross(act, b, kw, i):
    cb = bnsym.cross_batch(act, b, dps=8, **kw)
    fp = cb.fixed_point
    q, c, cx = float(fp.value), float(fp.c), float(cb.c_x.value)
    if fp.regime == "degenerate":  # a zero Gram matrix: nothing to sample
        return f"degenerate c_x={cx:.6g} lambda_x={float(cb.lambda_x.value):.6g} (not sampled)"
    star = (q - c) * np.eye(b) + c
    joint = np.block([[star, cx * np.ones((b, b))], [cx * np.ones((b, b)), star]])
    rng = np.random.default_rng(1000 + i)
    t = rng.standard_normal((b, b))
    g = centring(b)
    gtg = g @ t @ g
    theta = np.block([[np.zeros((b, b)), t], [t.T, np.zeros((b, b))]])
    cross_means, slopes = [], []
    for seed in range(8):
        cmat, dmat = sampling.joint_map(act, joint, b, theta=theta, samples=50_000, seed=100 * i + seed, **kw)
        cross_means.append(cmat.mean[:b, b:].mean())
        slopes.append(np.sum((g @ dmat.mean[:b, b:] @ g) * gtg) / np.sum(gtg * gtg))
    m_cx, se_cx = float(np.mean(cross_means)), float(np.std(cross_means, ddof=1) / math.sqrt(8))
    m_l, se_l = float(np.mean(slopes)), float(np.std(slopes, ddof=1) / math.sqrt(8))
    lx = float(cb.lambda_x.value)
    # 8 seeds: a t statistic with 7 degrees of freedom; |t7| > 5 has probability 1.6e-3 (not 6e-7)
    z_cx, z_l = (cx - m_cx) / se_cx, (lx - m_l) / se_l
    return (f"{fp.regime} c_x={cx:.6g} mc={m_cx:.6g}+-{se_cx:.2g} t7={z_cx:.1f}{flag(z_cx)}  "
            f"lambda_x={lx:.6g} mc={m_l:.6g}+-{se_l:.2g} t7={z_l:.1f}{flag(z_l)}")


def common_map(act, sigma, z, kw):
    """The sampled Gram map from given standard normal draws ``z`` (samples x B): ``h = z sqrt(Sigma)`` with the
    symmetric square root, which moves smoothly with ``Sigma`` (an eigenvector factor does not where
    eigenvalues are equal, as on a BSB1 matrix, and then the draws at +delta and -delta decorrelate)."""
    values, vectors = np.linalg.eigh(sigma)
    root = (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T
    y = sampling.apply_batchnorm(z @ root, act, **kw)
    return y.T @ y / z.shape[0]


def audit_spectrum(act, b, kw, i):
    from bnsym.subspaces import subspace_direction, subspace_parts

    sp = bnsym.spectrum(act, b, dps=8, **kw)
    fp = sp.fixed_point
    if fp.regime == "degenerate":
        return f"degenerate: {[float(e.value) for e in sp.forward]} (not sampled)"
    q, c = float(fp.value), float(fp.c)
    star = (q - c) * np.eye(b) + c
    delta = 0.01 * (q - c)
    g = np.eye(b) - 1.0 / b
    out = []
    for eig in sp.forward:
        if eig.subspace == "G" and kw["eps"] == 0:
            continue  # scale invariance: exactly 0
        e = g / np.linalg.norm(g) if eig.subspace == "G" else subspace_direction(b, eig.subspace)
        part = {"G": 0, "L": 1, "M": 2}[eig.subspace]
        slopes = []
        for seed in range(8):  # common random numbers: the same draws at +delta and -delta
            z = np.random.default_rng(10_000 * i + seed).standard_normal((100_000, b))
            plus, minus = (common_map(act, star + sign * delta * e, z, kw) for sign in (1, -1))
            slopes.append(np.sum(subspace_parts(plus - minus)[part] * e) / (2 * delta * np.sum(e * e)))
        m, se = float(np.mean(slopes)), float(np.std(slopes, ddof=1) / math.sqrt(8))
        t = (float(eig.value) - m) / se if se > 0 else float("nan")
        out.append(f"{eig.subspace}={float(eig.value):.6g} mc={m:.6g}+-{se:.2g} t7={t:.1f}{flag(t)}")
    return f"{fp.regime} " + "  ".join(out)


def audit_propagate(act, b, kw, i):
    rng = np.random.default_rng(2000 + i)
    a = rng.standard_normal((b, b + 3))
    gram = a @ a.T / (b + 3)
    p = bnsym.propagate(act, gram, 1, dps=8, **kw)
    mc = sampling.gram_map(act, gram, samples=400_000, seed=i + 1, **kw)
    engine = np.asarray(p.grams[-1], dtype=float)
    z = (engine - mc.mean) / mc.stderr
    k = np.unravel_index(np.argmax(np.abs(z)), z.shape)
    zmax = float(z[k])
    return f"method={p.method} worst entry {k}: {engine[k]:.6g} mc={mc.mean[k]:.6g}+-{mc.stderr[k]:.2g} z={zmax:.1f}{flag(zmax)}"


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    what = args[0]
    rng = random.Random(int(args[1]) if len(args) > 1 else 0)
    count = int(args[2]) if len(args) > 2 else 20
    audit = {"fixed": audit_fixed, "cross": audit_cross, "spectrum": audit_spectrum,
             "propagate": audit_propagate}[what]
    for i in range(count):
        act, b, kw = draw(rng, "--steep" in sys.argv)
        t = time.time()
        try:
            line = audit(act, b, kw, i)
        except Exception as e:  # noqa: BLE001 (an engine failure of any kind is a finding)
            line = f"{type(e).__name__}: {str(e)[:140]}  <<<"
        print(f"{act:16} B={b:<3} g={kw['gamma']:<6} beta={kw['beta']:<6} eps={kw['eps']:<6} "
              f"({time.time() - t:.1f}s) {line}", flush=True)


if __name__ == "__main__":
    main()
