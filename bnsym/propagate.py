r"""The batch Gram matrix layer by layer, for any input batch (THEORY.md sections 2, 6, 7).

``propagate`` iterates the mean-field map ``Sigma^l = V(Sigma^{l-1})`` from
an arbitrary positive semidefinite input Gram matrix and reports, per layer,
the distance to the BSB1 fixed point ``Sigma*`` and its parts on the
invariant subspaces ``L`` and ``M`` of THEORY.md section 6 (whose per-layer
ratios tend to the forward eigenvalues of :func:`bnsym.spectrum`).

Two methods:

* ``"laplace"`` (positively homogeneous ``phi`` of degree ``alpha`` at
  ``beta = 0``, ``eps = 0``): THEORY.md section 7,

      V(Sigma) = B^alpha / Gamma(alpha) int_0^inf s^(alpha-1) det(I + 2 s K)^(-1/2)
                 V_phi(K (I + 2 s K)^(-1)) ds,      K = G Sigma G,

  one integral per entry, all entries on one tanh-sinh rule after the map
  ``s = c (1 + x)/(1 - x)`` (``c = 1/(2 * geometric mean of the nonzero
  eigenvalues of K)``); ``K`` is diagonalised once per layer so each node
  costs ``O(B r)`` per entry (``r = rank K``).  The rule level is raised
  until two consecutive levels agree to ``dps`` digits (their difference is
  the error).  ``V_phi`` is :func:`bnsym.gaussian_kernels.homogeneous_kernel`.
* ``"sampling"`` (every other case): ``R`` independent Monte Carlo chains of
  :func:`bnsym.sampling.gram_map`; the mean over chains is reported with its
  standard error over chains (which includes the compounding of earlier
  layers' noise) and the result says so (``method``, ``stderr``).

Cost: Laplace ``O(depth * levels * nodes * B^2 r)`` mpmath operations
(about a second per layer for B = 8 at 15 digits); sampling
``O(depth * R * samples * B^2)`` flops.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

import mpmath
import numpy as np

from . import gaussian_kernels
from .errors import BnsymInputError, PrecisionError
from .fixed_point import bsb1_state
from .quadrature import SIZES, tanh_sinh
from .results import FixedPoint, Settings, make_settings

METHODS = ("auto", "laplace", "sampling")
INPUTS = ("random", "orthogonal", "collinear")
#: Up to this many digits the Laplace integral runs in float64 (integer degrees).
FLOAT_DPS = 12


# --------------------------------------------------------------------------- results
@dataclass(frozen=True, eq=False)
class Propagation:
    """The Gram matrix per layer and its distance to the BSB1 point.

    ``grams[l]`` (NumPy, ``l = 0..depth``; ``grams[0]`` the input) with
    ``errors[l]`` (Laplace: quadrature error estimate; sampling: standard error over
    chains, entrywise); ``grams_mp`` the Laplace trajectory at full precision (None for
    sampling).  ``distance[l] = ||Sigma^l - Sigma*||_F``; ``distance_L``/``distance_M``
    the Frobenius norms of the ``L`` and ``M`` parts of ``G (Sigma^l - Sigma*) G``;
    ``*_error`` their error estimates (one standard error for sampling, zero-based
    quadrature error for Laplace).  Layer 0 is the raw input (not normalised).
    """

    settings: Settings
    method: str
    grams: tuple
    errors: tuple
    distance: tuple
    distance_L: tuple
    distance_M: tuple
    distance_error: tuple
    fixed_point: FixedPoint
    grams_mp: tuple | None = None
    samples: int | None = None
    chains: int | None = None

    @property
    def depth(self) -> int:
        return len(self.grams) - 1

    def as_dict(self) -> dict:
        return {
            "settings": self.settings.as_dict(),
            "method": self.method,
            "samples_per_layer": self.samples,
            "chains": self.chains,
            "layers": [
                {
                    "layer": l,
                    "distance": float(self.distance[l]),
                    "distance_error": float(self.distance_error[l]),
                    "distance_L": float(self.distance_L[l]),
                    "distance_M": float(self.distance_M[l]),
                    "gram": self.grams[l].tolist(),
                }
                for l in range(len(self.grams))
            ],
        }


# --------------------------------------------------------------------------- public API
def propagate(
    activation, input_gram, depth, *, gamma=1, beta=0, eps=0, sigma_w=1, dps=15, method="auto",
    batch_size=None, samples=10**5, chains=4, seed=0,
) -> Propagation:
    r"""Iterate the mean-field Gram map ``depth`` times from ``input_gram``.

    ``input_gram``: a symmetric positive semidefinite ``B x B`` array
    (``B >= 4``; checked: square, finite, symmetric, PSD, ``G Sigma G != 0``);
    ``batch_size``, if given, must equal ``B``.  ``depth``: integer >= 1.
    ``method``: ``"auto"`` (Laplace where it applies, else sampling),
    ``"laplace"`` (refused with :class:`~bnsym.errors.BnsymInputError` where
    it does not apply) or ``"sampling"`` (``samples`` per layer and chain,
    ``chains`` independent chains, seeds from ``seed``).  Laplace values are
    promised to ``dps`` digits relative to the largest entry.

    >>> p = propagate("relu", np.diag([1.0, 2.0, 3.0, 4.0]), 3, dps=10)
    >>> p.method, [round(float(d), 6) for d in p.distance_L[1:]]
    ('laplace', [0.143759, 0.076757, 0.040659])
    >>> round(p.distance_L[3] / p.distance_L[2], 3)  # -> lambda_L = 0.5258 (bnsym.spectrum("relu", 4))
    0.53
    """
    gram = input_gram_matrix(input_gram, batch_size=batch_size)
    b = gram.shape[0]
    depth = _depth(depth)
    settings = make_settings(activation, b, gamma=gamma, beta=beta, eps=eps, sigma_w=sigma_w, dps=dps)
    if method not in METHODS:
        raise BnsymInputError(f"method must be one of {', '.join(map(repr, METHODS))}, got {method!r}")
    exact = laplace_applies(settings)
    if method == "laplace" and not exact:
        raise BnsymInputError(f"method='laplace' does not apply: {laplace_obstacle(settings)}; use method='sampling' or 'auto'")
    use_laplace = method == "laplace" or (method == "auto" and exact)
    fp = bsb1_state(settings).fixed_point
    star = fp.array()
    if use_laplace:
        grams_mp, errors_mp = [mpmath.matrix(gram.tolist())], [mpmath.matrix(b, b)]
        with mpmath.workdps(settings.working_dps):
            for _ in range(depth):
                value, error = laplace_map(settings, grams_mp[-1])
                grams_mp.append(value)
                errors_mp.append(error)
        grams = [np.array(g.tolist(), dtype=float) for g in grams_mp]
        errors = [np.array(e.tolist(), dtype=float) for e in errors_mp]
        dist = [_distances(g, star) for g in grams]
        dist_err = [float(np.sqrt((e**2).sum())) for e in errors]
        return Propagation(
            settings, "laplace", tuple(grams), tuple(errors), *_columns(dist), tuple(dist_err), fp, grams_mp=tuple(grams_mp)
        )
    return _sampled(settings, gram, depth, star, fp, samples, chains, seed)


def laplace_applies(settings: Settings) -> bool:
    """True when the Laplace method of THEORY.md section 7 is exact for these settings."""
    return laplace_obstacle(settings) is None


def laplace_obstacle(settings: Settings):
    """Why the Laplace method does not apply (None when it does)."""
    if settings.activation.degree is None:
        return f"{settings.activation.label} is not positively homogeneous"
    if settings.beta != 0:
        return "beta != 0 breaks homogeneity"
    if settings.eps != 0:
        return "eps > 0 keeps the norm |G h| in the map"
    return None


def input_gram_matrix(value, *, batch_size=None) -> np.ndarray:
    """Validate an input Gram matrix: square ``B x B`` (``B >= 4``), finite, symmetric, PSD, not constant."""
    try:
        m = np.array(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise BnsymInputError("input_gram must be a square matrix of real numbers") from None
    if m.ndim != 2 or m.shape[0] != m.shape[1]:
        raise BnsymInputError(f"input_gram must be a square B x B matrix, got shape {m.shape}")
    b = m.shape[0]
    if b < 4:
        raise BnsymInputError(f"input_gram must be at least 4 x 4 (batch size >= 4), got {b} x {b}")
    if batch_size is not None and int(batch_size) != b:
        raise BnsymInputError(f"input_gram is {b} x {b} but batch_size is {batch_size}")
    if not np.all(np.isfinite(m)):
        raise BnsymInputError("input_gram must be finite (it contains nan or inf)")
    scale = float(np.abs(m).max())
    if np.abs(m - m.T).max() > 1e-12 * max(scale, 1e-300):
        raise BnsymInputError("input_gram must be symmetric")
    m = (m + m.T) / 2
    low = float(np.linalg.eigvalsh(m).min())
    if low < -1e-10 * max(scale, 1e-300):
        raise BnsymInputError(f"input_gram must be positive semidefinite (smallest eigenvalue {low:.3g})")
    centred = m - m.mean(axis=0)[None, :] - m.mean(axis=1)[:, None] + m.mean()
    if np.abs(centred).max() <= 1e-12 * max(scale, 1e-300):
        raise BnsymInputError("input_gram has G Sigma G = 0: every input is the same up to a constant, batch norm is undefined")
    return m


def example_input(kind: str, batch_size: int, *, seed: int = 0) -> np.ndarray:
    """A named input Gram matrix far from (or, for ``orthogonal``, on) the BSB1 family.

    ``random``: Gram of ``B`` Gaussian vectors in ``R^B`` divided by ``B``;
    ``orthogonal``: the identity (BSB1 already); ``collinear``: rank one,
    ``x_a = (1 + a/B) v`` plus 1% independent noise (so ``K`` has full rank).
    """
    if kind not in INPUTS:
        raise BnsymInputError(f"input must be one of {', '.join(INPUTS)} or a .npy file, got {kind!r}")
    b = int(batch_size)
    rng = np.random.default_rng(seed)
    if kind == "orthogonal":
        return np.eye(b)
    if kind == "random":
        x = rng.standard_normal((b, b))
        return x @ x.T / b
    scales = 1 + np.arange(b) / b
    x = scales[:, None] * np.ones((b, b)) / np.sqrt(b) + 0.01 * rng.standard_normal((b, b)) / np.sqrt(b)
    return x @ x.T


# --------------------------------------------------------------------------- Laplace method
def laplace_map(settings: Settings, gram, *, entries=None):
    """``(V(Sigma), error)`` by the Laplace method, as mpmath matrices (or dicts for ``entries``).

    ``entries``: optional list of ``(a, b)`` pairs to compute only those
    entries (for finite differences); then dicts ``{(a, b): value}`` are returned.
    Runs at the current mpmath precision; promises ``settings.dps`` digits
    relative to the largest entry.
    """
    b = gram.rows
    coeffs = gaussian_kernels.homogeneous_coefficients(settings.activation, settings.gamma)
    if entries is None and settings.dps <= FLOAT_DPS and coeffs[2] == int(coeffs[2]):
        value, error = _laplace_float(settings, np.array(gram.tolist(), dtype=float), coeffs)
        return mpmath.matrix(value.tolist()), mpmath.matrix(error.tolist())
    alpha = coeffs[2]
    g = mpmath.eye(b) - mpmath.ones(b, b) / b
    k = g * gram * g
    k = (k + k.T) / 2
    lam, q = mpmath.eigsy(k)
    top = max(abs(v) for v in lam)
    keep = [i for i in range(b) if lam[i] > top * mpmath.mpf(10) ** (-(mpmath.mp.dps - 5))]
    lam = [lam[i] for i in keep]
    vecs = [[q[a, i] for i in keep] for a in range(b)]
    if entries is None:
        entries = [(a, c) for a in range(b) for c in range(a, b)]
    scale = 1 / (2 * mpmath.exp(mpmath.fsum(mpmath.log(v) for v in lam) / len(lam)))
    prefactor = mpmath.mpf(b) ** alpha / mpmath.gamma(alpha)
    tol = mpmath.mpf(10) ** -settings.dps
    level = next(i for i, n in enumerate(SIZES) if n >= 2 * settings.dps)
    previous = None
    while level < len(SIZES):
        current = _laplace_level(lam, vecs, entries, coeffs, scale, level, mpmath.mp.dps)
        current = {key: prefactor * v for key, v in current.items()}
        if previous is not None:
            size = max(abs(v) for v in current.values())
            diff = {key: abs(current[key] - previous[key]) for key in entries}
            if max(diff.values()) <= tol * size / 10:
                return _as_output(b, current, diff, entries)
        previous = current
        level += 1
    raise PrecisionError(f"the Laplace integral did not converge to {settings.dps} digits (B={b})")


def _laplace_float(settings, gram, coeffs):
    """Float64 version of :func:`laplace_map` (integer ``alpha``, ``dps <= FLOAT_DPS``), vectorised over nodes."""
    b = gram.shape[0]
    a_plus, a_minus, alpha = float(coeffs[0]), float(coeffs[1]), int(coeffs[2])
    g = np.eye(b) - 1 / b
    lam, q = np.linalg.eigh(g @ gram @ g)
    keep = lam > lam.max() * 1e-13
    lam, q = lam[keep], q[:, keep]
    scale = 1 / (2 * math.exp(np.log(lam).mean()))
    prefactor = b**alpha / math.gamma(alpha)
    tol = 10.0 ** -settings.dps
    previous = None
    level = next(i for i, n in enumerate(SIZES) if n >= 2 * settings.dps)
    while level < len(SIZES):
        left, right, weights = (np.array([float(v) for v in arr]) for arr in tanh_sinh(SIZES[level], 17))
        s = scale * left / right
        factors = 1 + 2 * s[:, None] * lam[None, :]
        weight = weights * 2 * scale / right**2 * s ** (alpha - 1) * np.exp(-0.5 * np.log(factors).sum(axis=1))
        m = np.einsum("ai,ci,ni->nac", q, q, lam[None, :] / factors)
        d = np.sqrt(np.clip(np.einsum("naa->na", m), 0, None))
        outer = d[:, :, None] * d[:, None, :]
        rho = np.clip(m / np.where(outer > 0, outer, 1), -1, 1)
        theta = np.arccos(rho)
        same = _orthant_float(alpha, theta)
        mixed = _orthant_float(alpha, np.pi - theta)
        kernel = outer**alpha * ((a_plus**2 + a_minus**2) * same + 2 * a_plus * a_minus * mixed)
        current = prefactor * np.einsum("n,nac->ac", weight, kernel)
        if previous is not None:
            diff = np.abs(current - previous)
            if diff.max() <= tol * np.abs(current).max() / 10:
                return current, diff + 1e-15 * np.abs(current).max()
        previous = current
        level += 1
    raise PrecisionError(f"the Laplace integral did not converge to {settings.dps} digits (B={b})")


def _orthant_float(alpha: int, theta):
    """``E[z1^alpha z2^alpha 1{z1, z2 > 0}]`` at ``cos(theta) = rho`` (float64, integer ``alpha``).

    ``2^alpha Gamma(alpha + 1) / (2 pi) J(theta)``, ``J(theta) = int_{theta-pi/2}^{pi/2}
    cos(w)^alpha cos(w - theta)^alpha dw`` summed from the Fourier expansions of the cosine powers.
    """
    z = np.exp(1j * theta)
    powers = {0: np.ones_like(z)}
    for m in range(1, 2 * alpha + 1):
        powers[m] = powers[m - 1] * z
        powers[-m] = np.conj(powers[m])
    total = np.zeros_like(z)
    for j in range(alpha + 1):
        for l in range(alpha + 1):
            k = 2 * alpha - 2 * j - 2 * l
            coef = math.comb(alpha, j) * math.comb(alpha, l) * powers[-(alpha - 2 * l)]
            # int_{theta - pi/2}^{pi/2} e^{i k w} dw, with e^{i k pi/2} = i^k and e^{i k (theta - pi/2)} = z^k (-i)^k
            piece = (np.pi - theta) if k == 0 else (1j**k - powers[k] * (-1j) ** k) / (1j * k)
            total = total + coef * piece
    return 2.0**alpha * math.gamma(alpha + 1) / (2 * np.pi) * total.real / 4.0**alpha


def _laplace_level(lam, vecs, entries, coeffs, scale, level, dps):
    left, right, weights = tanh_sinh(SIZES[level], dps)
    alpha = coeffs[2]
    diag_needed = sorted({a for key in entries for a in key})
    sums = {key: mpmath.mpf(0) for key in entries}
    for lo, hi, w in zip(left, right, weights):
        s = scale * lo / hi
        jac = 2 * scale / (hi * hi)
        factors = [1 + 2 * s * v for v in lam]
        det = mpmath.fprod(factors)
        g = [v / f for v, f in zip(lam, factors)]
        weight = w * jac * s ** (alpha - 1) / mpmath.sqrt(det)
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


# --------------------------------------------------------------------------- sampling fallback
def _sampled(settings, gram, depth, star, fp, samples, chains, seed):
    from . import sampling  # the independent Monte Carlo witness

    samples = _positive_int(samples, "samples")
    chains = _positive_int(chains, "chains", minimum=2)
    kw = dict(gamma=float(settings.gamma), beta=float(settings.beta), eps=float(settings.eps), sigma_w=float(settings.sigma_w))
    runs = []
    for chain in range(chains):
        current, path = gram, [gram]
        for layer in range(depth):
            current = sampling.gram_map(settings.activation, current, samples=samples, seed=[seed, chain, layer], **kw).mean
            current = (current + current.T) / 2
            path.append(current)
        runs.append(np.array(path))
    runs = np.array(runs)  # chains, depth+1, B, B
    mean = runs.mean(axis=0)
    stderr = runs.std(axis=0, ddof=1) / math.sqrt(chains)
    per_chain = np.array([[_distances(g, star) for g in run] for run in runs])  # chains, depth+1, 3
    dist = [_distances(g, star) for g in mean]
    dist_err = per_chain[:, :, 0].std(axis=0, ddof=1) / math.sqrt(chains)
    return Propagation(
        settings, "sampling", tuple(mean), tuple(stderr), *_columns(dist), tuple(float(x) for x in dist_err), fp,
        samples=samples, chains=chains,
    )


# --------------------------------------------------------------------------- helpers
def subspace_parts(x: np.ndarray):
    """``(X_G, X_L, X_M)``: the parts of ``G X G`` on ``span{G}``, ``L`` and ``M`` (THEORY.md section 6)."""
    b = x.shape[0]
    g = np.eye(b) - np.ones((b, b)) / b
    xg = g @ x @ g
    part_g = np.trace(xg) / (b - 1) * g
    d = np.diag(xg)
    y = (d - d.mean()) / (1 - 2 / b)
    part_l = g @ np.diag(y) @ g
    return part_g, part_l, xg - part_g - part_l


def _distances(gram, star):
    diff = gram - star
    _, part_l, part_m = subspace_parts(diff)
    return float(np.linalg.norm(diff)), float(np.linalg.norm(part_l)), float(np.linalg.norm(part_m))


def _columns(dist):
    return tuple(d[0] for d in dist), tuple(d[1] for d in dist), tuple(d[2] for d in dist)


def _depth(value):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise BnsymInputError(f"depth must be an integer >= 1, got {value!r}")
    if value < 1:
        raise BnsymInputError(f"depth must be >= 1, got {value}")
    return int(value)


def _positive_int(value, name, minimum=1):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise BnsymInputError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


# --------------------------------------------------------------------------- rates measured in simulations
@dataclass(frozen=True)
class MeasuredRate:
    """A per-layer contraction factor on one subspace measured in simulated networks.

    ``value`` is the slope pooled over seeds, ``stderr`` its jackknife
    standard error over seeds, ``rates`` the per-seed slopes; ``layers`` the layers used.
    """

    subspace: str
    value: float
    stderr: float
    rates: tuple
    layers: tuple

    def interval(self, sigmas: float = 3.0) -> tuple:
        return (self.value - sigmas * self.stderr, self.value + sigmas * self.stderr)


def forward_rate(grams, star, subspace: str, layers) -> MeasuredRate:
    r"""Per-layer rate of ``Sigma^l -> Sigma*`` on ``subspace`` ("L" or "M") in simulated Grams.

    ``grams``: array ``(seeds, depth+1, B, B)`` (e.g. :attr:`bnsym.simulation.Simulation.grams`);
    ``star``: the fixed point; ``layers = (lo, hi)``.  With ``X_l`` the
    ``subspace`` part of ``G (Sigma^l - Sigma*) G``, the estimate per seed is the least-squares slope
    ``sum_l <X_{l+1}, X_l> / sum_l <X_l, X_l>`` over ``lo <= l < hi``.  Since
    ``E[Sigma^{l+1} | Sigma^l] = V(Sigma^l)`` exactly at finite width (fresh
    Gaussian weights), the slope estimates the forward eigenvalue once
    ``X_l`` is small (the finite-width fluctuations keep feeding it).
    """
    index = _subspace_index(subspace)
    lo, hi = layers
    sums = []
    for run in np.asarray(grams):
        parts = [subspace_parts(g - star)[index] for g in run[lo : hi + 1]]
        num = sum(float(np.sum(a * b)) for a, b in zip(parts[1:], parts[:-1]))
        den = sum(float(np.sum(a * a)) for a in parts[:-1])
        sums.append((num, den))
    return _measured(subspace, sums, layers)


def backward_rate(gradient_grams, subspace: str, layers) -> MeasuredRate:
    r"""Per-layer growth of the ``subspace`` part of the gradient Gram ``Pi^l`` walking down.

    With ``Y_l`` the ``subspace`` part of ``Pi^l`` divided by its ``G`` scale
    ``m_l = tr(G Pi^l)/(B-1)``, the per-seed estimate is
    ``sum_l <P Pi^{l-1}, P Pi^l>/m_l^2 / sum_l |P Pi^l|^2/m_l^2`` over ``lo < l <= hi``:
    the slope of ``Pi^{l-1} = T(Pi^l)`` restricted to the subspace.
    """
    index = _subspace_index(subspace)
    lo, hi = layers
    sums = []
    for run in np.asarray(gradient_grams):
        num = den = 0.0
        for l in range(hi, lo, -1):
            parts_top = subspace_parts(run[l])
            scale = np.trace(parts_top[0]) / (run.shape[-1] - 1)
            top = parts_top[index] / scale
            below = subspace_parts(run[l - 1])[index] / scale
            num += float(np.sum(below * top))
            den += float(np.sum(top * top))
        sums.append((num, den))
    return _measured(subspace, sums, layers)


def _subspace_index(subspace):
    if subspace not in ("L", "M"):
        raise BnsymInputError(f"subspace must be 'L' or 'M', got {subspace!r}")
    return 1 if subspace == "L" else 2


def _measured(subspace, sums, layers):
    """Pooled slope ``sum num / sum den`` over seeds, with its jackknife standard error over seeds."""
    sums = np.array(sums)
    num, den = sums[:, 0], sums[:, 1]
    value = float(num.sum() / den.sum())
    k = len(sums)
    if k < 2:
        return MeasuredRate(subspace, value, math.inf, (value,), tuple(layers))
    leave_out = (num.sum() - num) / (den.sum() - den)
    stderr = float(math.sqrt((k - 1) / k * np.sum((leave_out - leave_out.mean()) ** 2)))
    return MeasuredRate(subspace, value, stderr, tuple(float(v) for v in num / den), tuple(layers))


def subspace_direction(batch_size: int, subspace: str) -> np.ndarray:
    """A unit-Frobenius-norm matrix in ``L`` (from ``v = (+1, -1, +1, ...)``) or ``M``
    (the ``M`` part of ``x y^T + y x^T`` for two orthogonal sign patterns)."""
    b = int(batch_size)
    index = _subspace_index(subspace)
    if index == 1:
        seed = np.diag([(-1.0) ** i for i in range(b)])
    else:
        x = np.where(np.arange(b) < b // 2, 1.0, -1.0)
        y = np.array([(-1.0) ** i for i in range(b)])
        seed = np.outer(x, y) + np.outer(y, x)
    part = subspace_parts(seed)[index]
    return part / np.linalg.norm(part)


def seeded_gradient(batch_size: int, subspace: str, amplitude: float = 0.9):
    """``output_gradient`` for :func:`bnsym.simulate` whose rows are ``N(0, G + t P)``,
    ``P`` the :func:`subspace_direction` scaled to spectral norm 1 and ``t = amplitude < 1``
    (so the covariance stays positive semidefinite)."""
    b = int(batch_size)
    direction = subspace_direction(b, subspace)
    cov = np.eye(b) - 1 / b + amplitude * direction / np.abs(np.linalg.eigvalsh(direction)).max()
    lam, vec = np.linalg.eigh(cov)
    factor = vec * np.sqrt(np.clip(lam, 0, None))

    def draw(rng, width, batch):
        return rng.standard_normal((width, b)) @ factor.T

    return draw


def forward_decay_rate(grams, star, subspace: str, *, start: int = 2, floor_layers=None, threshold: float = 3.0) -> MeasuredRate:
    r"""Per-layer decay of the deterministic excess of the ``subspace`` deviation over the noise floor.

    At finite width the deviation ``X_l`` (``subspace`` part of ``G(Sigma^l - Sigma*)G``) is a
    decaying transient plus fluctuations of stationary size, ``E|X_l|^2 ~ A lambda^(2l) + F``.
    ``F`` is the mean of ``|X_l|^2`` over ``floor_layers`` (default: the last third) and seeds;
    ``lambda`` is fitted by least squares of ``log(E|X_l|^2 - F) = a + 2 l log(lambda)`` over
    the layers ``l >= start`` where the excess is above ``threshold * F`` (transient well above the
    noise).  Error: jackknife over seeds.  Use an input whose deviation lies in ``subspace``.
    """
    index = _subspace_index(subspace)
    grams = np.asarray(grams)
    seeds, layers = grams.shape[0], grams.shape[1]
    sq = np.array([[float(np.sum(subspace_parts(g - star)[index] ** 2)) for g in run] for run in grams])
    if floor_layers is None:
        floor_layers = (layers - layers // 3, layers - 1)
    lo_f, hi_f = floor_layers

    def fit(rows):
        mean = sq[rows].mean(axis=0)
        floor = mean[lo_f : hi_f + 1].mean()
        excess = mean - floor
        use = [l for l in range(start, lo_f) if excess[l] > threshold * floor]
        # stop at the first layer that drops below the threshold (keep a contiguous window)
        window = []
        for l in use:
            if window and l != window[-1] + 1:
                break
            window.append(l)
        if len(window) < 2:
            return float("nan"), (start, start)
        slope = np.polyfit(window, np.log(excess[window]), 1)[0]
        return float(np.exp(slope / 2)), (window[0], window[-1])

    value, window = fit(np.arange(seeds))
    if seeds < 2:
        return MeasuredRate(subspace, value, math.inf, (value,), window)
    leave = np.array([fit(np.delete(np.arange(seeds), s))[0] for s in range(seeds)])
    stderr = float(math.sqrt((seeds - 1) / seeds * np.sum((leave - leave.mean()) ** 2)))
    return MeasuredRate(subspace, value, stderr, tuple(float(v) for v in leave), window)
