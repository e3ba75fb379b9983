"""How wide is "wide"? The finite-width gap between simulated networks and mean field.

Run: ``python benchmarks/width_study.py`` (about 5-10 minutes on 2 cores;
``--quick`` for a smoke run).  Writes ``results/width_study.json`` and
``results/width_study.png``.

(a) Gap against width: for relu and tanh at B = 8 and B = 32, simulate
    networks of width N = 64 ... 2048 (depth 16, seeds chosen so every width
    gets a similar error bar) and record ``rate - lambda_G``, ``q - q*`` and
    ``c - c*`` with their standard errors (mean field from the engine,
    ``bnsym.gradient_explosion_rate``).
(b) Gap against batch size at fixed width N = 512: B = 4, 5, 6, 8, 16, 32
    (relu and tanh), where the ``1/chi^2_{B-1}`` factor of the backward pass
    becomes heavy-tailed as B approaches 4.

Also fits ``gap = b / N`` (weighted least squares through the origin) per
series to quantify the leading finite-width bias.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time

import numpy as np

import bnsym
from bnsym.montecarlo.simulation import _across_seeds

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def measure(name, b, width, depth, seeds, theory):
    start = time.perf_counter()
    sim = bnsym.simulate(name, b, depth, width, seeds=seeds, seed=width * 1000 + b)
    q, c = sim.fixed_point()
    rate = _across_seeds(sim.rates)
    return {
        "activation": name, "batch_size": b, "width": width, "depth": depth, "seeds": seeds,
        "fit_layers": list(sim.fit_layers),
        "rate": rate.value, "rate_stderr": rate.stderr, "lambda_G": theory["rate"],
        "rate_gap": rate.value - theory["rate"], "relative_rate_gap": rate.value / theory["rate"] - 1,
        "q": q.value, "q_stderr": q.stderr, "q_star": theory["q"], "q_gap": q.value - theory["q"],
        "c": c.value, "c_stderr": c.stderr, "c_star": theory["c"], "c_gap": c.value - theory["c"],
        "seconds": time.perf_counter() - start,
    }


def theory_of(name, b):
    rate = bnsym.gradient_explosion_rate(name, b, dps=12)
    return {"rate": float(rate), "q": float(rate.fixed_point.q), "c": float(rate.fixed_point.c)}


def one_over_n_fit(rows, key):
    """Weighted least squares ``gap = coef / N``: coefficient and its standard error."""
    x = np.array([1.0 / r["width"] for r in rows])
    y = np.array([r[f"{key}_gap"] for r in rows])
    s = np.array([r[f"{key}_stderr"] for r in rows])
    w = 1.0 / s**2
    coef = float(np.sum(w * x * y) / np.sum(w * x * x))
    err = float(1.0 / math.sqrt(np.sum(w * x * x)))
    chi2 = float(np.sum(w * (y - coef * x) ** 2))
    return {"coefficient": coef, "stderr": err, "chi2": chi2, "dof": len(rows) - 1}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small smoke run (not for the README)")
    parser.add_argument("--output", default=os.path.join(ROOT, "results", "width_study"))
    args = parser.parse_args(argv)
    widths = [64, 128] if args.quick else [64, 128, 256, 512, 1024, 2048]
    depth = 8 if args.quick else 16
    batch_sizes = [4, 8] if args.quick else [4, 5, 6, 8, 16, 32]
    activations = ["relu", "tanh"]
    theories = {}
    by_width, by_batch = [], []
    for name in activations:
        for b in (8, 32):
            theories[name, b] = theories.get((name, b)) or theory_of(name, b)
            for n in widths:
                seeds = max(4, min(16, 4096 // n))
                row = measure(name, b, n, depth, seeds, theories[name, b])
                by_width.append(row)
                print(f"{name} B={b} N={n}: rate {row['rate']:.4f}±{row['rate_stderr']:.4f} (lambda_G {row['rate'] - row['rate_gap']:.4f}) "
                      f"q gap {row['q_gap']:+.2e}±{row['q_stderr']:.1e} c gap {row['c_gap']:+.2e}±{row['c_stderr']:.1e} "
                      f"[{row['seconds']:.1f}s]", flush=True)
        for b in batch_sizes:
            theories[name, b] = theories.get((name, b)) or theory_of(name, b)
            row = measure(name, b, 512, depth, 16, theories[name, b])
            by_batch.append(row)
            print(f"{name} N=512 B={b}: rate {row['rate']:.4f}±{row['rate_stderr']:.4f} vs lambda_G {theories[name, b]['rate']:.4f} "
                  f"[{row['seconds']:.1f}s]", flush=True)
    fits = {}
    for name in activations:
        for b in (8, 32):
            rows = [r for r in by_width if r["activation"] == name and r["batch_size"] == b]
            fits[f"{name}, B={b}"] = {key: one_over_n_fit(rows, key) for key in ("rate", "q", "c")}
    payload = {
        "command": "python benchmarks/width_study.py" + (" --quick" if args.quick else ""),
        "bnsym_version": bnsym.__version__,
        "description": "finite-width gaps (simulation - mean field) of the per-layer gradient growth rate and of "
                       "the fixed point (q, c); simulations: eps = 0, gamma = 1, beta = 0, random inputs, centred "
                       "Gaussian output gradient, depth " + str(depth) + "; rates fitted per seed by log-linear "
                       "least squares over fit_layers; stderr across seeds",
        "gap_vs_width": by_width,
        "gap_vs_batch_size": by_batch,
        "one_over_n_fits": fits,
    }
    os.makedirs(os.path.dirname(args.output), exist_ok=True)
    with open(args.output + ".json", "w") as fh:
        json.dump(payload, fh, indent=1)
    plot(payload, args.output + ".png")
    print(f"wrote {args.output}.json and {args.output}.png")


def plot(payload, path):
    from bnsym.plotting import pyplot

    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.4))
    rows = payload["gap_vs_width"]
    series = sorted({(r["activation"], r["batch_size"]) for r in rows})
    for k, (name, b) in enumerate(series):
        sel = [r for r in rows if r["activation"] == name and r["batch_size"] == b]
        n = np.array([r["width"] for r in sel])
        for ax, key in ((axes[0], "rate"), (axes[1], "c")):
            gap = np.array([r[f"{key}_gap"] for r in sel])
            err = np.array([r[f"{key}_stderr"] for r in sel])
            if key == "rate":
                gap, err = gap / sel[0]["lambda_G"], err / sel[0]["lambda_G"]
            ax.errorbar(n * (1 + 0.03 * k), gap, yerr=err, fmt="o-", ms=4, capsize=2, label=f"{name}, B = {b}", color=f"C{k}")
            coef = payload["one_over_n_fits"][f"{name}, B={b}"][key]["coefficient"]
            if key == "rate":
                coef /= sel[0]["lambda_G"]
            ax.plot(n, coef / n, ":", color=f"C{k}", alpha=0.7)
    axes[0].set_ylabel("(rate - lambda_G) / lambda_G")
    axes[1].set_ylabel("c - c*")
    for ax, title in ((axes[0], "gradient growth rate vs width"), (axes[1], "fixed point c vs width")):
        ax.set_xscale("log")
        ax.axhline(0, color="k", lw=0.8)
        ax.set_xlabel("width N")
        ax.set_title(title + " (dotted: fitted b/N)")
        ax.legend(fontsize=8)
    rows = payload["gap_vs_batch_size"]
    for k, name in enumerate(sorted({r["activation"] for r in rows})):
        sel = [r for r in rows if r["activation"] == name]
        b = np.array([r["batch_size"] for r in sel])
        rel = np.array([r["rate"] / r["lambda_G"] - 1 for r in sel])
        err = np.array([r["rate_stderr"] / r["lambda_G"] for r in sel])
        axes[2].errorbar(b, rel, yerr=err, fmt="o-", capsize=2, label=name, color=f"C{k}")
    axes[2].axhline(0, color="k", lw=0.8)
    axes[2].set_xscale("log", base=2)
    axes[2].set_xlabel("batch size B (width 512)")
    axes[2].set_ylabel("(rate - lambda_G) / lambda_G")
    axes[2].set_title("gap vs batch size at N = 512")
    axes[2].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
