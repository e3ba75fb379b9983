r"""The batch-norm map ``B_phi`` and its Jacobian as sympy matrices (docs/theory.md section 1).

For a concrete batch size ``B`` and pre-activations ``h = (h_1, ..., h_B)``
(real symbols),

    G = I - 1 1^T / B,    S = sqrt(|G h|^2 + B eps),    N(h) = sqrt(B) G h / S,
    B_phi(h) = phi(gamma N(h) + beta),                 J = d B_phi / d h.

The structural facts of sections 1 and 5 are provided as *residuals*,
matrices that vanish identically when the fact holds:

* :func:`centring_residual`: ``J 1`` (centring: adding a constant to the
  batch changes nothing), for every ``eps``;
* :func:`scale_invariance_residual`: ``J h`` (Euler's relation for a map
  invariant to the scale of ``h``), at ``eps = 0`` only;
* :func:`normalization_jacobian_residual`: ``dN/dh - sqrt(B)/S (G - kappa^2 u u^T)``
  with ``u = G h / |G h|``, ``kappa = |G h| / S`` (``= sqrt(B)/|Gh| (G - u u^T)``
  at ``eps = 0``; the ``eps > 0`` form is the one :mod:`bnsym.numerics.backward` uses).

:func:`vanishes` proves a residual is zero: it writes ``S^2 = r^2`` with
``r > 0`` a symbol, takes the numerator over a common denominator, replaces
every non-polynomial factor (``phi'`` evaluated somewhere) by an independent
symbol, and reduces the numerator modulo ``r^2 - S^2``; the residual vanishes
identically iff that polynomial is 0 (sufficient condition; for these facts
also necessary).  Cost: polynomial arithmetic in ``B`` variables; a second or
so at ``B = 8``.
"""

from __future__ import annotations

import sympy as sp

from bnsym import validation
from bnsym.activations import x
from bnsym.errors import BnsymInputError
from bnsym.symbolic.expressions import symbolic_activation


def pre_activations(batch_size: int) -> sp.Matrix:
    """The column ``(h_1, ..., h_B)`` of real symbols."""
    b = _size(batch_size)
    return sp.Matrix(sp.symbols(f"h1:{b + 1}", real=True))


def centring(batch_size: int) -> sp.Matrix:
    """``G = I - 1 1^T / B``, the projection onto ``1^perp``."""
    b = _size(batch_size)
    return sp.eye(b) - sp.ones(b, b) / b


def _size(batch_size):
    if isinstance(batch_size, sp.Basic) and not batch_size.is_Integer:
        raise BnsymInputError(f"batch_size must be a concrete integer >= 2 for the batch-norm matrices, got {batch_size}")
    b = validation.batch_size(int(batch_size) if isinstance(batch_size, sp.Integer) else batch_size)
    if not isinstance(b, int):
        raise BnsymInputError(f"batch_size must be a finite integer >= 2 for the batch-norm matrices, got {batch_size}")
    return b


def _eps(eps):
    eps = sp.sympify(eps)
    if eps.is_number and (not eps.is_real or eps < 0):
        raise BnsymInputError(f"eps must be >= 0 (a number or a nonnegative symbol), got {eps}")
    return eps


def _h(batch_size, h):
    b = _size(batch_size)
    if h is None:
        return b, pre_activations(b)
    h = sp.Matrix(h)
    if h.shape != (b, 1):
        raise BnsymInputError(f"h must be a column of {b} entries, got shape {h.shape}")
    return b, h


def squared_scale(batch_size: int, eps=0, h=None) -> sp.Expr:
    """``S^2 = |G h|^2 + B eps``."""
    b, h = _h(batch_size, h)
    centred = centring(b) * h
    return sum((c**2 for c in centred), sp.Integer(0)) + b * _eps(eps)


def normalization(batch_size: int, eps=0, h=None) -> sp.Matrix:
    """``N(h) = sqrt(B) G h / sqrt(|G h|^2 + B eps)`` (the map without ``phi``, ``gamma``, ``beta``)."""
    b, h = _h(batch_size, h)
    return sp.sqrt(b) * centring(b) * h / sp.sqrt(squared_scale(b, eps, h))


def batchnorm_map(batch_size: int, activation="identity", eps=0, *, gamma=1, beta=0, h=None) -> sp.Matrix:
    r"""``B_phi(h) = phi(gamma N(h) + beta)`` as a ``B x 1`` sympy Matrix in the symbols ``h``.

    ``activation``: anything :func:`~bnsym.symbolic.expressions.symbolic_activation`
    accepts; ``eps``, ``gamma``, ``beta``: numbers or symbols; ``h``: the
    pre-activations (default :func:`pre_activations`).  Cost: ``O(B^2)``
    symbolic terms.

    >>> m = batchnorm_map(2)
    >>> sp.simplify(m[0] + m[1])
    0
    """
    phi = symbolic_activation(activation).expr
    b, h = _h(batch_size, h)
    z = sp.sympify(gamma) * normalization(b, eps, h) + sp.sympify(beta) * sp.ones(b, 1)
    return z.applyfunc(lambda t: phi.subs(x, t))


