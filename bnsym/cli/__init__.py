"""The ``bnsym`` command line.

Each subcommand lives in its own module of this package and exposes
``register(subparsers)``, which adds its parser and sets ``func`` (a callable
taking the parsed ``argparse.Namespace`` and returning an exit status).
Errors raised on purpose by bnsym are printed as one line on stderr,
``bnsym: error: <message>``, with exit status 2 for bad input and 1 for a
computation that could not be completed.

The edge of the package: may import every layer (lazily, inside each command's ``run``,
so that ``bnsym --help`` stays fast); nothing imports it.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from bnsym.errors import BnsymError, BnsymInputError

#: Subcommand modules, in the order they are listed by ``bnsym --help``.
COMMANDS = (
    "report",
    "derive",
    "train",
    "sweep",
    "plot_sweep",
    "one_step",
    "simulate",
    "spectrum", "propagate", "critical_eps",
    "scan", "store",
    "gegenbauer", "symmetry_breaking", "weight_gradients",
    "kernel",
    "cross_batch",
)


def build_parser() -> argparse.ArgumentParser:
    """Return the top-level argument parser with every subcommand registered."""
    from bnsym import __version__

    parser = argparse.ArgumentParser(
        prog="bnsym",
        description="Mean field theory of batch normalization: fixed points, gradient "
        "explosion rates, trainable depth, and their checks against simulation.",
    )
    parser.add_argument("--version", action="version", version=f"bnsym {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for name in COMMANDS:
        importlib.import_module(f"{__name__}.{name}").register(subparsers)
    return parser


def main(argv=None) -> int:
    """Entry point of the ``bnsym`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        status = args.func(args)
    except BnsymInputError as exc:
        print(f"bnsym: error: {exc}", file=sys.stderr)
        return 2
    except BnsymError as exc:
        print(f"bnsym: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("bnsym: interrupted", file=sys.stderr)
        return 130
    return 0 if status is None else int(status)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
