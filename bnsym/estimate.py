"""A number with an error estimate, and first-order error propagation.

:class:`Estimate` carries ``value`` (an ``mpmath.mpf``) and ``error``, an
estimate of ``|value - exact|``.  Arithmetic propagates errors to first
order (``|d(xy)| <= |x| dy + |y| dx`` ...), which is how the error of a
formula such as lambda_G follows from the errors of the sphere expectations
it is built from.  Exact numbers (ints, mpf) mix in with error 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import mpmath


@dataclass(frozen=True)
class Estimate:
    """``value`` with absolute error estimate ``error`` (both mpf, error >= 0)."""

    value: mpmath.mpf
    error: mpmath.mpf = mpmath.mpf(0)

    @staticmethod
    def of(x) -> "Estimate":
        """``x`` itself if it is an Estimate, else ``x`` as an exact Estimate."""
        return x if isinstance(x, Estimate) else Estimate(mpmath.mpf(x), mpmath.mpf(0))

    def __add__(self, other):
        other = Estimate.of(other)
        return Estimate(self.value + other.value, self.error + other.error)

    __radd__ = __add__

    def __sub__(self, other):
        other = Estimate.of(other)
        return Estimate(self.value - other.value, self.error + other.error)

    def __rsub__(self, other):
        return Estimate.of(other) - self

    def __neg__(self):
        return Estimate(-self.value, self.error)

    def __mul__(self, other):
        other = Estimate.of(other)
        return Estimate(
            self.value * other.value,
            abs(self.value) * other.error + abs(other.value) * self.error + self.error * other.error,
        )

    __rmul__ = __mul__

    def __truediv__(self, other):
        other = Estimate.of(other)
        if other.value == 0:
            raise ZeroDivisionError("division by an estimate whose value is 0")
        if other.error >= abs(other.value):
            error = mpmath.inf
        else:
            error = (self.error + abs(self.value / other.value) * other.error) / (abs(other.value) - other.error)
        return Estimate(self.value / other.value, error)

    def __rtruediv__(self, other):
        return Estimate.of(other) / self

    def __pow__(self, k):
        if not isinstance(k, int) or k < 0:
            raise ValueError("only non-negative integer powers are supported")
        result = Estimate.of(1)
        for _ in range(k):
            result = result * self
        return result

    def apply(self, f, df) -> "Estimate":
        """``f(self)`` with error ``|f'(value)| * error`` (``df`` computes f')."""
        return Estimate(f(self.value), abs(df(self.value)) * self.error)

    @property
    def relative_error(self):
        """``error / |value|`` (``inf`` when the value is 0 and the error is not)."""
        if self.value == 0:
            return mpmath.mpf(0) if self.error == 0 else mpmath.inf
        return self.error / abs(self.value)

    def __float__(self):
        return float(self.value)

    def __repr__(self):
        return f"Estimate({mpmath.nstr(self.value, 20)} ± {mpmath.nstr(self.error, 3)})"


def weighted_sum(weights, estimates) -> Estimate:
    """``sum w_i e_i`` for exact weights ``w_i`` and Estimates ``e_i``."""
    value = mpmath.fsum(w * e.value for w, e in zip(weights, estimates))
    error = mpmath.fsum(abs(w) * e.error for w, e in zip(weights, estimates))
    return Estimate(value, error)
