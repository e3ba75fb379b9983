r"""The normalised Gegenbauer basis of the one-coordinate sphere law, and the coefficients of ``f`` in it.

docs/theory.md section 16.  For a batch of size ``B >= 4`` write ``n = B - 1``,
``nu = (B - 3)/2`` and ``t = s / sqrt(n)`` (one coordinate of the sphere law,
density proportional to ``(1 - t^2)^(nu - 1/2)`` on ``[-1, 1]``).  With
``C_l^nu`` the Gegenbauer polynomials,

* ``P_l(t) = C_l^nu(t) / C_l^nu(1)`` (so ``P_l(1) = 1``), evaluated by mpmath;
* ``dim H_l = ((2l + B - 3)/(B - 3)) binom(l + B - 4, l)``, the dimension of the
  degree-``l`` spherical harmonics on ``S^(B-2)``, so that ``E1[P_l P_m] = delta_lm / dim H_l``;
* the coefficients ``a_l = E1[f(s) P_l(t)]``, so that ``f(sqrt(n) t) = sum_l a_l dim H_l P_l(t)``
  in ``L^2`` of the law (the final paper's ``a_l``; the orthonormal coefficients are
  ``sqrt(dim H_l) a_l``, which are the engine's Funk-Hecke ``F_k`` of section 8).

The coefficients are linear combinations of the monomial moments ``E1[t^j f(s)]``
(``C_l^nu(x) = sum_k (-1)^k Gamma(l - k + nu) / (Gamma(nu) k! (l - 2k)!) (2x)^(l - 2k)``),
and those come from the one sphere-expectation routine,
:meth:`bnsym.numerics.sphere.SphereLaw.expect_with_norms`, which also returns the second
moments ``E1[t^(2j) f^2]`` that the Parseval remainders need.  The monomial form
cancels: the moments are asked to a tolerance tightened by the measured
amplification ``sum_l sqrt(dim H_l) sum_j |c_lj| sqrt(E1[t^(2j) f^2])``, and the working
precision carries that many more digits.

:func:`laplace_bound` bounds ``|P_l(x)|`` for every ``l >= 2m`` at once: by
Gegenbauer's form of Laplace's integral, ``P_l(x) = E[(x + i sqrt(1 - x^2) v)^l]`` for
``v`` of density proportional to ``(1 - v^2)^(nu - 1)`` on ``[-1, 1]``, so
``|P_l(x)| <= E[(x^2 + (1 - x^2) v^2)^(l/2)]``, which decreases with ``l``; at even
``l = 2m`` the right side is the finite sum
``sum_k binom(m, k) x^(2(m-k)) (1 - x^2)^k (1/2)_k / (nu + 1/2)_k``.

Domain: finite ``B >= 4``.  Cost: ``terms + 5`` one-coordinate expectations sharing one set of
activation evaluations (one call of the sphere routine, plus a cheap pilot at low precision),
and ``O(terms^2)`` arithmetic.
"""

from __future__ import annotations

import mpmath

from bnsym.activations import Activation
from bnsym.estimate import Estimate
from bnsym.numerics.sphere import Integrand, SphereLaw


def harmonic_dimension(degree: int, batch_size: int) -> mpmath.mpf:
    """``dim H_l = ((2l + B - 3)/(B - 3)) binom(l + B - 4, l)`` for ``B >= 4`` (exact rational, as mpf)."""
    b = batch_size
    return mpmath.mpf(2 * degree + b - 3) / (b - 3) * mpmath.binomial(degree + b - 4, degree)


def normalised_gegenbauer(degree: int, batch_size: int, x) -> mpmath.mpf:
    """``P_l(x) = C_l^nu(x) / C_l^nu(1)``, ``nu = (B - 3)/2`` (``B >= 4``)."""
    nu = mpmath.mpf(batch_size - 3) / 2
    return mpmath.gegenbauer(degree, nu, x) / mpmath.gegenbauer(degree, nu, 1)


