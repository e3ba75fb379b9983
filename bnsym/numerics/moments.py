r"""The sphere moments that every mean-field quantity is built from.

At one effective gain ``g`` (``g = gamma`` at ``eps = 0``, ``g = gamma kappa``
with ``kappa = |Gh| / sqrt(|Gh|^2 + B eps)`` otherwise) and shift ``beta``,
with ``f(s) = phi(g s + beta)`` and ``D(s) = gamma phi'(g s + beta)``:

==========  ====================================  ==========================
name        expectation                           used by
==========  ====================================  ==========================
``mean``    ``E[f(s_a)]``                         centring (no cancellation)
``q``       ``E[f(s_a)^2]``                       fixed point
``c``       ``E[f(s_a) f(s_b)]``                  fixed point
``spread``  ``q - c``, computed as ``E[f~^2] - E[f~_a f~_b]`` with ``f~ = f - mean``
``d2``      ``E[D_a^2]``                          lambda_G
``d11``     ``E[D_a D_b]``                        lambda_G
``sd2``     ``E[s_a^2 D_a^2]``                    lambda_G
``sd11``    ``E[s_a s_b D_a D_b]``                lambda_G
==========  ====================================  ==========================

Two methods give them: ``"closed form"`` for positively homogeneous
activations of integer degree at ``beta = 0`` (:mod:`bnsym.numerics.closed_forms`),
and ``"quadrature"`` for everything (:mod:`bnsym.numerics.sphere`).  ``method="auto"``
takes the closed form where it exists.
"""

from __future__ import annotations

from dataclasses import dataclass

import mpmath

from bnsym.numerics import closed_forms
from bnsym.activations import Activation
from bnsym.errors import BnsymInputError
from bnsym.estimate import ROUNDING, Estimate, rounding_error
from bnsym.numerics.sphere import Integrand, SphereLaw

METHODS = ("auto", "closed form", "quadrature")


@dataclass(frozen=True)
class SphereMoments:
    """The sphere expectations at one gain (see the module docstring)."""

    mean: Estimate
    q: Estimate
    c: Estimate
    spread: Estimate
    d2: Estimate | None = None
    d11: Estimate | None = None
    sd2: Estimate | None = None
    sd11: Estimate | None = None
    method: str = "quadrature"


def closed_form_applies(act: Activation, shift) -> bool:
    """True when the homogeneous closed forms cover ``act`` at this shift."""
    return act.degree is not None and act.degree.is_integer and shift == 0


def resolve_method(method: str, act: Activation, shift) -> str:
    """Turn ``"auto"`` into the method used, or refuse a forced impossible one."""
    if method not in METHODS:
        raise BnsymInputError(f"method must be one of {', '.join(repr(m) for m in METHODS)}, got {method!r}")
    if method == "auto":
        return "closed form" if closed_form_applies(act, shift) else "quadrature"
    if method == "closed form" and not closed_form_applies(act, shift):
        why = "beta != 0" if act.degree is not None and act.degree.is_integer else "it is not positively homogeneous of integer degree"
        raise BnsymInputError(f"method='closed form' does not apply to {act.label}: {why}; use method='quadrature' or 'auto'")
    return method


def sphere_moments(act: Activation, law: SphereLaw, gain, shift, gamma, rtol, *, gradient: bool, method: str) -> SphereMoments:
    """The :class:`SphereMoments` of ``act`` at ``gain``, ``shift`` on ``law``.

    ``rtol`` bounds each expectation's error relative to its Cauchy-Schwarz
    scale (``sqrt(E[F^2] E[G^2])``).  ``gradient=False`` skips the four
    ``D`` moments.  Cost: closed form ``O(1)``; quadrature one Funk-Hecke
    series (smooth ``phi``) or one nested angle integral (kinked ``phi``).
    """
    with mpmath.workdps(law.working_dps):
        f = Integrand(act, gain, shift)
        d = Integrand(act, gain, shift, derivative=True, scale=gamma)
        sd = Integrand(act, gain, shift, derivative=True, power=1, scale=gamma)
        if method == "closed form":
            return _closed(act, law, f, d, sd, gradient)
        return _quadrature(law, f, d, sd, rtol, gradient)


def _homogeneous(act: Activation, integrand: Integrand):
    """``(a_+, a_-, p)`` of a homogeneous integrand: ``F(+-1)`` and its degree."""
    degree = int(act.degree) - (1 if integrand.derivative else 0) + integrand.power
    return integrand.evaluate(mpmath.mpf(1)), integrand.evaluate(mpmath.mpf(-1)), degree


def _rounded(value, working_dps):
    """A closed-form value evaluated at the working precision: its error is a few units of the last place."""
    return Estimate(value, rounding_error(value, working_dps), meaning=ROUNDING)


def _closed(act, law, f, d, sd, gradient):
    n = law.n
    hf = _homogeneous(act, f)
    square = (hf[0] ** 2, hf[1] ** 2, 2 * hf[2])
    mean = _rounded(closed_forms.homogeneous_mean(*hf, n), law.working_dps)
    q = _rounded(closed_forms.homogeneous_mean(*square, n), law.working_dps)
    c = _rounded(closed_forms.homogeneous_pair(hf, hf, n), law.working_dps)
    moments = dict(mean=mean, q=q, c=c, spread=q - c, method="closed form")
    if gradient:
        hd, hsd = _homogeneous(act, d), _homogeneous(act, sd)
        moments.update(
            d2=_rounded(closed_forms.homogeneous_mean(hd[0] ** 2, hd[1] ** 2, 2 * hd[2], n), law.working_dps),
            d11=_rounded(closed_forms.homogeneous_pair(hd, hd, n), law.working_dps),
            sd2=_rounded(closed_forms.homogeneous_mean(hsd[0] ** 2, hsd[1] ** 2, 2 * hsd[2], n), law.working_dps),
            sd11=_rounded(closed_forms.homogeneous_pair(hsd, hsd, n), law.working_dps),
        )
    return SphereMoments(**moments)


def _quadrature(law, f, d, sd, rtol, gradient):
    (mean, q), = law.expect_with_norms([f], rtol)
    centred = f.with_center(mean.value)
    (_, q_centred), = law.expect_with_norms([centred], rtol)
    pairs = [(centred, centred)]
    singles = []
    if gradient:
        pairs += [(d, d), (sd, sd)]
        singles = law.expect_with_norms([d, sd], rtol)
    values = law.expect_pairs(pairs, rtol)
    spread = q_centred - values[0]
    c = q - spread
    moments = dict(mean=mean, q=q, c=c, spread=spread, method="quadrature")
    if gradient:
        moments.update(d2=singles[0][1], d11=values[1], sd2=singles[1][1], sd11=values[2])
    return SphereMoments(**moments)
