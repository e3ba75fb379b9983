r"""The Laplace method for the Gram map of a positively homogeneous activation (docs/theory.md sections 7, 15).

For ``phi`` positively homogeneous of degree ``alpha`` at ``beta = 0`` and any ``eps >= 0``
(Schwinger parametrisation of ``(|G h|^2 + B eps)^(-alpha)``, ``h ~ N(0, sigma_w^2 Sigma)``),

    V(Sigma) = B^alpha / Gamma(alpha) int_0^inf s^(alpha-1) e^{-s B eps / sigma_w^2} det(I + 2 s K)^(-1/2)
               V_phi(K (I + 2 s K)^(-1)) ds,      K = G Sigma G.

This is ../shared/THEORY-appendices.md section 4.4 (written there with ``Sigma_G = sigma_w^2 K``
and ``e^{-s B eps}``) after ``s -> s / sigma_w^2``; it is the within-batch block of the two-parameter
map of :mod:`bnsym.meanfield.joint` (docs/theory.md section 14.2) on a duplicated pair.  At
``eps = 0`` ``sigma_w`` drops out.  One integral per entry, all entries on one rule with the scale
``c = 1/(2 g + B eps / sigma_w^2)``, ``g`` the geometric mean of the nonzero eigenvalues of ``K``: at
``eps = 0`` the tanh-sinh rule after ``s = c (1 + x)/(1 - x)`` (algebraic decay ``s^(-1-r/2)``); at
``eps > 0`` the double-exponential rule for exponential decay, ``s = c exp(t - e^{-t})``
(:func:`bnsym.numerics.quadrature.exponential_rule`; measured at 30 digits, B = 5: 128-256 nodes against 512-768 for the
tanh-sinh map, which also converges but slowly).  One level-raising loop for both.  ``K`` is diagonalised once per call so
each node costs ``O(B r)`` per entry (``r = rank K``).  ``V_phi`` is
:func:`bnsym.numerics.gaussian_kernels.homogeneous_kernel`.  At ``eps > 0`` and ``K = 0`` the map
is exactly 0 (``phi(0) = 0``).
"""

from __future__ import annotations

import math

import mpmath
import numpy as np

from bnsym.errors import BnsymError, BnsymInputError
from bnsym.meanfield.results import Settings
from bnsym.numerics import arccos, gaussian_kernels
from bnsym.numerics.quadrature import SIZES, schwinger_rule, schwinger_scale
from bnsym.numerics.sphere import converge, parts_agree

#: Up to this many digits the Laplace integral runs in float64 (integer degrees).
FLOAT_DPS = 12


def laplace_applies(settings: Settings) -> bool:
    """True when the Laplace method of docs/theory.md section 7 is exact for these settings."""
    return laplace_obstacle(settings) is None


def laplace_obstacle(settings: Settings):
    """Why the Laplace method does not apply (None when it does)."""
    if settings.activation.degree is None:
        return f"{settings.activation.label} is not positively homogeneous"
    if settings.beta != 0:
        return "beta != 0 breaks homogeneity"
    return None


def decay_rate(settings: Settings):
    """``B eps / sigma_w^2``: the rate of the factor ``e^{-s B eps / sigma_w^2}`` of the Laplace integrand."""
    return settings.batch_size * settings.eps / settings.sigma_w**2


def laplace_map(settings: Settings, gram, *, entries=None):
    """``(V(Sigma), error)`` by the Laplace method, as mpmath matrices (or dicts for ``entries``).

    Any ``eps >= 0`` (``settings.eps``; ``sigma_w`` enters only through ``B eps / sigma_w^2``).
    ``entries``: optional list of ``(a, b)`` pairs to compute only those
    entries (for finite differences); then dicts ``{(a, b): value}`` are returned.
    Runs at ``settings.working_dps`` (the caller enters that precision once); promises ``settings.dps`` digits
    relative to the largest entry (float64 path for ``dps <= FLOAT_DPS`` and integer degree, else mpmath;
    checked to 30 digits and more against the BSB1 fixed point at ``eps > 0``).  The rule level starts at
    the first size ``>= 2 dps`` and is raised until two levels agree to ``10^-dps / 10`` of the largest
    entry; the difference is the error.  Raises :class:`~bnsym.errors.PrecisionError` if no level up to
    the largest converges, :class:`~bnsym.errors.BnsymError` at ``eps = 0`` with ``G Sigma G = 0``.
    """
    b = gram.rows
    coeffs = gaussian_kernels.homogeneous_coefficients(settings.activation, settings.gamma)
    if entries is None and settings.dps <= FLOAT_DPS and coeffs[2] == int(coeffs[2]):
        value, error = _laplace_float(settings, np.array(gram.tolist(), dtype=float), coeffs)
        return mpmath.matrix(value.tolist()), mpmath.matrix(error.tolist())
    alpha = coeffs[2]
    lam, vecs = centred_spectrum(gram, settings.working_dps)
    if entries is None:
        entries = [(a, c) for a in range(b) for c in range(a, b)]
    rate = decay_rate(settings)
    if not lam:
        _refuse_zero(settings)
        zeros = {key: mpmath.mpf(0) for key in entries}
        return _as_output(b, zeros, dict(zeros), entries)
    scale = schwinger_scale(lam, rate)
    prefactor = mpmath.mpf(b) ** alpha / mpmath.gamma(alpha)
    tol = mpmath.mpf(10) ** -settings.dps

    def level_values(level):
        values = _laplace_level(lam, vecs, entries, coeffs, scale, rate, level, settings.working_dps)
        return {key: prefactor * v for key, v in values.items()}

    def judge(current, previous):
        size = max(abs(v) for v in current.values())
        diff = {key: abs(current[key] - previous[key]) for key in entries}
        return _as_output(b, current, diff, entries) if max(diff.values()) <= tol * size / 10 else None

    start = next(i for i, n in enumerate(SIZES) if n >= 2 * settings.dps)
    return converge(level_values, judge, ("laplace map", b, settings.dps), start, len(SIZES) - 1,
                    f"the Laplace integral did not converge to {settings.dps} digits (B={b})")


