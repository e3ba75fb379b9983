"""The high-precision NNGP path (``bnsym.kernel(..., dps=...)``, docs/theory.md section 14.4) against
independent references: the float64 path (a different parametrisation of the same double
integral, ``(w, rho)`` against ``(s, t)``, and other code), and, for the cross-block routine, the
duplicated pair ``[[A, A], [A, A]]``, whose cross block is the single-batch map ``V(A)`` by the
one-parameter Laplace formula (:func:`bnsym.meanfield.laplace.laplace_map`)."""

import mpmath
import numpy as np
import pytest

import bnsym
from bnsym.meanfield import joint
from bnsym.meanfield.laplace import laplace_map
from bnsym.meanfield.results import make_settings
from bnsym.errors import BnsymInputError
from bnsym.numerics import gaussian_kernels
from bnsym.numerics.gaussian_kernels import homogeneous_coefficients


@pytest.mark.slow
def test_high_precision_kernel_agrees_with_the_float_path():
    """ReLU, two batches of 4, one layer, 10 digits: within the float64 path's error, and the
    reported error meets the promise."""
    x = np.random.default_rng(3).standard_normal((8, 6))
    exact = bnsym.kernel("relu", x, 1, batch_size=4, dps=10)
    fast = bnsym.kernel("relu", x, 1, batch_size=4)
    assert exact.method == "two-parameter Laplace, mpmath" and isinstance(exact.value, mpmath.matrix)
    value = np.array(exact.value.tolist(), dtype=float)
    assert np.abs(value - fast.value).max() <= fast.error + 1e-10
    assert exact.error <= 1e-10 * np.abs(value).max()


@pytest.mark.slow
def test_propagate_of_several_batches_above_ten_digits():
    """``propagate`` with two batches of 4 at 11 digits (mpmath) against the float64 path at 10 digits,
    within the latter's error."""
    rng = np.random.default_rng(5)
    batches = [rng.standard_normal((4, 6)) for _ in range(2)]
    exact = bnsym.propagate("relu", batches, 1, dps=11)
    fast = bnsym.propagate("relu", batches, 1, dps=10)
    assert exact.method == "two-parameter Laplace, mpmath" and exact.grams_mp is not None
    assert np.abs(exact.grams[1] - fast.grams[1]).max() <= fast.errors[1] + 1e-11
    assert exact.errors[1] <= 1e-11 * np.abs(exact.grams[1]).max()


@pytest.mark.slow
def test_cross_block_of_a_duplicated_pair_is_the_single_batch_map():
    """The cross block of ``[[A, A], [A, A]]`` (``A = sigma_w^2 G Sigma G``) is ``V(Sigma)``: leaky ReLU
    (both slopes nonzero: the mixed orthant term), ``gamma = -1.3``, ``eps = 0.01``, 8 digits asked,
    compared with the one-parameter map to 1e-8 of the largest entry."""
    settings = make_settings("leaky_relu(0.2)", 4, gamma="-1.3", eps="0.01", dps=8)
    x = np.random.default_rng(4).standard_normal((4, 6))
    with mpmath.workdps(settings.working_dps):
        sigma = mpmath.matrix((x @ x.T / 6).tolist())
        g = mpmath.eye(4) - mpmath.ones(4, 4) / 4
        a = g * sigma * g
        pair = mpmath.matrix(8, 8)
        for u in (0, 1):
            for w in (0, 1):
                pair[u * 4:(u + 1) * 4, w * 4:(w + 1) * 4] = a
        coefficients = homogeneous_coefficients(settings.activation, settings.gamma)
        cross, error = joint.cross_block(coefficients, pair, batch_size=4, eps=settings.eps, dps=8,
                                         working_dps=settings.working_dps)
        single, _ = laplace_map(settings, sigma)
        largest = max(abs(single[i, j]) for i in range(4) for j in range(4))
        assert max(abs(cross[i][j] - single[i, j]) for i in range(4) for j in range(4)) <= 1e-8 * largest
        assert max(max(row) for row in error) <= 1e-8 * largest


def test_integer_orthant_is_the_hypergeometric_orthant_moment():
    """The finite Fourier sum of the high-precision path against the 2F1 form, degrees 0 to 4, 40 digits."""
    with mpmath.workdps(45):
        for alpha in range(5):
            for rho in ("-0.97", "-0.3", "0", "0.41", "0.999"):
                r = mpmath.mpf(rho)
                exact = gaussian_kernels.orthant_moment(mpmath.mpf(alpha), r)
                assert abs(gaussian_kernels.integer_orthant(alpha, r) - exact) <= mpmath.mpf(10) ** -40 * max(1, abs(exact))


def test_high_precision_bad_input():
    x = np.random.default_rng(3).standard_normal((8, 6))
    with pytest.raises(BnsymInputError, match="at most 60 digits"):
        bnsym.kernel("relu", x, 1, batch_size=4, dps=70)
    same = np.vstack([np.ones((4, 6)), x[:4]])
    with pytest.raises(BnsymInputError, match="inputs: a batch of the pair has identical rows"):
        bnsym.kernel("relu", same, 1, batch_size=4, dps=8, eps=0.1)
