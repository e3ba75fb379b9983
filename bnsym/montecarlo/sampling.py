r"""Monte Carlo estimators of the mean-field maps: the independent witness.

Everything here is computed by brute-force sampling in NumPy from the
definitions of docs/theory.md sections 1-2 and 5, without any of the engine's
formulas (no sphere laws, no closed forms, no quadrature): the engine is
tested against these estimators, so they must not share its mathematics.

Definitions (batch on the last axis, ``h`` in R^B, ``G = I - 11^T/B``):

* batch norm: ``xhat = G h / sigma``, ``sigma = sqrt(|G h|^2 / B + eps)``
  (biased variance), ``B_phi(h) = phi(gamma xhat + beta)``;
* its Jacobian, formed analytically:
  ``J = diag(D) (G - xhat xhat^T / B) / sigma``,  ``D = gamma phi'(gamma xhat + beta)``;
* forward map ``V(Sigma) = E_{h ~ N(0, sigma_w^2 Sigma)}[B_phi(h) B_phi(h)^T]``;
* backward map ``T(Pi) = sigma_w^2 E[J^T Pi J]``;
* ``lambda_G = <G, T(G)> / <G, G>`` at the fixed point (``T(G)`` is a
  multiple of ``G`` by permutation symmetry, so this is its eigenvalue).

Only ``G h`` enters ``B_phi``, so ``h`` is drawn as ``G h = F z`` with
``F F^T = G (sigma_w^2 Sigma) G`` (rank ``r``) and ``z ~ N(0, I_r)``.

Variance reduction (``radial="exact"``, the default at ``eps = 0``).  At
``eps = 0`` the Jacobian carries ``1/sigma^2 = B / |G h|^2`` and
``E[1/|G h|^4]`` is infinite for ``B <= 5``: plain sampling then converges
without a valid standard error.  Writing ``z = rho w`` (``rho = |z| ~ chi_r``
independent of the direction ``w``) and using only the chi-square fact
``E[1/rho^2] = 1/(r-2)``, the radius is integrated exactly:
``E[X / |G h|^2 | w] = X / ((r - 2) |F w|^2)`` since ``B_phi`` and ``J |G h|``
depend on ``w`` alone.  ``radial="sampled"`` keeps the raw estimator.

Every estimator is chunked (memory ``O(chunk B^2)``), seeded, and draws its
normals from one ``numpy.random.Generator`` stream in order, so the result
does not depend on ``chunk`` except through floating-point rounding.
Standard errors are the sample standard deviation over ``sqrt(samples)``
(pairwise-merged per chunk).

>>> V = gram_map("identity", np.eye(4), samples=20000, seed=1)
>>> bool(np.allclose(V.mean, np.eye(4) - (1 - np.eye(4)) / 3, atol=6 * V.stderr.max()))
True
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from bnsym import validation
from bnsym.estimate import STANDARD_ERROR, Value
from bnsym.activations import activation as as_activation
from bnsym.errors import BnsymError, BnsymInputError

#: Default number of Monte Carlo samples.
DEFAULT_SAMPLES = 10**6
#: Floats per chunk array (about 16 MB) used to size chunks when ``chunk`` is None.
CHUNK_FLOATS = 2**21


# ----------------------------------------------------------------------------- results
@dataclass(frozen=True, eq=False)
class SampledMatrix:
    """A sampled ``B x B`` expectation: entrywise ``mean`` and ``stderr``, and the sample count."""

    mean: np.ndarray
    stderr: np.ndarray
    samples: int
    settings: dict = field(default_factory=dict, repr=False)


@dataclass(frozen=True)
class SampledValue(Value):
    """A Monte Carlo mean: ``value`` with its standard error ``error`` (also ``.stderr``) from
    ``samples`` draws (or seeds), in the result family of :mod:`bnsym.estimate`."""

    value: float
    error: float
    samples: int = 0
    settings: dict = field(default_factory=dict, repr=False, compare=False)
    meaning: str = field(default=STANDARD_ERROR, kw_only=True)

    def __str__(self) -> str:
        return f"{self.value:.6g} ± {self.error:.2g}"


@dataclass(frozen=True)
class SampledFixedPoint(Value):
    """Sampled BSB1 fixed point ``Sigma* = (q - c) I + c 11^T`` with standard errors,
    shaped like :class:`bnsym.FixedPoint`: ``value``/``error`` are ``q`` and its standard
    error, ``c``/``c_error`` and ``spread``/``spread_error`` the others.

    ``spread = q - c`` is estimated per sample (no cancellation between the
    errors of ``q`` and ``c``); ``scale = sigma_w^2 spread``.
    """

    value: float
    error: float
    c: float = 0.0
    c_error: float = 0.0
    spread: float = 0.0
    spread_error: float = 0.0
    samples: int = 0
    settings: dict = field(default_factory=dict, repr=False, compare=False)
    meaning: str = field(default=STANDARD_ERROR, kw_only=True)

    @property
    def q(self) -> float:
        """``q``, the diagonal entry (= ``value``)."""
        return self.value

    @property
    def q_stderr(self) -> float:
        return self.error

    @property
    def c_stderr(self) -> float:
        return self.c_error

    @property
    def spread_stderr(self) -> float:
        return self.spread_error

    @property
    def scale(self) -> float:
        return self.settings.get("sigma_w", 1.0) ** 2 * self.spread

    def array(self) -> np.ndarray:
        """``Sigma*`` as a ``B x B`` float64 NumPy array (as :meth:`bnsym.FixedPoint.array`)."""
        b = self.settings["batch_size"]
        return (self.q - self.c) * np.eye(b) + self.c * np.ones((b, b))

    def matrix(self):
        """``Sigma*`` as an ``mpmath.matrix`` (as :meth:`bnsym.FixedPoint.matrix`)."""
        import mpmath

        return mpmath.matrix(self.array().tolist())


# ----------------------------------------------------------------------------- batch norm
def normalise(h, eps=0.0, axis=-1, centred=False):
    """``(xhat, inv_sigma)`` of batch norm along ``axis`` of ``h`` (the batch axis; default the last).

    ``xhat = (h - mean) / sqrt(var + eps)`` (biased variance) and
    ``inv_sigma = 1 / sqrt(var + eps)`` with the shape of ``h`` without ``axis``.
    ``centred=True`` says that ``h`` already has mean zero along ``axis`` (up to rounding),
    so the mean is not subtracted (and ``h`` itself is scaled in place into ``xhat``).
    Raises :class:`~bnsym.errors.BnsymError` if a row has zero variance at
    ``eps = 0`` (batch norm divides by zero).  Cost ``O(h.size)``.
    """
    centred = h if centred else h - h.mean(axis=axis, keepdims=True)
    var = _batch_dot(centred, centred, axis)
    var /= h.shape[axis]
    if eps:
        var += eps
    elif not np.all(var > 0):
        raise BnsymError(
            "a row of pre-activations has zero variance across the batch; batch norm divides by zero "
            "at eps = 0 (use eps > 0 or a batch with distinct inputs)"
        )
    inv_sigma = 1.0 / np.sqrt(var)
    centred *= np.expand_dims(inv_sigma, axis)
    return centred, inv_sigma


def apply_batchnorm(h, activation, *, gamma=1, beta=0, eps=0):
    r"""``B_phi(h) = phi(gamma (h - mean h) / sqrt(var h + eps) + beta)`` on the last axis.

    ``h``: array of shape ``(..., B)``, ``B >= 2`` (the batch on the last
    axis, biased variance).  Cost ``O(h.size)`` plus the activation.

    >>> apply_batchnorm(np.array([1.0, 2.0, 3.0, 6.0]), "relu").round(4)  # 3 / sqrt(3.5) last
    array([0.    , 0.    , 0.    , 1.6036])
    """
    act, gamma, beta, eps = as_activation(activation), validation.real_float(gamma, name="gamma", nonzero=True), validation.real_float(beta, name="beta"), validation.real_float(eps, name="eps", nonnegative=True)
    h = validation.batch_array(h, name="h")
    xhat, _ = _checked_normalise(h, eps, "h")
    return act.np(gamma * xhat + beta)


def jacobian(h, activation, *, gamma=1, beta=0, eps=0):
    r"""The Jacobian ``J = d B_phi / d h`` for each row of ``h`` (shape ``(..., B, B)``).

    ``J = diag(D) (G - xhat xhat^T / B) / sigma``, ``D = gamma phi'(gamma xhat + beta)``:
    the derivative of the normalisation times ``phi'``.  Cost ``O(B^2)`` per row.
    Used to test the structured products below; they never form ``J``.
    """
    act, gamma, beta, eps = as_activation(activation), validation.real_float(gamma, name="gamma", nonzero=True), validation.real_float(beta, name="beta"), validation.real_float(eps, name="eps", nonnegative=True)
    h = validation.batch_array(h, name="h")
    b = h.shape[-1]
    xhat, inv_sigma = _checked_normalise(h, eps, "h")
    d = gamma * act.np(gamma * xhat + beta, derivative=True)
    proj = np.eye(b) - 1.0 / b - xhat[..., :, None] * xhat[..., None, :] / b
    return d[..., :, None] * proj * inv_sigma[..., None, None]


def batchnorm_vjp(grad, xhat, inv_sigma, d, axis=-1, out=None, scratch=None):
    r"""``J^T g`` for rows ``g`` of ``grad``: the batch-norm backward pass along ``axis`` (the batch axis).

    With ``y = D * g``: ``J^T g = (y - mean(y) - xhat mean(xhat y)) / sigma``.
    ``xhat``, ``inv_sigma`` come from :func:`normalise` (same ``axis``), ``d`` is
    ``gamma phi'(gamma xhat + beta)``.  ``out``: the array to write the result to;
    ``scratch``: an array of the same shape that may be overwritten (``d`` itself, when the
    caller no longer needs it).  Cost ``O(grad.size)``.
    """
    y = np.multiply(grad, d, out=out)
    projection = np.expand_dims(_batch_dot(xhat, y, axis), axis)
    projection /= y.shape[axis]
    y -= y.mean(axis=axis, keepdims=True)
    y -= np.multiply(xhat, projection, out=scratch)
    y *= np.expand_dims(inv_sigma, axis)
    return y


def _batch_dot(a, b, axis):
    """``sum_axis a * b`` (the batch axis ``-1`` or ``-2``: one fused pass, no temporary; else via a product)."""
    if axis in (-1, a.ndim - 1):
        return np.einsum("...a,...a->...", a, b)
    if axis in (-2, a.ndim - 2):
        return np.einsum("...an,...an->...n", a, b)
    return (a * b).sum(axis=axis)


def sandwich(d, w, pi):
    r"""``P (D D^T * Pi) P`` per row, ``P = G - w w^T`` (so ``J^T Pi J = sandwich / sigma^2``).

    ``d``, ``w``: arrays ``(n, B)`` (``w = xhat / sqrt(B)``, centred); ``pi``:
    ``B x B``.  With ``K = G (D D^T * Pi) G`` and ``G w = w``:
    ``P M P = K - (K w) w^T - w (K w)^T + (w^T K w) w w^T``.  ``O(n B^2)``.
    """
    k = d[:, :, None] * pi[None] * d[:, None, :]
    k -= k.mean(axis=1, keepdims=True)
    k -= k.mean(axis=2, keepdims=True)
    kw = np.einsum("nab,nb->na", k, w)
    wkw = np.einsum("na,na->n", w, kw)
    k -= kw[:, :, None] * w[:, None, :]
    k -= w[:, :, None] * kw[:, None, :]
    k += (wkw[:, None] * w)[:, :, None] * w[:, None, :]
    return k


def frobenius(d, w):
    r"""``|G diag(D) P|_F^2`` per row, ``P = G - w w^T`` (``= sigma^2 <G, J^T G J>``).

    ``P^2 = G - k w w^T`` with ``k = 2 - |w|^2``, so the squared row norms of
    ``diag(D) P`` are ``D_a^2 (1 - 1/B - k w_a^2)`` and
    ``|1^T diag(D) P|^2 = |G D|^2 - k (w.D)^2``.  ``O(n B)``.
    """
    b = d.shape[-1]
    k = 2.0 - np.einsum("na,na->n", w, w)
    wd = np.einsum("na,na->n", w, d)
    dc = d - d.mean(axis=1, keepdims=True)
    frob = np.einsum("na,na->n", d * d, 1.0 - 1.0 / b - k[:, None] * w * w)
    frob -= (np.einsum("na,na->n", dc, dc) - k * wd * wd) / b
    return frob


# ----------------------------------------------------------------------------- maps
def gram_map(activation, gram, *, gamma=1, beta=0, eps=0, sigma_w=1, samples=DEFAULT_SAMPLES, seed=0, chunk=None,
             name="gram") -> SampledMatrix:
    r"""Monte Carlo of ``V(Sigma) = E_{h ~ N(0, sigma_w^2 Sigma)}[B_phi(h) B_phi(h)^T]``.

    ``gram``: any symmetric positive semi-definite ``B x B`` matrix (checked:
    square, symmetric, finite, PSD within ``1e-10`` relative tolerance); ``name``: what the error
    messages call it (a caller iterating the map names the layer it came from).
    Returns the entrywise mean and standard error.  Cost
    ``O(samples B (r + B))`` flops (two BLAS products per chunk:
    ``Y^T Y`` and ``(Y*Y)^T (Y*Y)``) plus ``samples * B`` activation calls.

    >>> V = gram_map("relu", np.eye(8), samples=4000)
    >>> V.mean.shape, V.samples
    ((8, 8), 4000)
    """
    act, p = as_activation(activation), validation.network_parameters(gamma, beta, eps, sigma_w)
    sigma = validation.gram_matrix(gram, name=name)
    b = sigma.shape[0]
    n = validation.integer(samples, name="samples", minimum=2)
    factor = _centred_factor(p["sigma_w"] ** 2 * sigma, p["eps"], name)
    rng = _rng(seed)
    acc = _Accumulator()
    for m in _chunks(n, chunk, b * b):
        gh = rng.standard_normal((m, factor.shape[1])) @ factor.T
        xhat, _ = normalise(gh, p["eps"])
        f = act.np(p["gamma"] * xhat + p["beta"])
        f2 = f * f
        acc.add_sums(m, f.T @ f, f2.T @ f2)
    mean, stderr = acc.result()
    return SampledMatrix(mean, stderr, n, _settings(act, b, p, seed=seed))


def joint_map(activation, gram, batch_size, *, theta=None, gamma=1, beta=0, eps=0, sigma_w=1, samples=DEFAULT_SAMPLES,
              seed=0, chunk=None) -> tuple:
    r"""Monte Carlo of one layer of ``k = M / B`` batches through the same network.

    ``h ~ N(0, sigma_w^2 Sigma)`` in ``R^M`` (``gram = Sigma``, ``M x M`` PSD), batch norm within
    each batch of ``B`` consecutive coordinates, ``y = B_phi(h)`` per batch; returns
    ``(C, dC)``: ``C = E[y y^T]`` (the joint Gram map, every within- and cross-batch block) and,
    when ``theta`` (``M x M``) is given, ``dC = sigma_w^2 E[J theta J^T]`` with ``J`` the
    block-diagonal Jacobian of ``h -> y`` (:func:`jacobian` per batch; the neural tangent
    kernel's backward term), each a :class:`SampledMatrix` (else ``dC`` is None).  At ``eps = 0``
    ``dC`` has a finite variance only for ``B >= 6`` (``E[1/|G h|^4]`` with ``|G h|^2 ~ chi^2_(B-1)``
    scaled); the caller decides.  Cost ``O(samples M^2)`` flops, ``O(samples M^2 B)`` with ``theta``.

    >>> C, _ = joint_map("relu", np.eye(8), 4, samples=2000)
    >>> C.mean.shape
    (8, 8)
    """
    act, p = as_activation(activation), validation.network_parameters(gamma, beta, eps, sigma_w)
    sigma = validation.gram_matrix(gram, name="gram")
    b = validation.integer(batch_size, name="batch_size", minimum=2)
    m_all = sigma.shape[0]
    if m_all % b:
        raise BnsymInputError(f"gram is {m_all} x {m_all}, not a multiple of batch_size={b}")
    k = m_all // b
    if theta is not None:
        theta = validation.symmetric_matrix(theta, name="theta", size=m_all)
    n = validation.integer(samples, name="samples", minimum=2)
    # F F^T = sigma_w^2 P Sigma P, P the within-batch centring (block-diagonal G)
    blocks = (p["sigma_w"] ** 2 * sigma).reshape(k, b, k, b)
    blocks = blocks - blocks.mean(axis=1, keepdims=True)
    blocks = blocks - blocks.mean(axis=3, keepdims=True)
    values, vectors = np.linalg.eigh(blocks.reshape(m_all, m_all))
    keep = values > 1e-10 * max(values.max(initial=0.0), p["sigma_w"] ** 2 * np.abs(sigma).max(initial=0.0))
    factor = vectors[:, keep] * np.sqrt(values[keep])
    rng = _rng(seed)
    acc_c, acc_d = _Accumulator(), _Accumulator() if theta is not None else None
    th = None if theta is None else (p["sigma_w"] ** 2 * theta).reshape(k, b, k, b).transpose(0, 2, 1, 3)
    per_sample = m_all * m_all * (2 if theta is None else 2 + 2 * k)
    for m in _chunks(n, chunk, per_sample):
        gh = (rng.standard_normal((m, factor.shape[1])) @ factor.T).reshape(m, k, b)
        xhat, inv_sigma = _checked_normalise(gh, p["eps"], "gram (a batch block)")
        y = act.np(p["gamma"] * xhat + p["beta"]).reshape(m, m_all)
        y2 = y * y
        acc_c.add_sums(m, y.T @ y, y2.T @ y2)
        if theta is not None:
            d = p["gamma"] * act.np(p["gamma"] * xhat + p["beta"], derivative=True)
            proj = np.eye(b) - 1.0 / b - xhat[..., :, None] * xhat[..., None, :] / b
            jac = d[..., :, None] * proj * inv_sigma[..., None, None]          # m, k, B, B
            left = np.matmul(jac[:, :, None], th[None])                       # m, k, k, B, B: J_p theta_pq
            both = np.matmul(left, jac[:, None].swapaxes(-1, -2))             # ... J_q^T
            acc_d.add_values(both.transpose(0, 1, 3, 2, 4).reshape(m, m_all, m_all))
    settings = _settings(act, b, p, seed=seed, batches=k)
    c_mean, c_err = acc_c.result()
    out_c = SampledMatrix(c_mean, c_err, n, settings)
    if theta is None:
        return out_c, None
    d_mean, d_err = acc_d.result()
    return out_c, SampledMatrix(d_mean, d_err, n, settings)


def backward_map(activation, gram, pi, *, gamma=1, beta=0, eps=0, sigma_w=1, samples=DEFAULT_SAMPLES, seed=0, chunk=None,
                 radial="auto") -> SampledMatrix:
    r"""Monte Carlo of ``T(Pi) = sigma_w^2 E_{h ~ N(0, sigma_w^2 Sigma)}[J^T Pi J]``.

    ``gram`` (``Sigma``, PSD) and ``pi`` (``Pi``, symmetric) are ``B x B``.
    Per sample ``J^T Pi J = P (D D^T * Pi) P / sigma^2`` with
    ``P = G - xhat xhat^T/B`` is formed by rank-one updates, ``O(B^2)``
    flops (never the ``O(B^3)`` products).  ``radial``: ``"exact"``
    integrates the radius at ``eps = 0`` (module docstring; needs rank
    ``r >= 3`` of ``G Sigma G``), ``"sampled"`` does not, ``"auto"`` is
    ``"exact"`` at ``eps = 0``.  Cost ``O(samples B^2)``.
    """
    act, p = as_activation(activation), validation.network_parameters(gamma, beta, eps, sigma_w)
    sigma = validation.gram_matrix(gram, name="gram")
    b = sigma.shape[0]
    pi = validation.symmetric_matrix(pi, name="pi", size=b)
    n = validation.integer(samples, name="samples", minimum=2)
    radial = _radial(radial, p["eps"])
    factor = _centred_factor(p["sigma_w"] ** 2 * sigma, p["eps"], "gram")
    rank = factor.shape[1]
    if p["eps"] == 0 and b == 2:  # G - xhat xhat^T / 2 = 0: batch norm has zero Jacobian
        zero = np.zeros((2, 2))
        return SampledMatrix(zero, zero, n, _settings(act, b, p, seed=seed, radial=radial))
    if p["eps"] == 0 and rank <= 2:
        raise BnsymInputError(
            f"T is infinite for this gram: at eps = 0 the centred Gram matrix has rank {rank} <= 2, so "
            f"E[1/|G h|^2] = E[1/chi^2_{rank}] diverges"
        )
    rng = _rng(seed)
    acc = _Accumulator()
    for m in _chunks(n, chunk, 4 * b * b):
        z = rng.standard_normal((m, rank))
        gh = z @ factor.T
        xhat, inv_sigma = normalise(gh, p["eps"])
        d = p["gamma"] * act.np(p["gamma"] * xhat + p["beta"], derivative=True)
        weight = p["sigma_w"] ** 2 * _inverse_variance(z, gh, inv_sigma, rank, radial)
        k = sandwich(d, xhat / math.sqrt(b), pi)
        k *= weight[:, None, None]
        acc.add_values(k)
    mean, stderr = acc.result()
    return SampledMatrix(mean, stderr, n, _settings(act, b, p, seed=seed, radial=radial))


# ----------------------------------------------------------------------------- fixed point and rate
def fixed_point(activation, batch_size, *, gamma=1, beta=0, eps=0, sigma_w=1, samples=DEFAULT_SAMPLES, seed=0, chunk=None,
                tolerance=1e-3, max_iterations=200) -> SampledFixedPoint:
    r"""Sampled BSB1 fixed point ``q* = E[f_a^2]``, ``c* = E[f_a f_b]`` of the Gram map.

    Each sample is a batch ``f = B_phi(h)`` with ``h ~ N(0, sigma_w^2 Sigma)``,
    ``Sigma`` BSB1; its estimates are ``sum_a f_a^2 / B`` and
    ``sum_{a != b} f_a f_b / (B (B-1))`` (all entries used, by symmetry).

    ``eps = 0``: one step of ``V`` from ``Sigma = I`` (batch norm removes
    the scale).  ``eps > 0``: ``B_phi`` depends on the scale
    ``a = sigma_w^2 (q - c)``; the map ``a -> sigma_w^2 spread(a)`` is
    iterated with common random numbers (the same draws at every step) until
    the step is below ``tolerance`` standard errors, and the errors are
    widened by the sensitivity of the fixed point to ``a``.  Cost
    ``O(samples B)`` per iteration.
    """
    act, p = as_activation(activation), validation.network_parameters(gamma, beta, eps, sigma_w)
    b = validation.finite_batch_size(batch_size, why="sampling")
    n = validation.integer(samples, name="samples", minimum=2)
    stats = _BSB1Sampler(act, b, p, n, seed, chunk)
    if p["eps"] == 0:
        q, c, spread = stats.moments(1.0)
        iterations = 1
    else:
        scale, iterations, q, c, spread = _iterate_scale(stats, p["sigma_w"] ** 2, tolerance, max_iterations)
    return SampledFixedPoint(q.value, q.error, c.value, c.error, spread.value, spread.error, n,
                             _settings(act, b, p, seed=seed, iterations=iterations))


def gradient_explosion_rate(activation, batch_size, *, gamma=1, beta=0, eps=0, sigma_w=1, samples=DEFAULT_SAMPLES, seed=0,
                            chunk=None, radial="auto") -> SampledValue:
    r"""Sampled ``lambda_G = <G, T(G)> / (B - 1)`` at the BSB1 fixed point.

    Per sample, with ``w = xhat / sqrt(B)`` and ``P = G - w w^T``,
    ``<G, J^T G J> = |G diag(D) P|_F^2 / sigma^2`` and (using ``G w = w``)

        |G diag(D) P|_F^2 = sum_a D_a^2 (1 - 1/B - k w_a^2) - (|G D|^2 - k (w.D)^2) / B,   k = 2 - |w|^2,

    ``O(B)`` flops per sample (checked in the tests against
    :func:`backward_map` and the explicit :func:`jacobian`).  The fixed
    point is sampled first (``seed``), the rate with an independent stream,
    and the two standard errors are combined to first order.  ``B = 2`` at
    ``eps = 0`` gives 0 (``P = 0``); ``B = 3`` at ``eps = 0`` gives ``inf``
    with ``radial="exact"`` (``E[1/chi^2_2]`` diverges).  Cost
    ``O(samples B)``.
    """
    act, p = as_activation(activation), validation.network_parameters(gamma, beta, eps, sigma_w)
    b = validation.finite_batch_size(batch_size, why="sampling")
    n = validation.integer(samples, name="samples", minimum=2)
    radial = _radial(radial, p["eps"])
    settings = _settings(act, b, p, seed=seed, radial=radial)
    if p["eps"] == 0 and b == 2:
        return SampledValue(0.0, 0.0, n, settings)
    if p["eps"] == 0 and b == 3 and radial == "exact":
        return SampledValue(math.inf, 0.0, n, settings)
    fp = fixed_point(act, b, gamma=p["gamma"], beta=p["beta"], eps=p["eps"], sigma_w=p["sigma_w"], samples=n, seed=seed, chunk=chunk)
    scale = p["sigma_w"] ** 2 * fp.spread
    sampler = _BSB1Sampler(act, b, p, n, [seed, 1], chunk)
    rate = sampler.rate(scale, radial)
    if p["eps"] == 0:
        # lambda is exactly proportional to 1 / scale: first-order error propagation
        stderr = abs(rate.value) * math.hypot(rate.stderr / rate.value if rate.value else 0.0, fp.spread_stderr / fp.spread)
    else:
        # sensitivity to the scale by a common-random-numbers difference
        da = max(fp.spread_stderr, 1e-6 * fp.spread) * p["sigma_w"] ** 2
        slope = (sampler.rate(scale + da, radial).value - sampler.rate(scale - da, radial).value) / (2 * da)
        stderr = math.hypot(rate.stderr, slope * p["sigma_w"] ** 2 * fp.spread_stderr)
    return SampledValue(rate.value, stderr, n, settings)


# ----------------------------------------------------------------------------- internals
class _BSB1Sampler:
    """Batches ``G h = sqrt(a) G z`` (``z ~ N(0, I_B)``) at a BSB1 input of scale ``a``,
    drawn afresh from the same seed on every pass (common random numbers)."""

    def __init__(self, act, b, p, n, seed, chunk):
        self.act, self.b, self.p, self.n, self.seed, self.chunk = act, b, p, n, seed, chunk

    def _batches(self, scale):
        rng = _rng(self.seed)
        for m in _chunks(self.n, self.chunk, 4 * self.b):
            z = rng.standard_normal((m, self.b))
            gz = z - z.mean(axis=1, keepdims=True)
            xhat, inv_sigma = normalise(math.sqrt(scale) * gz, self.p["eps"])
            yield gz, xhat, inv_sigma

    def moments(self, scale):
        """Sampled ``(q, c, q - c)`` of ``V`` at scale ``a`` (each a :class:`SampledValue`)."""
        b, p = self.b, self.p
        acc = _Accumulator()
        for _, xhat, _ in self._batches(scale):
            f = self.act.np(p["gamma"] * xhat + p["beta"])
            total = f.sum(axis=1)
            square = np.einsum("na,na->n", f, f)
            q = square / b
            c = (total * total - square) / (b * (b - 1))
            acc.add_values(np.stack([q, c, q - c], axis=1))
        mean, stderr = acc.result()
        return tuple(SampledValue(float(m), float(s), self.n) for m, s in zip(mean, stderr))

    def rate(self, scale, radial):
        """Sampled ``sigma_w^2 E[|G diag(D) P|^2 / sigma^2] / (B-1)`` at scale ``a``."""
        b, p = self.b, self.p
        acc = _Accumulator()
        for gz, xhat, inv_sigma in self._batches(scale):
            d = p["gamma"] * self.act.np(p["gamma"] * xhat + p["beta"], derivative=True)
            frob = frobenius(d, xhat / math.sqrt(b))
            # gz = G z is a standard Gaussian of dimension B - 1 (in 1^perp); G h = sqrt(scale) gz
            weight = _inverse_variance(gz, math.sqrt(scale) * gz, inv_sigma, b - 1, radial)
            acc.add_values((p["sigma_w"] ** 2 / (b - 1)) * frob * weight)
        mean, stderr = acc.result()
        return SampledValue(float(mean), float(stderr), self.n)


def _iterate_scale(stats, sw2, tolerance, max_iterations):
    """Solve ``a = sigma_w^2 spread(a)`` by iteration with common random numbers."""
    scale = sw2  # from Sigma = I
    for iteration in range(1, max_iterations + 1):
        q, c, spread = stats.moments(scale)
        new = sw2 * spread.value
        if not new > 1e-8 * sw2:
            raise BnsymError("the sampled scale sigma_w^2 (q - c) collapsed to 0: no non-degenerate BSB1 fixed point")
        step, scale = abs(new - scale), new
        if step <= tolerance * sw2 * spread.stderr or step <= 1e-13 * scale:
            break
    else:
        if scale < 1e-3 * sw2:
            raise BnsymError(f"the sampled scale sigma_w^2 (q - c) collapsed towards 0 ({scale:.3g} after "
                             f"{max_iterations} steps): no non-degenerate BSB1 fixed point")
        raise BnsymError(f"the sampled fixed-point iteration did not converge in {max_iterations} steps")
    q, c, spread = stats.moments(scale)
    # widen by the sensitivity to the scale (common random numbers difference)
    da = max(sw2 * spread.stderr, 1e-6 * scale)
    hi, lo = stats.moments(scale + da), stats.moments(scale - da)
    slopes = [(h.value - l.value) / (2 * da) for h, l in zip(hi, lo)]
    contraction = sw2 * slopes[2]
    if not contraction < 1:
        raise BnsymError("the sampled scale map is not contracting at its fixed point (slope >= 1)")
    scale_err = sw2 * spread.stderr / (1 - contraction)
    widened = [SampledValue(v.value, v.stderr + abs(s) * scale_err, v.samples) for v, s in zip((q, c, spread), slopes)]
    return scale, iteration, *widened


def _inverse_variance(z, gh, inv_sigma, rank, radial):
    """``1 / sigma^2`` per sample, or at ``eps = 0`` with ``radial="exact"`` its mean
    over the radius given the direction: ``B |z|^2 / ((r - 2) |G h|^2)``, where
    ``G h`` is a linear image of ``z``, a standard Gaussian of dimension ``r``."""
    if radial == "exact":
        b = gh.shape[1]
        return b * np.einsum("na,na->n", z, z) / ((rank - 2) * np.einsum("na,na->n", gh, gh))
    return inv_sigma * inv_sigma


class _Accumulator:
    """Entrywise mean and standard error, merged chunk by chunk (Chan et al.)."""

    def __init__(self):
        self.n, self.mean, self.m2 = 0, 0.0, 0.0

    def _merge(self, m, mean, m2):
        total = self.n + m
        delta = mean - self.mean
        self.mean = self.mean + delta * (m / total)
        self.m2 = self.m2 + m2 + delta * delta * (self.n * m / total)
        self.n = total

    def add_values(self, values):
        mean = values.mean(axis=0)
        dev = values - mean
        self._merge(values.shape[0], mean, np.einsum("n...,n...->...", dev, dev))

    def add_sums(self, m, total, squares):
        mean = total / m
        self._merge(m, mean, np.maximum(squares - m * mean * mean, 0.0))

    def result(self):
        var = self.m2 / max(self.n - 1, 1)
        return np.asarray(self.mean, dtype=float), np.sqrt(np.asarray(var, dtype=float) / self.n)


def _chunks(n, chunk, floats_per_sample):
    size = validation.integer(chunk, name="chunk", minimum=1) if chunk is not None else max(1, CHUNK_FLOATS // max(floats_per_sample, 1))
    for start in range(0, n, size):
        yield min(size, n - start)


def _centred_factor(cov, eps, name):
    """``F`` (B x r) with ``F F^T = G cov G``, dropping null directions."""
    centred = cov - cov.mean(axis=0, keepdims=True)
    centred -= centred.mean(axis=1, keepdims=True)
    values, vectors = np.linalg.eigh((centred + centred.T) / 2)
    keep = values > 1e-10 * max(values.max(initial=0.0), np.abs(cov).max(initial=0.0))
    if not keep.any() and eps == 0:
        raise BnsymInputError(
            f"{name} has no component orthogonal to the all-ones vector: every pre-activation row is "
            f"constant across the batch and batch norm divides by zero at eps = 0"
        )
    return vectors[:, keep] * np.sqrt(values[keep])


def _checked_normalise(h, eps, name):
    try:
        return normalise(h, eps)
    except BnsymError as exc:
        raise BnsymInputError(f"{name}: {exc}") from None


def _rng(seed):
    if isinstance(seed, np.random.Generator):
        return seed
    try:
        return np.random.Generator(np.random.SFC64(np.random.SeedSequence(seed)))
    except (TypeError, ValueError):
        raise BnsymInputError(f"seed must be a non-negative integer or a sequence of them, got {seed!r}") from None


def _settings(act, b, p, **extra) -> dict:
    return dict(activation=act.label, batch_size=b, **p, **extra)


def _radial(radial, eps) -> str:
    if radial not in ("auto", "exact", "sampled"):
        raise BnsymInputError(f"radial must be 'auto', 'exact' or 'sampled', got {radial!r}")
    if radial == "exact" and eps != 0:
        raise BnsymInputError("radial='exact' needs eps = 0 (the radius only factors out without eps)")
    return ("exact" if eps == 0 else "sampled") if radial == "auto" else radial
