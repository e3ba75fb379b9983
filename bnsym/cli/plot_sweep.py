"""``bnsym plot-sweep``: accuracy heatmap over depth and batch size, with the theory's trainable depth.

The curve is ``L*(B) = log(K) / log(lambda_G(B))`` from
:func:`bnsym.trainable_depth` (imported only when plotting), evaluated for
the activation of the sweep at ``--theory-eps`` (default 0, where ReLU has a
closed form) and growth factor ``--factor`` (default the paper's ``e^16``, i.e. the
Fig. 3 curve ``16 / log(lambda_G)``).
"""

from __future__ import annotations

import math
import sys

import numpy as np

from bnsym import validation
from bnsym.errors import BnsymError, BnsymInputError
from bnsym.plotting import pyplot


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "plot-sweep",
        help="heatmap of a sweep's test accuracy with the theory's trainable depth",
        description="Draw the test accuracy of every (depth, batch size) cell of a sweep's results store "
        "as a heatmap (seeds averaged; diverged cells marked x) and overlay the trainable depth "
        "log(K)/log(lambda_G(B)) of mean field theory.",
    )
    parser.add_argument("results", metavar="STORE",
                        help="results store written by 'bnsym sweep' (or a JSON-lines file of an older sweep)")
    parser.add_argument("--output", "-o", default=None, help="PNG file (default: RESULTS with .png)")
    parser.add_argument("--factor", type=float, default=None, help="gradient growth K of the theory curve (default e^16, the paper's 16/log(lambda_G))")
    parser.add_argument("--theory-eps", type=float, default=0.0, help="batch-norm eps of the theory curve (default 0)")
    parser.add_argument("--no-theory", action="store_true", help="omit the theory curve")
    parser.add_argument("--title", default=None, help="figure title")
    parser.add_argument("--threshold", type=float, default=0.5,
                        help="test accuracy above which a cell counts as trained, for the printed boundary "
                             "(deepest trained depth per batch size; default 0.5, chance is 1/classes)")
    parser.set_defaults(func=run)


def statistics_batch(record) -> int:
    """The batch over which a cell's batch norm takes its statistics: its sub-batch, else its batch."""
    return int(record.get("sub_batch") or record["batch_size"])


def column_axis(records) -> str:
    """``"sub_batch"`` when the cells share one batch size and vary the sub-batch over which batch
    norm takes its statistics (the paper's Fig. 3b), else ``"batch_size"`` (Fig. 3a)."""
    if len({int(r["batch_size"]) for r in records}) == 1 and len({statistics_batch(r) for r in records}) > 1:
        return "sub_batch"
    return "batch_size"


def accuracy_table(records):
    """``(depths, columns, mean accuracy [depth, column], diverged fraction [depth, column])``; the
    columns are batch sizes, or the statistics (sub-)batch sizes when :func:`column_axis` says so."""
    records = [r for r in records if r.get("status") in ("ok", "diverged")]
    if not records:
        raise BnsymInputError("the results hold no finished cells (status ok or diverged)")
    key = statistics_batch if column_axis(records) == "sub_batch" else (lambda r: int(r["batch_size"]))
    depths = sorted({int(r["depth"]) for r in records})
    batches = sorted({key(r) for r in records})
    acc = np.full((len(depths), len(batches)), np.nan)
    div = np.full_like(acc, np.nan)
    for i, d in enumerate(depths):
        for j, b in enumerate(batches):
            cell = [r for r in records if r["depth"] == d and key(r) == b]
            if cell:
                # a diverged run scores chance level for the mean
                values = [r["test_accuracy"] if r["status"] == "ok" else 0.0 for r in cell]
                acc[i, j] = float(np.mean(values))
                div[i, j] = float(np.mean([r["status"] == "diverged" for r in cell]))
    return depths, batches, acc, div


def measured_boundary(depths, batches, acc, threshold):
    """Per batch size, ``(deepest depth whose mean accuracy is at least threshold, the shallowest
    deeper depth below it)`` from :func:`accuracy_table`'s arrays; ``None`` where no depth (or
    no deeper failing depth) was measured.  Cells not run (``nan``) are skipped."""
    out = {}
    for j, b in enumerate(batches):
        column = [(d, acc[i, j]) for i, d in enumerate(depths) if np.isfinite(acc[i, j])]
        trained = [d for d, a in column if a >= threshold]
        deepest = max(trained) if trained else None
        failing = [d for d, a in column if a < threshold and (deepest is None or d > deepest)]
        out[b] = (deepest, min(failing) if failing else None)
    return out


