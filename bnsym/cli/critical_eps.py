"""``bnsym critical-eps``: the batch-norm eps past which the BSB1 point is degenerate."""

from __future__ import annotations

from bnsym.cli.common import (
    add_network_arguments,
    error_text,
    number_text,
    print_json,
    print_table,
)


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "critical-eps",
        help="critical batch-norm eps: where the BSB1 fixed point becomes degenerate",
        description="Print the critical eps_c past which the BSB1 scale contracts to 0 (G Sigma* G = 0, every "
        "sample mapped to phi(beta)), and eps_g, where lambda_G at the degenerate point crosses 1 (equal to eps_c "
        "when phi is differentiable at beta, larger at a kink such as ReLU at beta = 0). The --eps option is "
        "ignored: eps_c does not depend on it.",
    )
    add_network_arguments(parser)
    parser.set_defaults(func=run)


def run(args) -> int:
    from bnsym.meanfield.critical import critical_eps

    crit = critical_eps(args.activation, args.batch_size, gamma=args.gamma, beta=args.beta, sigma_w=args.sigma_w,
                        dps=args.dps)
    d = crit.settings.dps
    rows = [
        ("eps_c", "scale map slope S0 = 1: the degenerate point attracts for eps >= eps_c", crit.value, crit.error),
        ("eps_g", "degenerate lambda_G = 1: gradients explode for eps < eps_g", crit.gradient_eps, crit.gradient_eps_error),
    ]
    if args.json:
        print_json({
            "settings": {k: v for k, v in crit.settings.as_dict().items() if k not in ("eps", "method")},
            **{name: {"value": number_text(v, d), "error": error_text(e), "meaning": m} for name, m, v, e in rows},
            "slopes": [number_text(x, d) for x in crit.slopes],
        })
        return 0
    s = crit.settings.as_dict()
    print(f"{s['activation']}, B = {s['batch_size']}, gamma = {s['gamma']}, beta = {s['beta']}, sigma_w = {s['sigma_w']}  ({d} digits)")
    print_table([(name, number_text(v, d), error_text(e)) for name, _, v, e in rows])
    return 0
