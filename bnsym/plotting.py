"""Plotting at the edge of the package: matplotlib with a file-only backend.

May import anything below it; nothing in the engine, the witness or the trainer imports it
except lazily inside a function that draws a figure.
"""

from __future__ import annotations

from bnsym.errors import BnsymInputError


def pyplot():
    """matplotlib.pyplot with a file-only backend, or a clear error when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise BnsymInputError("plotting needs matplotlib: pip install 'bnsym[plots]'") from None
    return plt


def first_steps_figure(result, path, *, title=None) -> None:
    """Per-layer gradient norms after 0..k steps (log scale), saved to ``path``."""
    import numpy as np

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4))
    layers = np.arange(1, result.norms.shape[1] + 1)
    for s, row in enumerate(result.norms):
        ax.semilogy(layers, row, marker=".", label=f"after {s} step{'s' if s != 1 else ''} "
                    f"(range {result.dynamic_range[s]:.3g})")
    ax.set_xlabel("layer l")
    ax.set_ylabel("|dLoss / dW_l|")
    ax.set_title(title or "per-layer gradient norms")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