def theory_depths(activation, batch_sizes, *, eps=0.0, factor=None):
    """Trainable depth ``log(K)/log(lambda_G(B))`` for each batch size (engine imported lazily).

    A batch size where the engine raises :class:`~bnsym.errors.BnsymError` gets ``nan`` (and a
    line on stderr) so that the rest of the curve is still drawn.
    """
    from bnsym import trainable_depth

    kwargs = {"eps": eps}
    if factor is not None:
        kwargs["factor"] = factor
    depths = []
    for b in batch_sizes:
        try:
            depths.append(float(trainable_depth(activation, b, **kwargs)))
        except BnsymError as exc:  # one batch size the engine cannot do must not cost the whole figure
            print(f"bnsym plot-sweep: no theory point at B = {b}: {exc}", file=sys.stderr)
            depths.append(math.nan)
    return depths


def protocol_title(records) -> str:
    """The default title: what was trained on what, from the settings every record shares.

    The data set is always named (the paper's Fig. 3 is MNIST and CIFAR-10; these sweeps run
    where those cannot be downloaded, so a reader must see which data set a heatmap shows)."""
    def shared(name):
        values = {r.get(name) for r in records}
        return values.pop() if len(values) == 1 else None

    dataset = shared("dataset")
    head = f"{shared('activation') or 'mixed activations'} on {dataset or 'mixed data sets'}"
    train, test = shared("train_size"), shared("test_size")
    if train is not None or test is not None:
        head += f" ({train or 'all'} train / {test or 'all'} test images)"
    parts = [head]
    epochs, optimizer, width = shared("epochs"), shared("optimizer"), shared("width")
    if epochs is not None:
        parts.append(f"{epochs} epoch{'s' if epochs != 1 else ''}")
    if optimizer:
        parts.append(str(optimizer))
    if width is not None:
        parts.append(f"width {width}")
    return "test accuracy over depth and batch size\n" + ", ".join(str(p) for p in parts if p)


