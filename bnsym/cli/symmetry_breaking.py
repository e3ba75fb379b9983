"""``bnsym symmetry-breaking``: the BSB1 stability verdict and BSB2 point, or the alpha-ReLU transition."""

from __future__ import annotations

from bnsym.cli import common


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "symmetry-breaking",
        help="is batch symmetry broken? the BSB2 point reached, or the alpha-ReLU transition",
        description="With ACTIVATION: the stability verdict of the BSB1 point and, where it is unstable and the "
        "exact (Laplace) map applies, the two-block (BSB2) point the dynamics reach. With --transition: the "
        "smallest alpha at which relu_power(alpha) loses BSB1 stability (lambda_L = 1) at each batch size.",
    )
    parser.add_argument("activation", metavar="ACTIVATION", nargs="?", help="activation (omit with --transition)")
    parser.add_argument("--batch-size", "-B", required=True, metavar="B",
                        help="batch size (an integer >= 4); with --transition a comma-separated list")
    parser.add_argument("--gamma", default="1", help="batch-norm gain gamma (default 1)")
    parser.add_argument("--beta", default="0", help="batch-norm shift beta (default 0)")
    parser.add_argument("--eps", default="0", help="batch-norm epsilon, >= 0 (default 0); not with --transition")
    parser.add_argument("--sigma-w", default="1", help="weight scale sigma_w > 0; matters only when eps > 0 (default 1)")
    parser.add_argument("--dps", type=common.integer_option, default=12, help="digits (default 12)")
    parser.add_argument("--max-depth", type=common.integer_option, default=400, help="most layers iterated (default 400)")
    parser.add_argument("--seed", type=common.integer_option, default=0, help="seed of the initial perturbation (default 0)")
    parser.add_argument("--sizes", type=common.integer_option, default=None, help="start from the (k, B-k) split")
    parser.add_argument("--transition", action="store_true", help="locate the alpha-ReLU transition instead")
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON instead of a table")
    parser.set_defaults(func=run)


def run(args) -> int:
    from bnsym.errors import BnsymInputError

    if args.transition:
        if args.activation is not None:
            raise BnsymInputError("--transition takes no ACTIVATION (it is relu_power(alpha) by definition)")
        if str(args.eps) != "0" or str(args.sigma_w) != "1":
            raise BnsymInputError("--transition is at eps = 0 (sigma_w drops out): give no --eps or --sigma-w")
        return _transition(args)
    if args.activation is None:
        raise BnsymInputError("ACTIVATION is required unless --transition is given")
    from bnsym.meanfield.symmetry import symmetry_breaking

    result = symmetry_breaking(args.activation, args.batch_size, gamma=args.gamma, beta=args.beta, eps=args.eps,
                               sigma_w=args.sigma_w, dps=args.dps, max_depth=args.max_depth, seed=args.seed,
                               sizes=args.sizes)
    if args.json:
        common.print_json(result.as_dict())
        return 0
    print(result)
    return 0


def _transition(args) -> int:
    from bnsym.meanfield.transition import alpha_transition

    results = [alpha_transition(b.strip(), dps=args.dps) for b in str(args.batch_size).split(",")]
    if args.json:
        common.print_json({"transitions": [r.as_dict() for r in results]})
        return 0
    rows = [(str(r.batch_size), common.number_text(r.value, r.dps), common.error_text(r.error), common.number_text(r.lambda_M, 6)) for r in results]
    common.print_table(rows, header=("B", "alpha at lambda_L = 1", "error", "lambda_M there"))
    return 0
