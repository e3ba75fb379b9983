r"""Two batches through one network: the cross-batch fixed point and decorrelation rates
(docs/theory.md section 13).

Two batches ``h1, h2`` of ``B`` points pass through the same weights; batch norm
acts within each.  The joint Gram matrix has the single-batch map on its
diagonal blocks and the cross map ``C(Sigma) = E[B_phi(h1) B_phi(h2)^T]`` off
it.  When the centred cross block vanishes, ``G h1`` and ``G h2`` are
independent and ``C = m^2 1 1^T`` with ``m = E[B_phi(h)_a]``: the fixed point
of the cross block is the constant entry

    c_x = m^2,   m = E_R E_sphere[phi(gamma kappa s + beta)]     (kappa = 1 at eps = 0).

Perturbing the centred cross block by ``Delta`` (``G Delta G = Delta``, any
``B x B`` matrix: multiplicity ``(B-1)^2``) gives, by Price's theorem at zero
cross-covariance, ``sigma_w^2 E[J] Delta E[J]^T`` with ``E[J] = a_x G``, so

    lambda_x = sigma_w^2 a_x^2,   a_x = sqrt(B) E_R[ t(kappa) / S ]

(``t`` and ``S`` of :mod:`bnsym.numerics.cross`).  At ``eps = 0``, ``S = sqrt(a*) chi_{B-1}``
and ``lambda_x = B t(1)^2 E[1/chi_{B-1}]^2 / (q* - c*)``, independent of ``sigma_w``;
at ``B = inf``, ``lambda_x = sigma_w^2 E[D]^2 / (a* + eps)``.  Backwards, under
gradient independence the centred cross block of the gradient covariance obeys
``Pi12 <- sigma_w^2 E[J]^T Pi12 E[J] = lambda_x Pi12``: the same rate, while each
batch's own gradient grows by lambda_G, so the normalised cross-batch gradient
correlation decays by ``lambda_x / lambda_G`` per layer.

Batch sizes: ``B >= 4`` and ``B = inf`` (a limit: multiplicity ``inf``).
``B = 3``: every quantity is finite (``E[1/chi_2] = sqrt(pi/2)``), lambda_G is
infinite at ``eps = 0`` and the correlation rate is then 0.  ``B = 2`` at
``eps = 0``: batch norm's Jacobian vanishes, ``lambda_x = 0`` exactly and the
normalised correlation rate is ``0/0``, reported as ``None``; at ``eps > 0`` all
are finite.

Past the critical eps (the degenerate point, :mod:`bnsym.meanfield.critical`) every sample is
``phi(beta) 1`` and ``J -> diag(D) G / sqrt(eps)``: ``c_x = phi(beta)^2``, correlation 1 (``None``,
``0/0``, when ``phi(beta) = 0``), ``a_x = E[D] / sqrt(eps)`` with ``E[D] = (D(+1) + D(-1)) / 2``, so
``lambda_x = sigma_w^2 E[D]^2 / eps``: ``eps_c / eps = lambda_G`` for ``phi`` differentiable at
``beta``, ``sigma_w^2 gamma^2 / (4 eps)`` for ReLU at ``beta = 0``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import mpmath

from bnsym.errors import PrecisionError
from bnsym.estimate import ROUNDING, Estimate, rounding_error, weighted_sum
from bnsym.meanfield.bsb1 import bsb1_state, moment_tolerance
from bnsym.meanfield.critical import DEGENERATE, local_slopes, psi_values
from bnsym.meanfield.gradients import rate_from_settings
from bnsym.meanfield.results import (
    FixedPoint,
    GradientExplosionRate,
    Quantity,
    Settings,
    make_settings,
)
from bnsym.numerics.cross import inverse_chi_mean, trace_moment
from bnsym.numerics.sphere import SphereLaw
from bnsym.text import ShownAsText, error_text, number_text, table_text


@dataclass(frozen=True)
class CrossBatch(ShownAsText):
    r"""The cross-batch theory at the CBSB1 point (docs/theory.md section 13).

    ``c_x``: the constant entry of the cross block of the fixed point;
    ``correlation``: ``c_x / q*`` (``None`` where it is ``0/0``: past the critical eps with
    ``phi(beta) = 0``); ``lambda_x``: the forward rate of the centred
    cross block, with ``multiplicity`` ``(B-1)^2`` (``inf`` at ``B = inf``);
    ``backward_rate``: the per-layer factor of the centred cross block of the
    gradient covariance (equal to lambda_x); ``correlation_rate``:
    ``lambda_x / lambda_G``, the per-layer factor of the normalised cross-batch
    gradient correlation (``None`` where it is ``0/0``: ``B = 2``, ``eps = 0``);
    ``lambda_G`` and ``fixed_point``: the single-batch results used.  Each
    value is a :class:`~bnsym.meanfield.results.Quantity` (value, error, meaning).
    """

    settings: Settings
    c_x: Quantity
    correlation: Quantity
    lambda_x: Quantity
    multiplicity: object
    backward_rate: Quantity
    correlation_rate: Quantity | None
    lambda_G: GradientExplosionRate
    fixed_point: FixedPoint
    method: str

    def __str__(self) -> str:
        """The settings and a table of each quantity with its error (what ``bnsym cross-batch`` prints)."""
        d = self.settings.dps
        multiplicity = "inf" if self.multiplicity == math.inf else str(self.multiplicity)
        why = {"c_x / q*": "undefined (0/0: every sample is phi(beta) = 0 past the critical eps)",
               "lambda_x / lambda_G": "undefined (0/0: no gradient passes batch norm)"}
        rows = []
        for label, q in (("c_x (cross-block entry)", self.c_x), ("c_x / q*", self.correlation),
                         (f"lambda_x (multiplicity {multiplicity})", self.lambda_x),
                         ("backward cross-batch rate", self.backward_rate), ("lambda_G", self.lambda_G),
                         ("lambda_x / lambda_G", self.correlation_rate)):
            rows.append((label, why[label], "") if q is None else (label, number_text(q.value, d), error_text(q.error)))
        return self.settings.line(detail=self.method) + "\n" + table_text(rows)

    def as_dict(self) -> dict:
        """JSON-friendly view (numbers as strings at ``dps`` digits, errors with two digits)."""
        d = self.settings.dps

        def entry(q):
            if q is None:
                return None
            return {"value": number_text(q.value, d), "error": mpmath.nstr(q.error, 2), "meaning": q.meaning}

        return {
            "settings": self.settings.as_dict(),
            "method": self.method,
            "q": number_text(self.fixed_point.q, d),
            "c": number_text(self.fixed_point.c, d),
            "c_x": entry(self.c_x),
            "correlation": entry(self.correlation),
            "lambda_x": entry(self.lambda_x),
            "multiplicity": "inf" if self.multiplicity == math.inf else self.multiplicity,
            "backward_rate": entry(self.backward_rate),
            "lambda_G": entry(self.lambda_G),
            "correlation_rate": entry(self.correlation_rate),
        }


def cross_batch(activation, batch_size, *, gamma=1, beta=0, eps=0, sigma_w=1, dps=15, method="auto") -> CrossBatch:
    r"""The cross-batch fixed point ``c_x`` and the decorrelation rates of two batches through one network.

    Arguments as for :func:`bnsym.fixed_point` (``batch_size`` an integer ``>= 2``
    or ``math.inf``; ``eps >= 0``; ``sigma_w > 0``).  Formulas (docs/theory.md
    section 13): ``c_x = m^2`` with ``m = E[B_phi(h)_a]``; ``lambda_x = sigma_w^2 a_x^2``
    with ``a_x = E[tr J]/(B-1)``; the backward cross rate is lambda_x; the
    normalised gradient correlation decays by ``lambda_x / lambda_G``.  Each is
    promised to ``dps`` digits relative to ``max(|value|, q*)`` for ``c_x`` and
    to ``max(|value|, 1e-3)`` for the rates (:class:`~bnsym.errors.PrecisionError`
    otherwise).  Closed forms (``method="auto"``) for positively homogeneous
    activations of integer degree at ``beta = 0``; quadrature otherwise.  Cost:
    that of :func:`bnsym.gradient_explosion_rate` plus one one-coordinate sphere
    expectation per radial node (one at ``eps = 0``).

    >>> r = cross_batch("relu", 6, dps=20)
    >>> print(r.c_x)   # 45/256
    0.17578125
    >>> print(r.lambda_x, r.multiplicity)
    0.70069284849316163341 25
    """
    settings = make_settings(activation, batch_size, gamma=gamma, beta=beta, eps=eps, sigma_w=sigma_w, dps=dps, method=method)
    return cross_batch_from_settings(settings)


def cross_batch_from_settings(settings: Settings) -> CrossBatch:
    """:func:`cross_batch` for validated :class:`~bnsym.meanfield.results.Settings`."""
    state = bsb1_state(settings)
    rate = rate_from_settings(settings)
    b = settings.batch_size
    fp = state.fixed_point
    with mpmath.workdps(settings.working_dps):
        law = SphereLaw(b, settings.working_dps)
        mean, a_x = _mean_and_slope(settings, state, law)
        c_x = mean * mean
        q = Estimate(fp.value, fp.error, meaning=fp.meaning)
        correlation = None if q.value == 0 else c_x / q  # 0/0 at a degenerate point with phi(beta) = 0
        lam = settings.sigma_w**2 * a_x * a_x
        if rate.value == 0:
            ratio = None
        elif mpmath.isinf(rate.value):
            ratio = Estimate(mpmath.mpf(0), meaning=ROUNDING)
        else:
            ratio = lam / Estimate(rate.value, rate.error, meaning=rate.meaning)
    multiplicity = math.inf if b == math.inf else (b - 1) ** 2

    def quantity(e):
        return None if e is None else Quantity(e.value, e.error, settings, meaning=e.meaning)

    result = CrossBatch(
        settings, quantity(c_x), quantity(correlation), quantity(lam), multiplicity, quantity(lam), quantity(ratio),
        rate, fp, state.method,
    )
    _check(result)
    return result


def _mean_and_slope(settings, state, law):
    """``(m, a_x)`` as Estimates: the mean batch-norm output and the mean-Jacobian coefficient."""
    b, eps, gamma, beta = settings.batch_size, settings.eps, settings.gamma, settings.beta
    act, method, rtol = settings.activation, state.method, moment_tolerance(settings)
    if state.fixed_point.regime == DEGENERATE:
        # past the critical eps every sample is phi(beta) 1 and J -> diag(D) G / sqrt(eps), D_a = gamma a_+-
        # by the sign of s_a (docs/theory.md section 15), so E[J] = E[D] G / sqrt(eps), E[D] = (D(+1) + D(-1))/2
        level = settings.activation.mp(beta)
        _, (d_plus, d_minus) = psi_values(settings, local_slopes(settings))
        slope = (d_plus + d_minus) / (2 * mpmath.sqrt(eps))
        return (Estimate(level, rounding_error(level, settings.working_dps), meaning=ROUNDING),
                Estimate(slope, rounding_error(slope, settings.working_dps), meaning=ROUNDING))
    if eps == 0 and b == 2:
        return state.moments.mean, Estimate(mpmath.mpf(0), meaning=ROUNDING)  # J = 0 exactly
    if b == math.inf:
        a = state.scale.value
        kappa2 = a / (a + eps)
        gain = gamma * mpmath.sqrt(kappa2)
        t = trace_moment(act, law, gain, beta, gamma, kappa2, rtol, method=method)
        return state.moments.mean, t / (state.scale + eps).apply(mpmath.sqrt, lambda v: 1 / (2 * mpmath.sqrt(v)))
    if eps == 0:
        t = trace_moment(act, law, gamma, beta, gamma, 1, rtol, method=method)
        root = state.scale.apply(mpmath.sqrt, lambda v: 1 / (2 * mpmath.sqrt(v)))
        return state.moments.mean, t * (mpmath.sqrt(b) * inverse_chi_mean(b - 1)) / root
    levels = []
    for level in state.radial:  # (coarse, fine): the rule difference is part of the error
        nodes = level.nodes
        mean = weighted_sum([nd.weight for nd in nodes], [nd.moments.mean for nd in nodes])
        ts = [
            trace_moment(act, law, gamma * mpmath.sqrt(nd.kappa_squared), beta, gamma, nd.kappa_squared, rtol, method=method)
            for nd in nodes
        ]
        slope = mpmath.sqrt(b) * weighted_sum([nd.weight / mpmath.sqrt(nd.s_squared) for nd in nodes], ts)
        levels.append((mean, slope))
    (m0, s0), (m1, s1) = levels
    return (Estimate(m1.value, m1.error + abs(m1.value - m0.value)),
            Estimate(s1.value, s1.error + abs(s1.value - s0.value)))


def _check(result: CrossBatch):
    dps = result.settings.dps
    tol = mpmath.mpf(10) ** -dps
    floor = {"c_x": result.fixed_point.q, "lambda_x": mpmath.mpf(10) ** -3}
    for name, q in (("c_x", result.c_x), ("lambda_x", result.lambda_x)):
        if q.error > tol * max(abs(q.value), floor[name]):
            raise PrecisionError(
                f"{name} reached only {mpmath.nstr(q.error, 3)} absolute error, short of the {dps} digits asked "
                f"(settings: {result.settings.as_dict()})"
            )
