"""``bnsym cross-batch``: the cross-batch fixed point and decorrelation rates of two batches."""

from __future__ import annotations

from bnsym.cli.common import add_network_arguments, network_kwargs, print_json


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "cross-batch",
        help="cross-batch fixed point c_x and decorrelation rates of two batches through one network",
        description="Print, for two batches through the same network, the constant entry c_x of the cross block "
        "of the fixed point (and c_x / q*), the forward decorrelation rate lambda_x with its multiplicity, the "
        "backward cross-batch gradient rate and the per-layer factor lambda_x / lambda_G of the normalised "
        "cross-batch gradient correlation, each with its error (eps >= 0; B >= 2 or inf).",
    )
    add_network_arguments(parser)
    parser.set_defaults(func=run)


def run(args) -> int:
    from bnsym.meanfield.decorrelation import cross_batch

    result = cross_batch(args.activation, args.batch_size, **network_kwargs(args))
    if args.json:
        print_json(result.as_dict())
        return 0
    print(result)
    return 0
