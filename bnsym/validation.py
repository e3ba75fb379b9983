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
#: Longest echo of a refused value in a message (a 400-digit integer or an array is not repeated whole).
SHOWN_CHARACTERS = 60


def _shown(value) -> str:
    """``repr(value)`` for a message: on one line (a multi-line repr's whitespace collapsed), at most
    :data:`SHOWN_CHARACTERS` characters (longer ones cut, with their length), an array by its shape,
    and something short when the repr itself fails (an integer past Python's 4300-digit limit)."""
    try:
        shape = tuple(getattr(value, "shape", None) or ())
    except Exception:  # noqa: BLE001 - an odd .shape: the value is shown by its repr below
        shape = ()
    if shape:
        return f"an array of shape {shape}"
    try:
        text = repr(value)
    except Exception:  # noqa: BLE001 - the message must still be the refusal, not this error
        return f"an integer of {value.bit_length()} bits" if isinstance(value, int) else f"a {type(value).__name__}"
    if "\n" in text:
        text = " ".join(text.split())
    if len(text) <= SHOWN_CHARACTERS:
        return text
    suffix = f"... ({len(text)} characters)"
    return text[:SHOWN_CHARACTERS - len(suffix)] + suffix


def batch_size(value, *, name: str = "batch_size", minimum: int = 2):
    """Return ``value`` as an ``int`` >= ``minimum`` or ``math.inf``."""
    if isinstance(value, bool):
        raise BnsymInputError(f"{name} must be an integer >= {minimum} or math.inf, got {_shown(value)}")
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
                f"{name} must be an integer >= {minimum} or math.inf, got {_shown(value)}"
            ) from None
        if math.isinf(fvalue) and fvalue > 0:
            return math.inf
        if not math.isfinite(fvalue) or fvalue != int(fvalue):
            raise BnsymInputError(f"{name} must be an integer >= {minimum} or math.inf, got {_shown(value)}")
        ivalue = int(fvalue)
    else:
        raise BnsymInputError(f"{name} must be an integer >= {minimum} or math.inf, got {_shown(value)}")
    if ivalue < minimum:
        raise BnsymInputError(f"{name} must be >= {minimum} (a batch needs two samples to normalise), got {ivalue}")
    return ivalue


