"""Cost of one layer of the exact Gram map at a general input batch (docs/theory.md sections 7 and 7.1).

Run: ``python benchmarks/bench_propagate.py [--batch-sizes 4,8] [--dps 15] [--condition C]``.  For each
batch size it times one layer of ``bnsym.propagate`` from the same random input Gram matrix (with
``--condition``, one whose centred part ``G Sigma G`` has eigenvalues from 1 down to ``1/C``) by

* the Laplace method, ReLU at beta = 0 (the baseline: the exact route that existed before),
* the spherical route, tanh and gelu at beta = 0.2, eps = 0 and eps = 1e-3 (polar rule),
* the spherical route, ReLU at beta = 0.2 (kinked): at 10 digits (the float64 rule cut at the kink lines,
  ``"auto"``'s choice), up to B = 16, and at B = 4 at 11 digits (the mpmath nested rule with the
  root-solved density, about 10 s a pair),
* sampling, tanh (10^5 samples, 4 chains), with the digits it gives,

(with ``--dps 10`` or fewer the kink-free cases take the float64 polar rule, every pair at once), with
every cache cleared before each call (the BSB1 fixed point, which ``propagate`` reports distances
to, is computed before the clock starts), and prints seconds per layer, seconds per pair of inputs
(``B (B - 1) / 2`` pairs) and the ratio to the Laplace baseline measured in the same run.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from caches import clear_caches

import bnsym
from bnsym.errors import PrecisionError


def timed(activation, gram, dps, **kw):
    clear_caches()
    bnsym.fixed_point(activation, gram.shape[0], dps=dps, **{k: v for k, v in kw.items() if k in ("beta", "eps")})
    start = time.perf_counter()
    result = bnsym.propagate(activation, gram, 1, dps=dps, **kw)
    return result, time.perf_counter() - start


def random_gram(b, condition=None):
    """``X X^T / (B + 2)`` for a standard normal ``X`` (B x (B + 2)), or with ``condition``: ``V diag V^T + 0.4``
    with ``V`` a random orthonormal basis of ``1^perp`` and the diagonal log-spaced from 1 to ``1/condition``."""
    rng = np.random.default_rng(0)
    if condition is None:
        x = rng.standard_normal((b, b + 2))
        return x @ x.T / (b + 2)
    basis = np.linalg.qr(np.column_stack([np.ones(b), rng.standard_normal((b, b - 1))]))[0][:, 1:]
    vectors = basis @ np.linalg.qr(rng.standard_normal((b - 1, b - 1)))[0]
    return (vectors * np.logspace(0, -np.log10(condition), b - 1)) @ vectors.T + 0.4


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-sizes", default="4,8", help="comma-separated batch sizes (default 4,8)")
    parser.add_argument("--dps", type=int, default=15, help="digits (default 15)")
    parser.add_argument("--condition", type=float, default=None,
                        help="condition number of G Sigma G (default: a random Gram matrix of B + 2 features)")
    args = parser.parse_args(argv)
    print(f"{'B':>3} {'case':34} {'method':10} {'s/layer':>9} {'s/pair':>8} {'x Laplace':>10}  largest error (relative)")
    for b in (int(x) for x in args.batch_sizes.split(",")):
        gram = random_gram(b, args.condition)
        pairs = b * (b - 1) // 2
        baseline = timed("relu", gram, args.dps)
        base = baseline[1]
        cases = [("relu, Laplace (baseline)", "relu", args.dps, {}),
                 ("tanh, beta 0.2", "tanh", args.dps, {"beta": 0.2}),
                 ("gelu, beta 0.2", "gelu", args.dps, {"beta": 0.2}),
                 ("tanh, beta 0.2, eps 1e-3", "tanh", args.dps, {"beta": 0.2, "eps": "1e-3"}),
                 ("tanh, sampling 4 x 10^5", "tanh", args.dps, {"beta": 0.2, "method": "sampling"})]
        if b <= 16:
            cases.append(("relu, beta 0.2, 10 digits (kinked)", "relu", 10, {"beta": 0.2}))
        if b == 4:
            cases.append(("relu, beta 0.2, 11 digits (kinked)", "relu", 11, {"beta": 0.2, "method": "spherical"}))
        for label, activation, dps, kw in cases:
            try:
                result, seconds = baseline if label.endswith("(baseline)") else timed(activation, gram, dps, **kw)
            except PrecisionError as error:  # a rule that does not reach the digits (an ill-conditioned batch)
                print(f"{b:>3} {label:34} failed: {str(error)[:80]}", flush=True)
                continue
            size = np.abs(result.grams[1]).max()
            print(f"{b:>3} {label:34} {result.method:10} {seconds:>9.2f} {seconds / pairs:>8.2f} {seconds / base:>10.1f}  "
                  f"{result.errors[1].max() / size:.1e}", flush=True)


if __name__ == "__main__":
    main()
