"""``bnsym propagate``: the Gram matrix layer by layer from a given input batch, and its distance to BSB1."""

from __future__ import annotations

import numpy as np

from bnsym.cli.common import add_network_arguments, print_json
from bnsym.errors import BnsymInputError


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "propagate",
        help="iterate the mean-field Gram map from an input batch (Laplace method, spherical route or sampling)",
        description="Iterate the mean-field Gram map from an input Gram matrix and print the distance to the "
        "BSB1 fixed point per layer (total, and its L and M parts).  To --dps digits by the Laplace method for "
        "positively homogeneous activations at beta = 0 and by the spherical route for activations without kinks "
        "(any beta, eps >= 0), and for kinked activations at beta != 0 up to --dps 10 (a float64 rule cut at "
        "the kinks); above 10 digits a Monte Carlo estimate with standard errors for those (or --map spherical, "
        "exact but about a minute per pair of inputs).",
    )
    add_network_arguments(parser)
    parser.add_argument("--depth", "-L", type=int, required=True, help="number of layers (>= 1)")
    parser.add_argument(
        "--input", default="random",
        help="input batch: random (Gram of B Gaussian vectors in R^B), orthogonal (identity), collinear "
        "(rank one plus 1%% noise), or a .npy file holding a B x B Gram matrix, or a kB x kB joint Gram matrix of k "
        "batches of B (joint map, float64: positively homogeneous activations at beta = 0, --dps <= 10) (default random)",
    )
    parser.add_argument("--map", default="auto", choices=("auto", "laplace", "spherical", "sampling"), help="how the map is evaluated (default auto)")
    parser.add_argument("--samples", type=int, default=10**5, help="Monte Carlo samples per layer and chain (sampling only)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random input and of sampling")
    parser.add_argument("--plot", default=None, metavar="FILE.png", help="draw distance to the fixed point vs depth, theory and simulation")
    parser.add_argument("--width", type=int, default=1024, help="width of the simulated networks drawn by --plot (default 1024)")
    parser.add_argument("--seeds", type=int, default=4, help="simulated networks drawn by --plot (default 4)")
    parser.set_defaults(func=run)


def load_input(spec: str, batch_size, seed: int) -> np.ndarray:
    """The input Gram matrix named by ``--input``."""
    from bnsym.meanfield.propagation import INPUTS, example_input
    from bnsym.validation import finite_batch_size

    b = finite_batch_size(batch_size, minimum=4, why="propagation (a B x B Gram matrix is iterated)")
    if spec in INPUTS:
        return example_input(spec, b, seed=seed)
    if not spec.endswith(".npy"):
        raise BnsymInputError(f"--input must be one of {', '.join(INPUTS)} or a .npy file, got {spec!r}")
    from bnsym.validation import npy_array

    return npy_array(spec, name="--input")


def run(args) -> int:
    from bnsym.meanfield.propagation import propagate
    from bnsym.validation import output_file

    if args.plot is not None:
        output_file(args.plot, name="--plot")
    gram = load_input(args.input, args.batch_size, args.seed)
    result = propagate(
        args.activation, gram, args.depth, gamma=args.gamma, beta=args.beta, eps=args.eps, sigma_w=args.sigma_w,
        dps=args.dps, method=args.map, batch_size=args.batch_size, samples=args.samples, seed=args.seed,
    )
    if hasattr(result, "batches"):
        return _joint_output(args, result)
    simulated = _simulate(args, result, gram) if args.plot else None
    if args.plot:
        _plot(result, simulated, args.plot, args)
    if args.json:
        payload = result.as_dict()
        if simulated is not None:
            payload["simulation"] = {"width": args.width, "seeds": args.seeds, "distance_mean": simulated[0].tolist(), "distance_stderr": simulated[1].tolist()}
        print_json(payload)
        return 0
    print(result)
    print(f"input: {args.input}")
    if args.plot:
        print(f"wrote {args.plot}")
    return 0


def _joint_output(args, result) -> int:
    """Several batches: per layer the cross-batch correlation and the error estimate."""
    if args.plot:
        raise BnsymInputError("--plot draws the distance to BSB1 of one batch; with several batches use --json")
    if args.json:
        print_json(result.as_dict())
        return 0
    print(result)
    return 0


def _simulate(args, result, gram):
    """Distances to Sigma* per layer in simulated networks with the same input Gram: mean and stderr over seeds."""
    from bnsym import simulate

    star = result.fixed_point.array()
    sim = simulate(
        args.activation, gram.shape[0], args.depth, args.width, gamma=float(result.settings.gamma), beta=float(result.settings.beta),
        eps=float(result.settings.eps), sigma_w=float(result.settings.sigma_w), seeds=args.seeds, seed=args.seed, input=("gram", gram),
    )
    dist = np.linalg.norm(sim.grams - star, axis=(-1, -2))  # seeds x layers
    return dist.mean(axis=0), dist.std(axis=0, ddof=1) / np.sqrt(dist.shape[0]) if dist.shape[0] > 1 else np.zeros(dist.shape[1])


def _plot(result, simulated, path, args):
    from bnsym.plotting import pyplot

    plt = pyplot()
    layers = np.arange(1, result.depth + 1)
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    theory = np.array(result.distance[1:])
    label = {"laplace": "mean field (Laplace, exact)", "spherical": "mean field (spherical route, exact)"}.get(
        result.method, "mean field (Monte Carlo)")
    ax.semilogy(layers, theory, "-", color="C0", label=label)
    if result.method == "sampling":
        err = 3 * np.array(result.distance_error[1:])
        ax.fill_between(layers, np.clip(theory - err, 1e-300, None), theory + err, color="C0", alpha=0.2, label="3 sigma")
    mean, stderr = simulated
    ax.errorbar(layers, mean[1:], yerr=3 * stderr[1:], fmt="o", ms=3, color="C3", capsize=2,
                label=f"simulation, width {args.width}, {args.seeds} seeds (3 sigma)")
    s = result.settings.as_dict()
    ax.set_xlabel("layer l")
    ax.set_ylabel("||Sigma^l - Sigma*||_F  (Frobenius distance to BSB1)")
    ax.set_title(f"{s['activation']}, B = {s['batch_size']}, input = {args.input}")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