def sweep_heatmap(records, path, *, factor=None, theory_eps=0.0, theory=True, title=None, theory_points=40):
    """Write the heatmap of ``records`` to ``path``; return the theory depths (or ``None``).

    The theory line is evaluated at ``theory_points`` batch sizes spaced evenly in log B (each a
    lambda_G evaluation: about 0.6 s at eps = 1e-3, a few ms at eps = 0)."""
    plt = pyplot()
    depths, batches, acc, div = accuracy_table(records)
    fig, ax = plt.subplots(figsize=(7, 5))
    # cell edges on a log2 axis for B and a linear axis for depth
    bx = np.log2(batches)
    bedges = np.concatenate([[bx[0] - 0.5], (bx[1:] + bx[:-1]) / 2, [bx[-1] + 0.5]]) if len(bx) > 1 else bx[0] + np.array([-0.5, 0.5])
    d = np.array(depths, float)
    log_depth = len(d) > 2 and d[-1] / d[0] >= 8  # a wide range of depths: rows on a log axis
    dy = np.log(d) if log_depth else d
    dedges = np.concatenate([[dy[0] - (dy[1] - dy[0]) / 2 if len(dy) > 1 else dy[0] - 1], (dy[1:] + dy[:-1]) / 2,
                             [dy[-1] + (dy[-1] - dy[-2]) / 2 if len(dy) > 1 else dy[0] + 1]])
    if log_depth:
        dedges = np.exp(dedges)
        ax.set_yscale("log")
    mesh = ax.pcolormesh(bedges, dedges, np.ma.masked_invalid(acc), cmap="viridis", vmin=0, vmax=1, shading="flat")
    fig.colorbar(mesh, ax=ax, label="test accuracy")
    for i in range(len(depths)):
        for j in range(len(batches)):
            if div[i, j] > 0:
                ax.plot(bx[j], d[i], "rx", ms=8)
            elif np.isfinite(acc[i, j]):
                ax.text(bx[j], d[i], f"{acc[i, j]:.2f}", ha="center", va="center", fontsize=7,
                        color="black" if acc[i, j] > 0.6 else "white")
    ax.set_xticks(bx)
    ax.set_xticklabels([str(b) for b in batches])
    if log_depth:
        ax.set_yticks(d)
        ax.set_yticklabels([str(v) for v in depths])
        ax.minorticks_off()
    finished = [r for r in records if r.get("status") in ("ok", "diverged")]
    if column_axis(finished) == "sub_batch":
        ax.set_xlabel(f"batch-norm statistics over sub-batches of size B (batch size {int(finished[0]['batch_size'])})")
    else:
        ax.set_xlabel("batch size B")
    ax.set_ylabel("depth L")
    curve = None
    if theory:
        activations = {r.get("activation", "relu") for r in records}
        if len(activations) != 1:
            raise BnsymInputError(f"the results mix activations {sorted(activations)}; plot one at a time")
        fine = np.unique(np.round(2 ** np.linspace(bx[0] - 0.5, bx[-1] + 0.5, theory_points)).astype(int))
        fine = fine[fine >= 4]  # B <= 3: the rate is 0 or infinite at eps = 0
        curve = theory_depths(activations.pop(), list(fine), eps=theory_eps, factor=factor)
        k = "e^16" if factor is None else f"{factor:g}"
        finite = np.isfinite(curve)
        ax.plot(np.log2(fine)[finite], np.array(curve)[finite], "w-", lw=2.5)
        ax.plot(np.log2(fine)[finite], np.array(curve)[finite], "r--", lw=1.5,
                label=f"theory: log(K)/log(lambda_G), K = {k}, eps = {theory_eps:g}")
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.1), fontsize=8, frameon=False)
        curve = dict(zip((int(b) for b in fine), curve))
    ax.set_ylim(dedges[0], dedges[-1])
    ax.set_title(title or protocol_title(finished or records), fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return curve


def run(args) -> int:
    from pathlib import Path

    path = Path(args.results)
    if not path.is_file():
        raise BnsymInputError(f"results file {path} does not exist")
    output = str(validation.output_file(args.output or path.with_suffix(".png"), name="--output"))
    if args.factor is not None and not (math.isfinite(args.factor) and args.factor > 1):
        raise BnsymInputError(f"--factor must be a finite number > 1 (the gradient growth of the theory curve), got {args.factor!r}")
    if not (math.isfinite(args.threshold) and 0 < args.threshold < 1):
        raise BnsymInputError(f"--threshold must be an accuracy strictly between 0 and 1, got {args.threshold!r}")
    records = sweep_records(path)
    curve = sweep_heatmap(records, output, factor=args.factor, theory_eps=args.theory_eps,
                          theory=not args.no_theory, title=args.title)
    print(f"wrote {output}")
    depths, batches, acc, _ = accuracy_table(records)
    print(f"measured boundary (test accuracy >= {args.threshold:g}): deepest trained depth / shallowest deeper failing depth")
    theory_at = {} if args.no_theory else dict(zip(batches, theory_depths(
        next(iter({r.get("activation", "relu") for r in records})), batches, eps=args.theory_eps, factor=args.factor)))
    for b, (deepest, failing) in measured_boundary(depths, batches, acc, args.threshold).items():
        line = f"  B={b}: {deepest if deepest is not None else '-'} / {failing if failing is not None else '-'}"
        if b in theory_at and math.isfinite(theory_at[b]):
            line += f"   theory {theory_at[b]:.1f}"
        print(line)
    if curve:
        print("theory trainable depth: " + ", ".join(
            f"B={b}: {'inf' if math.isinf(v) else f'{v:.1f}'}" for b, v in curve.items()))
    return 0


def sweep_records(path) -> list[dict]:
    """The training records of a results store, or of a JSON-lines file of an older sweep."""
    from pathlib import Path

    from bnsym.experiments.store import Store, is_store_file
    from bnsym.train.sweep import read_results

    if not is_store_file(path):
        records = read_results(path)
        if not records and Path(path).is_file() and Path(path).stat().st_size > 0:
            raise BnsymInputError(f"results file {str(path)!r} is neither a bnsym store nor a JSON-lines file of "
                                  "sweep records (no line is a JSON object with a depth)")
        return records
    with Store(path) as store:
        return store.rows("train")
