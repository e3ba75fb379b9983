"""``bnsym sweep``: the trainability grid over depth and batch size (resumable)."""

from __future__ import annotations

from bnsym.cli.train import add_model_arguments, int_list


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "sweep",
        help="trainability grid over depth and batch size (Fig. 3 of the paper)",
        description="Train one network per (depth, batch size, seed) with learning rate lr_scale * B and "
        "append each finished cell to RESULTS (JSON lines). Re-running resumes: cells already in the "
        "file are skipped. Ctrl-C keeps every finished cell.",
    )
    parser.add_argument("--results", "-o", required=True, help="results file (JSON lines, appended to)")
    parser.add_argument("--depths", type=int_list, required=True, help="comma-separated depths, e.g. 2,10,50,100")
    parser.add_argument("--batch-sizes", type=int_list, required=True, help="comma-separated batch sizes")
    parser.add_argument("--seeds", type=int_list, default=[0], help="comma-separated seeds (default 0)")
    parser.add_argument("--lr-scale", type=float, default=1e-5,
                        help="learning rate per sample: eta = LR_SCALE * B (default 1e-5, the paper's rule)")
    parser.add_argument("--jobs", "-j", type=int, default=1, help="worker processes (default 1)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_model_arguments(parser, sweep=True)
    parser.set_defaults(func=run)


def run(args) -> int:
    from bnsym.train.sweep import grid, run_sweep

    cells = grid(
        args.depths, args.batch_sizes, args.seeds, dataset=args.dataset, data_dir=args.data_dir, verify=not args.no_verify, width=args.width,
        epochs=args.epochs, train_size=args.train_size, test_size=args.test_size, lr_scale=args.lr_scale,
        optimizer=args.optimizer, momentum=args.momentum, activation=args.activation, sigma_w=args.sigma_w,
        eps=args.eps, batch_norm=not args.no_batch_norm, sub_batch=args.sub_batch, dtype=args.dtype,
    )
    records = run_sweep(cells, args.results, jobs=args.jobs, progress=not args.no_progress)
    keys = {c.key() for c in cells}
    from bnsym.train.sweep import record_key

    mine = list({record_key(r): r for r in records if record_key(r) in keys}.values())  # one per cell
    counts = {s: sum(r.get("status") == s for r in mine) for s in ("ok", "diverged", "error")}
    print(f"{len(mine)} of {len(cells)} cells in {args.results}: {counts['ok']} ok, {counts['diverged']} diverged, "
          f"{counts['error']} errors")
    return 0 if len(mine) == len(cells) and not counts["error"] else 1
