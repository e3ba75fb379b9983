"""The one result family of bnsym: a value, its error, and what the error means.

Every number bnsym returns, from the engine, the sampling estimators or the
finite-width simulator, is a :class:`Value` (or a subclass that adds the
settings and the context of that number):

* ``value``: the number (``mpmath.mpf`` from the engine, ``float`` from the witness);
* ``error``: its error, ``>= 0``;
* ``meaning``: what the error is, one of :data:`MEANINGS`:

  - ``"quadrature"``: an estimate of ``|value - exact|`` from two rule levels that agree
    (docs/theory.md section 11), propagated to first order through the formula;
  - ``"rounding"``: a bound on the rounding error of a closed form at the working precision;
  - ``"standard error"``: one standard error of a Monte Carlo mean (over samples or seeds).

:meth:`Value.interval` is the one interval of the family: ``value +- error`` for a
bound, ``value +- sigmas * error`` for a standard error.

:class:`Estimate` is the engine's working type: arithmetic propagates errors to first
order (``|d(xy)| <= |x| dy + |y| dx`` ...), which is how the error of a formula such
as lambda_G follows from the errors of the sphere expectations it is built from.
Exact numbers (ints, mpf) mix in with error 0.
"""

from __future__ import annotations

import math
from dataclasses import KW_ONLY, dataclass

import mpmath

#: The meanings an error can have (see the module docstring).
QUADRATURE, ROUNDING, STANDARD_ERROR = "quadrature", "rounding", "standard error"
MEANINGS = (QUADRATURE, ROUNDING, STANDARD_ERROR)


@dataclass(frozen=True)
class Value:
    """``value`` with its ``error`` (``>= 0``) and the ``meaning`` of that error."""

    value: object
    error: object
    _: KW_ONLY
    meaning: str = QUADRATURE

    def __float__(self) -> float:
        return float(self.value)

    def interval(self, sigmas: float = 3.0) -> tuple:
        """``(lo, hi)``: ``value +- sigmas * error`` for a standard error, ``value +- error`` for a bound."""
        half = self.error * sigmas if self.meaning == STANDARD_ERROR else self.error
        return (self.value - half, self.value + half)

    @property
    def stderr(self):
        """The standard error (``error`` when ``meaning`` is ``"standard error"``)."""
        if self.meaning != STANDARD_ERROR:
            raise AttributeError(f"this value's error is a {self.meaning} bound, not a standard error: use .error")
        return self.error

    @property
    def digits(self) -> float:
        """Number of correct significant digits implied by the error."""
        if self.error == 0 or not _finite(self.value) or self.value == 0:
            return math.inf if self.error == 0 else 0.0
        return float(-mpmath.log10(abs(mpmath.mpf(self.error) / mpmath.mpf(self.value))))

    def as_dict(self) -> dict:
        """``{"value", "error", "meaning"}`` with the numbers as floats (JSON-friendly)."""
        return {"value": float(self.value), "error": float(self.error), "meaning": self.meaning}


def _finite(x) -> bool:
    return bool(mpmath.isfinite(x)) if isinstance(x, mpmath.mpf) else math.isfinite(float(x))


@dataclass(frozen=True)
class Estimate(Value):
    """The engine's working value: mpf ``value`` with error estimate ``error``, and first-order arithmetic."""

    value: mpmath.mpf
    error: mpmath.mpf = mpmath.mpf(0)

    @staticmethod
    def of(x) -> "Estimate":
        """``x`` itself if it is an Estimate, else ``x`` as an exact Estimate (a rounding error of 0)."""
        return x if isinstance(x, Estimate) else Estimate(mpmath.mpf(x), mpmath.mpf(0), meaning=ROUNDING)

    def __add__(self, other):
        other = Estimate.of(other)
        return Estimate(self.value + other.value, self.error + other.error, meaning=combined_meaning(self, other))

    __radd__ = __add__

    def __sub__(self, other):
        other = Estimate.of(other)
        return Estimate(self.value - other.value, self.error + other.error, meaning=combined_meaning(self, other))

    def __rsub__(self, other):
        return Estimate.of(other) - self

    def __neg__(self):
        return Estimate(-self.value, self.error, meaning=self.meaning)

    def __mul__(self, other):
        other = Estimate.of(other)
        return Estimate(
            self.value * other.value,
            abs(self.value) * other.error + abs(other.value) * self.error + self.error * other.error,
            meaning=combined_meaning(self, other),
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
        return Estimate(self.value / other.value, error, meaning=combined_meaning(self, other))

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
        return Estimate(f(self.value), abs(df(self.value)) * self.error, meaning=self.meaning)

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


def combined_meaning(*values: Value) -> str:
    """The meaning of an error combined from several: a rounding bound only if every one is."""
    return ROUNDING if all(v.meaning == ROUNDING for v in values) else QUADRATURE


def rounding_error(value, working_dps: int):
    """``16 |value| 10^-working_dps``: sixteen units in the last place at the working precision.

    The error of a closed form evaluated at ``working_dps`` digits, and the floor of every
    quadrature error (two rule levels that agree exactly still carry their rounding).
    """
    return 16 * abs(mpmath.mpf(value)) * mpmath.mpf(10) ** (-working_dps)


def weighted_sum(weights, estimates) -> Estimate:
    """``sum w_i e_i`` for exact weights ``w_i`` and Estimates ``e_i``."""
    value = mpmath.fsum(w * e.value for w, e in zip(weights, estimates))
    error = mpmath.fsum(abs(w) * e.error for w, e in zip(weights, estimates))
    return Estimate(value, error)
