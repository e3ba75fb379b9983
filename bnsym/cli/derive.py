"""``bnsym derive``: closed-form mean-field quantities as functions of the batch size."""

from __future__ import annotations

import mpmath

from bnsym.cli.common import error_text, number_text, print_json


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "derive",
        help="closed-form q*, c*, lambda_G as functions of the batch size (sympy)",
        description="Derive a mean-field quantity in closed form with sympy: its formula in the batch "
        "size B (symbolic by default), its B -> infinity limit and its expansion in 1/B. Activations "
        "without a closed form get the numeric engine's value when B and the parameters are numbers.",
    )
    parser.add_argument(
        "activation", metavar="ACTIVATION",
        help="relu, identity, abs, leaky_relu(a) (symbolic slope) or leaky_relu(0.2), relu_power(3), "
        "a polynomial such as 'x**3 + x', or any expression in x (numeric value only)",
    )
    parser.add_argument("--quantity", "-q", default="lambda_G", help="q, c, spread, correlation, lambda_G, the forward eigenvalues lambda_L, lambda_M, "
                        "or the cross-batch c_x, lambda_x (default lambda_G)")
    parser.add_argument(
        "--batch-size", "-B", default="B", metavar="B",
        help="a symbol name (default B: the formula in B), an integer >= 2, or 'inf'",
    )
    parser.add_argument("--gamma", default="1", help="batch-norm gain: a number or a symbol name (default 1)")
    parser.add_argument("--beta", default="0", help="batch-norm shift: a number or a symbol name (default 0)")
    parser.add_argument("--eps", default="0", help="batch-norm epsilon (only 0 has closed forms; default 0)")
    parser.add_argument("--series", type=int, default=3, metavar="N", help="terms of the 1/B expansion to print (default 3)")
    parser.add_argument("--latex", action="store_true", help="print LaTeX instead of sympy text")
    parser.add_argument("--dps", type=int, default=30, help="digits of numeric values (default 30)")
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON")
    parser.set_defaults(func=run)


def _symbol_or_number(text, *, batch=False):
    import sympy as sp

    text = text.strip()
    if batch and text.lower() in {"inf", "infinity", "oo"}:
        return sp.oo
    try:
        return int(text)
    except ValueError:
        pass
    if text.isidentifier():
        return sp.Symbol(text, positive=True) if batch else sp.Symbol(text, real=True)
    return text  # a decimal: validated by derive


def run(args) -> int:
    from bnsym.symbolic.derivation import derive

    result = derive(
        args.activation,
        args.quantity,
        _symbol_or_number(args.batch_size, batch=True),
        gamma=_symbol_or_number(args.gamma),
        beta=_symbol_or_number(args.beta),
        eps=_symbol_or_number(args.eps),
        series_terms=args.series,
        dps=args.dps,
    )
    show = (lambda e: __import__("sympy").latex(e)) if args.latex else str
    if args.json:
        payload = {
            "activation": result.activation,
            "quantity": result.quantity,
            "batch_size": str(result.batch_size),
            "closed_form": result.closed_form,
            "domain": result.domain,
        }
        if result.closed_form:
            payload.update(expr=str(result.expr), latex=result.latex)
            if result.limit is not None:
                payload.update(limit=show(result.limit), series=[show(t) for t in result.series[: args.series]])
            if not result.expr.free_symbols:
                with mpmath.workdps(args.dps + 10):
                    payload["value"] = number_text(result.value, args.dps)
        else:
            payload.update(value=number_text(result.value, args.dps), error=error_text(result.error), reason=result.reason)
        print_json(payload)
        return 0
    print(f"{result.quantity} for {result.activation}, valid for {result.domain}:")
    if not result.closed_form:
        print(f"  no closed form ({result.reason})")
        print(f"  numeric value (engine): {number_text(result.value, args.dps)} +- {error_text(result.error)}")
        return 0
    print(f"  {show(result.expr)}")
    if not result.expr.free_symbols:
        with mpmath.workdps(args.dps + 10):
            print(f"  = {number_text(result.value, args.dps)}")
    if result.limit is not None:
        print(f"  B -> oo: {show(result.limit)}")
        terms = " + ".join(f"({show(t)})" for t in result.series[: args.series])
        print(f"  first {min(args.series, len(result.series))} terms in 1/B: {terms}")
    return 0
