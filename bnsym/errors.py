"""Exceptions raised by bnsym.

Every refusal of bad input raises :class:`BnsymInputError` (a ``ValueError``)
whose message names the argument and what was expected, so that callers never
see a traceback from deep inside mpmath, sympy or numpy.
"""

from __future__ import annotations


class BnsymError(Exception):
    """Base class of every error bnsym raises on purpose."""


class BnsymInputError(BnsymError, ValueError):
    """An argument is outside the domain of the computation.

    The message names the argument and states what was expected.
    """


class PrecisionError(BnsymError, ArithmeticError):
    """The requested number of correct digits could not be reached.

    Raised instead of returning a value whose error estimate exceeds the
    promise made by ``dps``.
    """


class ActivationError(BnsymInputError):
    """An activation could not be parsed or lies outside the supported class."""
