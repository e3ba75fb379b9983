"""Activation functions: the catalogue of named activations, the safe parser of expressions in ``x``,
and the analysis (kinks, homogeneity, growth) every engine layer relies on.

Modules: :mod:`~bnsym.activations.catalogue` (``NAMES``, aliases, SELU constants),
:mod:`~bnsym.activations.parsing` (the whitelist parser and its limits),
:mod:`~bnsym.activations.analysis` (pieces, kinks, growth, homogeneity),
:mod:`~bnsym.activations.expression` (``Activation`` and ``activation()``),
:mod:`~bnsym.activations.special` (vectorised float64 ``erf``/``erfc`` for the NumPy evaluation).

May import: :mod:`bnsym.errors`, :mod:`bnsym.validation`, sympy, mpmath, numpy.
Imported by every other layer; imports none of them.
"""

from bnsym.activations.analysis import Piece
from bnsym.activations.catalogue import NAMES, x
from bnsym.activations.expression import Activation, activation

__all__ = ["NAMES", "Activation", "Piece", "activation", "x"]
