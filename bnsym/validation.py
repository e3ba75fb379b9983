"""Argument checks shared by the public entry points.

Each checker returns the normalised value or raises
:class:`~bnsym.errors.BnsymInputError` with a message that names the argument.
"""

from __future__ import annotations

import math
import numbers

import mpmath

from .errors import BnsymInputError

#: Largest number of significant digits the numerical engine promises.
MAX_DPS = 100


def batch_size(value, *, name: str = "batch_size", minimum: int = 2):
    """Return ``value`` as an ``int`` >= ``minimum`` or ``math.inf``."""
    if isinstance(value, bool):
        raise BnsymInputError(f"{name} must be an integer >= {minimum} or math.inf, got {value!r}")
    if isinstance(value, float) and math.isinf(value) and value > 0:
        return math.inf
    if isinstance(value, str) and value.strip().lower() in {"inf", "infinity", "oo"}:
        return math.inf
    if isinstance(value, numbers.Integral):
        ivalue = int(value)
    elif isinstance(value, (float, str)):
        try:
            fvalue = float(value)
        except ValueError:
            raise BnsymInputError(
                f"{name} must be an integer >= {minimum} or math.inf, got {value!r}"
            ) from None
        if math.isinf(fvalue) and fvalue > 0:
            return math.inf
        if not math.isfinite(fvalue) or fvalue != int(fvalue):
            raise BnsymInputError(f"{name} must be an integer >= {minimum} or math.inf, got {value!r}")
        ivalue = int(fvalue)
    else:
        raise BnsymInputError(f"{name} must be an integer >= {minimum} or math.inf, got {value!r}")
    if ivalue < minimum:
        raise BnsymInputError(f"{name} must be >= {minimum} (a batch needs two samples to normalise), got {ivalue}")
    return ivalue


def dps(value, *, name: str = "dps") -> int:
    """Return the requested number of significant digits, checked to lie in [1, MAX_DPS]."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        if isinstance(value, float) and value == int(value):
            value = int(value)
        else:
            raise BnsymInputError(f"{name} must be an integer between 1 and {MAX_DPS}, got {value!r}")
    value = int(value)
    if not 1 <= value <= MAX_DPS:
        raise BnsymInputError(f"{name} must be between 1 and {MAX_DPS}, got {value}")
    return value


def real(value, *, name: str, positive: bool = False, nonnegative: bool = False, nonzero: bool = False):
    """Return ``value`` as an ``mpmath.mpf`` after checking it is a finite real number.

    Strings are parsed by mpmath so that exact decimals such as ``"0.001"``
    keep every digit at high precision.
    """
    if isinstance(value, bool):
        raise BnsymInputError(f"{name} must be a finite real number, got {value!r}")
    try:
        if isinstance(value, (numbers.Real, str, mpmath.mpf)):
            # parse at the highest precision ever promised, so that "0.001"
            # keeps its decimal digits whatever dps is used later
            with mpmath.workdps(MAX_DPS + 30):
                x = mpmath.mpf(value)
        else:
            raise TypeError
    except (TypeError, ValueError):
        raise BnsymInputError(f"{name} must be a finite real number, got {value!r}") from None
    if not mpmath.isfinite(x):
        raise BnsymInputError(f"{name} must be finite, got {value!r}")
    if positive and not x > 0:
        raise BnsymInputError(f"{name} must be > 0, got {value!r}")
    if nonnegative and x < 0:
        raise BnsymInputError(f"{name} must be >= 0, got {value!r}")
    if nonzero and x == 0:
        raise BnsymInputError(f"{name} must be nonzero, got {value!r}")
    return x