def _centred(matrix):
    """``G matrix G`` (``G = I - 1 1^T / B``), symmetrised."""
    b = matrix.rows
    g = mpmath.eye(b) - mpmath.ones(b, b) / b
    k = g * matrix * g
    return (k + k.T) / 2


def centred_spectrum(gram, working_dps):
    """``(lam, vecs)``: the eigenvalues of ``K = G Sigma G`` above ``10^-(working_dps - 5)`` of the
    largest (none when ``K = 0``) and their eigenvectors as rows ``vecs[a][i]``."""
    lam, q = mpmath.eigsy(_centred(gram))
    top = max(abs(v) for v in lam)
    keep = [i for i in range(gram.rows) if lam[i] > top * mpmath.mpf(10) ** (-(working_dps - 5))]
    return ([lam[i] for i in keep] if top > 0 else []), [[q[a, i] for i in keep] for a in range(gram.rows)]


def centred_spectrum_float(gram):
    """:func:`centred_spectrum` in float64 for a NumPy ``gram``: ``(lam, vecs)``, the eigenvalues of
    ``G Sigma G`` above ``1e-13`` of the largest (none when it is not positive) and their eigenvectors as
    the columns of ``vecs`` (``B x r``)."""
    b = gram.shape[0]
    g = np.eye(b) - 1 / b
    lam, q = np.linalg.eigh(g @ gram @ g)
    keep = lam > max(lam.max(), 0.0) * 1e-13
    return lam[keep], q[:, keep]


