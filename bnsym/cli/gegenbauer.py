"""``bnsym gegenbauer``: the Gegenbauer coefficients of an activation and the series for q*, c*, lambda_G, lambda_L, lambda_M."""

from __future__ import annotations

from bnsym.cli import common


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "gegenbauer",
        help="Gegenbauer coefficients of the activation and the series for the BSB1 quantities",
        description="Print the coefficients a_l = E1[f(s) P_l(s/sqrt(B-1))] of f(s) = phi(gamma s + beta) in the "
        "normalised Gegenbauer basis of the one-coordinate sphere law (f = sum a_l dimH_l P_l), and q*, c*, "
        "lambda_G and the forward eigenvalues on L and M summed over the first TERMS degrees, each with a "
        "rigorous truncation bound (eps = 0, B >= 4).",
    )
    common.add_network_arguments(parser)
    parser.add_argument("--terms", "-K", type=common.integer_option, default=40, help="number of degrees summed, >= 1 (default 40)")
    parser.add_argument("--show", type=common.integer_option, default=10, help="coefficients printed in the table (default 10; --json prints all)")
    parser.set_defaults(func=run)


def run(args) -> int:
    from bnsym.errors import BnsymInputError
    from bnsym.meanfield.gegenbauer_series import gegenbauer
    from bnsym.validation import real

    if real(args.eps, name="eps", nonnegative=True) != 0 or args.method != "auto":
        raise BnsymInputError(f"eps must be 0 for the Gegenbauer series (its coefficients are quadratures; --method does not apply), got {args.eps!r}")
    series = gegenbauer(args.activation, args.batch_size, gamma=args.gamma, beta=args.beta, sigma_w=args.sigma_w,
                        terms=args.terms, dps=args.dps)
    if args.json:
        common.print_json(series.as_dict())
        return 0
    print(series.text(show=args.show))
    return 0
