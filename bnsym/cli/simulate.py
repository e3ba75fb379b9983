"""``bnsym simulate``: gradient norms of real finite-width networks against mean field.

Runs :func:`bnsym.simulate` (a progress bar on stderr), prints the fitted
per-layer growth rate with its 3-sigma interval, the simulated fixed point,
and the engine's lambda_G, q*, c* for comparison; ``--plot`` draws the mean
squared gradient norm against depth with error bars across seeds and the
theory line ``lambda_G^(L-l)`` anchored at the top of the fit.
"""

from __future__ import annotations

import math

import numpy as np

from bnsym import validation
from bnsym.cli.common import (
    add_network_arguments,
    integer_option,
    network_kwargs,
    number_text,
    print_json,
)
from bnsym.errors import BnsymInputError


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "simulate",
        help="simulate finite-width networks and compare gradient growth with lambda_G",
        description="Simulate batch-normalized networks of finite width at initialisation (true "
        "batch-norm forward and backward passes in float64, Gaussian weights drawn exactly in law), fit "
        "the per-layer growth of the squared gradient norm, and compare it with the mean-field lambda_G.",
    )
    add_network_arguments(parser)
    parser.add_argument("--depth", "-L", type=integer_option, required=True, help="number of layers L >= 1")
    parser.add_argument("--width", "-N", type=integer_option, required=True, help="units per layer N >= 1")
    parser.add_argument("--seeds", type=integer_option, default=4, help="independent networks (default 4)")
    parser.add_argument("--seed", type=integer_option, default=0, help="base random seed (default 0)")
    parser.add_argument("--input", default="random", choices=("random", "orthogonal", "collinear"),
                        help="input batch (default random)")
    parser.add_argument("--sampler", default="conditional", choices=("conditional", "explicit"),
                        help="how the weights are drawn: conditional (default; exact in law given the forward "
                        "pass, cost N B^2 per layer, no N x N matrix) or explicit (the N x N weight matrices)")
    parser.add_argument("--plot", metavar="FILE.png", default=None, help="write the gradient-norm plot here")
    parser.add_argument("--no-theory", action="store_true", help="skip the mean-field comparison")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)


def run(args) -> int:
    from bnsym.montecarlo.simulation import simulate

    if args.plot is not None:
        validation.output_file(args.plot, name="--plot")
    batch = validation.batch_size(args.batch_size)
    if batch == math.inf:
        raise BnsymInputError("--batch-size must be a finite integer >= 2 for a simulation, got inf")
    kw = network_kwargs(args)
    sim = simulate(
        args.activation, batch, args.depth, args.width, gamma=kw["gamma"], beta=kw["beta"], eps=kw["eps"],
        sigma_w=kw["sigma_w"], seeds=args.seeds, seed=args.seed, input=args.input,
        progress=not (args.no_progress or args.json), method=args.sampler,
    )
    theory = None if args.no_theory else _theory(args.activation, batch, kw)
    if args.plot:
        plot(sim, theory, args.plot)
    if args.json:
        payload = sim.as_dict()
        if theory is not None:
            payload["theory"] = {k: number_text(v, kw["dps"]) for k, v in theory.items()}
        if args.plot:
            payload["plot"] = args.plot
        print_json(payload)
        return 0
    reference = None if theory is None else {k: number_text(theory[name], 8) for k, name in
                                              (("rate", "lambda_G"), ("q", "q"), ("c", "c"))}
    print(sim.text(reference))
    if args.plot:
        print(f"plot written to {args.plot}")
    return 0


def _theory(activation, batch, kw):
    from bnsym.meanfield.gradients import gradient_explosion_rate

    rate = gradient_explosion_rate(activation, batch, **kw)
    return {"lambda_G": rate.value, "q": rate.fixed_point.value, "c": rate.fixed_point.c}


def plot(sim, theory, path) -> None:
    """Mean squared gradient norm per unit against layer (geometric mean over seeds,
    error bars = 1 standard error of the log), with the theory line."""
    from bnsym.plotting import pyplot

    plt = pyplot()
    logs = np.log(sim.gradient_norms)
    mean = logs.mean(axis=0)
    err = logs.std(axis=0, ddof=1) / math.sqrt(logs.shape[0]) if logs.shape[0] > 1 else np.zeros_like(mean)
    layers = np.arange(logs.shape[1])
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    ax.errorbar(layers, np.exp(mean), yerr=[np.exp(mean) - np.exp(mean - err), np.exp(mean + err) - np.exp(mean)],
                fmt="o", ms=3, capsize=2, label=f"simulation (N = {sim.settings['width']}, {sim.settings['seeds']} seeds)")
    lo, hi = sim.fit_layers
    fit = np.arange(lo, hi + 1)
    ax.plot(fit, np.exp(mean[hi]) * sim.rate ** (hi - fit), "-", color="C0", alpha=0.6,
            label=f"fit: rate {sim.rate:.4f} ± {sim.rate_stderr:.1g}")
    if theory is not None:
        lam = float(theory["lambda_G"])
        ax.plot(layers, np.exp(mean[hi]) * lam ** (hi - layers), "--", color="C3", label=f"mean field: lambda_G = {lam:.4f}")
    ax.set_yscale("log")
    ax.set_xlabel("layer l")
    ax.set_ylabel("|dLoss/dx^l|^2 per unit")
    ax.set_title(f"{sim.settings['activation']}, B = {sim.settings['batch_size']}")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
