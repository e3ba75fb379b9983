"""``bnsym cross-batch``: the cross-batch fixed point and decorrelation rates of two batches."""

from __future__ import annotations

from bnsym.cli.common import (
    add_network_arguments,
    error_text,
    network_kwargs,
    number_text,
    print_json,
    print_table,
)


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
    s = result.settings.as_dict()
    d = result.settings.dps
    print(f"{s['activation']}, B = {s['batch_size']}, gamma = {s['gamma']}, beta = {s['beta']}, eps = {s['eps']}, "
          f"sigma_w = {s['sigma_w']}  ({d} digits, {result.method})")
    multiplicity = "inf" if result.multiplicity == float("inf") else str(result.multiplicity)
    rows = []
    why = {"c_x / q*": "undefined (0/0: every sample is phi(beta) = 0 past the critical eps)",
           "lambda_x / lambda_G": "undefined (0/0: no gradient passes batch norm)"}
    for label, q in (("c_x (cross-block entry)", result.c_x), ("c_x / q*", result.correlation),
                     (f"lambda_x (multiplicity {multiplicity})", result.lambda_x),
                     ("backward cross-batch rate", result.backward_rate), ("lambda_G", result.lambda_G),
                     ("lambda_x / lambda_G", result.correlation_rate)):
        if q is None:
            rows.append((label, why[label], ""))
        else:
            rows.append((label, number_text(q.value, d), error_text(q.error)))
    print_table(rows)
    return 0
