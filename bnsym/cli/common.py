"""Argument groups and output helpers shared by the subcommands."""

from __future__ import annotations

import json

from bnsym.text import error_text, number_text, table_text  # noqa: F401 (the subcommands' helpers)
from bnsym.validation import MAX_DPS


def add_network_arguments(parser, *, batch_size_required: bool = True) -> None:
    """``ACTIVATION --batch-size --gamma --beta --eps --sigma-w --dps --method``."""
    parser.add_argument(
        "activation",
        metavar="ACTIVATION",
        help="a built-in name (relu, tanh, gelu, leaky_relu(0.2), relu_power(3), ...) "
        "or an expression in x such as 'x*(1+erf(x/sqrt(2)))/2'",
    )
    parser.add_argument(
        "--batch-size", "-B", required=batch_size_required, metavar="B",
        help="batch size: an integer >= 2, or 'inf' for the large-batch limit",
    )
    parser.add_argument("--gamma", default="1", help="batch-norm gain gamma (nonzero; default 1)")
    parser.add_argument("--beta", default="0", help="batch-norm shift beta (default 0)")
    parser.add_argument("--eps", default="0", help="batch-norm epsilon, >= 0 (default 0)")
    parser.add_argument("--sigma-w", default="1", help="weight scale sigma_w > 0; matters only when eps > 0 (default 1)")
    parser.add_argument("--dps", type=integer_option, default=15, help=f"correct significant digits promised, 1..{MAX_DPS} (default 15)")
    parser.add_argument(
        "--method", default="auto", choices=("auto", "closed form", "quadrature"),
        help="how sphere expectations are evaluated (default auto: closed forms where they exist)",
    )
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON instead of a table")


def network_kwargs(args) -> dict:
    """Keyword arguments of the public API from parsed network arguments."""
    return dict(gamma=args.gamma, beta=args.beta, eps=args.eps, sigma_w=args.sigma_w, dps=args.dps, method=args.method)


def integer_option(text):
    try:
        return int(text)
    except ValueError:
        import argparse

        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None


def print_json(payload) -> None:
    print(json.dumps(payload, indent=2))


def print_table(rows, header=("quantity", "value", "error")) -> None:
    """Print rows of strings as an aligned plain-text table (:func:`bnsym.text.table_text`)."""
    print(table_text(rows, header))


def add_cluster_arguments(parser, *, store_required: bool = True) -> None:
    """``--store --scheduler --workers --no-progress``: where a grid runs and where its cells go."""
    parser.add_argument("--store", required=store_required, metavar="FILE",
                        help="results store (SQLite; created if missing; finished cells in it are skipped)")
    parser.add_argument("--scheduler", default=None, metavar="ADDRESS",
                        help="address of a running Dask scheduler, e.g. tcp://10.0.0.1:8786 (default: a "
                        "LocalCluster of one single-threaded worker per core)")
    parser.add_argument("--workers", type=integer_option, default=None,
                        help="worker processes of the LocalCluster (default: one per core)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
