"""The invariant subspaces of the symmetric group's action on B x B matrices (docs/theory.md section 6).

``G X G`` splits into its part on ``span{G}``, on ``L`` (matrices ``G diag(y) G``)
and on ``M`` (the rest).  Pure NumPy linear algebra, shared by the engine and the
Monte Carlo witness (it holds no mean-field mathematics).
"""

from __future__ import annotations

import numpy as np

from bnsym.errors import BnsymInputError


def subspace_parts(x: np.ndarray):
    """``(X_G, X_L, X_M)``: the parts of ``G X G`` on ``span{G}``, ``L`` and ``M`` (docs/theory.md section 6)."""
    b = x.shape[0]
    g = np.eye(b) - np.ones((b, b)) / b
    xg = g @ x @ g
    part_g = np.trace(xg) / (b - 1) * g
    d = np.diag(xg)
    y = (d - d.mean()) / (1 - 2 / b)
    part_l = g @ np.diag(y) @ g
    return part_g, part_l, xg - part_g - part_l


def subspace_index(subspace: str) -> int:
    """1 for ``"L"``, 2 for ``"M"`` (positions in :func:`subspace_parts`'s tuple)."""
    if subspace not in ("L", "M"):
        raise BnsymInputError(f"subspace must be 'L' or 'M', got {subspace!r}")
    return 1 if subspace == "L" else 2


def subspace_direction(batch_size: int, subspace: str) -> np.ndarray:
    """A unit-Frobenius-norm matrix in ``L`` (from ``v = (+1, -1, +1, ...)``) or ``M``
    (the ``M`` part of ``x y^T + y x^T`` for two orthogonal sign patterns; at ``B = 4``, where that
    part vanishes, of the matrix pairing inputs 1-2 and 3-4).  ``L`` needs ``B >= 3``, ``M`` ``B >= 4``
    (:class:`BnsymInputError` otherwise)."""
    b = int(batch_size)
    index = subspace_index(subspace)
    if b < (3 if index == 1 else 4):
        raise BnsymInputError(f"batch_size: the subspace {subspace} is empty at B = {b} (dimension "
                              f"{'B - 1 for B >= 3' if index == 1 else 'B (B - 3) / 2'})")
    if index == 1:
        seed = np.diag([(-1.0) ** i for i in range(b)])
    else:
        x = np.where(np.arange(b) < b // 2, 1.0, -1.0)
        y = np.array([(-1.0) ** i for i in range(b)])
        seed = np.outer(x, y) + np.outer(y, x)
        if b == 4:  # there x y^T + y x^T has no M part (the direction was NaN): pair inputs 1-2 and 3-4 instead
            seed = np.kron(np.eye(2), 1.0 - np.eye(2))
    part = subspace_parts(seed)[index]
    return part / np.linalg.norm(part)
