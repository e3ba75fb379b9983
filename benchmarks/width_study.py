"""How wide is "wide"? The finite-width gap between simulated networks and mean field.

Run: ``OPENBLAS_NUM_THREADS=1 nice -n 10 python benchmarks/width_study.py``
(about 15-25 minutes of one core; ``--quick`` for a smoke run of a few
seconds, written to the temporary directory, not for the README).  Writes
``results/width_study.json`` and ``results/width_study.png``.  Every finished
measurement is saved to the JSON file at once, and a rerun with the same
settings resumes from it (delete the file, or pass ``--fresh``, to start over).

All simulations use the exact-in-law conditional method
(``bnsym.simulate(..., method="conditional")``, cost O(N B^2) per layer and
seed), eps = 0, gamma = 1, beta = 0, random inputs, a centred Gaussian output
gradient, depth 16.  Mean field: ``bnsym.gradient_explosion_rate`` (lambda_G
and its BSB1 fixed point q*, c*).

(a) Gap against width: relu and tanh at B = 8 and B = 32, widths
    N = 64, 128, ..., 65536 (three decades).  The per-seed spread of every gap
    falls like N^-1/2, so ``seeds = clip(2^16 / N, 12, 512)`` gives every width
    about the same standard error at about the same cost.  Records
    ``rate - lambda_G``, ``q - q*`` and ``c - c*`` with standard errors across
    seeds, and fits ``gap = a / N`` (weighted least squares through the origin:
    coefficient, its standard error, chi^2 and degrees of freedom) over all
    widths and over N >= 256, and ``gap = a / N + b / N^2`` over all widths.
(b) Gap against batch size B = 4, 5, 6, 8, 16, 32 at widths N = 256, 4096,
    65536 (relu and tanh), plus B = 4, 5, 6 at N = 1024 and 16384
    (``seeds = clip(2^17 / N, 24, 512)``).  For
    B <= 5 the backward factor 1/chi^2_{B-1} has infinite variance (tail
    index alpha = (B-1)/2), so the mean of N such factors fluctuates on the
    scale N^(1/alpha - 1) = N^-(B-3)/(B-1) (its median gap) and the mean of
    its log is biased by order N^(1 - alpha) = N^-(B-3)/2 (B = 4: N^-1/3 and
    N^-1/2).  The script fits the free exponent ``gap = -A N^-p`` per
    (activation, B), and both fixed exponents.
(c) The mechanism alone: ``E log(mean of N i.i.d. Y) - log E[Y]`` for
    ``Y = 1/chi^2_{B-1}`` (the per-unit factor of the backward pass, with
    everything else frozen), by direct sampling, at the widths of (b).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import tempfile
import time

import numpy as np

import bnsym

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ACTIVATIONS = ("relu", "tanh")


def plan(quick):
    """The list of (activation, B, N, seeds) to measure and the depth."""
    if quick:
        depth, widths, small_b, b_widths, budget, low, high = 6, [64, 256], [4], [256], 2**11, 4, 16
    else:
        depth, widths, small_b, b_widths, budget, low, high = 16, [2**k for k in range(6, 17)], [4, 5, 6, 16], \
            [256, 1024, 4096, 16384, 65536], 2**16, 12, 512
    runs = []
    for name in ACTIVATIONS:
        for b in (8, 32):
            runs += [(name, b, n, int(min(high, max(low, budget // n)))) for n in widths]
        for b in small_b:  # heavy tails: twice the seeds
            for n in b_widths:
                if b == 16 and n not in (b_widths[0], b_widths[len(b_widths) // 2], b_widths[-1]):
                    continue
                runs.append((name, b, n, int(min(high, max(2 * low, 2 * budget // n)))))
    return depth, runs


def measure(name, b, width, depth, seeds, theory):
    """One simulation: per-seed rates and the gaps to mean field (mean and standard error across seeds)."""
    start = time.perf_counter()
    sim = bnsym.simulate(name, b, depth, width, seeds=seeds, seed=width * 1000 + b, method="conditional")
    q, c = sim.fixed_point()
    return {
        "activation": name, "batch_size": b, "width": width, "depth": depth, "seeds": seeds,
        "fit_layers": list(sim.fit_layers), "rates": [float(r) for r in sim.rates],
        "rate": sim.rate, "rate_stderr": sim.rate_stderr, "lambda_G": theory["rate"],
        "rate_gap": sim.rate - theory["rate"], "relative_rate_gap": sim.rate / theory["rate"] - 1,
        "median_rate": float(np.median(sim.rates)),
        "q": q.value, "q_stderr": q.stderr, "q_star": theory["q"], "q_gap": q.value - theory["q"],
        "c": c.value, "c_stderr": c.stderr, "c_star": theory["c"], "c_gap": c.value - theory["c"],
        "seconds": time.perf_counter() - start,
    }


def theory_of(name, b):
    rate = bnsym.gradient_explosion_rate(name, b, dps=12)
    return {"rate": float(rate), "q": float(rate.fixed_point.q), "c": float(rate.fixed_point.c)}


def power_fit(rows, key, power=1.0):
    """Weighted least squares ``gap = a / N^power`` through the origin: ``a``, its standard error, chi^2, dof
    (None without rows)."""
    if not rows:
        return None
    x = np.array([float(r["width"]) ** -power for r in rows])
    y = np.array([r[f"{key}_gap"] for r in rows])
    w = 1.0 / np.array([r[f"{key}_stderr"] for r in rows]) ** 2
    coef = float(np.sum(w * x * y) / np.sum(w * x * x))
    chi2 = float(np.sum(w * (y - coef * x) ** 2))
    return {"coefficient": coef, "stderr": float(1.0 / math.sqrt(np.sum(w * x * x))), "chi2": chi2,
            "dof": len(rows) - 1, "power": power, "widths": [r["width"] for r in rows]}


def two_term_fit(rows, key):
    """Weighted least squares ``gap = a / N + b / N^2``: a, b, their standard errors, chi^2, dof (None with < 3 rows)."""
    if len(rows) < 3:
        return None
    n = np.array([float(r["width"]) for r in rows])
    y = np.array([r[f"{key}_gap"] for r in rows])
    w = 1.0 / np.array([r[f"{key}_stderr"] for r in rows]) ** 2
    design = np.stack([1.0 / n, 1.0 / n**2], axis=1)
    cov = np.linalg.inv(design.T @ (w[:, None] * design))
    beta = cov @ design.T @ (w * y)
    return {"a": float(beta[0]), "a_stderr": float(math.sqrt(cov[0, 0])), "b": float(beta[1]),
            "b_stderr": float(math.sqrt(cov[1, 1])), "chi2": float(np.sum(w * (y - design @ beta) ** 2)),
            "dof": len(rows) - 2}


def heavy_tail_model(batch_sizes, widths, reps, seed=20190101):
    """Relative gap ``exp(E log(mean_N Y) - log E Y) - 1`` of a typical per-layer factor, ``Y = 1/chi^2_{B-1}``
    (``E Y = 1/(B-3)``), by ``reps`` direct draws of the N-unit mean (standard error across draws), and the
    median of ``mean_N Y / E Y - 1``."""
    rng = np.random.default_rng(seed)
    out = []
    for b in batch_sizes:
        for n in widths:
            logs = np.array([math.log(np.mean(1.0 / rng.chisquare(b - 1, n)) * (b - 3)) for _ in range(reps)])
            m, s = float(logs.mean()), float(logs.std(ddof=1) / math.sqrt(reps))
            out.append({"batch_size": b, "width": n, "reps": reps, "relative_gap": math.expm1(m),
                        "relative_gap_stderr": math.exp(m) * s, "median_relative_gap": math.expm1(float(np.median(logs)))})
    return out


def free_exponent_fit(rows):
    """``rate_gap = -A N^-p`` by weighted least squares on ``log(-gap)`` (points with gap < 0 only):
    ``p`` and its standard error, or None with fewer than three such points."""
    sel = [r for r in rows if r["rate_gap"] < 0]
    if len(sel) < 3:
        return None
    x = np.log([r["width"] for r in sel])
    y = np.log([-r["rate_gap"] for r in sel])
    w = np.array([(r["rate_gap"] / r["rate_stderr"]) ** 2 for r in sel])  # 1/var of log|gap|
    design = np.stack([np.ones_like(x), -x], axis=1)
    cov = np.linalg.inv(design.T @ (w[:, None] * design))
    beta = cov @ design.T @ (w * y)
    chi2 = float(np.sum(w * (y - design @ beta) ** 2))
    return {"amplitude": float(math.exp(beta[0])), "power": float(beta[1]), "power_stderr": float(math.sqrt(cov[1, 1])),
            "chi2": chi2, "dof": len(sel) - 2, "widths": [r["width"] for r in sel]}


def fits_of(rows):
    fits = {}
    for name in ACTIVATIONS:
        for b in (8, 32):
            sel = sorted((r for r in rows if r["activation"] == name and r["batch_size"] == b), key=lambda r: r["width"])
            if len(sel) >= 2:
                fits[f"{name}, B={b}"] = {
                    key: {"all widths": power_fit(sel, key), "N >= 256": power_fit([r for r in sel if r["width"] >= 256], key),
                          "a/N + b/N^2": two_term_fit(sel, key)}
                    for key in ("rate", "q", "c")}
    small = {}
    for name in ACTIVATIONS:
        for b in (4, 5, 6):
            sel = sorted((r for r in rows if r["activation"] == name and r["batch_size"] == b), key=lambda r: r["width"])
            if len(sel) >= 2:
                small[f"{name}, B={b}"] = {"free exponent": free_exponent_fit(sel),
                                           "a/N": power_fit(sel, "rate", 1.0),
                                           "a/N^((B-3)/(B-1))": power_fit(sel, "rate", (b - 3) / (b - 1)),
                                           "a/N^min(1,(B-3)/2)": power_fit(sel, "rate", min(1.0, (b - 3) / 2))}
    return fits, small


def save(path, payload):
    tmp = path + ".tmp"
    with open(tmp, "w") as fh:
        json.dump(payload, fh, indent=1)
    os.replace(tmp, path)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small smoke run (written to the temporary directory)")
    parser.add_argument("--output", default=None, help="output path without extension (default results/width_study)")
    parser.add_argument("--fresh", action="store_true", help="ignore measurements already saved in the JSON file")
    args = parser.parse_args(argv)
    out = args.output or (os.path.join(tempfile.gettempdir(), "width_study_quick") if args.quick
                          else os.path.join(ROOT, "results", "width_study"))
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    depth, runs = plan(args.quick)
    command = "python benchmarks/width_study.py" + (" --quick" if args.quick else "")
    done, theories = {}, {}
    if not args.fresh and os.path.exists(out + ".json"):
        with open(out + ".json") as fh:
            old = json.load(fh)
        if old.get("command") == command and old.get("method") == "conditional":
            done = {(r["activation"], r["batch_size"], r["width"], r["depth"], r["seeds"]): r for r in old["measurements"]}
            theories = {tuple(k.split(",")): v for k, v in old.get("mean_field", {}).items()}
            print(f"resuming: {len(done)} measurements already in {out}.json", flush=True)
    payload = {
        "command": command, "bnsym_version": bnsym.__version__, "method": "conditional",
        "description": "finite-width gaps (simulation - mean field) of the per-layer gradient growth rate and of the "
                       "fixed point (q, c); conditional (exact-in-law) simulation, eps = 0, gamma = 1, beta = 0, "
                       "random inputs, centred Gaussian output gradient, depth " + str(depth) + "; rates fitted per "
                       "seed by log-linear least squares over fit_layers; mean and stderr across seeds",
        "mean_field": {}, "measurements": [],
    }
    total = time.perf_counter()
    for name, b, n, seeds in runs:
        key = (name, str(b))
        if key not in theories:
            theories[key] = theory_of(name, b)
        payload["mean_field"] = {",".join(k): v for k, v in theories.items()}
        row = done.get((name, b, n, depth, seeds))
        if row is None:
            row = measure(name, b, n, depth, seeds, theories[key])
            print(f"{name} B={b} N={n} seeds={seeds}: rate {row['rate']:.4f}±{row['rate_stderr']:.4f} "
                  f"(lambda_G {row['lambda_G']:.4f}, gap {row['relative_rate_gap']:+.2%}) q gap {row['q_gap']:+.2e}"
                  f"±{row['q_stderr']:.1e} c gap {row['c_gap']:+.2e}±{row['c_stderr']:.1e} [{row['seconds']:.1f}s]", flush=True)
        payload["measurements"].append(row)
        payload["one_over_n_fits"], payload["small_batch_fits"] = fits_of(payload["measurements"])
        save(out + ".json", payload)
    model_widths = sorted({r["width"] for r in payload["measurements"] if r["batch_size"] == 4})
    payload["heavy_tail_model"] = heavy_tail_model((4, 5, 6), model_widths, 64 if args.quick else 4000)
    payload["compute_seconds"] = float(sum(r["seconds"] for r in payload["measurements"]))
    save(out + ".json", payload)
    plot(payload, out + ".png")
    print(f"wrote {out}.json and {out}.png (simulation time {payload['compute_seconds']:.0f}s, "
          f"this run {time.perf_counter() - total:.0f}s)")


def plot(payload, path):
    from bnsym.plotting import pyplot

    plt = pyplot()
    fig, axes = plt.subplots(1, 5, figsize=(25, 4.6))
    rows = payload["measurements"]
    for k, (name, b) in enumerate((n, b) for n in ACTIVATIONS for b in (8, 32)):
        sel = sorted((r for r in rows if r["activation"] == name and r["batch_size"] == b), key=lambda r: r["width"])
        if not sel:
            continue
        n = np.array([r["width"] for r in sel], dtype=float)
        for ax, key in zip(axes[:3], ("rate", "q", "c")):
            gap = np.array([r[f"{key}_gap"] for r in sel])
            err = np.array([r[f"{key}_stderr"] for r in sel])
            fit = payload["one_over_n_fits"][f"{name}, B={b}"][key]["all widths"]
            sign = -1.0 if fit["coefficient"] < 0 else 1.0
            # log-log |gap|: points on the side of the fitted sign are filled, the others hollow
            same = sign * gap > 0
            x = n * (1 + 0.04 * (k - 1.5))
            ax.errorbar(x[same], np.abs(gap[same]), yerr=err[same], fmt="o", ms=4, capsize=2, color=f"C{k}",
                        label=f"{name}, B = {b}: a = {fit['coefficient']:+.3g} ± {fit['stderr']:.2g}")
            if (~same).any():
                ax.errorbar(x[~same], np.abs(gap[~same]), yerr=err[~same], fmt="o", ms=4, capsize=2, color=f"C{k}", mfc="none")
            ax.plot(n, abs(fit["coefficient"]) / n, "-", color=f"C{k}", alpha=0.6)
    for ax, label in zip(axes[:3], ("rate - lambda_G", "q - q*", "c - c*")):
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("width N")
        ax.set_ylabel(f"|{label}|")
        ax.set_title(f"|{label}| vs width (lines: fitted a/N; hollow: opposite sign)", fontsize=9)
        ax.legend(fontsize=7)
    ax = axes[3]
    widths = sorted({r["width"] for r in rows if r["batch_size"] == 16}) or sorted({r["width"] for r in rows if r["batch_size"] == 4})
    for k, name in enumerate(ACTIVATIONS):
        for j, n in enumerate(widths):
            sel = sorted((r for r in rows if r["activation"] == name and r["width"] == n), key=lambda r: r["batch_size"])
            if len(sel) < 3:
                continue
            bs = np.array([r["batch_size"] for r in sel], dtype=float)
            rel = np.array([r["relative_rate_gap"] for r in sel])
            err = np.array([r["rate_stderr"] / r["lambda_G"] for r in sel])
            ax.errorbar(bs * (1 + 0.02 * j), rel, yerr=err, fmt="o-" if name == "relu" else "s--", ms=4, capsize=2,
                        color=plt.cm.viridis(j / max(1, len(widths) - 1)), label=f"{name}, N = {n}")
    ax.axhline(0, color="k", lw=0.8)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("batch size B")
    ax.set_ylabel("(rate - lambda_G) / lambda_G")
    ax.set_title("typical (log-fitted) rate vs B at several widths", fontsize=9)
    ax.legend(fontsize=6, ncol=2)
    ax = axes[4]
    for k, (name, b) in enumerate((n, b) for n in ACTIVATIONS for b in (4, 5, 6)):
        sel = sorted((r for r in rows if r["activation"] == name and r["batch_size"] == b), key=lambda r: r["width"])
        if not sel:
            continue
        n = np.array([r["width"] for r in sel], dtype=float)
        rel = -np.array([r["relative_rate_gap"] for r in sel])
        err = np.array([r["rate_stderr"] / r["lambda_G"] for r in sel])
        ax.errorbar(n * (1 + 0.03 * k), np.where(rel > 0, rel, np.nan), yerr=err, fmt="o-" if name == "relu" else "s--",
                    ms=4, capsize=2, color=f"C{b - 4}", alpha=1.0 if b == 4 else 0.6, label=f"{name}, B = {b}")
    model = [m for m in payload.get("heavy_tail_model", []) if m["batch_size"] == 4]
    if model:
        n = np.array([m["width"] for m in model], dtype=float)
        ax.errorbar(n, [-m["relative_gap"] for m in model], yerr=[m["relative_gap_stderr"] for m in model], fmt="k^:", ms=4,
                    capsize=2, label="iid 1/chi^2_3 units: E log")
        ax.plot(n, [-m["median_relative_gap"] for m in model], "kv:", ms=4, label="iid 1/chi^2_3 units: median")
        ax.plot(n, 0.075 * (n / n[0]) ** (-1 / 3), color="grey", lw=0.8, label="N^-1/3")
        ax.plot(n, 0.075 * (n / n[0]) ** (-1 / 2), color="grey", lw=0.8, ls="--", label="N^-1/2")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("width N")
    ax.set_ylabel("(lambda_G - rate) / lambda_G")
    ax.set_title("small-B heavy tail: typical-rate deficit vs width (positive points)", fontsize=9)
    ax.legend(fontsize=6, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
