"""Argument checks shared by the public entry points.

Each checker returns the normalised value or raises
:class:`~bnsym.errors.BnsymInputError` with a message that names the argument.
"""

from __future__ import annotations

import math
import numbers

import mpmath

from bnsym.errors import BnsymInputError

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
        if isinstance(value, float) and math.isfinite(value) and value.is_integer():
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
    except (TypeError, ValueError, ZeroDivisionError, ArithmeticError):
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


def integer(value, *, name: str, minimum: int = 0) -> int:
    """Return ``value`` as an ``int`` >= ``minimum``.

    The one rule for counts everywhere (depth, width, seeds, samples, ...):
    integers and integral floats (``8.0``) are accepted, ``bool``, strings,
    fractions and non-finite floats are refused.
    """
    if isinstance(value, bool) or not isinstance(value, (numbers.Integral, float)) or (
        isinstance(value, float) and not value.is_integer()
    ):
        raise BnsymInputError(f"{name} must be an integer >= {minimum}, got {value!r}")
    if int(value) < minimum:
        raise BnsymInputError(f"{name} must be >= {minimum}, got {value!r}")
    return int(value)


def finite_batch_size(value, *, name: str = "batch_size", minimum: int = 2, why: str = "") -> int:
    """:func:`batch_size` restricted to finite values (``why`` says what needs a finite batch)."""
    b = batch_size(value, name=name, minimum=minimum)
    if b == math.inf:
        reason = f" for {why}" if why else ""
        raise BnsymInputError(f"{name} must be finite{reason} (an integer >= {minimum}), got inf")
    return b


def real_float(value, *, name: str, **conditions) -> float:
    """:func:`real` as a Python ``float`` (for the NumPy code paths)."""
    return float(real(value, name=name, **conditions))


def network_parameters(gamma, beta, eps, sigma_w) -> dict:
    """The batch-norm network's parameters as floats: ``gamma != 0``, ``eps >= 0``, ``sigma_w > 0``."""
    return dict(
        gamma=real_float(gamma, name="gamma", nonzero=True),
        beta=real_float(beta, name="beta"),
        eps=real_float(eps, name="eps", nonnegative=True),
        sigma_w=real_float(sigma_w, name="sigma_w", positive=True),
    )


def seed(value):
    """A seed for :class:`numpy.random.SeedSequence`: a non-negative integer or a sequence of them."""
    import numpy as np

    if isinstance(value, np.random.Generator):
        return value
    try:
        np.random.SeedSequence(value)
    except (TypeError, ValueError):
        raise BnsymInputError(f"seed must be a non-negative integer or a sequence of them, got {value!r}") from None
    return value


def square_matrix(value, *, name: str, size=None):
    """A finite real ``B x B`` NumPy array, ``B >= 2`` (``size`` fixes ``B``)."""
    import numpy as np

    try:
        m = np.array(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise BnsymInputError(f"{name} must be a square matrix of real numbers") from None
    if m.ndim != 2 or m.shape[0] != m.shape[1] or m.shape[0] < 2:
        raise BnsymInputError(f"{name} must be a square B x B matrix with B >= 2, got shape {m.shape}")
    if size is not None and m.shape[0] != size:
        raise BnsymInputError(f"{name} must be {size} x {size} to match gram, got shape {m.shape}")
    if not np.all(np.isfinite(m)):
        raise BnsymInputError(f"{name} must be finite (it contains nan or inf)")
    return m


def symmetric_matrix(value, *, name: str, size=None):
    """:func:`square_matrix`, symmetric to 1e-10 relative, returned exactly symmetrised."""
    import numpy as np

    m = square_matrix(value, name=name, size=size)
    scale = max(np.abs(m).max(), np.finfo(float).tiny)
    if np.abs(m - m.T).max() > 1e-10 * scale:
        raise BnsymInputError(f"{name} must be symmetric (max |{name} - {name}^T| = {np.abs(m - m.T).max():.3g})")
    return (m + m.T) / 2


def gram_matrix(value, *, name: str, size=None):
    """:func:`symmetric_matrix`, positive semi-definite to 1e-10 relative."""
    import numpy as np

    m = symmetric_matrix(value, name=name, size=size)
    low = np.linalg.eigvalsh(m).min()
    if low < -1e-10 * max(np.abs(m).max(), np.finfo(float).tiny):
        raise BnsymInputError(f"{name} must be positive semi-definite (smallest eigenvalue {low:.3g})")
    return m


def batch_array(value, *, name: str):
    """A finite real NumPy array with the batch (size >= 2) on its last axis."""
    import numpy as np

    try:
        h = np.array(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise BnsymInputError(f"{name} must be an array of real numbers with the batch on the last axis") from None
    if h.ndim < 1 or h.shape[-1] < 2:
        raise BnsymInputError(f"{name} must have the batch (size >= 2) on its last axis, got shape {h.shape}")
    if not np.all(np.isfinite(h)):
        raise BnsymInputError(f"{name} must be finite (it contains nan or inf)")
    return h


def choice(value, *, name: str, options):
    """``value`` if it is one of the strings ``options``, else a one-line :class:`BnsymInputError`."""
    if not isinstance(value, str) or value not in options:
        raise BnsymInputError(f"{name} must be one of {', '.join(repr(o) for o in options)}, got {value!r}")
    return value


#: Figure formats the plotting commands write (matplotlib's Agg backend and its vector siblings).
FIGURE_SUFFIXES = (".png", ".pdf", ".svg")


def output_file(value, *, name: str, suffixes=FIGURE_SUFFIXES):
    """A path a command may write to, checked before any work: a suffix in ``suffixes``,
    an existing writable parent directory, and not itself a directory."""
    import os
    import pathlib

    path = pathlib.Path(os.fspath(value))
    if suffixes and path.suffix.lower() not in suffixes:
        raise BnsymInputError(f"{name} must end in {', '.join(suffixes)}, got {str(path)!r}")
    if path.is_dir():
        raise BnsymInputError(f"{name} is a directory, not a file: {str(path)!r}")
    parent = path.parent if str(path.parent) else pathlib.Path(".")
    if not parent.is_dir():
        raise BnsymInputError(f"{name}: the directory {str(parent)!r} does not exist")
    if not os.access(parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise BnsymInputError(f"{name}: {str(path)!r} is not writable")
    return path


def npy_array(value, *, name: str):
    """A real float64 array read from a ``.npy`` file, with one-line errors for unreadable,
    empty, truncated, pickled or complex files (complex parts are refused, never dropped)."""
    import numpy as np

    try:
        arr = np.load(value, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise BnsymInputError(f"{name}: cannot read {str(value)!r} as a .npy array ({str(exc) or type(exc).__name__})") from None
    if np.iscomplexobj(arr):
        raise BnsymInputError(f"{name}: {str(value)!r} holds complex numbers; a Gram matrix is real")
    try:
        return np.asarray(arr, dtype=np.float64)
    except (TypeError, ValueError):
        raise BnsymInputError(f"{name}: {str(value)!r} does not hold real numbers (dtype {arr.dtype})") from None
