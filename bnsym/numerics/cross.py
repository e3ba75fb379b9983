r"""The one new sphere expectation of the cross-batch theory (docs/theory.md section 13).

Two batches through the same weights decorrelate at a rate set by the mean
Jacobian of batch norm, ``E[J] = a_x G``.  With ``R = |G h|``,
``S^2 = R^2 + B eps``, ``kappa = R / S`` and
``J = diag(D) sqrt(B)/S (G - kappa^2 u u^T)`` (docs/theory.md section 5),
``tr J = (sqrt(B)/S) (B-1) D(s) (1 - kappa^2 s^2/(B-1))`` averaged over one
coordinate, so everything reduces to the one-coordinate expectation

    t(kappa) = E[ D(s) (1 - kappa^2 s^2 / n) ],   D(s) = gamma phi'(gamma kappa s + beta),  n = B - 1,

and ``a_x = sqrt(B) E_R[ t(kappa) / S ]``.  At ``B = inf`` the factor
``1 - kappa^2 s^2 / n`` tends to 1 and ``t = E[D(z)]`` over a standard
Gaussian ``z``.

Methods.  ``"quadrature"``: the two integrands ``D`` and ``s^2 D`` on the
sphere law (:class:`~bnsym.numerics.sphere.SphereLaw`, split at the kinks).
``"closed form"`` (positively homogeneous ``phi`` of degree ``alpha > 0``
at ``beta = 0``): at ``kappa = 1`` by integration by parts
against the one-coordinate density ``(1 - s^2/n)^((B-4)/2)``,

    t(1) = ((B - 2)/(B - 1)) E[s f(s)],   f(s) = phi(gamma s),

(no boundary term for ``B >= 3``), a homogeneous moment of
:mod:`bnsym.numerics.closed_forms`; at ``kappa < 1`` the two homogeneous
moments of ``D`` and ``s^2 D``.  The two routes share no formula, which is
what the tests compare.  Cost: one one-coordinate expectation (milliseconds
closed, a fraction of a second by quadrature).
"""

from __future__ import annotations

import math

import mpmath

from bnsym.activations import Activation
from bnsym.estimate import ROUNDING, Estimate, rounding_error
from bnsym.numerics import closed_forms
from bnsym.numerics.sphere import Integrand, SphereLaw


def trace_moment(act: Activation, law: SphereLaw, gain, shift, gamma, kappa_squared, rtol, *, method: str) -> Estimate:
    r"""``t(kappa) = E[D(s) (1 - kappa^2 s^2/n)]`` with ``D = gamma phi'(gain s + shift)`` (``E[D]`` at ``B = inf``).

    ``gain`` is ``gamma kappa``; ``rtol`` bounds each expectation's error relative to its
    root mean square (docs/theory.md section 13).
    """
    with mpmath.workdps(law.working_dps):
        k2 = mpmath.mpf(kappa_squared)
        if method == "closed form" and act.degree > 0:
            return _closed(act, law, gain, shift, gamma, k2)
        d = Integrand(act, gain, shift, derivative=True, scale=gamma)
        if law.infinite:
            (mean,) = law.expect([d], rtol)
            return mean
        s2d = Integrand(act, gain, shift, derivative=True, power=2, scale=gamma)
        mean, weighted = law.expect([d, s2d], rtol)
        return mean - weighted * (k2 / law.n)


def _closed(act, law, gain, shift, gamma, k2):
    n, degree = law.n, closed_forms.real_number(act.degree)

    def homogeneous(integrand, p):
        plus, minus = integrand.evaluate(mpmath.mpf(1)), integrand.evaluate(mpmath.mpf(-1))
        return closed_forms.homogeneous_mean(plus, minus, p, n)

    if law.infinite:
        value = homogeneous(Integrand(act, gain, shift, derivative=True, scale=gamma), degree - 1)
    elif k2 == 1 and law.batch_size >= 3:
        value = mpmath.mpf(n - 1) / n * homogeneous(Integrand(act, gain, shift, power=1), degree + 1)
    else:
        mean = homogeneous(Integrand(act, gain, shift, derivative=True, scale=gamma), degree - 1)
        weighted = homogeneous(Integrand(act, gain, shift, derivative=True, power=2, scale=gamma), degree + 1)
        value = mean - weighted * k2 / n
    return Estimate(value, rounding_error(value, law.working_dps) + rounding_error(1, law.working_dps), meaning=ROUNDING)


def inverse_chi_mean(n) -> mpmath.mpf:
    """``E[1/chi_n] = Gamma((n-1)/2) / (sqrt(2) Gamma(n/2))`` (finite for ``n >= 2``; cost O(1))."""
    if n == math.inf:
        return mpmath.mpf(0)
    n = mpmath.mpf(n)
    return mpmath.exp(mpmath.loggamma((n - 1) / 2) - mpmath.loggamma(n / 2)) / mpmath.sqrt(2)
