"""``bnsym scan``: one engine quantity over a grid of batch size, gamma, beta, eps, sigma_w, on Dask."""

from __future__ import annotations

from bnsym.cli.common import (
    add_cluster_arguments,
    integer_option,
    print_json,
)


def register(subparsers) -> None:
    from bnsym.experiments.scanning import QUANTITIES

    parser = subparsers.add_parser(
        "scan",
        help="a quantity over a grid of batch size, gamma, beta, eps (on Dask, stored)",
        description="Evaluate QUANTITY for ACTIVATION at every point of a grid on a Dask cluster, write each "
        "point to the results store as it completes (re-running skips finished points) and print the "
        "table. Each axis is a range a:b:n (n points from a to b inclusive), a comma list or one number. "
        "A point the engine refuses is a 'failed' row with the engine's message.",
    )
    parser.add_argument("quantity", metavar="QUANTITY", choices=QUANTITIES, help=", ".join(QUANTITIES))
    parser.add_argument("activation", metavar="ACTIVATION", help="a built-in name or an expression in x")
    parser.add_argument("--batch-size", "-B", required=True, metavar="LIST",
                        help="batch sizes: a comma list such as 8,32,128,inf or a range a:b:n of integers")
    parser.add_argument("--gamma", default="1", metavar="RANGE", help="batch-norm gain(s), nonzero (default 1)")
    parser.add_argument("--beta", default="0", metavar="RANGE", help="batch-norm shift(s) (default 0)")
    parser.add_argument("--eps", default="0", metavar="RANGE", help="batch-norm epsilon(s), >= 0 (default 0)")
    parser.add_argument("--sigma-w", default="1", metavar="RANGE", help="weight scale(s) > 0 (default 1)")
    parser.add_argument("--dps", type=integer_option, default=15, help="correct significant digits promised (default 15)")
    parser.add_argument("--method", default="auto", choices=("auto", "closed form", "quadrature"),
                        help="how sphere expectations are evaluated (default auto)")
    parser.add_argument("--precision", default="mpmath", choices=("mpmath", "double"),
                        help="mpmath: DPS digits, one point per task (default); double: float64 for lambda_G, q, c "
                        "of smooth activations at eps = 0, thousands of points per task (~1e-12 relative)")
    add_cluster_arguments(parser, store_required=False)
    parser.add_argument("--plot", default=None, metavar="FILE.png",
                        help="line plot (one line per batch size) or heatmap (two swept axes)")
    parser.add_argument("--json", action="store_true", help="print the points as JSON")
    parser.set_defaults(func=run)


def run(args) -> int:
    from bnsym import validation
    from bnsym.experiments.scanning import scan

    plot = None if args.plot is None else validation.output_file(args.plot, name="--plot")
    result = scan(args.quantity, args.activation, batch_size=args.batch_size, gamma=args.gamma, beta=args.beta,
                  eps=args.eps, sigma_w=args.sigma_w, dps=args.dps, method=args.method, precision=args.precision,
                  store=args.store or ":memory:", scheduler=args.scheduler, workers=args.workers,
                  progress=not args.no_progress, rows=True)
    rows = result.rows
    if plot is not None:
        from bnsym.experiments.figures import scan_figure

        scan_figure(rows, plot)
    if args.json:
        print_json([{k: v for k, v in r.items() if k not in ("key", "kind")} for r in rows])
    else:
        print(result.text())
        if plot is not None:
            print(f"wrote {plot}")
    if result.failed:
        import sys

        print(f"bnsym scan: {len(result.failed)} of {len(rows)} points not evaluated (see status)", file=sys.stderr)
    return 0
