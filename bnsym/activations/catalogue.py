"""The catalogue of named activations: :data:`NAMES`, their aliases and the SELU constants.

Every entry of :data:`NAMES` maps a lowercase name to ``(builder, defaults,
description)``: ``builder(**parameters)`` returns the sympy expression of
``phi`` in the real symbol :data:`x`, ``defaults`` maps each parameter name
to its default value, and ``description`` is one line for help texts.
"""

from __future__ import annotations

import sympy as sp

#: The real variable every activation is written in.
x = sp.Symbol("x", real=True)

#: The self-normalizing constants of Klambauer et al. (2017), exact.
SELU_ALPHA = -sp.sqrt(2 / sp.pi) / (sp.erfc(1 / sp.sqrt(2)) * sp.exp(sp.Rational(1, 2)) - 1)
SELU_SCALE = (
    (1 - sp.erfc(1 / sp.sqrt(2)) * sp.sqrt(sp.E))
    * sp.sqrt(2 * sp.pi)
    / sp.sqrt(
        2 * sp.erfc(sp.sqrt(2)) * sp.E**2
        + sp.pi * sp.erfc(1 / sp.sqrt(2)) ** 2 * sp.E
        - 2 * (2 + sp.pi) * sp.erfc(1 / sp.sqrt(2)) * sp.sqrt(sp.E)
        + sp.pi
        + 2
    )
)


def _elu(alpha):
    return sp.Piecewise((x, x > 0), (alpha * (sp.exp(x) - 1), True))


#: name -> (builder taking parameters, default parameters, one-line description)
NAMES = {
    "identity": (lambda: x, {}, "x"),
    "relu": (lambda: sp.Max(0, x), {}, "max(0, x)"),
    "leaky_relu": (
        lambda slope: sp.Piecewise((x, x > 0), (slope * x, True)),
        {"slope": sp.Rational(1, 100)},
        "x for x > 0, slope*x otherwise (default slope 0.01)",
    ),
    "relu_power": (
        lambda exponent: sp.Max(0, x) ** exponent,
        {"exponent": 2},
        "max(0, x)**exponent (default exponent 2)",
    ),
    "abs": (lambda: sp.Abs(x), {}, "|x|"),
    "tanh": (lambda: sp.tanh(x), {}, "tanh(x)"),
    "erf": (lambda: sp.erf(x), {}, "erf(x)"),
    "gelu": (lambda: x * (1 + sp.erf(x / sp.sqrt(2))) / 2, {}, "x * Phi(x), Phi the standard normal CDF"),
    "silu": (lambda: x / (1 + sp.exp(-x)), {}, "x * sigmoid(x) (swish)"),
    "sigmoid": (lambda: 1 / (1 + sp.exp(-x)), {}, "1 / (1 + exp(-x))"),
    "softplus": (lambda: sp.log(1 + sp.exp(x)), {}, "log(1 + exp(x))"),
    "elu": (_elu, {"alpha": 1}, "x for x > 0, alpha*(exp(x) - 1) otherwise (default alpha 1)"),
    "selu": (
        lambda: SELU_SCALE * _elu(SELU_ALPHA),
        {},
        "scale * elu_alpha(x) with the self-normalizing constants of Klambauer et al. (2017)",
    ),
    "sin": (lambda: sp.sin(x), {}, "sin(x)"),
}

#: Other spellings of names in :data:`NAMES` (lowercase).
ALIASES = {"linear": "identity", "swish": "silu", "lrelu": "leaky_relu", "leakyrelu": "leaky_relu"}


def canonical_name(name):
    """The key of :data:`NAMES` that ``name`` spells (any case, aliases allowed), or ``None``.

    Domain: any object (non-strings give ``None``).  Cost: one dict lookup.

    >>> canonical_name("Swish")
    'silu'
    """
    if not isinstance(name, str):
        return None
    key = ALIASES.get(name.lower(), name.lower())
    return key if key in NAMES else None
