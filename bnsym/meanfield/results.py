"""Settings and result objects of the public API.

Every result is a frozen dataclass that holds its value as an
``mpmath.mpf``, an error estimate (``error``: an estimate of
``|value - exact|``), and the :class:`Settings` that produced it.
``float(result)`` gives the value as a Python float.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import mpmath
import numpy as np

from bnsym import validation
from bnsym.errors import BnsymInputError
from bnsym.estimate import Value
from bnsym.text import number_text, settings_line
from bnsym.activations import Activation, activation as as_activation
from bnsym.numerics.moments import METHODS


@dataclass(frozen=True)
class Settings:
    """The inputs of a mean-field computation, validated and normalised."""

    activation: Activation
    batch_size: object  # int >= 2 or math.inf
    gamma: mpmath.mpf
    beta: mpmath.mpf
    eps: mpmath.mpf
    sigma_w: mpmath.mpf
    dps: int
    method: str = "auto"

    @property
    def working_dps(self) -> int:
        """Digits carried internally: ``dps`` plus guard digits (more for large B)."""
        guard = 10 if self.batch_size == math.inf else 10 + int(math.log10(self.batch_size))
        return self.dps + guard

    def as_dict(self) -> dict:
        """JSON-friendly view (numbers as strings at ``dps`` digits)."""
        return {
            "activation": self.activation.label,
            "batch_size": "inf" if self.batch_size == math.inf else self.batch_size,
            "gamma": number_text(self.gamma, self.dps),
            "beta": number_text(self.beta, self.dps),
            "eps": number_text(self.eps, self.dps),
            "sigma_w": number_text(self.sigma_w, self.dps),
            "dps": self.dps,
            "method": self.method,
        }

    def __repr__(self) -> str:
        d = self.as_dict()
        shown = ", ".join(f"{k}={v!r}" if k in ("activation", "method") else f"{k}={v}" for k, v in d.items())
        return f"Settings({shown})"

    def line(self, *, detail: str = "", digits: bool = True) -> str:
        """One line for the head of a result's text: ``"tanh, B = 8, gamma = 1, beta = 0, eps = 0,
        sigma_w = 1  (15 digits, quadrature)"`` (``detail``, here ``"quadrature"``, after the digits;
        ``digits=False`` for a result that promises none: float64, sampled)."""
        return settings_line(self.as_dict(), detail=detail, digits=digits)


def make_settings(activation, batch_size, *, gamma=1, beta=0, eps=0, sigma_w=1, dps=15, method="auto") -> Settings:
    """Validate the common arguments of the public API and return :class:`Settings`.

    Raises :class:`~bnsym.errors.BnsymInputError` naming the bad argument.
    """
    act = as_activation(activation)
    b = validation.batch_size(batch_size)
    digits = validation.dps(dps)
    g = validation.real(gamma, name="gamma", nonzero=True)
    be = validation.real(beta, name="beta")
    e = validation.real(eps, name="eps", nonnegative=True)
    sw = validation.real(sigma_w, name="sigma_w", positive=True)
    if method not in METHODS:
        from bnsym.errors import BnsymInputError

        raise BnsymInputError(f"method must be one of {', '.join(repr(m) for m in METHODS)}, got {method!r}")
    return Settings(act, b, g, be, e, sw, digits, method)


@dataclass(frozen=True)
class Quantity(Value):
    """A scalar engine result: ``value`` (mpf), ``error`` (mpf), ``settings`` (and ``meaning``,
    :data:`bnsym.estimate.QUADRATURE` or :data:`~bnsym.estimate.ROUNDING` for a closed form)."""

    value: mpmath.mpf
    error: mpmath.mpf
    settings: Settings = field(repr=False)  # an attribute; a composite result's repr would repeat it per value

    def __str__(self) -> str:
        return mpmath.nstr(self.value, self.settings.dps)


@dataclass(frozen=True)
class FixedPoint(Quantity):
    """The BSB1 fixed point ``Sigma* = (q* - c*) I + c* 1 1^T``.

    ``value``/``error`` are ``q*`` and its error (so ``float(result)`` is
    ``q*``); ``c``/``c_error`` the off-diagonal entry; ``spread`` is
    ``q* - c*`` computed without cancellation; ``scale`` is the variance of
    the centred pre-activations, ``sigma_w^2 (q* - c*)``, which matters when
    ``eps > 0``; ``method`` says how the expectations were evaluated; ``regime`` is
    ``"nondegenerate"`` or, past the critical eps (docs/theory.md section 15),
    ``"degenerate"``: ``G Sigma* G = 0`` and ``q* = c* = phi(beta)^2``.
    """

    c: mpmath.mpf = mpmath.mpf(0)
    c_error: mpmath.mpf = mpmath.mpf(0)
    spread: mpmath.mpf = mpmath.mpf(0)
    spread_error: mpmath.mpf = mpmath.mpf(0)
    method: str = ""
    iterations: int = 0
    regime: str = "nondegenerate"

    @property
    def q(self) -> mpmath.mpf:
        """``q*``, the diagonal entry."""
        return self.value

    @property
    def q_error(self) -> mpmath.mpf:
        return self.error

    @property
    def correlation(self) -> mpmath.mpf:
        """``c* / q*``."""
        return self.c / self.value

    @property
    def scale(self) -> mpmath.mpf:
        """``sigma_w^2 (q* - c*)``."""
        return self.settings.sigma_w**2 * self.spread

    def matrix(self):
        """``Sigma*`` as an ``mpmath.matrix`` (finite batch sizes up to 4096)."""
        b = self.settings.batch_size
        if b == math.inf or b > 4096:
            raise BnsymInputError(f"the fixed-point matrix is only formed for finite batch sizes up to 4096, got B = {b}")
        return mpmath.matrix([[self.value if i == j else self.c for j in range(b)] for i in range(b)])

    def array(self) -> np.ndarray:
        """``Sigma* = (q* - c*) I + c* 1 1^T`` as a float64 NumPy array (finite batch sizes)."""
        b = self.settings.batch_size
        if b == math.inf:
            raise BnsymInputError("the fixed-point matrix is only formed for finite batch sizes, got B = inf")
        return np.full((b, b), float(self.c)) + np.eye(b) * float(self.spread)

    def __str__(self) -> str:
        d = self.settings.dps
        c = mpmath.mpf(0) if abs(self.c) <= self.c_error else self.c  # below its error: shown as 0
        return f"q* = {mpmath.nstr(self.value, d)}, c* = {mpmath.nstr(c, d)}"


@dataclass(frozen=True)
class GradientExplosionRate(Quantity):
    """lambda_G, the growth factor per layer of the expected squared gradient norm
    (the eigenvalue of the backward operator T on the symmetric direction G).
    ``regime``: that of the fixed point (``"degenerate"`` past the critical eps)."""

    fixed_point: FixedPoint | None = field(default=None, repr=False)
    method: str = ""
    regime: str = "nondegenerate"


@dataclass(frozen=True)
class TrainableDepth(Quantity):
    """``L* = log(factor) / log(lambda_G)``: the depth over which the expected
    squared gradient norm grows by ``factor`` (``inf`` when lambda_G <= 1)."""

    factor: mpmath.mpf = mpmath.mpf(10) ** 6
    rate: GradientExplosionRate | None = field(default=None, repr=False)
