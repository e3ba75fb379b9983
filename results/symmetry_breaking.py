"""Batch symmetry breaking: scan, BSB2 search and simulation (writes results/symmetry_breaking.{json,png}).

Run:  nice python results/symmetry_breaking.py   (about 15 minutes on one core; --plot-only redraws from the JSON)

1. Verdict (forward eigenvalues on L and M, bnsym.spectrum) for every built-in
   activation at B in {4, 8, 16, 32} (gamma = 1, beta = 0, eps = 0).
2. relu_power exponent scan at B = 8 and 32 (lambda_L, lambda_M).
3. BSB2 fixed points reached by the exact (Laplace) mean-field map for
   relu_power(2) from five random perturbations of Sigma* (B = 8) and one (B = 32).
4. Simulation (width 1024, 4 seeds, depth 80) of relu_power(2) and relu at B = 8 from
   random inputs: block structure of the last 10 layers vs the BSB2 point of the same split.
"""

import json
import math
import sys
import time

import numpy as np

import bnsym
from bnsym.activations import NAMES
from bnsym.subspaces import subspace_parts
from bnsym.meanfield.symmetry import simulated_blocks, symmetry_breaking

OUT = "results/symmetry_breaking"
PLOT_ONLY = "--plot-only" in sys.argv  # redraw the figure from the saved JSON
report = {"command": "nice python results/symmetry_breaking.py", "builtins": [], "relu_power_scan": [], "bsb2": [], "simulation": []}

if PLOT_ONLY:
    with open(OUT + ".json") as fh:
        report = json.load(fh)
else:
    for name in NAMES:
        for b in (4, 8, 16, 32):
            t = time.time()
            try:
                spec = bnsym.spectrum(name, b, dps=10)
                row = {"activation": name, "B": b, "lambda_L": float(spec.eigenvalue("forward", "L").value),
                       "lambda_M": float(spec.eigenvalue("forward", "M").value), "stable": spec.stable,
                       "backward": {e.subspace: float(e.value) for e in spec.backward}, "seconds": round(time.time() - t, 2)}
            except Exception as exc:  # recorded, not hidden
                row = {"activation": name, "B": b, "error": f"{type(exc).__name__}: {exc}"}
            report["builtins"].append(row)
            print(row, flush=True)

    for b in (8, 32):
        for exponent in (1, 1.25, 1.5, 1.75, 2, 2.5, 3):
            t = time.time()
            try:
                spec = bnsym.spectrum(f"relu_power({exponent})", b, dps=8)
                row = {"exponent": exponent, "B": b, "lambda_L": float(spec.eigenvalue("forward", "L").value),
                       "lambda_M": float(spec.eigenvalue("forward", "M").value), "stable": spec.stable, "seconds": round(time.time() - t, 2)}
            except Exception as exc:
                row = {"exponent": exponent, "B": b, "error": f"{type(exc).__name__}: {exc}"}
            report["relu_power_scan"].append(row)
            print(row, flush=True)

    for b, seeds in ((8, range(5)), (32, range(1))):
        for seed in seeds:
            r = symmetry_breaking("relu_power(2)", b, seed=seed, max_depth=800)
            row = {"activation": "relu_power(2)", "B": b, "seed": seed, **r.fixed_point.as_dict()}
            report["bsb2"].append(row)
            print(row, flush=True)

    b, width, depth, seeds = 8, 1024, 80, 4
    for name in ("relu_power(2)", "relu"):
        sim = bnsym.simulate(name, b, depth, width, seeds=seeds, input="random")
        fp = bnsym.fixed_point(name, b)
        star = fp.array()
        dist_l = [[float(np.linalg.norm(subspace_parts(g - star)[1])) for g in run] for run in sim.grams]
        entry = {"activation": name, "B": b, "width": width, "depth": depth, "seeds": seeds, "distance_L": dist_l}
        if name == "relu_power(2)":
            blocks = []
            for sizes, entries, error in simulated_blocks(sim.grams, last=10):
                theory = symmetry_breaking(name, b, sizes=sizes[1], max_depth=800).fixed_point
                blocks.append({"sizes": list(sizes), "entries_sim": list(entries), "block_error_sim": error,
                               "theory_sizes": list(theory.sizes), "entries_theory": [theory.q[0], theory.c_within[0], theory.q[1], theory.c_within[1], theory.c_across]})
                print(blocks[-1], flush=True)
            entry["blocks"] = blocks
        report["simulation"].append(entry)

    with open(OUT + ".json", "w") as fh:
        json.dump(report, fh, indent=1)

import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt

fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
ax = axes[0]
for b, marker in ((8, "o"), (32, "s")):
    rows = [r for r in report["relu_power_scan"] if r["B"] == b and "lambda_L" in r]
    ax.plot([r["exponent"] for r in rows], [r["lambda_L"] for r in rows], marker=marker, label=f"lambda_L, B={b}")
    ax.plot([r["exponent"] for r in rows], [r["lambda_M"] for r in rows], marker=marker, ls="--", label=f"lambda_M, B={b}")
ax.axhline(1, color="k", lw=0.8)
ax.set_xlabel("relu_power exponent alpha")
ax.set_ylabel("forward eigenvalue at BSB1 (per layer)")
ax.set_title("BSB1 stability: unstable where an eigenvalue > 1")
ax.legend(fontsize=8)
ax = axes[1]
for entry, color in zip(report["simulation"], ("C3", "C0")):
    d = np.array(entry["distance_L"])
    for k, run in enumerate(d):
        ax.semilogy(np.arange(1, len(run)), run[1:], color=color, alpha=0.6, label=f"{entry['activation']} (simulation, width {entry['width']})" if k == 0 else None)
ax.set_xlabel("layer")
ax.set_ylabel("||L part of Sigma^l - Sigma*||_F")
sim_b, sim_width, sim_seeds = (report["simulation"][0][k] for k in ("B", "width", "seeds"))
ax.set_title(f"B = {sim_b}: symmetry breaking in simulation ({sim_seeds} seeds)")
ax.legend(fontsize=8)
fig.tight_layout()
fig.savefig(OUT + ".png", dpi=120)
print("wrote", OUT + ".json", OUT + ".png")
