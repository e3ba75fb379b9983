"""``bnsym report``: the fixed point, lambda_G and the trainable depth."""

from __future__ import annotations

from bnsym.meanfield.depth import DEFAULT_LOG_FACTOR, trainable_depth
from bnsym.cli.common import add_network_arguments, error_text, network_kwargs, number_text, print_json, print_table


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "report",
        help="fixed point, gradient explosion rate and trainable depth",
        description="Print the BSB1 fixed point (q*, c*), the gradient explosion rate lambda_G "
        "and the trainable depth log(K)/log(lambda_G) of a batch-normalized network, "
        "each with its error estimate.",
    )
    add_network_arguments(parser)
    parser.add_argument(
        "--factor", default=None,
        help=f"gradient growth K defining the trainable depth (default e^{DEFAULT_LOG_FACTOR}, "
        f"the paper's Fig. 3 curve {DEFAULT_LOG_FACTOR}/log(lambda_G))",
    )
    parser.set_defaults(func=run)


def run(args) -> int:
    depth = trainable_depth(args.activation, args.batch_size, factor=args.factor, **network_kwargs(args))
    rate = depth.rate
    fp = rate.fixed_point
    s = depth.settings
    d = s.dps
    quantities = [
        ("q*", "diagonal of the fixed point", fp.value, fp.error),
        ("c*", "off-diagonal of the fixed point", fp.c, fp.c_error),
        ("lambda_G", "gradient explosion rate per layer", rate.value, rate.error),
        ("trainable_depth", "layers for a gradient growth of " + (f"e^{DEFAULT_LOG_FACTOR}" if args.factor is None else number_text(depth.factor, 6)), depth.value, depth.error),
    ]
    if args.json:
        print_json(
            {
                "settings": s.as_dict(),
                "method": fp.method,
                "regime": fp.regime,
                **{
                    name: {"value": number_text(value, d), "error": error_text(error), "meaning": meaning}
                    for name, meaning, value, error in quantities
                },
                "factor": number_text(depth.factor, 15),
            }
        )
        return 0
    settings = s.as_dict()
    print(
        f"{s.activation.label}, B = {settings['batch_size']}, gamma = {settings['gamma']}, beta = {settings['beta']}, "
        f"eps = {settings['eps']}, sigma_w = {settings['sigma_w']}  ({d} digits, {fp.method})"
    )
    if fp.regime != "nondegenerate":
        print(f"regime: {fp.regime} (eps at or past the critical eps: G Sigma* G = 0, q* = c* = phi(beta)^2)")
    print_table([(name, number_text(value, d), error_text(error)) for name, _, value, error in quantities])
    return 0