def monomial_coefficients(degree: int, batch_size: int) -> dict:
    """``{j: c_j}`` with ``P_l(t) = sum_j c_j t^j`` (``j = l, l - 2, ...``)."""
    nu = mpmath.mpf(batch_size - 3) / 2
    top = mpmath.gegenbauer(degree, nu, 1)
    out = {}
    for k in range(degree // 2 + 1):
        j = degree - 2 * k
        c = (-1) ** k * mpmath.gamma(degree - k + nu) / (mpmath.gamma(nu) * mpmath.factorial(k) * mpmath.factorial(j))
        out[j] = c * mpmath.mpf(2) ** j / top
    return out


def laplace_bound(even_degree: int, batch_size: int, x) -> mpmath.mpf:
    """A bound on ``|P_l(x)|`` valid for every ``l >= even_degree`` (``even_degree = 2m``, see the module docstring)."""
    m = even_degree // 2
    nu = mpmath.mpf(batch_size - 3) / 2
    x2 = mpmath.mpf(x) ** 2
    half = mpmath.mpf(1) / 2
    return mpmath.fsum(
        mpmath.binomial(m, k) * x2 ** (m - k) * (1 - x2) ** k * mpmath.rf(half, k) / mpmath.rf(nu + half, k)
        for k in range(m + 1)
    )


def gegenbauer_coefficients(act: Activation, batch_size: int, gamma, beta, degrees: int, rtol, working_dps: int):
    """``(coefficients, moments, guard)`` of ``f(s) = phi(gamma s + beta)`` under the sphere law of ``batch_size``.

    ``coefficients[l] = a_l`` (Estimates, ``l = 0..degrees``); ``moments`` holds the second
    moments ``E1[f^2]``, ``E1[t^2 f^2]``, ``E1[t^4 f^2]`` (keys ``"f2"``, ``"tf2"``, ``"ttf2"``) and
    the Dirichlet form ``E1[(n - s^2) f'(s)^2]`` (key ``"dirichlet"``), each an Estimate.  A
    pilot at ``working_dps`` (tolerance 1e-6) measures the :func:`amplification` ``A`` of the
    monomial form; the moments are then asked to ``rtol / A`` at ``working_dps + guard``
    digits, ``guard = ceil(log10 A) + 5``, returned.  Cost: see the module docstring.
    """
    top = max(degrees, 2)
    with mpmath.workdps(working_dps):
        pilot_law = SphereLaw(batch_size, working_dps)
        pilot = pilot_law.expect_with_norms(_monomials(act, pilot_law, gamma, beta, top), mpmath.mpf(10) ** -6)
        norms = [mpmath.sqrt(abs(second.value)) for _, second in pilot]
        gain = amplification([monomial_coefficients(l, batch_size) for l in range(degrees + 1)], norms, batch_size)
        guard = int(mpmath.ceil(mpmath.log10(gain))) + 5
    wdps = working_dps + guard
    with mpmath.workdps(wdps):
        law = SphereLaw(batch_size, wdps)
        n = law.n
        tables = [monomial_coefficients(l, batch_size) for l in range(degrees + 1)]
        monomials = _monomials(act, law, mpmath.mpf(gamma), mpmath.mpf(beta), top)
        derivative = Integrand(act, mpmath.mpf(gamma), mpmath.mpf(beta), derivative=True, scale=mpmath.mpf(gamma))
        slope = Integrand(act, mpmath.mpf(gamma), mpmath.mpf(beta), derivative=True, power=1, scale=mpmath.mpf(gamma))
        results = law.expect_with_norms(monomials + [derivative, slope], mpmath.mpf(rtol) / gain)
        firsts = [first for first, _ in results[: len(monomials)]]
        coefficients = [sum((c * firsts[j] for j, c in table.items()), Estimate(mpmath.mpf(0))) for table in tables]
        moments = {
            "f2": results[0][1],
            "tf2": results[1][1],
            "ttf2": results[2][1],
            "dirichlet": results[-2][1] * n - results[-1][1],
        }
    return coefficients, moments, guard


def amplification(tables, norms, batch_size) -> mpmath.mpf:
    """``max(1, sum_l sqrt(dim H_l) sum_j |c_lj| norms[j] / norms[0])``: how much the monomial form
    magnifies the moments' errors (``norms[j] = sqrt(E1[t^(2j) f^2])``)."""
    scale = norms[0] if norms[0] > 0 else mpmath.mpf(1)
    total = mpmath.fsum(
        mpmath.sqrt(harmonic_dimension(l, batch_size)) * mpmath.fsum(abs(c) * norms[j] for j, c in table.items())
        for l, table in enumerate(tables)
    )
    return max(mpmath.mpf(1), total / scale)


def _monomials(act, law, gamma, beta, degrees):
    """Integrands ``t^j f(s)`` for ``j = 0..degrees`` (``t = s / sqrt(n)``)."""
    root = mpmath.sqrt(law.n)
    gain, shift = mpmath.mpf(gamma), mpmath.mpf(beta)
    return [Integrand(act, gain, shift, power=j, scale=1 / root**j) for j in range(degrees + 1)]
