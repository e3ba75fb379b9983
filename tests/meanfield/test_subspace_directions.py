"""bnsym.subspaces.subspace_direction: a unit direction inside the subspace it names, at every batch size
where that subspace is not empty (docs/theory.md section 6)."""

import numpy as np
import pytest

from bnsym.errors import BnsymInputError
from bnsym.subspaces import subspace_direction, subspace_parts


@pytest.mark.parametrize("b", [3, 4, 5, 6, 7, 8, 16, 33])
@pytest.mark.parametrize("subspace", ["L", "M"])
def test_the_direction_is_a_unit_matrix_of_its_subspace(b, subspace):
    """At B = 4 the M direction was NaN (the M part of its seed x y^T + y x^T vanishes there), so a
    Monte Carlo derivative along it was NaN too (found by results/audit_engine.py spectrum)."""
    if subspace == "M" and b < 4:
        with pytest.raises(BnsymInputError, match="empty at B = 3"):
            subspace_direction(b, subspace)
        return
    d = subspace_direction(b, subspace)
    assert np.all(np.isfinite(d)) and np.isclose(np.linalg.norm(d), 1, atol=1e-14)
    np.testing.assert_allclose(d, d.T, rtol=0, atol=1e-15)
    parts = subspace_parts(d)
    inside = parts[1 if subspace == "L" else 2]
    np.testing.assert_allclose(inside, d, atol=1e-14)


def test_empty_subspaces_are_refused():
    with pytest.raises(BnsymInputError, match="empty at B = 2"):
        subspace_direction(2, "L")