def backward_term(settings: Settings, gram, theta):
    r"""``(V(Sigma), E[J (sigma_w^2 Theta) J^T], error)`` in mpmath: the single-batch map and the
    within-batch backward term of the neural tangent kernel (docs/theory.md section 14.3), ``J`` the
    Jacobian of batch norm and ``phi`` with respect to ``h ~ N(0, sigma_w^2 Sigma)`` (the factor
    ``sigma_w^2`` is the weight gradient's), ``Theta`` a symmetric ``B x B`` matrix (mpmath).

    By Price's theorem the term is the derivative of the duplicated pair's cross block along
    ``[[0, T], [T, 0]]``, ``T = G Theta G``; in that pair's ``(w, rho)`` form (module
    :mod:`bnsym.meanfield.joint`) the kernel matrix ``K_A = K (I + 2 s K)^-1`` does not depend on
    ``w``, and the derivative is a polynomial of degree 2 in ``w``, so the ``w`` integral is exact
    (Beta moments ``<w> = 1/2``, ``kappa = <w (1 - w)> = alpha / (4 (alpha + 1))``) and one Laplace
    integral in ``s`` remains, on the rule of :func:`laplace_map`:

        E[J Theta J^T]_ac = B^alpha / Gamma(alpha) int_0^inf s^(alpha-1) e^{-s B eps / sigma_w^2}
            det(I + 2 s K)^(-1/2) [d_aa X_aa + d_cc X_cc + d_ac Y_ac + 2 s kappa tr(T P) V_ac] ds,

    with ``P = 2 s K_A`` and ``V, d_aa, d_cc, d_ac`` the kernel and its partial
    derivatives at ``(K_A)_aa, (K_A)_cc, (K_A)_ac``
    (:func:`~bnsym.numerics.gaussian_kernels.homogeneous_kernel_gradient`):
    ``Y = T - (P T + T P)/2 + 2 kappa P T P`` (the cross entry of ``<dK>``),
    ``X_aa = -(P T)_aa + 2 kappa (P T P)_aa`` (each diagonal), and the last term is
    ``-<d log det> V / 2``, ``<d log det> = -4 s kappa tr(T P)``.  Domain: as :func:`laplace_map` (positively homogeneous
    ``phi`` of degree ``alpha > 0``, ``beta = 0``, ``eps >= 0``), ``G Sigma G != 0``.  Both outputs
    are converged together (the engine's loop, :func:`bnsym.numerics.sphere.converge`) until two
    levels agree to ``10^-dps / 10`` of each one's largest entry; ``error`` is the sum of the
    two differences, entrywise.  Cost per node ``O(B^2 r)`` and ``2 B (B + 1)/2`` kernel values
    (``r = rank K``).
    """
    b = gram.rows
    coeffs = gaussian_kernels.homogeneous_coefficients(settings.activation, settings.gamma)
    lam, vecs = centred_spectrum(gram, settings.working_dps)
    if not lam:
        raise BnsymInputError("inputs: a batch has identical rows (G Sigma G = 0); the high-precision NTK needs a "
                              "nonzero centred Gram matrix in every batch")
    t = _centred(theta)
    rate = decay_rate(settings)
    scale = schwinger_scale(lam, rate)
    prefactor = mpmath.mpf(b) ** coeffs[2] / mpmath.gamma(coeffs[2])
    tol = mpmath.mpf(10) ** -settings.dps

    def level_values(level):
        parts = _backward_level(lam, vecs, t, coeffs, scale, rate, level, settings.working_dps)
        return [[[prefactor * v for v in row] for row in part] for part in parts]

    def judge(current, previous):  # the error bounds V + slope's too
        error = parts_agree(current, previous, tol / 10)
        return None if error is None else tuple(mpmath.matrix(m) for m in (*current, error))

    start = next(i for i, n in enumerate(SIZES) if n >= 2 * settings.dps)
    return converge(level_values, judge, ("backward term", b, settings.dps), start, len(SIZES) - 1,
                    f"the Laplace integral of the backward term did not converge to {settings.dps} digits (B={b})")


def _backward_level(lam, vecs, t, coeffs, scale, rate, level, working_dps):
    """``(V, E[J Theta J^T])`` sums at one rule level (:func:`backward_term`), as lists of rows."""
    alpha = coeffs[2]
    kappa = alpha / (4 * (alpha + 1))
    b, r = len(vecs), len(lam)
    u = [[mpmath.fsum(vecs[a][i] * t[a, c] for a in range(b)) for c in range(b)] for i in range(r)]  # Q^T T
    w = [[mpmath.fdot(u[i], [vecs[c][j] for c in range(b)]) for j in range(r)] for i in range(r)]    # Q^T T Q
    values = [[mpmath.mpf(0)] * b for _ in range(b)]
    slopes = [[mpmath.mpf(0)] * b for _ in range(b)]
    # the rule reaches 10^-(2 working_dps) from its ends: at B = 4 the integrand decays only like s^(-3/2)
    # (E|G h|^-2 with |G h|^2 ~ chi^2_3), so a tail cut where the weights fall to 10^-working_dps leaves
    # 10^-(working_dps/2) of it (measured: 30 digits unreachable at B = 4 with the cut of laplace_map)
    for s, jac in zip(*schwinger_rule(scale, rate, alpha, SIZES[level], working_dps if rate else 2 * working_dps)):
        factors = [1 + 2 * s * v for v in lam]
        weight = jac * s ** (alpha - 1) / mpmath.sqrt(mpmath.fprod(factors))
        if rate:
            weight *= mpmath.exp(-rate * s)
        if weight == 0:
            continue
        g = [v / f for v, f in zip(lam, factors)]          # eigenvalues of K_A
        p = [2 * s * x for x in g]                         # of P = 2 s K_A
        k = [[mpmath.fdot(vecs[a], [vi * gi for vi, gi in zip(vecs[c], g)]) for c in range(b)] for a in range(b)]
        pt = [[mpmath.fdot([vecs[a][i] * p[i] for i in range(r)], [u[i][c] for i in range(r)]) for c in range(b)]
              for a in range(b)]
        qz = [[mpmath.fdot([vecs[a][i] * p[i] for i in range(r)], [w[i][j] * p[j] for i in range(r)]) for j in range(r)]
              for a in range(b)]
        ptp = [[mpmath.fdot(qz[a], vecs[c]) for c in range(b)] for a in range(b)]
        log_det_slope = -4 * s * kappa * mpmath.fsum(p[i] * w[i][i] for i in range(r))
        diagonal = [-pt[a][a] + 2 * kappa * ptp[a][a] for a in range(b)]
        for a in range(b):
            for c in range(a, b):
                v, d_aa, d_cc, d_ac = gaussian_kernels.homogeneous_kernel_gradient(coeffs, k[a][a], k[c][c], k[a][c])
                cross = t[a, c] - (pt[a][c] + pt[c][a]) / 2 + 2 * kappa * ptp[a][c]
                slope = d_aa * diagonal[a] + d_cc * diagonal[c] + d_ac * cross - log_det_slope * v / 2
                values[a][c] += weight * v
                slopes[a][c] += weight * slope
                if c != a:
                    values[c][a], slopes[c][a] = values[a][c], slopes[a][c]
    return values, slopes


