"""``bnsym weight-gradients``: expected squared weight gradient per layer at initialisation, relative to the last."""

from __future__ import annotations

from bnsym.cli import common


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "weight-gradients",
        help="per-layer expected squared weight gradients at initialisation (lambda_G^(L-l))",
        description="Print, for each hidden layer l of a depth-L network at the BSB1 point, the mean squared "
        "weight-gradient entry m_l relative to the last hidden layer, m_l/m_L = lambda_G^(L-l), and "
        "m_l in units of the squared gradient reaching the last layer's input, (q*-c*) lambda_G^(L-l)/sigma_w^2.",
    )
    common.add_network_arguments(parser)
    parser.add_argument("--depth", "-L", type=common.integer_option, required=True, help="number of hidden layers (>= 1)")
    parser.set_defaults(func=run)


def run(args) -> int:
    from bnsym.meanfield.weight_gradient_moments import weight_gradients

    result = weight_gradients(args.activation, args.batch_size, args.depth, **common.network_kwargs(args))
    if args.json:
        common.print_json(result.as_dict())
        return 0
    print(result)
    return 0
