"""``bnsym spectrum``: forward and backward eigenvalues at the BSB1 fixed point."""

from __future__ import annotations

from bnsym.cli.common import add_network_arguments, print_json


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "spectrum",
        help="eigenvalues of the forward and backward maps at the BSB1 fixed point",
        description="Print the eigenvalues of the linearised Gram map and of the backward operator T at the "
        "BSB1 fixed point, one per invariant subspace (G, L, M) with its multiplicity and error, the local "
        "stability verdict and which backward eigenvalue is the spectral radius (B >= 4 or inf, any eps >= 0: past the "
        "critical eps, the spectrum at the degenerate point G Sigma G = 0; at B = inf the backward map gives G only).",
    )
    add_network_arguments(parser)
    parser.set_defaults(func=run)


def run(args) -> int:
    from bnsym.meanfield.linearization import spectrum

    spec = spectrum(args.activation, args.batch_size, gamma=args.gamma, beta=args.beta, eps=args.eps, sigma_w=args.sigma_w,
                    dps=args.dps, method=args.method)
    if args.json:
        print_json(spec.as_dict())
        return 0
    print(spec)
    return 0