def jacobian(batch_size: int, activation="identity", eps=0, *, gamma=1, beta=0, h=None) -> sp.Matrix:
    """``J = d B_phi / d h`` (``B x B``), differentiated by sympy from :func:`batchnorm_map`."""
    b, h = _h(batch_size, h)
    symbolic_activation(activation).derivative  # refuses what sympy cannot differentiate
    return batchnorm_map(b, activation, eps, gamma=gamma, beta=beta, h=h).jacobian(h)


def normalization_jacobian(batch_size: int, eps=0, h=None) -> sp.Matrix:
    """``dN/dh``, differentiated by sympy."""
    b, h = _h(batch_size, h)
    return normalization(b, eps, h).jacobian(h)


def normalization_jacobian_claim(batch_size: int, eps=0, h=None) -> sp.Matrix:
    """The claimed closed form ``sqrt(B)/S (G - kappa^2 u u^T)``, ``u = G h/|G h|``, ``kappa = |G h|/S``.

    (``kappa^2 u u^T = G h h^T G / S^2``, so no ``|G h|`` appears on its own.)
    """
    b, h = _h(batch_size, h)
    g = centring(b)
    s2 = squared_scale(b, eps, h)
    centred = g * h
    return sp.sqrt(b) / sp.sqrt(s2) * (g - centred * centred.T / s2)


# ------------------------------------------------------------------ facts
def centring_residual(batch_size: int, activation="identity", eps=0, *, gamma=1, beta=0) -> sp.Matrix:
    """``J 1``: zero for every ``phi``, ``gamma``, ``beta`` and ``eps``."""
    b = _size(batch_size)
    return jacobian(b, activation, eps, gamma=gamma, beta=beta) * sp.ones(b, 1)


def scale_invariance_residual(batch_size: int, activation="identity", eps=0, *, gamma=1, beta=0) -> sp.Matrix:
    """``J h``: zero at ``eps = 0`` (``B_phi(c h) = B_phi(h)`` for ``c > 0``), not for ``eps > 0``."""
    b, h = _h(batch_size, None)
    return jacobian(b, activation, eps, gamma=gamma, beta=beta, h=h) * h


def normalization_jacobian_residual(batch_size: int, eps=0) -> sp.Matrix:
    """``dN/dh - sqrt(B)/S (G - kappa^2 u u^T)``: zero for every ``eps``."""
    b, h = _h(batch_size, None)
    return normalization_jacobian(b, eps, h) - normalization_jacobian_claim(b, eps, h)


def vanishes(residual, batch_size: int, eps=0) -> bool:
    """True when every entry of ``residual`` is identically zero (a proof, see the module docstring)."""
    b, h = _h(batch_size, None)
    s2 = squared_scale(b, eps, h)
    r = sp.Symbol("r", positive=True)
    for entry in sp.Matrix(residual):
        entry = entry.xreplace({s2: r**2})
        if entry.has(s2):  # pragma: no cover - the scale appeared in another form
            raise BnsymInputError("vanishes: the residual must be built from the same pre-activation symbols")
        opaque = {f: sp.Dummy() for f in entry.atoms(sp.Function, sp.Piecewise)}
        numerator = sp.numer(sp.together(entry.xreplace(opaque)))
        numerator = sp.expand(numerator)
        if numerator == 0:
            continue
        if sp.expand(sp.rem(numerator, r**2 - sp.expand(s2), r)) != 0:
            return False
    return True


def structural_facts(batch_size: int, activation="relu", eps=0, *, gamma=1, beta=0) -> dict:
    """``{fact: proven}`` for the three facts at this batch size (scale invariance only at ``eps = 0``)."""
    b = _size(batch_size)
    facts = {
        "J 1 = 0 (centring)": vanishes(centring_residual(b, activation, eps, gamma=gamma, beta=beta), b, eps),
        "dN/dh = sqrt(B)/S (G - kappa^2 u u^T)": vanishes(normalization_jacobian_residual(b, eps), b, eps),
    }
    if sp.sympify(eps) == 0:
        facts["J h = 0 (scale invariance)"] = vanishes(scale_invariance_residual(b, activation, 0, gamma=gamma, beta=beta), b)
    return facts
