"""``bnsym sweep``: the trainability grid over depth and batch size, on Dask, into a results store."""

from __future__ import annotations

from bnsym.cli.common import add_cluster_arguments
from bnsym.cli.train import add_model_arguments, int_list


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "sweep",
        help="trainability grid over depth and batch size (Fig. 3 of the paper)",
        description="Train one network per (depth, batch size, seed) with learning rate lr_scale * B on a "
        "Dask cluster and write each finished cell to the results store (SQLite) as it completes. "
        "Re-running resumes: cells finished in the store are skipped, cells that failed are run again. "
        "Ctrl-C (or a killed client) keeps every finished cell.",
    )
    parser.add_argument("--depths", type=int_list, required=True, help="comma-separated depths, e.g. 2,10,50,100")
    parser.add_argument("--batch-sizes", type=int_list, required=True, help="comma-separated batch sizes")
    parser.add_argument("--seeds", type=int_list, default=[0], help="comma-separated seeds (default 0)")
    parser.add_argument("--lr-scale", type=float, default=1e-5,
                        help="learning rate per sample: eta = LR_SCALE * B (default 1e-5, the paper's rule)")
    add_cluster_arguments(parser)
    add_model_arguments(parser, sweep=True)
    parser.set_defaults(func=run)


def run(args) -> int:
    from bnsym.experiments.execution import run_cells
    from bnsym.experiments.store import Store
    from bnsym.train.sweep import grid

    cells = grid(
        args.depths, args.batch_sizes, args.seeds, sub_batches=args.sub_batch or [None],
        dataset=args.dataset, data_dir=args.data_dir, verify=not args.no_verify, width=args.width,
        epochs=args.epochs, train_size=args.train_size, test_size=args.test_size, lr_scale=args.lr_scale,
        optimizer=args.optimizer, momentum=args.momentum, activation=args.activation, sigma_w=args.sigma_w,
        eps=args.eps, batch_norm=not args.no_batch_norm, dtype=args.dtype,
    )
    with Store(args.store) as store:
        rows = run_cells(cells, store, scheduler=args.scheduler, workers=args.workers, progress=not args.no_progress)
    counts = {s: sum(r["status"] == s for r in rows) for s in ("ok", "diverged", "error")}
    print(f"{len(rows)} of {len(cells)} cells in {args.store}: {counts['ok']} ok, {counts['diverged']} diverged, "
          f"{counts['error']} errors")
    return 0 if len(rows) == len(cells) and not counts["error"] else 1
