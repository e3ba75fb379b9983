"""``bnsym store``: what a results store holds; export to JSON lines / CSV; import old JSON-lines results."""

from __future__ import annotations


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "store",
        help="summarise, export or fill a results store (SQLite) of sweep and scan",
        description="Print the number of rows of STORE by kind and status. --import-jsonl copies the records "
        "of JSON-lines results files of older sweeps into it (a second import writes nothing); --export "
        "writes every row to a .jsonl or .csv file.",
    )
    parser.add_argument("store", metavar="STORE", help="results store (created if missing)")
    parser.add_argument("--import-jsonl", nargs="+", default=(), metavar="FILE.jsonl",
                        help="JSON-lines results files of 'bnsym sweep' before the store existed")
    parser.add_argument("--export", default=None, metavar="FILE", help="write the rows here (.jsonl or .csv)")
    parser.add_argument("--kind", default=None, choices=("train", "scan"), help="export only rows of this kind")
    parser.set_defaults(func=run)


def run(args) -> int:
    from bnsym import validation
    from bnsym.experiments.store import Store, migrate_jsonl

    export = None if args.export is None else validation.output_file(args.export, name="--export", suffixes=(".jsonl", ".csv"))
    with Store(args.store) as store:
        for path in args.import_jsonl:
            written, kept = migrate_jsonl(path, store)
            print(f"{path}: {written} rows written, {kept} already in the store")
        for (kind, status), n in sorted(store.counts().items()):
            print(f"{kind:6s} {status:9s} {n}")
        if export is not None:
            print(f"wrote {store.export(export, kind=args.kind)} rows to {export}")
    return 0
