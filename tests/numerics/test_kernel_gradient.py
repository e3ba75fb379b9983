"""The partial derivatives of the two-point kernel of a positively homogeneous activation
(:func:`bnsym.numerics.gaussian_kernels.homogeneous_kernel_gradient`: Price's theorem and Euler's
relation) against mpmath's numerical differentiation of the kernel itself."""

import mpmath
import pytest

from bnsym.numerics.gaussian_kernels import homogeneous_kernel, homogeneous_kernel_gradient


@pytest.mark.parametrize("coefficients", [("1", "0", "1"), ("1", "0.2", "1"), ("2", "-1", "2"), ("1", "0", "1.5"),
                                          ("0.7", "1.3", "3")])
@pytest.mark.parametrize("k_ab", ["-0.4", "0.05", "0.9"])
def test_gradient_is_the_derivative_of_the_kernel(coefficients, k_ab):
    """Each partial derivative to 1e-25 (30 digits, a point with correlation from -0.4 to 0.95)."""
    with mpmath.workdps(30):
        c = tuple(mpmath.mpf(x) for x in coefficients)
        a, b, ab = mpmath.mpf("1.3"), mpmath.mpf("0.7"), mpmath.mpf(k_ab)
        _, d_aa, d_bb, d_ab = homogeneous_kernel_gradient(c, a, b, ab)
        numeric = (mpmath.diff(lambda x: homogeneous_kernel(c, x, b, ab), a),
                   mpmath.diff(lambda x: homogeneous_kernel(c, a, x, ab), b),
                   mpmath.diff(lambda x: homogeneous_kernel(c, a, b, x), ab))
        for exact, approx in zip((d_aa, d_bb, d_ab), numeric):
            assert abs(exact - approx) <= mpmath.mpf(10) ** -25 * max(1, abs(approx))


def test_a_zero_variance_gives_zero():
    """An input equal to its batch mean (``z_a = 0`` almost surely): value and gradient 0, the
    convention of :func:`homogeneous_kernel` (exact for degree 2, where ``phi'(0) = 0``)."""
    one, zero = mpmath.mpf(1), mpmath.mpf(0)
    for alpha in (1, 2):
        assert homogeneous_kernel_gradient((one, zero, mpmath.mpf(alpha)), zero, one, zero) == (0, 0, 0, 0)
