"""``bnsym train``: one training run of the reference NumPy trainer."""

from __future__ import annotations

import argparse

def int_list(text):
    try:
        values = [int(v) for v in str(text).split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not values:
        raise argparse.ArgumentTypeError(f"expected at least one integer, got {text!r}")
    return values


def add_model_arguments(parser, *, sweep=False) -> None:
    """Dataset, architecture and optimiser options shared by ``train``, ``sweep`` and ``one-step``."""
    parser.add_argument("--dataset", default="fashion-mnist", help="mnist, fashion-mnist or cifar10 (default fashion-mnist)")
    parser.add_argument("--data-dir", default=None,
                        help="directory with the dataset files (default: the system copy of Fashion-MNIST)")
    parser.add_argument("--no-verify", action="store_true", help="skip the checksum check of the dataset files")
    parser.add_argument("--train-size", type=int, default=None, help="use the first N training samples (default all)")
    parser.add_argument("--test-size", type=int, default=None, help="use the first N test samples (default all)")
    parser.add_argument("--epochs", type=int, default=1, help="training epochs (default 1)")
    if not sweep:
        parser.add_argument("--depth", type=int, default=5, help="hidden layers (default 5)")
        parser.add_argument("--batch-size", "-B", type=int, default=128, help="batch size (default 128)")
        parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--width", type=int, default=384, help="hidden width N (default 384)")
    parser.add_argument("--activation", default="relu", help="relu, tanh, identity or any bnsym activation (default relu)")
    parser.add_argument("--sigma-w", type=float, default=1.0, help="weight scale sigma_w (default 1)")
    parser.add_argument("--eps", type=float, default=1e-3, help="batch-norm epsilon (default 1e-3)")
    if sweep:
        parser.add_argument("--sub-batch", type=int_list, default=None,
                            help="comma-separated sub-batch sizes, a grid axis: batch statistics over sub-batches "
                                 "of each size (default: the whole batch; the paper's Fig. 3b: --batch-sizes 1000 "
                                 "--sub-batch 8,16,...)")
    else:
        parser.add_argument("--sub-batch", type=int, default=None,
                            help="compute batch statistics over sub-batches of this size (default: whole batch)")
    parser.add_argument("--no-batch-norm", action="store_true", help="plain network: x = phi(W x + b), no batch norm")
    parser.add_argument("--optimizer", default="sgd", choices=("sgd", "rmsprop"), help="optimizer (default sgd)")
    parser.add_argument("--momentum", type=float, default=0.0, help="SGD momentum (default 0)")
    parser.add_argument("--dtype", default="float32", choices=("float32", "float64"), help="arithmetic (default float32)")


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train one batch-normalized network (NumPy reference trainer)",
        description="Train a fully connected batch-norm network with SGD or RMSProp and report the test "
        "accuracy. Per-layer weight-gradient norms are printed at initialisation, after the first step "
        "and at the end.",
    )
    add_model_arguments(parser)
    lr = parser.add_mutually_exclusive_group()
    lr.add_argument("--lr", type=float, default=None, help="learning rate")
    lr.add_argument("--lr-scale", type=float, default=None,
                    help="learning rate per sample: eta = LR_SCALE * B (the paper uses 1e-5); default 1e-5")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)


def run(args) -> int:
    from bnsym.train.datasets import load_dataset
    from bnsym.train.sweep import json_safe
    from bnsym.cli.common import print_json
    from bnsym.train.training import build, fit

    lr = args.lr if args.lr is not None else (1e-5 if args.lr_scale is None else args.lr_scale) * args.batch_size
    data = load_dataset(args.dataset, args.data_dir, verify=not args.no_verify).subset(args.train_size, args.test_size)
    network, optimizer = build(
        data, depth=args.depth, width=args.width, batch_size=args.batch_size, lr=lr, activation=args.activation,
        optimizer=args.optimizer, momentum=args.momentum, sigma_w=args.sigma_w, eps=args.eps,
        batch_norm=not args.no_batch_norm, sub_batch=args.sub_batch, dtype=args.dtype, seed=args.seed,
    )
    result = fit(network, optimizer, data, epochs=args.epochs, batch_size=args.batch_size, seed=args.seed,
                 progress=not args.no_progress)
    if args.json:
        print_json(json_safe({"lr": lr, **result.as_dict()}))
        return 0
    print(f"{data.name}: depth {args.depth}, width {args.width}, B = {args.batch_size}, lr = {lr:g}, "
          f"{args.optimizer}{'' if args.no_batch_norm else ', batch norm'}")
    for epoch, loss, acc in result.history:
        print(f"  epoch {epoch}: train loss {loss:.4f}, train accuracy {acc:.4f}")
    print("per-layer weight-gradient norms (layer 1 first, readout last):")
    for name, norms in result.grad_norms.items():
        print(f"  {name:>16}: " + " ".join(f"{v:.3g}" for v in norms))
    if result.diverged:
        print(f"DIVERGED after {result.steps} steps (non-finite loss)")
        return 1
    print(f"test accuracy {result.test_accuracy:.4f}, test loss {result.test_loss:.4f} "
          f"({result.steps} steps, {result.seconds:.1f} s, {result.samples_per_second:.0f} samples/s)")
    return 0
