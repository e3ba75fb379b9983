"""``bnsym kernel``: the NNGP or NTK kernel of a batch-normalized network on a data set."""

from __future__ import annotations

import sys

from bnsym.cli.common import integer_option, print_json


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "kernel",
        help="NNGP or NTK kernel of a batch-normalized network on the inputs of a .npy file",
        description="Compute the M x M infinite-width kernel (NNGP or NTK) of a batch-normalized network at "
        "the output of layer L, for the M inputs (rows) of a .npy file, split into consecutive batches of B. "
        "Float64: the two-parameter Laplace method for positively homogeneous activations of integer degree at "
        "beta = 0 (any eps), exact to its quadrature error; Monte Carlo of the same map for every other activation "
        "or beta (--method sampling, with its standard error); with --dps D the same Laplace method in mpmath to D digits "
        "(NNGP and NTK, small sets).  The error is printed.  Writes the kernel to -o FILE.npy.",
    )
    parser.add_argument("activation", metavar="ACTIVATION", help="relu, leaky_relu(0.2), relu_power(2) (Laplace), tanh, gelu, ... (sampling)")
    parser.add_argument("--inputs", required=True, metavar="FILE.npy", help="an (M, d) array, one input per row, M a multiple of B")
    parser.add_argument("--depth", "-L", type=integer_option, required=True, help="number of layers (>= 1)")
    parser.add_argument("--batch-size", "-B", type=integer_option, required=True, metavar="B", help="batch size (>= 4; the float64 NTK needs >= 5, sampled at eps = 0 >= 6; --dps allows 4)")
    parser.add_argument("--kind", default="nngp", choices=("nngp", "ntk"), help="which kernel (default nngp)")
    parser.add_argument("--gamma", default="1", help="batch-norm gain gamma (nonzero; default 1)")
    parser.add_argument("--eps", default="0", help="batch-norm epsilon, >= 0 (default 0)")
    parser.add_argument("--beta", default="0", help="batch-norm shift beta (default 0; beta != 0 is sampled)")
    parser.add_argument("--sigma-w", default="1", help="weight scale sigma_w > 0; matters only when eps > 0 (default 1)")
    parser.add_argument("--method", default="auto", choices=("auto", "laplace", "sampling"),
                        help="auto: laplace where it applies, else sampling (default auto)")
    parser.add_argument("--samples", type=integer_option, default=10_000, help="sampling: draws per layer and chain (default 10000)")
    parser.add_argument("--chains", type=integer_option, default=8, help="sampling: independent chains, >= 4 (default 8)")
    parser.add_argument("--seed", type=integer_option, default=0, help="sampling: seed (default 0)")
    parser.add_argument("--dps", type=integer_option, default=None,
                        help="digits: the mpmath NNGP or NTK (Laplace method, small sets; the .npy file gets it rounded to float64)")
    parser.add_argument("--output", "-o", required=True, metavar="K.npy", help="where to write the M x M kernel at layer L")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--json", action="store_true", help="print a machine-readable summary instead of a table")
    parser.set_defaults(func=run)


def run(args) -> int:
    import numpy as np

    from bnsym import validation
    from bnsym.meanfield.kernels import kernel

    x = validation.npy_array(args.inputs, name="--inputs")
    out = validation.output_file(args.output, name="--output", suffixes=(".npy",))
    result = kernel(args.activation, x, args.depth, batch_size=args.batch_size, kind=args.kind, gamma=args.gamma, beta=args.beta,
                    eps=args.eps, sigma_w=args.sigma_w, method=args.method, samples=args.samples, chains=args.chains,
                    seed=args.seed, dps=args.dps, progress=not args.no_progress and sys.stderr.isatty())
    np.save(out, result.as_array())
    summary = result.as_dict()
    summary["output"] = str(out)
    if args.json:
        print_json(summary)
        return 0
    print(result)
    print(f"written to {out}")
    return 0