def _laplace_float(settings, gram, coeffs):
    """Float64 version of :func:`laplace_map` (integer ``alpha``, ``dps <= FLOAT_DPS``), vectorised over nodes."""
    b = gram.shape[0]
    a_plus, a_minus, alpha = float(coeffs[0]), float(coeffs[1]), int(coeffs[2])
    lam, q = centred_spectrum_float(gram)
    rate = float(decay_rate(settings))
    if not lam.size:
        _refuse_zero(settings)
        return np.zeros((b, b)), np.zeros((b, b))
    scale = float(schwinger_scale(lam.tolist(), rate))
    prefactor = b**alpha / math.gamma(alpha)
    tol = 10.0 ** -settings.dps

    def level_values(level):
        with mpmath.workdps(20):
            s, jac = (np.array([float(v) for v in arr])
                      for arr in schwinger_rule(mpmath.mpf(scale), mpmath.mpf(rate), alpha, SIZES[level], 17))
        factors = 1 + 2 * s[:, None] * lam[None, :]
        weight = jac * s ** (alpha - 1) * np.exp(-rate * s - 0.5 * np.log(factors).sum(axis=1))
        m = np.einsum("ai,ci,ni->nac", q, q, lam[None, :] / factors)
        d = np.sqrt(np.clip(np.einsum("naa->na", m), 0, None))
        outer = d[:, :, None] * d[:, None, :]
        rho = np.clip(m / np.where(outer > 0, outer, 1), -1, 1)
        theta = np.arccos(rho)
        same = arccos.orthant(alpha, theta, rho)
        mixed = arccos.orthant(alpha, np.pi - theta, -rho)
        kernel = outer**alpha * ((a_plus**2 + a_minus**2) * same + 2 * a_plus * a_minus * mixed)
        return prefactor * np.einsum("n,nac->ac", weight, kernel)

    def judge(current, previous):
        diff, size = np.abs(current - previous), np.abs(current).max()
        return (current, diff + 1e-15 * size) if diff.max() <= tol * size / 10 else None

    start = next(i for i, n in enumerate(SIZES) if n >= 2 * settings.dps)
    return converge(level_values, judge, ("laplace map, float64", b, settings.dps), start, len(SIZES) - 1,
                    f"the Laplace integral did not converge to {settings.dps} digits (B={b})")


def _refuse_zero(settings):
    if settings.eps == 0:
        raise BnsymError("G Sigma G = 0 at eps = 0: batch norm divides by zero (every input of the batch is the same "
                         "up to a constant)")


def _laplace_level(lam, vecs, entries, coeffs, scale, rate, level, working_dps):
    alpha = coeffs[2]
    rule = zip(*schwinger_rule(scale, rate, alpha, SIZES[level], working_dps))
    diag_needed = sorted({a for key in entries for a in key})
    sums = {key: mpmath.mpf(0) for key in entries}
    for s, jac in rule:
        factors = [1 + 2 * s * v for v in lam]
        det = mpmath.fprod(factors)
        g = [v / f for v, f in zip(lam, factors)]
        weight = jac * s ** (alpha - 1) / mpmath.sqrt(det)
        if rate:
            weight *= mpmath.exp(-rate * s)
        if weight == 0:
            continue
        diag = {a: mpmath.fdot(vecs[a], [vi * gi for vi, gi in zip(vecs[a], g)]) for a in diag_needed}
        for a, c in entries:
            if a == c:
                value = gaussian_kernels.homogeneous_variance(coeffs, diag[a])
            else:
                k_ac = mpmath.fdot(vecs[a], [vi * gi for vi, gi in zip(vecs[c], g)])
                value = gaussian_kernels.homogeneous_kernel(coeffs, diag[a], diag[c], k_ac)
            sums[(a, c)] += weight * value
    return sums


def _as_output(b, values, errors, entries):
    full = len(entries) == b * (b + 1) // 2
    if not full:
        return values, errors
    v, e = mpmath.matrix(b, b), mpmath.matrix(b, b)
    for (a, c), value in values.items():
        v[a, c] = v[c, a] = value
        e[a, c] = e[c, a] = errors[(a, c)]
    return v, e