def dps(value, *, name: str = "dps") -> int:
    """Return the requested number of significant digits, checked to lie in [1, MAX_DPS]."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        if isinstance(value, float) and math.isfinite(value) and value.is_integer():
            value = int(value)
        else:
            raise BnsymInputError(f"{name} must be an integer between 1 and {MAX_DPS}, got {_shown(value)}")
    value = int(value)
    if not 1 <= value <= MAX_DPS:
        raise BnsymInputError(f"{name} must be between 1 and {MAX_DPS}, got {_shown(value)}")
    return value


def real(value, *, name: str, positive: bool = False, nonnegative: bool = False, nonzero: bool = False):
    """Return ``value`` as an ``mpmath.mpf`` after checking it is a finite real number.

    Strings are parsed by mpmath so that exact decimals such as ``"0.001"``
    keep every digit at high precision.
    """
    if isinstance(value, bool):
        raise BnsymInputError(f"{name} must be a finite real number, got {_shown(value)}")
    try:
        if isinstance(value, (numbers.Real, str, mpmath.mpf)):
            # parse at the highest precision ever promised, so that "0.001"
            # keeps its decimal digits whatever dps is used later
            with mpmath.workdps(MAX_DPS + 30):
                x = mpmath.mpf(_exact(value))
        else:
            raise TypeError
    except (TypeError, ValueError, ZeroDivisionError, ArithmeticError):
        raise BnsymInputError(f"{name} must be a finite real number, got {_shown(value)}") from None
    if not mpmath.isfinite(x):
        raise BnsymInputError(f"{name} must be finite, got {_shown(value)}")
    if positive and not x > 0:
        raise BnsymInputError(f"{name} must be > 0, got {_shown(value)}")
    if nonnegative and x < 0:
        raise BnsymInputError(f"{name} must be >= 0, got {_shown(value)}")
    if nonzero and x == 0:
        raise BnsymInputError(f"{name} must be nonzero, got {_shown(value)}")
    return x


def _exact(value):
    """``value`` in a form mpmath takes, without rounding: NumPy integers as ``int``, other reals such as
    ``np.float32``, ``np.longdouble`` and fractions as the quotient of their integer ratio at the current
    precision (exact for binary floats; mpmath takes none of these itself)."""
    if isinstance(value, (int, float, str, mpmath.mpf)):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if hasattr(value, "as_integer_ratio"):
        try:
            p, q = value.as_integer_ratio()
        except (OverflowError, ValueError):  # inf, nan: refused by the caller as not finite
            return float(value)
        return mpmath.mpf(int(p)) / int(q)
    return float(value)


def integer(value, *, name: str, minimum: int = 0) -> int:
    """Return ``value`` as an ``int`` >= ``minimum``.

    The one rule for counts everywhere (depth, width, seeds, samples, ...):
    integers and integral floats (``8.0``) are accepted, ``bool``, strings,
    fractions and non-finite floats are refused.
    """
    if isinstance(value, bool) or not isinstance(value, (numbers.Integral, float)) or (
        isinstance(value, float) and not value.is_integer()
    ):
        raise BnsymInputError(f"{name} must be an integer >= {minimum}, got {_shown(value)}")
    if int(value) < minimum:
        raise BnsymInputError(f"{name} must be >= {minimum}, got {_shown(value)}")
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


def interval(value, *, name: str, low, high, low_open: bool = False, high_open: bool = False) -> float:
    """Return ``value``, a number (not a string: the trainer's Python arguments), as a ``float`` after checking
    that it lies in the interval from ``low`` to ``high`` (open at an end where ``low_open`` / ``high_open``;
    ``math.inf`` for no bound; the check is on the exact value, not its rounding) and that float64 holds it:
    the one rule for the trainer's bounded parameters (learning rate, momentum, decay, eps, ...)."""
    if isinstance(value, str):
        raise BnsymInputError(f"{name} must be a number, got the string {_shown(value)}")
    x = real(value, name=name)
    if not ((x > low if low_open else x >= low) and (x < high if high_open else x <= high)):
        lo, hi = ("(" if low_open else "["), (")" if high_open else "]")
        raise BnsymInputError(f"{name} must be a number in {lo}{low}, {high}{hi}, got {_shown(value)}")
    if not math.isfinite(float(x)):
        raise BnsymInputError(f"{name} must be a number that float64 holds (below about 1.8e308), got {_shown(value)}")
    return float(x)


def network_parameters(gamma, beta, eps, sigma_w) -> dict:
    """The batch-norm network's parameters as floats: ``gamma != 0``, ``eps >= 0``, ``sigma_w > 0``."""
    return {
        "gamma": real_float(gamma, name="gamma", nonzero=True),
        "beta": real_float(beta, name="beta"),
        "eps": real_float(eps, name="eps", nonnegative=True),
        "sigma_w": real_float(sigma_w, name="sigma_w", positive=True),
    }


def seed(value):
    """A seed for :class:`numpy.random.SeedSequence`: a non-negative integer or a sequence of them."""
    import numpy as np

    if isinstance(value, np.random.Generator):
        return value
    try:
        np.random.SeedSequence(value)
    except (TypeError, ValueError):
        raise BnsymInputError(f"seed must be a non-negative integer or a sequence of them, got {_shown(value)}") from None
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
        raise BnsymInputError(f"{name} must be one of {', '.join(repr(o) for o in options)}, got {_shown(value)}")
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


#: Most points one axis of a grid may hold (a typo such as ``0:1:1e9`` is refused, not allocated).
MAX_AXIS_POINTS = 100_000


def number_axis(value, *, name: str) -> list:
    """One axis of a grid as exact decimal strings: ``"a:b:n"`` (``n`` points from ``a`` to ``b``
    inclusive, evenly spaced), a comma list ``"0.1,0.5,1"``, a single number, or a sequence of numbers.

    Refused with one line naming ``name``: non-numbers, non-finite values, ``n`` not an integer
    in ``[1, MAX_AXIS_POINTS]``, a zero step (``a == b`` with ``n > 1``, or ``n = 1`` with
    ``a != b``), and an axis with no values.  Duplicates are dropped (first kept).  Points are
    computed in 40-digit decimal arithmetic: exact when they are decimals of at most 40 digits
    (``0.05:2:40`` gives ``0.05, 0.1, ..., 2``), else rounded to 40 significant digits.
    """
    import decimal

    def number(text):
        try:
            d = decimal.Decimal(str(text).strip())
        except (decimal.InvalidOperation, ValueError):
            raise BnsymInputError(f"{name}: expected a number, got {str(text).strip()!r}") from None
        if not d.is_finite():
            raise BnsymInputError(f"{name}: values must be finite, got {str(text).strip()!r}")
        return d

    if isinstance(value, bool) or value is None:
        raise BnsymInputError(f"{name} must be a range 'a:b:n', a comma list or numbers, got {_shown(value)}")
    def text_of(v):  # floats (NumPy's too) by their shortest repr, so 0.1 stays "0.1"
        if isinstance(v, numbers.Real) and not isinstance(v, (numbers.Integral, bool)):
            return repr(float(v))
        return v

    if isinstance(value, (list, tuple)):
        points = [number(text_of(v)) for v in value]
    elif isinstance(value, numbers.Real):
        points = [number(text_of(value))]
    elif isinstance(value, str) and value.count(":") == 2:
        a_text, b_text, n_text = value.split(":")
        a, b = number(a_text), number(b_text)
        try:
            n = int(n_text.strip())
        except ValueError:
            raise BnsymInputError(f"{name}: the point count n of 'a:b:n' must be an integer, got {n_text.strip()!r}") from None
        if not 1 <= n <= MAX_AXIS_POINTS:
            raise BnsymInputError(f"{name}: the point count n of 'a:b:n' must be between 1 and {MAX_AXIS_POINTS}, got {n}")
        if (a == b) != (n == 1):
            raise BnsymInputError(f"{name}: range {_shown(value)} has a zero step (a == b needs n = 1, n = 1 needs a == b)")
        with decimal.localcontext() as ctx:
            ctx.prec = 40
            points = [a] if n == 1 else [a + (b - a) * k / (n - 1) for k in range(n)]
    elif isinstance(value, str) and ":" not in value:
        points = [number(v) for v in value.split(",") if v.strip()]
    else:
        raise BnsymInputError(f"{name} must be a range 'a:b:n' or a comma list of numbers, got {_shown(value)}")
    if not points:
        raise BnsymInputError(f"{name}: no values given (an empty axis makes an empty grid)")
    texts = []
    with decimal.localcontext() as ctx:
        ctx.prec = 40
        for p in points:
            p = p.normalize()
            text = format(p, "f") if abs(p.adjusted()) < 30 else str(p)
            if text not in texts:
                texts.append(text)
    return texts


def batch_axis(value, *, name: str = "batch_size") -> list:
    """The batch-size axis of a grid: a comma list of integers >= 2 or ``inf`` (``"8,32,inf"``),
    a range ``"a:b:n"`` whose points are all integers (see :func:`number_axis`), an integer,
    or a sequence; each value checked by :func:`batch_size`, duplicates dropped."""
    if isinstance(value, str) and ":" not in value:
        items = [v.strip() for v in value.split(",") if v.strip()]
        if not items:
            raise BnsymInputError(f"{name}: no values given (an empty axis makes an empty grid)")
    elif isinstance(value, (list, tuple)):
        items = list(value)
        if not items:
            raise BnsymInputError(f"{name}: no values given (an empty axis makes an empty grid)")
    elif isinstance(value, str) or (isinstance(value, numbers.Integral) and not isinstance(value, bool)):
        items = number_axis(value, name=name) if isinstance(value, str) else [value]
    else:
        raise BnsymInputError(f"{name} must be a comma list or range of batch sizes, got {_shown(value)}")
    out = []
    for item in items:
        b = batch_size(item, name=name)
        if b not in out:
            out.append(b)
    return out


def kernel_inputs(value, *, name: str = "inputs", batch_size: int):
    """Inputs of a kernel: an ``(M, d)`` array (``M`` a multiple of ``batch_size``, consecutive rows a
    batch) or a list of ``(batch_size, d)`` arrays; finite reals.  Returns the ``(M, d)`` float64 array."""
    import numpy as np

    if isinstance(value, (list, tuple)) and value and all(np.ndim(v) == 2 for v in value):
        shapes = {np.shape(v) for v in value}
        if len({s[0] for s in shapes}) > 1:
            raise BnsymInputError(f"{name}: the batches must all have batch_size = {batch_size} rows, got sizes {sorted({s[0] for s in shapes})}")
        if len({s[1] for s in shapes}) > 1:
            raise BnsymInputError(f"{name}: the batches must all have the same input dimension, got {sorted({s[1] for s in shapes})}")
        try:
            value = np.concatenate([np.asarray(v, dtype=np.float64) for v in value], axis=0)
        except (TypeError, ValueError):
            raise BnsymInputError(f"{name} must hold arrays of real numbers") from None
    try:
        x = np.array(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise BnsymInputError(f"{name} must be an (M, d) array of real numbers or a list of (batch_size, d) arrays") from None
    if x.ndim != 2 or x.shape[0] < 1 or x.shape[1] < 1:
        raise BnsymInputError(f"{name} must be an (M, d) array (one input per row) or a list of batches, got shape {x.shape}")
    if x.shape[0] % batch_size:
        raise BnsymInputError(f"{name}: M = {x.shape[0]} rows is not a multiple of batch_size = {batch_size}")
    if not np.all(np.isfinite(x)):
        raise BnsymInputError(f"{name} must be finite (it contains nan or inf)")
    return x


def constant_batch(blocks):
    """The index of the first of ``blocks`` (each batch's own ``B x B`` Gram block ``Sigma_pp``, float64)
    whose centred block ``G Sigma_pp G`` is zero, else ``None``: every input of that batch is the same up
    to a constant, and batch norm divides by zero at ``eps = 0``.  Zero means at most ``1e-12`` of the
    block's largest entry."""
    import numpy as np

    for p, block in enumerate(blocks):
        centred = block - block.mean(axis=0)[None, :] - block.mean(axis=1)[:, None] + block.mean()
        if np.abs(centred).max() <= 1e-12 * max(float(np.abs(block).max()), 1e-300):
            return p
    return None


def network_address(value, *, name: str) -> tuple:
    """``(address, host, port)`` of a server address such as ``tcp://10.0.0.1:8786`` or ``host:8786``
    (schemes ``tcp``, ``tls``, ``ws``, ``wss``; port 1..65535; IPv6 hosts in brackets)."""
    import re

    match = re.fullmatch(r"(?:(tcp|tls|ws|wss)://)?(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9_.-]+):([0-9]{1,5})", str(value).strip()) \
        if isinstance(value, str) else None
    if match is None or not 1 <= int(match.group(3)) <= 65535:
        raise BnsymInputError(f"{name} must be an address such as tcp://127.0.0.1:8786, got {_shown(value)}")
    scheme = match.group(1) or "tcp"
    return f"{scheme}://{match.group(2)}:{match.group(3)}", match.group(2).strip("[]"), int(match.group(3))
