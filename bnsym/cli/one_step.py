"""``bnsym one-step``: dynamic range of per-layer gradient norms at init and after k steps."""

from __future__ import annotations

from bnsym.cli.train import add_model_arguments


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "one-step",
        help="per-layer gradient norms at initialisation and after k optimisation steps",
        description="Measure the weight-gradient norm of every layer on a fixed probe batch at "
        "initialisation and after each of K steps, print their dynamic range (max/min over layers) "
        "and optionally plot them.",
    )
    add_model_arguments(parser)
    parser.add_argument("--steps", "-k", type=int, default=1, help="optimisation steps K (default 1)")
    parser.add_argument("--lr", type=float, default=None, help="learning rate (default 1e-5 * B, the paper's rule)")
    parser.add_argument("--plot", default=None, help="write the figure to this PNG file")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.set_defaults(func=run)


def run(args) -> int:
    from bnsym.train.datasets import load_dataset
    from bnsym.train.sweep import json_safe
    from bnsym.cli.common import print_json
    from bnsym.train.first_steps import one_step
    from bnsym.plotting import first_steps_figure
    from bnsym.train.training import build

    from bnsym.validation import output_file

    if args.plot is not None:
        output_file(args.plot, name="--plot")
    lr = args.lr if args.lr is not None else 1e-5 * args.batch_size
    data = load_dataset(args.dataset, args.data_dir, verify=not args.no_verify).subset(args.train_size, args.test_size)
    network, optimizer = build(
        data, depth=args.depth, width=args.width, batch_size=args.batch_size, lr=lr, activation=args.activation,
        optimizer=args.optimizer, momentum=args.momentum, sigma_w=args.sigma_w, eps=args.eps,
        batch_norm=not args.no_batch_norm, sub_batch=args.sub_batch, dtype=args.dtype, seed=args.seed,
    )
    result = one_step(network, optimizer, data, steps=args.steps, batch_size=args.batch_size, seed=args.seed)
    if args.plot:
        first_steps_figure(result, args.plot, title=f"depth {args.depth}, B = {args.batch_size}, {args.activation}, lr = {lr:g}")
    if args.json:
        print_json(json_safe({"lr": lr, **result.as_dict()}))
        return 0
    print(f"fitted per-layer growth of the squared gradient at initialisation: {result.rate_at_init:.4g}")
    for s, r in enumerate(result.dynamic_range):
        print(f"after {s} step(s): dynamic range {r:.4g}, probe loss {result.losses[s]:.4g}")
    return 0
